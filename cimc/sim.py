"""Crossbar-level functional simulator: run a compiled Module on real inputs the way the
chip would, to measure accuracy on the same mapping the cost comes from.

The model, per weight layer (Conv as im2col rows x C_out/g per group, Gemm/MatMul as K x N):
- weights quantised per layer, symmetric, to `weight_bits` signed: q in [-(2^(B-1)-1), 2^(B-1)-1];
- signed encoding as the target says: "differential" (magnitudes of q+ and q- in two
  arrays, subtracted after the ADCs), "offset" (q + 2^(B-1) stored, one reference column
  per block holding 2^(B-1), subtracted after the ADCs), "bias" (q + 2^(B-1) stored, the
  bias removed digitally: ISAAC), "unsigned" (weights must not be negative);
- each stored magnitude sliced into ceil(B / cell_bits) cells of `cell_bits` levels;
- inputs quantised per layer to `input_bits` (unsigned when the calibration inputs are
  all >= 0, two's complement otherwise) and fed through `dac_bits`-bit DACs, one read per
  digit (the top digit signed for signed inputs);
- every read of every block gives one partial sum per physical column, quantised by the
  ADC (`adc_bits`; range calibrated per layer on a few inputs with an ideal chip; the step
  is never finer than one cell level times one input digit), then shift-and-add across
  digits, slices, the signed pair and the blocks of the layer (digital, exact);
- a layer's copies each hold their own cells (their own variation); copy k computes the
  MVMs the mapping gives it (contiguous runs of output pixels, `share` sized; a layer with
  fewer MVMs per inference than copies, like a classifier, takes turns over the inputs);
- device non-idealities per cell, in units of the cell's conductance range (a cell at
  level l of L = 2^cell_bits levels has normalised conductance g = l / (L-1)), following
  HARDWARE.md: Gaussian g + N(0, sigma); lognormal g * exp(N(0, lognormal)); stuck-at
  faults (g = 1 with rate stuck_on, g = 0 with rate stuck_off); read noise N(0, read_sigma)
  per cell per read, drawn fresh each inference (added to each partial sum with its exact
  variance). One draw = one programmed chip, fixed over the whole test set.
Digital ops run exactly as in the ONNX graph (`cimc.onnx_torch`), and BatchNormalization
folded by `lower` is folded into the crossbar weights here too.

Partitioning matters: rows split across blocks give separate, smaller partial sums, each
through its own ADC. Packing and scheduling do not change the arithmetic (no sneak paths
or IR drop are modelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from cimc.errors import CimcError, ModelError
from cimc.ir import Module
from cimc.mapping import WEIGHT_KINDS, weight_boxes
from cimc.onnx_torch import Interpreter, conv_pads, need_torch, torch_pad

try:
    import torch
    import torch.nn.functional as F
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


# ---- programming cells ------------------------------------------------------------------

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


# ---- one weight layer ------------------------------------------------------------------

@dataclass
class _Block:
    g0: int
    g1: int
    r0: int
    r1: int
    c0: int
    c1: int
    layout: str = "diag"


@dataclass
class _Layer:
    name: str  # IR op
    node: object  # ONNX node
    kind: str  # conv | matmul | matmul_left
    w: "torch.Tensor"  # [G, R, C] float weights (BN folded)
    bias: "torch.Tensor | None"  # added after the MVMs (digital)
    attrs: dict  # ONNX attributes of the node (conv geometry)
    w_shape: tuple  # ONNX weight shape (conv)
    mvms: int  # per inference
    copies: list  # per copy: list of _Block
    shares: list  # per copy: MVMs it computes per inference
    q: "torch.Tensor | None" = None
    s_w: float = 1.0
    x_signed: bool = False
    s_x: float = 1.0
    x_max: float = 0.0
    x_min: float = 0.0
    p_lo: float = 0.0
    p_hi: float = 0.0
    bn_node: object = None
    cells: list = field(default_factory=list)  # per group of same-shaped copies: (copies, blocks, cells)
    drive: float = 0.0  # sum over the inputs' DAC digits of |digit| / full scale (see input_densities)
    digits_seen: int = 0


class Simulator:
    """Simulates `module` (a compiled Module) for the ONNX `model` it was compiled from.

    model: path or ModelProto, with its weights. Each call of `program(draw)` makes a chip;
    `run(x)` runs a batch on the current chip; `calibrate(x)` sets the input and ADC ranges.
    mode: "float" (the ONNX graph in float, no crossbars), "quant" (crossbars: quantisation
    and ADC, cells as programmed).
    """

    def __init__(self, model, module: Module, precision: Precision | None = None, variation: Variation = Variation(),
                 seed: int = 0):
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
        for op in module.ops:
            if op.kind in ("nn.conv_transpose", "nn.rnn"):
                raise SimError(f"{where}: layer '{op.result}' is a {op.kind[3:]}; the simulator runs Conv, Gemm "
                               "and MatMul layers on crossbars, not yet ConvTranspose or recurrent layers.")
        self.interp = Interpreter(model, where)
        self.input_names = self.interp.inputs
        self.layers: dict[str, _Layer] = {}
        self.skip: set[str] = set()  # BN nodes folded into a layer
        self._build()
        self.calibrated = False
        self.mode = "float"
        self.draw = None

    # ---- set-up --------------------------------------------------------------------
    def _build(self):
        by_label = {}
        for node in self.interp.nodes:
            by_label[node.name or node.output[0]] = node
        consumers = {}
        for node in self.interp.nodes:
            for x in node.input:
                consumers.setdefault(x, []).append(node)
        blocks: dict[str, list] = {}
        for op in self.module.ops:
            if op.kind == "map.block":
                blocks.setdefault(op.operands[0], []).append(op)
        for op in self.module.ops:
            if op.kind not in WEIGHT_KINDS:
                continue
            node = by_label.get(op.get("onnx"))
            if node is None:
                raise SimError(f"{self.where}: the mapping's layer '{op.result}' (ONNX node '{op.get('onnx')}') is not "
                               "in the model; simulate the model the mapping was compiled from.")
            if not blocks.get(op.result):
                raise SimError(f"{self.where}: layer '{op.result}' has no blocks; compile with a pipeline that "
                               "partitions (e.g. baseline or full) before simulating.")
            layer = self._layer(op, node, consumers)
            self.layers[node.name or node.output[0]] = layer
            self._assign_blocks(layer, op, blocks[op.result])

    def _const(self, name, what):
        t = self.interp.const.get(name)
        if t is None:
            raise SimError(f"{self.where}: the {what} '{name}' is not a constant of the model.")
        return t.to(torch.float32)

    def _layer(self, op, node, consumers) -> _Layer:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        label = node.name or node.output[0]
        bias = None
        if node.op_type == "Conv":
            w4 = self._const(node.input[1], "weight")
            g = int(a.get("group", 1))
            if w4.dim() not in (3, 4):
                raise SimError(f"{self.where}: Conv '{label}' has {w4.dim() - 2} spatial dims; the simulator maps 1-D "
                               "and 2-D convolutions.")
            cout = w4.shape[0]
            w = w4.reshape(g, cout // g, -1).transpose(1, 2).contiguous()
            if len(node.input) > 2 and node.input[2]:
                bias = self._const(node.input[2], "bias")
            kind, w_shape = "conv", tuple(w4.shape)
        elif node.op_type in ("Gemm", "MatMul"):
            right = node.input[1] in self.interp.const
            if right:
                b = self._const(node.input[1], "weight")
                if node.op_type == "Gemm" and a.get("transB", 0):
                    b = b.t()
                if b.dim() > 2:
                    b = b.reshape(b.shape[-2], b.shape[-1])
                if b.dim() == 1:
                    b = b.reshape(-1, 1)
                if node.op_type == "Gemm" and a.get("transA", 0):
                    raise SimError(f"{self.where}: Gemm '{label}' with transA is not supported by the simulator.")
                w = (b * a.get("alpha", 1.0)).unsqueeze(0)
                kind = "matmul"
                if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
                    bias = self._const(node.input[2], "bias") * a.get("beta", 1.0)
            else:
                m = self._const(node.input[0], "weight")
                if node.op_type == "Gemm":
                    raise SimError(f"{self.where}: Gemm '{label}' with a constant first operand is not supported by "
                                   "the simulator.")
                if m.dim() == 1:
                    m = m.reshape(1, -1)
                w = m.reshape(m.shape[-2], m.shape[-1]).t().contiguous().unsqueeze(0)
                kind = "matmul_left"
            w_shape = tuple(w.shape)
        else:
            raise SimError(f"{self.where}: node '{label}' ({node.op_type}) is not a layer the simulator maps.")
        if w.shape[1] != op["rows"] or w.shape[2] != op["cols"] or w.shape[0] != op["groups"]:
            raise SimError(f"{self.where}: layer '{op.result}' is {op['groups']} x {op['rows']} x {op['cols']} in the "
                           f"mapping but {tuple(w.shape)} in the model; the mapping is of another model.")
        layer = _Layer(op.result, node, kind, w, bias, a, w_shape, op["mvms"], [], [])
        if "BatchNormalization" in (op.get("fused") or ()):
            users = consumers.get(node.output[0], [])
            if len(users) != 1 or users[0].op_type != "BatchNormalization":
                raise SimError(f"{self.where}: the mapping folds a BatchNormalization into '{op.result}' but the model "
                               "has none after it.")
            bn = users[0]
            scale, beta, mean, var = (self._const(x, "BatchNormalization parameter") for x in bn.input[1:5])
            eps = next((onnx.helper.get_attribute_value(x) for x in bn.attribute if x.name == "epsilon"), 1e-5)
            k = scale / torch.sqrt(var + eps)
            G, R, C = layer.w.shape
            layer.w = layer.w * k.reshape(G, 1, C)
            b0 = bias if bias is not None else torch.zeros(G * C)
            layer.bias = (b0 - mean) * k + beta
            layer.bn_node = bn
            self.skip.add(bn.output[0])
        return layer

    def _assign_blocks(self, layer: _Layer, op, blocks):
        n = 1 + max(b["copy"] for b in blocks)
        layer.copies = [[] for _ in range(n)]
        shares = [None] * n
        for b in blocks:  # a dense block computes where its rows meet its columns (zeros elsewhere add
            # nothing; its partial reads are grouped as on the diagonal of that part)
            for box in weight_boxes(b, op["cols"]):
                layer.copies[b["copy"]].append(_Block(*box, "diag" if b["layout"] == "dense" else b["layout"]))
            if b.get("share") is not None:
                shares[b["copy"]] = b["share"]
        if any(s is None for s in shares):
            base, extra = divmod(layer.mvms, n)
            shares = [base + (1 if k < extra else 0) for k in range(n)]
        layer.shares = shares

    # ---- programming ---------------------------------------------------------------
    def program(self, draw: int | None) -> None:
        """Program a chip: draw None is the ideal chip; draw k is Monte Carlo chip k.

        Copies of a layer with the same blocks form one group; each block's cells are a
        tensor [copies, groups, rows, physical columns] (one copy when the cells are ideal,
        since identical copies compute the same)."""
        p = self.precision
        var = self.variation if draw is not None else Variation()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + (draw or 0))
        for layer in self.layers.values():
            if layer.q is None:
                layer.q, layer.s_w = quantize_weights(layer.w, p.weight_bits)
            arrays = stored_arrays(layer.q, p)
            by_shape: dict = {}
            for k, blocks in enumerate(layer.copies):
                key = tuple((b.g0, b.g1, b.r0, b.r1, b.c0, b.c1) for b in blocks)
                by_shape.setdefault(key, []).append(k)
            layer.cells = []
            for key, members in by_shape.items():
                blocks = layer.copies[members[0]]
                n = len(members) if var.programmed else 1
                cells = [torch.stack([self._block_cells(arrays, b, var, gen) for _ in range(n)]) for b in blocks]
                layer.cells.append((members, blocks, cells))
        self.draw = draw

    def _block_cells(self, arrays, b: "_Block", var: Variation, gen) -> "torch.Tensor":
        """Programmed cells of one block: [Gb, Rb, Cb*A*S (+ S reference cells)]; the A*S
        physical columns of a logical column are adjacent (array-major, LSB slice first)."""
        p = self.precision
        parts = [perturb(slice_levels(mag[b.g0:b.g1, b.r0:b.r1, b.c0:b.c1], p), p, var, gen) for _, mag in arrays]
        cells = torch.stack(parts)  # [A, S, Gb, Rb, Cb]
        A, S, Gb, Rb, Cb = cells.shape
        cells = cells.permute(2, 3, 4, 0, 1).reshape(Gb, Rb, Cb * A * S)
        if p.signed_weights == "offset":  # the block's reference column
            ref = torch.full((Gb, Rb), float(2 ** (p.weight_bits - 1)))
            ref = perturb(slice_levels(ref, p), p, var, gen).permute(1, 2, 0)  # [Gb, Rb, S]
            cells = torch.cat([cells, ref], dim=2)
        return cells.contiguous()

    # ---- running -------------------------------------------------------------------
    def calibrate(self, x: np.ndarray) -> None:
        """Input and ADC ranges per layer from a few inputs on the ideal chip."""
        self.program(None)
        for layer in self.layers.values():
            layer.x_max = layer.x_min = 0.0
            layer.p_lo = layer.p_hi = 0.0
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
        Y = self._mvm(layer, X, L)  # [G, N*L, C]
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
        Y = self._mvm(layer, X, per_inf)[0]
        y = Y.reshape(*lead, -1)
        if layer.bias is not None:
            y = y + layer.bias
        if layer.kind == "matmul_left":
            y = y.transpose(-1, -2)
        return y

    # ---- the crossbars ---------------------------------------------------------------
    def _quantize_inputs(self, layer, X):
        p = self.precision
        if self._calibrating:
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

    def _digits(self, layer, xi):
        """Input digits [T, ...] (float), LSB first; x_int = sum_t 2^(t*dac_bits) digit_t."""
        p = self.precision
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

    def _mvm(self, layer: _Layer, X: "torch.Tensor", per_inf: int) -> "torch.Tensor":
        """X [G, M, R] activations -> Y [G, M, C] (float, scales applied, no bias)."""
        p = self.precision
        xi = self._quantize_inputs(layer, X)
        if self._measuring:
            d = self._digits(layer, xi)
            layer.drive += float(d.abs().sum()) / ((1 << p.dac_bits) - 1)
            layer.digits_seen += d.numel()
        G, M, R = X.shape
        C = layer.w.shape[2]
        n = len(layer.copies)
        mvm = torch.arange(M) % per_inf
        bounds = np.cumsum([0] + layer.shares) * (per_inf / max(1, layer.mvms))
        sliced = bool(p.adc_bits or (self.variation.read_sigma and self.draw is not None) or self._calibrating)
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
                d = self._digits(layer, xc) if sliced else None
                for b, cb in zip(blocks, cells):
                    if sliced:
                        y = self._block_sliced(layer, d[:, :, b.g0:b.g1, :, b.r0:b.r1], cb, b)
                    else:
                        y = self._block_linear(layer, xc[:, b.g0:b.g1, :, b.r0:b.r1], cb, b)
                    yg[:, b.g0:b.g1, m0:m0 + step, b.c0:b.c1] += y
            Y[:, gidx.flatten()] = yg.permute(1, 0, 2, 3).reshape(G, -1, C)
        return Y[:, :M] * (layer.s_w * layer.s_x)

    def _coef(self):
        """Shift-and-add weights of the A*S physical columns of one logical column (array-major)."""
        p = self.precision
        signs = [1.0, -1.0] if p.signed_weights == "differential" else [1.0]
        return torch.tensor([sg * 2.0 ** (j * p.cell_bits) for sg in signs for j in range(p.slices)])

    def _block_linear(self, layer, xb, cells, b):
        """No ADC, no read noise: the digits and slices recombine exactly, so one matmul
        with the block's effective integer weights gives the same result."""
        p = self.precision
        Cb = b.c1 - b.c0
        coef = self._coef()
        AS = len(coef)
        K, Gb, Rb, _ = cells.shape
        w_eff = cells[..., :Cb * AS].reshape(K, Gb, Rb, Cb, AS) @ coef
        if p.signed_weights == "offset":
            w_eff = w_eff - (cells[..., Cb * AS:] @ coef[:p.slices]).unsqueeze(-1)
        y = torch.matmul(xb, w_eff)
        if p.signed_weights == "bias":
            y = y - (2 ** (p.weight_bits - 1)) * xb.sum(-1, keepdim=True)
        return y

    def _block_sliced(self, layer, d, cells, b):
        """Bit-serial reads through the DACs, one ADC conversion per column per read.
        d: input digits [T, K, Gb, m, Rb]; returns [K, Gb, m, Cb]."""
        p = self.precision
        Cb = b.c1 - b.c0
        coef = self._coef()
        AS = len(coef)
        T = p.digits
        if p.rows_per_read:  # the block's rows are read in parts; each part's sums are converted
            parts = self._row_parts(b, cells.shape[1], cells.shape[2], p.rows_per_read)
            P = torch.stack([torch.matmul(d * mask[:, None, :], cells) for mask in parts])  # [parts, T, ...]
        else:
            P = torch.matmul(d, cells)  # [T, K, Gb, m, width]
        if self.variation.read_sigma and self.draw is not None and not self._calibrating:
            top = float((1 << p.cell_bits) - 1)
            dd = d * d
            if p.rows_per_read:
                dd = torch.stack([dd * mask[:, None, :] for mask in parts])
            sd = self.variation.read_sigma * top * torch.sqrt(dd.sum(-1, keepdim=True))
            P += sd * torch.randn(P.shape, generator=self._read_gen())
        lsb = 1.0
        if self._calibrating:
            layer.p_lo = min(layer.p_lo, float(P.min()))
            layer.p_hi = max(layer.p_hi, float(P.max()))
        elif p.adc_bits:
            n = 2 ** p.adc_bits
            if layer.p_lo >= 0:
                lsb, qlo, qhi = max(layer.p_hi / (n - 1), 1.0), 0, n - 1
            else:
                lsb = max(2 * max(layer.p_hi, -layer.p_lo) / (n - 1), 1.0)
                qlo, qhi = -(n // 2), n // 2 - 1
            P.div_(lsb).round_().clamp_(qlo, qhi)
        if p.rows_per_read:
            P = P.sum(0)  # the digital sum of the parts' conversions
        coef_t = torch.tensor([lsb * 2.0 ** (t * p.dac_bits) for t in range(T)])
        Pt = torch.tensordot(coef_t, P, dims=([0], [0]))  # [K, Gb, m, width]
        K, Gb, m, _ = Pt.shape
        y = Pt[..., :Cb * AS].reshape(K, Gb, m, Cb, AS) @ coef
        if p.signed_weights == "offset":
            y -= (Pt[..., Cb * AS:] @ coef[:p.slices]).unsqueeze(-1)
        elif p.signed_weights == "bias":
            xs = torch.tensordot(coef_t / lsb, d, dims=([0], [0])).sum(-1, keepdim=True)
            y -= (2 ** (p.weight_bits - 1)) * xs
        return y

    @staticmethod
    def _row_parts(b, Gb: int, Rb: int, per_read: int) -> list["torch.Tensor"]:
        """Masks [Gb, Rb] of the rows each partial read drives. Physical rows: group after
        group on the diagonal layout, shared by the groups on the serial one."""
        r = torch.arange(Rb)
        phys = r.expand(Gb, Rb) if b.layout == "serial" else torch.arange(Gb)[:, None] * Rb + r
        part = phys // per_read
        return [(part == k).float() for k in range(int(part.max()) + 1)]

    def _read_gen(self):
        if getattr(self, "_rgen", None) is None or self._rgen_draw != self.draw:
            self._rgen = torch.Generator().manual_seed(self.seed * 7_919 + 1_000_000_007 + (self.draw or 0))
            self._rgen_draw = self.draw
        return self._rgen
