"""Reports: the figures of one mapping, as a terminal table and as JSON.

Every figure carries its unit in its name. `schema` versions the JSON layout; a change
that removes or renames a key bumps it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

SCHEMA = "cimc.report/1"


@dataclass(frozen=True)
class LayerCost:
    """One op of the network. `rows` x `cols` is one group's weight matrix (before bit
    slicing); `mvms` the matrix-vector products each group's matrix does per inference.
    Digital-only ops have zeros there and `crossbars` 0."""

    name: str
    op: str
    rows: int
    cols: int
    groups: int
    mvms: int
    blocks: int
    copies: int
    crossbars: int
    latency_ns: float
    energy_nj: float
    fn: str = ""
    energy_breakdown_nj: dict = field(default_factory=dict)  # adc, dac_and_periphery, array, digital, buffer, ...
    area_mm2: float = 0.0  # its share of the crossbars it uses (array, periphery, ADCs), by cells held
    buffer_ns: float = 0.0  # its inputs and output through the tile buffer
    network_ns: float = 0.0  # its data between tiles (bytes over one link, plus the hops)
    lanes: int = 1  # replicas each of its blocks holds on a crossbar's diagonal (the most of any copy)
    # its work per inference on the busiest unit it uses: a crossbar (its own reads there) or,
    # for a digital op, one tile's digital units; against the period, its share of the pace
    busy_ns: float = 0.0


@dataclass(frozen=True)
class Report:
    model: str
    target: str
    passes: str
    crossbars_used: int
    crossbars_available: int  # of the chips used
    chips_used: int  # chips of the target's kind the mapping runs on (with reloading: fewer than its stages)
    budget: int  # crossbars the mapping may use (duplicate/pack budget, else all of the chips used)
    crossbars_lower_bound: int
    utilization: float  # weight cells (all copies) / cells of the crossbars used
    latency_ns: float
    latency_lower_bound_ns: float
    throughput_ips: float  # inferences per second, pipelined
    throughput_upper_bound_ips: float
    period_ns: float  # steady-state time between inferences
    period_lower_bound_ns: float
    energy_nj: float
    area_mm2: float  # tiles the mapping uses
    chip_area_mm2: float  # the whole target
    edap: float  # energy_nj * latency_ns * area_mm2
    compile_s: float
    tiles_used: int
    weight_cells: int  # cells of one copy of every weight, bit slices included
    speedup_vs_baseline: dict = field(default_factory=dict)  # throughput, latency
    baseline: dict = field(default_factory=dict)  # the ISAAC-like mapping of the same partition
    gap: dict = field(default_factory=dict)  # achieved / bound - 1, per figure
    solver: dict = field(default_factory=dict)  # what each solving pass used and proved
    stream: dict = field(default_factory=dict)  # K inferences scheduled back to back
    # what sets the period: "crossbars" (the busiest crossbar's reads), "digital" (the tiles'
    # digital units), "buffer" (one op's buffer traffic) or "network" (byte-hops over all links)
    period_set_by: str = ""
    bottleneck: str = ""  # the op with the most work on what sets the period
    # each candidate for the period: the busiest crossbar, the busiest tile's digital units, the
    # largest buffer traffic of one op, the network as a whole (period_ns is the largest)
    period_parts_ns: dict = field(default_factory=dict)
    warnings: tuple = ()  # what the figures leave out for this mapping (e.g. traffic between chips)
    # per component, summed over the layers; "static" is the leakage of the tiles and crossbars in
    # use over one period (included in energy_nj); "network" the on-chip network's hops
    energy_breakdown_nj: dict = field(default_factory=dict)
    area_breakdown_mm2: dict = field(default_factory=dict)  # the tiles used, by component
    network: dict = field(default_factory=dict)  # bytes moved between tiles, byte-hops, topology
    # when the weights need more than one chip: one chip reprogrammed per inference instead
    reprogramming: dict = field(default_factory=dict)
    # what one read asks of the ADC: bits a full read's partial sum needs, rows per conversion,
    # reads per input digit, partial_sums ("exact": fewer rows per read, charged; "quantized":
    # the ADC's levels spread over the sum, which the simulator models) and whether it quantizes
    converter: dict = field(default_factory=dict)
    pass_seconds: dict = field(default_factory=dict)  # wall-clock seconds of each pass of the compile, in order
    # beyond one chip: stages (chips the mapping spans), physical chips, rounds, batch, each
    # chip's crossbars, period and energy, the links between chips and the buffers' spills to
    # off-chip memory (with their shares), and when reloading: writes per cell per inference,
    # the time and energy of the writes, the chips' lifetime (empty: one chip, nothing spilled)
    chips: dict = field(default_factory=dict)
    layers: tuple[LayerCost, ...] = field(default=())

    def to_dict(self) -> dict:
        d = {"schema": SCHEMA}
        d.update(dataclasses.asdict(self))
        d["layers"] = [dataclasses.asdict(layer) for layer in self.layers]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, max_layers: int | None = 40, color: bool = False) -> str:
        return format_table(self, max_layers, color)


def _si(x: float, unit: str) -> str:
    """x in `unit` with an SI prefix that keeps 1-3 digits before the point."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"),
                          (1e-12, "p")):
        if abs(x) >= scale:
            return f"{x / scale:.4g} {prefix}{unit}"
    return f"{x:.4g} {unit}"


def middle(name: str, width: int) -> str:
    """`name` cut to `width` characters in the middle (both ends of a layer name tell most)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[len(name) - (width - 1 - head):]


class _Style:
    """ANSI styles for a terminal; nothing when colour is off."""

    def __init__(self, on: bool):
        self.on = on

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def bold(self, text: str) -> str:
        return self(text, "1")

    def mark(self, text: str) -> str:
        return self(text, "1;33")

    def dim(self, text: str) -> str:
        return self(text, "2")


def format_table(r: Report, max_layers: int | None = 40, color: bool = False) -> str:
    st = _Style(color)
    weight_layers = [layer for layer in r.layers if layer.crossbars or layer.rows]
    digital = [layer for layer in r.layers if not (layer.crossbars or layer.rows)]
    lines = [st.bold(f"cimc: {r.model} on {r.target}") + st.dim(f"  (passes: {r.passes})"), ""]
    shown = weight_layers if max_layers is None else weight_layers[:max_layers]
    if max_layers is not None and r.bottleneck in {x.name for x in weight_layers} - {x.name for x in shown}:
        shown = shown + [x for x in weight_layers if x.name == r.bottleneck]  # the layer that sets the pace, always
    w = min(max([len(x.name) for x in shown] + [28]), 48)
    head = (f"  {'layer':<{w}} {'op':<14} {'matrix':>11} {'groups':>6} {'mvms':>7} {'blocks':>6} {'copies':>6} "
            f"{'xbars':>5} {'busy':>7} {'latency':>11} {'energy':>11}")
    lines += [st.bold(head), "-" * len(head)]
    period = r.period_ns or 1.0

    def row(mark: str, name: str, op: str, matrix: str, groups, mvms, blocks, copies, xbars, busy: str,
            latency_ns: float, energy_nj: float) -> str:
        return (f"{mark} {middle(name, w):<{w}} {middle(op, 14):<14} {matrix:>11} {groups:>6} {mvms:>7} {blocks:>6} "
                f"{copies:>6} {xbars:>5} {busy:>7} {latency_ns / 1e3:>8.2f} us {energy_nj:>8.2f} nJ")

    for layer in shown:
        copies = f"{layer.copies}x{layer.lanes}" if layer.lanes > 1 else f"{layer.copies}"
        text = row("*" if layer.name == r.bottleneck else " ", layer.name, layer.op, f"{layer.rows}x{layer.cols}",
                   layer.groups, layer.mvms, layer.blocks, copies, layer.crossbars,
                   f"{100 * layer.busy_ns / period:.0f}%", layer.latency_ns, layer.energy_nj)
        lines.append(st.mark(text) if layer.name == r.bottleneck else text)
    if len(shown) < len(weight_layers):
        lines.append(st.dim(f"  ... {len(weight_layers) - len(shown)} more weight layers (--all-layers, or the "
                            "--report JSON)"))
    d_lat = sum(x.latency_ns for x in digital)
    d_en = sum(x.energy_nj for x in digital)
    lines.append(row(" ", f"digital ops ({len(digital)})", "(no crossbars)", "", "", "", "", "", 0, "",
                     d_lat, d_en))
    slow = [x for x in digital if x.name == r.bottleneck]
    for layer in slow:  # a digital op that sets the pace gets its own line
        lines.append(st.mark(row("*", layer.name, layer.op, "", "", "", "", "", 0,
                                 f"{100 * layer.busy_ns / period:.0f}%", layer.latency_ns, layer.energy_nj)))
    if r.bottleneck:
        lines.append(st.dim("  busy: work per inference on its busiest crossbar (or one tile's digital units), "
                            "as a share of the period; * sets the period"))
    lines += ["", st.bold(f"{'figure':<24} {'value':>16} {'bound':>16}"), "-" * 58]
    rows = [
        ("crossbars used", f"{r.crossbars_used} / {r.budget}", f">= {r.crossbars_lower_bound}"),
        ("tiles used", f"{r.tiles_used}", f"on {r.chips_used} chip{'s' if r.chips_used > 1 else ''}"
         + (" (in rounds)" if r.chips.get("reload") else "")),
        ("utilization", f"{100 * r.utilization:.1f} %", ""),
        ("latency", _si(r.latency_ns * 1e-9, "s"), ">= " + _si(r.latency_lower_bound_ns * 1e-9, "s")),
        ("throughput", _si(r.throughput_ips, "inf/s"), "<= " + _si(r.throughput_upper_bound_ips, "inf/s")),
        ("speedup vs baseline", f"{r.speedup_vs_baseline.get('throughput', 0):.2f}x thr", f"{r.speedup_vs_baseline.get('latency', 0):.2f}x lat"),
        ("energy / inference", _si(r.energy_nj * 1e-9, "J"), ""),
        ("area (tiles used)", f"{r.area_mm2:.3f} mm2", f"chip {r.chip_area_mm2:.1f} mm2"),
        ("EDAP", f"{r.edap:.4g} nJ.ns.mm2", ""),
        ("compile time", f"{r.compile_s:.3f} s", ""),
    ]
    lines += [f"{a:<24} {b:>16} {c:>16}" for a, b, c in rows]
    if r.period_set_by:
        what = {"crossbars": "the busiest crossbar's reads", "digital": "the tiles' digital units",
                "buffer": "one op's buffer traffic", "network": "the network (byte-hops over all links)",
                "link": "the busiest link between chips", "offchip": "activations spilled to off-chip memory",
                "reload": "reprogramming the chips between rounds"}
        lines.append(f"period {_si(r.period_ns * 1e-9, 's')}, set by {what.get(r.period_set_by, r.period_set_by)}"
                     + (f" ({middle(r.bottleneck, 60)})" if r.bottleneck else ""))
    if r.energy_breakdown_nj and r.energy_nj:
        parts = ", ".join(f"{k} {100 * v / r.energy_nj:.0f}%" for k, v in r.energy_breakdown_nj.items() if v > 0)
        lines.append(f"energy by component: {parts}")
    area = sum(r.area_breakdown_mm2.values())
    if area:
        parts = ", ".join(f"{k} {100 * v / area:.0f}%" for k, v in r.area_breakdown_mm2.items() if v > 0)
        lines.append(f"area by component: {parts}")
    lines += chips_lines(r)
    c = r.converter
    if c:
        how = (f"quantized: a full read needs {c['bits_needed']} bits (the simulator models the loss)" if c["quantized"]
               else f"exact ({c['bits_needed']} bits needed)")
        lines.append(f"ADC: {c['adc_bits']} bits, {c['rows_per_conversion']} rows per conversion, "
                     f"{c['reads_per_digit']} read{'s' if c['reads_per_digit'] > 1 else ''} per input digit; {how}")
    lines += [st.mark(f"warning: {w}") for w in r.warnings]
    return "\n".join(lines)


def chips_lines(r: Report) -> list[str]:
    """What the table says of the chips, the links, the spills and the reloads."""
    ch = r.chips
    if not ch:
        return []
    lines = []
    if ch["stages"] > 1:
        per = ", ".join(f"{c['crossbars']}" for c in ch["per_chip"])
        link = ch["link"]
        lines.append(f"chips: {ch['stages']} stages on {ch['physical']} chip{'s' if ch['physical'] > 1 else ''} "
                     f"(crossbars per stage: {per}); links carry {_si(link['bytes_per_inference'], 'B')} per "
                     f"inference: {100 * link['share_of_period']:.1f}% of the period, "
                     f"{100 * link['share_of_energy']:.1f}% of the energy")
    rp = r.reprogramming
    if rp.get("costed"):
        lines.append(f"one chip reprogrammed per inference instead would add {_si(rp['ns'] * 1e-9, 's')} and "
                     f"{_si(rp['nj'] * 1e-9, 'J')} per inference (--chips 1 --batch N costs it in rounds)")
    sp = ch["spills"]
    if sp["bytes_per_inference"]:
        lines.append(f"buffers: {_si(sp['bytes_per_inference'], 'B')} per inference spill to off-chip memory "
                     f"({_si(sp['period_ns'] * 1e-9, 's')} of off-chip time, {100 * sp['period_ns'] / r.period_ns:.0f}% "
                     "of the period)")
    rl = ch.get("reload")
    if rl:
        lines.append(f"reload: {rl['rounds']} rounds per batch of {rl['batch']}; writes "
                     f"{_si(rl['write_ns_per_inference'] * 1e-9, 's')} and {_si(rl['write_nj_per_inference'] * 1e-9, 'J')}"
                     f" per inference ({100 * rl['share_of_period']:.0f}% of the period); "
                     f"{rl['writes_per_cell_per_inference']:.3g} writes per cell per inference; lifetime at this "
                     f"throughput: {rl['lifetime']}")
    return lines
