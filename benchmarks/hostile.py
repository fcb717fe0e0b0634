"""Bounded work on hostile inputs (issue: hostile inputs, round two), as figures, not timed tests.

    .venv/bin/python benchmarks/hostile.py

- The mapping-IR reader on one valid line holding a string of 5, 10, 25 and 50 MB: seconds and
  peak traced memory (linear: the string token is an unrolled regular expression).
- The frontend on a chain of N MatMul+Relu pairs stored in reverse order (each node after the
  ones that read it): seconds to import (the topological sort is Kahn's, linear up to a log).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import cimc  # noqa: E402
import onnx_builders as ob  # noqa: E402


def reader() -> None:
    base = cimc.compile(ob.tiny_cnn(batch=1), "rram-256", "baseline").text()
    print("| string in one line | parse s | peak MB | s per MB |")
    print("|---|---|---|---|")
    for mb in (5, 10, 25, 50):
        text = base.replace('source = "', 'source = "' + "x" * (mb * 1_000_000), 1)
        tracemalloc.start()
        t0 = time.perf_counter()
        cimc.parse(text, verify=False)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"| {mb} MB | {dt:.2f} | {peak:.0f} | {dt / mb:.4f} |")


def chain(n: int):
    nodes, inits = [], []
    for i in range(n):
        nodes.append(helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"], name=f"mm{i}"))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"], name=f"relu{i}"))
        inits.append(numpy_helper.from_array(np.eye(4, dtype=np.float32), f"w{i}"))
    nodes.reverse()
    nodes[0].output[0] = "y"  # the last Relu writes the graph output
    return ob.model(nodes, [ob.tensor("h0", 1, 4)], [ob.tensor("y", 1, 4)], inits)


def toposort() -> None:
    print("\n| chain nodes, reverse order | import s | s per 1,000 nodes |")
    print("|---|---|---|")
    for n in (1000, 5000, 10000):
        m = chain(n)
        t0 = time.perf_counter()
        cimc.import_model(m)
        dt = time.perf_counter() - t0
        print(f"| {2 * n:,} | {dt:.2f} | {1000 * dt / (2 * n):.3f} |")


if __name__ == "__main__":
    reader()
    toposort()
