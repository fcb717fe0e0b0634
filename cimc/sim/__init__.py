"""Crossbar-level functional simulator: run a compiled Module on real inputs the way the
chip would, to measure accuracy on the same mapping the cost comes from.

The model, per weight layer (Conv as im2col rows x C_out/g per group, Gemm/MatMul as K x N):
- weights quantised per layer, symmetric, to `weight_bits` signed: q in [-(2^(B-1)-1), 2^(B-1)-1];
- signed encoding as the target says: "differential" (magnitudes of q+ and q- in two
  arrays, subtracted after the ADCs), "offset" (q + 2^(B-1) stored, one reference column
  per block holding 2^(B-1), subtracted after the ADCs), "bias" (q + 2^(B-1) stored, the
  bias removed digitally: ISAAC), "unsigned" (weights must not be negative);
- each stored magnitude sliced into cells of `cell_bits` (ceil(B / cell_bits) of them; a
  differential pair stores the B-1 bits of a magnitude, ceil((B-1) / cell_bits));
- inputs quantised per layer to `input_bits` (unsigned when the calibration inputs are
  all >= 0, two's complement otherwise) and fed through `dac_bits`-bit DACs, one read per
  digit (the top digit signed for signed inputs);
- every read of every block gives one partial sum per physical column, quantised by the
  ADC (`adc_bits`, the target's; one range per slice of each layer, calibrated on a few
  training inputs with the ideal chip; the step is never finer than one cell level times one
  input digit), then shift-and-add across digits, slices, the signed pair and the blocks of the layer (digital, exact);
- a layer's copies each hold their own cells (their own variation); copy k computes the
  MVMs the mapping gives it (contiguous runs of output pixels, `share` sized; a layer with
  fewer MVMs per inference than copies, like a classifier, takes turns over the inputs);
- device physics (`cimc.sim.physics`): a cell at level l of L = 2^cell_bits conducts
  g_min + l (g_max - g_min) / (L-1), g_min = g_max / on_off (what a level-0 cell still conducts
  reaches the ADC and is removed after it); programming noise constant (sigma, a fraction of the
  range) or state-dependent from a published fit (`--noise-model`); lognormal and stuck-at
  faults; every programmed conductance within [g_min, g_max]; in time, power-law drift,
  relaxation and 1/f read noise, with optional global drift compensation;
- the wires: IR drop along rows and columns from the crossbar's wire resistance and the cells'
  conductances, by the block's place in its crossbar (first order, resummed; needs the
  device's R_on);
- per read: cell read noise N(0, read_sigma) per cell (added to each partial sum with its exact
  variance), column noise before the ADC (out_sigma), row drive noise (dac_sigma). One draw =
  one programmed chip, fixed over the whole test set; per-read noise is drawn fresh each read.
Digital ops run exactly as in the ONNX graph (`cimc.onnx_torch`), and BatchNormalization
folded by `lower` is folded into the crossbar weights here too.

Partitioning matters: rows split across blocks give separate, smaller partial sums, each
through its own ADC, on shorter wires. Packing places blocks in their crossbars (their place sets
the wires' length to the drivers and sense amplifiers); scheduling does not change the
arithmetic. Not modelled: sneak paths through unselected cells (1T1R arrays have none), the
currents of other blocks' cells on a shared row, temperature.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from cimc.errors import ModelError
from cimc.ir import Module
from cimc.onnx_torch import Interpreter, conv_pads, need_torch, torch_pad
from cimc.sim.crossbar import block_weights, crossbar_mvm, range_classes
from cimc.sim.devices import (
    Precision,
    SimError,
    Variation,
    effective_weights,
    quantize_weights,
    stored_arrays,
)
from cimc.sim.layers import SimLayer, block_cells, build_layers
from cimc.sim.physics import Range

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


class Simulator:
    """Simulates `module` (a compiled Module) for the ONNX `model` it was compiled from.

    model: path or ModelProto, with its weights. Each call of `program(draw)` makes a chip;
    `run(x)` runs a batch on the current chip; `calibrate(x)` sets the input and ADC ranges.
    mode: "float" (the ONNX graph in float, no crossbars), "quant" (crossbars: quantisation
    and ADC, cells as programmed).
    """

    def __init__(self, model, module: Module, precision: Precision | None = None, variation: Variation = Variation(),
                 seed: int = 0, ir_drop: bool = True):
        need_torch("The simulator")
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            where = str(model)
            try:
                model = onnx.load(str(model))
            except Exception as e:
                raise ModelError(f"{where}: cannot load the model with its weights: {e}") from None
        else:
            where = "model"
        self.where = where
        self.module = module
        self.target = module.target
        self.precision = precision or Precision.of(self.target)
        self.variation = variation
        self.seed = seed
        self.range = Range.of(self.target)
        # IR drop: wire resistance x one level step (dimensionless); 0 when the device has no R_on
        self.r_dg = self.target.wire_ohm * self.range.dg_us * 1e-6 if ir_drop and self.range.g_max_us else 0.0
        self.time_s = 0.0
        for op in module.ops:
            if op.kind in ("nn.conv_transpose", "nn.rnn"):
                raise SimError(f"{where}: layer '{op.result}' is a {op.kind[3:]}; the simulator runs Conv, Gemm "
                               "and MatMul layers on crossbars, not yet ConvTranspose or recurrent layers.")
        self.interp = Interpreter(model, where)
        self.input_names = self.interp.inputs
        self.layers: dict[str, SimLayer] = {}
        self.skip: set[str] = set()  # BN nodes folded into a layer
        build_layers(self)
        self.calibrated = False
        self.mode = "float"
        self.draw = None


    # ---- programming ---------------------------------------------------------------
    def program(self, draw: int | None, t: float = 0.0, compensate: bool = False) -> None:
        """Program a chip: draw None is the ideal chip; draw k is Monte Carlo chip k, read t
        seconds after programming (the same chip for every t: drift and relaxation follow its
        own cells). compensate: global drift compensation, each layer's outputs scaled by its
        mean |effective weight| just after programming over the one at t (aihwkit's
        GlobalDriftCompensation).

        Copies of a layer with the same blocks form one group; each block's cells are a
        tensor [copies, groups, rows, physical columns] (one copy when the cells are ideal,
        since identical copies compute the same)."""
        if t < 0 or not math.isfinite(t):
            raise SimError(f"time t = {t} s must be a finite number >= 0.")
        var = self.variation if draw is not None else Variation()
        t = t if var.drifts else 0.0
        self._program_cells(draw, var, t)
        for layer in self.layers.values():
            layer.alpha = 1.0
        if compensate and t:
            now = {name: _mean_abs_weight(self, layer) for name, layer in self.layers.items()}
            cells_t = {name: layer.cells for name, layer in self.layers.items()}
            self._program_cells(draw, var, 0.0)  # the same chip just after programming: the reference
            for name, layer in self.layers.items():
                before = _mean_abs_weight(self, layer)
                layer.alpha = before / now[name] if now[name] > 0 else 1.0
                layer.cells = cells_t[name]
        self.draw = draw
        self.time_s = t

    def _program_cells(self, draw, var, t):
        p = self.precision
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + (draw or 0))
        tgen = torch.Generator().manual_seed(self.seed * 1_000_033 + 7 * (draw or 0) + int(t * 1000) % (1 << 40))
        for layer in self.layers.values():
            if layer.q is None:
                layer.q, layer.s_w = quantize_weights(layer.w, p.weight_bits)
            arrays = stored_arrays(layer.q, p)
            by_shape: dict = {}
            for k, blocks in enumerate(layer.copies):
                key = tuple((b.g0, b.g1, b.r0, b.r1, b.c0, b.c1, b.row0, b.col0) for b in blocks)
                by_shape.setdefault(key, []).append(k)
            layer.cells = []
            for key, members in by_shape.items():
                blocks = layer.copies[members[0]]
                n = len(members) if var.programmed else 1
                cells = [torch.stack([block_cells(self, arrays, b, var, gen, t, tgen) for _ in range(n)])
                         for b in blocks]
                layer.cells.append((members, blocks, cells))


    # ---- running -------------------------------------------------------------------
    def calibrate(self, x: np.ndarray) -> None:
        """Input ranges per layer and ADC ranges per layer and slice, from a few inputs on the
        ideal chip (no random variation; its wires and g_min as they are)."""
        self.program(None)
        classes = range_classes(self)
        for layer in self.layers.values():
            layer.x_max = layer.x_min = 0.0
            layer.p_lo = torch.zeros(classes)  # the ADC range of each slice (column class)
            layer.p_hi = torch.zeros(classes)
        self._calibrating = True
        try:
            self._forward(x, "quant")
        finally:
            self._calibrating = False
        self.calibrated = True

    def run(self, x: np.ndarray, mode: str = "quant", batch: int = 256, measure: bool = False) -> np.ndarray:
        """Outputs (the first graph output) for inputs x [N, ...] on the current chip.
        measure: count how hard the inputs drive the rows (`input_densities`)."""
        if mode == "quant" and not self.calibrated:
            raise SimError("calibrate() the simulator before running in 'quant' mode.")
        self._measuring = measure
        try:
            outs = [self._forward(x[i:i + batch], mode) for i in range(0, len(x), batch)]
        finally:
            self._measuring = False
        return np.concatenate(outs)

    def input_densities(self) -> dict[str, float]:
        """Per crossbar layer, over the runs made with measure=True: the mean DAC digit of its
        inputs as a share of full scale (for 1-bit DACs, the share of input bits that are 1),
        i.e. how much of the worst-case row drive (every row, every read) the data uses. The
        cost model takes it as a layer's `input_density`."""
        return {layer.name: layer.drive / layer.digits_seen for layer in self.layers.values() if layer.digits_seen}

    _calibrating = False
    _measuring = False

    def _forward(self, x, mode):
        feeds = {self.input_names[0]: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)}
        hook = None
        if mode == "quant":
            hook = self._hook
        elif mode != "float":
            raise SimError(f"mode '{mode}' is not one of float, quant.")
        with torch.no_grad():
            out = self.interp.run(feeds, hook)[0]
        return out.numpy()

    def _hook(self, node, inputs):
        label = node.name or node.output[0]
        if node.output[0] in self.skip:
            return inputs[0]  # BN folded into the layer before it
        layer = self.layers.get(label)
        if layer is None:
            return None
        x = inputs[0] if layer.kind != "matmul_left" else inputs[1]
        if layer.kind == "conv":
            return self._conv(layer, x)
        return self._matmul(layer, x)

    def _conv(self, layer, x):
        spatial = len(layer.w_shape) - 2
        a = layer.attrs
        pads = conv_pads(a, x.shape, layer.w_shape)
        strides = list(a.get("strides", [1] * spatial))
        dil = list(a.get("dilations", [1] * spatial))
        k = list(layer.w_shape[2:])
        xp = torch_pad(x, pads)
        if spatial == 1:
            xp, k, strides, dil = xp.unsqueeze(2), [1] + k, [1] + strides, [1] + dil
        N = xp.shape[0]
        cols = F.unfold(xp, k, dilation=dil, stride=strides)  # [N, Cin*kh*kw, L]
        L = cols.shape[2]
        G, R, C = layer.w.shape
        X = cols.reshape(N, G, R, L).permute(1, 0, 3, 2).reshape(G, N * L, R)
        Y = crossbar_mvm(self, layer, X, L)  # [G, N*L, C]
        out_sp = [(xp.shape[2 + i] - dil[i] * (k[i] - 1) - 1) // strides[i] + 1 for i in range(2)]
        y = Y.reshape(G, N, L, C).permute(1, 0, 3, 2).reshape(N, G * C, *out_sp)
        if spatial == 1:
            y = y.squeeze(2)
        if layer.bias is not None:
            y = y + layer.bias.reshape(1, -1, *[1] * spatial)
        return y

    def _matmul(self, layer, x):
        if layer.kind == "matmul_left":
            x = x.transpose(-1, -2)
        lead = x.shape[:-1]
        X = x.reshape(1, -1, x.shape[-1])
        per_inf = max(1, X.shape[1] // max(1, x.shape[0])) if x.dim() > 1 else 1
        Y = crossbar_mvm(self, layer, X, per_inf)[0]
        y = Y.reshape(*lead, -1)
        if layer.bias is not None:
            y = y + layer.bias
        if layer.kind == "matmul_left":
            y = y.transpose(-1, -2)
        return y


def _mean_abs_weight(sim, layer) -> float:
    """Mean |effective integer weight| of a layer's programmed cells (every copy)."""
    total, count = 0.0, 0
    for _, blocks, cells in layer.cells:
        for b, cb in zip(blocks, cells):
            w = block_weights(sim, cb, b)
            total += float(w.abs().sum())
            count += w.numel()
    return total / max(1, count)


__all__ = ["Simulator", "SimError", "Variation", "Precision", "effective_weights", "quantize_weights"]
