"""Beyond one chip: the links between the chips of a multi-chip mapping, the rounds of a
mapping whose stages outnumber its chips (weight reloading), and the tile buffers' capacity
(what does not fit spills to off-chip memory).

Where an op runs: a placed op on its home tile's chip (tile // tiles); an unplaced one on its
`chip` attribute (the stage passes/chips.py gave it); else chip 0.

Links: the chips of a mapping form a chain in stage order, one link between neighbours, each
`link_bytes_per_ns` (ISAAC's chips talk over HyperTransport, ISCA 2016). A tensor made on chip
a and read on chip b > a crosses every link between them, once per reading chip; an op waits
for its inputs' bytes / bandwidth plus `link_latency_ns` per link crossed, and each byte costs
`link_pj_per_byte` per link. The busiest link's bytes per inference / bandwidth bounds the period.

Buffers: an op holds, in the buffers of the tiles it runs on, its output row (the rows the
schedule streams: a 4-D tensor's rows, else the last axis), which its consumers read in place,
and what it needs of its inputs beyond the row that streams in: a convolution's or pool's
further window rows (kernel height x dilation - 1), an attention product's (`nn.dot`) whole
second operand, a transpose's whole input (a reshape that keeps the elements' order streams).
Each tile's `buffer_kb` holds its ops' needs smallest first (an op over several tiles needs an
even share on each); what a tile cannot hold goes to the room left in the chip's other tiles
(busy or idle), then to a chip-wide
`global_buffer_kb` (default 0), each op's excess in proportion, and what the chip's buffers do
not hold to off-chip memory, both ways (that share of the op's buffer traffic), at
`offchip_bytes_per_ns` (one link per chip) and `offchip_pj_per_byte`. A smaller buffer or less
bandwidth therefore never makes a mapping faster.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from cimc.cost.loads import buffer_bytes
from cimc.ir import Module, Op
from cimc.mapping import block_footprint


def op_chips(module: Module, home: dict, op_tiles: dict) -> dict[str, int]:
    """The chip each network op runs on."""
    t = module.target
    out: dict[str, int] = {}
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        if op.result in home:
            out[op.result] = home[op.result] // t.tiles
        elif op.get("chip") is not None:
            out[op.result] = op["chip"]
        elif op_tiles.get(op.result):
            out[op.result] = op_tiles[op.result][0] // t.tiles
        else:
            out[op.result] = next((out[o] for o in op.operands if o in out), 0)
    return out


@dataclass
class Links:
    """What crosses the links between chips for one inference."""

    boundary_bytes: dict = field(default_factory=lambda: defaultdict(float))  # link k: chips k and k + 1
    op_ns: dict = field(default_factory=dict)  # an op's wait for its inputs from other chips
    op_pj: dict = field(default_factory=dict)
    bytes_total: float = 0.0

    def send(self, t, a: int, b: int, nbytes: float) -> tuple[float, float]:
        """`nbytes` from chip a to chip b over every link between: (its wait in ns, its pJ)."""
        hops = abs(b - a)
        for k in range(min(a, b), max(a, b)):
            self.boundary_bytes[k] += nbytes
        self.bytes_total += nbytes * hops
        wait = hops * (nbytes / t.link_bytes_per_ns + t.link_latency_ns) if t.link_bytes_per_ns else 0.0
        return wait, nbytes * hops * t.link_pj_per_byte


def chip_links(module: Module, chip_of: dict, defs: dict, physical: int, blocks: dict, placed: dict) -> Links:
    """The links' traffic; with fewer `physical` chips than stages, only between stages of one
    round (later rounds read their inputs back from off-chip memory: `rounds_cost`)."""
    t = module.target
    data_bytes = t.input_bits / 8
    links = Links()
    sent: set[tuple[str, int]] = set()  # a tensor goes to each reading chip once
    for op in module.ops:
        if op.namespace != "nn" or op.result is None or op.kind == "nn.input":
            continue
        dest = chip_of.get(op.result, 0)
        wait = pj = 0.0
        # a layer larger than a chip: its other chips get the input and send back their
        # (partial) outputs
        others = sorted({placed[b.result]["tile"] // t.tiles for b in blocks.get(op.result, ()) if b.result in placed}
                        - {dest})
        moves = [(c, (math.prod(defs[op.operands[0]]["shape"]) + math.prod(op["shape"])) * data_bytes)
                 for c in others if c // physical == dest // physical]
        for o in dict.fromkeys(op.operands):
            src = chip_of.get(o)
            if src is None or src == dest or o not in defs or (o, dest) in sent or src // physical != dest // physical:
                continue
            sent.add((o, dest))
            moves.append((src, math.prod(defs[o]["shape"]) * data_bytes))
        for c, nbytes in moves:
            w, e = links.send(t, c, dest, nbytes)
            wait, pj = max(wait, w), pj + e
        if pj or wait:
            links.op_ns[op.result], links.op_pj[op.result] = wait, pj
    return links


def link_period_ns(t, links: Links) -> float:
    """The busiest link's bytes of one inference over its bandwidth."""
    if not t.link_bytes_per_ns or not links.boundary_bytes:
        return 0.0
    return max(links.boundary_bytes.values()) / t.link_bytes_per_ns


# data movement that reorders elements (the rest, Reshape, Squeeze, Flatten, Gather, ..., keeps
# their order: a view, streamed row by row)
REORDER = ("Transpose", "DepthToSpace", "SpaceToDepth")


def _row(shape) -> int:
    """Elements of one row: a 4-D tensor's row (N x C x W, the schedule's unit) where it has
    several, else its last axis."""
    return shape[0] * shape[1] * shape[3] if len(shape) == 4 and shape[2] > 1 else (shape[-1] if shape else 1)


def held_bytes(op: Op, defs: dict, data_bytes: float) -> float:
    """What an op holds in its tiles' buffers for its next output row (see the module text): its
    output row, where its consumers read it (an input row is its producer's output row, held
    once), and what it needs of its inputs beyond the row that streams in: the further rows of
    a window, all of an attention product's second operand, all of a transposed tensor; the
    network's inputs stream in a row at a time."""
    shape = op["shape"]
    inputs = [defs[o] for o in dict.fromkeys(op.operands) if o in defs]
    held = _row(shape) + sum(_row(i["shape"]) for i in inputs if i.kind == "nn.input")
    if op.kind == "nn.reshape" and op.get("fn") in REORDER:  # reorders the whole tensor: reads it in place
        held += sum(math.prod(i["shape"]) - _row(i["shape"]) for i in inputs)
    elif op.kind == "nn.dot":  # attention: every row of the first operand meets all of the second
        held += sum(math.prod(i["shape"]) - _row(i["shape"]) for i in inputs[1:])
    else:
        kernel, dilation = op.get("kernel"), op.get("dilation")
        window = (kernel[0] * (dilation[0] if dilation else 1)) if kernel and len(shape) == 4 else 1
        held += sum(_row(i["shape"]) * (min(window, i["shape"][2]) - 1) for i in inputs if len(i["shape"]) == 4)
    return held * data_bytes


def buffer_spills(module: Module, op_tiles: dict, chip_of: dict, defs: dict) -> dict[str, float]:
    """Bytes of each op's buffer traffic that go to off-chip memory per inference (both ways)."""
    t = module.target
    if not t.buffer_kb:
        return {}
    data_bytes = t.input_bits / 8
    cap = t.buffer_kb * 1024
    need: dict[str, float] = {}
    on_tile: dict[int, list] = defaultdict(list)
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output") or op.result is None:
            continue
        tiles = op_tiles.get(op.result) or (0,)
        need[op.result] = held_bytes(op, defs, data_bytes)
        for tile in tiles:
            on_tile[tile].append((need[op.result] / len(tiles), op.result))
    held: dict[str, float] = defaultdict(float)
    free: dict[int, float] = defaultdict(float)  # per chip: what its tiles' buffers have left
    for tile, wants in on_tile.items():  # each tile's buffer holds its smallest needs first
        room = cap
        for size, name in sorted(wants):
            take = min(size, room)
            held[name] += take
            room -= take
        free[tile // t.tiles] += room
    used: dict[int, int] = defaultdict(int)
    for tile in on_tile:
        used[tile // t.tiles] += 1
    for chip, n in used.items():  # the buffers of the chip's idle tiles hold what its busy ones cannot
        free[chip] += cap * max(0, t.tiles - n)
    excess = {name: n - held[name] for name, n in need.items() if n > held[name] * (1 + 1e-9) + 1e-9}
    if not excess:
        return {}
    by_chip: dict[int, float] = defaultdict(float)
    for name, x in excess.items():
        by_chip[chip_of.get(name, 0)] += x
    out = {}
    for op in module.ops:
        if op.result in excess:
            chip = chip_of.get(op.result, 0)
            # what the chip's other buffers (its tiles' room, then the global buffer) do not
            # hold, shared out in proportion to each op's excess
            left = max(0.0, by_chip[chip] - free[chip] - t.global_buffer_kb * 1024) / by_chip[chip]
            share = excess[op.result] / need[op.result] * left
            out[op.result] = share * buffer_bytes(op, defs, data_bytes) * 2
    return {k: v for k, v in out.items() if v > 0}


def write_cost(t, cells: int, rounds: int = 1) -> tuple[float, float]:
    """(ns, pJ) to program `cells` cells over `rounds` rounds of one chip: each round's rows one
    after another (`cell_write_ns` per row, the crossbars in parallel), no faster than their
    bytes arrive over the off-chip link; `cell_write_pj` per cell and the link's energy per byte."""
    nbytes = cells * t.cell_bits / 8
    link_ns = nbytes / t.offchip_bytes_per_ns if t.offchip_bytes_per_ns else 0.0
    return max(rounds * t.xbar_rows * t.cell_write_ns, link_ns), cells * t.cell_write_pj + nbytes * t.offchip_pj_per_byte


def rounds_cost(module: Module, blocks: dict, placed: dict, chip_of: dict, physical: int, stages: int,
                stage_period_ns: dict, stage_latency_ns: dict, defs: dict, batch: int) -> dict:
    """A mapping of `stages` stages on `physical` chips, in rounds of `physical` stages: per
    batch of `batch` inferences, each round writes its stages' weights (each chip's crossbars in
    parallel, their rows one after another, the bytes over the chip's off-chip link) and runs
    the batch through them (its latency, then a period per further inference), the tensors
    passed to later rounds going out to off-chip memory and back. Per inference: the batch's
    time and the writes' energy over the batch."""
    t = module.target
    rounds = -(-stages // physical)
    data_bytes = t.input_bits / 8
    cells: dict[int, int] = defaultdict(int)
    for bs in blocks.values():
        for b in bs:
            p = placed.get(b.result)
            chip = p["tile"] // t.tiles if p is not None else chip_of.get(b.operands[0], 0)
            cells[chip] += block_footprint(t, b).cells * (defs[b.operands[0]].get("copies") or 1)
    out_bytes: dict[int, float] = defaultdict(float)  # per round: what later rounds read
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        r = chip_of.get(op.result, 0) // physical
        for o in dict.fromkeys(op.operands):
            if o in chip_of and chip_of[o] // physical < r:
                out_bytes[chip_of[o] // physical] += math.prod(defs[o]["shape"]) * data_bytes
    write_ns = write_pj = io_ns = io_pj = run_ns = 0.0
    per_round = []
    for r in range(rounds):
        chips = range(r * physical, min(stages, (r + 1) * physical))
        writes = [write_cost(t, cells[c]) for c in chips]  # each chip over its own link, in parallel
        w_ns = max((ns for ns, _ in writes), default=0.0)
        w_pj = sum(pj for _, pj in writes)
        period = max((stage_period_ns.get(c, 0.0) for c in chips), default=0.0)
        latency = sum(stage_latency_ns.get(c, 0.0) for c in chips)
        # the batch's boundary tensors: written out after this round, read back by a later one
        io = 2 * out_bytes[r] * batch
        i_ns = io / t.offchip_bytes_per_ns if t.offchip_bytes_per_ns else 0.0
        compute = latency + (batch - 1) * period
        write_ns, write_pj = write_ns + w_ns, write_pj + w_pj
        io_ns, io_pj = io_ns + i_ns, io_pj + io * t.offchip_pj_per_byte
        run_ns += max(compute, i_ns)
        per_round.append({"stages": len(chips), "write_ns": w_ns, "run_ns": compute, "offchip_ns": i_ns})
    batch_ns = write_ns + run_ns
    costed = bool(t.cell_write_ns and t.cell_write_pj)
    writes = rounds / batch  # each physical cell is written once per round of every batch
    period_ns = batch_ns / batch
    lifetime_s = t.endurance_cycles / (writes * 1e9 / period_ns) if t.endurance_cycles else math.inf
    return {"rounds": rounds, "batch": batch, "costed": costed, "batch_ns": batch_ns, "period_ns": period_ns,
            "write_ns_per_inference": write_ns / batch, "write_nj_per_inference": write_pj / batch * 1e-3,
            "offchip_ns_per_inference": io_ns / batch, "offchip_nj_per_inference": io_pj / batch * 1e-3,
            "writes_per_cell_per_inference": writes, "endurance_cycles": t.endurance_cycles,
            "lifetime_s": lifetime_s, "per_round": per_round}


def lifetime_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unlimited (no endurance figure)"
    for unit, s in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= s:
            return f"{seconds / s:.3g} {unit}"
    return f"{seconds:.3g} s"

