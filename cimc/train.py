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


def _weight_modules(model):
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]


def fit(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch: int = 128, lr: float = 2e-3,
        variation: Variation | None = None, target="rram-256", seed: int = 0, weight_decay: float = 0.0,
        clip_std: float | None = None, quantize_inputs: bool = False, log=None):
    """Train `model` on (x, y) with Adam and a cosine schedule; returns the model in eval mode.

    variation: device variation to train under (None: plain training). target: the target
    whose weight bits, cell bits and signed encoding the noise follows. clip_std: clip each
    weight tensor to +-clip_std standard deviations while training (and in the result): the
    quantisation scale, and with it the cell noise, then follows the bulk of the weights
    rather than their largest outlier. quantize_inputs: each layer's inputs quantised to the
    target's input bits in training (straight-through), as the chip's DACs will see them.
    The cells' noise follows the target's device: its range (g_min from the on/off ratio; no cell
    leaves [g_min, g_max]) and its noise model.
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
