"""The cost model: latency, throughput, energy, area and utilization of a mapped Module.

Units: ns, nJ (pJ inside), mm2. What the numbers mean:
- A block's MVM takes `reads_per_mvm` crossbar reads; a read takes the longer of the array
  read and the conversions of its active columns by the ADCs they share
  (`Target.read_ns`). Blocks in one crossbar never read at the same time.
- A layer's copies split its MVMs: evenly, or as each copy's `share` says. The load
  of a block is its copy's MVMs times its MVM time; the load of a crossbar is the sum of
  its blocks' loads. A layer running alone takes the largest load it puts on one crossbar:
  copies (or blocks) that share a crossbar do not speed it up.
- A digital op takes `ops / digital_ops_per_ns`; every op moves its input and output
  elements through the tile buffer at `buffer_bytes_per_ns` (overlapped with compute: the
  longer of the two counts).
- Latency: the schedule's makespan when the mapping has one (`sched.slot`), else the
  longest path through the graph with every op taking its time.
- Throughput: inferences pipelined; the period is the busiest resource's work per
  inference: a crossbar's load, or the digital units of the tiles in use.
- Energy per block MVM, per read: active rows x `row_read_pj` + active cells x
  `cell_read_fj` + conversions x `adc_conversion_pj`; partial sums of row blocks are added
  digitally; every op's buffer traffic costs `buffer_pj_per_byte`.
- Area: the tiles the placement touches (`area_mm2`) and the whole chip (`chip_area_mm2`).
Bounds (valid for the module's partition, whatever the duplication and packing):
- crossbars: ceil(weight cells of one copy / cells per crossbar);
- period: total block-read time per inference over the crossbar budget; no block's single
  MVM can be split; digital work over all tiles' digital units; and, after `duplicate`,
  the proven bound of its relaxation (cells, loads) with every cell of the budget allowed;
- latency: the longest path with every weight layer at one MVM time (unlimited copies)
  and every digital op at one output row's time (ops stream row by row).
The ISAAC-like baseline of the same partition (every block on its own crossbar, one copy)
is costed alongside, for `speedup_vs_baseline`.
"""

from __future__ import annotations

import math
from collections import defaultdict

from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, block_footprint, crossbars_lower_bound, weight_cells
from cimc.ops import DIGITAL_KINDS
from cimc.report import LayerCost, Report


def copy_share(mvms: int, copies: int, copy: int) -> int:
    """MVMs that copy `copy` of `copies` performs (the first `mvms % copies` take one more)."""
    return mvms // copies + (1 if copy < mvms % copies else 0)


def block_share(block: Op, mvms: int, copies: int) -> int:
    """MVMs a block's copy performs: its explicit `share`, else an even split."""
    share = block.get("share")
    return share if share is not None else copy_share(mvms, copies, block["copy"])


def block_mvm_ns(target, block: Op) -> float:
    fp = block_footprint(target, block)
    return fp.reads_per_mvm * target.read_ns(fp.active_cols)


def block_mvm_parts(target, block: Op) -> tuple[float, float, float]:
    """Energy (pJ) of one MVM of a block: (DACs and row periphery, the array, the ADCs)."""
    fp = block_footprint(target, block)
    n = fp.reads_per_mvm
    return (n * fp.rows * target.row_read_pj, n * fp.rows * fp.active_cols * target.cell_read_fj * 1e-3,
            n * fp.active_cols * target.adc_conversion_pj)


def block_mvm_pj(target, block: Op) -> float:
    return sum(block_mvm_parts(target, block))


COMPONENTS = ("adc", "dac_and_periphery", "array", "digital", "buffer", "network", "static")


def mapping_loads(module: Module):
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
    for name, bs in blocks.items():
        layer = defs[name]
        per_xbar: dict = defaultdict(float)
        energy = {"dac_and_periphery": 0.0, "array": 0.0, "adc": 0.0}
        for b in bs:
            n = block_share(b, layer["mvms"], copies[name])
            p = placed.get(b.result)
            key = (p["tile"], p["xbar"]) if p is not None else ("unplaced", b.result)
            load = n * block_mvm_ns(t, b)
            per_xbar[key] += load
            xbar_load[key] += load
            row, array, adc = block_mvm_parts(t, b)
            energy["dac_and_periphery"] += n * row
            energy["array"] += n * array
            energy["adc"] += n * adc
        layer_xbar_load[name] = per_xbar
        layer_energy_pj[name] = energy
    return copies, blocks, layer_xbar_load, layer_energy_pj, xbar_load, placed


def evaluate(module: Module, model: str | None = None, passes: str | None = None, compile_s: float = 0.0,
             solver: dict | None = None) -> Report:
    t = module.target
    defs = module.by_name()
    data_bytes = t.input_bits / 8
    copies, blocks, layer_xbar_load, layer_energy_pj, xbar_load, placed = mapping_loads(module)

    layers: list[LayerCost] = []
    time_ns: dict[str, float] = {}
    bound_ns: dict[str, float] = {}
    base_ns: dict[str, float] = {}
    digital_ops_total = 0
    total_energy_pj = 0.0
    totals = dict.fromkeys(COMPONENTS, 0.0)
    cells_one_copy = cells_all = 0
    block_read_work_ns = 0.0  # one copy of every block, all MVMs: invariant under duplication
    longest_mvm_ns = 0.0
    base_period_ns = 0.0
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        in_elems = sum(math.prod(defs[o]["shape"]) for o in op.operands if o in defs)
        traffic_bytes = (in_elems + math.prod(op["shape"])) * data_bytes
        traffic_ns = traffic_bytes / t.buffer_bytes_per_ns
        parts = dict.fromkeys(COMPONENTS, 0.0)
        parts["buffer"] = traffic_bytes * t.buffer_pj_per_byte
        if op.kind in WEIGHT_KINDS:
            cells = weight_cells(t, op) if op.get("rows") is not None else 0
            cells_one_copy += cells
            bs = blocks.get(op.result, [])
            c = copies.get(op.result, 0)
            cells_all += cells * c
            mvm_ns = max((block_mvm_ns(t, b) for b in bs if b["copy"] == 0), default=0.0)
            compute_ns = max(layer_xbar_load.get(op.result, {}).values(), default=0.0)
            for k, v in layer_energy_pj.get(op.result, {}).items():
                parts[k] += v
            if bs:  # partial sums of row blocks are added in the digital units
                row_blocks = len({b["rows"] for b in bs if b["copy"] == 0})
                parts["digital"] += (row_blocks - 1) * op["mvms"] * op["groups"] * op["cols"] * t.digital_op_pj
                block_read_work_ns += op["mvms"] * sum(block_mvm_ns(t, b) for b in bs if b["copy"] == 0)
                longest_mvm_ns = max(longest_mvm_ns, mvm_ns)
                base_period_ns = max(base_period_ns, op["mvms"] * mvm_ns)
            latency = max(compute_ns, traffic_ns)
            bound_ns[op.result] = mvm_ns
            base_ns[op.result] = max(op["mvms"] * mvm_ns, traffic_ns)
            n_xbars = len(layer_xbar_load.get(op.result, {}))
            energy_pj = sum(parts.values())
            layers.append(LayerCost(op.result, op.kind, op["rows"], op["cols"], op["groups"], op["mvms"], len(bs),
                                    c, n_xbars, latency, energy_pj * 1e-3, energy_breakdown_nj=_nj(parts)))
        else:
            ops = op["ops"] if op.kind in DIGITAL_KINDS else 0
            digital_ops_total += ops
            parts["digital"] += ops * t.digital_op_pj
            energy_pj = sum(parts.values())
            latency = max(ops / t.digital_ops_per_ns, traffic_ns)
            base_ns[op.result] = latency
            # a scheduled digital op streams: after its input's last row it needs one row's time
            rows = op["shape"][2] if len(op["shape"]) == 4 else 1
            bound_ns[op.result] = latency / max(rows, 1)
            layers.append(LayerCost(op.result, op.kind, 0, 0, 0, 0, 0, 0, 0, latency, energy_pj * 1e-3,
                                    fn=op.get("fn", ""), energy_breakdown_nj=_nj(parts)))
        time_ns[op.result] = latency
        total_energy_pj += energy_pj
        for k, v in parts.items():
            totals[k] += v

    slots = {op.operands[0]: op for op in module.ops if op.kind == "sched.slot"}
    latency_ns = max((s["end_ns"] for s in slots.values()), default=0.0) if slots else longest_path(module, time_ns)
    latency_bound_ns = longest_path(module, bound_ns)
    base_latency_ns = longest_path(module, base_ns)

    xbars_used = len(xbar_load)
    tiles = {key[0] for key in xbar_load if key[0] != "unplaced"}
    tiles_used = len(tiles) if placed else math.ceil(xbars_used / t.xbars_per_tile)
    chips_used = max((tile // t.tiles + 1 for tile in tiles), default=max(1, -(-xbars_used // t.xbars)))
    budget = int(module.get("budget", t.xbars * chips_used))
    digital_period = digital_ops_total / (t.digital_ops_per_ns * max(tiles_used, 1))
    period_ns = max(max(xbar_load.values(), default=0.0), digital_period, 1e-9)
    period_bound_ns = max(block_read_work_ns / budget, longest_mvm_ns,
                          digital_ops_total / (t.digital_ops_per_ns * t.tiles * chips_used),
                          float(module.get("period_bound_ns", 0.0)), 1e-9)
    base_period_ns = max(base_period_ns, digital_ops_total / (t.digital_ops_per_ns * max(tiles_used, 1)), 1e-9)
    area = tiles_used * t.tile_area_mm2
    # static power of the tiles in use (buffers, bus, router share, idle digital units) over the
    # time one inference holds them in the pipeline: one period (mW x ns = pJ)
    totals["static"] = tiles_used * t.tile_overhead_power_mw * period_ns
    total_energy_pj += totals["static"]
    energy_nj = total_energy_pj * 1e-3
    info = dict(solver or {})
    for key, value in module.attrs:
        if key.startswith(("duplicate_", "pack_", "schedule_")):
            info[key] = value
    stream = {k: module.get(k) for k in ("stream_inferences", "stream_makespan_ns") if module.get(k) is not None}
    warnings = []
    if chips_used > 1:
        warnings.append(f"the weights need {chips_used} chips of {t.name} ({xbars_used} crossbars, {t.xbars} per chip); "
                        "area counts every chip, but data moving between chips is not costed and weights are not "
                        "reprogrammed: latency and energy are those of an ideal multi-chip link.")
    return Report(
        model=model or module.name, target=t.name, passes=passes or str(module.get("passes", "")),
        crossbars_used=xbars_used, crossbars_available=t.xbars * chips_used, chips_used=chips_used, budget=budget,
        crossbars_lower_bound=crossbars_lower_bound(t, cells_one_copy),
        utilization=(cells_all / (xbars_used * t.cells_per_xbar)) if xbars_used else 0.0,
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
             "crossbars": xbars_used / max(crossbars_lower_bound(t, cells_one_copy), 1) - 1},
        solver=info, stream=stream, warnings=tuple(warnings), energy_breakdown_nj=_nj(totals),
        layers=tuple(layers))


def _nj(parts: dict) -> dict:
    return {k: v * 1e-3 for k, v in parts.items()}


def longest_path(module: Module, time_ns: dict[str, float]) -> float:
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
