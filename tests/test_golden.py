"""Golden files for passes: tests/golden/NAME.in.cim (first line `// passes: ...`) run
through those passes must print exactly as NAME.out.cim. Regenerate the outputs after a
deliberate change with CIMC_UPDATE_GOLDEN=1 and review the diff.

The duplicate, pack and schedule goldens pin CP-SAT's exact answers (deterministic: one
worker, a fixed seed, deterministic time limits), which hold for one OR-Tools release line:
the one pyproject.toml pins (`ortools>=9.15,<9.16`). Moving the pin means regenerating them.
"""

import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

import cimc

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name[: -len(".in.cim")] for p in GOLDEN.glob("*.in.cim"))


def test_there_are_golden_cases():
    assert {"lower", "partition", "partition_serial", "partition_per_group", "place", "cost", "duplicate", "pack",
            "schedule"} <= set(CASES)


def test_the_installed_ortools_is_the_release_line_the_goldens_hold_for():
    pin = re.search(r'"ortools([^"]+)"', (Path(__file__).parent.parent / "pyproject.toml").read_text()).group(1)
    assert version("ortools") in SpecifierSet(pin), (
        f"OR-Tools {version('ortools')} is outside {pin}: CP-SAT may answer differently; regenerate the goldens "
        "(CIMC_UPDATE_GOLDEN=1), review them, and move the pin")


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
