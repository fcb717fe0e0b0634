"""`evaluate`: a mapped Module's report (latency, throughput, energy, area, utilization, and each figure's bound), and what reprogramming one chip would cost instead of more chips."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

from cimc import facts
from cimc.cost.bounds import longest_paths, shared_work_bound
from cimc.cost.loads import (
    COMPONENTS,
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
from cimc.ir import Module
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
    weight_bytes = cells * t.cell_bits / 8
    link_ns = weight_bytes / t.offchip_bytes_per_ns if t.offchip_bytes_per_ns else 0.0
    ns = max(rounds * t.xbar_rows * t.cell_write_ns, link_ns)
    nj = (cells * t.cell_write_pj + weight_bytes * t.offchip_pj_per_byte) * 1e-3
    return {"costed": True, "crossbars": len(xbars), "cells": cells, "rounds": rounds, "ns": ns, "nj": nj}


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
                                    c, n_xbars, latency, energy_pj * 1e-3, energy_breakdown_nj=nj(parts),
                                    area_mm2=area, buffer_ns=buffer_ns, network_ns=network_ns,
                                    lanes=max((b.get("lanes", 1) for b in bs), default=1)))
        else:
            ops = op["ops"] if op.kind in DIGITAL_KINDS else 0
            digital_ops_total += ops
            parts["digital"] += ops * t.digital_op_pj
            energy_pj = sum(parts.values())
            where = op_tiles.get(op.result) or in_use
            compute_ns = digital_ns(t, ops, len(where))  # split evenly over its tiles
            if ops:
                for tile in where:
                    digital_load[tile] += compute_ns
            latency = max(compute_ns, traffic_ns)
            base_ns[op.result] = max(digital_ns(t, ops, base_tiles), buffer_ns)
            # a scheduled digital op streams: after its input's last row it needs one row's
            # time, which at best is split over every tile of the chips
            rows = op["shape"][2] if len(op["shape"]) == 4 else 1
            bound_ns[op.result] = max(digital_ns(t, ops, t.tiles * chips_used), buffer_ns) / max(rows, 1)
            layers.append(LayerCost(op.result, op.kind, 0, 0, 0, 0, 0, 0, 0, latency, energy_pj * 1e-3,
                                    fn=op.get("fn", ""), energy_breakdown_nj=nj(parts), buffer_ns=buffer_ns,
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
    period_bound_ns = max(block_read_work_ns / budget, shared_work_bound(t, blocks, defs, budget, families), longest_mvm_ns,
                          digital_ns(t, digital_ops_total, t.tiles * chips_used),
                          facts.get(module, "period_bound_ns"), buffer_bound_ns, 1e-9)
    base_period_ns = max(base_period_ns, digital_ns(t, digital_ops_total, base_tiles), buffer_bound_ns, 1e-9)
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
        solver=info, stream=stream, period_set_by=period_set_by, warnings=tuple(warnings), energy_breakdown_nj=nj(totals),
        area_breakdown_mm2={k: v * tiles_used for k, v in t.tile_area_breakdown().items()},
        network={"topology": t.noc, "bytes_between_tiles": net_bytes, "byte_hops": net_byte_hops},
        reprogramming=reprogramming, converter=t.converter(), layers=tuple(layers))
