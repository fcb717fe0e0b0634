"""Run an ONNX graph with torch, node by node, so a simulator can take over some nodes.

The analog simulator needs the digital part of a network computed exactly as the ONNX
graph says, and its weight layers computed by crossbar models. onnxruntime cannot call
back into Python in the middle of a graph, so this module evaluates the graph itself with
torch on CPU, one node at a time, with a hook for the nodes the caller replaces.

Covered: the ops of CNNs, MLPs and transformers as exported by torch and the ONNX model
zoo (opsets 7 to 21, both the attribute and the input forms of axes, pads, splits).
A node outside that set is reported by name and type; nothing is guessed.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from cimc.errors import ModelError

try:  # torch is an optional dependency of cimc; the simulator needs it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None


def need_torch(what: str) -> None:
    if torch is None:
        raise ModelError(f"{what} needs torch; install cimc with its torch extra: pip install 'cimc[torch]'.")


_TORCH_DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT16: "int16",
}


def _dtype(code: int):
    name = _TORCH_DTYPES.get(code)
    if name is None:
        raise ModelError(f"ONNX element type {onnx.TensorProto.DataType.Name(code)} is not supported by the simulator.")
    return getattr(torch, name)


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(t) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _opt(inputs, k):
    return inputs[k] if len(inputs) > k else None


def _axes(node, a, inputs, k=1):
    """Axes from the attribute (old opsets) or the k-th input (new opsets)."""
    if "axes" in a:
        return list(a["axes"])
    t = _opt(inputs, k)
    return None if t is None else _ints(t)


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


def _pool(x, a, kind):
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


def _softmax(x, a, opset, log=False):
    axis = a.get("axis", -1 if opset >= 13 else 1)
    f = torch.log_softmax if log else torch.softmax
    if opset >= 13:
        return f(x, dim=axis)
    axis = axis % x.dim()
    shape = x.shape
    return f(x.reshape(*shape[:axis], -1) if axis else x.reshape(1, -1), dim=-1).reshape(shape)


def _reduce(x, a, inputs, fn, opset):
    axes = _axes(None, a, inputs)
    keep = bool(a.get("keepdims", 1))
    if not axes:
        if a.get("noop_with_empty_axes", 0) and axes is not None:
            return x
        axes = list(range(x.dim()))
    return fn(x, dim=[v % x.dim() for v in axes], keepdim=keep)


def _slice(x, a, inputs):
    if "starts" in a:  # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if _opt(inputs, 3) is not None else None
        steps = _ints(inputs[4]) if _opt(inputs, 4) is not None else None
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = list(steps) if steps is not None else [1] * len(starts)
    idx = [slice(None)] * x.dim()
    flips = []
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax %= x.dim()
        n = x.shape[ax]
        if st > 0:
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            idx[ax] = slice(s, e, st)
        else:  # negative step: reverse, then slice forward
            s = max(-1, min(n - 1, s + n if s < 0 else s))
            e = max(-1, min(n - 1, e + n if e < 0 else e))
            flips.append((ax, s, e, -st, n))
    y = x[tuple(idx)]
    for ax, s, e, st, n in flips:
        y = torch.flip(y, [ax])
        lo, hi = n - 1 - s, n - 1 - e
        y = y.narrow(ax, lo, max(0, hi - lo))[(slice(None),) * ax + (slice(None, None, st),)]
    return y


def _split(x, a, inputs, n_out, opset):
    axis = a.get("axis", 0) % x.dim()
    split = a.get("split")
    if split is None and _opt(inputs, 1) is not None:
        split = _ints(inputs[1])
    if split is None:
        n = x.shape[axis]
        size = -(-n // n_out)
        split = [min(size, n - i * size) for i in range(n_out)]
    return list(torch.split(x, list(split), dim=axis))


def _reshape(x, shape, allowzero, batch=1):
    shape = [int(v) for v in shape]
    if not allowzero:
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    if batch > 1 and shape and shape[0] == 1 and x.dim() and x.shape[0] == batch:
        # a shape written for the batch of 1 the model was exported with, applied to a batch
        shape[0] = batch
    return x.reshape(shape)


def _gemm(inputs, a):
    A, B = inputs[0], inputs[1]
    if a.get("transA", 0):
        A = A.transpose(-1, -2)
    if a.get("transB", 0):
        B = B.transpose(-1, -2)
    y = a.get("alpha", 1.0) * (A @ B)
    if _opt(inputs, 2) is not None:
        y = y + a.get("beta", 1.0) * inputs[2]
    return y


def batchnorm(x, scale, bias, mean, var, eps):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)


def _unary(fn):
    return lambda i, a, o: fn(i[0])


def _binary(fn):
    return lambda i, a, o: fn(i[0], i[1])


def _clip(i, a, opset):
    lo = a.get("min") if opset < 11 else (_opt(i, 1))
    hi = a.get("max") if opset < 11 else (_opt(i, 2))
    x = i[0]
    if lo is not None:
        x = torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype))
    if hi is not None:
        x = torch.minimum(x, torch.as_tensor(hi, dtype=x.dtype))
    return x


def _const_of_shape(i, a):
    value = a.get("value")
    v = torch.from_numpy(numpy_helper.to_array(value).copy()) if value is not None else torch.zeros(1)
    return v.reshape(()).expand(_ints(i[0])).clone()


def _constant(a):
    if "value" in a:
        return torch.from_numpy(np.array(numpy_helper.to_array(a["value"])))
    for key in ("value_float", "value_int"):
        if key in a:
            return torch.tensor(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return torch.tensor(list(a[key]))
    raise ModelError("Constant node with a sparse or string value is not supported by the simulator.")


def _squeeze(i, a):
    axes = _axes(None, a, i)
    x = i[0]
    if axes is None:
        return x.squeeze()
    for ax in sorted((v % x.dim() for v in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _unsqueeze(i, a):
    axes = _axes(None, a, i)
    x = i[0]
    rank = x.dim() + len(axes)
    for ax in sorted(v % rank for v in axes):
        x = x.unsqueeze(ax)
    return x


def _lrn(i, a):
    return F.local_response_norm(i[0], int(a["size"]), a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))


def _layernorm(i, a):
    x = i[0]
    axis = a.get("axis", -1) % x.dim()
    dims = list(range(axis, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * i[1]
    return y + i[2] if _opt(i, 2) is not None else y


def _gather(i, a):
    x, idx = i[0], i[1].long()
    axis = a.get("axis", 0) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]))


def _pad_node(i, a, opset):
    x = i[0]
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if opset < 11:
        pads, value = list(a["pads"]), a.get("value", 0.0)
    else:
        pads = _ints(i[1])
        value = float(i[2].reshape(-1)[0]) if _opt(i, 2) is not None and i[2].numel() else 0.0
        if _opt(i, 3) is not None:
            axes = [v % x.dim() for v in _ints(i[3])]
            full = [0] * (2 * x.dim())
            for k, ax in enumerate(axes):
                full[ax], full[ax + x.dim()] = pads[k], pads[k + len(axes)]
            pads = full
    if mode != "constant":
        n = x.dim()
        lead = pads[:n][:2] + pads[n:][:2]
        if any(lead):
            raise ModelError(f"Pad mode '{mode}' on batch or channel dims is not supported by the simulator.")
        inner = pads[2:n] + pads[n + 2:]
        spec = []
        k = len(inner) // 2
        for j in reversed(range(k)):
            spec += [inner[j], inner[j + k]]
        return F.pad(x, spec, mode={"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode])
    return torch_pad(x, pads, value)


def _resize(i, a, opset):
    x = i[0]
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    scales = sizes = None
    if opset < 10 or (len(i) == 2 and i[1] is not None and i[1].dtype.is_floating_point):
        scales = i[1]
    else:
        scales = _opt(i, 2) if _opt(i, 2) is not None and _opt(i, 2).numel() else None
        sizes = _opt(i, 3)
    kw = {"mode": {"nearest": "nearest", "linear": "bilinear" if x.dim() == 4 else "linear"}.get(mode)}
    if kw["mode"] is None:
        raise ModelError(f"Resize mode '{mode}' is not supported by the simulator.")
    if sizes is not None:
        return F.interpolate(x, size=_ints(sizes)[2:], **kw)
    return F.interpolate(x, scale_factor=[float(s) for s in scales.reshape(-1).tolist()[2:]], **kw)


# op type -> fn(inputs, attrs, opset) -> tensor or list of tensors
OPS: dict[str, Callable] = {
    "Identity": _unary(lambda x: x), "Dropout": _unary(lambda x: x),
    "Relu": _unary(torch.relu) if torch else None, "Sigmoid": _unary(torch.sigmoid) if torch else None,
    "Tanh": _unary(torch.tanh) if torch else None,
    "LeakyRelu": lambda i, a, o: F.leaky_relu(i[0], a.get("alpha", 0.01)),
    "Elu": lambda i, a, o: F.elu(i[0], a.get("alpha", 1.0)),
    "Selu": lambda i, a, o: a.get("gamma", 1.0507) * torch.where(i[0] > 0, i[0], a.get("alpha", 1.67326) * (torch.exp(i[0]) - 1)),
    "HardSigmoid": lambda i, a, o: torch.clamp(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5), 0, 1),
    "HardSwish": lambda i, a, o: i[0] * torch.clamp(i[0] / 6 + 0.5, 0, 1),
    "Softplus": lambda i, a, o: F.softplus(i[0]),
    "Gelu": lambda i, a, o: F.gelu(i[0], approximate="tanh" if a.get("approximate", b"none") in (b"tanh", "tanh") else "none"),
    "Erf": lambda i, a, o: torch.erf(i[0]), "Sqrt": lambda i, a, o: torch.sqrt(i[0]),
    "Exp": lambda i, a, o: torch.exp(i[0]), "Log": lambda i, a, o: torch.log(i[0]),
    "Neg": lambda i, a, o: -i[0], "Abs": lambda i, a, o: torch.abs(i[0]),
    "Reciprocal": lambda i, a, o: 1.0 / i[0], "Floor": lambda i, a, o: torch.floor(i[0]),
    "Ceil": lambda i, a, o: torch.ceil(i[0]), "Round": lambda i, a, o: torch.round(i[0]),
    "Sign": lambda i, a, o: torch.sign(i[0]), "Not": lambda i, a, o: torch.logical_not(i[0]),
    "PRelu": lambda i, a, o: torch.where(i[0] >= 0, i[0], i[0] * i[1]),
    "Clip": lambda i, a, o: _clip(i, a, o),
    "Add": _binary(lambda x, y: x + y), "Sub": _binary(lambda x, y: x - y),
    "Mul": _binary(lambda x, y: x * y),
    "Div": _binary(lambda x, y: torch.div(x, y, rounding_mode="trunc") if not x.dtype.is_floating_point else x / y),
    "Pow": _binary(lambda x, y: torch.pow(x, y)),
    "Max": lambda i, a, o: _fold(torch.maximum, i), "Min": lambda i, a, o: _fold(torch.minimum, i),
    "Sum": lambda i, a, o: _fold(torch.add, i), "Mean": lambda i, a, o: _fold(torch.add, i) / len(i),
    "Equal": _binary(torch.eq) if torch else None, "Greater": _binary(torch.gt) if torch else None,
    "Less": _binary(torch.lt) if torch else None, "GreaterOrEqual": _binary(torch.ge) if torch else None,
    "LessOrEqual": _binary(torch.le) if torch else None,
    "And": _binary(torch.logical_and) if torch else None, "Or": _binary(torch.logical_or) if torch else None,
    "Where": lambda i, a, o: torch.where(i[0].bool(), i[1], i[2]),
    "Mod": lambda i, a, o: torch.fmod(i[0], i[1]) if a.get("fmod", 0) else torch.remainder(i[0], i[1]),
    "Xor": _binary(torch.logical_xor) if torch else None,
    "Sin": lambda i, a, o: torch.sin(i[0]), "Cos": lambda i, a, o: torch.cos(i[0]),
    "Softsign": lambda i, a, o: i[0] / (1 + torch.abs(i[0])),
    "Celu": lambda i, a, o: F.celu(i[0], a.get("alpha", 1.0)),
    "Mish": lambda i, a, o: F.mish(i[0]),
    "ThresholdedRelu": lambda i, a, o: torch.where(i[0] > a.get("alpha", 1.0), i[0], torch.zeros_like(i[0])),
    "IsNaN": lambda i, a, o: torch.isnan(i[0]), "IsInf": lambda i, a, o: torch.isinf(i[0]),
    "Einsum": lambda i, a, o: torch.einsum(a["equation"].decode() if isinstance(a["equation"], bytes)
                                           else a["equation"], *i),
    "ArgMax": lambda i, a, o: _argm(torch.argmax, i[0], a), "ArgMin": lambda i, a, o: _argm(torch.argmin, i[0], a),
    "CumSum": lambda i, a, o: torch.cumsum(i[0], dim=int(i[1].reshape(-1)[0])),
    "Trilu": lambda i, a, o: (torch.triu if a.get("upper", 1) else torch.tril)(
        i[0], int(i[1].reshape(-1)[0]) if _opt(i, 1) is not None else 0),
    "InstanceNormalization": lambda i, a, o: F.instance_norm(i[0], weight=i[1], bias=i[2], eps=a.get("epsilon", 1e-5)),
    "Conv": lambda i, a, o: conv(i[0], i[1], _opt(i, 2), a),
    "Gemm": lambda i, a, o: _gemm(i, a),
    "MatMul": _binary(torch.matmul) if torch else None,
    "BatchNormalization": lambda i, a, o: batchnorm(i[0], i[1], i[2], i[3], i[4], a.get("epsilon", 1e-5)),
    "LayerNormalization": lambda i, a, o: _layernorm(i, a),
    "LRN": lambda i, a, o: _lrn(i, a),
    "MaxPool": lambda i, a, o: _pool(i[0], a, "MaxPool"),
    "AveragePool": lambda i, a, o: _pool(i[0], a, "AveragePool"),
    "GlobalAveragePool": lambda i, a, o: i[0].mean(dim=list(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda i, a, o: torch.amax(i[0], dim=list(range(2, i[0].dim())), keepdim=True),
    "ReduceMean": lambda i, a, o: _reduce(i[0], a, i, torch.mean, o),
    "ReduceSum": lambda i, a, o: _reduce(i[0], a, i, torch.sum, o),
    "ReduceMax": lambda i, a, o: _reduce(i[0], a, i, torch.amax, o),
    "ReduceMin": lambda i, a, o: _reduce(i[0], a, i, torch.amin, o),
    "Softmax": lambda i, a, o: _softmax(i[0], a, o),
    "LogSoftmax": lambda i, a, o: _softmax(i[0], a, o, log=True),
    "Flatten": lambda i, a, o: i[0].reshape(math.prod(i[0].shape[:a.get("axis", 1) % max(i[0].dim(), 1)] or [1]), -1),
    "Reshape": None,  # Interpreter._eval: knows the batch
    "Transpose": lambda i, a, o: i[0].permute(*(a.get("perm") or reversed(range(i[0].dim())))),
    "Squeeze": lambda i, a, o: _squeeze(i, a), "Unsqueeze": lambda i, a, o: _unsqueeze(i, a),
    "Concat": lambda i, a, o: torch.cat([t for t in i if t is not None], dim=a["axis"]),
    "Slice": lambda i, a, o: _slice(i[0], a, i),
    "Gather": lambda i, a, o: _gather(i, a),
    "Shape": lambda i, a, o: torch.tensor(list(i[0].shape)[a.get("start", 0):a.get("end", None)], dtype=torch.int64),
    "Size": lambda i, a, o: torch.tensor(i[0].numel(), dtype=torch.int64),
    "Cast": lambda i, a, o: i[0].to(_dtype(a["to"])),
    "Constant": lambda i, a, o: _constant(a),
    "ConstantOfShape": lambda i, a, o: _const_of_shape(i, a),
    "Expand": lambda i, a, o: i[0] * torch.ones(_ints(i[1]), dtype=i[0].dtype),
    "Tile": lambda i, a, o: i[0].repeat(*_ints(i[1])),
    "Range": lambda i, a, o: torch.arange(i[0].item(), i[1].item(), i[2].item()),
    "Pad": lambda i, a, o: _pad_node(i, a, o),
    "Split": None,  # several outputs: Interpreter._eval
    "Resize": lambda i, a, o: _resize(i, a, o), "Upsample": lambda i, a, o: _resize(i, a, o),
}


def _argm(fn, x, a):
    axis = a.get("axis", 0)
    if a.get("select_last_index", 0):
        x = torch.flip(x, [axis])
        idx = fn(x, dim=axis, keepdim=bool(a.get("keepdims", 1)))
        return x.shape[axis] - 1 - idx
    return fn(x, dim=axis, keepdim=bool(a.get("keepdims", 1)))


def _fold(fn, tensors):
    out = tensors[0]
    for t in tensors[1:]:
        out = fn(out, t)
    return out


def opset_of(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class Interpreter:
    """Evaluate `model` with torch. Constants (initializers and everything computed only
    from them) are evaluated once; `run(inputs, hook)` computes the rest for a batch.

    `hook(node, inputs) -> tensor | None` may take over a node (return its output) or
    leave it to the interpreter (return None).
    """

    def __init__(self, model: onnx.ModelProto, where: str = "model"):
        need_torch("The simulator")
        self.model = model
        self.where = where
        self.opset = opset_of(model)
        g = model.graph
        self.const: dict[str, "torch.Tensor"] = {}
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            self.const[t.name] = torch.from_numpy(np.array(arr, copy=True))
        init = set(self.const)
        self.inputs = [i.name for i in g.input if i.name not in init]
        self.outputs = [o.name for o in g.output]
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' is of type {node.domain}.{node.op_type}, "
                                 "which the simulator does not run.")
            if node.op_type not in OPS or (OPS[node.op_type] is None and node.op_type not in ("Split", "Reshape")):
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' of type {node.op_type} is not supported "
                                 "by the simulator; it runs Conv, Gemm, MatMul and the common digital ops of CNNs, "
                                 "MLPs and transformers.")
        self.nodes = []
        self.batch = 1
        self._attr_cache: dict = {}
        for node in g.node:  # topological in every valid ONNX graph
            if all((not x) or x in self.const for x in node.input) and node.op_type not in ("RandomNormal",):
                outs = self._eval(node, [self.const.get(x) if x else None for x in node.input])
                for name, val in zip(node.output, outs):
                    if name:
                        self.const[name] = val
            else:
                self.nodes.append(node)

    def _attrs_of(self, node) -> dict:
        key = node.output[0]  # outputs are unique in a graph (protobuf wrappers' ids are not stable)
        a = self._attr_cache.get(key)
        if a is None:
            a = self._attr_cache[key] = _attrs(node)
        return a

    def _eval(self, node, inputs):
        try:
            if node.op_type == "Split":
                return _split(inputs[0], self._attrs_of(node), inputs, len(node.output), self.opset)
            if node.op_type == "Reshape":
                a = self._attrs_of(node)
                return [_reshape(inputs[0], a["shape"] if self.opset < 5 else _ints(inputs[1]), a.get("allowzero", 0),
                                 self.batch)]
            out = OPS[node.op_type](inputs, self._attrs_of(node), self.opset)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{self.where}: node '{node.name or node.output[0]}' ({node.op_type}) failed in the "
                             f"simulator: {e}") from None
        return out if isinstance(out, list) else [out]

    def run(self, feeds: dict, hook: Callable | None = None) -> list:
        env = dict(self.const)
        env.update(feeds)
        first = next(iter(feeds.values()), None)
        self.batch = int(first.shape[0]) if first is not None and first.dim() else 1
        for node in self.nodes:
            inputs = [env.get(x) if x else None for x in node.input]
            out = hook(node, inputs) if hook is not None else None
            outs = self._eval(node, inputs) if out is None else [out]
            for name, val in zip(node.output, outs):
                if name:
                    env[name] = val
        return [env[o] for o in self.outputs]

