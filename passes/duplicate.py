"""duplicate: choose how many copies of each weight layer to make, with CP-SAT.

Copies split a layer's MVMs, so its blocks' loads (MVMs x MVM time) shrink; they cost
crossbar cells. Within a budget of N crossbars of C cells:

- objective=throughput: minimise the period P (the busiest crossbar's load per inference)
  subject to: every block's load <= P; all copies' cells <= fill x N x C; the total load
  (fixed by the partition, up to rounding) <= N x P; blocks too large to share a crossbar
  with each other (over half its rows and half its columns) <= N;
- objective=latency: minimise the longest path through the graph, a weight layer taking
  ceil(MVMs / copies) x its MVM time, under the same cell and large-block limits.

Copy choices are enumerated exactly (only the copy counts where ceil(MVMs / copies)
changes), so the model is linear and CP-SAT proves optimality on typical networks within
its deterministic time limit; the status says whether it did. A second solve keeps the
optimum and uses the fewest cells, which leaves the packer room. The result is recorded in
module attributes (`budget`, `period_target_ns`, `duplicate_*`) for `pack`.

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

from cimc.errors import Infeasible, PipelineError
from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, block_footprint, require_blocks, splittable_big_block

TIME_UNITS_PER_NS = 100  # CP-SAT works in integers: 0.01 ns


@dataclass(frozen=True)
class LayerInfo:
    name: str
    mvms: int
    mvm_ns: float  # the slowest block's MVM time
    sum_mvm_ns: float  # all blocks of one copy
    cells: int  # footprint cells of one copy
    big_blocks: int  # blocks over half a crossbar in both directions
    blocks: tuple


def layer_infos(module: Module, whole_crossbars: bool = False) -> list[LayerInfo]:
    """Per weight layer with blocks: its copy-0 blocks' figures. whole_crossbars: every block
    counts as a full crossbar of cells (mappings that will not be packed)."""
    from cimc.cost import block_mvm_ns

    t = module.target
    by_layer: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            by_layer.setdefault(op.operands[0], []).append(op)
    infos = []
    for op in module.ops:
        if op.kind in WEIGHT_KINDS and op.result in by_layer:
            bs = by_layer[op.result]
            fps = [block_footprint(t, b) for b in bs]
            times = [block_mvm_ns(t, b) for b in bs]
            # blocks too big to share a crossbar with each other (pack may halve light ones)
            big = sum(1 for f, b in zip(fps, bs) if 2 * f.rows > t.xbar_rows and 2 * f.cols > t.xbar_cols
                      and not splittable_big_block(t, op["mvms"], b))
            cells = len(bs) * t.cells_per_xbar if whole_crossbars else sum(f.cells for f in fps)
            infos.append(LayerInfo(op.result, op["mvms"], max(times), sum(times), cells, 0 if whole_crossbars else big,
                                   tuple(bs)))
    return infos


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


def solve_copies(module: Module, infos: list[LayerInfo], budget: int, objective: str, fill: float,
                 time_limit: float, bound_only: bool = False, check_only: bool = False,
                 lane_infos: dict | None = None) -> tuple[dict[str, int], float, dict]:
    """Copies per layer, the period (or latency) they reach in ns, and solver facts.
    lane_infos: {layer: (lanes, its LayerInfo with that many lanes)}: each such layer may
    also take copies of that many lanes; the lanes chosen are in facts["lanes"]."""
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver

    t = module.target
    cap_cells = int(fill * budget * t.cells_per_xbar)
    base_cells = sum(i.cells for i in infos)
    if base_cells > budget * t.cells_per_xbar or sum(i.big_blocks for i in infos) > budget:
        big = sum(i.big_blocks for i in infos)
        raise Infeasible(f"model '{module.name}': one copy of every layer needs {base_cells:,} cells "
                         f"({math.ceil(base_cells / t.cells_per_xbar)} crossbars at best)"
                         + (f" and {big} crossbars to itself for blocks over half a crossbar" if big else "")
                         + f", more than a budget of {budget} crossbars; raise the budget.")
    if check_only:  # the budget holds one copy of everything
        return {}, 0.0, {}
    if base_cells > cap_cells:  # no room for any copy: one each, and pack decides whether that fits
        period = max(max(i.mvms * i.mvm_ns for i in infos), sum(i.mvms * i.sum_mvm_ns for i in infos) / budget)
        return {i.name: 1 for i in infos}, period, {"status": "ONE_COPY (no room for copies)", "optimal": True,
                                                    "objective_ns": period, "bound_ns": period}
    units = lambda ns: int(math.ceil(ns * TIME_UNITS_PER_NS - 1e-6))  # noqa: E731
    m = cp_model.CpModel()
    choice: dict[str, list] = {}
    cells_terms, load_terms, big_terms = [], [], []
    # a start: water-filling's copies (feasible for the cell and big-block limits; one copy
    # each when the objective is latency)
    start = greedy_copies(infos, cap_cells, budget)[0] if objective == "throughput" else {}
    layer_time = {}
    for i in infos:
        # (lanes, info): copies of one lane, and of the layer's most lanes where it has them;
        # a copy of k lanes doing q MVMs takes ceil(q / k) reads of k MVMs each
        variants = [(1, i)] + ([lane_infos[i.name]] if lane_infos and i.name in lane_infos else [])
        choice[i.name] = []
        terms = []
        for k, v in variants:
            max_c = min(i.mvms, (cap_cells - base_cells) // max(v.cells, 1) + 1)
            for c, q in copy_candidates(i.mvms, max_c):
                reads = -(-q // k)
                x = m.new_bool_var(f"{i.name}:{c}x{k}")
                m.add_hint(x, k == 1 and c == start.get(i.name, 1))
                choice[i.name].append(((c, q, k), x))
                cells_terms.append(c * v.cells * x)
                load_terms.append(units(c * reads * k * v.sum_mvm_ns) * x)
                terms.append(units(reads * k * v.mvm_ns) * x)
                if v.big_blocks:
                    big_terms.append(c * v.big_blocks * x)
        m.add_exactly_one([x for _, x in choice[i.name]])
        layer_time[i.name] = sum(terms)
    m.add(sum(cells_terms) <= cap_cells)
    if big_terms:
        m.add(sum(big_terms) <= budget)
    horizon = sum(units(i.mvms * i.sum_mvm_ns) for i in infos) + 1  # all work on one crossbar
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
    if status == cp_model.UNKNOWN and objective == "throughput" and not bound_only:
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
    # second solve: the same objective value with the fewest cells
    m.add(goal <= int(round(best)))
    m.clear_objective()
    m.minimize(sum(cells_terms))
    for cands_xs in choice.values():
        for _, x in cands_xs:
            m.add_hint(x, solver.boolean_value(x))
    second = deterministic_solver(time_limit, presolve=False)
    status2 = second.solve(m)
    final = second if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE) else solver
    picked = {name: next(ck for ck, x in cx if final.boolean_value(x)) for name, cx in choice.items()}
    copies = {name: c for name, (c, q, k) in picked.items()}
    if lane_infos:
        facts["lanes"] = {name: k for name, (c, q, k) in picked.items() if k > 1}
    return copies, best / TIME_UNITS_PER_NS, facts


def greedy_copies(infos: list[LayerInfo], cap_cells: int, budget: int) -> tuple[dict[str, int], float]:
    """Copies by water-filling: give the slowest layer its next useful copy count while the
    cells and the crossbars for big blocks allow; stop when the slowest cannot get one."""
    import heapq

    copies = {i.name: 1 for i in infos}
    cells = sum(i.cells for i in infos)
    big = sum(i.big_blocks for i in infos)
    heap = [(-i.mvms * i.mvm_ns, n) for n, i in enumerate(infos)]
    heapq.heapify(heap)
    while heap:
        neg, n = heap[0]
        i = infos[n]
        c = copies[i.name]
        q = -(-i.mvms // c)
        if q == 1:
            break
        nxt = -(-i.mvms // (q - 1))  # the fewest copies that take one MVM off the slowest copy
        extra = nxt - c
        if cells + extra * i.cells > cap_cells or big + extra * i.big_blocks > budget:
            break
        cells += extra * i.cells
        big += extra * i.big_blocks
        copies[i.name] = nxt
        heapq.heapreplace(heap, (-(-(-i.mvms // nxt)) * i.mvm_ns, n))
    return copies, -heap[0][0] if heap else 0.0


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
        if op.kind == "map.place" or op.namespace in ("cost", "sched") or (op.kind == "map.block" and op["copy"]):
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


def most_lanes(module: Module) -> dict[str, int]:
    """Per weight layer whose every block can hold 2 or more replicas on a crossbar's
    diagonal: the most all of them can (at most its MVMs)."""
    from cimc.mapping import max_lanes

    t = module.target
    most: dict[str, int] = {}
    defs = module.by_name()
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            layer = op.operands[0]
            k = min(max_lanes(t, op), defs[layer]["mvms"])
            most[layer] = min(most.get(layer, k), k)
    return {name: k for name, k in most.items() if k > 1}


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
        if op.kind == "map.place" or op.namespace in ("cost", "sched"):
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

    def __post_init__(self):
        if self.objective not in ("throughput", "latency"):
            raise PipelineError(f"duplicate: objective must be throughput or latency, got '{self.objective}'.")
        if self.method not in ("cp-sat", "greedy") or (self.method == "greedy" and self.objective != "throughput"):
            raise PipelineError(f"duplicate: method must be cp-sat, or greedy with objective=throughput; got "
                                f"'{self.method}' with objective={self.objective}.")
        if self.budget < 0 or not 0 < self.fill <= 1 or self.time_limit <= 0:
            raise PipelineError("duplicate: budget must be >= 0, fill in (0, 1], time-limit > 0.")

    def run(self, module: Module) -> Module:
        budget = self.budget or int(module.get("budget", 0)) or module.target.xbars
        require_blocks(module, "duplicate")
        if module.target.pools:
            from dataclasses import replace

            from cimc.passes.pools import run_per_pool

            return run_per_pool(replace(self, budget=0), module, budget)
        module = with_lanes(module, {})  # lanes are chosen afresh
        infos = layer_infos(module, whole_crossbars=self.compact)
        fill = 1.0 if self.compact else self.fill  # no packing losses to leave room for
        most = most_lanes(module) if self.lanes else {}
        lane_infos = {}
        if most:
            laned = {i.name: i for i in layer_infos(with_lanes(module, most), whole_crossbars=self.compact)}
            lane_infos = {name: (k, laned[name]) for name, k in most.items()}
        if self.method == "greedy":
            cap = int(fill * budget * module.target.cells_per_xbar)
            solve_copies(module, infos, budget, self.objective, fill, self.time_limit, check_only=True)
            if self.compact and lane_infos:  # a compact copy is a whole crossbar: lanes cost no cells
                infos = [lane_infos[i.name][1] if i.name in lane_infos else i for i in infos]
                lanes = dict(most)
            else:
                lanes = {}
            copies, goal_ns = greedy_copies(infos, cap, budget)
            facts = {"status": "GREEDY (water-filling)"}
        else:
            copies, goal_ns, facts = solve_copies(module, infos, budget, self.objective, fill, self.time_limit,
                                                  lane_infos=lane_infos)
            lanes = facts.pop("lanes", {})
            infos = [lane_infos[i.name][1] if i.name in lanes else i for i in infos]
        module = with_lanes(module, lanes)
        if self.objective == "throughput":
            copies, goal_ns, facts = _no_faster_than_the_floor(module, infos, copies, goal_ns, facts, self.compact)
        out = with_compact_copies(module, copies) if self.compact else with_copies(module, copies)
        attrs = dict(budget=budget, duplicate_objective=self.objective, duplicate_status=facts["status"],
                     period_target_ns=goal_ns if self.objective == "throughput" else 0.0)
        if self.objective == "throughput" and self.bound and not self.compact:
            # with every cell of the budget allowed, the model relaxes every real mapping of
            # this partition (block loads, cells, total load, large blocks), so its proven
            # bound is a lower bound on the period
            _, _, relaxed = solve_copies(module, layer_infos(with_lanes(module, {})), budget, "throughput", 1.0,
                                         self.time_limit, bound_only=True, lane_infos=lane_infos)
            attrs["period_bound_ns"] = relaxed["bound_ns"]
        return out.with_ops(out.ops, **attrs)
