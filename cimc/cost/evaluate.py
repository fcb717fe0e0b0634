"""`evaluate`: a mapped Module's report (latency, throughput, energy, area, utilization, and each
figure's bound), and what reprogramming one chip would cost instead of more chips."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass, field

from cimc import facts
from cimc.cost.bounds import longest_paths, shared_work_bound
from cimc.cost.chips import (
    Links,
    buffer_spills,
    chip_links,
    lifetime_text,
    link_period_ns,
    op_chips,
    rounds_cost,
    write_cost,
)
from cimc.cost.loads import (
    COMPONENTS,
    Loads,
    buffer_bytes,
    digital_tiles,
    mapping_loads,
    spread_tiles,
    tiles_in_use,
)
from cimc.cost.network import home_tiles, network_period_ns, network_traffic
from cimc.cost.timing import (
    best_mvm_ns,
    digital_ns,
    layout_family,
    one_lane,
    partition_mvm_ns,
)
from cimc.ir import Module, Op
from cimc.mapping import (
    WEIGHT_KINDS,
    block_footprint,
    block_pool,
    crossbars_lower_bound,
    pool_target,
    weight_cells,
    xbar_full_area_um2,
)
from cimc.ops import DIGITAL_KINDS
from cimc.report import LayerCost, Report


def nj(parts: dict) -> dict:
    return {k: v * 1e-3 for k, v in parts.items()}


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
    ns, pj = write_cost(t, cells, rounds)
    return {"costed": True, "crossbars": len(xbars), "cells": cells, "rounds": rounds, "ns": ns, "nj": pj * 1e-3}


@dataclass
class _Tally:
    """What `evaluate` sums over the ops of one mapping."""

    layers: list = field(default_factory=list)
    time_ns: dict = field(default_factory=dict)  # each op's time on the critical path
    bound_ns: dict = field(default_factory=dict)  # ... with unlimited copies (for the latency bound)
    base_ns: dict = field(default_factory=dict)  # ... in the baseline mapping
    totals_pj: dict = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))
    energy_pj: float = 0.0
    digital_ops: int = 0
    digital_load: dict = field(default_factory=lambda: defaultdict(float))  # per tile: its digital units' time
    cells_one_copy: int = 0
    cells_all: int = 0  # every replica that is programmed
    pool_cells: dict = field(default_factory=lambda: defaultdict(int))  # one copy of every weight, per pool
    families: dict = field(default_factory=dict)  # grouped layers with several layouts: `layout_family`
    block_read_work_ns: float = 0.0  # one copy of every block, all MVMs: invariant under duplication
    longest_mvm_ns: float = 0.0
    base_period_ns: float = 0.0
    buffer_bound_ns: float = 0.0  # the longest buffer traffic of one op
    net_bytes: float = 0.0
    net_byte_hops: float = 0.0
    offchip_bytes: dict = field(default_factory=lambda: defaultdict(float))  # per chip: spilled activations
    op_buffer_ns: dict = field(default_factory=dict)  # per op: its buffer traffic's time (spills included)


@dataclass(frozen=True)
class _Mapping:
    """What `evaluate` reads of the mapping once: its loads and where things are."""

    module: Module
    defs: dict
    loads: Loads
    home: dict
    spread: dict
    op_tiles: dict
    in_use: list
    chips_used: int  # stages: chips of the target's kind the mapping spans
    base_tiles: int  # the baseline's: its crossbars fill tiles in order
    chip_of: dict  # op -> the chip it runs on
    links: Links
    spills: dict  # op -> bytes of its buffer traffic that go off chip
    physical: int  # chips that run the stages (fewer than the stages: in rounds)


def _traffic(op: Op, m: _Mapping, tally: _Tally, parts: dict) -> tuple[float, float, float]:
    """An op's buffer traffic and network transfers: (buffer ns, traffic ns, network ns)."""
    t, defs = m.module.target, m.defs
    data_bytes = t.input_bits / 8
    traffic_bytes = buffer_bytes(op, defs, data_bytes)
    buffer_ns = traffic_bytes / t.buffer_bytes_per_ns
    spill = m.spills.get(op.result, 0.0)
    if spill:  # what the tile buffers do not hold streams to off-chip memory and back
        tally.offchip_bytes[m.chip_of.get(op.result, 0)] += spill
        parts["offchip"] = spill * t.offchip_pj_per_byte
        if t.offchip_bytes_per_ns:
            buffer_ns = max(buffer_ns, spill / t.offchip_bytes_per_ns)
    traffic_ns = buffer_ns
    tally.op_buffer_ns[op.result] = buffer_ns
    network_ns = m.links.op_ns.get(op.result, 0.0)  # inputs from other chips cross the links first
    parts["link"] = m.links.op_pj.get(op.result, 0.0)
    traffic_ns = max(traffic_ns, network_ns)
    tally.buffer_bound_ns = max(tally.buffer_bound_ns, buffer_ns)
    parts["buffer"] = traffic_bytes * t.buffer_pj_per_byte
    if m.home:
        moved, byte_hops, worst = network_traffic(m.module, op, m.loads.blocks.get(op.result, []),
                                                  m.loads.copies.get(op.result, 0), m.loads.placed, m.home,
                                                  data_bytes, defs, m.spread)
        tally.net_bytes += moved
        tally.net_byte_hops += byte_hops
        parts["network"] = byte_hops * t.noc_pj_per_byte_hop
        if t.noc_bytes_per_ns and moved:
            network_ns += moved / t.noc_bytes_per_ns + worst * t.noc_hop_ns
            traffic_ns = max(traffic_ns, network_ns)
    return buffer_ns, traffic_ns, network_ns


def _weight_layer(op: Op, m: _Mapping, tally: _Tally, parts: dict, buffer_ns: float, traffic_ns: float,
                  network_ns: float) -> LayerCost:
    """A weight layer's cost, and its share of the bounds and the baseline."""
    t, loads = m.module.target, m.loads
    cells = weight_cells(t, op) if op.get("rows") is not None else 0
    tally.cells_one_copy += cells
    bs = loads.blocks.get(op.result, [])
    c = loads.copies.get(op.result, 0)
    # every replica is programmed: a copy whose blocks hold k lanes counts k times
    lanes_per_copy = {b["copy"]: b.get("lanes", 1) for b in bs}
    replicas = sum(lanes_per_copy.values()) * (op.get("copies") or 1) if lanes_per_copy else c
    tally.cells_all += cells * replicas
    first = [one_lane(b) for b in bs if b["copy"] == 0]  # the baseline's blocks: one lane
    view = pool_target(t, first[0]) if first else t
    mvm_ns = partition_mvm_ns(view, op, first)
    family = layout_family(view, op) if first else None
    if family is not None:
        tally.families[op.result] = family
    compute_ns = max(loads.layer_xbar_load.get(op.result, {}).values(), default=0.0)
    for k, v in loads.layer_energy_pj.get(op.result, {}).items():
        parts[k] += v
    if bs:  # partial sums of row blocks are added in the digital units
        row_blocks = len({b["rows"] for b in bs if b["copy"] == 0})
        parts["digital"] += (row_blocks - 1) * op["mvms"] * op["groups"] * op["cols"] * t.digital_op_pj
        # bounds hold whatever lanes a mapping gives a block: its fastest per MVM
        best = [best_mvm_ns(t, b) for b in first]
        work, longest = sum(best), max(best)
        if family is not None:  # any layout the passes may give it
            work, longest = min(work, family[0]), min(longest, family[1])
        tally.block_read_work_ns += op["mvms"] * work
        tally.longest_mvm_ns = max(tally.longest_mvm_ns, longest)
        tally.base_period_ns = max(tally.base_period_ns, op["mvms"] * mvm_ns)
    latency = max(compute_ns, traffic_ns)
    tally.bound_ns[op.result] = min(mvm_ns, family[2]) if family is not None else mvm_ns
    tally.base_ns[op.result] = max(op["mvms"] * mvm_ns, traffic_ns)
    area = 0.0
    for b in bs:
        view = pool_target(t, b)
        cells_b = block_footprint(t, b).cells
        area += cells_b / view.cells_per_xbar * xbar_full_area_um2(view) * 1e-6
        if b["copy"] == 0:
            tally.pool_cells[block_pool(t, b)] += cells_b
    return LayerCost(op.result, op.kind, op["rows"], op["cols"], op["groups"], op["mvms"],
                     len(bs) * (op.get("copies") or 1), c, loads.crossbars(loads.layer_xbar_load.get(op.result, {})),
                     latency, sum(parts.values()) * 1e-3, energy_breakdown_nj=nj(parts), area_mm2=area,
                     buffer_ns=buffer_ns, network_ns=network_ns, lanes=max((b.get("lanes", 1) for b in bs), default=1),
                     busy_ns=compute_ns)


def _digital_op(op: Op, m: _Mapping, tally: _Tally, parts: dict, buffer_ns: float, traffic_ns: float,
                network_ns: float) -> LayerCost:
    """A digital op's cost: split evenly over the tiles it runs on, a load on each of them."""
    t = m.module.target
    ops = op["ops"] if op.kind in DIGITAL_KINDS else 0
    tally.digital_ops += ops
    parts["digital"] += ops * t.digital_op_pj
    where = m.op_tiles.get(op.result) or m.in_use
    compute_ns = digital_ns(t, ops, len(where))
    if ops:
        for tile in where:
            tally.digital_load[tile] += compute_ns
    latency = max(compute_ns, traffic_ns)
    tally.base_ns[op.result] = max(digital_ns(t, ops, m.base_tiles), buffer_ns)
    # a scheduled digital op streams: after its input's last row it needs one row's
    # time, which at best is split over every tile of the chips
    rows = op["shape"][2] if len(op["shape"]) == 4 else 1
    tally.bound_ns[op.result] = max(digital_ns(t, ops, t.tiles * m.chips_used), buffer_ns) / max(rows, 1)
    return LayerCost(op.result, op.kind, 0, 0, 0, 0, 0, 0, 0, latency, sum(parts.values()) * 1e-3,
                     fn=op.get("fn", ""), energy_breakdown_nj=nj(parts), buffer_ns=buffer_ns, network_ns=network_ns,
                     busy_ns=compute_ns)


def _read(module: Module) -> _Mapping:
    t = module.target
    loads = mapping_loads(module)
    in_use = tiles_in_use(module, loads)
    spread = spread_tiles(module)
    first_blocks = sum(1 for bs in loads.blocks.values() for b in bs if b["copy"] == 0)
    defs = module.by_name()
    home = home_tiles(module, loads.blocks, loads.placed) if loads.placed else {}
    op_tiles = digital_tiles(module, loads.blocks, loads.placed, in_use, spread)
    if not loads.placed and any(op.get("chip") for op in module.ops if op.namespace == "nn"):
        # unplaced stages fill their own chips' tiles
        in_use = tuple(sorted({tile for op in module.ops if op.result in loads.blocks
                               for tile in op_tiles.get(op.result, ())}))
        op_tiles = digital_tiles(module, loads.blocks, loads.placed, in_use, spread)
    chip_of = op_chips(module, home, op_tiles)
    chips_used = max(max((tile // t.tiles + 1 for tile in in_use), default=1), max(chip_of.values(), default=0) + 1)
    physical = min(facts.get(module, "chips") or chips_used, chips_used)
    return _Mapping(module, defs, loads, home, spread, op_tiles, in_use, chips_used,
                    max(1, math.ceil(first_blocks / t.xbars_per_tile_all)), chip_of,
                    chip_links(module, chip_of, defs, physical, loads.blocks, loads.placed), buffer_spills(module, op_tiles, chip_of, defs),
                    physical)


def _with_static(layers: list, static_pj: float) -> list:
    """Each weight layer carries the leakage of its share of the crossbar area it holds."""
    held = sum(layer.area_mm2 for layer in layers)
    if not (static_pj and held):
        return layers
    static_nj = static_pj * 1e-3
    return [dataclasses.replace(layer, energy_nj=layer.energy_nj + static_nj * layer.area_mm2 / held,
                                energy_breakdown_nj={**layer.energy_breakdown_nj,
                                                     "static": static_nj * layer.area_mm2 / held})
            if layer.area_mm2 else layer for layer in layers]


def _multi_chip(module: Module, m: _Mapping, reloading: bool) -> tuple[list, dict]:
    """What the figures of a mapping over several chips leave out, and (when the chips are not
    reloaded) what reprogramming one chip per inference would cost instead."""
    if m.chips_used <= 1:
        return [], {}
    t = module.target
    warnings = []
    if not t.link_bytes_per_ns and m.links.bytes_total:
        warnings.append(f"the mapping spans {m.chips_used} chips of {t.name} but the target gives the link between "
                        "chips no bandwidth (link_bytes_per_ns = 0): its transfers are not timed.")
    if reloading:
        if not (t.cell_write_ns and t.cell_write_pj):
            warnings.append(f"the chips are reprogrammed between rounds, but target {t.name} has no cell write "
                            "figures (cell_write_ns, cell_write_pj): the writes are not costed.")
        return warnings, {}
    reprogramming = reprogramming_cost(module, m.loads.blocks, m.loads.placed)
    if not reprogramming.get("costed"):
        warnings.append("reprogramming one chip instead of more chips is not costed: the target has no cell write "
                        "figures (cell_write_ns, cell_write_pj).")
    return warnings, reprogramming


def _chip_periods(module: Module, m: _Mapping, tally: _Tally, period_parts: dict) -> dict[int, float]:
    """Each chip's own period: its busiest crossbar, tile's digital units, op's buffer traffic
    and off-chip spills; the network and links as the whole mapping's."""
    t, loads = module.target, m.loads
    out: dict[int, float] = defaultdict(float)
    for layer, per in loads.layer_xbar_load.items():
        for key in per:
            chip = key[0] // t.tiles if isinstance(key[0], int) else m.chip_of.get(layer, 0)
            out[chip] = max(out[chip], loads.xbar_load[key])
    for tile, v in tally.digital_load.items():
        out[tile // t.tiles] = max(out[tile // t.tiles], v)
    for op, v in tally.op_buffer_ns.items():
        chip = m.chip_of.get(op, 0)
        out[chip] = max(out[chip], v)
    for chip, nbytes in tally.offchip_bytes.items():
        if t.offchip_bytes_per_ns:
            out[chip] = max(out[chip], nbytes / t.offchip_bytes_per_ns)
    shared = max(period_parts["network"], period_parts["link"])
    return {c: max(v, shared) for c, v in out.items()}


def _rounds(module: Module, m: _Mapping, tally: _Tally, slots: list, physical: int, stage_period: dict) -> dict:
    """The rounds of a mapping with more stages than chips (see `rounds_cost`)."""
    spans: dict[int, list] = defaultdict(list)
    if slots:
        for s in slots:
            spans[m.chip_of.get(s.operands[0], 0)].append((s["start_ns"], s["end_ns"]))
        stage_latency = {c: max(e for _, e in v) - min(b for b, _ in v) for c, v in spans.items()}
    else:  # the ops of a stage one after another: no shorter than its longest path
        stage_latency = defaultdict(float)
        for name, ns in tally.time_ns.items():
            stage_latency[m.chip_of.get(name, 0)] += ns
    return rounds_cost(module, m.loads.blocks, m.loads.placed, m.chip_of, physical, m.chips_used, stage_period,
                       stage_latency, m.defs, facts.get(module, "batch"))


def _chips_figures(module: Module, m: _Mapping, tally: _Tally, period_parts: dict, periods: dict, physical: int,
                   rounds: dict, energy_nj: float, period_ns: float) -> dict:
    """Per-chip figures, the links' and the reloads' shares, and the spills (empty for one
    chip that spills nothing)."""
    t = module.target
    spilled = sum(tally.offchip_bytes.values())
    if m.chips_used <= 1 and not spilled:
        return {}
    xbars: dict[int, int] = defaultdict(int)
    for key in m.loads.xbar_load:
        chip = key[0] // t.tiles if isinstance(key[0], int) else \
            m.chip_of.get(m.defs[key[1]].operands[0], 0) if key[1] in m.defs else 0
        xbars[chip] += m.loads.xbar_count.get(key, 1)
    energy: dict[int, float] = defaultdict(float)
    for layer in tally.layers:
        energy[m.chip_of.get(layer.name, 0)] += layer.energy_nj
    link_nj = tally.totals_pj["link"] * 1e-3
    out = {"stages": m.chips_used, "physical": physical, "rounds": rounds.get("rounds", 1),
           "batch": facts.get(module, "batch"),
           "per_chip": [{"chip": c, "crossbars": xbars.get(c, 0), "period_ns": periods.get(c, 0.0),
                         "energy_nj": energy.get(c, 0.0)} for c in range(m.chips_used)],
           "link": {"bytes_per_inference": sum(m.links.boundary_bytes.values()),
                    "busiest_link_bytes": max(m.links.boundary_bytes.values(), default=0.0),
                    "period_ns": period_parts["link"], "energy_nj": link_nj,
                    "share_of_period": period_parts["link"] / period_ns, "share_of_energy": link_nj / energy_nj
                    if energy_nj else 0.0},
           "spills": {"bytes_per_inference": spilled, "period_ns": period_parts["offchip"],
                      "energy_nj": tally.totals_pj["offchip"] * 1e-3}}
    if rounds:
        out["reload"] = {**{k: v for k, v in rounds.items() if k != "lifetime_s"},
                         "lifetime_s": rounds["lifetime_s"] if math.isfinite(rounds["lifetime_s"]) else -1.0,
                         "lifetime": lifetime_text(rounds["lifetime_s"]),
                         "share_of_period": rounds["write_ns_per_inference"] / period_ns,
                         "share_of_energy": rounds["write_nj_per_inference"] / energy_nj if energy_nj else 0.0}
    return out


def _bottleneck(period_set_by: str, loads, tally: _Tally, m: _Mapping) -> str:
    """The op that sets the period: the one with the most work on the busiest crossbar (or on
    the busiest tile's digital units), or with the most buffer or network time."""
    layers = tally.layers
    if period_set_by == "crossbars" and loads.xbar_load:
        key = max(loads.xbar_load, key=loads.xbar_load.get)
        return max(loads.layer_xbar_load, key=lambda n: loads.layer_xbar_load[n].get(key, 0.0), default="")
    if period_set_by == "digital" and tally.digital_load:
        tile = max(tally.digital_load, key=tally.digital_load.get)
        on = [x for x in layers if not x.rows and tile in (m.op_tiles.get(x.name) or m.in_use)]
        return max(on, key=lambda x: x.busy_ns).name if on else ""
    if not layers:
        return ""
    field = "network_ns" if period_set_by == "network" else "buffer_ns"
    return max(layers, key=lambda x: getattr(x, field)).name


def evaluate(module: Module, model: str | None = None, passes: str | None = None, compile_s: float = 0.0,
             solver: dict | None = None, pass_seconds: dict | None = None, bounds: bool = True) -> Report:
    """The mapping's report. bounds=False leaves out the costliest bound (the shared-work
    bound on the period), for passes that compare mappings by their figures alone."""
    t = module.target
    m = _read(module)
    loads, chips_used = m.loads, m.chips_used
    tally = _Tally()
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        parts = dict.fromkeys(COMPONENTS, 0.0)
        buffer_ns, traffic_ns, network_ns = _traffic(op, m, tally, parts)
        cost = (_weight_layer if op.kind in WEIGHT_KINDS else _digital_op)(op, m, tally, parts, buffer_ns,
                                                                            traffic_ns, network_ns)
        tally.layers.append(cost)
        tally.time_ns[op.result] = cost.latency_ns
        tally.energy_pj += sum(parts.values())
        for k, v in parts.items():
            tally.totals_pj[k] += v

    slots = [op for op in module.ops if op.kind == "sched.slot"]
    path_ns, latency_bound_ns, base_latency_ns = longest_paths(module, (tally.time_ns, tally.bound_ns, tally.base_ns))
    latency_ns = max((s["end_ns"] for s in slots), default=0.0) if slots else path_ns

    xbars_used = loads.crossbars()
    tiles_used = len(set(m.in_use)) if loads.placed else math.ceil(xbars_used / t.xbars_per_tile_all)
    # cells of the crossbars used (their pool's size), and the fewest crossbars one copy fits
    used_cells = sum((t.pool(t.pool_of_xbar(key[1])).cells_per_xbar if key[0] != "unplaced"
                      else pool_target(t, m.defs[key[1]]).cells_per_xbar) * loads.xbar_count.get(key, 1)
                     for key in loads.xbar_load) if t.pools \
        else xbars_used * t.cells_per_xbar
    xbars_bound = (sum(crossbars_lower_bound(t.pool(p), c) for p, c in tally.pool_cells.items()) if t.pools
                   else crossbars_lower_bound(t, tally.cells_one_copy))
    budget = facts.get(module, "budget") or t.xbars * chips_used
    # the network as a whole: every byte-hop of one inference over all its links
    offchip_ns = max(tally.offchip_bytes.values(), default=0.0) / t.offchip_bytes_per_ns \
        if t.offchip_bytes_per_ns else 0.0
    period_parts = {"crossbars": max(loads.xbar_load.values(), default=0.0),
                    "digital": max(tally.digital_load.values(), default=0.0),  # the busiest tile's digital units
                    "buffer": tally.buffer_bound_ns, "network": network_period_ns(t, tally.net_byte_hops, chips_used),
                    "link": link_period_ns(t, m.links),  # the busiest link between chips
                    "offchip": offchip_ns}  # the busiest chip's spills to off-chip memory
    physical = m.physical
    chip_periods = _chip_periods(module, m, tally, period_parts) if chips_used > 1 or tally.offchip_bytes else {}
    rounds = _rounds(module, m, tally, slots, physical, chip_periods) if physical < chips_used else {}
    if rounds:  # the batch's writes and runs, per inference
        period_parts["reload"] = rounds["period_ns"]
    period_ns = max(max(period_parts.values()), 1e-9)
    period_set_by = max(period_parts, key=lambda k: period_parts[k])
    bottleneck = _bottleneck(period_set_by, loads, tally, m) if period_set_by not in ("link", "reload") else ""

    period_bound_ns = max(tally.block_read_work_ns / budget,
                          shared_work_bound(t, loads.blocks, m.defs, budget, tally.families) if bounds else 0.0,
                          tally.longest_mvm_ns,
                          digital_ns(t, tally.digital_ops, t.tiles * chips_used),
                          facts.get(module, "period_bound_ns"), tally.buffer_bound_ns, 1e-9,
                          # this split's links and spills, and the rounds' writes, whatever the copies
                          period_parts["link"], offchip_ns, rounds.get("write_ns_per_inference", 0.0))
    base_period_ns = max(tally.base_period_ns, digital_ns(t, tally.digital_ops, m.base_tiles), tally.buffer_bound_ns,
                         1e-9)
    # one inference passes every resource: it takes no less than the work the busiest one does
    # for it (ops that share a tile's digital units or a crossbar do not overlap on it)
    if rounds:  # an inference's result comes after the last round of its batch
        latency_ns = max(latency_ns, rounds["batch_ns"])
    latency_ns = max(latency_ns, period_ns)
    latency_bound_ns = max(latency_bound_ns, period_bound_ns)
    if rounds:  # the chips hold one round's stages at a time: the largest round's tiles
        per_stage = defaultdict(set)
        for tile in m.in_use:
            per_stage[tile // t.tiles].add(tile)
        tiles_used = max(sum(len(per_stage[c]) for c in range(r, min(r + physical, chips_used)))
                         for r in range(0, chips_used, physical))
    area = tiles_used * t.tile_area_mm2
    # leakage of the tiles and crossbars in use over the time one inference holds them in the
    # pipeline: one period (mW x ns = pJ); a tile's unnamed power counts as static too
    totals = tally.totals_pj
    totals["static"] = (tiles_used * (t.tile_leakage_mw + t.tile_overhead_power_mw)
                        + xbars_used * t.xbar_static_mw) * period_ns
    between_rounds_pj = rounds.get("offchip_nj_per_inference", 0.0) * 1e3  # tensors out and back between rounds
    if rounds:  # the writes of each round, and the tensors between rounds, over the batch
        totals["reload"] = rounds["write_nj_per_inference"] * 1e3
        totals["offchip"] += between_rounds_pj
    energy_nj = (tally.energy_pj + totals["static"] + totals["reload"] + between_rounds_pj) * 1e-3
    layers = _with_static(tally.layers, totals["static"])
    info = dict(solver or {})
    for key, value in module.attrs:
        if key.startswith(("duplicate_", "pack_", "schedule_")):
            info[key] = value
    stream = {k: module.get(k) for k in ("stream_inferences", "stream_makespan_ns") if module.get(k) is not None}
    warnings, reprogramming = _multi_chip(module, m, bool(rounds))
    chips = _chips_figures(module, m, tally, period_parts, chip_periods, physical, rounds, energy_nj, period_ns)
    return Report(
        model=model or module.name, target=t.name, passes=passes or str(module.get("passes", "")),
        crossbars_used=xbars_used, crossbars_available=t.xbars * physical, chips_used=physical, budget=budget,
        crossbars_lower_bound=xbars_bound,
        utilization=(tally.cells_all / used_cells) if xbars_used else 0.0,
        latency_ns=latency_ns, latency_lower_bound_ns=latency_bound_ns,
        throughput_ips=1e9 / period_ns, throughput_upper_bound_ips=1e9 / period_bound_ns,
        period_ns=period_ns, period_lower_bound_ns=period_bound_ns,
        energy_nj=energy_nj, area_mm2=area, chip_area_mm2=t.chip_area_mm2,
        edap=energy_nj * latency_ns * area, compile_s=compile_s, tiles_used=tiles_used,
        weight_cells=tally.cells_one_copy,
        speedup_vs_baseline={"throughput": base_period_ns / period_ns,
                             "latency": base_latency_ns / latency_ns if latency_ns else 0.0},
        baseline={"period_ns": base_period_ns, "latency_ns": base_latency_ns,
                  "crossbars": sum(len([b for b in bs if b["copy"] == 0]) for bs in loads.blocks.values())},
        gap={"throughput": period_ns / period_bound_ns - 1, "latency": latency_ns / latency_bound_ns - 1
             if latency_bound_ns else 0.0,
             "crossbars": xbars_used / max(xbars_bound, 1) - 1},
        solver=info, stream=stream, period_set_by=period_set_by, bottleneck=bottleneck, period_parts_ns=period_parts,
        warnings=tuple(warnings),
        energy_breakdown_nj=nj(totals),
        area_breakdown_mm2={k: v * tiles_used for k, v in t.tile_area_breakdown().items()},
        network={"topology": t.noc, "bytes_between_tiles": tally.net_bytes, "byte_hops": tally.net_byte_hops},
        reprogramming=reprogramming, converter=t.converter(), pass_seconds=dict(pass_seconds or {}), chips=chips,
        layers=tuple(layers))
