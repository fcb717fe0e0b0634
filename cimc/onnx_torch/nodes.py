"""The ONNX nodes the interpreter runs, one function each (node, inputs) -> outputs."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from cimc.errors import ModelError

try:  # torch is an optional dependency of cimc; the simulator needs it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None
from cimc.onnx_torch.tensors import axes_of, int_list, optional_input, torch_pad


def softmax(x, a, opset, log=False):
    axis = a.get("axis", -1 if opset >= 13 else 1)
    f = torch.log_softmax if log else torch.softmax
    if opset >= 13:
        return f(x, dim=axis)
    axis = axis % x.dim()
    shape = x.shape
    return f(x.reshape(*shape[:axis], -1) if axis else x.reshape(1, -1), dim=-1).reshape(shape)


def reduce(x, a, inputs, fn, opset):
    axes = axes_of(None, a, inputs)
    keep = bool(a.get("keepdims", 1))
    if not axes:
        if a.get("noop_with_empty_axes", 0) and axes is not None:
            return x
        axes = list(range(x.dim()))
    return fn(x, dim=[v % x.dim() for v in axes], keepdim=keep)


def slice_node(x, a, inputs):
    if "starts" in a:  # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = int_list(inputs[1]), int_list(inputs[2])
        axes = int_list(inputs[3]) if optional_input(inputs, 3) is not None else None
        steps = int_list(inputs[4]) if optional_input(inputs, 4) is not None else None
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


def split_node(x, a, inputs, n_out, opset):
    axis = a.get("axis", 0) % x.dim()
    split = a.get("split")
    if split is None and optional_input(inputs, 1) is not None:
        split = int_list(inputs[1])
    if split is None:
        n = x.shape[axis]
        size = -(-n // n_out)
        split = [min(size, n - i * size) for i in range(n_out)]
    return list(torch.split(x, list(split), dim=axis))


def reshape(x, shape, allowzero, batch=1):
    shape = [int(v) for v in shape]
    if not allowzero:
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    if batch > 1 and shape and shape[0] == 1 and x.dim() and x.shape[0] == batch:
        # a shape written for the batch of 1 the model was exported with, applied to a batch
        shape[0] = batch
    return x.reshape(shape)


def gemm(inputs, a):
    A, B = inputs[0], inputs[1]
    if a.get("transA", 0):
        A = A.transpose(-1, -2)
    if a.get("transB", 0):
        B = B.transpose(-1, -2)
    y = a.get("alpha", 1.0) * (A @ B)
    if optional_input(inputs, 2) is not None:
        y = y + a.get("beta", 1.0) * inputs[2]
    return y


def unary(fn):
    return lambda i, a, o: fn(i[0])


def binary(fn):
    return lambda i, a, o: fn(i[0], i[1])


def clip(i, a, opset):
    lo = a.get("min") if opset < 11 else (optional_input(i, 1))
    hi = a.get("max") if opset < 11 else (optional_input(i, 2))
    x = i[0]
    if lo is not None:
        x = torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype))
    if hi is not None:
        x = torch.minimum(x, torch.as_tensor(hi, dtype=x.dtype))
    return x


def constant_of_shape(i, a):
    value = a.get("value")
    v = torch.from_numpy(numpy_helper.to_array(value).copy()) if value is not None else torch.zeros(1)
    return v.reshape(()).expand(int_list(i[0])).clone()


def constant(a):
    if "value" in a:
        return torch.from_numpy(np.array(numpy_helper.to_array(a["value"])))
    for key in ("value_float", "value_int"):
        if key in a:
            return torch.tensor(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return torch.tensor(list(a[key]))
    raise ModelError("Constant node with a sparse or string value is not supported by the simulator.")


def squeeze(i, a):
    axes = axes_of(None, a, i)
    x = i[0]
    if axes is None:
        return x.squeeze()
    for ax in sorted((v % x.dim() for v in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def unsqueeze(i, a):
    axes = axes_of(None, a, i)
    x = i[0]
    rank = x.dim() + len(axes)
    for ax in sorted(v % rank for v in axes):
        x = x.unsqueeze(ax)
    return x


def lrn(i, a):
    return F.local_response_norm(i[0], int(a["size"]), a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))


def layernorm(i, a):
    x = i[0]
    axis = a.get("axis", -1) % x.dim()
    dims = list(range(axis, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * i[1]
    return y + i[2] if optional_input(i, 2) is not None else y


def gather(i, a):
    x, idx = i[0], i[1].long()
    axis = a.get("axis", 0) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]))


def pad_node(i, a, opset):
    x = i[0]
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if opset < 11:
        pads, value = list(a["pads"]), a.get("value", 0.0)
    else:
        pads = int_list(i[1])
        value = float(i[2].reshape(-1)[0]) if optional_input(i, 2) is not None and i[2].numel() else 0.0
        if optional_input(i, 3) is not None:
            axes = [v % x.dim() for v in int_list(i[3])]
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


def resize(i, a, opset):
    x = i[0]
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    scales = sizes = None
    if opset < 10 or (len(i) == 2 and i[1] is not None and i[1].dtype.is_floating_point):
        scales = i[1]
    else:
        scales = optional_input(i, 2) if optional_input(i, 2) is not None and optional_input(i, 2).numel() else None
        sizes = optional_input(i, 3)
    kw = {"mode": {"nearest": "nearest", "linear": "bilinear" if x.dim() == 4 else "linear"}.get(mode)}
    if kw["mode"] is None:
        raise ModelError(f"Resize mode '{mode}' is not supported by the simulator.")
    if sizes is not None:
        return F.interpolate(x, size=int_list(sizes)[2:], **kw)
    return F.interpolate(x, scale_factor=[float(s) for s in scales.reshape(-1).tolist()[2:]], **kw)


def arg_extreme(fn, x, a):
    axis = a.get("axis", 0)
    if a.get("select_last_index", 0):
        x = torch.flip(x, [axis])
        idx = fn(x, dim=axis, keepdim=bool(a.get("keepdims", 1)))
        return x.shape[axis] - 1 - idx
    return fn(x, dim=axis, keepdim=bool(a.get("keepdims", 1)))


def fold(fn, tensors):
    out = tensors[0]
    for t in tensors[1:]:
        out = fn(out, t)
    return out
