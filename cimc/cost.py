"""The cost model: latency, throughput, energy, area and utilization of a mapped Module.

Units: ns, nJ (pJ inside), mm2. What the numbers mean:
- A block's MVM takes `reads_per_mvm` crossbar reads; a read takes the longer of the array
  read and the conversions of its active columns by the ADCs they share
  (`Target.read_ns`). Blocks in one crossbar cannot read at the same time.
- A weight layer's copies split its MVMs evenly; within a copy, blocks on different
  crossbars read in parallel, blocks sharing a crossbar one after another. The layer's
  time is its share of MVMs times the slowest crossbar's time per MVM.
- A digital op takes `ops / digital_ops_per_ns`; every op moves its input and output
  elements through the tile buffer, at `buffer_bytes_per_ns` (overlapped with compute:
  the longer of the two counts).
- Latency: the longest path through the graph, each op taking its time (no overlap
  between a producer and its consumer within one inference).
- Throughput: in steady state inferences are pipelined, so the period is the busiest
  resource's work per inference: a crossbar (all its blocks' reads), or the digital units
  of the tiles in use (all digital work spread over them).
- Energy per MVM of a block, per read: active rows x `row_read_pj` + active cells x
  `cell_read_fj` + conversions x `adc_conversion_pj`; partial sums of row blocks are added
  digitally; every op's buffer traffic costs `buffer_pj_per_byte`.
- Area: the tiles the placement touches (`area_mm2`) and the whole chip (`chip_area_mm2`).
Bounds: `crossbars_lower_bound` = ceil(weight cells / cells per crossbar);
`latency_lower_bound_ns` = the longest path with every weight layer at one MVM time
(unlimited copies) and digital ops as above; `throughput_upper_bound_ips` = all crossbars
of the target sharing the total crossbar work evenly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, block_footprint, crossbars_lower_bound, weight_cells
from cimc.ops import DIGITAL_KINDS
from cimc.report import LayerCost, Report


@dataclass
class _LayerWork:
    op: Op
    copies: int = 0
    blocks: int = 0
    xbars: set = None
    time_ns: float = 0.0
    energy_pj: float = 0.0
    mvm_ns: float = 0.0  # one MVM of one copy: the slowest crossbar's time


def evaluate(module: Module, model: str | None = None, passes: str | None = None, compile_s: float = 0.0) -> Report:
    t = module.target
    defs = module.by_name()
    users = module.users()
    placed = {op.operands[0]: op for op in module.ops if op.kind == "map.place"}
    data_bytes = t.input_bits / 8

    work: dict[str, _LayerWork] = {}
    xbar_busy_ns: dict[tuple[int, int], float] = defaultdict(float)
    blocks_by_copy: dict[tuple[str, int], list[Op]] = defaultdict(list)
    for op in module.of_kind("map.block"):
        blocks_by_copy[(op.operands[0], op["copy"])].append(op)
    unplaced_id = 0
    block_energy_pj: dict[str, float] = {}
    for (layer_name, copy), blocks in blocks_by_copy.items():
        layer = defs[layer_name]
        w = work.setdefault(layer_name, _LayerWork(layer, xbars=set()))
        w.copies += 1
        w.blocks += len(blocks)
        per_xbar: dict = defaultdict(float)
        for b in blocks:
            fp = block_footprint(t, b)
            mvm_ns = fp.reads_per_mvm * t.read_ns(fp.active_cols)
            if b.result in placed:
                p = placed[b.result]
                key = (p["tile"], p["xbar"])
            else:  # unplaced mapping: each block on a crossbar of its own
                key, unplaced_id = ("unplaced", unplaced_id), unplaced_id + 1
            per_xbar[key] += mvm_ns
            w.xbars.add(key)
            block_energy_pj[b.result] = fp.reads_per_mvm * (
                fp.rows * t.row_read_pj + fp.rows * fp.active_cols * t.cell_read_fj * 1e-3
                + fp.active_cols * t.adc_conversion_pj)
        w.mvm_ns = max(w.mvm_ns, max(per_xbar.values()))
    for name, w in work.items():
        w.time_ns = math.ceil(w.op["mvms"] / w.copies) * w.mvm_ns
        # partial sums of row blocks are added in the digital units
        row_blocks = len({b["rows"] for b in blocks_by_copy[(name, 0)]})
        w.energy_pj += (row_blocks - 1) * w.op["mvms"] * w.op["groups"] * w.op["cols"] * t.digital_op_pj
    for (layer_name, copy), blocks in blocks_by_copy.items():
        w = work[layer_name]
        mvms = w.op["mvms"]
        n_copy = mvms // w.copies + (1 if copy < mvms % w.copies else 0)  # this copy's share of the MVMs
        for b in blocks:
            w.energy_pj += n_copy * block_energy_pj[b.result]
            if b.result in placed:
                p = placed[b.result]
                fp = block_footprint(t, b)
                xbar_busy_ns[(p["tile"], p["xbar"])] += n_copy * fp.reads_per_mvm * t.read_ns(fp.active_cols)

    layers: list[LayerCost] = []
    time_ns: dict[str, float] = {}
    bound_ns: dict[str, float] = {}
    digital_ops_total = 0
    total_energy_pj = 0.0
    cells_one_copy = cells_all = 0
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        in_elems = sum(math.prod(defs[o]["shape"]) for o in op.operands if o in defs)
        traffic_bytes = (in_elems + math.prod(op["shape"])) * data_bytes
        traffic_ns = traffic_bytes / t.buffer_bytes_per_ns
        energy_pj = traffic_bytes * t.buffer_pj_per_byte
        if op.kind in WEIGHT_KINDS:
            w = work.get(op.result)
            cells = weight_cells(t, op) if op.get("rows") is not None else 0
            cells_one_copy += cells
            if w is None:  # not partitioned yet: no crossbar time known
                compute_ns, mvm_ns, copies, blocks, xbars = 0.0, 0.0, 0, 0, 0
            else:
                compute_ns, mvm_ns, copies, blocks, xbars = w.time_ns, w.mvm_ns, w.copies, w.blocks, len(w.xbars)
                energy_pj += w.energy_pj
                cells_all += cells * w.copies
            latency = max(compute_ns, traffic_ns)
            bound = max(mvm_ns, traffic_ns / max(copies, 1))
            layers.append(LayerCost(op.result, op.kind, op["rows"], op["cols"], op["groups"], op["mvms"], blocks,
                                    copies, xbars, latency, energy_pj * 1e-3))
        else:
            ops = op["ops"] if op.kind in DIGITAL_KINDS else 0
            digital_ops_total += ops
            energy_pj += ops * t.digital_op_pj
            latency = max(ops / t.digital_ops_per_ns, traffic_ns)
            bound = latency
            layers.append(LayerCost(op.result, op.kind, 0, 0, 0, 0, 0, 0, 0, latency, energy_pj * 1e-3,
                                    fn=op.get("fn", "")))
        time_ns[op.result] = latency
        bound_ns[op.result] = bound
        total_energy_pj += energy_pj

    latency_ns = _longest_path(module, time_ns)
    latency_bound_ns = _longest_path(module, bound_ns)
    xbars_used = len({(p["tile"], p["xbar"]) for p in placed.values()}) or sum(w.blocks for w in work.values())
    tiles_used = len({p["tile"] for p in placed.values()}) or math.ceil(xbars_used / t.xbars_per_tile)
    chips_used = max((p["tile"] // t.tiles + 1 for p in placed.values()), default=max(1, -(-xbars_used // t.xbars)))
    digital_period = digital_ops_total / (t.digital_ops_per_ns * max(tiles_used, 1))
    crossbar_period = max(xbar_busy_ns.values(), default=0.0)
    if not placed:  # unplaced: every block on its own crossbar
        crossbar_period = max((w.time_ns for w in work.values()), default=0.0)
    period_ns = max(crossbar_period, digital_period, 1e-9)
    total_xbar_work = sum(w.time_ns * len(w.xbars) for w in work.values())  # upper estimate when unplaced
    if placed:
        total_xbar_work = sum(xbar_busy_ns.values())
    period_bound_ns = max(total_xbar_work / (t.xbars * chips_used),
                          digital_ops_total / (t.digital_ops_per_ns * t.tiles * chips_used), 1e-9)
    area = tiles_used * t.tile_area_mm2
    energy_nj = total_energy_pj * 1e-3
    return Report(
        model=model or module.name, target=t.name, passes=passes or str(module.get("passes", "")),
        crossbars_used=xbars_used, crossbars_available=t.xbars * chips_used, chips_used=chips_used,
        crossbars_lower_bound=crossbars_lower_bound(t, cells_one_copy),
        utilization=(cells_all / (xbars_used * t.cells_per_xbar)) if xbars_used else 0.0,
        latency_ns=latency_ns, latency_lower_bound_ns=latency_bound_ns,
        throughput_ips=1e9 / period_ns, throughput_upper_bound_ips=1e9 / period_bound_ns,
        energy_nj=energy_nj, area_mm2=area, chip_area_mm2=t.chip_area_mm2,
        edap=energy_nj * latency_ns * area, compile_s=compile_s, tiles_used=tiles_used,
        weight_cells=cells_one_copy, layers=tuple(layers))


def _longest_path(module: Module, time_ns: dict[str, float]) -> float:
    """Longest path (sum of op times) from any input to any op, over the def-use order."""
    finish: dict[str, float] = {}
    best = 0.0
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        start = max((finish.get(o, 0.0) for o in op.operands), default=0.0)
        finish[op.result] = start + time_ns.get(op.result, 0.0)
        best = max(best, finish[op.result])
    return best
