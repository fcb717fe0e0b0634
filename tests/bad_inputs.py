"""The bad-input table: every kind of bad input a user can give, the command it is given
to, and what cimc must answer. Used by tests/test_bad_inputs.py; run it to print the table:

    .venv/bin/python tests/bad_inputs.py
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_builders as ob  # noqa: E402


def _save(path: Path, m: onnx.ModelProto) -> Path:
    onnx.save(m, path)
    return path


def _good(d: Path) -> Path:
    return _save(d / "good.onnx", ob.tiny_cnn(batch=1))


def _mapping(d: Path) -> list[str]:
    from cimc.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["compile", str(_good(d)), "--passes", "baseline", "-o", str(d / "good.cim")]) == 0
    return (d / "good.cim").read_text().splitlines()


def _edit_mapping(d: Path, name: str, edit) -> Path:
    lines = _mapping(d)
    edit(lines)
    p = d / name
    p.write_text("\n".join(lines) + "\n")
    return p


def _first(lines, word):
    return next(i for i, line in enumerate(lines) if word in line)


def _overlap(lines):
    places = [i for i, line in enumerate(lines) if "map.place" in line]
    a, b = lines[places[0]], lines[places[1]]
    lines[places[1]] = b.split("{", 1)[0] + "{" + a.split("{", 1)[1]


def _too_wide(lines):
    i = _first(lines, "map.place")
    lines[i] = lines[i].split("{", 1)[0] + "{at = [250, 250], tile = 0, xbar = 0}"


def _undefined(lines):
    i = _first(lines, "map.block")
    head, rest = lines[i].split("= map.block(", 1)
    lines[i] = head + "= map.block(%nowhere" + rest[rest.index(")"):]


def _syntax(lines):
    i = _first(lines, "nn.conv")
    lines[i] = lines[i].replace("(", "((", 1)


def _small_target(lines):
    lines[0] = lines[0].replace("xbar_rows = 256", "xbar_rows = 16")


def _no_weights(d):
    m = ob.model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 4)])
    return _save(d / "noweights.onnx", m)


def _unknown_op(d, with_weights):
    inits = [ob.weight("w", 4, 4)] if with_weights else []
    inputs = ["x", "w"] if with_weights else ["x"]
    nodes = [helper.make_node("FancyOp", inputs, ["h"], name="fancy", domain="com.example"),
             helper.make_node("MatMul", ["h", "w2"], ["y"], name="mm")]
    m = ob.model(nodes, [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 3)], inits + [ob.weight("w2", 4, 3)])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return _save(d / ("unknown_w.onnx" if with_weights else "unknown.onnx"), m)


def _dynamic(d):
    m = ob.tiny_cnn(batch="N")
    for dim in m.graph.input[0].type.tensor_type.shape.dim:
        dim.Clear()
        dim.dim_param = "D"
    return _save(d / "dynamic.onnx", m)


def _zero(d):
    m = ob.tiny_cnn(batch=1)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = 0
    return _save(d / "zero.onnx", m)


def _external(d):
    m = ob.tiny_cnn(batch=1)
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    return _save(d / "external.onnx", m)


def _target_file(d, text, name):
    p = d / name
    p.write_text(text)
    return p


def _write(d, name, data: bytes):
    p = d / name
    p.write_bytes(data)
    return p


# (what, argv builder(d) -> list, exit code, words the message must contain)
CASES = [
    ("missing model file", lambda d: ["compile", str(d / "missing.onnx")], 1, "no such file"),
    ("empty model file", lambda d: ["compile", str(_write(d, "empty.onnx", b""))], 1, "empty"),
    ("truncated ONNX", lambda d: ["compile", str(_write(d, "trunc.onnx", _good(d).read_bytes()[:300]))], 1,
     "truncated"),
    ("random bytes", lambda d: ["compile", str(_write(d, "random.onnx", bytes(np.random.default_rng(0).integers(
        0, 256, 2048, dtype=np.uint8))))], 1, ".onnx"),
    ("valid protobuf, not a model", lambda d: ["compile", str(_write(
        d, "tensor.onnx", numpy_helper.from_array(np.zeros((3, 3), np.float32), "w").SerializeToString()))], 1,
     "model"),
    ("model with no weight layers", lambda d: ["compile", str(_no_weights(d))], 1, "no weight layer"),
    ("unknown op without weights (mapped as digital, flagged)", lambda d: ["compile", str(_unknown_op(d, False)),
                                                                          "--passes", "baseline"], 0, ""),
    ("unknown op with weights", lambda d: ["compile", str(_unknown_op(d, True))], 1, "FancyOp"),
    ("dynamic shapes everywhere", lambda d: ["compile", str(_dynamic(d))], 1, "--input-shape"),
    ("zero-sized tensor", lambda d: ["compile", str(_zero(d))], 1, "no elements"),
    ("external data outside the model's folder", lambda d: ["compile", str(_external(d))], 1, "outside"),
    ("1x1 crossbar target", lambda d: ["compile", str(_good(d)), "--set", "xbar_rows=1", "--set", "xbar_cols=1"], 1,
     "columns"),
    ("negative target value", lambda d: ["compile", str(_good(d)), "--set", "tiles=-4"], 1, "tiles"),
    ("absurd target value", lambda d: ["compile", str(_good(d)), "--set", "adc_bits=4000"], 1, "adc_bits"),
    ("crossbar pools written wrong", lambda d: ["compile", str(_good(d)), "--set", "pools=64x64"], 1,
     "ROWSxCOLS*COUNT"),
    ("unknown device preset", lambda d: ["compile", str(_good(d)), "--set", "device=memristor-9000"], 1,
     "unknown device"),
    ("packing before partitioning", lambda d: ["compile", str(_good(d)), "--passes", "lower,pack,cost"], 1,
     "run 'partition' first"),
    ("negative pack slack", lambda d: ["compile", str(_good(d)), "--passes",
                                       "lower,partition,duplicate,pack{slack=-0.5},cost"], 1, "slack"),
    ("zero schedule chunks", lambda d: ["compile", str(_good(d)), "--passes",
                                        "lower,partition,place,schedule{chunks=0},cost"], 1, "chunks"),
    ("partition into a pool the target lacks", lambda d: ["compile", str(_good(d)), "--passes",
                                                          "lower,partition{pool=3},place,cost"], 1, "pool"),
    ("target file with an unknown key", lambda d: ["compile", str(_good(d)), "--target", str(_target_file(
        d, 'base = "rram-256"\nxbar_rowz = 128\n', "t1.toml"))], 1, "xbar_rowz"),
    ("target file with a wrong type", lambda d: ["compile", str(_good(d)), "--target", str(_target_file(
        d, 'base = "rram-256"\nxbar_rows = "many"\n', "t2.toml"))], 1, "xbar_rows"),
    ("target file that is not TOML", lambda d: ["compile", str(_good(d)), "--target", str(_target_file(
        d, "xbar_rows = = 3\n", "t3.toml"))], 1, "t3.toml"),
    ("mapping IR with a syntax error", lambda d: ["report", str(_edit_mapping(d, "syntax.cim", _syntax))], 1,
     "syntax.cim:"),
    ("mapping IR with an undefined value", lambda d: ["report", str(_edit_mapping(d, "undef.cim", _undefined))], 1,
     "nowhere"),
    ("mapping IR with overlapping blocks", lambda d: ["report", str(_edit_mapping(d, "overlap.cim", _overlap))], 1,
     "overlap"),
    ("mapping IR with a block past the crossbar edge", lambda d: ["report", str(_edit_mapping(
        d, "edge.cim", _too_wide))], 1, "past the edge"),
    ("mapping IR whose target does not match its blocks", lambda d: ["report", str(_edit_mapping(
        d, "target.cim", _small_target))], 1, "crossbar"),
    ("output over the input model", lambda d: ["compile", str(_good(d)), "-o", str(d / "good.onnx")], 1,
     "never overwrites"),
    ("eval with data that does not fit the model", lambda d: ["eval", str(_good(d)), "--data", "digits",
                                                             "--draws", "0"], 1, "per sample"),
    ("unknown command", lambda d: ["frobnicate"], 2, "usage"),
]


def run_case(argv_fn, d: Path) -> tuple[int, str]:
    from cimc.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv_fn(d))
        except SystemExit as e:  # argparse usage errors
            code = e.code
    return code, err.getvalue()


def table() -> str:
    rows = ["| input | command | exit | message |", "|---|---|---|---|"]
    for what, fn, _, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            argv = fn(d)
            code, err = run_case(lambda _d, a=argv: a, d)
        msg = err.strip().splitlines()[0] if err.strip() else "(compiles; op listed with known=false)"
        msg = msg.replace(str(d), "DIR").replace("|", "/")
        rows.append(f"| {what} | cimc {argv[0]} | {code} | {msg[:160]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(table())
