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

import io
import warnings
from pathlib import Path

import onnx

from cimc.errors import ModelError
from cimc.frontend.canonical import canonical_order
from cimc.frontend.graph import check_graph, clean_names, sanitize, toposort
from cimc.frontend.lower import Graph, check_arity, lower_node
from cimc.frontend.read import read_model
from cimc.frontend.shapes import (
    collect_shapes,
    fix_inputs,
    fold_constants,
    infer_shapes,
    opset_of,
    shapes_by_running,
    shapes_only,
    static_shape,
)
from cimc.frontend.tables import ALIAS_OPS
from cimc.ir import Module, Op, freeze_attrs
from cimc.targets import Target


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
    if opset_of(model) < 7:
        model = check_graph(model, where)
        try:
            model = onnx.version_converter.convert_version(model, 9)
        except Exception as e:  # the converter raises bare RuntimeErrors
            raise ModelError(f"{where}: opset {opset_of(model)} is older than 7 and onnx's version converter "
                             f"could not upgrade it ({str(e).splitlines()[0]}). Re-export with opset 7 or newer.") from None
    model = check_graph(model, where)
    if opset_of(model) >= 7:
        model = shapes_only(model)
    clean_names(model)
    fix_inputs(model, where, batch, dict(input_shapes or {}))
    model = infer_shapes(model, where)
    shapes, types = collect_shapes(model)
    nodes = toposort(model, where)
    constants = fold_constants(model, nodes, shapes)
    consumed = {i for n in nodes for i in n.input} | {o.name for o in model.graph.output}
    needed = [o for n in nodes if not all(o in constants for o in n.output) for o in list(n.input) + list(n.output)
              if o and o in consumed and not static_shape(shapes.get(o))]
    if needed:
        shapes.update(shapes_by_running(model, where, sorted(set(needed))))
    graph = Graph(model, shapes, types, constants, consumed)
    return _build(graph, nodes, target, sanitize(name or stem or model.graph.name), where)


def _build(g: Graph, nodes, target: Target, module_name: str, where: str) -> Module:
    ops: list[Op] = []
    alias: dict[str, str] = {}
    used_names: set[str] = set()

    def fresh(raw: str) -> str:
        base = sanitize(raw)
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
        check_arity(node, g, where, label)
        made = lower_node(node, g, result, operands, where, label)
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
