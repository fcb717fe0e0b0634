"""Network families a search turns: each is a set of knobs with default domains and a builder
`config -> torch.nn.Module` for the data's input shape and classes.

Families here: `cnn` (conv stages for small grey images), `mobilenet_v3` (inverted residuals:
per stage depth, width, kernel, expansion, squeeze-excitation; Howard et al. 2019), `resnet`
(basic blocks: per stage depth and width, per block kernel size, NAX's knob; He et al. 2016)
and `vit` (depth, heads, embedding width, MLP ratio; Dosovitskiy et al. 2021). A user's own
`build(config)` (or `build(config, shape)`) with its own knobs works the same (`Family.custom`).

Every builder here names its modules by position (stage i, block j) so that a smaller member's
parameters are leading slices of a larger member's with the same names: that is what lets a
weight-sharing supernet (`cimc.search.supernet`) hand any member its weights. Knobs a member
does not read (the kernel of a block past the stage's depth) are not part of its identity:
`Family.build` records which knobs the builder read.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from cimc.search.knobs import Knob, SpaceError, knob


@dataclass(frozen=True)
class Shape:
    """What the data gives a network: channels, square image side, classes."""

    channels: int
    image: int
    classes: int


class Config(Mapping):
    """A candidate's knob values; remembers which ones the builder read."""

    def __init__(self, values: Mapping):
        self._values = dict(values)
        self.used: set[str] = set()

    def __getitem__(self, key):
        if key not in self._values:
            raise SpaceError(f"the network builder asked for knob '{key}', which the space does not have; "
                             f"it has {', '.join(sorted(self._values)) or 'none'}.")
        self.used.add(key)
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)


@dataclass(frozen=True)
class Family:
    name: str
    knobs: dict = field(default_factory=dict)  # name -> Knob: the default domains
    builder: Callable = None
    description: str = ""
    args: dict = field(default_factory=dict)  # what the family was made with (stages=4)

    def build(self, config: Mapping, shape: Shape) -> tuple[nn.Module, dict]:
        """The network of `config`, and the knob values it read (its identity)."""
        cfg = Config(config)
        params = inspect.signature(self.builder).parameters
        model = self.builder(cfg, shape) if len(params) >= 2 else self.builder(cfg)
        if not isinstance(model, nn.Module):
            raise SpaceError(f"network family '{self.name}': the builder returned {type(model).__name__}, "
                             "not a torch.nn.Module.")
        return model, {k: cfg._values[k] for k in sorted(cfg.used)}

    @staticmethod
    def custom(name: str, builder: Callable, knobs: Mapping, description: str = "") -> "Family":
        """A user's family: `builder(config)` or `builder(config, shape)` -> nn.Module."""
        if not callable(builder):
            raise SpaceError(f"network family '{name}': the builder {builder!r} is not callable.")
        return Family(name, {k: knob(k, v, f"family '{name}'") for k, v in knobs.items()}, builder, description)


# ---- building blocks, named by role so that members nest ---------------------------------

class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _strides(stages: int, image: int, first: int) -> list[int]:
    """Stride of each stage's first block: 2 from the second stage on while the image stays >= 2."""
    out, size = [], image // first
    for i in range(stages):
        s = 2 if i > 0 and size >= 4 else 1
        out.append(s)
        size //= s
    return out


def _choices(name: str, spec) -> Knob:
    return knob(name, spec, "family")


# ---- cnn ----------------------------------------------------------------------------------

class CNN(nn.Module):
    def __init__(self, widths, kernels, depths, shape: Shape):
        super().__init__()
        stages, cin, size = [], shape.channels, shape.image
        for w, k, d in zip(widths, kernels, depths):
            stages.append(nn.Sequential(*[ConvBN(cin if j == 0 else w, w, k) for j in range(d)]))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.pools = [size >= 2 ** (i + 1) for i in range(len(stages))]  # 2x2 max-pool after a stage while it fits
        for p in self.pools:
            size = size // 2 if p else size
        self.head = nn.Linear(cin * size * size, shape.classes)

    def forward(self, x):
        for stage, pool in zip(self.stages, self.pools):
            x = stage(x)
            if pool:
                x = nn.functional.max_pool2d(x, 2)
        return self.head(x.flatten(1))


def cnn(stages: int = 2) -> Family:
    """Conv-BN-ReLU stages, each followed by 2x2 max-pooling, then a linear classifier."""
    knobs = {}
    for i in range(stages):
        knobs[f"s{i}.depth"] = _choices(f"s{i}.depth", [1, 2])
        knobs[f"s{i}.width"] = _choices(f"s{i}.width", [8, 16, 24, 32, 48, 64])
        knobs[f"s{i}.kernel"] = _choices(f"s{i}.kernel", [3, 5])

    def build(c: Config, shape: Shape) -> nn.Module:
        return CNN([c[f"s{i}.width"] for i in range(stages)], [c[f"s{i}.kernel"] for i in range(stages)],
                   [c[f"s{i}.depth"] for i in range(stages)], shape)

    return Family("cnn", knobs, build, cnn.__doc__, {"stages": stages})


# ---- mobilenet_v3 -------------------------------------------------------------------------

def _divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class SqueezeExcite(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1 = nn.Conv2d(c, _divisible(c / 4), 1)
        self.fc2 = nn.Conv2d(_divisible(c / 4), c, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, expand: int, se: bool, stride: int, act: type):
        super().__init__()
        mid = _divisible(cin * expand)
        self.expand = ConvBN(cin, mid, 1, act=act)
        self.dw = ConvBN(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else None
        self.project = ConvBN(mid, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.dw(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, c: Config, stages: int, shape: Shape):
        super().__init__()
        first = 2 if shape.image > 16 else 1
        cin = c["stem"]
        self.stem = ConvBN(shape.channels, cin, 3, first, act=nn.Hardswish)
        blocks = []
        for i, s in enumerate(_strides(stages, shape.image, first)):
            act = nn.ReLU if i < stages // 2 else nn.Hardswish
            w, k, e, se = c[f"s{i}.width"], c[f"s{i}.kernel"], c[f"s{i}.expand"], c[f"s{i}.se"]
            stage = []
            for j in range(c[f"s{i}.depth"]):
                stage.append(InvertedResidual(cin, w, k, e, se, s if j == 0 else 1, act))
                cin = w
            blocks.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(cin, c["head"]), nn.Hardswish(), nn.Linear(c["head"], shape.classes))

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


MBV3_WIDTHS = ([8, 16, 24], [16, 24, 32], [24, 32, 40, 48], [40, 48, 64, 96], [64, 96, 128])


def mobilenet_v3(stages: int = 4) -> Family:
    """MobileNetV3-like: a stem, stages of inverted residual blocks (depthwise conv, optional
    squeeze-excitation; ReLU in the first half, hard-swish after), pooling and a two-layer head."""
    if not 1 <= stages <= len(MBV3_WIDTHS):
        raise SpaceError(f"mobilenet_v3: stages = {stages}; give 1 to {len(MBV3_WIDTHS)}.")
    knobs = {"stem": _choices("stem", [8, 16]), "head": _choices("head", [64, 128, 256])}
    for i in range(stages):
        knobs[f"s{i}.depth"] = _choices(f"s{i}.depth", [1, 2, 3])
        knobs[f"s{i}.width"] = _choices(f"s{i}.width", MBV3_WIDTHS[i])
        knobs[f"s{i}.kernel"] = _choices(f"s{i}.kernel", [3, 5, 7])
        knobs[f"s{i}.expand"] = _choices(f"s{i}.expand", [2, 3, 4, 6])
        knobs[f"s{i}.se"] = _choices(f"s{i}.se", [False, True])
    return Family("mobilenet_v3", knobs, lambda c, shape: MobileNet(c, stages, shape), mobilenet_v3.__doc__,
                  {"stages": stages})


# ---- resnet -------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, project: bool):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, k, stride)
        self.conv2 = ConvBN(cout, cout, k, act=None)
        # the first block of a stage always projects, so the structure does not depend on the widths
        self.short = ConvBN(cin, cout, 1, stride, act=None) if project else None

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return nn.functional.relu(self.conv2(self.conv1(x)) + s)


class ResNet(nn.Module):
    def __init__(self, c: Config, stages: int, max_depth: int, shape: Shape):
        super().__init__()
        cin = c["stem"]
        self.stem = ConvBN(shape.channels, cin, 3)
        blocks = []
        for i, s in enumerate(_strides(stages, shape.image, 1)):
            w, stage = c[f"s{i}.width"], []
            for j in range(c[f"s{i}.depth"]):
                stage.append(BasicBlock(cin, w, c[f"s{i}.b{j}.kernel"], s if j == 0 else 1, j == 0))
                cin = w
            blocks.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(blocks)
        self.head = nn.Linear(cin, shape.classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet(stages: int = 3, max_depth: int = 3) -> Family:
    """ResNet-like (CIFAR style): a stem, stages of basic blocks (the first of a stage strides 2
    from the second stage on), per block kernel size, pooling and a linear classifier."""
    if not 1 <= stages <= 4 or not 1 <= max_depth <= 8:
        raise SpaceError(f"resnet: stages = {stages}, max_depth = {max_depth}; give 1-4 stages, depth 1-8.")
    knobs = {"stem": _choices("stem", [8, 16])}
    widths = ([8, 16, 24], [16, 32, 48], [32, 64, 96], [64, 128, 192])
    for i in range(stages):
        knobs[f"s{i}.depth"] = _choices(f"s{i}.depth", list(range(1, max_depth + 1)))
        knobs[f"s{i}.width"] = _choices(f"s{i}.width", widths[i])
        for j in range(max_depth):
            knobs[f"s{i}.b{j}.kernel"] = _choices(f"s{i}.b{j}.kernel", [3, 5, 7])
    return Family("resnet", knobs, lambda c, shape: ResNet(c, stages, max_depth, shape), resnet.__doc__,
                  {"stages": stages, "max_depth": max_depth})


# ---- vit ----------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections (so that widths nest)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads

        def split(y):
            return y.reshape(b, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        a = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // h)), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, c: Config, shape: Shape):
        super().__init__()
        heads, patch = c["heads"], c["patch"]
        dim = -(-c["dim"] // heads) * heads  # a multiple of the heads
        if patch > shape.image:
            raise SpaceError(f"vit: patch {patch} is larger than the {shape.image}x{shape.image} image.")
        tokens = (shape.image // patch) ** 2
        self.embed = nn.Conv2d(shape.channels, dim, patch, patch)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, dim * c["mlp_ratio"]) for _ in range(c["depth"]))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, shape.classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))  # tokens mean-pooled (no class token)


def vit(patch: int = 4) -> Family:
    """Small vision transformer: patch embedding, learned positions, pre-norm encoder blocks
    (attention, GELU MLP), mean-pooled tokens and a linear head. The width is rounded up to a
    multiple of the heads."""
    knobs = {"depth": _choices("depth", [1, 2, 3, 4]), "heads": _choices("heads", [1, 2, 4]),
             "dim": _choices("dim", [16, 32, 48, 64]), "mlp_ratio": _choices("mlp_ratio", [1, 2, 4]),
             "patch": _choices("patch", patch)}
    return Family("vit", knobs, ViT, vit.__doc__, {"patch": patch})


FAMILIES = {"cnn": cnn, "mobilenet_v3": mobilenet_v3, "resnet": resnet, "vit": vit}


def family(name: str, **args) -> Family:
    """A family by name with its arguments (e.g. `family('mobilenet_v3', stages=4)`)."""
    if name not in FAMILIES:
        raise SpaceError(f"unknown network family '{name}'; families: {', '.join(FAMILIES)}, or give "
                         "builder = \"file.py:function\" for your own.")
    params = inspect.signature(FAMILIES[name]).parameters
    bad = sorted(set(args) - set(params))
    if bad:
        raise SpaceError(f"network family '{name}' takes {', '.join(params) or 'no arguments'}; "
                         f"unknown: {', '.join(bad)}.")
    for k, v in args.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpaceError(f"network family '{name}': '{k}' must be an integer, got {v!r}.")
    return FAMILIES[name](**args)
