"""Network families written in torch (torchvision is not used), for examples, tests,
benchmarks and the search. Each builder takes the knobs a search varies."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ---- ResNet for CIFAR (He et al. 2016, section 4.2) --------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, 3, 1, act=None))
        self.short = (nn.Sequential() if stride == 1 and cin == cout
                      else _conv_bn(cin, cout, 1, stride, act=None))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + self.short(x))


class ResNet(nn.Module):
    """Basic-block ResNet: a stem, stages of basic blocks (the first block of every stage
    but the first strides 2), global pooling and a linear classifier."""

    def __init__(self, stem: nn.Module, stem_channels: int, blocks: tuple[int, ...], widths: tuple[int, ...],
                 classes: int):
        super().__init__()
        self.stem = stem
        layers, cin = [], stem_channels
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def cifar_resnet(blocks_per_stage: int = 3, widths: tuple[int, int, int] = (16, 32, 64), classes: int = 10,
                 in_channels: int = 3) -> nn.Module:
    """ResNet-(6n+2) for 32x32 inputs (He et al. 2016, section 4.2)."""
    return ResNet(_conv_bn(in_channels, widths[0], 3), widths[0], (blocks_per_stage,) * 3, widths, classes)


def resnet20(classes: int = 10) -> nn.Module:
    return cifar_resnet(3, classes=classes)


def resnet18(classes: int = 1000) -> nn.Module:
    """ResNet-18 for ImageNet-sized (or smaller) inputs."""
    stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
    return ResNet(stem, 64, (2, 2, 2, 2), (64, 128, 256, 512), classes)


# ---- MobileNet family (inverted residuals, depthwise convs, squeeze-excitation) ----------

class SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.act = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


def _make_divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: type, stride: int):
        super().__init__()
        layers = []
        if exp != cin:
            layers.append(_conv_bn(cin, exp, 1, act=act))
        layers.append(_conv_bn(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, _make_divisible(exp // 4)))
        layers.append(_conv_bn(exp, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


# MobileNetV3-small (Howard et al. 2019, Table 2): kernel, expansion, out, SE, activation, stride
V3_SMALL = [(3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
            (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
            (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
            (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1)]


class MobileNetV3(nn.Module):
    def __init__(self, config=V3_SMALL, classes: int = 10, width: float = 1.0, last: int = 1024,
                 in_channels: int = 3):
        super().__init__()
        acts = {"RE": nn.ReLU, "HS": nn.Hardswish}
        cin = _make_divisible(16 * width)
        layers = [_conv_bn(in_channels, cin, 3, 2, act=nn.Hardswish)]
        for k, exp, cout, se, a, s in config:
            exp, cout = _make_divisible(exp * width), _make_divisible(cout * width)
            layers.append(InvertedResidual(cin, k, exp, cout, se, acts[a], s))
            cin = cout
        layers.append(_conv_bn(cin, 6 * cin, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def mobilenet_v3_small(classes: int = 10) -> nn.Module:
    return MobileNetV3(V3_SMALL, classes)


def mobilenet_tiny(classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A small MobileNet-style network for 32x32 inputs (the bundled example)."""
    config = [(3, 16, 16, True, "RE", 1), (3, 48, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
              (5, 96, 40, True, "HS", 2), (5, 160, 40, True, "HS", 1), (3, 192, 64, True, "HS", 2)]
    return MobileNetV3(config, classes, last=256, in_channels=in_channels)


# ---- SqueezeNet 1.1 (Iandola et al. 2016; the 1.1 variant) -------------------------------

class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_1(classes: int = 10) -> nn.Module:
    return SqueezeNet11(classes)


# ---- a small transformer encoder and an LSTM (for frontend coverage) --------------------

class TinyTransformer(nn.Module):
    def __init__(self, tokens: int = 16, dim: int = 64, heads: int = 4, layers: int = 2, classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(dim, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x).mean(1))


class TinyLSTM(nn.Module):
    def __init__(self, features: int = 16, hidden: int = 32, classes: int = 5):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=False)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[-1])


# ---- a small CNN for 28x28 / 8x8 grey images (Fashion-MNIST, digits) ----------------------

class SmallCNN(nn.Module):
    """conv-relu-pool stages then a linear classifier; `widths` sets the stages."""

    def __init__(self, widths: tuple[int, ...] = (16, 32), classes: int = 10, in_channels: int = 1,
                 image: int = 28, kernel: int = 3):
        super().__init__()
        layers, cin, size = [], in_channels, image
        for w in widths:
            layers += [nn.Conv2d(cin, w, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]
            cin, size = w, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin * size * size, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def small_cnn(widths: tuple[int, ...] = (16, 32), classes: int = 10, in_channels: int = 1, image: int = 28) -> nn.Module:
    return SmallCNN(widths, classes, in_channels, image)


# ---- large networks for the scale benchmark ----------------------------------------------

class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a projection shortcut where needed."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = 4 * width
        self.body = nn.Sequential(_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride),
                                  _conv_bn(width, cout, 1, act=None))
        self.short = nn.Sequential() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, act=None)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + self.short(x))


class BottleneckResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for i, (n, w) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for j in range(n):
                layers.append(Bottleneck(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = 4 * w
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1))


def resnet50(classes: int = 1000) -> nn.Module:
    return BottleneckResNet((3, 4, 6, 3), classes)


def resnet101(classes: int = 1000) -> nn.Module:
    return BottleneckResNet((3, 4, 23, 3), classes)


def resnet152(classes: int = 1000) -> nn.Module:
    return BottleneckResNet((3, 8, 36, 3), classes)


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                                  nn.BatchNorm2d(bn_size * growth), nn.ReLU(),
                                  nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017): dense blocks joined by 1x1 conv + 2x2 average-pool transitions."""

    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, init: int = 64, classes: int = 1000):
        super().__init__()
        layers = [nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        c = init
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def densenet121(classes: int = 1000) -> nn.Module:
    return DenseNet((6, 12, 24, 16), 32, 64, classes)


class Encoder(nn.Module):
    """Pre-norm transformer encoder: LayerNorm, multi-head self-attention, LayerNorm, GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class ViT(nn.Module):
    """Vision transformer (Dosovitskiy et al. 2021): patch embedding conv, class token, learned
    position embedding, pre-norm encoder, linear head on the class token."""

    def __init__(self, image: int = 224, patch: int = 16, dim: int = 768, depth: int = 12, heads: int = 12,
                 mlp: int = 3072, classes: int = 1000):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        tokens = (image // patch) ** 2 + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.encoder = Encoder(dim, heads, mlp, depth)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.encoder(x)[:, 0])


def vit_b16(classes: int = 1000, depth: int = 12) -> nn.Module:
    return ViT(224, 16, 768, depth, 12, 3072, classes)


class BertEncoder(nn.Module):
    """BERT-base-sized encoder on token embeddings [batch, tokens, dim] (the embedding lookup
    stays off the crossbars), with a pooler and a classifier."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, ff: int = 3072, classes: int = 2):
        super().__init__()
        self.encoder = Encoder(dim, heads, ff, depth)
        self.pooler = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(torch.tanh(self.pooler(self.encoder(x)[:, 0])))


def bert_base(depth: int = 12, classes: int = 2) -> nn.Module:
    return BertEncoder(768, depth, 12, 3072, classes)


# ---- VGG-8 on CIFAR-10, as DNN+NeuroSim's inference wrapper defines it --------------------

class VGG8(nn.Module):
    """Conv 128, 128, pool, 256, 256, pool, 512, 512, pool (3x3, padding 1), then fully
    connected 8192 -> 1024 -> classes; 32x32 RGB input (NeuroSim's models/VGG.py)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        layers, cin = [], 3
        for w in (128, 128, "M", 256, 256, "M", 512, 512, "M"):
            if w == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.ReLU()]
                cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(512 * 4 * 4, 1024, bias=False), nn.ReLU(),
                                        nn.Linear(1024, classes, bias=False))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def vgg8(classes: int = 10) -> nn.Module:
    return VGG8(classes)


class _ImageNetCNN(nn.Module):
    """Convolutions then three fully connected layers, as AlexNet, ZFNet and VGG lay them out."""

    def __init__(self, features: list, flat: int, classes: int, hidden: int = 4096):
        super().__init__()
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def alexnet(classes: int = 1000) -> nn.Module:
    """AlexNet for 224x224 inputs in its one-tower form (Krizhevsky et al., NeurIPS 2012; the
    layer sizes of torchvision's definition): five convolutions, 6x6x256 into 4096, 4096, classes."""
    f = [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
         nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
         nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
         nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2)]
    return _ImageNetCNN(f, 256 * 6 * 6, classes)


def zfnet(classes: int = 1000) -> nn.Module:
    """ZFNet for 224x224 inputs (Zeiler and Fergus, ECCV 2014, Fig. 3): 7x7/2 and 5x5/2 first
    convolutions with 96 and 256 maps, three 3x3 convolutions, 6x6x256 into 4096, 4096, classes."""
    f = [nn.Conv2d(3, 96, 7, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
         nn.Conv2d(96, 256, 5, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
         nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
         nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2)]
    return _ImageNetCNN(f, 256 * 6 * 6, classes)


def vgg19(classes: int = 1000) -> nn.Module:
    """VGG-19 (Simonyan and Zisserman, ICLR 2015, configuration E) for 224x224 inputs."""
    f, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
        if v == "M":
            f.append(nn.MaxPool2d(2, 2))
        else:
            f += [nn.Conv2d(cin, v, 3, 1, 1), nn.ReLU()]
            cin = v
    return _ImageNetCNN(f, 512 * 7 * 7, classes)
