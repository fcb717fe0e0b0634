"""Golden files for passes: tests/golden/NAME.in.cim (first line `// passes: ...`) run
through those passes must print exactly as NAME.out.cim. Regenerate the outputs after a
deliberate change with CIMC_UPDATE_GOLDEN=1 and review the diff."""

import os
from pathlib import Path

import pytest

import cimc

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name[: -len(".in.cim")] for p in GOLDEN.glob("*.in.cim"))


def test_there_are_golden_cases():
    assert {"lower", "partition", "partition_serial", "partition_per_group", "place", "cost", "duplicate", "pack",
            "schedule"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    src = (GOLDEN / f"{case}.in.cim").read_text()
    first = src.splitlines()[0]
    assert first.startswith("// passes: ")
    module = cimc.parse(src, filename=f"{case}.in.cim")
    out = cimc.print_module(cimc.opt(module, first[len("// passes: "):]).module)
    expected_path = GOLDEN / f"{case}.out.cim"
    if os.environ.get("CIMC_UPDATE_GOLDEN"):
        expected_path.write_text(out)
    assert out == expected_path.read_text()
