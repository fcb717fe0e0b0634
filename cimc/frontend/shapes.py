"""Shapes: the opset, fixed input shapes, ONNX shape inference, and where it stops, running the
graph on zero weights; constant folding of shape-only ops."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from cimc.errors import ModelError
from cimc.frontend.tables import SHAPE_ONLY_OPS


def opset_of(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def dims_of(type_proto) -> tuple[int | None, ...] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in type_proto.tensor_type.shape.dim)


def fix_inputs(model: onnx.ModelProto, where: str, batch: int, input_shapes: dict) -> None:
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
        dims = dims_of(inp.type)
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


def shape_known(node) -> bool:
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    return onnx.defs.has(node.op_type, domain)


FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def shapes_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose large weight tensors keep their name, type and dims but not
    their data: cimc needs shapes only, and copies of the weights (shape inference copies the
    model twice) would cost several times the file's size in memory. Small tensors (shape
    constants, indices) keep their values for constant folding."""
    light = onnx.ModelProto()
    copy_fields(model, light, skip="graph")
    copy_fields(model.graph, light.graph, skip="initializer")
    g, lg = model.graph, light.graph
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if (t.data_type in FLOAT_TYPES and n > 64) or n > 65536:
            nt = lg.initializer.add()
            nt.name, nt.data_type = t.name, t.data_type
            nt.dims.extend(t.dims)
            if t.data_location == onnx.TensorProto.EXTERNAL:
                nt.data_location = onnx.TensorProto.EXTERNAL
                nt.external_data.extend(t.external_data)
        else:
            lg.initializer.add().CopyFrom(t)
    return light


def copy_fields(src, dst, skip: str) -> None:
    """Copy every set field of protobuf message `src` into `dst` except `skip`."""
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        # protobuf 6.31+ deprecates `label` for `is_repeated`; older releases have only `label`
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if repeated:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def with_zero_weights(model: onnx.ModelProto) -> None:
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


def infer_shapes(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Shape inference; ops onnx does not know are taken as element-wise (their first
    output shaped like their first input) so that shapes flow past them."""
    unknown = [i for i, n in enumerate(model.graph.node) if not shape_known(n)]
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


def collect_shapes(model: onnx.ModelProto) -> tuple[dict, dict]:
    shapes, types = {}, {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = dims_of(vi.type)
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


def static_shape(shape) -> bool:
    return shape is not None and all(d is not None for d in shape)


def shapes_by_running(model: onnx.ModelProto, where: str, names: list[str]) -> dict:
    """Shapes of `names` read off one onnxruntime run on zero inputs (a fallback)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    with_zero_weights(m)
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


def fold_constants(model: onnx.ModelProto, nodes, shapes: dict) -> set[str]:
    """Tensors whose value does not depend on any model input (`nodes` in topological order)."""
    const = {i.name for i in model.graph.initializer}
    const.add("")  # an omitted optional input
    for node in nodes:
        ins = [i for i in node.input]
        if node.op_type in SHAPE_ONLY_OPS and static_shape(shapes.get(node.input[0])):
            const.update(node.output)
        elif all(i in const for i in ins) and node.op_type not in {"RandomNormal", "RandomUniform", "Multinomial",
                                                                  "RandomNormalLike", "RandomUniformLike"}:
            const.update(node.output)
    const.discard("")
    return const
