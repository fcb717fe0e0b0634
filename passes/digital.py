"""Digital work over more tiles: `map.digital(%op) {tiles = [...]}` (written by `pack`).

A digital op runs on the digital units of the tiles holding the data it reads
(`cimc.cost.digital_tiles`); where those are slower than the busiest crossbar, giving it
more tiles' units shortens the period at the price of moving its data over the network.
"""

from __future__ import annotations

from collections import defaultdict

from cimc.cost import (
    digital_tiles,
    evaluate,
    home_tiles,
    mapping_loads,
    router_hops,
    tiles_in_use,
)
from cimc.ir import Module, Op
from cimc.ops import DIGITAL_KINDS

EPS = 1e-6  # as pack


def spread_digital(module: Module) -> Module:
    """Digital ops whose tiles (those holding the data they read) take longer than the
    busiest crossbar may get more tiles' digital units (`map.digital`). For a goal period
    between the crossbars' and the digital units' (a few, geometrically), the heaviest ops
    first each go onto the fewest tiles that keep every tile's digital work within the
    goal, adding the nearest tiles in use (fewest router hops from where the data are),
    then the least loaded. Their inputs and outputs then cross the network, which the cost
    model charges: the goal whose mapping the cost model gives the best period (then
    latency) is kept, and none where spreading does not help."""
    t = module.target
    loads = mapping_loads(module)
    in_use = tiles_in_use(module, loads)
    tiles = digital_tiles(module, loads.blocks, loads.placed, in_use)
    home = home_tiles(module, loads.blocks, loads.placed)
    xbar_period = max(loads.xbar_load.values(), default=0.0)
    ops = [(n, op) for n, op in enumerate(module.ops) if op.kind in DIGITAL_KINDS and op.get("ops")]
    rate = t.digital_ops_per_ns
    base: dict[int, float] = defaultdict(float)
    for _, op in ops:
        for tile in tiles[op.result]:
            base[tile] += op["ops"] / (rate * len(tiles[op.result]))
    digital_period = max(base.values(), default=0.0)
    if xbar_period <= 0 or digital_period <= xbar_period * (1 + EPS):
        return module

    def spread_for(goal: float) -> dict[str, tuple]:
        load = dict(base)
        spread = {}
        for _, op in sorted(ops, key=lambda x: (-x[1]["ops"], x[0])):
            have = list(tiles[op.result])
            if max(load.get(x, 0.0) for x in have) <= goal * (1 + EPS):
                continue
            for x in have:
                load[x] -= op["ops"] / (rate * len(have))
            src = home.get(op.operands[0], have[0]) if op.operands else have[0]
            others = sorted((x for x in in_use if x not in have),
                            key=lambda x: (router_hops(t, src, x), load.get(x, 0.0), x))
            k = len(have)
            while True:
                chosen = have + others[:k - len(have)]
                share = op["ops"] / (rate * len(chosen))
                if k >= len(in_use) or max(load.get(x, 0.0) + share for x in chosen) <= goal * (1 + EPS):
                    break
                k = min(len(in_use), k + max(1, k // 2))
            for x in chosen:
                load[x] = load.get(x, 0.0) + share
            if len(chosen) > len(have):
                spread[op.result] = tuple(sorted(chosen))
        return spread

    def score(m: Module) -> tuple:
        r = evaluate(m, bounds=False)
        return (round(r.period_ns, 6), round(r.latency_ns, 6))

    best = (score(module), module)
    ratio = digital_period / xbar_period
    for step in range(4):  # goals from the crossbars' period up towards the digital units'
        spread = spread_for(xbar_period * ratio ** (step / 4))
        if not spread:
            continue
        out = []
        for op in module.ops:
            out.append(op)
            if op.result in spread:
                out.append(Op.make("map.digital", None, [op.result], tiles=spread[op.result]))
        wide = module.with_ops(out)
        got = score(wide)
        if got < best[0]:
            best = (got, wide)
    return best[1]

