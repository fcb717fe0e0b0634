"""The ONNX graph's structure: names the mapping-IR text can hold, a topological order, the checks
every graph must pass."""

from __future__ import annotations

import heapq
import re

import onnx

from cimc.errors import ModelError

UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


NAME_CHARS = 200


def clean_names(model: onnx.ModelProto) -> None:
    """Rename, in place and consistently, every node and tensor whose name holds control
    characters (terminal escape codes, newlines) or is longer than NAME_CHARS: such names reach
    messages and the mapping text. `model` is cimc's own copy."""
    g = model.graph

    def bad(name: str) -> bool:
        return len(name) > NAME_CHARS or bool(UNPRINTABLE.search(name))

    renamed: dict[str, str] = {}

    def clean(name: str) -> str:
        if not name or not bad(name):
            return name
        if name not in renamed:
            text = UNPRINTABLE.sub("?", name)
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


def toposort(model: onnx.ModelProto, where: str) -> list:
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


def check_graph(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
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
                nodes = toposort(ordered, where)
                del ordered.graph.node[:]
                ordered.graph.node.extend(nodes)
                return check_graph(ordered, where)
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


NAME_BAD = re.compile(r"[^A-Za-z0-9_.$\-]")


def sanitize(name: str) -> str:
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
    return NAME_BAD.sub("_", name).strip("_") or "v"
