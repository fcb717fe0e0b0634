"""Compile time of two commits, measured alternately on one machine (a restructuring must not be slower).

    .venv/bin/python benchmarks/compile_ab.py BEFORE [AFTER]     # commits (AFTER: the working tree's HEAD)

Each commit is checked out into a temporary clone (its `passes/`, `targets/`, `search/` linked
into `cimc/` the way the install maps them) and each case runs in a child process per commit,
the two commits alternating, two rounds: a warm-up compile, then the best of 3 (the `fast` cases:
of 20 compiles each). The figure is the child's CPU time (time.process_time): on a shared VM
the wall clock of identical runs varies by a third.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ["resnet18:rram-256:full", "resnet50:rram-256:full", "mobilenet_v3_small:rnc-128:full",
         "resnet20:rram-256:fast", "resnet50:isaac:fast", "densenet121:rram-256:full"]
CHILD = """
import sys, time, json
sys.path.insert(0, {bench!r})
import cimc, mapping
name, target, passes = sys.argv[1].split(":")
if name == "mobilenet_v3_small":
    net, budget = cimc.import_model(mapping._export(mapping.networks.mobilenet_v3_small, (1, 3, 64, 64)), name=name), 253
elif name == "resnet18":
    net, budget = cimc.import_model(mapping._export(mapping.networks.resnet18, (1, 3, 224, 224)), name=name), None
elif name == "resnet20":
    net, budget = cimc.import_model(str(mapping.ROOT / "examples" / "resnet20.onnx"), name=name), None
else:
    net, budget = cimc.import_model(str(mapping.ZOO / f"light_{{name}}.onnx"), name=name), None
if budget is None and passes == "full":
    budget = cimc.compile(net, target, "lower,partition,place,schedule,cost").crossbars_used
n = 20 if passes == "fast" else 1
cimc.compile(net, target, passes, budget=budget)
best = 1e9
for _ in range(3):
    t0 = time.process_time()
    for _ in range(n):
        cimc.compile(net, target, passes, budget=budget)
    best = min(best, (time.process_time() - t0) / n)
print(json.dumps(best))
"""


def checkout(commit: str, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(where)], check=True)
    subprocess.run(["git", "-C", str(where), "checkout", "-q", commit], check=True)
    for d in ("passes", "targets", "search"):
        (where / "cimc" / d).symlink_to(where / d)
    return where


def main(before: str, after: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trees = {c: checkout(c, Path(tmp) / str(n)) for n, c in enumerate((before, after))}
        child = CHILD.format(bench=str(ROOT / "benchmarks"))
        print(f"| case | {before} s (CPU) | {after} s (CPU) | after/before |")
        print("|---|---|---|---|")
        for case in CASES:
            got: dict[str, list[float]] = {c: [] for c in trees}
            for rnd in range(2):
                order = list(trees.items()) if rnd % 2 == 0 else list(reversed(trees.items()))
                for commit, path in order:
                    out = subprocess.run([sys.executable, "-c", child, case], cwd=path, capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": str(path)}, check=True)
                    got[commit].append(json.loads(out.stdout.strip().splitlines()[-1]))
            b, a = min(got[before]), min(got[after])
            print(f"| {case} | {b:.3f} | {a:.3f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "HEAD")
