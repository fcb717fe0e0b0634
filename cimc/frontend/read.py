"""Reading a model: a path, bytes or ModelProto, decoded with clear errors; external data refused
before it is opened."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from cimc import files
from cimc.errors import CimcError, ModelError


def read_model(source, what: str | None = None) -> tuple[onnx.ModelProto, str, Path | None]:
    """A ModelProto from a path, bytes or a ModelProto, with a display name and its folder."""
    if isinstance(source, onnx.ModelProto):
        return source, what or (source.graph.name or "model"), None
    if isinstance(source, (bytes, bytearray)):
        return decode_model(bytes(source), what or "<bytes>"), what or "model", None
    path = Path(source)
    try:
        data = files.read_bytes(path, "model", files.MODEL_MAX_BYTES,
                                missing=f"{path}: no such file. Give the path of an .onnx model.")
    except CimcError as e:
        raise ModelError(str(e)) from None
    if not data:
        raise ModelError(f"{path}: the file is empty. Export the model again (e.g. torch.onnx.export).")
    model = decode_model(data, str(path))
    check_external_data(model, path)
    return model, path.stem, path.parent


def decode_model(data: bytes, where: str) -> onnx.ModelProto:
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


def check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Refuse external-data references that leave the model's folder."""
    folder = path.parent.resolve()
    for t in all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (folder / loc).resolve()
        if os.path.isabs(loc) or ".." in Path(loc).parts or folder not in target.parents:
            raise ModelError(f"{path}: tensor '{t.name}' keeps its data at '{loc}', outside the model's folder; "
                             "cimc refuses such references. Save the model with its data beside it.")


def all_tensors(model: onnx.ModelProto):
    yield from model.graph.initializer
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
