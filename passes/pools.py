"""Running the duplicate and pack passes on a chip with several crossbar pools.

Each pool is mapped on its own: the pass runs on the module as the pool's crossbars see it
(the target narrowed to that pool, only that pool's blocks, its share of the crossbar
budget), and the pools' results are merged, every placement moved to its pool's crossbar
indices. Copies are therefore balanced within each pool, not traded between pools; the
period is the slowest pool's.

Budget: every crossbar of every pool on the chip by default; an explicit budget is shared
in proportion to the pools' crossbars on the chip among the pools that hold layers, each
getting at least the crossbars its one-copy cells need.
"""

from __future__ import annotations

import math
from collections import defaultdict

from cimc import facts
from cimc.ir import Module, Op
from cimc.mapping import block_footprint, block_pool


def pool_budgets(module: Module, total: int | None) -> dict[int, int]:
    """Crossbars each pool that holds blocks may use."""
    t = module.target
    cells: dict[int, int] = defaultdict(int)
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            cells[block_pool(t, op)] += block_footprint(t, op).cells
    split = facts.pool_budgets(module)
    if split:  # chosen by an earlier pass (duplicate): pack keeps them
        if set(split) >= set(cells) and (not total or sum(split[p] for p in cells) <= total):
            return {p: split[p] for p in cells}
    caps = {p: t.pool_list[p][2] * t.tiles for p in cells}
    if not total or total >= sum(caps.values()):
        return caps
    need = {p: math.ceil(c / (t.pool_list[p][0] * t.pool_list[p][1])) for p, c in cells.items()}
    share = {p: max(need[p], total * caps[p] // sum(caps.values())) for p in caps}
    return share


def sub_module(module: Module, pool: int, budget: int) -> Module:
    """The module as pool `pool` sees it: its target, its blocks (pool attribute dropped) and
    their placements (crossbar indices of the pool), its budget."""
    t = module.target
    offset = t.pool_offset(pool)
    keep = {op.result for op in module.ops if op.kind == "map.block" and block_pool(t, op) == pool}
    ops = []
    for op in module.ops:
        if op.kind == "map.block":
            if op.result in keep:
                ops.append(op.with_attrs(pool=None))
        elif op.kind == "map.place":
            if op.operands[0] in keep:
                ops.append(op.with_attrs(xbar=op["xbar"] - offset))
        elif op.namespace not in ("cost", "sched"):
            ops.append(op)
    return module.with_target(t.pool(pool)).with_ops(ops, budget=budget)


def merge(module: Module, results: dict[int, Module]) -> Module:
    """The original module with every pool's map ops (pool attributes and crossbar indices
    restored) after their layers, and the passes' attributes combined: counts added,
    times the slowest pool's, texts per pool."""
    t = module.target
    maps: dict[str, list[Op]] = defaultdict(list)
    places: dict[str, Op] = {}
    for p, res in results.items():
        offset = t.pool_offset(p)
        for op in res.ops:
            if op.kind == "map.block":
                maps[op.operands[0]].append(op.with_attrs(pool=p))
            elif op.kind == "map.place":
                places[op.operands[0]] = op.with_attrs(xbar=op["xbar"] + offset)
    # weight layers as the passes left them (compact copies are an attribute of the layer)
    owner = {b.operands[0]: b["pool"] for bs in maps.values() for b in bs}
    layers = {op.result: op for p, res in results.items() for op in res.ops
              if op.namespace == "nn" and owner.get(op.result) == p}
    out: list[Op] = []
    for op in module.ops:
        if op.namespace in ("map", "cost", "sched"):
            continue
        out.append(layers.get(op.result, op))
        for b in maps.get(op.result, []):
            out.append(b)
            if b.result in places:
                out.append(places[b.result])
    return module.with_ops(out, **combined_facts(module, results, "pool"))


def combined_facts(module: Module, results: dict[int, Module], label: str, skip: tuple = ()) -> dict:
    """The facts of passes run on parts of a module (pools, chips), combined: counts added,
    times the slowest part's, texts per part where they differ; facts no part changed (the
    budget always counts) and `skip` are left out."""
    before = dict(module.attrs)
    attrs: dict = {}
    for key in sorted({k for res in results.values() for k, _ in res.attrs} - set(skip)):
        values = {p: dict(res.attrs)[key] for p, res in results.items() if key in dict(res.attrs)}
        if all(before.get(key) == v for v in values.values()) and key != "budget":
            continue
        vs = list(values.values())
        if all(isinstance(v, bool) for v in vs):
            attrs[key] = all(vs)
        elif all(isinstance(v, int) for v in vs):  # counts: crossbars, budgets, bounds
            attrs[key] = sum(vs)
        elif all(isinstance(v, (int, float)) for v in vs):  # times: the slowest part's
            attrs[key] = float(max(vs))
        elif len(set(map(str, vs))) == 1:
            attrs[key] = vs[0]
        else:
            attrs[key] = "; ".join(f"{label} {p}: {v}" for p, v in values.items())
    return attrs


def run_per_pool(pass_, module: Module, total_budget: int | None) -> Module:
    budgets = pool_budgets(module, total_budget)
    results = {p: pass_.run(sub_module(module, p, b)) for p, b in sorted(budgets.items())}
    merged = merge(module, results)
    return merged.with_ops(merged.ops, pool_budgets=facts.pool_budgets_text(budgets))
