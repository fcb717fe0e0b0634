"""Devices and precision: cell variation (`Variation`), the bit widths a simulation uses
(`Precision`), weights quantised, sliced into cells, programmed with variation, and read back as
effective weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cimc.errors import CimcError

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

MAX_ELEMS = 1 << 24  # elements of one partial-sum tensor; the batch is cut to stay below


class SimError(CimcError):
    """The simulator cannot run this model or these settings."""


@dataclass(frozen=True)
class Variation:
    """Device non-idealities, in units of a cell's conductance range (see module doc)."""

    sigma: float = 0.0
    lognormal: float = 0.0
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    read_sigma: float = 0.0

    def __post_init__(self):
        for k in ("sigma", "lognormal", "stuck_on", "stuck_off", "read_sigma"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SimError(f"variation '{k}' = {v!r} must be a finite number >= 0.")
        if self.stuck_on + self.stuck_off > 1:
            raise SimError(f"stuck_on + stuck_off = {self.stuck_on + self.stuck_off} is more than 1.")

    @property
    def programmed(self) -> bool:
        """Whether programming a chip draws random cells."""
        return bool(self.sigma or self.lognormal or self.stuck_on or self.stuck_off)

    @property
    def ideal(self) -> bool:
        return not (self.programmed or self.read_sigma)


@dataclass(frozen=True)
class Precision:
    """Bit widths and encoding; taken from the target unless overridden."""

    weight_bits: int
    cell_bits: int
    input_bits: int
    dac_bits: int
    adc_bits: int  # 0: no ADC quantisation
    signed_weights: str
    rows_per_read: int = 0  # rows read together (each part converted on its own); 0: all rows

    @classmethod
    def of(cls, target, **overrides) -> "Precision":
        p = cls(target.weight_bits, target.cell_bits, target.input_bits, target.dac_bits, target.adc_bits,
                target.signed_weights, target.read_rows)
        p = replace(p, **{k: v for k, v in overrides.items() if v is not None})
        for k in ("weight_bits", "cell_bits", "input_bits", "dac_bits"):
            if not 1 <= getattr(p, k) <= 24:
                raise SimError(f"{k} = {getattr(p, k)} must be between 1 and 24.")
        if not 0 <= p.adc_bits <= 32:
            raise SimError(f"adc_bits = {p.adc_bits} must be between 0 (no ADC) and 32.")
        return p

    @property
    def slices(self) -> int:
        return math.ceil(self.weight_bits / self.cell_bits)

    @property
    def digits(self) -> int:
        return math.ceil(self.input_bits / self.dac_bits)


def quantize_weights(w: "torch.Tensor", bits: int) -> tuple["torch.Tensor", float]:
    """Symmetric per-layer quantisation: integer tensor q and scale s with w ~ s*q."""
    qmax = 2 ** (bits - 1) - 1 if bits > 1 else 1
    m = float(w.abs().max()) if w.numel() else 0.0
    s = m / qmax if m > 0 else 1.0
    return torch.clamp(torch.round(w / s), -qmax, qmax), s


def stored_arrays(q: "torch.Tensor", p: Precision) -> list[tuple[float, "torch.Tensor"]]:
    """(sign, unsigned integer magnitudes) per array of the signed encoding."""
    if p.signed_weights == "differential":
        return [(1.0, torch.clamp(q, min=0)), (-1.0, torch.clamp(-q, min=0))]
    if p.signed_weights in ("offset", "bias"):
        return [(1.0, q + 2 ** (p.weight_bits - 1))]
    if bool((q < 0).any()):
        raise SimError("the target stores unsigned weights (signed_weights = \"unsigned\") but the layer has negative "
                       "weights; use a target with a differential, offset or bias encoding.")
    return [(1.0, q)]


def slice_levels(mag: "torch.Tensor", p: Precision) -> "torch.Tensor":
    """Cell levels of unsigned integer magnitudes: a new leading dim of `slices`, LSB first."""
    m = mag.to(torch.int64)
    L = 1 << p.cell_bits
    return torch.stack([((m >> (s * p.cell_bits)) & (L - 1)).to(torch.float32) for s in range(p.slices)])


def perturb(levels: "torch.Tensor", p: Precision, var: Variation, gen) -> "torch.Tensor":
    """Programmed cell levels: ideal levels with the device's variation applied."""
    if not var.programmed:
        return levels
    top = float((1 << p.cell_bits) - 1)
    g = levels / top
    if var.sigma:
        g = g + var.sigma * torch.randn(g.shape, generator=gen)
    if var.lognormal:
        g = g * torch.exp(var.lognormal * torch.randn(g.shape, generator=gen))
    if var.stuck_on or var.stuck_off:
        u = torch.rand(g.shape, generator=gen)
        g = torch.where(u < var.stuck_on, torch.ones_like(g), g)
        g = torch.where((u >= var.stuck_on) & (u < var.stuck_on + var.stuck_off), torch.zeros_like(g), g)
    return g * top


def effective_weights(q: "torch.Tensor", p: Precision, var: Variation, gen) -> "torch.Tensor":
    """Integer-unit weights one programmed chip realises for q (no ADC): what variation-aware
    training injects. For the offset encoding the reference column's own variation is left
    out here (it is shared by a block's columns); the simulator models it."""
    out = torch.zeros_like(q, dtype=torch.float32)
    for sign, mag in stored_arrays(q, p):
        cells = perturb(slice_levels(mag, p), p, var, gen)
        coef = torch.tensor([2.0 ** (s * p.cell_bits) for s in range(p.slices)]).reshape(-1, *[1] * q.dim())
        out = out + sign * (cells * coef).sum(0)
    if p.signed_weights in ("offset", "bias"):
        out = out - 2 ** (p.weight_bits - 1)
    return out
