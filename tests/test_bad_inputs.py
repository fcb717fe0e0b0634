"""Every row of the bad-input table (tests/bad_inputs.py): the exit code, one clear message
(what, where, what to do), no traceback, no terminal control codes, every file the case had
(inputs, a previous output) unchanged, special files still special, no temporary file left."""

import hashlib
import os
import stat

import pytest

from bad_inputs import CASES, run_case


def snapshot(d):
    """Every entry under d (links not followed): its kind, and a regular file's hash."""
    out = {}
    for root, dirs, files in os.walk(d, followlinks=False):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read(1 << 20)).hexdigest() if st.st_size < (1 << 30) else st.st_size
                out[p] = ("file", digest, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                out[p] = ("link", os.readlink(p))
            else:
                out[p] = (stat.S_IFMT(st.st_mode),)
    return out


@pytest.mark.parametrize("what, argv_fn, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, what, argv_fn, code, words):
    argv = argv_fn(tmp_path)
    before = snapshot(tmp_path)
    got, err = run_case(argv_fn, tmp_path, argv)
    assert got == code, err
    assert "Traceback" not in err and "internal error" not in err
    assert "\x1b" not in err and "\x07" not in err  # nothing that paints the terminal
    if code:
        assert words in err, err
        assert err.startswith("cimc: error: ") or "usage" in err
        assert len(err.strip().splitlines()) <= 4, err  # one message, not a dump
        assert snapshot(tmp_path) == before  # a refused command changes nothing
    after = snapshot(tmp_path)
    leftovers = [p for p in after if os.path.basename(p).startswith(".") and p.endswith(".tmp")]
    assert not leftovers
    for p, entry in before.items():  # nothing the case had is gone or changed kind
        assert p in after and after[p][0] == entry[0], p
