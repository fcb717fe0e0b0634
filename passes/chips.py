"""Mapping a model over several chips, or in rounds on fewer chips (weight reloading).

A model whose one copy of every weight layer does not fit one chip's crossbars is split into
stages, contiguous in the module's op order (a topological order, so every tensor flows from
an earlier stage to a later one, branches included), one chip of the target's kind each. The
split is written as a `chip` attribute on every network op (its stage), and the facts say how
many physical chips run the stages (`chips`) and how many inferences a round runs (`batch`).

- The fewest stages: stages filled in op order, each holding at most `fill` of a chip's cells
  and at most one chip of crossbars for blocks that need one alone (duplicate's own test of a
  budget), so that one copy of each stage fits its chip.
- More chips than that (the fact `chips` = N): N stages (at most one per weight layer) whose
  one-copy read work is balanced (the largest stage's work is bisected over the greedy
  contiguous split), so that duplicating within each chip balances the pipeline.
- Fewer chips than stages (`chips` below the fewest stages, or `chips_plan = "reload"`): the
  fewest stages, run in rounds of `chips` stages each: a round programs its chips and runs a
  batch of `batch` inferences through them; the cost model charges the writes. With
  `chips_plan = "spread"` that is refused instead (`Infeasible`): the search's candidates.

duplicate and pack then run on each stage as its chip sees it (`sub_module`: the stage's ops,
its inputs from other stages as `nn.input`, a budget of one chip), and the results are merged
(`merge`): every placement moves to its chip's tiles (tile + chip x tiles), the facts combine
as the pools' do (`pools.combined_facts`: the slowest stage's times, the counts summed). The
period is then the slowest chip's or link's, which the cost model finds from the merged
mapping.
"""

from __future__ import annotations

import math
from collections import defaultdict

from cimc import facts
from cimc.errors import Infeasible
from cimc.ir import Module, Op
from cimc.passes.pools import combined_facts

PLAN_FACTS = ("chips", "chips_plan", "chip_budgets", "batch")  # the whole mapping's, not a chip's


def staged(module: Module) -> bool:
    """Whether the module has been split into stages."""
    return any(op.get("chip") is not None for op in module.ops if op.namespace == "nn")


def stages_of(module: Module) -> int:
    return 1 + max((op.get("chip") or 0 for op in module.ops if op.namespace == "nn" or op.kind == "map.block"),
                   default=0)


def _layer_needs(module: Module, infos) -> list[tuple[int, int, int, float]]:
    """(op index, cells, big blocks, read work in ns) of each weight layer, in op order."""
    index = {op.result: n for n, op in enumerate(module.ops)}
    return sorted((index[i.name], i.cells, i.big_blocks, i.mvms * i.sum_mvm_ns) for i in infos)


def _greedy(needs, cap_cells: int, cap_big: int, work_cap: float | None = None) -> list[int]:
    """Cut points (indices into `needs` where a stage starts) of the greedy contiguous split;
    a layer larger than a chip (`parts` > 1) is a run of stages of its own."""
    starts, cells, big, work = [0], 0, 0, 0.0
    for k, (_, c, b, w, parts) in enumerate(needs):
        over = parts > 1 or cells + c > cap_cells or big + b > cap_big or \
            (work_cap is not None and work + w > work_cap)
        if over and k > starts[-1]:
            starts.append(k)
            cells, big, work = 0, 0, 0.0
        if parts > 1 and k + 1 < len(needs):  # the next layer starts afresh after it
            starts.append(k + 1)
            continue
        cells, big, work = cells + c, big + b, work + w
    return sorted(set(starts))


def plan_stages(module: Module, infos, fill: float, chips: int, plan: str) -> tuple[list[int], list[int], int]:
    """The first stage of each weight layer (in `infos`' op order), the stages each takes (more
    than one for a layer larger than a chip: its blocks, one per crossbar, over that many
    chips) and the physical chips."""
    t = module.target
    cap_cells, cap_big = int(fill * t.xbars * t.cells_per_xbar), t.xbars
    needs = []
    for pos, c, b, w in _layer_needs(module, infos):
        blocks = sum(1 for op in module.ops if op.kind == "map.block" and op.operands[0] == module.ops[pos].result
                     and op["copy"] == 0) if c > cap_cells or b > cap_big else 0
        needs.append((pos, c, b, w, -(-blocks // t.xbars) if blocks else 1))
    starts = _greedy(needs, cap_cells, cap_big)
    fewest = len(starts) + sum(n[4] - 1 for n in needs)
    if plan != "reload" and chips > fewest and all(n[4] == 1 for n in needs):
        # spread: balance the read work over `chips` stages
        want = min(chips, len(needs))
        lo, hi = max(n[3] for n in needs), sum(n[3] for n in needs)
        for _ in range(60):  # bisect the largest stage's work
            mid = (lo + hi) / 2
            if len(_greedy(needs, cap_cells, cap_big, mid)) <= want:
                hi = mid
            else:
                lo = mid
        starts = _greedy(needs, cap_cells, cap_big, hi)
    first, parts, s = [0] * len(needs), [1] * len(needs), -1
    for k, n in enumerate(needs):
        if k in starts:
            s += parts[k - 1] if k else 1
        first[k], parts[k] = s, n[4]
    stages = (first[-1] + parts[-1]) if needs else 1
    physical = stages if chips == 0 else min(chips, stages)
    return first, parts, physical


def with_stages(module: Module, infos, fill: float) -> Module:
    """The module split into stages (`chip` on every network op, and on the blocks of a layer
    larger than a chip), or unchanged when one chip holds it and no more chips are asked for."""
    chips, plan = facts.get(module, "chips"), facts.get(module, "chips_plan")
    first, parts, physical = plan_stages(module, infos, fill, chips, plan)
    stages = max((f + p for f, p in zip(first, parts)), default=1)
    if plan == "spread" and chips and stages > chips:
        t = module.target
        raise Infeasible(f"model '{module.name}': one copy of every layer needs {stages} chips of {t.name} "
                         f"({t.xbars} crossbars each), more than the {chips} allowed; allow more chips, or "
                         "reloading the weights in rounds.")
    if stages == 1:
        return module
    if module.target.pools:
        raise Infeasible(f"model '{module.name}' needs more than one chip of {module.target.name}, a target with "
                         "several crossbar pools; cimc splits models over chips of one crossbar size only. Use the "
                         "'baseline' pipeline, or a target with one crossbar size.")
    t = module.target
    names = [module.ops[pos].result for pos, *_ in _layer_needs(module, infos)]
    by_layer = dict(zip(names, first))
    split = {name: (f, p) for name, f, p in zip(names, first, parts) if p > 1}
    out, current, placed_blocks = [], 0, {}
    for op in module.ops:
        if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output"):
            current = by_layer.get(op.result, current)
            if op.result in split:
                current = split[op.result][0] + split[op.result][1] - 1  # what follows is on its last chip
            out.append(op.with_attrs(chip=by_layer.get(op.result, current)))
        elif op.kind == "map.block" and op.operands[0] in split:
            n = placed_blocks.get(op.operands[0], 0)
            placed_blocks[op.operands[0]] = n + 1
            out.append(op.with_attrs(chip=split[op.operands[0]][0] + n // t.xbars))
        else:
            out.append(op)
    attrs: dict = {"chips": physical}
    if physical < stages:  # reloaded: copies are written every round too
        budgets = round_budgets(module, infos, dict(zip(names, first)), set(split))
        if budgets:
            attrs["chip_budgets"] = facts.pool_budgets_text(budgets)
    return module.with_ops(out, **attrs)


def round_budgets(module: Module, infos, stage_of: dict, split: set) -> dict[int, int]:
    """Crossbars each stage may fill with copies when the stages are reloaded in rounds. A
    round writes every crossbar it programs (over the off-chip link: w ns each) and runs the
    batch of B inferences, about W / X per inference for a stage of read work W spread over
    X crossbars: B W / X + w X is least at X = sqrt(B W / w). Between one copy's blocks (one
    crossbar each, which always packs) and the chip's crossbars."""
    t = module.target
    if not t.offchip_bytes_per_ns:
        return {}
    w = t.cells_per_xbar * t.cell_bits / 8 / t.offchip_bytes_per_ns
    batch = facts.get(module, "batch")
    work: dict[int, float] = defaultdict(float)
    blocks: dict[int, int] = defaultdict(int)
    for i in infos:
        if i.name in split:
            continue
        s = stage_of[i.name]
        work[s] += i.mvms * i.sum_mvm_ns
        blocks[s] += len(i.blocks)
    out = {}
    for s, wk in work.items():
        need = blocks[s]  # one copy, a block per crossbar: packs whatever the blocks' shapes
        best = math.ceil(math.sqrt(batch * wk / w))
        out[s] = min(t.xbars, max(need, best, 1))
    return out


def _block_chip(op: Op, defs: dict) -> int:
    chip = op.get("chip")
    return chip if chip is not None else defs[op.operands[0]].get("chip") or 0


def sub_module(module: Module, chip: int, budget: int) -> Module:
    """The module as chip `chip` sees it: its ops (their `chip` dropped), what they read from
    other chips as inputs, their map ops (placements on the chip's own tiles), one chip's budget.
    A layer larger than a chip is on each of its chips with that chip's blocks."""
    t = module.target
    defs = module.by_name()
    blocks = [op for op in module.ops if op.kind == "map.block" and _block_chip(op, defs) == chip]
    mine = {op.result for op in module.ops if op.namespace == "nn" and op.get("chip") == chip}
    mine |= {b.operands[0] for b in blocks}
    keep_blocks = {b.result for b in blocks}
    ops: list[Op] = []
    seen: set[str] = set()
    for op in module.ops:
        if op.namespace == "nn":
            if op.result not in mine:
                continue
            for o in op.operands:
                if o not in mine and o not in seen and o in defs:
                    seen.add(o)
                    src = defs[o]
                    ops.append(src if src.kind == "nn.input" else
                               Op.make("nn.input", o, shape=tuple(src["shape"]), name=o))
            ops.append(op.with_attrs(chip=None))
        elif op.kind == "map.block":
            if op.result in keep_blocks:
                ops.append(op)
        elif op.kind == "map.place":
            if op.operands[0] in keep_blocks:
                ops.append(op.with_attrs(tile=op["tile"] - chip * t.tiles))
        elif op.kind == "map.digital" and op.operands[0] in mine:
            ops.append(op.with_attrs(tiles=tuple(x - chip * t.tiles for x in op["tiles"])))
    keep = {k: v for k, v in module.attrs if k not in PLAN_FACTS}
    return Module(module.name, t, tuple(ops), tuple(sorted({**keep, "budget": budget}.items())))


def part_chips(module: Module) -> set[int]:
    """Chips holding a part of a layer larger than a chip (one copy, a block per crossbar)."""
    return {op["chip"] for op in module.ops if op.kind == "map.block" and op.get("chip") is not None}


def merge(module: Module, results: dict[int, Module]) -> Module:
    """The module with every chip's ops as its pass left them (`chip` restored, placements on
    the chip's tiles), in the module's op order; facts: counts summed, times the slowest
    chip's, texts per chip where they differ."""
    t = module.target
    maps: dict[str, list[Op]] = defaultdict(list)
    layers: dict[str, Op] = {}
    for chip, res in results.items():
        owner = {op.result: op.operands[0] for op in res.ops if op.kind == "map.block"}
        for op in res.ops:
            if op.namespace == "nn":
                if op.kind != "nn.input":  # the chip's inputs from other chips are not the network's
                    layers.setdefault(op.result, op.with_attrs(chip=chip))
            elif op.kind == "map.block":
                maps[op.operands[0]].append(op)
            elif op.kind == "map.place":
                maps[owner[op.operands[0]]].append(op.with_attrs(tile=op["tile"] + chip * t.tiles))
            elif op.kind == "map.digital":
                maps[op.operands[0]].append(op.with_attrs(tiles=tuple(x + chip * t.tiles for x in op["tiles"])))
    out: list[Op] = []
    for op in module.ops:
        if op.namespace != "nn":
            continue
        out.append(layers.get(op.result, op))
        blocks = [b for b in maps.get(op.result, []) if b.kind == "map.block"]
        places = {p.operands[0]: p for p in maps.get(op.result, []) if p.kind == "map.place"}
        for b in blocks:
            out.append(b)
            if b.result in places:
                out.append(places[b.result])
        out.extend(d for d in maps.get(op.result, []) if d.kind == "map.digital")
    return module.with_ops(out, **combined_facts(module, results, "chip", skip=PLAN_FACTS))


def _in_order(sub: Module) -> Module:
    """A chip's part of a layer larger than a chip: a block per crossbar, in order."""
    t, out, i = sub.target, [], 0
    for op in sub.ops:
        if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched"):
            continue
        out.append(op)
        if op.kind == "map.block":
            out.append(Op.make("map.place", None, [op.result], tile=i // t.xbars_per_tile, xbar=i % t.xbars_per_tile,
                               at=(0, 0)))
            i += 1
    return sub.with_ops(out)


def _chip_budgets(module: Module) -> dict[int, int]:
    text = facts.get(module, "chip_budgets")
    return {int(c): int(b) for c, b in (kv.split(":") for kv in text.split(","))} if text else {}


def run_per_chip(pass_, module: Module) -> Module:
    """`pass_` run on every stage's chip, the results merged. A chip holding part of a layer
    larger than a chip keeps one copy with a block per crossbar: duplicate leaves it, pack and
    place put its blocks in order."""
    n, parts = stages_of(module), part_chips(module)
    budgets = _chip_budgets(module)
    results = {}
    for c in range(n):
        sub = sub_module(module, c, budgets.get(c, module.target.xbars))
        if c in parts:
            results[c] = sub if pass_.name == "duplicate" else _in_order(sub)
        else:
            results[c] = pass_.run(sub)
    return merge(module, results)
