"""Loads: what each crossbar, layer and tile does per inference (`mapping_loads`), the tiles a
digital op runs on, and the period floor the digital units and buffers set."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

from cimc.cost.timing import block_load_ns, block_mvm_parts, block_share, digital_ns
from cimc.ir import Module, Op
from cimc.ops import DIGITAL_KINDS

# link: between chips; offchip: spilled activations; reload: writing the weights of each round
COMPONENTS = ("adc", "dac_and_periphery", "array", "digital", "buffer", "network", "link", "offchip", "static",
              "reload")


class Loads(NamedTuple):
    """What `mapping_loads` finds. A crossbar key in `xbar_load` stands for `xbar_count[key]`
    crossbars (default 1) that each carry that load alone: compact copies off the chip's
    placement, which no other block shares."""
    copies: dict[str, int]  # per layer
    blocks: dict[str, list[Op]]  # per layer, its map.block ops
    layer_xbar_load: dict[str, dict]  # per layer: its load (ns) on each crossbar key
    layer_energy_pj: dict[str, dict]  # per layer: energy of its block reads by component
    xbar_load: dict  # crossbar key -> load (ns)
    placed: dict[str, Op]  # block -> its map.place
    xbar_count: dict  # crossbar key -> crossbars it stands for, where more than one
    block_load: dict  # block -> its load (ns) on its crossbar per inference (placed blocks and copy-0 blocks)

    def crossbars(self, keys=None) -> int:
        """Crossbars the keys (default: all) stand for."""
        keys = self.xbar_load if keys is None else keys
        return len(keys) + sum(self.xbar_count[k] - 1 for k in keys if k in self.xbar_count) \
            if self.xbar_count else len(keys)


def mapping_loads(module: Module) -> Loads:
    """Per layer: copies, blocks, its load on each crossbar, energy of its block reads; and
    the load of every crossbar. Unplaced blocks each count as a crossbar of their own."""
    t = module.target
    defs = module.by_name()
    placed = {op.operands[0]: op for op in module.ops if op.kind == "map.place"}
    copies: dict[str, int] = defaultdict(int)
    blocks: dict[str, list[Op]] = defaultdict(list)
    for op in module.ops:
        if op.kind == "map.block":
            blocks[op.operands[0]].append(op)
            copies[op.operands[0]] = max(copies[op.operands[0]], op["copy"] + 1)
    layer_xbar_load: dict[str, dict] = {}
    layer_energy_pj: dict[str, dict] = {}
    xbar_load: dict = defaultdict(float)
    xbar_count: dict = {}
    block_load: dict = {}
    for name, bs in blocks.items():
        layer = defs[name]
        per_xbar: dict = defaultdict(float)
        energy = {"dac_and_periphery": 0.0, "array": 0.0, "adc": 0.0}
        compact = layer.get("copies") or 1  # copies kept compact: each copy-0 block stands for `compact`
        density = layer.get("input_density", module.get("input_density", 1.0))  # share of the row drive used
        copies[name] = max(copies[name], compact)
        for b in bs:
            row, array, adc = block_mvm_parts(t, b)
            p = placed.get(b.result)
            if compact > 1 and p is None:  # each compact copy on a crossbar of its own
                q, extra = divmod(layer["mvms"], compact)
                # the first `extra` copies do one MVM more: two keys, each for its crossbars
                for key, n, mvms in ((("unplaced", b.result, 0), extra, q + 1),
                                     (("unplaced", b.result, 1), compact - extra, q)):
                    if n:
                        per_xbar[key] = xbar_load[key] = block_load_ns(t, b, mvms)
                        if n > 1:
                            xbar_count[key] = n
                n = layer["mvms"]
            else:  # compact copies of a placed block share its crossbar: it does all their MVMs
                n = layer["mvms"] if compact > 1 else block_share(b, layer["mvms"], copies[name])
                key = (p["tile"], p["xbar"]) if p is not None else ("unplaced", b.result, 0)
                load = block_load[b.result] = block_load_ns(t, b, n)
                per_xbar[key] += load
                xbar_load[key] += load
            energy["dac_and_periphery"] += n * row * density
            energy["array"] += n * array * density
            energy["adc"] += n * adc
        layer_xbar_load[name] = per_xbar
        layer_energy_pj[name] = energy
    return Loads(copies, blocks, layer_xbar_load, layer_energy_pj, xbar_load, placed, xbar_count, block_load)


def digital_tiles(module: Module, blocks: dict, placed: dict, in_use: tuple,
                  spread: dict | None = None) -> dict[str, tuple]:
    """The tiles whose digital units run each op, the op split evenly over them: a weight
    layer's are the tiles holding its blocks (every copy; unplaced crossbars fill tiles in
    the order of the layers, as compact copies do); any other op runs on the tiles of the
    first operand that has some (its data are there); an op that reads only the network's
    input runs on every tile in use (`in_use`). A `map.digital` op names the tiles instead.
    """
    t = module.target
    spread = spread_tiles(module) if spread is None else spread
    tiles: dict[str, tuple] = {}
    cursor = 0  # unplaced crossbars, counted in layer order
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        if op.result in blocks:
            held = {placed[b.result]["tile"] for b in blocks[op.result] if b.result in placed}
            loose = sum(1 for b in blocks[op.result] if b.result not in placed) * (op.get("copies") or 1)
            if loose:
                per = t.xbars_per_tile_all
                if op.get("chip"):  # a stage of a model split over chips starts on its chip's first tile
                    cursor = max(cursor, op["chip"] * t.tiles * per)
                held.update(range(cursor // per, (cursor + loose - 1) // per + 1))
                cursor += loose
            tiles[op.result] = tuple(sorted(held)) or in_use
        else:
            tiles[op.result] = spread.get(op.result) or \
                next((tiles[o] for o in op.operands if o in tiles and tiles[o]), in_use)
    return tiles


def spread_tiles(module: Module) -> dict[str, tuple]:
    """The tiles `map.digital` gives digital ops, by op."""
    return {op.operands[0]: tuple(op["tiles"]) for op in module.ops if op.kind == "map.digital"}


def tiles_in_use(module: Module, loads: "Loads") -> tuple:
    """The tiles a mapping uses: those its placement touches, else the fewest its crossbars fill."""
    t = module.target
    if loads.placed:
        return tuple(sorted({key[0] for key in loads.xbar_load if key[0] != "unplaced"}))
    return tuple(range(max(1, math.ceil(loads.crossbars() / t.xbars_per_tile_all))))


def buffer_bytes(op: Op, defs: dict, data_bytes: float) -> float:
    """Bytes an op moves through its tile buffer: its inputs and its output."""
    in_elems = sum(math.prod(defs[o]["shape"]) for o in op.operands if o in defs)
    return (in_elems + math.prod(op["shape"])) * data_bytes


def period_floor_ns(module: Module) -> float:
    """The part of the period no placement of crossbars can lower (on one chip): the op with
    the most buffer traffic, and all digital work shared by every tile's digital units.
    Copies that would make the crossbars faster than this buy nothing."""
    t = module.target
    defs = module.by_name()
    data_bytes = t.input_bits / 8
    buffer = digital = 0.0
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        buffer = max(buffer, buffer_bytes(op, defs, data_bytes) / t.buffer_bytes_per_ns)
        if op.kind in DIGITAL_KINDS:
            digital += op["ops"]
    return max(buffer, digital_ns(t, digital, t.tiles))
