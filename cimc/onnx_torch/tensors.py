"""Tensor helpers of the interpreter: ONNX dtypes to torch, node attributes, padding as ONNX
defines it, convolution and pooling."""

from __future__ import annotations

import math

import onnx

from cimc.errors import ModelError

try:  # torch is an optional dependency of cimc; the simulator needs it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

TORCH_DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT16: "int16",
}


def torch_dtype(code: int):
    name = TORCH_DTYPES.get(code)
    if name is None:
        raise ModelError(f"ONNX element type {onnx.TensorProto.DataType.Name(code)} is not supported by the simulator.")
    return getattr(torch, name)


def node_attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def int_list(t) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def optional_input(inputs, k):
    return inputs[k] if len(inputs) > k else None


def axes_of(node, a, inputs, k=1):
    """Axes from the attribute (old opsets) or the k-th input (new opsets)."""
    if "axes" in a:
        return list(a["axes"])
    t = optional_input(inputs, k)
    return None if t is None else int_list(t)


def conv_pads(a: dict, x_shape, w_shape) -> list[int]:
    """ONNX pads [b0, b1, ..., e0, e1, ...] with auto_pad resolved."""
    spatial = len(w_shape) - 2
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(a.get("pads", [0] * (2 * spatial)))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        strides = a.get("strides", [1] * spatial)
        dil = a.get("dilations", [1] * spatial)
        pads = [0] * (2 * spatial)
        for i in range(spatial):
            size = x_shape[2 + i]
            out = math.ceil(size / strides[i])
            k = (w_shape[2 + i] - 1) * dil[i] + 1
            total = max(0, (out - 1) * strides[i] + k - size)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + spatial] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0] * (2 * spatial)
    return pads


def torch_pad(x, pads: list[int], value=0.0):
    """Apply ONNX-style pads (begins then ends, over the trailing len(pads)//2 dims)."""
    n = len(pads) // 2
    if not any(pads):
        return x
    spec = []
    for i in reversed(range(n)):
        spec += [pads[i], pads[i + n]]
    return F.pad(x, spec, value=value)


def pool(x, a, kind):
    k = list(a["kernel_shape"])
    n = len(k)
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    pads = conv_pads({**a, "strides": strides, "dilations": dil}, x.shape, [0, 0, *k])
    ceil = bool(a.get("ceil_mode", 0))
    fn = {1: (F.max_pool1d, F.avg_pool1d), 2: (F.max_pool2d, F.avg_pool2d), 3: (F.max_pool3d, F.avg_pool3d)}[n]
    if kind == "MaxPool":
        xp = torch_pad(x, pads, value=-math.inf)
        return fn[0](xp, k, strides, 0, dil, ceil_mode=ceil)
    if any(d != 1 for d in dil):
        raise ModelError("AveragePool with dilations is not supported by the simulator.")
    if a.get("count_include_pad", 0):
        return fn[1](torch_pad(x, pads), k, strides, 0, ceil_mode=ceil)
    sym = all(pads[i] == pads[i + n] and pads[i] <= k[i] // 2 for i in range(n))
    if sym:
        return fn[1](x, k, strides, pads[:n], ceil_mode=ceil, count_include_pad=False)
    ones = torch.ones_like(x[:, :1])
    num = fn[1](torch_pad(x, pads), k, strides, 0, ceil_mode=ceil)
    den = fn[1](torch_pad(ones, pads), k, strides, 0, ceil_mode=ceil)
    return num / den


def conv(x, w, b, a):
    spatial = w.dim() - 2
    pads = conv_pads(a, x.shape, w.shape)
    strides = list(a.get("strides", [1] * spatial))
    dil = list(a.get("dilations", [1] * spatial))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(spatial)
    if fn is None:
        raise ModelError(f"Conv over {spatial} spatial dimensions is not supported by the simulator.")
    return fn(torch_pad(x, pads), w, b, strides, 0, dil, int(a.get("group", 1)))


def batchnorm(x, scale, bias, mean, var, eps):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)
