"""Device physics of a programmed cell: where its conductance lies, how programming misses the
target, how it moves with time, and how the wires of the array bend what the columns read.

Units. A cell of `cell_bits` has L = 2^cell_bits target levels spread evenly over the device's
range [g_min, g_max], g_min = g_max / on_off_ratio (0 when the target gives no on/off ratio).
The simulator counts conductance in *level units*: u = g / dg with dg = (g_max - g_min) / (L-1),
so that a cell at level l conducts u = l + l_min, l_min = g_min / dg = (L-1) / (on_off - 1).
The periphery knows l_min and removes l_min x (sum of the input digits) after the ADC (as
ISAAC removes its bias digitally); the ADC still sees the whole current.

Programming noise. Either a constant Gaussian sigma in units of the range (the bit-sliced model
of Joshi et al., Nat. Commun. 11, 2473 (2020), used by cimc before), or a state-dependent fit
sigma(g_T), taken from a published characterisation (`FITS`). Whatever the noise, a programmed
conductance stays inside [g_min, g_max]: a write-verify loop cannot leave the device's range.

Time. Conductances drift as a power law g(t) = g(t0) (t/t0)^-nu, nu drawn per cell (its mean and
spread from the device), and 1/f read noise accumulates as sqrt(log((t + t_read) / (2 t_read)))
(Nandakumar et al., ICECS 2019, the PCM model aihwkit implements as PCMLikeNoiseModel). RRAM
relaxation, measured at a few times, is given as the spread at each time (Wan et al., Nature 608,
504 (2022), as fitted in aihwkit's ReRamWan2022NoiseModel) and interpolated in log t between the
times measured; past the last one it is held (there is no data beyond it, and the report says so).
Global drift compensation (as aihwkit's GlobalDriftCompensation) rescales each layer's outputs by
the ratio of its mean |effective weight| just after programming to the one at time t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


@dataclass(frozen=True)
class NoiseFit:
    """A published, state-dependent characterisation of a device's conductance errors."""

    name: str
    source: str
    # programming noise: sigma(g_T) = sum_i prog[i] (g_T / g_max)^i, in uS at g_max = g_ref_us
    prog: tuple[float, ...]
    g_ref_us: float
    drift: str = "none"  # "pcm": nu(g) of Nandakumar et al. 2019; "none": no power-law drift
    t0_s: float = 1.0  # time of the first read after programming (drift reference)
    read_1f: bool = False  # accumulated 1/f read noise (PCM)
    t_read_s: float = 250e-9
    relax: tuple[tuple[float, tuple[float, ...]], ...] = ()  # (time s, sigma poly in uS) measured


FITS: dict[str, NoiseFit] = {
    "pcm-nandakumar2019": NoiseFit(
        "pcm-nandakumar2019",
        "Nandakumar et al., 'Phase-change memory models for deep learning training and inference', ICECS 2019; "
        "coefficients as in IBM aihwkit PCMLikeNoiseModel (prog_coeff, drift nu(g), 1/f Q_s, t0 = 20 s, "
        "t_read = 250 ns)",
        prog=(0.26348, 1.9650, -1.1731), g_ref_us=25.0, drift="pcm", t0_s=20.0, read_1f=True),
    "rram-wan2022": NoiseFit(
        "rram-wan2022",
        "Wan et al., 'A compute-in-memory chip based on resistive random-access memory', Nature 608, 504 (2022); "
        "4th-order fits of the conductance spread against target conductance at 1 s, 1 day and 2 days, as in "
        "IBM aihwkit ReRamWan2022NoiseModel (g_max 40 uS)",
        prog=(0.348, 16.030, -43.853, 45.393, -16.815), g_ref_us=40.0,
        relax=((86400.0, (0.701, 22.086, -50.773, 47.095, -16.458)),
               (172800.0, (0.782, 20.274, -43.507, 37.062, -11.934)))),
}
MODELS = ("constant", *FITS)


def _poly(coef, x):
    out = torch.full_like(x, coef[0])
    p = torch.ones_like(x)
    for c in coef[1:]:
        p = p * x
        out = out + c * p
    return out


@dataclass(frozen=True)
class Range:
    """The level scale of one target's cells: L levels over [g_min, g_max]."""

    levels: int  # L
    on_off: float  # 0: unknown (g_min taken as 0)
    g_max_us: float  # 0: unknown (no IR drop can be computed)

    @property
    def top(self) -> float:
        return float(self.levels - 1)

    @property
    def l_min(self) -> float:
        """g_min in level units: what a level-0 cell still conducts."""
        return self.top / (self.on_off - 1) if self.on_off > 1 else 0.0

    @property
    def dg_us(self) -> float:
        """One level step in uS."""
        g_min = self.g_max_us / self.on_off if self.on_off > 1 else 0.0
        return (self.g_max_us - g_min) / self.top

    @property
    def span(self) -> float:
        """g_max in level units."""
        return self.top + self.l_min

    @classmethod
    def of(cls, target) -> "Range":
        g_max = 1000.0 / target.r_on_kohm if target.r_on_kohm else 0.0  # 1/R_on, kOhm -> uS
        return cls(1 << target.cell_bits, float(target.on_off_ratio), g_max)


def programming_sigma(levels: "torch.Tensor", rng: Range, sigma: float, fit: NoiseFit | None, scale: float):
    """Programming noise (one standard deviation) of cells at target `levels`, in level units."""
    sd = torch.full_like(levels, sigma * rng.top)  # constant: a fraction of the range
    if fit is not None:
        g_n = (levels + rng.l_min) / rng.span  # target conductance / g_max
        sd = torch.sqrt(sd * sd + (scale * _poly(fit.prog, g_n).clamp_min(0) / fit.g_ref_us * rng.span) ** 2)
    return sd


def relaxation_sigma(levels: "torch.Tensor", rng: Range, fit: NoiseFit, scale: float, t: float):
    """Extra spread the cells have gained by time t after programming (RRAM relaxation), in level
    units: the measured total spread at t (interpolated in log t) less the programming spread."""
    if not fit.relax or t <= 1.0:
        return torch.zeros_like(levels)
    g_n = (levels + rng.l_min) / rng.span
    pts = [(1.0, fit.prog)] + list(fit.relax)
    if t >= pts[-1][0]:
        total = _poly(pts[-1][1], g_n)
    else:
        k = next(i for i in range(1, len(pts)) if t < pts[i][0])
        (t_a, c_a), (t_b, c_b) = pts[k - 1], pts[k]
        f = (math.log(t) - math.log(t_a)) / (math.log(t_b) - math.log(t_a))
        total = (1 - f) * _poly(c_a, g_n) + f * _poly(c_b, g_n)
    prog = _poly(fit.prog, g_n).clamp_min(0)
    extra = (total.clamp_min(0) ** 2 - prog ** 2).clamp_min(0).sqrt()
    return scale * extra / fit.g_ref_us * rng.span


def pcm_drift_nu(levels: "torch.Tensor", rng: Range, gen) -> "torch.Tensor":
    """Drift exponents per cell, nu ~ N(mu(g), sd(g)), |nu|: Nandakumar et al. 2019 (aihwkit)."""
    g_rel = ((levels + rng.l_min) / rng.span).clamp_min(1e-7)
    mu = (-0.0155 * torch.log(g_rel) + 0.0244).clamp(0.049, 0.1)
    sd = (-0.0125 * torch.log(g_rel) - 0.0059).clamp(0.008, 0.045)
    return (mu + sd * torch.randn(levels.shape, generator=gen)).abs()


def pcm_read_sigma(g_prog: "torch.Tensor", g_now: "torch.Tensor", rng: Range, fit: NoiseFit, t: float):
    """Accumulated 1/f read noise at time t (counted from t0 as in aihwkit), level units: its
    relative size Q_s follows the programmed conductance, its scale the drifted one."""
    q_s = (0.0088 / ((g_prog / rng.span).abs() ** 0.65).clamp_min(1e-3)).clamp(max=0.2)
    tt = t + fit.t0_s
    return g_now.abs() * q_s * math.sqrt(math.log((tt + fit.t_read_s) / (2 * fit.t_read_s)))


# ---- IR drop -----------------------------------------------------------------------
def ir_drop_conductances(u: "torch.Tensor", r_dg: float, row_offset=0, col_below=0) -> "torch.Tensor":
    """Effective conductances of an array of cells u [..., n rows, m cols] (level units) whose
    rows are driven from the left (column 0 side) and whose columns are read at virtual ground
    below the last row, with wire resistance r between neighbouring cells (r_dg = r x one level
    step, dimensionless).

    First order in r g (Kirchhoff's laws linearised around the ideal crossbar; derived here and
    checked against the exact network solve, `ir_drop_exact`): the cell at (i, j) sees its row voltage lowered by
    r x the currents flowing through the row segments between it and the driver, and its column
    raised by r x the currents below it. With every current taken at its ideal value V_i g_ij the
    column current stays linear in the inputs, with conductances
        g'_ij = g_ij / (1 + r load_ij),
        load_ij = sum_j' g_ij' (min(j, j') + 1 + row_offset) + sum_i' g_i'j (n - max(i, i') + col_below),
    which is g_ij (1 - r load_ij) to first order, resummed so that it stays positive.
    row_offset: wire segments between the driver and the block's first column; col_below:
    segments between its last row and the column's sense amplifier (the block's place in its
    crossbar; numbers, or tensors that broadcast against u's leading dims). Checked against the
    exact network solve (`ir_drop_exact`) in the tests; on random
    2-bit cells at 40 uS and 0.35 Ohm the column-current loss is within 0.1% of the exact solve's
    up to 256 x 256 (7.2% at 128, 23.1% at 256; the unsummed first order says 7.8%, 30.8%), see
    benchmarks/irdrop.py.
    """
    if r_dg <= 0:
        return u
    n, m = u.shape[-2], u.shape[-1]
    j = torch.arange(m)
    i = torch.arange(n)
    k_row = (torch.minimum(j[:, None], j[None, :]) + 1).to(u.dtype)  # [m, m]
    k_col = (n - torch.maximum(i[:, None], i[None, :])).to(u.dtype)  # [n, n]
    load = u @ k_row + k_col @ u
    load = load + row_offset * u.sum(-1, keepdim=True) + col_below * u.sum(-2, keepdim=True)
    return u / (1 + r_dg * load)


def ir_drop_exact(g, v, r: float):
    """Column currents of a crossbar solved exactly (nodal analysis of the full resistive
    network): g [n, m] cell conductances (S), v [n] row voltages (V) applied at the left of each
    row, columns held at 0 V below the last row, wire resistance r (Ohm) between neighbouring
    nodes on both wires. Returns the current into each column's sense amplifier (A)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    g = np.asarray(g, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n, m = g.shape
    w = 1.0 / r
    N = n * m
    R = lambda i, j: i * m + j  # noqa: E731  row-wire node at cell (i, j)
    C = lambda i, j: N + i * m + j  # noqa: E731  column-wire node at cell (i, j)
    rows, cols, vals = [], [], []
    b = np.zeros(2 * N)

    def add(a, c, x):
        rows.append(a)
        cols.append(c)
        vals.append(x)

    for i in range(n):
        for j in range(m):
            a = R(i, j)  # row node: left neighbour (or the driver), right neighbour, the cell
            add(a, a, w + g[i, j] + (w if j < m - 1 else 0.0))
            if j > 0:
                add(a, R(i, j - 1), -w)
            else:
                b[a] += w * v[i]
            if j < m - 1:
                add(a, R(i, j + 1), -w)
            add(a, C(i, j), -g[i, j])
            c = C(i, j)  # column node: the node above, the node below (or the sense amp), the cell
            add(c, c, g[i, j] + w + (w if i > 0 else 0.0))
            if i > 0:
                add(c, C(i - 1, j), -w)
            if i < n - 1:
                add(c, C(i + 1, j), -w)
            add(c, R(i, j), -g[i, j])
    A = sp.csc_matrix((vals, (rows, cols)), shape=(2 * N, 2 * N))
    x = spl.spsolve(A, b)
    return x[N + (n - 1) * m: N + n * m] * w
