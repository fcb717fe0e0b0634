"""The bad-input table: every kind of bad input a user can give, the command it is given
to, and what cimc must answer. Used by tests/test_bad_inputs.py; run it to print the table:

    .venv/bin/python tests/bad_inputs.py
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
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


# ---- round two: outputs, special files, bounds, the reader, the checker, data, messages ------

def _fifo(d: Path, name: str) -> Path:
    p = d / name
    os.mkfifo(p)
    return p


def _chardev(d: Path, name: str, minor: int) -> Path:
    """A character device of our own (1, minor): 3 is null, 5 is zero. As root only; else a
    FIFO stands in (still not a regular file)."""
    p = d / name
    try:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except (PermissionError, AttributeError):
        os.mkfifo(p)
    return p


def _socket(d: Path, name: str) -> Path:
    import socket

    p = d / name
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    _KEEP.append(s)
    return p


_KEEP: list = []  # sockets stay bound while a case runs


def _link(d: Path, name: str, to) -> Path:
    p = d / name
    p.symlink_to(to)
    return p


def _previous(d: Path, name: str = "old.cim") -> Path:
    p = d / name
    p.write_text("previous output\n")
    return p


def _sparse(d: Path) -> Path:
    p = d / "huge.onnx"
    with open(p, "wb") as f:
        f.truncate(4 * (1 << 30) + 1)
    return p


def _density(d: Path) -> Path:
    p = d / "density.json"
    p.write_text('{"input_density": {}}\n')
    return p


def _npz(d: Path, name: str, **arrays) -> Path:
    p = d / name
    np.savez(p, **arrays)
    return p


def _bomb(d: Path) -> Path:
    """A small .npz whose directory says its two arrays hold 4.29 GB each uncompressed (a zip
    bomb's shape without its size on disk): the sizes are read before anything expands."""
    p = _npz(d, "bomb.npz", x=_digits_like()[0], y=_digits_like()[1])
    data = bytearray(p.read_bytes())
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:  # each central-directory entry: uncompressed size at +24
        data[at + 24:at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        at += 4
    p.write_bytes(bytes(data))
    return p


def _digits_like(n: int = 20):
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


def _fc_model(d: Path) -> Path:
    """A model for 8x8 grey images (the data cases): flatten, 64 -> 10."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"), helper.make_node("MatMul", ["f", "w"], ["y"], name="fc")]
    m = ob.model(nodes, [ob.tensor("x", 1, 1, 8, 8)], [ob.tensor("y", 1, 10)], [ob.weight("w", 64, 10)])
    return _save(d / "fc.onnx", m)


def _big_int_mapping(d, digits):
    def edit(lines):
        lines[0] = lines[0].replace("adc_bits = 8", "adc_bits = " + "9" * digits, 1)
    return _edit_mapping(d, f"int{digits}.cim", edit)


def _deep_mapping(d):
    def edit(lines):
        i = _first(lines, "nn.conv")
        lines[i] = lines[i].replace("{", "{deep = " + "[" * 100000 + "]" * 100000 + ", ", 1)
    return _edit_mapping(d, "deep.cim", edit)


def _overflow_mapping(d):
    def edit(lines):
        lines[0] = lines[0].replace("cell_read_fj = ", "cell_read_fj = 1e999, unused = ", 1)
    return _edit_mapping(d, "inf.cim", edit)


def _two_writers(d):
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="a"), helper.make_node("Sigmoid", ["x"], ["h"], name="b"),
             helper.make_node("MatMul", ["h", "w"], ["y"], name="mm")]
    return _save(d / "ssa.onnx", ob.model(nodes, [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 3)], [ob.weight("w", 4, 3)]))


def _future_opset(d):
    m = ob.tiny_cnn(batch=1)
    m.opset_import[0].version = 99
    return _save(d / "future.onnx", m)


def _custom_conv(d):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="notconv", domain="com.example", kernel_shape=[3, 3])]
    m = ob.model(nodes, [ob.tensor("x", 1, 3, 8, 8)], [ob.tensor("y", 1, 4, 6, 6)], [ob.weight("w", 4, 3, 3, 3)])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return _save(d / "customconv.onnx", m)


def _bad_reshape(d):
    shape = numpy_helper.from_array(np.array([1, 7], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Reshape", ["h", "shape"], ["y"], name="reshape")]
    m = ob.model(nodes, [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 7)], [ob.weight("w", 4, 6), shape])
    return _save(d / "reshape.onnx", m)


def _negative_dim(d):
    m = ob.tiny_cnn(batch=1)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -8
    return _save(d / "negdim.onnx", m)


def _escape_names(d):
    evil = "evil\x1b[31m\x1b]0;pwned\x07" + "\n" * 50 + "end"
    inputs = ["x", "w"]
    nodes = [helper.make_node("FancyOp", inputs, ["h"], name=evil, domain="com.example"),
             helper.make_node("MatMul", ["h", "w2"], ["y"], name="mm")]
    m = ob.model(nodes, [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 3)], [ob.weight("w", 4, 4), ob.weight("w2", 4, 3)])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return _save(d / "escape.onnx", m)


def _good_cim(d) -> Path:
    _mapping(d)
    return d / "good.cim"


def _in_sub(d: Path) -> Path:
    (d / "sub").mkdir(exist_ok=True)
    return d / "sub"


def _m(d):
    return str(_good(d))


NEW_CASES = [
    # 1. outputs: never destroy anything
    ("-o a character device", lambda d: ["compile", _m(d), "-o", str(_chardev(d, "nulldev", 3))], 1,
     "regular files"),
    ("-o a link to a character device", lambda d: ["compile", _m(d), "-o", str(_link(d, "out.cim",
                                                                                    _chardev(d, "nulldev", 3)))], 1,
     "regular files"),
    ("-o a FIFO (no hang)", lambda d: ["compile", _m(d), "-o", str(_fifo(d, "pipe.cim"))], 1, "FIFO"),
    ("--report a FIFO", lambda d: ["compile", _m(d), "--report", str(_fifo(d, "pipe.json"))], 1, "FIFO"),
    ("-o a socket", lambda d: ["compile", _m(d), "-o", str(_socket(d, "sock.cim"))], 1, "socket"),
    ("-o an existing folder", lambda d: ["compile", _m(d), "-o", str(_in_sub(d))], 1, "folder"),
    ("-o a dangling link", lambda d: ["compile", _m(d), "-o", str(_link(d, "dangling.cim", d / "nowhere.cim"))], 1,
     "dangling"),
    ("-o over the model through a link", lambda d: ["compile", _m(d), "-o", str(_link(d, "alias.onnx", d / "good.onnx"))],
     1, "never overwrites"),
    ("-o over the model through sub/..", lambda d: ["compile", _m(d), "-o", str(_in_sub(d) / ".." / "good.onnx")], 1,
     "never overwrites"),
    ("-o over the model through a linked folder", lambda d: ["compile", _m(d), "-o", str(_link(d, "here", d) / "good.onnx")],
     1, "never overwrites"),
    ("-o over the target file", lambda d: ["compile", _m(d), "--target", str(_target_file(
        d, 'base = "rram-256"\n', "t.toml")), "-o", str(d / "t.toml")], 1, "input of this command"),
    ("--report over the input-density file", lambda d: ["compile", _m(d), "--input-density", str(_density(d)),
                                                        "--report", str(d / "density.json")], 1,
     "input of this command"),
    ("eval --report over the data file", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "data.npz", x=_digits_like()[0], y=_digits_like()[1])), "--report", str(d / "data.npz")], 1,
     "input of this command"),
    ("-o and --report on one file", lambda d: ["compile", _m(d), "-o", str(d / "x.out"), "--report", str(d / "x.out")],
     1, "two different files"),
    ("-o and --report on one file through a link", lambda d: ["compile", _m(d), "-o", str(_previous(d, "x.out")),
                                                              "--report", str(_link(d, "y.out", d / "x.out"))], 1,
     "two different files"),
    ("-o into a folder that does not exist", lambda d: ["compile", _m(d), "-o", str(d / "no" / "such" / "out.cim")], 1,
     "does not exist"),
    ("-o under a file", lambda d: ["compile", _m(d), "-o", str(d / "good.onnx" / "out.cim")], 1, "Not a directory"),
    ("-o where nothing can be written", lambda d: ["compile", _m(d), "-o", "/proc/self/cimc-out.cim"], 1,
     "cannot write it"),
    ("opt -o over its input through a link", lambda d: ["opt", str(_good_cim(d)), "--passes", "cost", "-o",
                                                        str(_link(d, "l.cim", d / "good.cim"))], 1, "never overwrites"),
    ("report --report over its input", lambda d: ["report", str(_good_cim(d)), "--report", str(d / "good.cim")], 1,
     "never overwrites"),
    ("failed compile leaves the previous output", lambda d: ["compile", _m(d), "--budget", "0", "-o",
                                                             str(_previous(d))], 1, "budget"),
    # 2. inputs: read only what is sane
    ("model is a FIFO (no hang)", lambda d: ["compile", str(_fifo(d, "m.onnx"))], 1, "FIFO"),
    ("model is a character device (/dev/zero)", lambda d: ["compile", str(_chardev(d, "zero.onnx", 5))], 1,
     "not a regular file"),
    ("model is a folder", lambda d: ["compile", str(_in_sub(d))], 1, "folder"),
    ("model is a sparse 4 GB file", lambda d: ["compile", str(_sparse(d))], 1, "4.29 GB"),
    ("mapping file is a FIFO", lambda d: ["report", str(_fifo(d, "m.cim"))], 1, "FIFO"),
    ("target file is a FIFO", lambda d: ["compile", _m(d), "--target", str(_fifo(d, "t.toml"))], 1, "FIFO"),
    ("target .toml is a folder", lambda d: ["compile", _m(d), "--target", str(_in_sub(d).rename(d / "dir.toml"))], 1,
     "folder"),
    ("input-density file is a FIFO", lambda d: ["compile", _m(d), "--input-density", str(_fifo(d, "d.json"))], 1,
     "FIFO"),
    ("data file is a FIFO", lambda d: ["eval", str(_fc_model(d)), "--data", str(_fifo(d, "x.npz"))], 1, "FIFO"),
    ("npz whose arrays expand to 8.6 GB", lambda d: ["eval", str(_fc_model(d)), "--data", str(_bomb(d))], 1,
     "expand to 8.59 GB"),
    ("integer over 64 bits in mapping text", lambda d: ["report", str(_big_int_mapping(d, 20))], 1, "64 bits"),
    ("400-digit integer in mapping text", lambda d: ["report", str(_big_int_mapping(d, 400))], 1, "400 digits"),
    ("number that overflows in mapping text", lambda d: ["report", str(_overflow_mapping(d))], 1, "not finite"),
    ("lists nested 100,000 deep", lambda d: ["report", str(_deep_mapping(d))], 1, "nested too deep"),
    ("target value 1e308", lambda d: ["compile", _m(d), "--set", "xbar_read_ns=1e308"], 1, "absurd"),
    ("absurd tile count", lambda d: ["compile", _m(d), "--set", "tiles=1000000000"], 1, "absurd"),
    ("schedule inferences too many to hold", lambda d: ["compile", _m(d), "--passes",
                                                        "lower,partition,place,schedule{inferences=1000000000},cost"], 1,
     "inferences"),
    ("option integer beyond any use", lambda d: ["compile", _m(d), "--passes",
                                                 "lower,partition,duplicate{budget=99999999999999999999},cost"], 1,
     "out of range"),
    ("solver time limit NaN", lambda d: ["compile", _m(d), "--passes",
                                         "lower,partition,duplicate{time-limit=nan},pack,cost"], 1, "finite number"),
    ("an option given twice", lambda d: ["compile", _m(d), "--passes",
                                         "lower,partition,duplicate{budget=8,budget=9},cost"], 1, "given twice"),
    ("input shape beyond int64", lambda d: ["compile", _m(d), "--input-shape", "x=1,99999999999999999999,8,8"], 1,
     "--input-shape"),
    # 4. the frontend believes the ONNX checker
    ("two nodes write one tensor", lambda d: ["compile", str(_two_writers(d))], 1, "onnx.checker"),
    ("opset newer than onnx knows", lambda d: ["compile", str(_future_opset(d))], 1, "opset 99"),
    ("a com.example Conv with a weight", lambda d: ["compile", str(_custom_conv(d))], 1, "com.example.Conv"),
    ("Reshape to another element count", lambda d: ["compile", str(_bad_reshape(d))], 1, "keeps the element count"),
    ("negative input dimension", lambda d: ["compile", str(_negative_dim(d))], 1, "negative dimension"),
    # 5. cimc eval checks its data
    ("labels of shape [N, 1]", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "col.npz", x=_digits_like()[0], y=_digits_like()[1][:, None]))], 1, "y.ravel()"),
    ("NaN inputs", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "nan.npz", x=np.full((20, 1, 8, 8), np.nan, np.float32), y=_digits_like()[1]))], 1, "NaN"),
    ("labels past the model's classes", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "cls.npz", x=_digits_like()[0], y=np.arange(20)))], 1, "10 outputs"),
    ("string inputs", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "str.npz", x=np.array(["a"] * 20), y=_digits_like()[1]))], 1, "numbers"),
    ("x and y of different lengths", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "len.npz", x=_digits_like()[0], y=_digits_like(10)[1]))], 1, "must match"),
    ("negative labels", lambda d: ["eval", str(_fc_model(d)), "--data", str(_npz(
        d, "neg.npz", x=_digits_like()[0], y=-np.ones(20, np.int64)))], 1, "label -1"),
    # 6. messages are safe to print
    ("node name with escape codes and 50 newlines", lambda d: ["compile", str(_escape_names(d))], 1, "FancyOp"),
]
CASES += NEW_CASES


def run_case(argv_fn, d: Path, argv: list | None = None) -> tuple[int, str]:
    """Run one case in this process (bounded: a hang is an alarm after 120 s, not a stuck test)."""
    from cimc.cli import main

    argv = argv if argv is not None else argv_fn(d)
    err, out = io.StringIO(), io.StringIO()

    def hung(signum, frame):
        raise TimeoutError(f"cimc {' '.join(argv)[:200]} did not return within 120 s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse usage errors
                code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for sock in _KEEP:
            sock.close()
        _KEEP.clear()
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


def isolated(names: list[str] | None = None, timeout_s: float = 30.0, memory_gb: float = 4.0) -> str:
    """The table with every case in a child process of its own, bounded in time and memory, so
    that code which hangs on a FIFO or reads /dev/zero forever can be measured too (the 'before'
    column of a comparison: run this file with PYTHONPATH set to another checkout's tree)."""
    import resource
    import subprocess
    import cimc

    rows = [f"cimc from {Path(cimc.__file__).resolve().parent.parent}", "",
            "| input | exit | message |", "|---|---|---|"]
    for what, fn, code, words in CASES:
        if names and what not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            argv = fn(d)
            snap = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and not p.is_symlink()
                    and p.stat().st_size < (1 << 24)}
            kinds = {p: stat.S_IFMT(p.lstat().st_mode) for p in d.rglob("*")}

            def limits():
                resource.setrlimit(resource.RLIMIT_AS, (int(memory_gb * (1 << 30)),) * 2)

            try:
                p = subprocess.run([sys.executable, "-c", "import sys; from cimc.cli import main; "
                                    "sys.exit(main(sys.argv[1:]))", *argv], capture_output=True, text=True,
                                   timeout=timeout_s, preexec_fn=limits, stdin=subprocess.DEVNULL, cwd=d)
                got, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired:
                got, err = "hangs", f"still running after {timeout_s:g} s"
            changed = [q.name for q, data in snap.items() if not q.exists() or q.is_symlink()
                       or (q.is_file() and q.read_bytes() != data)]
            changed += [q.name for q, k in kinds.items() if (q.exists() or q.is_symlink())
                        and stat.S_IFMT(q.lstat().st_mode) != k]
        lines = err.strip().splitlines()
        msg = lines[-1] if lines and "Traceback" in err else (lines[0] if lines else "")
        if "MemoryError" in err or got == -9:
            msg = "ran out of memory"
        msg = msg.replace(str(d), "DIR").replace("|", "/")[:110]
        damage = f" **changed: {', '.join(sorted(set(changed)))}**" if changed else ""
        ok = got == code and (not code or words in err) and "Traceback" not in err and not changed \
            and "\x1b" not in err and len(err.strip().splitlines()) <= 4
        rows.append(f"| {what} | {got} {'ok' if ok else 'WRONG'} | {files_safe(msg)}{damage} |")
    return "\n".join(rows)


def files_safe(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if sys.argv[1:2] == ["--isolated"]:
        print(isolated([n for n in sys.argv[2:]] or [c[0] for c in NEW_CASES]))
    else:
        print(table())
