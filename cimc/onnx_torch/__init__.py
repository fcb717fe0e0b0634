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
from cimc.onnx_torch.nodes import (
    arg_extreme,
    binary,
    clip,
    constant,
    constant_of_shape,
    fold,
    gather,
    gemm,
    layernorm,
    lrn,
    pad_node,
    reduce,
    reshape,
    resize,
    slice_node,
    softmax,
    split_node,
    squeeze,
    unary,
    unsqueeze,
)
from cimc.onnx_torch.tensors import (
    batchnorm,
    conv,
    conv_pads,
    int_list,
    node_attrs,
    optional_input,
    pool,
    torch_dtype,
    torch_pad,
)

try:  # torch is an optional dependency of cimc; the simulator needs it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None


def need_torch(what: str) -> None:
    if torch is None:
        raise ModelError(f"{what} needs torch; install cimc with its torch extra: pip install 'cimc[torch]'.")


# op type -> fn(inputs, attrs, opset) -> tensor or list of tensors
OPS: dict[str, Callable] = {
    "Identity": unary(lambda x: x), "Dropout": unary(lambda x: x),
    "Relu": unary(torch.relu) if torch else None, "Sigmoid": unary(torch.sigmoid) if torch else None,
    "Tanh": unary(torch.tanh) if torch else None,
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
    "Clip": lambda i, a, o: clip(i, a, o),
    "Add": binary(lambda x, y: x + y), "Sub": binary(lambda x, y: x - y),
    "Mul": binary(lambda x, y: x * y),
    "Div": binary(lambda x, y: torch.div(x, y, rounding_mode="trunc") if not x.dtype.is_floating_point else x / y),
    "Pow": binary(lambda x, y: torch.pow(x, y)),
    "Max": lambda i, a, o: fold(torch.maximum, i), "Min": lambda i, a, o: fold(torch.minimum, i),
    "Sum": lambda i, a, o: fold(torch.add, i), "Mean": lambda i, a, o: fold(torch.add, i) / len(i),
    "Equal": binary(torch.eq) if torch else None, "Greater": binary(torch.gt) if torch else None,
    "Less": binary(torch.lt) if torch else None, "GreaterOrEqual": binary(torch.ge) if torch else None,
    "LessOrEqual": binary(torch.le) if torch else None,
    "And": binary(torch.logical_and) if torch else None, "Or": binary(torch.logical_or) if torch else None,
    "Where": lambda i, a, o: torch.where(i[0].bool(), i[1], i[2]),
    "Mod": lambda i, a, o: torch.fmod(i[0], i[1]) if a.get("fmod", 0) else torch.remainder(i[0], i[1]),
    "Xor": binary(torch.logical_xor) if torch else None,
    "Sin": lambda i, a, o: torch.sin(i[0]), "Cos": lambda i, a, o: torch.cos(i[0]),
    "Softsign": lambda i, a, o: i[0] / (1 + torch.abs(i[0])),
    "Celu": lambda i, a, o: F.celu(i[0], a.get("alpha", 1.0)),
    "Mish": lambda i, a, o: F.mish(i[0]),
    "ThresholdedRelu": lambda i, a, o: torch.where(i[0] > a.get("alpha", 1.0), i[0], torch.zeros_like(i[0])),
    "IsNaN": lambda i, a, o: torch.isnan(i[0]), "IsInf": lambda i, a, o: torch.isinf(i[0]),
    "Einsum": lambda i, a, o: torch.einsum(a["equation"].decode() if isinstance(a["equation"], bytes)
                                           else a["equation"], *i),
    "ArgMax": lambda i, a, o: arg_extreme(torch.argmax, i[0], a), "ArgMin": lambda i, a, o: arg_extreme(torch.argmin, i[0], a),
    "CumSum": lambda i, a, o: torch.cumsum(i[0], dim=int(i[1].reshape(-1)[0])),
    "Trilu": lambda i, a, o: (torch.triu if a.get("upper", 1) else torch.tril)(
        i[0], int(i[1].reshape(-1)[0]) if optional_input(i, 1) is not None else 0),
    "InstanceNormalization": lambda i, a, o: F.instance_norm(i[0], weight=i[1], bias=i[2], eps=a.get("epsilon", 1e-5)),
    "Conv": lambda i, a, o: conv(i[0], i[1], optional_input(i, 2), a),
    "Gemm": lambda i, a, o: gemm(i, a),
    "MatMul": binary(torch.matmul) if torch else None,
    "BatchNormalization": lambda i, a, o: batchnorm(i[0], i[1], i[2], i[3], i[4], a.get("epsilon", 1e-5)),
    "LayerNormalization": lambda i, a, o: layernorm(i, a),
    "LRN": lambda i, a, o: lrn(i, a),
    "MaxPool": lambda i, a, o: pool(i[0], a, "MaxPool"),
    "AveragePool": lambda i, a, o: pool(i[0], a, "AveragePool"),
    "GlobalAveragePool": lambda i, a, o: i[0].mean(dim=list(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda i, a, o: torch.amax(i[0], dim=list(range(2, i[0].dim())), keepdim=True),
    "ReduceMean": lambda i, a, o: reduce(i[0], a, i, torch.mean, o),
    "ReduceSum": lambda i, a, o: reduce(i[0], a, i, torch.sum, o),
    "ReduceMax": lambda i, a, o: reduce(i[0], a, i, torch.amax, o),
    "ReduceMin": lambda i, a, o: reduce(i[0], a, i, torch.amin, o),
    "Softmax": lambda i, a, o: softmax(i[0], a, o),
    "LogSoftmax": lambda i, a, o: softmax(i[0], a, o, log=True),
    "Flatten": lambda i, a, o: i[0].reshape(math.prod(i[0].shape[:a.get("axis", 1) % max(i[0].dim(), 1)] or [1]), -1),
    "Reshape": None,  # Interpreter._eval: knows the batch
    "Transpose": lambda i, a, o: i[0].permute(*(a.get("perm") or reversed(range(i[0].dim())))),
    "Squeeze": lambda i, a, o: squeeze(i, a), "Unsqueeze": lambda i, a, o: unsqueeze(i, a),
    "Concat": lambda i, a, o: torch.cat([t for t in i if t is not None], dim=a["axis"]),
    "Slice": lambda i, a, o: slice_node(i[0], a, i),
    "Gather": lambda i, a, o: gather(i, a),
    "Shape": lambda i, a, o: torch.tensor(list(i[0].shape)[a.get("start", 0):a.get("end", None)], dtype=torch.int64),
    "Size": lambda i, a, o: torch.tensor(i[0].numel(), dtype=torch.int64),
    "Cast": lambda i, a, o: i[0].to(torch_dtype(a["to"])),
    "Constant": lambda i, a, o: constant(a),
    "ConstantOfShape": lambda i, a, o: constant_of_shape(i, a),
    "Expand": lambda i, a, o: i[0] * torch.ones(int_list(i[1]), dtype=i[0].dtype),
    "Tile": lambda i, a, o: i[0].repeat(*int_list(i[1])),
    "Range": lambda i, a, o: torch.arange(i[0].item(), i[1].item(), i[2].item()),
    "Pad": lambda i, a, o: pad_node(i, a, o),
    "Split": None,  # several outputs: Interpreter._eval
    "Resize": lambda i, a, o: resize(i, a, o), "Upsample": lambda i, a, o: resize(i, a, o),
}


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
            a = self._attr_cache[key] = node_attrs(node)
        return a

    def _eval(self, node, inputs):
        try:
            if node.op_type == "Split":
                return split_node(inputs[0], self._attrs_of(node), inputs, len(node.output), self.opset)
            if node.op_type == "Reshape":
                a = self._attrs_of(node)
                return [reshape(inputs[0], a["shape"] if self.opset < 5 else int_list(inputs[1]), a.get("allowzero", 0),
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


__all__ = ["Interpreter", "need_torch", "opset_of", "conv", "conv_pads", "torch_pad"]
