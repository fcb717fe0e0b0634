"""One crossbar MVM as the chip computes it: inputs quantised and cut into DAC digits, each block
read slice by slice (or collapsed to one product where no ADC clips), partial sums converted,
row parts added digitally."""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
from cimc.sim.devices import MAX_ELEMS
from cimc.sim.layers import SimLayer


# ---- the crossbars ---------------------------------------------------------------
def quantize_inputs(sim, layer, X):
    p = sim.precision
    if sim._calibrating:
        layer.x_max = max(layer.x_max, float(X.max()) if X.numel() else 0.0)
        layer.x_min = min(layer.x_min, float(X.min()) if X.numel() else 0.0)
        layer.x_signed = layer.x_min < 0
        m = max(layer.x_max, -layer.x_min)
        top = 2 ** (p.input_bits - 1) - 1 if layer.x_signed else 2 ** p.input_bits - 1
        layer.s_x = m / max(top, 1) if m > 0 else 1.0
    if layer.x_signed:
        top = 2 ** (p.input_bits - 1) - 1 if p.input_bits > 1 else 1
        return torch.clamp(torch.round(X / layer.s_x), -top, top)
    return torch.clamp(torch.round(X / layer.s_x), 0, 2 ** p.input_bits - 1)


def input_digits(sim, layer, xi):
    """Input digits [T, ...] (float), LSB first; x_int = sum_t 2^(t*dac_bits) digit_t."""
    p = sim.precision
    D, T, b = p.dac_bits, p.digits, p.input_bits
    u = xi.to(torch.int32)
    if layer.x_signed:
        u = torch.remainder(u, 1 << b)
    out = torch.empty((T, *xi.shape))
    mask = (1 << D) - 1
    for t in range(T):
        out[t] = (u >> (t * D)) & mask if t else u & mask
    if layer.x_signed:
        w_top = b - (T - 1) * D
        top = out[T - 1]
        top -= (top >= (1 << (w_top - 1))).to(top.dtype) * (1 << w_top)
    return out


def slice_coefficients(sim):
    """Shift-and-add weights of the A*S physical columns of one logical column (array-major)."""
    p = sim.precision
    signs = [1.0, -1.0] if p.signed_weights == "differential" else [1.0]
    return torch.tensor([sg * 2.0 ** (j * p.cell_bits) for sg in signs for j in range(p.slices)])


def row_parts(b, Gb: int, Rb: int, per_read: int) -> list["torch.Tensor"]:
    """Masks [Gb, Rb] of the rows each partial read drives. Physical rows: group after
    group on the diagonal layout, shared by the groups on the serial one."""
    r = torch.arange(Rb)
    phys = r.expand(Gb, Rb) if b.layout == "serial" else torch.arange(Gb)[:, None] * Rb + r
    part = phys // per_read
    return [(part == k).float() for k in range(int(part.max()) + 1)]


def read_generator(sim):
    if getattr(sim, "_rgen", None) is None or sim._rgen_draw != sim.draw:
        sim._rgen = torch.Generator().manual_seed(sim.seed * 7_919 + 1_000_000_007 + (sim.draw or 0))
        sim._rgen_draw = sim.draw
    return sim._rgen


def block_weights(sim, cells, b):
    """Effective integer weights [K, Gb, Rb, Cb] of a block's cells [K, Gb, Rb, width]: the
    slices shifted and added, the signed pair or the reference column subtracted."""
    p = sim.precision
    Cb = b.c1 - b.c0
    coef = slice_coefficients(sim)
    AS = len(coef)
    K, Gb, Rb, _ = cells.shape
    w_eff = cells[..., :Cb * AS].reshape(K, Gb, Rb, Cb, AS) @ coef
    if p.signed_weights == "offset":
        w_eff = w_eff - (cells[..., Cb * AS:] @ coef[:p.slices]).unsqueeze(-1)
    return w_eff


def block_linear(sim, layer, xb, cells, b):
    """No ADC, no read noise: the digits and slices recombine exactly, so one matmul
    with the block's effective integer weights gives the same result (the g_min offset the
    periphery removes cancels exactly too)."""
    p = sim.precision
    y = torch.matmul(xb, block_weights(sim, cells, b))
    if p.signed_weights == "bias":
        y = y - (2 ** (p.weight_bits - 1)) * xb.sum(-1, keepdim=True)
    return y


def column_classes(sim, width: int) -> "torch.Tensor":
    """ADC range class of each physical column of a block: its slice (and array of the signed
    pair), the reference column's slices after them. Columns of one class share a range."""
    p = sim.precision
    AS = len(slice_coefficients(sim))
    main = width - (p.slices if p.signed_weights == "offset" else 0)
    cls = torch.arange(main) % AS
    if main < width:
        cls = torch.cat([cls, AS + torch.arange(width - main)])
    return cls


def range_classes(sim) -> int:
    p = sim.precision
    return len(slice_coefficients(sim)) + (p.slices if p.signed_weights == "offset" else 0)


def adc_steps(sim, layer, cls):
    """Per column: the ADC step and the codes it can give, from the layer's calibrated range of
    the column's class (one range per slice)."""
    n = 2 ** sim.precision.adc_bits
    lo, hi = layer.p_lo[cls], layer.p_hi[cls]
    signed = lo < 0
    span = torch.where(signed, 2 * torch.maximum(hi, -lo), hi)
    lsb = torch.clamp(span / (n - 1), min=1.0)
    qlo = torch.where(signed, torch.full_like(lo, -(n // 2)), torch.zeros_like(lo))
    qhi = torch.where(signed, torch.full_like(lo, n // 2 - 1), torch.full_like(lo, n - 1))
    return lsb, qlo, qhi


def block_sliced(sim, layer, d, cells, b):
    """Bit-serial reads through the DACs, one ADC conversion per column per read.
    d: input digits [T, K, Gb, m, Rb]; returns [K, Gb, m, Cb]. Each column's current includes
    what its cells conduct at level 0 (g_min); the periphery removes it after the ADC."""
    p = sim.precision
    Cb = b.c1 - b.c0
    coef = slice_coefficients(sim)
    AS = len(coef)
    T = p.digits
    l_min = sim.range.l_min
    masks = row_parts(b, cells.shape[1], cells.shape[2], p.rows_per_read) if p.rows_per_read else None
    if masks is not None:  # the block's rows are read in parts; each part's sums are converted
        dp = torch.stack([d * mask[:, None, :] for mask in masks])  # [parts, T, ...]
    else:
        dp = d
    P = torch.matmul(dp, cells)  # [(parts,) T, K, Gb, m, width]
    dsum = dp.sum(-1, keepdim=True) if l_min else None
    if l_min:
        P += l_min * dsum
    var = sim.variation
    if var.per_read and sim.draw is not None and not sim._calibrating:
        gen = read_generator(sim)
        if var.read_sigma:  # each cell's read: independent per cell, its variance summed exactly
            top = float((1 << p.cell_bits) - 1)
            sd = var.read_sigma * top * torch.sqrt((dp * dp).sum(-1, keepdim=True))
            P += sd * torch.randn(P.shape, generator=gen)
        if var.dac_sigma:  # each driven row's voltage: shared by the row's cells
            full = float((1 << p.dac_bits) - 1)
            noise = var.dac_sigma * full * torch.randn(d.shape, generator=gen)
            if masks is not None:
                noise = torch.stack([noise * mask[:, None, :] for mask in masks])
            P += torch.matmul(noise, cells)
        if var.out_sigma:  # each column before its ADC
            full = float((1 << p.dac_bits) - 1)
            P += var.out_sigma * full * torch.randn(P.shape, generator=gen)
    lsb = None
    if sim._calibrating:
        cls = column_classes(sim, P.shape[-1])
        flat = P.reshape(-1, P.shape[-1])
        layer.p_lo = layer.p_lo.scatter_reduce(0, cls, flat.min(0).values, "amin")
        layer.p_hi = layer.p_hi.scatter_reduce(0, cls, flat.max(0).values, "amax")
    elif p.adc_bits:  # in place, codes kept; the step is applied in the digital sums below
        lsb, qlo, qhi = adc_steps(sim, layer, column_classes(sim, P.shape[-1]))
        P.mul_(1.0 / lsb).round_().clamp_(qlo, qhi)
        if l_min:
            P -= (l_min * dsum) / lsb
    elif l_min:
        P -= l_min * dsum
    if masks is not None:
        P = P.sum(0)  # the digital sum of the parts' conversions
    coef_t = torch.tensor([2.0 ** (t * p.dac_bits) for t in range(T)])
    Pt = torch.tensordot(coef_t, P, dims=([0], [0]))  # [K, Gb, m, width]
    if lsb is not None:
        Pt.mul_(lsb)  # the ADC codes back to partial-sum units, per column's step
    K, Gb, m, _ = Pt.shape
    y = Pt[..., :Cb * AS].reshape(K, Gb, m, Cb, AS) @ coef
    if p.signed_weights == "offset":
        y -= (Pt[..., Cb * AS:] @ coef[:p.slices]).unsqueeze(-1)
    elif p.signed_weights == "bias":
        xs = torch.tensordot(coef_t, d, dims=([0], [0])).sum(-1, keepdim=True)
        y -= (2 ** (p.weight_bits - 1)) * xs
    return y


def adc_is_exact(sim, layer) -> bool:
    """Whether the ADC provably changes no partial sum of this layer, so that the collapsed path
    (one matmul, `block_linear`) gives exactly what the per-read path would: the cells hold
    integer levels (no random variation, no read noise, no IR drop, no g_min offset), and the
    largest sum a column can make in one read, rows x largest digit x top level, fits in the
    ADC's codes at a step of one (so nothing is rounded or clipped)."""
    p = sim.precision
    if not p.adc_bits or sim.r_dg or sim.range.l_min or sim.variation.per_read and sim.draw is not None:
        return False
    if sim.draw is not None and sim.variation.programmed:
        return False
    if sim.time_s and sim.variation.drifts and sim.draw is not None:
        return False
    rows = max(b.r1 - b.r0 for blocks in layer.copies for b in blocks)
    if p.rows_per_read:
        rows = min(rows, p.rows_per_read)
    bound = rows * ((1 << p.dac_bits) - 1) * ((1 << p.cell_bits) - 1)
    n = 2 ** p.adc_bits
    signed = layer.x_signed or bool((layer.p_lo < 0).any())
    return bound <= (n // 2 - 1 if signed else n - 1)


def crossbar_mvm(sim, layer: SimLayer, X: "torch.Tensor", per_inf: int) -> "torch.Tensor":
    """X [G, M, R] activations -> Y [G, M, C] (float, scales applied, no bias)."""
    p = sim.precision
    xi = quantize_inputs(sim, layer, X)
    if sim._measuring:
        d = input_digits(sim, layer, xi)
        layer.drive += float(d.abs().sum()) / ((1 << p.dac_bits) - 1)
        layer.digits_seen += d.numel()
    G, M, R = X.shape
    C = layer.w.shape[2]
    n = len(layer.copies)
    mvm = torch.arange(M) % per_inf
    bounds = np.cumsum([0] + layer.shares) * (per_inf / max(1, layer.mvms))
    sliced = bool(sim._calibrating or (sim.variation.per_read and sim.draw is not None)
                  or (p.adc_bits and not adc_is_exact(sim, layer)))
    Y = torch.zeros(G, M + 1, C)
    xpad = torch.cat([xi, torch.zeros(G, 1, R)], dim=1)  # row M: padding, computes 0
    for members, blocks, cells in layer.cells:
        K = cells[0].shape[0]
        if n == 1 or (K == 1 and len(members) == n):
            gidx = torch.arange(M).unsqueeze(0)
        else:
            if per_inf < n:  # fewer MVMs per inference than copies: the stream takes turns on the copies
                turn = torch.arange(M) % n
                runs = [torch.nonzero(turn == k).flatten() for k in members]
            else:
                runs = [torch.nonzero((mvm >= bounds[k]) & (mvm < bounds[k + 1])).flatten() for k in members]
            if K == 1:
                runs = [torch.cat(runs)]
            width = max(1, max(len(r) for r in runs))
            gidx = torch.full((K, width), M, dtype=torch.int64)
            for j, r in enumerate(runs):
                gidx[j, :len(r)] = r
        xg = xpad[:, gidx].permute(1, 0, 2, 3)  # [K, G, m, R]
        m_all = gidx.shape[1]
        yg = torch.zeros(K, G, m_all, C)
        widest = max(max(c.shape[-1] for c in cells), R)
        step = m_all if not sliced else max(1, MAX_ELEMS // max(1, p.digits * K * G * widest))
        for m0 in range(0, m_all, step):
            xc = xg[:, :, m0:m0 + step]
            d = input_digits(sim, layer, xc) if sliced else None
            for b, cb in zip(blocks, cells):
                if sliced:
                    y = block_sliced(sim, layer, d[:, :, b.g0:b.g1, :, b.r0:b.r1], cb, b)
                else:
                    y = block_linear(sim, layer, xc[:, b.g0:b.g1, :, b.r0:b.r1], cb, b)
                yg[:, b.g0:b.g1, m0:m0 + step, b.c0:b.c1] += y
        Y[:, gidx.flatten()] = yg.permute(1, 0, 2, 3).reshape(G, -1, C)
    return Y[:, :M] * (layer.s_w * layer.s_x * layer.alpha)
