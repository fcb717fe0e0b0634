"""Devices and precision: cell variation (`Variation`), the bit widths a simulation uses
(`Precision`), weights quantised, sliced into cells, programmed with variation, and read back as
effective weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cimc.errors import CimcError
from cimc.sim.physics import (
    FITS,
    MODELS,
    NoiseFit,
    Range,
    pcm_drift_nu,
    pcm_read_sigma,
    programming_sigma,
    relaxation_sigma,
)
from cimc.targets import magnitude_slices

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

MAX_ELEMS = 1 << 24  # elements of one partial-sum tensor; the batch is cut to stay below


class SimError(CimcError):
    """The simulator cannot run this model or these settings."""


@dataclass(frozen=True)
class Variation:
    """Device non-idealities (see `cimc.sim.physics` for the units and the sources).

    sigma: constant Gaussian programming noise, a fraction of the conductance range;
    model: "constant" (sigma only) or a published state-dependent fit (`physics.FITS`), whose
    programming noise, drift and relaxation apply, scaled by `scale`;
    lognormal: G * exp(N(0, lognormal)); stuck_on / stuck_off: rates of cells stuck at g_max /
    g_min; read_sigma: read noise per cell per read, a fraction of the range;
    drift_nu, drift_nu_std: power-law drift exponent (mean, spread across cells) where the
    model has no drift of its own;
    out_sigma: noise at each column before its ADC, per read, in partial-sum units (one cell level
    times one full input digit); dac_sigma: noise of each row's DAC drive, per read, a fraction of
    a full input digit (it reaches every column through the row's cells)."""

    sigma: float = 0.0
    lognormal: float = 0.0
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    read_sigma: float = 0.0
    model: str = "constant"
    scale: float = 1.0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    out_sigma: float = 0.0
    dac_sigma: float = 0.0

    def __post_init__(self):
        for k in ("sigma", "lognormal", "stuck_on", "stuck_off", "read_sigma", "scale", "drift_nu", "drift_nu_std",
                  "out_sigma", "dac_sigma"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SimError(f"variation '{k}' = {v!r} must be a finite number >= 0.")
        if self.stuck_on + self.stuck_off > 1:
            raise SimError(f"stuck_on + stuck_off = {self.stuck_on + self.stuck_off} is more than 1.")
        if self.model not in MODELS:
            raise SimError(f"noise model '{self.model}' is not one of {', '.join(MODELS)}.")

    @classmethod
    def of(cls, target, sigma: float | None = None, **kw) -> "Variation":
        """The target's device: its noise model, and its constant sigma (variation_sigma) unless
        sigma is given; a published fit brings its own programming noise (sigma 0 then)."""
        model = kw.pop("model", None) or target.noise_model
        if sigma is None:
            sigma = target.variation_sigma if model == "constant" else 0.0
        return cls(sigma=sigma, model=model, **kw)

    @property
    def fit(self) -> NoiseFit | None:
        return FITS.get(self.model)

    @property
    def programmed(self) -> bool:
        """Whether programming a chip draws random cells."""
        return bool(self.sigma or self.lognormal or self.stuck_on or self.stuck_off
                    or (self.fit is not None and self.scale))

    @property
    def drifts(self) -> bool:
        """Whether the cells change with time after programming."""
        fit = self.fit
        return bool(self.drift_nu or (fit is not None and self.scale and (fit.drift != "none" or fit.relax
                                                                          or fit.read_1f)))

    @property
    def per_read(self) -> bool:
        """Whether every read draws fresh noise (cells, column outputs or row drives)."""
        return bool(self.read_sigma or self.out_sigma or self.dac_sigma)

    @property
    def ideal(self) -> bool:
        return not (self.programmed or self.per_read)


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
        return magnitude_slices(self.weight_bits, self.cell_bits, self.signed_weights)

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


def perturb(levels: "torch.Tensor", p: Precision, var: Variation, gen, rng: Range | None = None,
            t: float = 0.0, tgen=None) -> "torch.Tensor":
    """Cell levels of a programmed chip at time t (s) after programming: the ideal levels with
    the device's programming noise, faults and, for t > 0, drift and relaxation applied; always
    within the device's range [g_min, g_max] (levels 0..L-1). gen draws what programming fixes
    (per cell noise, faults, drift exponents: the chip); tgen what the time adds (1/f noise)."""
    if not var.programmed and not (t and var.drifts):
        return levels
    rng = rng or Range(1 << p.cell_bits, 0.0, 0.0)
    top = rng.top
    fit = var.fit
    x = levels
    if var.sigma or (fit is not None and var.scale):
        x = x + programming_sigma(levels, rng, var.sigma, fit if var.scale else None, var.scale) * torch.randn(
            levels.shape, generator=gen)
    if var.lognormal:  # multiplicative, on the conductance
        x = (x + rng.l_min) * torch.exp(var.lognormal * torch.randn(levels.shape, generator=gen)) - rng.l_min
    if var.stuck_on or var.stuck_off:
        u = torch.rand(levels.shape, generator=gen)
        x = torch.where(u < var.stuck_on, torch.full_like(x, top), x)
        x = torch.where((u >= var.stuck_on) & (u < var.stuck_on + var.stuck_off), torch.zeros_like(x), x)
    x = x.clamp(0.0, top)
    if not var.drifts:
        return x
    # what time does to this chip: drift exponents and relaxation are the chip's own (drawn by gen
    # whatever t is, so that one chip is followed through time)
    nu = None
    if fit is not None and fit.drift == "pcm" and var.scale:
        nu = pcm_drift_nu(levels, rng, gen) * var.scale
    elif var.drift_nu:
        nu = (var.drift_nu + var.drift_nu_std * torch.randn(levels.shape, generator=gen)).abs()
    z_relax = torch.randn(levels.shape, generator=gen) if fit is not None and fit.relax else None
    if not t:
        return x
    t0 = fit.t0_s if fit is not None else 1.0
    g0 = g = x + rng.l_min  # conductance, level units
    if nu is not None:
        g = g * ((t + t0) / t0) ** (-nu)
    if z_relax is not None:
        g = g + relaxation_sigma(levels, rng, fit, var.scale, t) * z_relax
    if fit is not None and fit.read_1f and var.scale:
        g = g + var.scale * pcm_read_sigma(g0, g, rng, fit, t) * torch.randn(levels.shape, generator=tgen or gen)
    return (g - rng.l_min).clamp(0.0, top)


def effective_weights(q: "torch.Tensor", p: Precision, var: Variation, gen, rng: Range | None = None) -> "torch.Tensor":
    """Integer-unit weights one programmed chip realises for q (no ADC): what variation-aware
    training injects. For the offset encoding the reference column's own variation is left
    out here (it is shared by a block's columns); the simulator models it."""
    out = torch.zeros_like(q, dtype=torch.float32)
    for sign, mag in stored_arrays(q, p):
        cells = perturb(slice_levels(mag, p), p, var, gen, rng)
        coef = torch.tensor([2.0 ** (s * p.cell_bits) for s in range(p.slices)]).reshape(-1, *[1] * q.dim())
        out = out + sign * (cells * coef).sum(0)
    if p.signed_weights in ("offset", "bias"):
        out = out - 2 ** (p.weight_bits - 1)
    return out
