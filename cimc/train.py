"""Variation-aware training: train a torch network with its weights perturbed the way the
simulator programs a chip, so it keeps its accuracy on real RRAM.

In every training step each Conv/Linear weight is quantised to the target's weight bits
(straight-through gradient), stored as the target's signed encoding in cells of
`cell_bits`, and every cell gets a fresh draw of the device variation
(`cimc.sim.effective_weights`, the same function the simulator programs chips with). The
forward pass uses the perturbed weights; the gradient flows to the float weights. Without
`variation` it is plain float training. `quantize_inputs` quantises each layer's inputs as
the DACs will; the ADCs and the mapping's copies (each its own cells) are not modelled in
training (the simulator measures them).

    model = cimc.train.fit(model, x, y, epochs=3, variation=Variation(sigma=0.1), target="rram-256")
"""

from __future__ import annotations

import math

import numpy as np

from cimc.errors import CimcError
from cimc.mapping import WEIGHT_KINDS
from cimc.onnx_torch import need_torch
from cimc.sim import Precision, Variation, effective_weights
from cimc.sim.physics import Range
from cimc.targets import load_target

try:
    import torch
    from torch.nn.utils import parametrize
except ImportError:  # pragma: no cover
    torch = None


if torch is not None:
    class NoisyWeight(torch.nn.Module):
        """Parametrization: W -> s * (q + cell noise), q = round(W / s) with a straight-through gradient."""

        def __init__(self, precision: Precision, variation: Variation, gen: "torch.Generator",
                     clip_std: float | None = None, rng: Range | None = None):
            super().__init__()
            self.precision, self.variation, self.gen, self.clip_std = precision, variation, gen, clip_std
            self.rng = rng  # the device's level scale (g_min, range): the cells stay in it

        def forward(self, w):
            if self.clip_std:
                c = float(self.clip_std * w.detach().std())
                w = torch.clamp(w, -c, c)
            if not self.training:
                return w
            p = self.precision
            qmax = 2 ** (p.weight_bits - 1) - 1 if p.weight_bits > 1 else 1
            s = w.detach().abs().max().clamp_min(1e-12) / qmax
            u = w / s
            q = torch.clamp(u + (torch.round(u) - u).detach(), -qmax, qmax)
            with torch.no_grad():
                qi = torch.clamp(torch.round(u), -qmax, qmax)
                noise = effective_weights(qi, p, self.variation, self.gen, self.rng) - qi
            return s * (q + noise)


    class InputQuant:
        """Forward pre-hook: a layer's inputs quantised to the target's input bits as the chip's
        DACs see them (straight-through gradient), over a range that follows the batches'
        largest input (moving average, as the simulator calibrates on training inputs)."""

        def __init__(self, bits: int, momentum: float = 0.9):
            self.bits, self.momentum = bits, momentum
            self.hi = None
            self.signed = False

        def __call__(self, module, args):
            if not module.training:
                return None
            x = args[0]
            with torch.no_grad():
                m = float(x.abs().max())
                self.signed = self.signed or bool((x < 0).any())
                self.hi = m if self.hi is None else self.momentum * self.hi + (1 - self.momentum) * m
            top = 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1
            s = max(self.hi, 1e-12) / top
            u = x / s
            q = torch.clamp(u + (torch.round(u) - u).detach(), -top if self.signed else 0, top)
            return (q * s, *args[1:])


    class PerCopy:
        """Forward hook: a layer the mapping holds in several copies (each its own cells, so its
        own noise) computed as the chip computes it. A convolution's output pixels are split in
        contiguous runs by the copies' shares, each run computed with its own draw of the cells'
        noise (one im2col, one matmul per copy over its own pixels); a layer with fewer MVMs per
        inference than copies (a classifier) takes turns: sample i on copy i mod n."""

        def __init__(self, copies: int, shares: list[int], mvms: int):
            self.copies, self.shares, self.mvms = copies, shares, mvms

        def __call__(self, mod, args, out):
            if not mod.training or self.copies < 2:
                return None
            x = args[0]
            if isinstance(mod, torch.nn.Linear) or out.dim() != 4:
                if self.mvms >= self.copies and out.dim() > 2:
                    return None  # a per-token layer: not split here
                ys = [out] + [torch.nn.functional.linear(x, _fresh_weight(mod), mod.bias) for _ in range(self.copies - 1)]
                pick = torch.arange(x.shape[0]) % self.copies
                stacked = torch.stack(ys)  # [copies, N, ...]
                return stacked[pick, torch.arange(x.shape[0])]
            N, C, H, W = out.shape
            L = H * W
            cols = torch.nn.functional.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
            G = mod.groups
            R = cols.shape[1] // G
            cols = cols.reshape(N, G, R, L)
            cuts = [round(L * c / max(1, sum(self.shares))) for c in np.cumsum([0] + list(self.shares))]
            parts = []
            for k in range(self.copies):  # each copy: a fresh draw of its cells, over its own pixels
                a, b = cuts[k], cuts[k + 1]
                if b > a:
                    w = _fresh_weight(mod).reshape(1, G, C // G, R)
                    parts.append(torch.matmul(w, cols[..., a:b]))  # [N, G, C/G, b - a]
            y = torch.cat(parts, dim=3).reshape(N, C, L)
            if mod.bias is not None:
                y = y + mod.bias.reshape(1, C, 1)
            return y.reshape(N, C, H, W)


def _fresh_weight(mod):
    """The layer's weight with a fresh draw of its cells' noise (its parametrization, in training)."""
    return mod.weight


def _mapping_copies(model, mapping, x):
    """The mapping's copies of each of the model's weight layers, matched in the order they run
    (the ONNX graph's order, in which the compiled mapping lists its layers); shapes are checked."""
    layers = [op for op in mapping.ops if op.kind in WEIGHT_KINDS]
    blocks: dict[str, list] = {}
    for op in mapping.ops:
        if op.kind == "map.block":
            blocks.setdefault(op.operands[0], []).append(op)
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in _weight_modules(model)]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.as_tensor(x[:1], dtype=torch.float32))
    model.train(was)
    for h in hooks:
        h.remove()
    if len(order) != len(layers):
        raise CimcError(f"the mapping has {len(layers)} crossbar layers but the model runs {len(order)} "
                        "Conv/Linear layers; give the mapping compiled from this model.")
    out = {}
    for mod, op in zip(order, layers):
        rows = mod.weight[0].numel() if isinstance(mod, torch.nn.Conv2d) else mod.weight.shape[1]
        if rows != op["rows"]:
            raise CimcError(f"layer '{op.result}' has {op['rows']} rows in the mapping but the model's matching "
                            f"layer has {rows}; give the mapping compiled from this model.")
        bl = blocks.get(op.result, [])
        n = 1 + max((b["copy"] for b in bl), default=0)
        shares = [0] * n
        for b in bl:
            if b.get("share") is not None:
                shares[b["copy"]] = b["share"]
        if not any(shares):
            base, extra = divmod(op["mvms"], n)
            shares = [base + (1 if k < extra else 0) for k in range(n)]
        out[mod] = (n, shares, op["mvms"])
    return out


def _weight_modules(model):
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]


def fit(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch: int = 128, lr: float = 2e-3,
        variation: Variation | None = None, target="rram-256", seed: int = 0, weight_decay: float = 0.0,
        clip_std: float | None = None, quantize_inputs: bool = False, mapping=None, log=None):
    """Train `model` on (x, y) with Adam and a cosine schedule; returns the model in eval mode.

    variation: device variation to train under (None: plain training). target: the target
    whose weight bits, cell bits and signed encoding the noise follows. clip_std: clip each
    weight tensor to +-clip_std standard deviations while training (and in the result): the
    quantisation scale, and with it the cell noise, then follows the bulk of the weights
    rather than their largest outlier. quantize_inputs: each layer's inputs quantised to the
    target's input bits in training (straight-through), as the chip's DACs will see them.
    The cells' noise follows the target's device: its range (g_min from the on/off ratio; no cell
    leaves [g_min, g_max]) and its noise model. mapping: the compiled Module of this model
    (`cimc.compile(...).module`): each copy of a layer then gets its own noise over its own
    share of the outputs, as on the chip (with variation only).
    """
    need_torch("Training")

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    hooks = []
    if variation is not None or quantize_inputs:
        t = load_target(target)
        prec = Precision.of(t)
        for m in _weight_modules(model):
            if variation is not None:
                parametrize.register_parametrization(m, "weight", NoisyWeight(prec, variation, gen, clip_std,
                                                                              Range.of(t)))
            if quantize_inputs:
                hooks.append(m.register_forward_pre_hook(InputQuant(prec.input_bits)))
        if variation is not None and mapping is not None:
            for m, (n, shares, mvms) in _mapping_copies(model, mapping, x).items():
                if n > 1:
                    hooks.append(m.register_forward_hook(PerCopy(n, shares, mvms)))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    steps = epochs * math.ceil(len(xt) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps))
    order_gen = torch.Generator().manual_seed(seed + 2)
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(xt), generator=order_gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log:
            log(f"epoch {ep + 1}/{epochs}: loss {total / len(xt):.4f}")
    model.eval()
    for h in hooks:
        h.remove()
    if variation is not None:
        for m in _weight_modules(model):  # keep the clipped weights, drop the noise
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=bool(clip_std))
    return model


def accuracy(model, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Float accuracy of a torch model."""
    need_torch("accuracy")
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(torch.as_tensor(x[i:i + batch], dtype=torch.float32))
            correct += int((out.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / max(1, len(x))
