"""Scaling laws: how a target's per-event figures move when one of its knobs moves.

A preset's figures are published at the preset's own knob values (ISAAC's ADC energy is that
of its 8-bit ADC). When a knob moves away from that value (an override, `--set`, a user file
with `base = ...`, a search candidate) and the figure is not given anew, the figure moves by
its law: figure' = figure x size(knobs') / size(knobs). A law is a ratio, so moving a knob
twice gives what moving it once does (8 -> 4 -> 6 bits is 8 -> 6 bits), and a preset at its
own values is exactly the preset. A figure given together with the knob wins over the law.

Each law names its source. Where a law splits a figure into parts (the crossbar periphery
into row and column circuits, the buffer into its array and its bus), the split is that of
ISAAC's Table I (Shafiee et al., ISCA 2016), whose component figures every generic preset
uses; a preset from another design with another split should give the figures it changes.

What moves without a law here, because cimc counts it structurally:
- `input_bits / dac_bits` reads per MVM and `weight_bits / cell_bits` columns per weight;
- ADCs per crossbar (`xbar_cols / cols_per_adc`) and the conversions each makes per read;
- crossbars per tile and tiles per chip (area and leakage count every one of them);
- the rows a conversion can cover exactly (`Target.adc_bits_needed`, `partial_sums`);
- transfer times, from the bandwidths.
What does not move, stated: the array read time (`xbar_read_ns`: ISAAC's 100 ns cycle is set
by its ADC pipeline, not the wires; no preset's source gives a size law), the cell's read
energy with the levels it stores (levels spaced evenly between G_off and G_on have the same
mean conductance whatever their number, so `cell_read_fj` per cell stays), and the digital
energy per operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# ---- ISAAC Table I (ISCA 2016), one IMA: 8 crossbars of 128x128 = 1024 rows, 1024 columns.
# Periphery power (mW) on the row side: the 1024 1-bit DACs and the 2 KB input register; on
# the column side: sample-and-hold, shift-and-add and the 256 B output register.
_DAC_MW, _IR_MW, _COL_MW = 4.0, 1.24, 0.01 + 0.2 + 0.23
_DAC_MM2, _IR_MM2, _COL_MM2 = 0.00017, 0.0021, 0.00004 + 0.00024 + 0.00077
# tile buffer: eDRAM array and its bus to the IMAs, at 64 KB and 38.4 B/ns
_EDRAM_MW, _BUS_MW, _EDRAM_MM2, _BUS_MM2 = 20.7, 7.0, 0.083, 0.090
_KB0, _BW0 = 64.0, 38.4
# the corner of the ADC energy envelope: below it energy doubles per bit (Walden figure of
# merit), above it quadruples (Schreier figure of merit, thermal noise): the envelope of
# B. Murmann's "ADC Performance Survey 1997-2024" bends from the one to the other at about
# 10 bits; the corner is taken there.
ADC_THERMAL_BITS = 10


def adc_energy(bits: int) -> float:
    """Relative energy per conversion: 2^b (R. H. Walden, "Analog-to-digital converter survey
    and analysis", IEEE JSAC 17(4), 1999: FOM_W = P / (2^ENOB f_s), so E = FOM_W 2^ENOB at a
    fixed figure of merit), 4x per bit above `ADC_THERMAL_BITS` (Murmann's survey)."""
    low = min(bits, ADC_THERMAL_BITS)
    return 2.0 ** low * 4.0 ** (bits - low)


def dac_levels(bits: int) -> int:
    """Unit elements of a binary-weighted DAC: 2^d - 1 (one for ISAAC's 1-bit DAC, an
    inverter). Its switching energy and area grow with them (B. Razavi, Principles of Data
    Conversion System Design, IEEE Press 1995, ch. 3)."""
    return 2 ** bits - 1


def periphery_energy(dac_bits: int, rows: int, cols: int) -> float:
    """Energy of one read's periphery, per line: each row its DAC (by its levels) and its
    input register slice, each column its sample-and-hold, shift-and-add and output register
    (ISAAC Table I powers per line)."""
    return rows * (_DAC_MW * dac_levels(dac_bits) + _IR_MW) + cols * _COL_MW


def periphery_area(dac_bits: int, rows: int, cols: int) -> float:
    """Area of a crossbar's periphery, per line, as `periphery_energy` (ISAAC Table I areas)."""
    return rows * (_DAC_MM2 * dac_levels(dac_bits) + _IR_MM2) + cols * _COL_MM2


@dataclass(frozen=True)
class Law:
    figure: str  # the target key that moves
    knobs: tuple[str, ...]  # the keys it moves with
    size: Callable[..., float]  # relative size of the figure at the knobs' values
    law: str  # in words, with units
    source: str


LAWS: tuple[Law, ...] = (
    Law("adc_conversion_pj", ("adc_bits",), adc_energy,
        "energy per conversion x2 per bit up to 10 bits, x4 per bit above",
        "Walden FOM (IEEE JSAC 1999); Schreier FOM above 10 bits (Murmann, ADC Performance Survey)"),
    Law("adc_conversion_ns", ("adc_bits",), lambda b: float(b),
        "conversion time linear in bits: a SAR ADC resolves one bit per cycle",
        "successive approximation (ISAAC's ADC is a SAR: Kull et al., ISSCC 2013)"),
    Law("adc_area_um2", ("adc_bits",), lambda b: 2.0 ** b,
        "area x2 per bit: the capacitive DAC of a SAR ADC has 2^b unit capacitors",
        "binary-weighted capacitor array of a SAR ADC"),
    Law("xbar_static_mw", ("adc_bits", "xbar_cols", "cols_per_adc"),
        lambda b, c, k: 2.0 ** b * math.ceil(c / k),
        "converter leakage with the ADCs' area: x2 per bit, x the ADCs per crossbar",
        "leakage in proportion to device area; ADCs dominate (PUMA: 0.2 of 0.25 mW per crossbar)"),
    Law("row_read_pj", ("dac_bits", "xbar_rows", "xbar_cols"),
        lambda d, r, c: periphery_energy(d, r, c) / r,
        "periphery energy per read: per row (DAC by its 2^d - 1 levels, input register) plus per "
        "column (sample-and-hold, shift-and-add, output register); charged per active row",
        "ISAAC Table I component powers per line"),
    Law("xbar_periph_area_um2", ("dac_bits", "xbar_rows", "xbar_cols"), periphery_area,
        "periphery area per row (DAC by its levels, input register) plus per column",
        "ISAAC Table I component areas per line"),
    Law("xbar_area_um2", ("xbar_rows", "xbar_cols"), lambda r, c: float(r * c),
        "array area in proportion to its cells", "one cell per crosspoint (ISAAC Table I: 25 um2 per 128x128)"),
    Law("buffer_pj_per_byte", ("buffer_kb",), lambda kb: math.sqrt(kb),
        "energy per byte x sqrt(capacity): bit and word lines grow as the square root of the array",
        "CACTI 6.0 (Muralimanohar, Balasubramonian, Jouppi, HPL-2009-85) array organisation"),
    Law("buffer_area_mm2", ("buffer_kb", "buffer_bytes_per_ns"),
        lambda kb, bw: _EDRAM_MM2 * kb / _KB0 + _BUS_MM2 * bw / _BW0,
        "array area x capacity plus bus area x bandwidth (its width)", "ISAAC Table I: eDRAM 0.083, bus 0.090 mm2"),
    Law("buffer_power_mw", ("buffer_kb", "buffer_bytes_per_ns"),
        lambda kb, bw: bw / _BW0 * (_EDRAM_MW * math.sqrt(kb / _KB0) + _BUS_MW),
        "peak power: bandwidth x energy per byte (array: x sqrt(capacity); bus: constant)",
        "ISAAC Table I: eDRAM 20.7, bus 7 mW; CACTI 6.0 for the array"),
    Law("digital_power_mw", ("digital_ops_per_ns",), lambda r: r,
        "digital units in parallel: peak power x their rate", "ISAAC Table I (2 sigmoid units, 2.4 ops/ns)"),
    Law("digital_area_mm2", ("digital_ops_per_ns",), lambda r: r,
        "digital units in parallel: area x their rate", "ISAAC Table I"),
    Law("network_power_mw", ("noc_bytes_per_ns",), lambda bw: bw,
        "router and links x flit width (ORION 2.0's crossbar term, which grows faster, is not modelled)",
        "ORION 2.0 (Kahng et al., DATE 2009) buffers and links linear in flit width"),
    Law("network_area_mm2", ("noc_bytes_per_ns",), lambda bw: bw,
        "router and links x flit width", "ORION 2.0 (Kahng et al., DATE 2009)"),
    Law("chip_io_power_mw", ("offchip_bytes_per_ns",), lambda bw: bw,
        "off-chip links x lanes", "ISAAC Table I (HyperTransport 10.4 W at 6.4 GB/s)"),
    Law("chip_io_area_mm2", ("offchip_bytes_per_ns",), lambda bw: bw,
        "off-chip links x lanes", "ISAAC Table I (HyperTransport 22.88 mm2)"),
)

KNOBS = tuple(dict.fromkeys(k for law in LAWS for k in law.knobs))


def _size(law: Law, values: dict) -> float | None:
    try:
        args = [values[k] for k in law.knobs]
        if any(isinstance(a, bool) or not isinstance(a, (int, float)) or not a > 0 for a in args):
            return None  # a bad value: the target's validation says what is wrong with it
        return float(law.size(*args))
    except (KeyError, OverflowError, ValueError, ZeroDivisionError):
        return None


def rescale(old: dict, new: dict, given: set | frozenset = frozenset()) -> dict:
    """`new` (old's values with some keys changed) with every figure whose knobs changed moved
    by its law, unless the figure is in `given` (the keys the user set)."""
    out = dict(new)
    for law in LAWS:
        if law.figure in given or law.figure not in old or not isinstance(old[law.figure], (int, float)):
            continue
        if all(old.get(k) == new.get(k) for k in law.knobs):
            continue
        before, after = _size(law, old), _size(law, new)
        if before is None or after is None or before == 0:
            continue
        out[law.figure] = old[law.figure] * (after / before)
    return out


def table() -> list[dict]:
    """Every law: figure, knobs, law, source (for `cimc targets laws` and the docs)."""
    return [{"figure": law.figure, "knobs": list(law.knobs), "law": law.law, "source": law.source} for law in LAWS]


__all__ = ["LAWS", "KNOBS", "Law", "rescale", "table", "adc_energy", "dac_levels", "periphery_energy",
           "periphery_area", "ADC_THERMAL_BITS"]
