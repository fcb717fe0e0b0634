"""duplicate: choose how many copies of each weight layer to make, with CP-SAT.

Copies split a layer's MVMs, so its blocks' loads (MVMs x MVM time) shrink; they cost
crossbar cells. Within a budget of N crossbars of C cells:

- objective=throughput: minimise the period P (the busiest crossbar's load per inference)
  subject to: every block's load <= P; all copies' cells <= fill x N x C; the total load
  (fixed by the partition, up to rounding) <= N x P; blocks too large to share a crossbar
  with each other (over half its rows and half its columns) <= N;
- objective=latency: minimise the longest path through the graph, a weight layer taking
  ceil(MVMs / copies) x its MVM time, under the same cell and large-block limits.

Each layer chooses one candidate: a copy count with its blocks as partitioned, or with
several lanes (small blocks replicated on a crossbar's diagonal, read together), or, for
grouped and depthwise layers (layouts=true), in another layout: fewer groups per diagonal
block or serial blocks, which program fewer empty cells for more reads. Copy choices are
enumerated exactly (only the copy counts where ceil(MVMs / copies) changes) and candidates
no other beats on cells, time, load and big blocks kept, so the model is linear and CP-SAT
proves optimality on typical networks within its deterministic time limit; the status
says whether it did. Other layouts make more and smaller blocks, which pack worse: they
are solved for only where the relaxed bound says they could lower the period by 10%, or
the partition's layouts take 90% of the budget's cells (or do not fit), and kept where
they do lower it that much, or match it with fewer cells on such a tight budget. A layer
given another layout records the partition's (`partition_layout`, `partition_groups`).
A second solve keeps the optimum and uses the partition's layouts where it can, then the
fewest cells, which leaves the packer room (compact: the fewest crossbars whose tiles'
digital units keep up with the period). The result is recorded in module attributes
(`budget`, `period_target_ns`, `duplicate_*`) for `pack`.

compact=true (the `fast` pipeline, for search loops) writes each layer's copies as a
`copies` attribute instead of copy blocks, and counts every block as a crossbar of its own
(no packing follows): the cost model reads the copies from the attribute, so a mapping with
thousands of copies costs no more to build and cost than one with none. `pack` and `place`
expand compact copies into blocks first. bound=false skips the relaxed solve that proves
the period bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimc import facts as module_facts
from cimc.errors import Infeasible, PipelineError
from cimc.ir import Module, Op
from cimc.mapping import (WEIGHT_KINDS, block_footprint, plan_shapes, require_blocks, shape_block,
                          splittable_big_block)

TIME_UNITS_PER_NS = 100  # CP-SAT works in integers: 0.01 ns
# other layouts than the partition's are taken when they lower duplicate's period by more
# than this: they make more and smaller blocks, which cost about that much in packing
# (MobileNetV3-small on rnc-128 at 338 crossbars: 4% lower here, 17% slower packed)
OTHER_LAYOUT_GAIN = 0.1
TIGHT = 0.9  # ... or when the partition's layouts take this share of the budget's cells


@dataclass(frozen=True)
class LayerInfo:
    name: str
    mvms: int
    mvm_ns: float  # the slowest block's MVM time
    sum_mvm_ns: float  # all blocks of one copy
    cells: int  # footprint cells of one copy
    big_blocks: int  # blocks over half a crossbar in both directions
    blocks: tuple


def layer_info(t, op: Op, bs, whole_crossbars: bool = False) -> LayerInfo:
    """A weight layer's figures for one copy of the blocks `bs`."""
    from cimc.cost import block_mvm_ns

    fps = [block_footprint(t, b) for b in bs]
    times = [block_mvm_ns(t, b) for b in bs]
    # blocks too big to share a crossbar with each other (pack may halve light ones)
    big = sum(1 for f, b in zip(fps, bs) if 2 * f.rows > t.xbar_rows and 2 * f.cols > t.xbar_cols
              and not splittable_big_block(t, op["mvms"], b))
    cells = len(bs) * t.cells_per_xbar if whole_crossbars else sum(f.cells for f in fps)
    return LayerInfo(op.result, op["mvms"], max(times), sum(times), cells, 0 if whole_crossbars else big, tuple(bs))


def layer_infos(module: Module, whole_crossbars: bool = False) -> list[LayerInfo]:
    """Per weight layer with blocks: its copy-0 blocks' figures. whole_crossbars: every block
    counts as a full crossbar of cells (mappings that will not be packed)."""
    by_layer: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            by_layer.setdefault(op.operands[0], []).append(op)
    return [layer_info(module.target, op, by_layer[op.result], whole_crossbars)
            for op in module.ops if op.kind in WEIGHT_KINDS and op.result in by_layer]


def layout_variants(module: Module) -> dict[str, list[list]]:
    """Per grouped layer whose every group fits one block: block plans (groups, rows, cols,
    layout) in layouts other than its blocks' (`partition.all_layouts`): on the diagonal with
    fewer groups per block (fewer cells per group, more reads per MVM of the layer), and
    serial, groups side by side (every cell programmed, one group per read)."""
    from cimc.passes.partition import all_layouts

    t = module.target
    firsts: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            firsts.setdefault(op.operands[0], []).append(op)
    out: dict[str, list[list]] = {}
    for op in module.ops:
        if op.kind in WEIGHT_KINDS and op.result in firsts:
            have = tuple((b["groups"], b["layout"]) for b in firsts[op.result])
            plans = [plan for plan in all_layouts(t, op["groups"], op["rows"], op["cols"])
                     if tuple((g, lay) for g, _, _, lay in plan) != have]
            if plans:
                out[op.result] = plans
    return out


def as_partitioned(module: Module) -> Module:
    """The module with the partition's blocks back (one copy, one lane) for every layer that
    duplicate gave another layout (`partition_layout`); the module itself when there is none."""
    from cimc.passes.partition import plan_blocks

    t = module.target
    blocks = {op.result: plan_ops(op.result, plan_blocks(t, op["groups"], op["rows"], op["cols"], op["partition_layout"],
                                                         max_groups=op["partition_groups"]))
              for op in module.ops if op.kind in WEIGHT_KINDS and op.get("partition_layout") is not None}
    if not blocks:
        return module
    m = with_layouts(module, blocks)
    return m.with_ops([op.with_attrs(partition_layout=None, partition_groups=None) if op.result in blocks else op
                       for op in m.ops])


def plan_ops(layer: str, plan) -> tuple[Op, ...]:
    """The copy-0 blocks of a layer's plan (groups, rows, cols, layout), named as partition
    names them."""
    return tuple(Op.make("map.block", f"{layer}.b{n}", [layer], copy=0, groups=g, rows=r, cols=c, layout=lay)
                 for n, (g, r, c, lay) in enumerate(plan))


def plan_info(t, op: Op, plan, lanes: int, whole_crossbars: bool) -> LayerInfo:
    """`layer_info` of a plan's blocks with `lanes` lanes, figured once per block shape
    (without the blocks themselves: `blocks` is empty)."""
    from cimc.cost import block_mvm_ns

    mvm = total = 0.0
    cells = big = 0
    for shape, n in plan_shapes(plan).items():
        b = shape_block(op.result, shape, lanes)
        fp = block_footprint(t, b)
        tb = block_mvm_ns(t, b)
        mvm, total = max(mvm, tb), total + n * tb
        cells += n * (t.cells_per_xbar if whole_crossbars else fp.cells)
        if not whole_crossbars and 2 * fp.rows > t.xbar_rows and 2 * fp.cols > t.xbar_cols \
                and not splittable_big_block(t, op["mvms"], b):
            big += n
    return LayerInfo(op.result, op["mvms"], mvm, total, cells, big, ())


def with_layouts(module: Module, blocks: dict[str, tuple[Op, ...]]) -> Module:
    """The module with the copy-0 blocks of each layer in `blocks` replaced by those given
    (its copies dropped). The layer records the partition's layout and groups per block
    (`partition_layout`, `partition_groups`): the cost model's baseline is the partition's."""
    if not blocks:
        return module
    first: dict[str, Op] = {}
    gone = set()
    for op in module.ops:
        if op.kind == "map.block" and op.operands[0] in blocks:
            gone.add(op.result)
            first.setdefault(op.operands[0], op)
    ops: list[Op] = []
    for op in module.ops:
        if op.result in gone or (op.kind == "map.place" and op.operands[0] in gone):
            continue
        if op.result in blocks:
            if op.get("partition_layout") is None:
                b = first[op.result]
                op = op.with_attrs(partition_layout=b["layout"], partition_groups=b["groups"][1] - b["groups"][0])
            ops.append(op)
            ops.extend(blocks[op.result])
            continue
        ops.append(op)
    return module.with_ops(ops)


def copy_candidates(mvms: int, max_copies: int) -> list[tuple[int, int]]:
    """(copies, MVMs per copy) for every copy count where ceil(mvms / copies) changes."""
    out, c = [], 1
    max_copies = max(1, min(max_copies, mvms))
    while c <= max_copies:
        q = -(-mvms // c)
        out.append((c, q))
        if q == 1:
            break
        c = -(-mvms // (q - 1))
    return out


def _undominated(cands: list[tuple]) -> list[tuple]:
    """Candidates (cells, time, load, big blocks, ...) no other one matches or beats on all
    four figures (the first of equals kept): the model's constraints see nothing else."""
    kept: list[tuple] = []
    for c in sorted(cands, key=lambda c: c[:4]):  # stable: equal figures keep their order
        if not any(k[1] <= c[1] and k[2] <= c[2] and k[3] <= c[3] for k in kept):
            kept.append(c)
    return kept


def solve_copies(module: Module, infos: list[LayerInfo], budget: int, objective: str, fill: float,
                 time_limit: float, bound_only: bool = False, check_only: bool = False,
                 alternatives: dict | None = None, least_cells=None,
                 whole_crossbars: bool = False) -> tuple[dict[str, int], float, dict]:
    """Copies per layer, the period (or latency) they reach in ns, and solver facts.
    least_cells: given the period reached (ns), the fewest cells the answer should use
    (compact mappings: crossbars whose tiles' digital units keep up).
    alternatives: {layer: [(tag, lanes, LayerInfo), ...]}: other block sets the layer may
    take instead of its own (other layouts, several lanes); a copy of k lanes doing q MVMs
    takes ceil(q / k) reads of k MVMs each. The tags chosen (where not the layer's own
    blocks) are in facts["choice"]."""
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver

    t = module.target
    cap_cells = int(fill * budget * t.cells_per_xbar)
    options = {i.name: [(None, 1, i)] + list((alternatives or {}).get(i.name, ())) for i in infos}
    least = {i.name: min(options[i.name], key=lambda o: (o[2].cells, o[2].big_blocks))[2] for i in infos}
    base_cells = sum(v.cells for v in least.values())
    big = sum(min(v.big_blocks for _, _, v in options[i.name]) for i in infos)
    if whole_crossbars and base_cells > budget * t.cells_per_xbar:
        raise Infeasible(f"model '{module.name}': compact copies (the 'fast' pipeline) give every block a crossbar "
                         f"of its own, and one copy of every layer has {base_cells // t.cells_per_xbar} blocks, "
                         f"more than a budget of {budget} crossbars; raise the budget, or use the 'full' "
                         "pipeline, which packs blocks of several layers into one crossbar.")
    if base_cells > budget * t.cells_per_xbar or big > budget:
        raise Infeasible(f"model '{module.name}': one copy of every layer needs {base_cells:,} cells "
                         f"({math.ceil(base_cells / t.cells_per_xbar)} crossbars at best)"
                         + (f" and {big} crossbars to itself for blocks over half a crossbar" if big else "")
                         + f", more than a budget of {budget} crossbars; raise the budget.")
    if check_only:  # the budget holds one copy of everything
        return {}, 0.0, {}
    if base_cells > cap_cells:  # no room for any copy: one each, and pack decides whether that fits
        period = max(max(v.mvms * v.mvm_ns for v in least.values()),
                      sum(v.mvms * v.sum_mvm_ns for v in least.values()) / budget)
        facts = {"status": "ONE_COPY (no room for copies)", "optimal": True, "objective_ns": period,
                 "bound_ns": period, "cells": base_cells}
        choice = {i.name: tag for i in infos for tag, _, v in options[i.name] if v is least[i.name] and tag}
        if choice:
            facts["choice"] = choice
        return {i.name: 1 for i in infos}, period, facts
    units = lambda ns: int(math.ceil(ns * TIME_UNITS_PER_NS - 1e-6))  # noqa: E731
    m = cp_model.CpModel()
    choice: dict[str, list] = {}
    cells_terms, load_terms, big_terms, other_layout = [], [], [], []
    cells_of: dict[tuple, int] = {}
    # a start: water-filling's copies (feasible for the cell and big-block limits; one copy
    # each when the objective is latency)
    start = greedy_copies(infos, cap_cells, budget)[0] if objective == "throughput" and \
        sum(i.cells for i in infos) <= cap_cells else {}
    layer_time = {}
    for i in infos:
        cands = []
        for tag, k, v in options[i.name]:
            max_c = min(i.mvms, (cap_cells - base_cells + least[i.name].cells) // max(v.cells, 1))
            for c, q in copy_candidates(i.mvms, max_c):
                reads = -(-q // k)
                cands.append((c * v.cells, units(reads * k * v.mvm_ns), units(c * reads * k * v.sum_mvm_ns),
                              c * v.big_blocks, (tag, c, k)))
        choice[i.name] = []
        terms = []
        for cells, time_u, load_u, big_n, (tag, c, k) in _undominated(cands):
            x = m.new_bool_var(f"{i.name}:{tag}:{c}x{k}")
            m.add_hint(x, tag is None and c == start.get(i.name, 1))
            choice[i.name].append(((tag, c), x))
            cells_of[i.name, tag, c] = cells
            cells_terms.append(cells * x)
            load_terms.append(load_u * x)
            terms.append(time_u * x)
            if big_n:
                big_terms.append(big_n * x)
            if tag is not None and tag[0]:
                other_layout.append(x)
        m.add_exactly_one([x for _, x in choice[i.name]])
        layer_time[i.name] = sum(terms)
    m.add(sum(cells_terms) <= cap_cells)
    if big_terms:
        m.add(sum(big_terms) <= budget)
    horizon = sum(units(v.mvms * v.sum_mvm_ns) for v in
                  (max(options[i.name], key=lambda o: o[2].mvms * o[2].sum_mvm_ns)[2] for i in infos)) + 1
    if objective == "throughput":
        # few crossbars shared by many layers: the period may exceed any one layer's time
        goal = m.new_int_var(0, horizon, "period")
        for i in infos:
            m.add(layer_time[i.name] <= goal)
        m.add(sum(load_terms) <= budget * goal)
    else:
        goal = _longest_path_var(m, module, layer_time, horizon)
    m.minimize(goal)
    # presolve cannot shrink this model (one choice per layer, three sums) and took most of
    # the time: ResNet-50 0.54 -> 0.12 s per solve, same optima
    solver = deterministic_solver(time_limit, presolve=False)
    status = solver.solve(m)
    if status == cp_model.UNKNOWN and objective == "throughput" and not bound_only and start:
        # the time limit ran out before a first solution: water-fill copies instead
        copies, period = greedy_copies(infos, cap_cells, budget)
        return copies, period, {"status": "GREEDY (CP-SAT found nothing in its time limit)", "optimal": False,
                                "objective_ns": period, "bound_ns": 0.0}
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise Infeasible(f"model '{module.name}': the duplication model has no solution within {budget} crossbars "
                         f"({solver.status_name(status)}).")
    best, bound = solver.objective_value, solver.best_objective_bound
    facts = {"status": solver.status_name(status), "optimal": status == cp_model.OPTIMAL,
             "objective_ns": best / TIME_UNITS_PER_NS, "bound_ns": bound / TIME_UNITS_PER_NS}
    if bound_only:
        return {}, best / TIME_UNITS_PER_NS, facts
    # second solve: the same objective value with the partition's layouts where they reach
    # it (more, smaller blocks pack worse), then the fewest cells (room for the packer)
    m.add(goal <= int(round(best)))
    m.clear_objective()
    cells_sum = sum(cells_terms)
    if least_cells:  # as few cells as give the digital units enough tiles, else the most
        short = m.new_int_var(0, cap_cells, "cells short")
        m.add(short >= min(cap_cells, least_cells(best / TIME_UNITS_PER_NS)) - cells_sum)
        m.minimize(short * (cap_cells + 1) + cells_sum)
    else:
        m.minimize(sum(other_layout) * (cap_cells + 1) + cells_sum if other_layout else cells_sum)
    m.clear_hints()
    for cands_xs in choice.values():
        for _, x in cands_xs:
            m.add_hint(x, solver.boolean_value(x))
    second = deterministic_solver(time_limit, presolve=False)
    status2 = second.solve(m)
    final = second if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE) else solver
    facts["second_status"] = second.status_name(status2)
    picked = {name: next(tc for tc, x in cx if final.boolean_value(x)) for name, cx in choice.items()}
    copies = {name: c for name, (tag, c) in picked.items()}
    chosen = {name: tag for name, (tag, c) in picked.items() if tag is not None}
    if chosen:
        facts["choice"] = chosen
    facts["cells"] = sum(cells_of[name, tag, c] for name, (tag, c) in picked.items())
    return copies, best / TIME_UNITS_PER_NS, facts


def greedy_copies(infos: list[LayerInfo], cap_cells: int, budget: int) -> tuple[dict[str, int], float]:
    """Copies by water-filling: give the slowest layer its next useful copy count while the
    cells and the crossbars for big blocks allow; stop when the slowest cannot get one."""
    import heapq

    # plain lists: this loop runs once per copy step (hundreds per compile in search loops)
    mvms = [i.mvms for i in infos]
    mvm_ns = [i.mvm_ns for i in infos]
    layer_cells = [i.cells for i in infos]
    layer_big = [i.big_blocks for i in infos]
    copies = [1] * len(infos)
    cells = sum(layer_cells)
    big = sum(layer_big)
    heap = [(-m * t, n) for n, (m, t) in enumerate(zip(mvms, mvm_ns))]
    heapq.heapify(heap)
    while heap:
        n = heap[0][1]
        q = -(-mvms[n] // copies[n])
        if q == 1:
            break
        nxt = -(-mvms[n] // (q - 1))  # the fewest copies that take one MVM off the slowest copy
        extra = nxt - copies[n]
        if cells + extra * layer_cells[n] > cap_cells or big + extra * layer_big[n] > budget:
            break
        cells += extra * layer_cells[n]
        big += extra * layer_big[n]
        copies[n] = nxt
        heapq.heapreplace(heap, (-(-(-mvms[n] // nxt)) * mvm_ns[n], n))
    return {i.name: c for i, c in zip(infos, copies)}, -heap[0][0] if heap else 0.0


def _longest_path_var(m, module: Module, layer_time: dict, horizon: int):
    """An int var >= the longest path, weight layers taking `layer_time`, others fixed."""
    from cimc.cost import evaluate

    fixed = {layer.name: layer.latency_ns for layer in evaluate(module).layers if layer.crossbars == 0}
    finish = {}
    end = m.new_int_var(0, horizon * 2, "makespan")
    for op in module.ops:
        if op.namespace != "nn" or op.result is None or op.kind == "nn.input":
            continue
        f = m.new_int_var(0, horizon * 2, f"finish:{op.result}")
        dur = layer_time.get(op.result, int(math.ceil(fixed.get(op.result, 0.0) * TIME_UNITS_PER_NS)))
        preds = [finish[o] for o in op.operands if o in finish]
        for p in preds:
            m.add(f >= p + dur)
        if not preds:
            m.add(f >= dur)
        finish[op.result] = f
        m.add(end >= f)
    return end


def with_compact_copies(module: Module, copies: dict[str, int]) -> Module:
    """The module with each layer's copies as its `copies` attribute (copy blocks dropped)."""
    ops = []
    for op in module.ops:
        if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched") or (op.kind == "map.block" and op["copy"]):
            continue
        if op.kind in WEIGHT_KINDS:
            c = copies.get(op.result, 1)
            op = op.with_attrs(copies=c if c > 1 else None)
        ops.append(op)
    return module.with_ops(ops)


def expand_copies(module: Module) -> Module:
    """Compact copies (`copies` attributes) as copy blocks; the module itself when it has none."""
    copies = {op.result: op["copies"] for op in module.ops if op.kind in WEIGHT_KINDS and op.get("copies")}
    if not copies:
        return module
    return with_copies(module, copies)


def with_lanes(module: Module, lanes: dict[str, int]) -> Module:
    """The module with every block of each layer in `lanes` holding that many replicas (the
    others one)."""
    ops = []
    changed = False
    for op in module.ops:
        if op.kind == "map.block":
            k = lanes.get(op.operands[0], 1)
            if op.get("lanes", 1) != k:
                op = op.with_attrs(lanes=k if k > 1 else None)
                changed = True
        ops.append(op)
    return module.with_ops(ops) if changed else module


def with_copies(module: Module, copies: dict[str, int]) -> Module:
    """The module with copies 1..c-1 of each layer's copy-0 blocks (existing copies and
    compact copies replaced)."""
    ops: list[Op] = []
    pending: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched"):
            continue
        if op.kind in WEIGHT_KINDS and op.get("copies"):
            op = op.with_attrs(copies=None)
        if op.kind == "map.block":
            if op["copy"] != 0:
                continue
            pending.setdefault(op.operands[0], []).append(op)
        ops.append(op)
    out: list[Op] = []
    last_block = {name: bs[-1].result for name, bs in pending.items()}
    for op in ops:
        out.append(op)
        if op.kind == "map.block" and last_block.get(op.operands[0]) == op.result:
            layer = op.operands[0]
            for k in range(1, copies.get(layer, 1)):
                for b in pending[layer]:
                    out.append(Op(b.kind, f"{layer}.c{k}.{b.result[len(layer) + 1:]}", b.operands,
                                  b.with_attrs(copy=k).attrs))
    return module.with_ops(out)


def _digital_keeps_up(module: Module):
    """For compact copies (every block a crossbar, filling tiles in order): given a period,
    the cells of the fewest crossbars whose tiles' digital units do the digital work of an
    inference within it. Fewer would make the digital units set the period."""
    from cimc.ops import DIGITAL_KINDS

    t = module.target
    digital = sum(op["ops"] for op in module.ops if op.kind in DIGITAL_KINDS)

    def least(period_ns: float) -> int:
        if not digital or period_ns <= 0:
            return 0
        tiles = math.ceil(digital / (t.digital_ops_per_ns * period_ns) * (1 - 1e-9))
        return tiles * t.xbars_per_tile_all * t.cells_per_xbar

    return least


def _no_faster_than_the_floor(module: Module, infos: list[LayerInfo], copies: dict, goal_ns: float, facts: dict,
                              compact: bool = False):
    """Copies that make the crossbars faster than the period's floor (buffer traffic,
    digital units: `period_floor_ns`) buy nothing: each layer keeps the fewest copies
    that still meet the floor, and the floor becomes the target. Compact copies are not
    placed: their crossbars fill tiles in order, so fewer crossbars are fewer tiles'
    digital units; there the copies stay when cutting them would make those the slower."""
    from cimc.cost import period_floor_ns
    from cimc.ops import DIGITAL_KINDS

    t = module.target
    floor = period_floor_ns(module)
    if goal_ns >= floor:
        return copies, goal_ns, facts
    fewer = {}
    for i in infos:
        per_copy = max(1, int(floor // i.mvm_ns))  # MVMs one copy may do within the floor
        fewer[i.name] = min(copies.get(i.name, 1), max(1, -(-i.mvms // per_copy)))
    if compact:
        xbars = sum(fewer[i.name] * len(i.blocks) for i in infos)
        digital = sum(op["ops"] for op in module.ops if op.kind in DIGITAL_KINDS)
        if digital / (t.digital_ops_per_ns * -(-xbars // t.xbars_per_tile_all)) > floor * (1 + 1e-9):
            return copies, goal_ns, facts
    facts = dict(facts, status=f"{facts['status']}; copies cut to the period floor {floor:.4g} ns "
                                "(buffer traffic or digital units)")
    return fewer, floor, facts


@dataclass(frozen=True)
class DuplicatePass:
    name = "duplicate"
    objective: str = "throughput"
    budget: int = 0  # crossbars; 0: every crossbar of the target
    fill: float = 0.97  # share of the budget's cells the copies may take (room for packing losses)
    time_limit: float = 10.0  # CP-SAT deterministic time units (about seconds of one core)
    compact: bool = False  # copies as layer attributes, every block a crossbar (no packing follows)
    method: str = "cp-sat"  # or "greedy": water-filling copies, no solver (objective=throughput only)
    bound: bool = True  # prove the period bound with a relaxed solve
    lanes: bool = True  # small blocks may hold several replicas read at once (block-diagonal)
    layouts: bool = True  # grouped layers may take other layouts than the partition's

    def _alternatives(self, module: Module, layouts: bool):
        """{layer: [((variant, lanes), lanes, LayerInfo)]}, the block sets a layer may take
        besides its own (variant 0, one lane): its own with the most lanes its blocks allow,
        and each other layout (`layout_variants`) with one lane and with its most; and
        {layer: {variant: blocks}}."""
        from cimc.mapping import max_lanes

        t = module.target
        defs = module.by_name()
        own: dict[str, list[Op]] = {}
        for op in module.ops:
            if op.kind == "map.block" and op["copy"] == 0:
                own.setdefault(op.operands[0], []).append(op)
        others = layout_variants(module) if layouts else {}
        alternatives: dict[str, list] = {}
        block_sets: dict[str, dict[int, tuple]] = {}
        for name, bs in own.items():
            op = defs[name]
            plans = others.get(name, [])
            block_sets[name] = {0: tuple(bs), **{v: plan for v, plan in enumerate(plans, 1)}}
            opts = []
            k = min(min(max_lanes(t, b) for b in bs), op["mvms"]) if self.lanes else 1
            if k > 1:
                opts.append(((0, k), k, layer_info(t, op, [b.with_attrs(lanes=k) for b in bs], self.compact)))
            for v, plan in enumerate(plans, 1):
                opts.append(((v, 1), 1, plan_info(t, op, plan, 1, self.compact)))
                k = 1
                if self.lanes:
                    k = min(op["mvms"], min(max_lanes(t, shape_block(name, shape)) for shape in plan_shapes(plan)))
                if k > 1:
                    opts.append(((v, k), k, plan_info(t, op, plan, k, self.compact)))
            if opts:
                alternatives[name] = opts
        return alternatives, block_sets

    def __post_init__(self):
        if self.objective not in ("throughput", "latency"):
            raise PipelineError(f"duplicate: objective must be throughput or latency, got '{self.objective}'.")
        if self.method not in ("cp-sat", "greedy") or (self.method == "greedy" and self.objective != "throughput"):
            raise PipelineError(f"duplicate: method must be cp-sat, or greedy with objective=throughput; got "
                                f"'{self.method}' with objective={self.objective}.")
        if self.budget < 0 or not 0 < self.fill <= 1 or self.time_limit <= 0:
            raise PipelineError("duplicate: budget must be >= 0, fill in (0, 1], time-limit > 0.")

    def run(self, module: Module) -> Module:
        budget = self.budget or module_facts.get(module, "budget") or module.target.xbars
        require_blocks(module, "duplicate")
        if module.target.pools:
            from dataclasses import replace

            from cimc.passes.pools import run_per_pool

            return run_per_pool(replace(self, budget=0), module, budget)
        module = with_lanes(module, {})  # lanes and layouts are chosen afresh
        infos = layer_infos(module, whole_crossbars=self.compact)
        fill = 1.0 if self.compact else self.fill  # no packing losses to leave room for
        alternatives, block_sets = self._alternatives(module, layouts=self.layouts and self.method == "cp-sat")
        relaxed = None  # the proven period bound
        if self.objective == "throughput" and self.bound and not self.compact:
            # with every cell of the budget allowed, the model relaxes every real mapping of
            # this partition and its layouts (block loads, cells, total load, large blocks),
            # so its proven bound is a lower bound on the period
            relaxed = solve_copies(module, infos, budget, "throughput", 1.0, self.time_limit, bound_only=True,
                                   alternatives=alternatives)[2]["bound_ns"]
        if self.method == "greedy":
            cap = int(fill * budget * module.target.cells_per_xbar)
            solve_copies(module, infos, budget, self.objective, fill, self.time_limit, check_only=True,
                         whole_crossbars=self.compact)
            lanes, layouts = {}, {}
            if self.compact:  # a compact copy is a whole crossbar: lanes cost no cells
                most = {name: (k, v) for name, opts in alternatives.items() for tag, k, v in opts if tag[0] == 0}
                infos = [most[i.name][1] if i.name in most else i for i in infos]
                lanes = {name: k for name, (k, _) in most.items()}
            copies, goal_ns = greedy_copies(infos, cap, budget)
            facts = {"status": "GREEDY (water-filling)"}
        else:
            own = {name: [o for o in opts if o[0][0] == 0] for name, opts in alternatives.items()}
            least = _digital_keeps_up(module) if self.compact and self.objective == "throughput" else None
            try:  # the partition's layouts first: more, smaller blocks pack worse
                copies, goal_ns, facts = solve_copies(module, infos, budget, self.objective, fill, self.time_limit,
                                                      alternatives=own, least_cells=least,
                                                      whole_crossbars=self.compact)
            except Infeasible:
                if own == alternatives:
                    raise
                goal_ns, facts = math.inf, {}
            # the partition's layouts leave the packer little room
            tight = facts.get("cells", 0) > TIGHT * budget * module.target.cells_per_xbar
            # other layouts where they are needed or save much (the relaxation says whether
            # they can)
            if own != alternatives and (goal_ns == math.inf or relaxed is None
                                        or relaxed < goal_ns * (1 - OTHER_LAYOUT_GAIN) or tight):
                try:
                    other = solve_copies(module, infos, budget, self.objective, fill, self.time_limit,
                                         alternatives=alternatives, least_cells=least, whole_crossbars=self.compact)
                except Infeasible:
                    if goal_ns == math.inf:
                        raise
                else:
                    # much faster; or as fast with fewer cells where room is tight
                    if other[1] < goal_ns * (1 - OTHER_LAYOUT_GAIN) or \
                            (tight and other[1] <= goal_ns and other[2].get("cells", 0) < facts["cells"]):
                        copies, goal_ns, facts = other
            chosen = facts.pop("choice", {})
            by_tag = {(name, tag): v for name, opts in alternatives.items() for tag, _, v in opts}
            infos = [by_tag[i.name, chosen[i.name]] if i.name in chosen else i for i in infos]
            lanes = {name: k for name, (_, k) in chosen.items() if k > 1}
            layouts = {name: plan_ops(name, block_sets[name][v]) for name, (v, _) in chosen.items() if v}
            if layouts:
                facts["status"] += f"; {len(layouts)} grouped layer(s) in another layout"
            module = with_layouts(module, layouts)
        module = with_lanes(module, lanes)
        if layouts:
            infos = layer_infos(module, whole_crossbars=self.compact)
        if self.objective == "throughput":
            copies, goal_ns, facts = _no_faster_than_the_floor(module, infos, copies, goal_ns, facts, self.compact)
        out = with_compact_copies(module, copies) if self.compact else with_copies(module, copies)
        attrs = dict(budget=budget, duplicate_objective=self.objective, duplicate_status=facts["status"],
                     period_target_ns=goal_ns if self.objective == "throughput" else 0.0)
        if relaxed is not None:
            attrs["period_bound_ns"] = relaxed
        return out.with_ops(out.ops, **attrs)
