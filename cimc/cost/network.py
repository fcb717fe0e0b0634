"""The on-chip network: where each layer's data lives (home tiles), the byte-hops an inference
moves over the links, and the period the network sets."""

from __future__ import annotations

import math
from collections import defaultdict

from cimc.cost.loads import spread_tiles
from cimc.cost.timing import block_share
from cimc.ir import Module, Op
from cimc.mapping import (
    block_footprint,
)


def network_links(t) -> int:
    """Directed links of one chip's network: a bus is one; a mesh of routers on the
    smallest square grid (as `router_hops` lays it out) has two per pair of neighbours."""
    if t.noc == "bus":
        return 1
    routers = -(-t.tiles // t.tiles_per_router)
    width = math.isqrt(max(routers - 1, 0)) + 1
    height = -(-routers // width)
    pairs = height * (width - 1) + width * (height - 1)
    return max(1, 2 * pairs)


def network_period_ns(t, byte_hops: float, chips: int) -> float:
    """The network as a whole: one inference's byte-hops spread over every link of the chips."""
    return byte_hops / (network_links(t) * chips * t.noc_bytes_per_ns) if t.noc_bytes_per_ns else 0.0


def router_hops(t, a: int, b: int) -> int:
    """Routers a transfer from tile `a` to tile `b` of one chip passes through: none within a
    tile; on a bus, one; on a mesh of routers (each shared by `tiles_per_router` tiles, laid
    out row by row on the smallest square grid), the Manhattan distance plus one."""
    if a == b:
        return 0
    if t.noc == "bus":
        return 1
    ra, rb = (a % t.tiles) // t.tiles_per_router, (b % t.tiles) // t.tiles_per_router
    width = math.isqrt(max(-(-t.tiles // t.tiles_per_router) - 1, 0)) + 1
    return abs(ra % width - rb % width) + abs(ra // width - rb // width) + 1


def home_tiles(module: Module, blocks: dict, placed: dict) -> dict[str, int]:
    """The tile where each op's results are collected: for a weight layer the tile holding
    most of its first copy's cells; a digital op runs where its first placed operand is."""
    t = module.target
    home: dict[str, int] = {}
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        if op.result in blocks:
            cells: dict[int, int] = defaultdict(int)
            for b in blocks[op.result]:
                p = placed.get(b.result)
                if p is not None and b["copy"] == 0:
                    cells[p["tile"]] += block_footprint(t, b).cells
            if cells:
                home[op.result] = min(cells, key=lambda k: (-cells[k], k))
        else:
            for o in op.operands:
                if o in home:
                    home[op.result] = home[o]
                    break
    return home


def network_traffic(module: Module, op: Op, blocks: list, copies: int, placed: dict, home: dict,
                    data_bytes: float, defs: dict | None = None, spread: dict | None = None) -> tuple[float, float, int]:
    """(bytes that leave their tile, byte-hops, most hops) of the data op `op` receives:
    every tile holding blocks of a copy gets the input rows of those blocks (once, whatever
    the number of its crossbars that read them) for that copy's share of the MVMs, from the
    producer's home tile, and sends the (partial) results of their columns, summed within
    the tile, to the op's home tile. A digital op spread over tiles (`spread`, from
    `map.digital`) sends each of them its share of the input and takes back its share of the
    output."""
    t = module.target
    defs = module.by_name() if defs is None else defs
    moved = byte_hops = 0.0
    worst = 0
    dest = home.get(op.result)
    first = True  # a spread op's output share goes back once, with its first operand's legs
    for o in op.operands:
        src = home.get(o)
        if src is None or o not in defs:
            continue
        in_bytes = math.prod(defs[o]["shape"]) * data_bytes
        if not blocks:
            h = router_hops(t, src, dest) if dest is not None and src // t.tiles == dest // t.tiles else 0
            if h:
                moved += in_bytes
                byte_hops += in_bytes * h
                worst = max(worst, h)
            for tile in (spread or {}).get(op.result, ()):  # a share of the input out to each tile, and back
                if tile == src or tile // t.tiles != src // t.tiles:
                    continue
                share = (in_bytes + (math.prod(op["shape"]) * data_bytes if first else 0.0)) / len(spread[op.result])
                h = router_hops(t, src, tile)
                moved += share
                byte_hops += share * h
                worst = max(worst, h)
            first = False
            continue
        g, r, c, mvms = op["groups"], op["rows"], op["cols"], op["mvms"]
        out_bytes = math.prod(op["shape"]) * data_bytes
        legs = {}  # a tile receives an input slice once for all its crossbars, and adds the
        # partial sums of its blocks of one column range before sending them on
        for b in blocks:
            p = placed.get(b.result)
            if p is None:
                continue
            share = block_share(b, mvms, copies) / max(mvms, 1)
            g0, g1 = b["groups"]
            r0, r1 = b["rows"]
            c0, c1 = b["cols"]
            legs[("in", p["tile"], b["copy"], g0, g1, r0, r1)] = (
                src, p["tile"], in_bytes * (g1 - g0) * (r1 - r0) / (g * r) * share)
            out_groups = 1 if b["layout"] == "dense" else g1 - g0  # dense: its columns of the dense matrix
            legs[("out", p["tile"], b["copy"], g0, g1, c0, c1)] = (
                p["tile"], dest, out_bytes * out_groups * (c1 - c0) / (g * c) * share)
        if legs:
            for a, z, nbytes in legs.values():
                if z is None or a // t.tiles != z // t.tiles:  # between chips: see the warning
                    continue
                h = router_hops(t, a, z)
                if h:
                    moved += nbytes
                    byte_hops += nbytes * h
                    worst = max(worst, h)
        break  # a weight layer's data input is its first operand
    return moved, byte_hops, worst


def placed_network_period_ns(module: Module) -> float:
    """`network_period_ns` of a placed mapping (0 when nothing is placed)."""
    t = module.target
    if not t.noc_bytes_per_ns:
        return 0.0
    defs = module.by_name()
    placed = {op.operands[0]: op for op in module.ops if op.kind == "map.place"}
    if not placed:
        return 0.0
    blocks: dict[str, list[Op]] = defaultdict(list)
    copies: dict[str, int] = defaultdict(int)
    for op in module.ops:
        if op.kind == "map.block":
            blocks[op.operands[0]].append(op)
            copies[op.operands[0]] = max(copies[op.operands[0]], op["copy"] + 1)
    home = home_tiles(module, blocks, placed)
    spread = spread_tiles(module)
    data_bytes = t.input_bits / 8
    byte_hops = 0.0
    for op in module.ops:
        if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output"):
            byte_hops += network_traffic(module, op, blocks.get(op.result, []), copies.get(op.result, 0), placed,
                                         home, data_bytes, defs, spread)[1]
    chips = max(p["tile"] for p in placed.values()) // t.tiles + 1
    return network_period_ns(t, byte_hops, chips)
