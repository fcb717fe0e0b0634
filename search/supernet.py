"""Weight-sharing supernets over any family whose members nest (see `cimc.search.families`).

The supernet is the family's largest member. A member's parameter is the supernet's
parameter of the same name, sliced: the leading entries of every dimension (the first
channels, the first blocks of a stage), and for convolution kernels the centre window (a 3x3
kernel is the centre of the 7x7: once-for-all's elastic kernel, Cai et al. 2020, without its
kernel transformation matrices). Slices are views, so training a member trains the supernet.

Training follows the sandwich rule with in-place distillation (Yu et al., BigNAS, 2020): each
step trains the largest member on the labels and the smallest and `sandwich` random members on
the largest's soft outputs. Optionally every weight gets the device's cell noise in training
(variation-aware, as `cimc.train` does it): NACIM's point, search for robustness.

A member handed out for evaluation gets copies of its slices and BatchNorm statistics
re-estimated on training batches (its own activations differ from the supernet's).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from cimc.search.knobs import SpaceError


def sliced(name: str, big: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The part of supernet tensor `big` a member's tensor of `shape` takes (a view)."""
    if big.dim() != len(shape):
        raise SpaceError(f"supernet: '{name}' has {big.dim()} dimensions in the supernet and {len(shape)} in the "
                         "member; the family's members do not nest (fix the knob that changes it).")
    index = []
    for d, (n_big, n) in enumerate(zip(big.shape, shape)):
        if n > n_big:
            raise SpaceError(f"supernet: '{name}' is {tuple(shape)} in the member but {tuple(big.shape)} in the "
                             "supernet (the largest member); a knob makes this tensor bigger at a value that is "
                             "not its largest: fix that knob for a supernet search.")
        start = (n_big - n) // 2 if big.dim() == 4 and d >= 2 else 0  # conv kernels: the centre window
        index.append(slice(start, start + n))
    return big[tuple(index)]


def member_tensors(supernet: nn.Module, member: nn.Module) -> dict:
    """Every parameter and buffer of `member`, as slices of the supernet's."""
    big = dict(supernet.named_parameters())
    big.update(dict(supernet.named_buffers()))
    out = {}
    for name, t in list(member.named_parameters()) + list(member.named_buffers()):
        if name not in big:
            raise SpaceError(f"supernet: the member has '{name}', which the largest member has not; the family's "
                             "members do not nest.")
        out[name] = sliced(name, big[name], t.shape)
    return out


def _weights(tensors: dict, member: nn.Module) -> list[str]:
    """Names of the conv and linear weights (the ones on crossbars)."""
    return [f"{mod}.weight" if mod else "weight" for mod, m in member.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and (f"{mod}.weight" if mod else "weight") in tensors]


class Trainer:
    """Trains a supernet of `family` on (x, y). `build(config) -> nn.Module` builds a member."""

    def __init__(self, build, largest: dict, smallest: dict, sample, *, epochs: int, batch: int, lr: float,
                 sandwich: int, seed: int, noise=None, log=None):
        self.build, self.largest, self.smallest, self.sample = build, largest, smallest, sample
        self.epochs, self.batch, self.lr, self.sandwich, self.seed = epochs, batch, lr, sandwich, seed
        self.noise, self.log = noise, log  # noise: tensor -> noisy tensor (cell variation), or None

    def train(self, x: np.ndarray, y: np.ndarray) -> nn.Module:
        torch.manual_seed(self.seed)
        rng = random.Random(self.seed)
        supernet = self.build(self.largest)
        params = [p for p in supernet.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-4)
        xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
        steps = self.epochs * math.ceil(len(xt) / self.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps))
        gen = torch.Generator().manual_seed(self.seed + 1)
        members: dict[str, nn.Module] = {}
        supernet.train()
        for epoch in range(self.epochs):
            perm = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for i in range(0, len(xt), self.batch):
                idx = perm[i:i + self.batch]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad()
                out = self._forward(supernet, supernet, xb)
                loss = nn.functional.cross_entropy(out, yb)
                loss.backward()
                soft = torch.softmax(out.detach(), 1)
                for cfg in [self.smallest] + [self.sample(rng) for _ in range(self.sandwich)]:
                    key = repr(sorted(cfg.items()))
                    member = members.get(key)
                    if member is None:
                        member = members[key] = self.build(cfg).train()
                        if len(members) > 256:  # structures only; rebuilt when needed
                            del members[next(iter(members))]
                    o = self._forward(supernet, member, xb)
                    kd = nn.functional.kl_div(torch.log_softmax(o, 1), soft, reduction="batchmean")
                    kd.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            if self.log:
                self.log(f"supernet epoch {epoch + 1}/{self.epochs}: loss of the largest member "
                         f"{total / len(xt):.4f}")
        return supernet.eval()

    def _forward(self, supernet: nn.Module, member: nn.Module, x: torch.Tensor) -> torch.Tensor:
        tensors = member_tensors(supernet, member)
        if self.noise is not None:
            for name in _weights(tensors, member):
                tensors[name] = self.noise(tensors[name])
        return functional_call(member, tensors, (x,))


def extract(supernet: nn.Module, member: nn.Module, x_calib: np.ndarray, batch: int = 256) -> nn.Module:
    """`member` with copies of its supernet slices and BatchNorm statistics re-estimated on
    `x_calib` (a cumulative average over the batches, as once-for-all does)."""
    with torch.no_grad():
        state = {k: v.detach().clone() for k, v in member_tensors(supernet, member).items()}
        member.load_state_dict(state)
        bns = [m for m in member.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bns and len(x_calib):
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            member.train()
            xt = torch.as_tensor(x_calib, dtype=torch.float32)
            for i in range(0, len(xt), batch):
                member(xt[i:i + batch])
            for m in bns:
                m.momentum = 0.1
    return member.eval()
