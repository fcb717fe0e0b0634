"""ONNX frontend: any ONNX model (opset 7+) to a Module of `nn.*` ops.

What it does, in order:
1. read the file (never its external weight data: cimc only needs shapes) and refuse
   what is not a usable model, with a message naming what and what to do;
2. convert opsets older than 7 with onnx's version converter;
3. fix the batch dimension (default 1) and other dynamic input dimensions the user gives;
4. onnx shape inference with data propagation; where it leaves a needed shape unknown,
   onnxruntime runs the model once on zeros to read the shapes;
5. fold everything computed from constants alone (initializers, Constant,
   ConstantOfShape of a constant, Shape of a static tensor, ...) out of the graph;
6. map each remaining node to one `nn.*` op: weight layers (Conv, ConvTranspose, Gemm,
   MatMul with a constant operand, LSTM/GRU/RNN) and digital ops, each with its output
   shape and, for digital ops, its element operations `ops`.

Invariant of the result: every op's `shape` is static and every weight layer names its
ONNX weight tensor in `weight`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import heapq
import io
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from cimc import files
from cimc.errors import CimcError, ModelError
from cimc.ir import Module, Op, freeze_attrs
from cimc.targets import Target

ALIAS_OPS = {"Identity", "Dropout"}
# element operations per output element for activations
ACT_OPS = {
    "Relu": 1, "LeakyRelu": 1, "PRelu": 1, "Clip": 1, "ThresholdedRelu": 1, "Shrink": 1, "Neg": 1, "Abs": 1,
    "Sign": 1, "Floor": 1, "Ceil": 1, "Round": 1, "Not": 1, "Cast": 1, "IsNaN": 1, "IsInf": 1,
    "HardSigmoid": 2, "Softsign": 2, "Sqrt": 2, "Reciprocal": 2, "HardSwish": 3,
    "Sigmoid": 4, "Tanh": 4, "Elu": 4, "Selu": 4, "Celu": 4, "Erf": 4, "Softplus": 4, "Exp": 4, "Log": 4,
    "Sin": 4, "Cos": 4, "Gelu": 8, "Mish": 8, "FastGelu": 8, "QuickGelu": 5,
}
ELTWISE_OPS = {
    "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow", "Where", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
    "BitwiseXor", "Affine", "ScaledTanh",
}
WINDOW_POOL_OPS = {"MaxPool", "AveragePool", "LpPool"}
REDUCE_OPS = {
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
    "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
}
NORM_OPS = {"BatchNormalization": 2, "InstanceNormalization": 5, "LayerNormalization": 8, "GroupNormalization": 5,
            "LpNormalization": 3, "MeanVarianceNormalization": 5, "SimplifiedLayerNormalization": 6,
            "SkipLayerNormalization": 9}
SOFTMAX_OPS = {"Softmax": 3, "LogSoftmax": 4, "Hardmax": 2}
MOVE_OPS = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Gather", "Pad",
            "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "GatherElements", "GatherND", "ScatterND",
            "ScatterElements", "ReverseSequence", "Compress", "CenterCropPad"}
INTERP_OPS = {"Resize", "Upsample"}
# ops whose output is known without running them once their inputs' shapes are static
SHAPE_ONLY_OPS = {"Shape", "Size"}
RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass
class _Graph:
    model: onnx.ModelProto
    shapes: dict[str, tuple[int | None, ...]]
    elem_types: dict[str, int]
    constants: set[str]
    consumed: set[str]  # tensors some node or graph output uses


# ---- reading ---------------------------------------------------------------------------

def read_model(source, what: str | None = None) -> tuple[onnx.ModelProto, str, Path | None]:
    """A ModelProto from a path, bytes or a ModelProto, with a display name and its folder."""
    if isinstance(source, onnx.ModelProto):
        return source, what or (source.graph.name or "model"), None
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), what or "<bytes>"), what or "model", None
    path = Path(source)
    try:
        data = files.read_bytes(path, "model", files.MODEL_MAX_BYTES,
                                missing=f"{path}: no such file. Give the path of an .onnx model.")
    except CimcError as e:
        raise ModelError(str(e)) from None
    if not data:
        raise ModelError(f"{path}: the file is empty. Export the model again (e.g. torch.onnx.export).")
    model = _decode(data, str(path))
    _check_external_data(model, path)
    return model, path.stem, path.parent


def _decode(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelError(f"{where}: not an ONNX model, or a truncated one (protobuf: {e}). "
                         "Check the file is a complete .onnx export.") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{where}: parsed, but holds no ONNX graph with nodes; it is not an ONNX model "
                         "or it is truncated. Check the file is a complete .onnx export.")
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        raise ModelError(f"{where}: declares no standard ONNX opset (opset_import); it is not a usable ONNX model.")
    return model


def _check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Refuse external-data references that leave the model's folder."""
    folder = path.parent.resolve()
    for t in _all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (folder / loc).resolve()
        if os.path.isabs(loc) or ".." in Path(loc).parts or folder not in target.parents:
            raise ModelError(f"{path}: tensor '{t.name}' keeps its data at '{loc}', outside the model's folder; "
                             "cimc refuses such references. Save the model with its data beside it.")


def _all_tensors(model: onnx.ModelProto):
    yield from model.graph.initializer
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


# ---- shapes ----------------------------------------------------------------------------

def _opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _dims(type_proto) -> tuple[int | None, ...] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in type_proto.tensor_type.shape.dim)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NAME_CHARS = 200


def _clean_names(model: onnx.ModelProto) -> None:
    """Rename, in place and consistently, every node and tensor whose name holds control
    characters (terminal escape codes, newlines) or is longer than NAME_CHARS: such names reach
    messages and the mapping text. `model` is cimc's own copy."""
    g = model.graph

    def bad(name: str) -> bool:
        return len(name) > NAME_CHARS or bool(_UNPRINTABLE.search(name))

    renamed: dict[str, str] = {}

    def clean(name: str) -> str:
        if not name or not bad(name):
            return name
        if name not in renamed:
            text = _UNPRINTABLE.sub("?", name)
            renamed[name] = f"{text[:NAME_CHARS // 2]}#{len(renamed)}"
        return renamed[name]

    for node in g.node:
        node.name = clean(node.name)
        for i, x in enumerate(node.input):
            node.input[i] = clean(x)
        for i, x in enumerate(node.output):
            node.output[i] = clean(x)
    for coll in (g.input, g.output, g.value_info, g.initializer, g.sparse_initializer):
        for v in coll:
            if hasattr(v, "name"):
                v.name = clean(v.name)


def _check(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """ONNX's own checker: a graph that breaks ONNX's rules (two nodes writing one tensor, an
    opset newer than this onnx knows, a malformed attribute) is refused with its reason. Nodes
    out of order are put in order (a copy, returned) rather than refused."""
    newest = onnx.defs.onnx_opset_version()
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > newest:
            raise ModelError(f"{where}: the model uses ONNX opset {o.version}, newer than the {newest} the "
                             f"installed onnx {onnx.__version__} knows (onnx.checker cannot judge it). Export it with "
                             f"opset {newest} or older, or upgrade onnx.")
    if model.ir_version > onnx.IR_VERSION:
        raise ModelError(f"{where}: the model's IR version {model.ir_version} is newer than the installed onnx "
                         f"{onnx.__version__} reads ({onnx.IR_VERSION}). Export it again, or upgrade onnx.")
    try:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            if "topologically sorted" in str(e):  # ONNX wants nodes in order; put them in order and judge again
                ordered = onnx.ModelProto()
                ordered.CopyFrom(model)
                nodes = _toposort(ordered, where)
                del ordered.graph.node[:]
                ordered.graph.node.extend(nodes)
                return _check(ordered, where)
            if "'shape' of 'type' is required" not in str(e):
                raise
            # an input or output declared without a shape: the checker requires one, shape
            # inference gives it (the shape is metadata; the nodes are what is checked)
            onnx.checker.check_model(onnx.shape_inference.infer_shapes(model))
    except ValueError as e:  # over 2 GB: the checker cannot take it in memory
        raise ModelError(f"{where}: the ONNX checker cannot read it ({str(e).strip().splitlines()[0]}).") from None
    except Exception as e:  # onnx.checker.ValidationError and the C++ layer's errors
        reason = " ".join(str(e).strip().split())
        raise ModelError(f"{where}: the model breaks ONNX's rules (onnx.checker: {reason[:300]}). Export it again, "
                         "or repair it with onnx's tools.") from None
    return model


def _fix_inputs(model: onnx.ModelProto, where: str, batch: int, input_shapes: dict) -> None:
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        if inp.name in input_shapes:
            dims = list(input_shapes[inp.name])
            shape = inp.type.tensor_type.shape
            del shape.dim[:]
            for d in dims:
                shape.dim.add().dim_value = int(d)
            continue
        dims = _dims(inp.type)
        if dims is None:
            raise ModelError(f"{where}: input '{inp.name}' has no shape; give it with --input-shape {inp.name}=1,3,224,224.")
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if d.HasField("dim_value") and d.dim_value < 0:
                raise ModelError(f"{where}: input '{inp.name}' has a negative dimension ({d.dim_value}) at axis "
                                 f"{axis}; a dimension is a size of 1 or more. Fix the export, or give the shape "
                                 f"with --input-shape {inp.name}=d0,d1,...")
            if d.HasField("dim_value") and d.dim_value == 0 and axis != 0:
                raise ModelError(f"{where}: input '{inp.name}' has a zero-sized dimension at axis {axis}; "
                                 "a tensor with no elements cannot be mapped.")
            if axis == 0:
                d.Clear()
                d.dim_value = batch
            else:
                raise ModelError(
                    f"{where}: input '{inp.name}' has a dynamic dimension at axis {axis} "
                    f"('{d.dim_param or '?'}'); give its size with --input-shape {inp.name}=d0,d1,... "
                    "(Python: input_shapes={...}).")


def _known(node) -> bool:
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    return onnx.defs.has(node.op_type, domain)


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def _shapes_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose large weight tensors keep their name, type and dims but not
    their data: cimc needs shapes only, and copies of the weights (shape inference copies the
    model twice) would cost several times the file's size in memory. Small tensors (shape
    constants, indices) keep their values for constant folding."""
    light = onnx.ModelProto()
    _copy_fields(model, light, skip="graph")
    _copy_fields(model.graph, light.graph, skip="initializer")
    g, lg = model.graph, light.graph
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if (t.data_type in _FLOATS and n > 64) or n > 65536:
            nt = lg.initializer.add()
            nt.name, nt.data_type = t.name, t.data_type
            nt.dims.extend(t.dims)
            if t.data_location == onnx.TensorProto.EXTERNAL:
                nt.data_location = onnx.TensorProto.EXTERNAL
                nt.external_data.extend(t.external_data)
        else:
            lg.initializer.add().CopyFrom(t)
    return light


def _copy_fields(src, dst, skip: str) -> None:
    """Copy every set field of protobuf message `src` into `dst` except `skip`."""
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if field.label == field.LABEL_REPEATED:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _with_zero_weights(model: onnx.ModelProto) -> None:
    """Make data-less (shape-only) initializers zeros, in place, so onnxruntime can run: each
    becomes a ConstantOfShape node, so the model stays small and the zeros exist only once,
    inside onnxruntime."""
    keep, made = [], []
    for t in model.graph.initializer:
        has_data = t.raw_data or t.float_data or t.int64_data or t.int32_data or t.double_data
        if t.data_location != onnx.TensorProto.EXTERNAL and has_data:
            keep.append(t)
            continue
        shape_name = f"__cimc_shape_{t.name}"
        keep.append(numpy_helper.from_array(np.array(list(t.dims), dtype=np.int64), shape_name))
        zero = helper.make_tensor("value", t.data_type, [1], [0])
        made.append(helper.make_node("ConstantOfShape", [shape_name], [t.name], value=zero))
    if not made:
        return
    names = {n.output[0] for n in made}
    inputs = [i for i in model.graph.input if i.name not in names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(made + nodes)


def _infer(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Shape inference; ops onnx does not know are taken as element-wise (their first
    output shaped like their first input) so that shapes flow past them."""
    unknown = [i for i, n in enumerate(model.graph.node) if not _known(n)]
    probe = model
    if unknown:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for i in unknown:
            n = probe.graph.node[i]
            first = next((x for x in n.input if x), None)
            if first is None:
                continue
            replacement = onnx.helper.make_node("Identity", [first], [n.output[0]], name=n.name)
            probe.graph.node[i].CopyFrom(replacement)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx raises several types, all meaning "the graph is inconsistent"
        raise ModelError(f"{where}: ONNX shape inference failed: {str(e).strip().splitlines()[0]}") from None
    if unknown:
        del inferred.graph.node[:]
        inferred.graph.node.extend(model.graph.node)
    return inferred


def _collect_shapes(model: onnx.ModelProto) -> tuple[dict, dict]:
    shapes, types = {}, {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = _dims(vi.type)
        if d is not None:
            shapes[vi.name] = d
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        shapes[t.name] = tuple(t.dims)
        types[t.name] = t.data_type
    for node in g.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            shapes[node.output[0]] = tuple(node.attribute[0].t.dims)
            types[node.output[0]] = node.attribute[0].t.data_type
    return shapes, types


def _static(shape) -> bool:
    return shape is not None and all(d is not None for d in shape)


def _shapes_by_running(model: onnx.ModelProto, where: str, names: list[str]) -> dict:
    """Shapes of `names` read off one onnxruntime run on zero inputs (a fallback)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _with_zero_weights(m)
    existing = {o.name for o in m.graph.output}
    for n in names:
        if n not in existing:
            m.graph.output.add().name = n
    inits = {i.name for i in m.graph.initializer}
    feeds = {}
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        for inp in sess.get_inputs():
            if inp.name in inits:
                continue
            dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
                     "tensor(double)": np.float64, "tensor(bool)": np.bool_}.get(inp.type, np.float32)
            shape = [d if isinstance(d, int) else 1 for d in inp.shape]
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
        outs = sess.run(names, feeds)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{where}: shapes of {', '.join(names[:3])} could not be inferred, and running the model "
                         f"to find them failed ({str(e).strip().splitlines()[0][:300]}). Fix the input shapes "
                         "with --input-shape or simplify the model.") from None
    return {n: tuple(int(d) for d in np.shape(v)) for n, v in zip(names, outs)}


# ---- constants ------------------------------------------------------------------------

def _constants(model: onnx.ModelProto, nodes, shapes: dict) -> set[str]:
    """Tensors whose value does not depend on any model input (`nodes` in topological order)."""
    const = {i.name for i in model.graph.initializer}
    const.add("")  # an omitted optional input
    for node in nodes:
        ins = [i for i in node.input]
        if node.op_type in SHAPE_ONLY_OPS and _static(shapes.get(node.input[0])):
            const.update(node.output)
        elif all(i in const for i in ins) and node.op_type not in {"RandomNormal", "RandomUniform", "Multinomial",
                                                                  "RandomNormalLike", "RandomUniformLike"}:
            const.update(node.output)
    const.discard("")
    return const


def _toposort(model: onnx.ModelProto, where: str) -> list:
    """Nodes in an order where each comes after the nodes it reads (Kahn's algorithm, the
    lowest original position first: a graph already in order keeps its order). Linear in the
    graph's size up to the heap's log factor."""
    g = model.graph
    known = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    nodes = list(g.node)
    waiting_on: dict[str, list[int]] = {}
    missing_count = []
    for idx, node in enumerate(nodes):
        need = {i for i in node.input if i not in known}
        missing_count.append(len(need))
        for name in need:
            waiting_on.setdefault(name, []).append(idx)
    ready = [i for i, c in enumerate(missing_count) if c == 0]
    heapq.heapify(ready)
    ordered, made = [], set()
    while ready:
        idx = heapq.heappop(ready)
        ordered.append(nodes[idx])
        for out in nodes[idx].output:
            if out in made or out in known:
                continue
            made.add(out)
            for j in waiting_on.pop(out, ()):
                missing_count[j] -= 1
                if missing_count[j] == 0:
                    heapq.heappush(ready, j)
    if len(ordered) < len(nodes):
        done = {id(n) for n in ordered}
        n = next(x for x in nodes if id(x) not in done)
        have = known | made
        missing = [i for i in n.input if i not in have]
        raise ModelError(f"{where}: node '{n.name or n.op_type}' ({n.op_type}) uses '{missing[0]}', "
                         "which no node or input produces (or the graph has a cycle).")
    return ordered


# ---- the import -------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.$\-]")


def _sanitize(name: str) -> str:
    """A value name for the mapping IR. Exporter scope paths are shortened:
    torch's "/features/features.1/body/body.0/Conv" becomes "features.1.body.0.Conv"."""
    if "/" in name:
        parts: list[str] = []
        for seg in filter(None, name.split("/")):
            if parts and seg.startswith(parts[-1] + "."):
                parts[-1] = seg
            else:
                parts.append(seg)
        name = ".".join(parts)
    return _NAME_BAD.sub("_", name).strip("_") or "v"


def import_onnx(source, target: Target, *, batch: int = 1, input_shapes: dict | None = None,
                name: str | None = None) -> Module:
    """Read an ONNX model (path, bytes or ModelProto) into a Module of `nn.*` ops."""
    model, stem, _folder = read_model(source, name)
    where = str(source) if isinstance(source, (str, Path)) else stem
    if batch < 1:
        raise ModelError(f"batch must be at least 1, got {batch}.")
    for node in model.graph.node:
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' is a {node.op_type}, a control-flow "
                                 "op with a subgraph; cimc maps static graphs only. Export the model with loops unrolled.")
    if _opset(model) < 7:
        model = _check(model, where)
        try:
            model = onnx.version_converter.convert_version(model, 9)
        except Exception as e:  # the converter raises bare RuntimeErrors
            raise ModelError(f"{where}: opset {_opset(model)} is older than 7 and onnx's version converter "
                             f"could not upgrade it ({str(e).splitlines()[0]}). Re-export with opset 7 or newer.") from None
    model = _check(model, where)
    if _opset(model) >= 7:
        model = _shapes_only(model)
    _clean_names(model)
    _fix_inputs(model, where, batch, dict(input_shapes or {}))
    model = _infer(model, where)
    shapes, types = _collect_shapes(model)
    nodes = _toposort(model, where)
    constants = _constants(model, nodes, shapes)
    consumed = {i for n in nodes for i in n.input} | {o.name for o in model.graph.output}
    needed = [o for n in nodes if not all(o in constants for o in n.output) for o in list(n.input) + list(n.output)
              if o and o in consumed and not _static(shapes.get(o))]
    if needed:
        shapes.update(_shapes_by_running(model, where, sorted(set(needed))))
    graph = _Graph(model, shapes, types, constants, consumed)
    return _build(graph, nodes, target, _sanitize(name or stem or model.graph.name), where)


def _build(g: _Graph, nodes, target: Target, module_name: str, where: str) -> Module:
    ops: list[Op] = []
    alias: dict[str, str] = {}
    used_names: set[str] = set()

    def fresh(raw: str) -> str:
        base = _sanitize(raw)
        n, i = base, 1
        while n in used_names:
            n, i = f"{base}.{i}", i + 1
        used_names.add(n)
        return n

    inits = {i.name for i in g.model.graph.initializer}
    for inp in g.model.graph.input:
        if inp.name in inits or inp.name in g.constants:
            continue
        n = fresh(inp.name)
        alias[inp.name] = n
        ops.append(Op.make("nn.input", n, (), shape=g.shapes[inp.name], name=inp.name))
    if not ops:
        raise ModelError(f"{where}: the model has no inputs other than its weights; nothing to compute.")

    for node in nodes:
        if all(o in g.constants for o in node.output if o):
            continue
        acts = [i for i in node.input if i and i not in g.constants]
        if node.op_type in ALIAS_OPS and acts:
            alias[node.output[0]] = alias[acts[0]]
            continue
        label = node.name or node.output[0]
        result = fresh(node.name if node.name and node.name not in used_names else node.output[0])
        operands = [alias[a] for a in acts]
        _check_arity(node, g, where, label)
        made = _lower_node(node, g, result, operands, where, label)
        ops.extend(made)
        alias[node.output[0]] = result
        for k, extra in enumerate(node.output[1:], start=1):
            if extra and extra in g.consumed:
                n = fresh(extra)
                ops.append(Op.make("nn.reshape", n, [result], shape=g.shapes[extra], fn=f"{node.op_type}:{k}", ops=0,
                                   index=k, onnx=label))
                alias[extra] = n
    outs = [alias[o.name] for o in g.model.graph.output if o.name in alias]
    if not outs:
        raise ModelError(f"{where}: no output of the model depends on its inputs; nothing to map.")
    ops.append(Op.make("nn.output", None, outs))
    ops = canonical_order(ops)
    if not any(op.kind in ("nn.conv", "nn.conv_transpose", "nn.matmul", "nn.rnn") for op in ops):
        raise ModelError(f"{where}: the model has no weight layer (Conv, ConvTranspose, Gemm, MatMul with a "
                         "constant operand, LSTM/GRU/RNN); there is nothing to put on crossbars.")
    return Module(module_name, target, tuple(ops), freeze_attrs({"source": where}))


NAME_ATTRS = ("onnx", "weight", "name")  # attributes that name things: not part of what an op computes
COMMUTATIVE = ("Add", "Mul", "Sum", "Max", "Min", "Mean")


def _commutes(op: Op) -> bool:
    return op.kind == "nn.eltwise" and op.get("fn") in COMMUTATIVE


def canonical_order(ops: list[Op]) -> list[Op]:
    """The ops in an order that depends only on what the graph computes, not on how its file
    numbers or orders the nodes: isomorphic graphs give the same order, so they map and cost
    the same. Each op gets a colour from its kind and attributes (names left out), refined
    until stable by the colours of its operands and of the ops it feeds (positions count,
    except in commutative element-wise ops): colour refinement, as in graph canonisation.
    Ops are taken in Kahn's order by (depth from the inputs, colour, where their operands came
    in the new order). Where ops still share a colour they are symmetric (a branch and its
    twin): the first in file order is taken and marked, and the colours are refined again, so
    the ops related to it are told from their twins' (individualisation). Commutative ops
    take their operands in (colour, new order) order. Inputs keep their order and come
    first; the output op comes last."""
    def digest(value) -> str:  # stable across processes (str hashes are salted)
        return hashlib.sha1(repr(value).encode()).hexdigest()[:16]

    inputs = [op for op in ops if op.kind == "nn.input"]
    body = [op for op in ops if op.kind != "nn.input" and op.result is not None]
    tail = [op for op in ops if op.result is None]
    names = {op.result for op in inputs} | {op.result for op in body}
    users: dict[str, list[tuple[str, int]]] = {n: [] for n in names}
    for op in body + tail:
        for pos, o in enumerate(op.operands):
            if o in users:
                users[o].append((op.result or "", 0 if _commutes(op) else pos))
    by_name = {op.result: op for op in body}
    color = {op.result: f"input{n}" for n, op in enumerate(inputs)}
    for op in body:
        color[op.result] = digest((op.kind, [(k, v) for k, v in op.attrs if k not in NAME_ATTRS]))
    color[""] = "output"

    def refine(color: dict) -> dict:
        classes = len(set(color.values()))
        for _ in range(len(color) + 1):
            new = {"": "output"}
            for name in names:
                op = by_name.get(name)
                ins = [color[o] for o in op.operands] if op is not None else []
                if op is not None and _commutes(op):
                    ins.sort()
                outs = sorted((color[u], pos) for u, pos in users[name])
                new[name] = digest((color[name], ins, outs))
            color = new
            now = len(set(color.values()))
            if now == classes:
                return color
            classes = now
        return color

    color = refine(color)
    depth: dict[str, int] = {op.result: 0 for op in inputs}
    for op in body:  # ops come in a topological order (the frontend sorted them)
        depth[op.result] = 1 + max((depth.get(o, 0) for o in op.operands), default=0)
    index = {op.result: n for n, op in enumerate(body)}
    emitted = {op.result: n for n, op in enumerate(inputs)}  # position in the new order
    waiting = {op.result: sum(1 for o in set(op.operands) if o in index) for op in body}

    def key(name: str) -> tuple:
        return (depth[name], color[name], tuple(sorted(emitted.get(o, -1) for o in by_name[name].operands)),
                index[name])

    left = Counter(color[op.result] for op in body)  # colours of the ops not yet taken
    ready = [key(r) for r, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out: list[Op] = []
    while ready:
        name = body[heapq.heappop(ready)[-1]].result
        if left[color[name]] > 1:  # it has a twin: mark the one taken, and tell their neighbours apart
            color[name] = digest((color[name], "taken"))
            color = refine(color)
            left = Counter(color[r] for r in index if r not in emitted and r != name)
            ready = [key(body[k[-1]].result) for k in ready]
            heapq.heapify(ready)
        else:
            left[color[name]] -= 1
        op = by_name[name]
        emitted[name] = len(inputs) + len(out)
        if _commutes(op):
            ordered = tuple(sorted(op.operands, key=lambda o: (color.get(o, o), emitted.get(o, -1))))
            if ordered != op.operands:
                op = dataclasses.replace(op, operands=ordered)
        out.append(op)
        for u, _ in users[name]:
            if u in waiting:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, key(u))
    return inputs + out + tail


@functools.lru_cache(maxsize=1024)
def _schema(op_type: str, opset: int):
    """The standard op's schema at this opset, or None (unknown op, or none at this opset:
    shape inference has already judged the node)."""
    if not onnx.defs.has(op_type):
        return None
    try:
        return onnx.defs.get_schema(op_type, opset)
    except Exception:  # onnx raises its own SchemaError
        return None


def _check_arity(node, g: "_Graph", where: str, label: str) -> None:
    """Input and output counts against the op's ONNX schema (a damaged graph can break them)."""
    if node.domain not in ("", "ai.onnx"):
        return
    schema = _schema(node.op_type, _opset(g.model))
    if schema is None:
        return
    given = sum(1 for _ in node.input)
    least = 2 if node.op_type == "Gemm" else schema.min_input  # C is optional in practice before opset 11 too
    if given < least or given > schema.max_input or len(node.output) < schema.min_output:
        raise ModelError(f"{where}: node '{label}' ({node.op_type}) has {given} inputs and {len(node.output)} outputs; "
                         f"ONNX opset {_opset(g.model)} needs {least} to {schema.max_input} inputs and at "
                         f"least {schema.min_output} output(s). The graph is damaged; export it again.")


def _numel(shape) -> int:
    return int(math.prod(shape))


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _shape_of(g: _Graph, name: str, where: str, label: str) -> tuple[int, ...]:
    s = g.shapes.get(name)
    if not _static(s):
        raise ModelError(f"{where}: the shape of '{name}' (node '{label}') is unknown after shape inference; "
                         "give the input shapes with --input-shape.")
    if any(d == 0 for d in s):
        raise ModelError(f"{where}: tensor '{name}' (node '{label}') has no elements (shape {list(s)}); "
                         "a zero-sized tensor cannot be mapped.")
    return tuple(s)


def _lower_node(node, g: _Graph, result: str, operands: list[str], where: str, label: str) -> list[Op]:
    # an op of another domain is not the standard op of the same name (a com.example Conv is
    # not a Conv): it goes to the unknown-op rule below
    t = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    shp = lambda n: _shape_of(g, n, where, label)  # noqa: E731
    out = shp(node.output[0])
    out_n = _numel(out)
    digital = dict(shape=out, onnx=label)
    is_const = lambda n: n in g.constants  # noqa: E731

    if t in ("Conv", "ConvTranspose") and len(node.input) > 1 and is_const(node.input[1]):
        w = shp(node.input[1])
        groups = int(_attr(node, "group", 1))
        k = tuple(w[2:]) or (1,)
        spatial = len(w) - 2
        if t == "Conv":
            cin, cout = w[1] * groups, w[0]
            kind = "nn.conv"
        else:
            cin, cout = w[0], w[1] * groups
            kind = "nn.conv_transpose"
        return [Op.make(kind, result, operands[:1], shape=out, in_channels=cin, out_channels=cout, kernel=k,
                        stride=tuple(_attr(node, "strides", [1] * spatial)),
                        pads=tuple(_attr(node, "pads", [0] * (2 * spatial))),
                        dilation=tuple(_attr(node, "dilations", [1] * spatial)),
                        groups=groups, weight=node.input[1], bias=len(node.input) > 2 and bool(node.input[2]),
                        onnx=label)]
    if t in ("Gemm", "MatMul") and len(operands) == 1:
        a, b = node.input[0], node.input[1]
        if is_const(b):
            wshape = shp(b)
            if t == "Gemm":
                k_in, n_out = (wshape[1], wshape[0]) if _attr(node, "transB", 0) else (wshape[0], wshape[1])
            else:
                k_in, n_out = wshape[-2] if len(wshape) > 1 else wshape[0], wshape[-1] if len(wshape) > 1 else 1
                if len(wshape) > 2 and _numel(wshape[:-2]) > 1:
                    raise ModelError(f"{where}: node '{label}' multiplies by a batch of {_numel(wshape[:-2])} constant "
                                     "matrices; cimc maps one weight matrix per MatMul.")
            bias = t == "Gemm" and len(node.input) > 2 and bool(node.input[2])
            return [Op.make("nn.matmul", result, operands, shape=out, in_features=k_in, out_features=n_out,
                            weight=b, bias=bias, onnx=label)]
        if is_const(a):  # W @ x: the constant is on the left; the crossbar holds W transposed
            wshape = shp(a)
            if t == "Gemm":
                m_out, k_in = (wshape[1], wshape[0]) if _attr(node, "transA", 0) else (wshape[0], wshape[1])
            else:
                m_out, k_in = (wshape[-2], wshape[-1]) if len(wshape) > 1 else (1, wshape[0])
            return [Op.make("nn.matmul", result, operands, shape=out, in_features=k_in, out_features=m_out,
                            weight=a, bias=False, onnx=label)]
    if t in ("Gemm", "MatMul", "Conv", "ConvTranspose", "Einsum"):
        # both operands are activations (attention scores, dynamic weights): digital MACs
        a = shp(node.input[0])
        k = a[-1] if t != "Conv" else _numel(a[1:])
        return [Op.make("nn.dot", result, operands, fn=t, ops=out_n * int(k), **digital)]
    if t in RNN_GATES:
        w, x = shp(node.input[1]), shp(node.input[0])
        hidden = int(_attr(node, "hidden_size", w[1] // RNN_GATES[t]))
        seq, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
        if not is_const(node.input[1]) or not is_const(node.input[2]):
            raise ModelError(f"{where}: {t} node '{label}' has weights computed from the inputs; cimc needs constant W and R.")
        return [Op.make("nn.rnn", result, operands[:1], shape=out, cell=t, input_size=int(w[2]), hidden_size=hidden,
                        directions=int(w[0]), seq_len=int(seq) * int(batch), weight=node.input[1], onnx=label)]
    if t in ACT_OPS:
        return [Op.make("nn.act", result, operands, fn=t, ops=out_n * ACT_OPS[t], **digital)]
    if t in ELTWISE_OPS:
        return [Op.make("nn.eltwise", result, operands, fn=t, ops=out_n * max(1, len(node.input) - 1), **digital)]
    if t in WINDOW_POOL_OPS:
        k = list(_attr(node, "kernel_shape", [1]))
        window = dict(kernel=tuple(k), stride=tuple(_attr(node, "strides", [1] * len(k))),
                      pads=tuple(_attr(node, "pads", [0] * (2 * len(k)))),
                      dilation=tuple(_attr(node, "dilations", [1] * len(k))))
        return [Op.make("nn.pool", result, operands, fn=t, ops=out_n * _numel(k), **window, **digital)]
    if t in REDUCE_OPS:
        return [Op.make("nn.pool", result, operands, fn=t, ops=_numel(shp(node.input[0])), **digital)]
    if t in NORM_OPS:
        per = NORM_OPS[t] if t != "LRN" else 0
        return [Op.make("nn.norm", result, operands, fn=t, ops=out_n * per, **digital)]
    if t == "LRN":
        return [Op.make("nn.norm", result, operands, fn=t, ops=out_n * (int(_attr(node, "size", 5)) + 3), **digital)]
    if t in SOFTMAX_OPS:
        return [Op.make("nn.softmax", result, operands, fn=t, ops=out_n * SOFTMAX_OPS[t], **digital)]
    if t == "Concat":
        return [Op.make("nn.concat", result, operands, fn=t, ops=0, axis=int(_attr(node, "axis", 1)), **digital)]
    if t in MOVE_OPS:
        if t == "Reshape" and node.input and _static(g.shapes.get(node.input[0])) \
                and _numel(shp(node.input[0])) != out_n:
            raise ModelError(f"{where}: node '{label}' reshapes {list(shp(node.input[0]))} "
                             f"({_numel(shp(node.input[0]))} elements) to {list(out)} ({out_n} elements); a Reshape "
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
            if s is not None and len(s) >= 2 and _numel([d or 1 for d in s]) > 1:
                raise ModelError(
                    f"{where}: node '{label}' is a {t}, an op cimc does "
                    f"not know, and it has a weight tensor '{i}' of shape {list(s)}. cimc cannot say how it maps "
                    "onto crossbars; replace it with Conv/Gemm/MatMul when exporting.")
    return [Op.make("nn.eltwise", result, operands, fn=t, ops=out_n, known=False, **digital)]


def export_torch(module, example_inputs, opset: int = 17, dynamic_batch: bool = False) -> onnx.ModelProto:
    """Export a torch.nn.Module to ONNX in memory (TorchScript exporter, no files).

    dynamic_batch: export dim 0 of every input as a dynamic batch (cimc maps batch 1 unless
    told otherwise; onnxruntime can then run batches). Not for inputs whose dim 0 is not
    the batch (sequence-first RNNs)."""
    try:
        import torch
    except ImportError:
        raise ModelError("compiling a torch.nn.Module needs torch: pip install 'cimc[torch]'.") from None
    if example_inputs is None:
        raise ModelError("compiling a torch.nn.Module needs example_inputs=(tensor, ...) of the input shape.")
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    buf = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():  # tracer warnings speak of torch internals, not of the user's model
            warnings.simplefilter("ignore")
            names = ["input"] if len(example_inputs) == 1 else [f"input{i}" for i in range(len(example_inputs))]
            torch.onnx.export(module, example_inputs, buf, opset_version=opset, dynamo=False, input_names=names,
                              dynamic_axes={n: {0: "batch"} for n in names} if dynamic_batch else None)
    except Exception as e:  # torch's exporter raises many types
        raise ModelError(f"torch.onnx.export failed for {type(module).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        module.train(was_training)
    return onnx.load_from_string(buf.getvalue())
