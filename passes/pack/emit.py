"""Emission: crossbars to tiles (in order, spread, round robin; scored by the cost model),
map.place ops, map.digital spreads."""

from __future__ import annotations

import bisect
from collections import defaultdict

from cimc import facts as module_facts
from cimc.cost import evaluate
from cimc.cost.timing import digital_ops, tiles_for_digital
from cimc.ir import Module, Op
from cimc.passes.pack.items import FillPlan, items_of, with_shares


def mapping_score(module: Module) -> tuple:
    """What a tile assignment is chosen by: the period, then latency, then energy
    (latency first when duplicate's objective was latency)."""
    r = evaluate(module, bounds=False)
    if module_facts.get(module, "duplicate_objective") == "latency":
        return (round(r.latency_ns, 6), round(r.period_ns, 6), round(r.energy_nj, 6))
    return (round(r.period_ns, 6), round(r.latency_ns, 6), round(r.energy_nj, 6))


def tile_maps(options, module: Module, items, where, renumber) -> list:
    """Ways to share the crossbars out over tiles, crossbar number -> (tile, crossbar in
    it). First: in order, filling tiles. With `spread` (one pool, the chip has the tiles):
    in order over as many tiles as the digital units need to keep pace with the busiest
    crossbar, and round-robin over that many tiles and over every tile of the chip. A
    digital op runs on the tiles holding the layer it reads (`cimc.cost.digital_tiles`), so
    round-robin gives each layer's digital work more units, at the price of more traffic."""
    t = module.target
    per = t.xbars_per_tile
    used = len(renumber)
    least = -(-used // per)
    maps = [lambda idx: (idx // per, idx % per)]
    if not options.spread or used > t.xbars or t.pools:
        return maps
    digital = digital_ops(module)
    if not digital:
        return maps
    load: dict[int, float] = defaultdict(float)
    for k, it in enumerate(items):
        load[where[k][0]] += it.load_ns
    busiest = max(load.values(), default=0.0)
    need = min(t.tiles, max(least, tiles_for_digital(t, digital, busiest))) \
        if busiest > 0 else least
    if need > least:
        first = [n * used // need for n in range(need + 1)]  # first crossbar of each tile

        def spread(idx):
            tile = bisect.bisect_right(first, idx) - 1
            return tile, idx - first[tile]
        maps.append(spread)
    for tiles in sorted({need, min(t.tiles, used)}):
        if tiles > 1:
            maps.append(lambda idx, n=tiles: (idx % n, idx // n))
    return maps


def emit(options, module: Module, items, where, method, status, lower) -> Module:
    # number the crossbars in the order the text first uses them
    index = {it.op.result: k for k, it in enumerate(items)}
    renumber: dict[int, int] = {}
    for op in module.ops:
        if op.kind == "map.block":
            renumber.setdefault(where[index[op.result]][0], len(renumber))
    used = len({w[0] for w in where.values()})
    best = None
    for tile_of in tile_maps(options, module, items, where, renumber):
        place: dict[str, Op] = {}
        for k, it in enumerate(items):
            j, r, c = where[k]
            tile, xbar = tile_of(renumber[j])
            place[it.op.result] = Op.make("map.place", None, [it.op.result], tile=tile, xbar=xbar, at=(r, c))
        out = []
        for op in module.ops:
            if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched"):
                continue
            out.append(op)
            if op.kind == "map.block":
                out.append(place[op.result])
        placed = module.with_ops(out, pack_method=method, pack_status=status, pack_crossbars=used,
                                 pack_lower_bound=lower)
        score = mapping_score(placed)
        if best is None or score < best[0]:
            best = (score, placed)
    return best[1]


def placed_mapping(options, base: Module, plan: FillPlan) -> Module:
    """The module with a water-filling plan's copies, shares and places."""
    m = with_shares(base, plan.shares)
    items = items_of(m)
    where = {k: plan.where[it.op.result] for k, it in enumerate(items)}
    return emit(options, m, items, where, "", "", 0)
