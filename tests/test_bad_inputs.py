"""Every row of the bad-input table (tests/bad_inputs.py): the exit code, one clear message
(what, where, what to do), no traceback, and no output file left behind."""

import pytest

from bad_inputs import CASES, run_case


@pytest.mark.parametrize("what, argv_fn, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, what, argv_fn, code, words):
    before = set(tmp_path.iterdir())
    got, err = run_case(argv_fn, tmp_path)
    assert got == code, err
    assert "Traceback" not in err and "internal error" not in err
    if code:
        assert words in err, err
        assert err.startswith("cimc: error: ") or "usage" in err
        assert len(err.strip().splitlines()) <= 4, err  # one message, not a dump
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not leftovers and before <= set(tmp_path.iterdir())
