"""The cost model: latency, throughput, energy, area and utilization of a mapped Module.

Units: ns, nJ (pJ inside), mm2. What the numbers mean:
- A block's MVM takes `reads_per_mvm` crossbar reads; a read takes the longer of the array
  read and the conversions of its active columns by the ADCs they share
  (`Target.read_ns`). Blocks in one crossbar never read at the same time.
- A layer's copies split its MVMs: evenly, or as each copy's `share` says. The load
  of a block is its copy's MVMs times its MVM time; the load of a crossbar is the sum of
  its blocks' loads. A layer running alone takes the largest load it puts on one crossbar:
  copies (or blocks) that share a crossbar do not speed it up.
- A digital op runs on the digital units of the tiles that hold the data it reads
  (`digital_tiles`: the tiles of the weight layer it reads, all copies; a digital op after
  another on the same tiles; with nothing placed, every tile in use), split evenly: it takes
  `ops / (digital_ops_per_ns x tiles)`, and puts that on each of its tiles. Every op moves its
  input and output elements through the tile buffer at `buffer_bytes_per_ns` (overlapped
  with compute: the longer of the two counts).
- Latency: the schedule's makespan when the mapping has one (`sched.slot`), else the
  longest path through the graph with every op taking its time; never less than the period
  (one inference does the busiest resource's whole work).
- Throughput: inferences pipelined; the period is the busiest resource's work per
  inference: a crossbar's load, one tile's digital units (the digital ops it runs), one
  op's buffer traffic, or the network (all byte-hops of an inference over all its links, as if routing
  spread them evenly). An op's own network time (its bytes over one link, plus the hops)
  adds to its latency, not to the period: transfers of successive inferences overlap.
- Energy per block MVM, per read: active rows x `row_read_pj` + active cells x
  `cell_read_fj` + conversions x `adc_conversion_pj`; partial sums of row blocks are added
  digitally; every op's buffer traffic costs `buffer_pj_per_byte`. Rows and cells count at
  full drive (every row, every read) unless the layer (or the module) has an
  `input_density`: the share of that drive its inputs use, as `cimc eval` measures it.
- Area: the tiles the placement touches (`area_mm2`) and the whole chip (`chip_area_mm2`).
Bounds (valid for the module's partition, whatever the duplication and packing):
- crossbars: ceil(weight cells of one copy / cells per crossbar);
- period: total block-read time per inference over the crossbar budget; the shared-work
  bound (`_shared_work_bound`): a block that leaves no room beside it holds a crossbar
  alone, one per copy the period needs (ceil(load / P)), and the time those crossbars have
  beyond its load is lost; the other blocks' copies need the cells of the crossbars left;
  halves of such blocks (pack may halve light ones) lose the time of the crossbars they
  hold where little else fits beside them; no block's single MVM can be split; digital
  work over all tiles' digital units; any op's buffer traffic; and, after `duplicate`, the
  proven bound of its relaxation (cells, loads) with every cell of the budget allowed;
- latency: the longest path with every weight layer at one MVM time (unlimited copies)
  and every digital op at one output row's time (ops stream row by row) split over every
  tile of the chips used.
The ISAAC-like baseline of the same partition (every block on its own crossbar, one copy)
is costed alongside, for `speedup_vs_baseline`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import NamedTuple

from cimc import facts
from cimc.ir import Module, Op
from cimc.mapping import (
    WEIGHT_KINDS,
    block_footprint,
    block_pool,
    crossbars_lower_bound,
    footprint,
    max_lanes,
    pool_target,
    splittable_big_block,
    weight_cells,
    xbar_full_area_um2,
)
from cimc.ops import DIGITAL_KINDS
from cimc.plans import all_layouts, plan_blocks, plan_shapes, shape_block
from cimc.report import LayerCost, Report


def copy_share(mvms: int, copies: int, copy: int) -> int:
    """MVMs that copy `copy` of `copies` performs (the first `mvms % copies` take one more)."""
    return mvms // copies + (1 if copy < mvms % copies else 0)


def block_share(block: Op, mvms: int, copies: int) -> int:
    """MVMs a block's copy performs: its explicit `share`, else an even split."""
    share = block.get("share")
    return share if share is not None else copy_share(mvms, copies, block["copy"])


def footprint_read_ns(target, fp) -> float:
    """Time of the reads that make one MVM on a block of footprint `fp`."""
    return (fp.reads_per_mvm + target.mvm_fill_reads) * target.read_ns(fp.active_cols)


def block_read_ns(target, block: Op) -> float:
    """Time of the reads that make one MVM of the block (of each of its lanes at once)."""
    return footprint_read_ns(target, block_footprint(target, block))


def block_mvm_ns(target, block: Op) -> float:
    """Time per MVM of the block: a block with `lanes` replicas does that many per read."""
    return block_read_ns(target, block) / block.get("lanes", 1)


def block_load_ns(target, block: Op, mvms: int) -> float:
    """Crossbar time of `mvms` MVMs on the block (a last read may fill only some lanes)."""
    lanes = block.get("lanes", 1)
    return (-(-mvms // lanes) if lanes > 1 else mvms) * block_read_ns(target, block)


def one_lane(block: Op) -> Op:
    """The block with one lane (itself when it has one)."""
    return block if block.get("lanes", 1) == 1 else block.with_attrs(lanes=None)


def best_mvm_ns(target, block: Op) -> float:
    """The least time per MVM any number of lanes gives the block (for bounds that hold
    whatever lanes a mapping chooses)."""
    memo = target.footprint_memo  # remembered by the target, per block shape
    k = max_lanes(target, block)
    a = block._by_key
    g0, g1 = a["groups"]
    r0, r1 = a["rows"]
    c0, c1 = a["cols"]
    key = ("best", g1 - g0, r1 - r0, c1 - c0, a["layout"], k)
    best = memo.get(key)
    if best is None:
        best = memo[key] = min(
            footprint_read_ns(target, footprint(target, (g1 - g0) * n, r1 - r0, c1 - c0, a["layout"])) / n
            for n in range(1, k + 1))
    return best


def layout_family(view, op: Op) -> tuple[float, float, float, int, int] | None:
    """Over every layout the passes may give a grouped layer (`partition.all_layouts`), the
    least of: block-read work per MVM of the layer (best lanes), its longest block's time
    per MVM (best lanes), its longest block's MVM with one lane; and the fewest rows and
    columns of a block. None for layers with one layout. Bounds use these, so they hold
    whichever layout duplicate picks."""
    key = ("family", op["groups"], op["rows"], op["cols"])
    memo = view.footprint_memo
    if key not in memo:
        figures = None
        plans = all_layouts(view, op["groups"], op["rows"], op["cols"])
        if plans:
            work, longest, one, rows, cols = [], [], [], [], []
            for plan in plans:
                shapes = plan_shapes(plan)
                blocks = {sh: shape_block(op.result, sh) for sh in shapes}
                best = {sh: best_mvm_ns(view, b) for sh, b in blocks.items()}
                work.append(sum(n * best[sh] for sh, n in shapes.items()))
                longest.append(max(best.values()))
                one.append(max(block_mvm_ns(view, b) for b in blocks.values()))
                fps = [block_footprint(view, b) for b in blocks.values()]
                rows.append(min(f.rows for f in fps))
                cols.append(min(f.cols for f in fps))
            figures = (min(work), min(longest), min(one), min(rows), min(cols))
        memo[key] = figures
    return memo[key]


def partition_mvm_ns(view, op: Op, first: list) -> float:
    """The longest one-lane block MVM of the layer as partitioned: its blocks, or, where
    duplicate gave it another layout, the partition's (`partition_layout`, `partition_groups`
    per block)."""
    layout = op.get("partition_layout")
    if layout is not None:
        per = op["partition_groups"]
        plan = plan_blocks(view, op["groups"], op["rows"], op["cols"], layout, max_groups=per)
        return max(block_mvm_ns(view, shape_block(op.result, sh)) for sh in plan_shapes(plan))
    return max((block_mvm_ns(view, b) for b in first), default=0.0)


def block_mvm_parts(target, block: Op) -> tuple[float, float, float]:
    """Energy (pJ) of one MVM of a block: (DACs and row periphery, the array, the ADCs).
    Every row is driven once per input digit, also when the rows are read in parts; every
    read converts its active columns; a block with lanes shares a read among its lanes."""
    fp = block_footprint(target, block)
    n = fp.reads_per_mvm // fp.row_splits
    lanes = block.get("lanes", 1)
    return (n * fp.rows * target.row_read_pj / lanes,
            n * fp.rows * fp.active_cols * target.cell_read_fj * 1e-3 / lanes,
            fp.reads_per_mvm * fp.active_cols * target.adc_conversion_pj / lanes)


COMPONENTS = ("adc", "dac_and_periphery", "array", "digital", "buffer", "network", "static")


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
                load = block_load_ns(t, b, n)
                per_xbar[key] += load
                xbar_load[key] += load
            energy["dac_and_periphery"] += n * row * density
            energy["array"] += n * array * density
            energy["adc"] += n * adc
        layer_xbar_load[name] = per_xbar
        layer_energy_pj[name] = energy
    return Loads(copies, blocks, layer_xbar_load, layer_energy_pj, xbar_load, placed, xbar_count)


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
    return max(buffer, digital / (t.digital_ops_per_ns * t.tiles))


def network_period_ns(t, byte_hops: float, chips: int) -> float:
    """The network as a whole: one inference's byte-hops spread over every link of the chips."""
    return byte_hops / (network_links(t) * chips * t.noc_bytes_per_ns) if t.noc_bytes_per_ns else 0.0


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


def evaluate(module: Module, model: str | None = None, passes: str | None = None, compile_s: float = 0.0,
             solver: dict | None = None) -> Report:
    t = module.target
    defs = module.by_name()
    data_bytes = t.input_bits / 8
    loads = mapping_loads(module)
    copies, blocks, layer_xbar_load, layer_energy_pj, xbar_load, placed, _ = loads
    home = home_tiles(module, blocks, placed) if placed else {}
    in_use = tiles_in_use(module, loads)
    chips_used = max((tile // t.tiles + 1 for tile in in_use), default=1)
    spread = spread_tiles(module)
    op_tiles = digital_tiles(module, blocks, placed, in_use, spread)
    digital_load: dict[int, float] = defaultdict(float)  # per tile: its digital units' time per inference
    base_tiles = max(1, math.ceil(sum(1 for bs in blocks.values() for b in bs if b["copy"] == 0)
                                  / t.xbars_per_tile_all))  # the baseline's: its crossbars fill tiles in order

    pool_cells: dict[int, int] = defaultdict(int)  # one copy of every weight, per crossbar pool
    net_bytes = net_byte_hops = 0.0

    layers: list[LayerCost] = []
    time_ns: dict[str, float] = {}
    bound_ns: dict[str, float] = {}
    base_ns: dict[str, float] = {}
    digital_ops_total = 0
    total_energy_pj = 0.0
    totals = dict.fromkeys(COMPONENTS, 0.0)
    cells_one_copy = cells_all = 0
    families: dict[str, tuple] = {}  # grouped layers with several layouts: `layout_family`
    block_read_work_ns = 0.0  # one copy of every block, all MVMs: invariant under duplication
    longest_mvm_ns = 0.0
    base_period_ns = 0.0
    buffer_bound_ns = 0.0  # the longest buffer traffic of one op
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        traffic_bytes = buffer_bytes(op, defs, data_bytes)
        traffic_ns = buffer_ns = traffic_bytes / t.buffer_bytes_per_ns
        network_ns = 0.0
        buffer_bound_ns = max(buffer_bound_ns, buffer_ns)
        parts = dict.fromkeys(COMPONENTS, 0.0)
        parts["buffer"] = traffic_bytes * t.buffer_pj_per_byte
        if home:
            moved, byte_hops, worst = network_traffic(module, op, blocks.get(op.result, []), copies.get(op.result, 0),
                                                      placed, home, data_bytes, defs, spread)
            net_bytes += moved
            net_byte_hops += byte_hops
            parts["network"] = byte_hops * t.noc_pj_per_byte_hop
            if t.noc_bytes_per_ns and moved:
                network_ns = moved / t.noc_bytes_per_ns + worst * t.noc_hop_ns
                traffic_ns = max(traffic_ns, network_ns)
        if op.kind in WEIGHT_KINDS:
            cells = weight_cells(t, op) if op.get("rows") is not None else 0
            cells_one_copy += cells
            bs = blocks.get(op.result, [])
            c = copies.get(op.result, 0)
            # every replica is programmed: a copy whose blocks hold k lanes counts k times
            lanes_per_copy = {b["copy"]: b.get("lanes", 1) for b in bs}
            replicas = sum(lanes_per_copy.values()) * (op.get("copies") or 1) if lanes_per_copy else c
            cells_all += cells * replicas
            first = [one_lane(b) for b in bs if b["copy"] == 0]  # the baseline's blocks: one lane
            view = pool_target(t, first[0]) if first else t
            mvm_ns = partition_mvm_ns(view, op, first)
            family = layout_family(view, op) if first else None
            if family is not None:
                families[op.result] = family
            compute_ns = max(layer_xbar_load.get(op.result, {}).values(), default=0.0)
            for k, v in layer_energy_pj.get(op.result, {}).items():
                parts[k] += v
            if bs:  # partial sums of row blocks are added in the digital units
                row_blocks = len({b["rows"] for b in bs if b["copy"] == 0})
                parts["digital"] += (row_blocks - 1) * op["mvms"] * op["groups"] * op["cols"] * t.digital_op_pj
                # bounds hold whatever lanes a mapping gives a block: its fastest per MVM
                best = [best_mvm_ns(t, b) for b in first]
                work, longest = sum(best), max(best)
                if family is not None:  # any layout the passes may give it
                    work, longest = min(work, family[0]), min(longest, family[1])
                block_read_work_ns += op["mvms"] * work
                longest_mvm_ns = max(longest_mvm_ns, longest)
                base_period_ns = max(base_period_ns, op["mvms"] * mvm_ns)
            latency = max(compute_ns, traffic_ns)
            bound_ns[op.result] = min(mvm_ns, family[2]) if family is not None else mvm_ns
            base_ns[op.result] = max(op["mvms"] * mvm_ns, traffic_ns)
            n_xbars = loads.crossbars(layer_xbar_load.get(op.result, {}))
            energy_pj = sum(parts.values())
            area = 0.0
            for b in bs:
                view = pool_target(t, b)
                cells_b = block_footprint(t, b).cells
                area += cells_b / view.cells_per_xbar * xbar_full_area_um2(view) * 1e-6
                if b["copy"] == 0:
                    pool_cells[block_pool(t, b)] += cells_b
            layers.append(LayerCost(op.result, op.kind, op["rows"], op["cols"], op["groups"], op["mvms"],
                                    len(bs) * (op.get("copies") or 1),
                                    c, n_xbars, latency, energy_pj * 1e-3, energy_breakdown_nj=_nj(parts),
                                    area_mm2=area, buffer_ns=buffer_ns, network_ns=network_ns,
                                    lanes=max((b.get("lanes", 1) for b in bs), default=1)))
        else:
            ops = op["ops"] if op.kind in DIGITAL_KINDS else 0
            digital_ops_total += ops
            parts["digital"] += ops * t.digital_op_pj
            energy_pj = sum(parts.values())
            where = op_tiles.get(op.result) or in_use
            compute_ns = ops / (t.digital_ops_per_ns * len(where))  # split evenly over its tiles
            if ops:
                for tile in where:
                    digital_load[tile] += compute_ns
            latency = max(compute_ns, traffic_ns)
            base_ns[op.result] = max(ops / (t.digital_ops_per_ns * base_tiles), buffer_ns)
            # a scheduled digital op streams: after its input's last row it needs one row's
            # time, which at best is split over every tile of the chips
            rows = op["shape"][2] if len(op["shape"]) == 4 else 1
            bound_ns[op.result] = max(ops / (t.digital_ops_per_ns * t.tiles * chips_used), buffer_ns) / max(rows, 1)
            layers.append(LayerCost(op.result, op.kind, 0, 0, 0, 0, 0, 0, 0, latency, energy_pj * 1e-3,
                                    fn=op.get("fn", ""), energy_breakdown_nj=_nj(parts), buffer_ns=buffer_ns,
                                    network_ns=network_ns))
        time_ns[op.result] = latency
        total_energy_pj += energy_pj
        for k, v in parts.items():
            totals[k] += v

    slots = {op.operands[0]: op for op in module.ops if op.kind == "sched.slot"}
    path_ns, latency_bound_ns, base_latency_ns = longest_paths(module, (time_ns, bound_ns, base_ns))
    latency_ns = max((s["end_ns"] for s in slots.values()), default=0.0) if slots else path_ns

    xbars_used = loads.crossbars()
    tiles = set(in_use) if placed else set()
    tiles_used = len(tiles) if placed else math.ceil(xbars_used / t.xbars_per_tile_all)
    # cells of the crossbars used (their pool's size), and the fewest crossbars one copy fits
    used_cells = sum((t.pool(t.pool_of_xbar(key[1])).cells_per_xbar if key[0] != "unplaced"
                      else pool_target(t, defs[key[1]]).cells_per_xbar) * loads.xbar_count.get(key, 1)
                     for key in xbar_load) if t.pools \
        else xbars_used * t.cells_per_xbar
    xbars_bound = (sum(crossbars_lower_bound(t.pool(p), c) for p, c in pool_cells.items()) if t.pools
                   else crossbars_lower_bound(t, cells_one_copy))
    budget = facts.get(module, "budget") or t.xbars * chips_used
    digital_period = max(digital_load.values(), default=0.0)  # the busiest tile's digital units
    # the network as a whole: every byte-hop of one inference over all its links
    network_period = network_period_ns(t, net_byte_hops, chips_used)
    period_parts = {"crossbars": max(xbar_load.values(), default=0.0), "digital": digital_period,
                    "buffer": buffer_bound_ns, "network": network_period}
    period_ns = max(max(period_parts.values()), 1e-9)
    period_set_by = max(period_parts, key=lambda k: period_parts[k])
    period_bound_ns = max(block_read_work_ns / budget, _shared_work_bound(t, blocks, defs, budget, families), longest_mvm_ns,
                          digital_ops_total / (t.digital_ops_per_ns * t.tiles * chips_used),
                          facts.get(module, "period_bound_ns"), buffer_bound_ns, 1e-9)
    base_period_ns = max(base_period_ns, digital_ops_total / (t.digital_ops_per_ns * base_tiles), buffer_bound_ns, 1e-9)
    # one inference passes every resource: it takes no less than the work the busiest one does
    # for it (ops that share a tile's digital units or a crossbar do not overlap on it)
    latency_ns = max(latency_ns, period_ns)
    latency_bound_ns = max(latency_bound_ns, period_bound_ns)
    area = tiles_used * t.tile_area_mm2
    # leakage of the tiles and crossbars in use over the time one inference holds them in the
    # pipeline: one period (mW x ns = pJ); a tile's unnamed power counts as static too
    totals["static"] = (tiles_used * (t.tile_leakage_mw + t.tile_overhead_power_mw)
                        + xbars_used * t.xbar_static_mw) * period_ns
    total_energy_pj += totals["static"]
    energy_nj = total_energy_pj * 1e-3
    # each weight layer carries the leakage of its share of the crossbar area it holds
    held = sum(layer.area_mm2 for layer in layers)
    if totals["static"] and held:
        static_nj = totals["static"] * 1e-3
        layers = [dataclasses.replace(
            layer, energy_nj=layer.energy_nj + static_nj * layer.area_mm2 / held,
            energy_breakdown_nj={**layer.energy_breakdown_nj,
                                 "static": static_nj * layer.area_mm2 / held}) if layer.area_mm2 else layer
            for layer in layers]
    info = dict(solver or {})
    for key, value in module.attrs:
        if key.startswith(("duplicate_", "pack_", "schedule_")):
            info[key] = value
    stream = {k: module.get(k) for k in ("stream_inferences", "stream_makespan_ns") if module.get(k) is not None}
    warnings = []
    reprogramming = {}
    if chips_used > 1:
        reprogramming = reprogramming_cost(module, blocks, placed)
        alt = (f"; one chip reprogrammed per inference instead would add {reprogramming['ns'] / 1e3:.4g} us and "
               f"{reprogramming['nj'] / 1e3:.4g} uJ per inference" if reprogramming.get("costed") else
               "; reprogramming one chip instead is not costed: the target has no cell write figures")
        warnings.append(f"the weights need {chips_used} chips of {t.name} ({xbars_used} crossbars, {t.xbars} per chip); "
                        "area counts every chip, but data moving between chips is not costed: latency and energy "
                        "are those of an ideal multi-chip link" + alt + ".")
    return Report(
        model=model or module.name, target=t.name, passes=passes or str(module.get("passes", "")),
        crossbars_used=xbars_used, crossbars_available=t.xbars * chips_used, chips_used=chips_used, budget=budget,
        crossbars_lower_bound=xbars_bound,
        utilization=(cells_all / used_cells) if xbars_used else 0.0,
        latency_ns=latency_ns, latency_lower_bound_ns=latency_bound_ns,
        throughput_ips=1e9 / period_ns, throughput_upper_bound_ips=1e9 / period_bound_ns,
        period_ns=period_ns, period_lower_bound_ns=period_bound_ns,
        energy_nj=energy_nj, area_mm2=area, chip_area_mm2=t.chip_area_mm2,
        edap=energy_nj * latency_ns * area, compile_s=compile_s, tiles_used=tiles_used,
        weight_cells=cells_one_copy,
        speedup_vs_baseline={"throughput": base_period_ns / period_ns,
                             "latency": base_latency_ns / latency_ns if latency_ns else 0.0},
        baseline={"period_ns": base_period_ns, "latency_ns": base_latency_ns,
                  "crossbars": sum(len([b for b in bs if b["copy"] == 0]) for bs in blocks.values())},
        gap={"throughput": period_ns / period_bound_ns - 1, "latency": latency_ns / latency_bound_ns - 1
             if latency_bound_ns else 0.0,
             "crossbars": xbars_used / max(xbars_bound, 1) - 1},
        solver=info, stream=stream, period_set_by=period_set_by, warnings=tuple(warnings), energy_breakdown_nj=_nj(totals),
        area_breakdown_mm2={k: v * tiles_used for k, v in t.tile_area_breakdown().items()},
        network={"topology": t.noc, "bytes_between_tiles": net_bytes, "byte_hops": net_byte_hops},
        reprogramming=reprogramming, converter=t.converter(), layers=tuple(layers))


def _shared_work_bound(t, blocks: dict, defs: dict, budget: int, families: dict | None = None) -> float:
    """A period bound for crossbars that cannot share: a block that leaves no room beside it
    for the smallest block of the model (fewer free rows than any block has rows, fewer free
    columns than any has columns) has a crossbar to itself in every packing, and so has every
    copy of it. Its load w (all its MVMs) needs at least k = ceil(w / P) such crossbars, and
    the time they have beyond w is lost: k P - w. Pack may instead cut a light one into two
    column halves that leave room: then the halves' extra reads are work (e). So
    P x budget >= all work + sum of (k P - w) over blocks alone + sum of min(k P - w, e) over
    blocks alone whole that could be halved; the bound is the least P that meets it. The
    right side is piecewise linear in P (k drops at P = w / (k - 1)): the least P is found
    with k = 1 first (the right side then grows slower than the left: bisection), then by
    walking the pieces up from there. Two more conditions hold and raise it: nothing fits
    beside a block alone, so the other blocks' copies (ceil(w / P) each, a copy of a grouped
    layer at least its weight cells) must fit in the cells of the crossbars left; and halves
    that only halves and a few small blocks fit beside hold crossbars whose time beyond the
    halves' reads is lost, less the work of those small blocks (the walk takes the larger of
    the two sums of lost time). Grouped layers that may take other layouts count with their
    least work and smallest blocks, never alone (`families`: `layout_family` per layer).
    Single-pool chips only."""
    if t.pools:
        return 0.0
    families = families or {}
    first = [one_lane(b) for bs in blocks.values() for b in bs if b["copy"] == 0 and b.operands[0] not in families]
    if not first and not families:
        return 0.0
    fps = [block_footprint(t, b) for b in first]

    def half(b, lo: int, hi: int):  # footprint of a column range of a one-lane block
        return footprint(t, b["groups"][1] - b["groups"][0], b["rows"][1] - b["rows"][0], hi - lo, b["layout"])

    halves = []  # the two halves' footprints of each block pack may halve, else None
    for b in first:
        c0, c1 = b["cols"]
        halves.append((half(b, c0, (c0 + c1) // 2), half(b, (c0 + c1) // 2, c1))
                      if splittable_big_block(t, defs[b.operands[0]]["mvms"], b) else None)
    min_r = min([fp.rows for fp in fps] + [f[3] for f in families.values()])
    min_c = min([h[0].cols if h is not None else fp.cols for h, fp in zip(halves, fps)]
                + [f[4] for f in families.values()])

    def no_room(fp) -> bool:
        return min_r > t.xbar_rows - fp.rows and min_c > t.xbar_cols - fp.cols

    work = sum(defs[name]["mvms"] * f[0] for name, f in families.items())
    alone = []  # (w, extra work e when halved or None when it cannot be, the halves' (w, crossbars))
    others = []  # the blocks that are not alone: (footprint, halves or None, w, MVMs)
    # the area the others need, per block: (alone whole?, (w, crossbars of cells) of one
    # copy, the same for each half where pack may halve it, else None)
    area_parts: dict[tuple, int] = defaultdict(int)
    per_xbar = t.cells_per_xbar
    for name, f in families.items():  # a copy: its programmed weights, its longest block's time
        area_parts[(False, (defs[name]["mvms"] * f[1], weight_cells(t, defs[name]) / per_xbar), None)] += 1
    for b, fp, h in zip(first, fps, halves):
        mvms = defs[b.operands[0]]["mvms"]
        w = mvms * best_mvm_ns(t, b)
        work += w
        as_halves = None if h is None else tuple((mvms * footprint_read_ns(t, x), x.cells / per_xbar) for x in h)
        if no_room(fp):
            e = None
            if h is not None and not no_room(h[0]):
                e = max(0.0, mvms * (footprint_read_ns(t, h[0]) + footprint_read_ns(t, h[1])) - w)
            alone.append((w, e, as_halves if e is not None else None))
            if e is not None:  # whole it holds crossbars alone, halved it shares
                area_parts[(True, (w, 1.0), as_halves)] += 1
        else:
            area_parts[(False, (w, fp.cells / per_xbar), as_halves)] += 1
            others.append((fp, h, w, mvms))
    if not alone or budget <= len(alone):
        return 0.0
    # Halves of blocks alone whole share crossbars with other halves and with the blocks
    # that fit beside a half; the time beside the halves that those blocks cannot fill is
    # lost as well. A crossbar holds halves worth at most its cells: the crossbars holding
    # them have, over copies k_i of halves of c_i crossbars of cells, at least
    # sum k_i c_i P of time, of which the blocks that fit beside a half fill at most their
    # work (W_fit, taken at its most: halved where that reads more).
    hr = min((x[0].rows for x in halves if x is not None), default=t.xbar_rows)
    hc = min((x[0].cols for x in halves if x is not None), default=t.xbar_cols)
    w_fit = sum(defs[name]["mvms"] * f[0] for name, f in families.items()
                if f[3] <= t.xbar_rows - hr or f[4] <= t.xbar_cols - hc)
    for fp, h, w, mvms in others:
        if min(fp.rows, h[0].rows if h else fp.rows) <= t.xbar_rows - hr or \
                min(fp.cols, h[0].cols if h else fp.cols) <= t.xbar_cols - hc:
            w_fit += w if h is None else max(w, mvms * (footprint_read_ns(t, h[0]) + footprint_read_ns(t, h[1])))

    def copies(w: float, p: float) -> int:  # each copy does at most p of the work w
        return max(1, math.ceil(w / p - 1e-12))

    def crossbars_needed(p: float) -> float:
        """Crossbars the blocks need at period p: every copy of a block alone takes one, and
        nothing shares it; every other copy takes its cells of the rest."""
        need = float(sum(copies(w, p) for w, e, _ in alone if e is None))
        for (whole_alone, (w, xbars), as_halves), n in area_parts.items():
            best = copies(w, p) * xbars  # alone: a crossbar per copy; else its cells
            if as_halves is not None:
                best = min(best, sum(copies(wh, p) * xh for wh, xh in as_halves))
            need += n * best
        return need

    def short(p: float) -> float:  # > 0: p is too small (every k taken as 1)
        return work + sum(p - w if e is None else min(p - w, e) for w, e, _ in alone) - p * budget

    lo = work / budget  # copies may split any block's load, so nothing higher is known yet
    if short(lo) > 0:
        hi = lo * 2
        while short(hi) > 0:
            hi *= 2
        while hi - lo > 1e-9 * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if short(mid) > 0 else (lo, mid)
        lo = hi
    if crossbars_needed(lo) > budget * (1 + 1e-12):
        # the area falls with p: bisect for where it fits, keeping the side where it does not
        # (a bound must not overshoot)
        a, b = lo, lo * 2
        while crossbars_needed(b) > budget * (1 + 1e-12):
            a, b = b, b * 2
        while b - a > 1e-9 * b:
            mid = (a + b) / 2
            a, b = (mid, b) if crossbars_needed(mid) > budget * (1 + 1e-12) else (a, mid)
        lo = a
    # k = ceil(w / P) >= 1 only adds to the right side: no P below `lo` meets it. Walk up
    # the pieces on which every k (and every min's side) is fixed: there the shortfall is
    # linear in P (const + slope x P), so its first zero is found exactly. Two sums of lost
    # time hold, each a lower bound: halves costing their extra reads (e), and halves
    # costing the crossbar time they hold less the work that fits beside them.
    def lower_of(a, b, p, nxt):  # the smaller of two lines right of p, and where they cross
        va, vb = a[0] + a[1] * p, b[0] + b[1] * p
        if a[1] != b[1]:
            q = (b[0] - a[0]) / (a[1] - b[1])
            if q > p:
                nxt = min(nxt, q)
        return (a if (va, a[1]) <= (vb, b[1]) else b), nxt

    p = lo
    for _ in range(10000):
        nxt = math.inf
        share, among = [work, -float(budget)], [work - w_fit, -float(budget)]  # const, slope
        for w, e, hv in alone:
            k = copies(w, p)
            if k > 1:
                nxt = min(nxt, w / (k - 1))
            whole = (-w, float(k))  # k P - w
            one, two = whole, whole
            if e is not None:
                one, nxt = lower_of(whole, (e, 0.0), p, nxt)
                held = 0.0
                for wh, xh in hv:
                    kh = copies(wh, p)
                    if kh > 1:
                        nxt = min(nxt, wh / (kh - 1))
                    held += kh * xh
                two, nxt = lower_of(whole, (-w, held), p, nxt)
            share[0] += one[0]
            share[1] += one[1]
            among[0] += two[0]
            among[1] += two[1]
        # the least P in [p, nxt) where both lines are <= 0
        start_p, end_p = p, nxt
        for c, sl in (share, among):
            tol = 1e-9 * p * budget
            if sl < 0:
                start_p = max(start_p, (c - tol) / -sl)
            elif c + sl * p > tol:
                start_p = math.inf
            elif sl > 0:
                end_p = min(end_p, (tol - c) / sl)
        if start_p < end_p or (start_p <= end_p and start_p < math.inf):
            return start_p
        if nxt == math.inf:
            return p  # cannot happen (budget > blocks alone): keep the bound found so far
        p = max(nxt * (1 + 1e-12), p * (1 + 1e-12))
    return lo  # (a walk that long: the k = 1 bound, which holds)


def reprogramming_cost(module: Module, blocks: dict, placed: dict) -> dict:
    """Time and energy per inference to run a mapping that spans several chips on one chip,
    writing the weights of the other chips' crossbars in turn: each round writes one chip's
    worth of crossbars (their rows one after another, the crossbars in parallel, the bytes
    over the off-chip link) and every cell costs `cell_write_pj`."""
    t = module.target
    cells = 0
    xbars = set()
    for bs in blocks.values():
        for b in bs:
            p = placed.get(b.result)
            if p is not None and p["tile"] >= t.tiles:
                cells += block_footprint(t, b).cells
                xbars.add((p["tile"], p["xbar"]))
    if not (t.cell_write_ns and t.cell_write_pj):
        return {"costed": False, "crossbars": len(xbars), "cells": cells}
    rounds = max(1, -(-len(xbars) // t.xbars))
    weight_bytes = cells * t.cell_bits / 8
    link_ns = weight_bytes / t.offchip_bytes_per_ns if t.offchip_bytes_per_ns else 0.0
    ns = max(rounds * t.xbar_rows * t.cell_write_ns, link_ns)
    nj = (cells * t.cell_write_pj + weight_bytes * t.offchip_pj_per_byte) * 1e-3
    return {"costed": True, "crossbars": len(xbars), "cells": cells, "rounds": rounds, "ns": ns, "nj": nj}


def _nj(parts: dict) -> dict:
    return {k: v * 1e-3 for k, v in parts.items()}


def longest_paths(module: Module, times: tuple[dict[str, float], ...]) -> list[float]:
    """Longest path (sum of op times) from any input to any op, over the def-use order, for
    each set of op times."""
    finish: list[dict[str, float]] = [{} for _ in times]
    best = [0.0] * len(times)
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        for n, time_ns in enumerate(times):
            done = finish[n]
            start = max([done.get(o, 0.0) for o in op.operands], default=0.0)
            done[op.result] = end = start + time_ns.get(op.result, 0.0)
            if end > best[n]:
                best[n] = end
    return best
