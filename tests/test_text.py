"""Mapping-IR text: exact round trip (hypothesis) and parse errors with positions."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cimc
from cimc.errors import MappingSyntaxError
from cimc.ir import Module, Op, freeze_attrs
from cimc.ops import OPS
from cimc.targets import load_target

NAME = st.from_regex(r"[A-Za-z0-9_.$\-]{1,12}", fullmatch=True)
KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
SCALAR = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.booleans(),
)
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=8)
ATTRS = st.dictionaries(KEY, VALUE, max_size=5).map(freeze_attrs)
KIND = st.one_of(st.sampled_from(sorted(OPS)), st.from_regex(r"[a-z_]{1,6}\.[a-z_]{1,6}", fullmatch=True))
BASE_TARGET = load_target("rram-256")


@st.composite
def modules(draw):
    names = draw(st.lists(NAME, unique=True, max_size=8))
    ops, defined = [], []
    for n in names + [None] * draw(st.integers(0, 3)):
        operands = tuple(draw(st.lists(st.sampled_from(defined), max_size=3))) if defined else ()
        ops.append(Op(draw(KIND), n, operands, draw(ATTRS)))
        if n is not None:
            defined.append(n)
    pools = draw(st.lists(st.tuples(st.integers(8, 512), st.integers(16, 512), st.integers(1, 64)), max_size=2))
    target = BASE_TARGET.replace(
        xbar_rows=draw(st.integers(8, 1024)), xbar_read_ns=draw(st.floats(0, 1e6, allow_nan=False)),
        description=draw(st.text(max_size=20)), rows_per_read=draw(st.integers(0, 64)),
        noc=draw(st.sampled_from(["mesh", "bus"])), device=draw(st.sampled_from(["", "rram-1bit", "rram-2bit"])),
        pools=", ".join(f"{r}x{c}*{n}" for r, c, n in pools), variation_sigma=draw(st.floats(0, 1)))
    return Module(draw(NAME), target, tuple(ops), draw(ATTRS))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_parse_print_round_trip_on_random_modules(m):
    text = cimc.print_module(m)
    back = cimc.parse(text, verify=False)
    assert back == m
    assert cimc.print_module(back) == text


@pytest.mark.parametrize("passes", ["lower", "lower,partition", "lower,partition{grouped=serial},place",
                                    "baseline"])
def test_round_trip_on_compiled_models(mobilenet_path, passes):
    r = cimc.compile(mobilenet_path, "rram-256", passes)
    text = r.text()
    m = cimc.parse(text)
    assert m == r.module
    assert cimc.print_module(m) == text


def _error(text):
    with pytest.raises(MappingSyntaxError) as e:
        cimc.parse(text, filename="m.cim")
    return str(e.value)


GOOD = cimc.print_module(Module("m", BASE_TARGET, (Op.make("nn.input", "x", (), shape=(1, 4), name="x"),
                                                    Op.make("nn.output", None, ["x"]))))


def test_good_text_parses():
    assert cimc.parse(GOOD).name == "m"


def test_syntax_error_has_line_column_and_caret():
    bad = GOOD.replace("nn.output(%x)", "nn.output(%x %x)")
    msg = _error(bad)
    assert "expected ')' or ','" in msg or "expected ',' or ')'" in msg
    line = [i for i, l in enumerate(bad.splitlines(), 1) if "nn.output" in l][0]
    assert msg.startswith(f"m.cim:{line}:")
    assert "nn.output(%x" in msg and "^" in msg


def test_truncated_text():
    assert "ends early" in _error(GOOD[: len(GOOD) // 2 + 5])


def test_bad_character():
    msg = _error(GOOD.replace("nn.output(%x)", "nn.output(%x) ?"))
    assert "m.cim:" in msg and "^" in msg


def test_undefined_value_reported_at_its_line():
    bad = GOOD.replace("nn.output(%x)", "nn.output(%y)")
    msg = _error(bad)
    assert "%y is not defined" in msg
    line = [i for i, l in enumerate(bad.splitlines(), 1) if "nn.output" in l][0]
    assert msg.startswith(f"m.cim:{line}:")


def test_bad_target_in_header():
    msg = _error(GOOD.replace("xbar_rows = 256", "xbar_rows = -3"))
    assert "xbar_rows" in msg and "m.cim:1:" in msg


def test_duplicate_attribute():
    msg = _error(GOOD.replace('name = "x"', 'name = "x", name = "y"'))
    assert "given twice" in msg


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.cim").write_text("")
    with pytest.raises(cimc.CimcError, match="empty"):
        cimc.parse_file(tmp_path / "e.cim")
    with pytest.raises(cimc.CimcError, match="no such"):
        cimc.parse_file(tmp_path / "nope.cim")


def test_integers_beyond_64_bits_are_refused_in_the_ir_and_the_text():
    with pytest.raises(ValueError, match="64 bits"):
        Op.make("nn.input", "x", (), shape=(1, 2 ** 63))
    good = Op.make("nn.input", "x", (), shape=(1, 2 ** 63 - 1))
    assert good["shape"][1] == 2 ** 63 - 1
