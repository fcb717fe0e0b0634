"""One ONNX node to cimc ops: arity checked against the schema, attributes read, the op kind and
attributes the IR wants."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import onnx

from cimc.errors import ModelError
from cimc.frontend.shapes import opset_of, static_shape
from cimc.frontend.tables import (
    ACT_OPS,
    ELTWISE_OPS,
    INTERP_OPS,
    MOVE_OPS,
    NORM_OPS,
    REDUCE_OPS,
    SOFTMAX_OPS,
    WINDOW_POOL_OPS,
)
from cimc.ir import Op
from cimc.ops import RNN_GATES


@dataclass
class Graph:
    model: onnx.ModelProto
    shapes: dict[str, tuple[int | None, ...]]
    elem_types: dict[str, int]
    constants: set[str]
    consumed: set[str]  # tensors some node or graph output uses


@functools.lru_cache(maxsize=1024)
def schema_of(op_type: str, opset: int):
    """The standard op's schema at this opset, or None (unknown op, or none at this opset:
    shape inference has already judged the node)."""
    if not onnx.defs.has(op_type):
        return None
    try:
        return onnx.defs.get_schema(op_type, opset)
    except Exception:  # onnx raises its own SchemaError
        return None


def check_arity(node, g: "Graph", where: str, label: str) -> None:
    """Input and output counts against the op's ONNX schema (a damaged graph can break them)."""
    if node.domain not in ("", "ai.onnx"):
        return
    schema = schema_of(node.op_type, opset_of(g.model))
    if schema is None:
        return
    given = sum(1 for _ in node.input)
    least = 2 if node.op_type == "Gemm" else schema.min_input  # C is optional in practice before opset 11 too
    if given < least or given > schema.max_input or len(node.output) < schema.min_output:
        raise ModelError(f"{where}: node '{label}' ({node.op_type}) has {given} inputs and {len(node.output)} outputs; "
                         f"ONNX opset {opset_of(g.model)} needs {least} to {schema.max_input} inputs and at "
                         f"least {schema.min_output} output(s). The graph is damaged; export it again.")


def numel(shape) -> int:
    return int(math.prod(shape))


def onnx_attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def shape_of(g: Graph, name: str, where: str, label: str) -> tuple[int, ...]:
    s = g.shapes.get(name)
    if not static_shape(s):
        raise ModelError(f"{where}: the shape of '{name}' (node '{label}') is unknown after shape inference; "
                         "give the input shapes with --input-shape.")
    if any(d == 0 for d in s):
        raise ModelError(f"{where}: tensor '{name}' (node '{label}') has no elements (shape {list(s)}); "
                         "a zero-sized tensor cannot be mapped.")
    return tuple(s)


def lower_node(node, g: Graph, result: str, operands: list[str], where: str, label: str) -> list[Op]:
    # an op of another domain is not the standard op of the same name (a com.example Conv is
    # not a Conv): it goes to the unknown-op rule below
    t = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    shp = lambda n: shape_of(g, n, where, label)  # noqa: E731
    out = shp(node.output[0])
    out_n = numel(out)
    digital = dict(shape=out, onnx=label)
    is_const = lambda n: n in g.constants  # noqa: E731

    if t in ("Conv", "ConvTranspose") and len(node.input) > 1 and is_const(node.input[1]):
        w = shp(node.input[1])
        groups = int(onnx_attr(node, "group", 1))
        k = tuple(w[2:]) or (1,)
        spatial = len(w) - 2
        if t == "Conv":
            cin, cout = w[1] * groups, w[0]
            kind = "nn.conv"
        else:
            cin, cout = w[0], w[1] * groups
            kind = "nn.conv_transpose"
        return [Op.make(kind, result, operands[:1], shape=out, in_channels=cin, out_channels=cout, kernel=k,
                        stride=tuple(onnx_attr(node, "strides", [1] * spatial)),
                        pads=tuple(onnx_attr(node, "pads", [0] * (2 * spatial))),
                        dilation=tuple(onnx_attr(node, "dilations", [1] * spatial)),
                        groups=groups, weight=node.input[1], bias=len(node.input) > 2 and bool(node.input[2]),
                        onnx=label)]
    if t in ("Gemm", "MatMul") and len(operands) == 1:
        a, b = node.input[0], node.input[1]
        if is_const(b):
            wshape = shp(b)
            if t == "Gemm":
                k_in, n_out = (wshape[1], wshape[0]) if onnx_attr(node, "transB", 0) else (wshape[0], wshape[1])
            else:
                k_in, n_out = wshape[-2] if len(wshape) > 1 else wshape[0], wshape[-1] if len(wshape) > 1 else 1
                if len(wshape) > 2 and numel(wshape[:-2]) > 1:
                    raise ModelError(f"{where}: node '{label}' multiplies by a batch of {numel(wshape[:-2])} constant "
                                     "matrices; cimc maps one weight matrix per MatMul.")
            bias = t == "Gemm" and len(node.input) > 2 and bool(node.input[2])
            return [Op.make("nn.matmul", result, operands, shape=out, in_features=k_in, out_features=n_out,
                            weight=b, bias=bias, onnx=label)]
        if is_const(a):  # W @ x: the constant is on the left; the crossbar holds W transposed
            wshape = shp(a)
            if t == "Gemm":
                m_out, k_in = (wshape[1], wshape[0]) if onnx_attr(node, "transA", 0) else (wshape[0], wshape[1])
            else:
                m_out, k_in = (wshape[-2], wshape[-1]) if len(wshape) > 1 else (1, wshape[0])
            return [Op.make("nn.matmul", result, operands, shape=out, in_features=k_in, out_features=m_out,
                            weight=a, bias=False, onnx=label)]
    if t in ("Gemm", "MatMul", "Conv", "ConvTranspose", "Einsum"):
        # both operands are activations (attention scores, dynamic weights): digital MACs
        a = shp(node.input[0])
        k = a[-1] if t != "Conv" else numel(a[1:])
        return [Op.make("nn.dot", result, operands, fn=t, ops=out_n * int(k), **digital)]
    if t in RNN_GATES:
        w, x = shp(node.input[1]), shp(node.input[0])
        hidden = int(onnx_attr(node, "hidden_size", w[1] // RNN_GATES[t]))
        seq, batch = (x[1], x[0]) if onnx_attr(node, "layout", 0) else (x[0], x[1])
        if not is_const(node.input[1]) or not is_const(node.input[2]):
            raise ModelError(f"{where}: {t} node '{label}' has weights computed from the inputs; cimc needs constant W and R.")
        return [Op.make("nn.rnn", result, operands[:1], shape=out, cell=t, input_size=int(w[2]), hidden_size=hidden,
                        directions=int(w[0]), seq_len=int(seq) * int(batch), weight=node.input[1], onnx=label)]
    if t in ACT_OPS:
        return [Op.make("nn.act", result, operands, fn=t, ops=out_n * ACT_OPS[t], **digital)]
    if t in ELTWISE_OPS:
        return [Op.make("nn.eltwise", result, operands, fn=t, ops=out_n * max(1, len(node.input) - 1), **digital)]
    if t in WINDOW_POOL_OPS:
        k = list(onnx_attr(node, "kernel_shape", [1]))
        window = dict(kernel=tuple(k), stride=tuple(onnx_attr(node, "strides", [1] * len(k))),
                      pads=tuple(onnx_attr(node, "pads", [0] * (2 * len(k)))),
                      dilation=tuple(onnx_attr(node, "dilations", [1] * len(k))))
        return [Op.make("nn.pool", result, operands, fn=t, ops=out_n * numel(k), **window, **digital)]
    if t in REDUCE_OPS:
        return [Op.make("nn.pool", result, operands, fn=t, ops=numel(shp(node.input[0])), **digital)]
    if t in NORM_OPS:
        per = NORM_OPS[t] if t != "LRN" else 0
        return [Op.make("nn.norm", result, operands, fn=t, ops=out_n * per, **digital)]
    if t == "LRN":
        return [Op.make("nn.norm", result, operands, fn=t, ops=out_n * (int(onnx_attr(node, "size", 5)) + 3), **digital)]
    if t in SOFTMAX_OPS:
        return [Op.make("nn.softmax", result, operands, fn=t, ops=out_n * SOFTMAX_OPS[t], **digital)]
    if t == "Concat":
        return [Op.make("nn.concat", result, operands, fn=t, ops=0, axis=int(onnx_attr(node, "axis", 1)), **digital)]
    if t in MOVE_OPS:
        if t == "Reshape" and node.input and static_shape(g.shapes.get(node.input[0])) \
                and numel(shp(node.input[0])) != out_n:
            raise ModelError(f"{where}: node '{label}' reshapes {list(shp(node.input[0]))} "
                             f"({numel(shp(node.input[0]))} elements) to {list(out)} ({out_n} elements); a Reshape "
                             "keeps the element count. The graph is damaged; export it again.")
        return [Op.make("nn.reshape", result, operands, fn=t, ops=0, **digital)]
    if t in INTERP_OPS:
        return [Op.make("nn.reshape", result, operands, fn=t, ops=out_n, **digital)]
    # An op cimc does not know: fine if it has no weights (costed element-wise), else an error.
    for i in node.input:
        if i and is_const(i) and g.elem_types.get(i) in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                         onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16,
                                                         onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            s = g.shapes.get(i)
            if s is not None and len(s) >= 2 and numel([d or 1 for d in s]) > 1:
                raise ModelError(
                    f"{where}: node '{label}' is a {t}, an op cimc does "
                    f"not know, and it has a weight tensor '{i}' of shape {list(s)}. cimc cannot say how it maps "
                    "onto crossbars; replace it with Conv/Gemm/MatMul when exporting.")
    return [Op.make("nn.eltwise", result, operands, fn=t, ops=out_n, known=False, **digital)]
