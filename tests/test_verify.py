"""The verifier: structure first, then per-op rules, then whole-mapping rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cimc
from cimc.errors import VerifyError
from cimc.ir import Op
from cimc.verify import verify

import onnx_builders as ob


@pytest.fixture(scope="module")
def placed():
    return cimc.compile(ob.tiny_cnn(), "rram-128", "lower,partition,place", xbar_rows=16, xbar_cols=32).module


def _replace(module, index, op):
    ops = list(module.ops)
    ops[index] = op
    return module.with_ops(ops)


def _index(module, pred):
    return next(i for i, op in enumerate(module.ops) if pred(op))


def test_compiled_module_verifies(placed):
    assert verify(placed) is placed


def test_unknown_kind(placed):
    m = _replace(placed, 0, Op("nn.frobnicate", "x", (), placed.ops[0].attrs))
    with pytest.raises(VerifyError, match="unknown op kind 'nn.frobnicate'"):
        verify(m)


def test_operand_used_before_definition(placed):
    ops = list(placed.ops)
    ops[0], ops[1] = ops[1], ops[0]
    with pytest.raises(VerifyError, match="not defined by an earlier op"):
        verify(placed.with_ops(ops))


def test_duplicate_name(placed):
    i = _index(placed, lambda op: op.kind == "nn.act")
    op = placed.ops[i]
    m = _replace(placed, i, Op(op.kind, "conv1", op.operands, op.attrs))
    with pytest.raises(VerifyError, match="defined twice"):
        verify(m)


def test_wrong_attribute_type_and_missing_and_unknown(placed):
    i = _index(placed, lambda op: op.kind == "nn.conv")
    op = placed.ops[i]
    with pytest.raises(VerifyError, match="'groups' must be an integer"):
        verify(_replace(placed, i, op.with_attrs(groups="1")))
    with pytest.raises(VerifyError, match="missing attribute 'weight'"):
        verify(_replace(placed, i, op.with_attrs(weight=None)))
    with pytest.raises(VerifyError, match="unknown attribute 'colour'"):
        verify(_replace(placed, i, op.with_attrs(colour="red")))


def test_groups_must_divide_channels(placed):
    i = _index(placed, lambda op: op.kind == "nn.conv")
    with pytest.raises(VerifyError, match="must divide"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(groups=5)))


def test_block_past_matrix_edge(placed):
    i = _index(placed, lambda op: op.kind == "map.block")
    with pytest.raises(VerifyError, match="runs past"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(rows=(0, 1000))))


def test_block_bigger_than_crossbar(placed):
    # conv1 is 27x8: 27 rows cannot fit a 16-row crossbar
    i = _index(placed, lambda op: op.kind == "map.block")
    with pytest.raises(VerifyError, match="more than a 16 x 32"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(rows=(0, 27))))


def test_lanes_must_fit_and_need_the_diagonal_layout(placed):
    i = _index(placed, lambda op: op.kind == "map.block")
    with pytest.raises(VerifyError, match="lanes = 0"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(lanes=0)))
    with pytest.raises(VerifyError, match="unless the layout is diag"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(lanes=2, layout="serial")))
    with pytest.raises(VerifyError, match="more than a 16 x 32"):  # 9 replicas of 8+ rows
        verify(_replace(placed, i, placed.ops[i].with_attrs(lanes=9)))


def test_blocks_must_cover_the_matrix(placed):
    i = _index(placed, lambda op: op.kind == "map.block")
    ops = list(placed.ops)
    block = ops[i]
    ops = [op for op in ops if op is not block and not (op.kind == "map.place" and op.operands == (block.result,))]
    with pytest.raises(VerifyError, match="cover"):
        verify(placed.with_ops(ops))


def test_overlapping_blocks_of_one_copy(placed):
    blocks = [i for i, op in enumerate(placed.ops) if op.kind == "map.block" and op.operands[0] == "conv1"]
    a = placed.ops[blocks[0]]
    m = _replace(placed, blocks[1], placed.ops[blocks[1]].with_attrs(cols=a["cols"], rows=a["rows"]))
    with pytest.raises(VerifyError, match="overlap"):
        verify(m)


def test_overlapping_placements(placed):
    places = [i for i, op in enumerate(placed.ops) if op.kind == "map.place"]
    first = placed.ops[places[0]]
    m = _replace(placed, places[1], placed.ops[places[1]].with_attrs(tile=first["tile"], xbar=first["xbar"]))
    with pytest.raises(VerifyError, match="overlap in crossbar"):
        verify(m)


def test_placement_past_crossbar_edge(placed):
    i = _index(placed, lambda op: op.kind == "map.place")
    with pytest.raises(VerifyError, match="past the edge"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(at=(10, 0))))


def test_placement_outside_tile(placed):
    i = _index(placed, lambda op: op.kind == "map.place")
    with pytest.raises(VerifyError, match="outside a tile"):
        verify(_replace(placed, i, placed.ops[i].with_attrs(xbar=10**6)))


def test_partly_placed_mapping(placed):
    i = _index(placed, lambda op: op.kind == "map.place")
    with pytest.raises(VerifyError, match="not placed"):
        verify(placed.with_ops(placed.ops[:i] + placed.ops[i + 1:]))


def test_target_that_does_not_match_its_blocks(placed):
    # the same mapping checked against a target with smaller crossbars
    small = placed.with_target(placed.target.replace(xbar_rows=8))
    with pytest.raises(VerifyError, match="crossbar"):
        verify(small)


def test_copies_numbered_from_zero(placed):
    i = _index(placed, lambda op: op.kind == "map.block" and op.operands[0] == "fc")
    fc_blocks = [j for j, op in enumerate(placed.ops) if op.kind == "map.block" and op.operands[0] == "fc"]
    ops = list(placed.ops)
    for j in fc_blocks:
        ops[j] = ops[j].with_attrs(copy=1)
    assert i in fc_blocks
    with pytest.raises(VerifyError, match="copies are numbered"):
        verify(placed.with_ops(ops))


class _DropBlock:
    """A broken pass: loses one block of the mapping."""
    name = "drop-block"

    def run(self, module):
        i = _index(module, lambda op: op.kind == "map.block")
        return module.with_ops(module.ops[:i] + module.ops[i + 1:])


def test_the_error_names_the_pass_that_broke_the_mapping(placed):
    from cimc.pipeline import parse_pipeline, run_pipeline

    src = cimc.compile(ob.tiny_cnn(), "rram-128", "lower", xbar_rows=16, xbar_cols=32).module
    passes = parse_pipeline("partition") + [_DropBlock()] + parse_pipeline("place,cost")
    with pytest.raises(VerifyError, match=r"after pass 'drop-block' \(run after: lower,partition\)"):
        run_pipeline(src, passes)
    run_pipeline(src, parse_pipeline("partition,place,cost"))  # the same without it holds


_box = st.tuples(*[st.integers(0, 6)] * 4).map(lambda v: (min(v[0], v[1]), max(v[0], v[1]) + 1,
                                                          min(v[2], v[3]), max(v[2], v[3]) + 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(_box, min_size=0, max_size=12))
def test_few_box_overlap_test_agrees_with_the_array_test(boxes):
    """The pure-Python test for a few boxes finds an overlap exactly when a brute-force
    count over the grid does, and the pair it names does overlap."""
    from cimc.verify import _overlapping, _overlapping_few

    cover = {}
    clash = False
    for lo0, hi0, lo1, hi1 in boxes:
        for x in range(lo0, hi0):
            for y in range(lo1, hi1):
                clash |= (x, y) in cover
                cover[x, y] = True
    pair = _overlapping_few(boxes)
    assert (pair is not None) == clash
    if pair is not None:
        a, b = boxes[pair[0]], boxes[pair[1]]
        assert a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]
    if boxes:
        assert (_overlapping(np.array(boxes, dtype=np.int64)) is not None) == clash


# ---- names the text can hold, facts between passes ------------------------------------------

@pytest.mark.parametrize("name", ["a b", "x{", "", "%y", "a\nb"])
def test_value_names_the_text_cannot_hold_are_refused(placed, name):
    """A name the printer cannot print back is refused (it once verified, then failed to parse)."""
    i = _index(placed, lambda op: op.kind == "nn.input")
    m = _replace(placed, i, Op(placed.ops[i].kind, name, (), placed.ops[i].attrs))
    with pytest.raises(VerifyError, match="cannot be written as mapping-IR text"):
        verify(m)


def test_a_module_name_the_text_cannot_hold_is_refused(placed):
    import dataclasses

    with pytest.raises(VerifyError, match="module name"):
        verify(dataclasses.replace(placed, name="my net"))


def test_every_weight_kind_without_each_required_attribute_is_a_verify_error(placed):
    """Required attributes are checked before any per-op check reads them (no KeyError)."""
    from cimc.ops import OPS

    for i, op in enumerate(placed.ops):
        for key in OPS[op.kind].required:
            m = _replace(placed, i, op.with_attrs(**{key: None}))
            with pytest.raises(VerifyError, match=f"missing attribute '{key}'"):
                verify(m)


@pytest.mark.parametrize("key, value, message", [
    ("budget", "lots", "must be an integer"), ("budget", -3, "at least 0"), ("period_target_ns", "x", "finite number"),
    ("input_density", 1.5, "between 0 and 1"), ("pool_budgets", "0:12;1:4", "pool:crossbars"),
    ("pool_budgets", "0:1,0:2", "twice"), ("duplicate_status", "DONE", "must start with one of"),
    ("duplicate_objective", "speed", "one of throughput, latency"), ("stream_inferences", 0, "at least 1"),
    ("made_up", 1, "unknown module attribute")])
def test_bad_module_facts_are_refused(placed, key, value, message):
    with pytest.raises(VerifyError, match=message):
        verify(placed.with_ops(placed.ops, **{key: value}))


def test_a_bad_fact_in_a_hand_edited_file_names_its_line_and_column(placed, tmp_path):
    from cimc.errors import MappingSyntaxError

    text = cimc.print_module(placed.with_ops(placed.ops, budget=12))
    bad = text.replace("budget = 12", 'budget = "lots"', 1)
    with pytest.raises(MappingSyntaxError) as e:
        cimc.parse(bad, filename="edited.cim")
    assert e.value.line == 1 and e.value.column == bad.splitlines()[0].index("budget") + 1
    assert "module attribute 'budget' must be an integer" in str(e.value)


def test_cimc_opt_on_a_bad_fact_is_a_user_error_not_an_internal_one(placed, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "edited.cim"
    path.write_text(cimc.print_module(placed.with_ops(placed.ops, period_target_ns=5.0))
                    .replace("period_target_ns = 5.0", 'period_target_ns = "x"', 1))
    p = subprocess.run([sys.executable, "-m", "cimc", "opt", str(path), "--passes", "cost"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "period_target_ns" in p.stderr and "Traceback" not in p.stderr


@given(st.fixed_dictionaries({}, optional={
    "budget": st.integers(0, 10 ** 6), "period_target_ns": st.floats(0, 1e9), "input_density": st.floats(0, 1),
    "duplicate_status": st.sampled_from(["OPTIMAL", "GREEDY (slowest layer first)", "ONE_COPY (no room)",
                                         "pool 0: OPTIMAL; pool 1: FEASIBLE; copies cut"]),
    "pool_budgets": st.dictionaries(st.integers(0, 3), st.integers(0, 99), min_size=1).map(
        lambda d: ",".join(f"{k}:{v}" for k, v in d.items()))}))
@settings(max_examples=40, deadline=None)
def test_good_facts_verify_print_and_parse_back(placed, facts):
    from cimc import facts as module_facts

    m = placed.with_ops(placed.ops, **facts)
    verify(m)
    back = cimc.parse(cimc.print_module(m))
    assert back == m
    for key in facts:
        assert module_facts.get(back, key) == module_facts.get(m, key)
