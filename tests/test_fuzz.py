"""Fuzzing: mutated mapping-IR files and mutated ONNX models must only ever raise cimc's
own errors (CimcError and its subclasses), never a crash of another type.

CI runs a bounded number of cases; run longer with e.g.
    CIMC_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py
"""

import os

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cimc
from cimc.errors import CimcError
from cimc.frontend import import_onnx
from cimc.pipeline import parse_pipeline, run_pipeline
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


@pytest.mark.parametrize("bad", ["", "lower,", "lower{", "{}", "lower{x=}", "lower{=1}", ",,,", "duplicate{budget=-3}",
                                 "pack{time-limit=nan}", "lower;partition", "partition{grouped=1,grouped=2}"])
def test_bad_pipeline_texts_give_only_cimc_errors(bad):
    try:
        parse_pipeline(bad)
    except CimcError:
        pass
