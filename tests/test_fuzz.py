"""Fuzzing: mutated mapping-IR files and mutated ONNX models must only ever raise cimc's
own errors (CimcError and its subclasses), never a crash of another type.

CI runs a bounded number of cases; run longer with e.g.
    CIMC_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py
"""

import os
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cimc
from cimc.errors import CimcError, PipelineError
from cimc.frontend import import_onnx
from cimc.pipeline import parse_pipeline, print_pipeline, run_pipeline
from cimc.targets import load_target
from cimc.verify import verify

from onnx_builders import tiny_cnn

EXAMPLES = int(os.environ.get("CIMC_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TARGET = load_target("rram-256")


def _mapping_text() -> str:
    return cimc.compile(tiny_cnn(batch=1), "rram-256", "full").text()


SEED_TEXT = _mapping_text()
SEED_LINES = SEED_TEXT.splitlines()
TOKENS = ["%", "@", "{", "}", "(", ")", "[", "]", ",", "=", '"', "-1", "0", "1e999", "nan", "true", "map.block",
          "map.place", "nn.conv", "999999999999", "copy", "rows", "at", "xbar", "tile", "\n", " ", "\\", "#"]


@st.composite
def mutated_text(draw):
    lines = list(SEED_LINES)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "number", "truncate"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "token":
            line = lines[i]
            k = draw(st.integers(0, len(line)))
            lines[i] = line[:k] + draw(st.sampled_from(TOKENS)) + line[k + draw(st.integers(0, 3)):]
        elif kind == "number":
            digits = [k for k, c in enumerate(lines[i]) if c.isdigit()]
            if digits:
                k = draw(st.sampled_from(digits))
                lines[i] = lines[i][:k] + str(draw(st.integers(-5, 10**6))) + lines[i][k + 1:]
        else:
            lines = lines[: i + 1]
    return "\n".join(lines) + "\n"


@FUZZ
@given(mutated_text())
def test_mutated_mapping_text_gives_only_cimc_errors(text):
    try:
        module = cimc.parse(text, "fuzz.cim")
        verify(module)
        cimc.report(module)
    except CimcError:
        pass


SEED_MODEL = tiny_cnn(batch=1)
SEED_BYTES = SEED_MODEL.SerializeToString()


@st.composite
def mutated_model(draw):
    m = onnx.ModelProto()
    m.CopyFrom(SEED_MODEL)
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["dims", "attr", "drop_node", "drop_init", "rename", "optype", "opset",
                                     "input_dim"]))
        if kind == "dims" and g.initializer:
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            if t.dims:
                k = draw(st.integers(0, len(t.dims) - 1))
                t.dims[k] = draw(st.integers(0, 70))
        elif kind == "attr" and g.node:
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            for a in n.attribute:
                if a.ints:
                    a.ints[draw(st.integers(0, len(a.ints) - 1))] = draw(st.integers(-3, 40))
                elif a.type == onnx.AttributeProto.INT:
                    a.i = draw(st.integers(-3, 40))
        elif kind == "drop_node" and len(g.node) > 1:
            del g.node[draw(st.integers(0, len(g.node) - 1))]
        elif kind == "drop_init" and g.initializer:
            del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        elif kind == "rename" and g.node:
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            if n.input:
                n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(["", "nope", "x", "w1"]))
        elif kind == "optype" and g.node:
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            n.op_type = draw(st.sampled_from(["Conv", "Gemm", "MatMul", "Relu", "Frob", "LSTM", "Loop", "Add"]))
        elif kind == "opset":
            m.opset_import[0].version = draw(st.integers(1, 30))
        elif kind == "input_dim" and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                d = dims[draw(st.integers(0, len(dims) - 1))]
                choice = draw(st.integers(-2, 64))
                if choice < 0:
                    d.dim_param = "N"
                else:
                    d.dim_value = choice
    return m


@FUZZ
@given(mutated_model())
def test_mutated_models_give_only_cimc_errors(model):
    try:
        module = import_onnx(model, TARGET)
        run_pipeline(module, parse_pipeline("baseline"))
    except CimcError:
        pass


@FUZZ
@given(st.binary(max_size=64), st.integers(0, len(SEED_BYTES)), st.integers(0, 64))
def test_byte_mutated_models_give_only_cimc_errors(junk, at, cut):
    data = SEED_BYTES[:at] + junk + SEED_BYTES[at + cut:]
    try:
        import_onnx(data, TARGET)
    except CimcError:
        pass


@pytest.mark.parametrize("bad, column", [
    ("", None), ("lower,", 7), ("lower{", 7), ("{}", 1), ("lower{x=}", 9), ("lower{=1}", 7), (",,,", 1),
    ("duplicate{budget=-3}", 1), ("pack{time-limit=nan}", 17), ("pack{time-limit=inf}", 17), ("lower;partition", 6),
    ("partition{grouped=1,grouped=2}", 21), ("partition{grouped=1,grouped=2}", 21), ("pack{slack=0.5,}", 16),
    ("lower,,partition", 7), ("pack{max-blocks=1.5}", 17), ("duplicate{compact=maybe}", 19), ("nosuch", 1),
    ("pack{max_blocks=1,max-blocks=2}", 19), ("lower partition", 7)])
def test_bad_pipeline_texts_are_refused_at_their_column(bad, column):
    with pytest.raises(PipelineError) as e:
        parse_pipeline(bad)
    if column is not None:
        assert f"column {column}:" in str(e.value)


@given(st.text(alphabet="lowerpackdup{}=,-_ 0123456789.", max_size=30))
def test_random_pipeline_texts_parse_or_are_refused(text):
    try:
        passes = parse_pipeline(text)
    except PipelineError:
        return
    assert passes and parse_pipeline(print_pipeline(passes)) == passes  # what it accepts prints back


# ---- output paths and signals -----------------------------------------------------------------

OUTPUT_KINDS = ["new", "existing file", "link to file", "link to folder", "folder", "fifo", "dangling link",
                "missing folder", "the model", "link to the model", "model via sub/..", "stdout"]


def _make_output(d, kind, model):
    import os as _os

    p = d / "out.cim"
    if kind == "existing file":
        p.write_text("previous\n")
    elif kind == "link to file":
        (d / "real.cim").write_text("previous\n")
        p.symlink_to(d / "real.cim")
    elif kind == "link to folder":
        (d / "adir").mkdir()
        p.symlink_to(d / "adir")
    elif kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        _os.mkfifo(p)
    elif kind == "dangling link":
        p.symlink_to(d / "nothing")
    elif kind == "missing folder":
        p = d / "none" / "out.cim"
    elif kind == "the model":
        p = model
    elif kind == "link to the model":
        p.symlink_to(model)
    elif kind == "model via sub/..":
        (d / "sub").mkdir()
        p = d / "sub" / ".." / model.name
    elif kind == "stdout":
        p = "-"
    return p


@settings(max_examples=max(24, EXAMPLES // 5), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(out_kind=st.sampled_from(OUTPUT_KINDS), report_kind=st.sampled_from(OUTPUT_KINDS + ["none"]))
def test_outputs_of_any_kind_damage_nothing(tmp_path_factory, out_kind, report_kind):
    """Whatever -o and --report name, cimc either writes regular files (links kept, pointing
    where they did) or refuses with one message; the model and every other file are unchanged,
    no temporary file is left."""
    import contextlib
    import hashlib
    import io
    import stat as _stat

    from cimc.cli import main

    d = tmp_path_factory.mktemp("out")
    model = d / "model.onnx"
    onnx.save(tiny_cnn(batch=1), model)
    model_hash = hashlib.sha256(model.read_bytes()).hexdigest()
    out = _make_output(d, out_kind, model)
    rd = d / "r"
    rd.mkdir()
    report = None if report_kind == "none" else _make_output(rd, report_kind, model)
    kinds_before = {p: p.lstat().st_mode for p in d.rglob("*")}
    args = ["compile", str(model), "--passes", "baseline", "-o", str(out)] + (["--report", str(report)] if report else [])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    assert code in (0, 1), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
    assert hashlib.sha256(model.read_bytes()).hexdigest() == model_hash
    for p, mode in kinds_before.items():  # nothing changed kind: links stay links, FIFOs FIFOs
        assert p.exists() or p.is_symlink(), p
        assert _stat.S_IFMT(p.lstat().st_mode) == _stat.S_IFMT(mode), p
    assert not [p for p in d.rglob(".*.tmp")]
    if code == 0 and str(out) != "-":
        assert Path(os.path.realpath(out)).is_file() and Path(out).read_text().startswith("module @")


def test_sigterm_during_a_compile_leaves_the_previous_output(tmp_path):
    """SIGTERM (and SIGHUP) at any moment of a compile: exit 143 (129) with a message, or done;
    the previous output either intact or wholly replaced, no temporary file."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import zoo

    out = tmp_path / "r.cim"
    for delay, sig in ((0.5, signal.SIGTERM), (1.5, signal.SIGTERM), (1.0, signal.SIGHUP), (3.0, signal.SIGTERM)):
        out.write_text("previous\n")
        p = subprocess.Popen([sys.executable, "-m", "cimc", "compile", str(zoo("resnet50")), "--target", "rram-256",
                              "-o", str(out), "--report", str(tmp_path / "r.json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in
                                                 (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)])
        time.sleep(delay)
        p.send_signal(sig)
        _, err = p.communicate(timeout=300)
        # -sig: the signal came before cimc's handler was set (the imports) or after it was
        # removed (shutdown, the output written): the default action ended the process
        assert p.returncode in (0, 128 + sig, -sig), err
        text = out.read_text()
        whole = text == "previous\n" or (text.startswith("module @") and text.endswith("}\n"))
        assert whole, text[-200:]
        if p.returncode == 128 + sig:  # stopped in the middle of the work: nothing replaced
            assert "stopped by" in err and "Traceback" not in err and text == "previous\n"
        if p.returncode == 0:
            assert text.startswith("module @")
        assert not list(tmp_path.glob(".*.tmp"))
