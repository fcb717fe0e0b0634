"""Compile-time benchmark: cimc's full compile next to the floor no compiler can beat,
`onnx.load` + `onnx.shape_inference.infer_shapes` of the same file.

    .venv/bin/python benchmarks/compile_time.py [--target rram-256] [--repeat 3] [--passes baseline]

Prints a markdown table; times are medians over --repeat runs in one process (imports
excluded), so they are comparable between rows but include this machine's noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import onnx

import cimc

ROOT = Path(__file__).resolve().parent.parent
ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {**{p.stem.removeprefix("light_"): p for p in sorted(ZOO.glob("light_*.onnx"))},
          "resnet20": ROOT / "examples" / "resnet20.onnx", "mobilenet_tiny": ROOT / "examples" / "mobilenet_tiny.onnx"}


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="rram-256")
    ap.add_argument("--passes", default="baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    args = ap.parse_args(argv)
    print(f"compile time on {args.target}, passes {args.passes}, median of {args.repeat}\n")
    print("| model | ops | blocks | floor: load+infer_shapes (s) | cimc compile (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        path = MODELS[name]
        floor = _median_s(lambda: onnx.shape_inference.infer_shapes(onnx.load(str(path))), args.repeat)
        result = None

        def run():
            nonlocal result
            result = cimc.compile(path, args.target, args.passes)

        t = _median_s(run, args.repeat)
        n_blocks = sum(op.kind == "map.block" for op in result.module.ops)
        print(f"| {name} | {len(result.module.ops)} | {n_blocks} | {floor:.3f} | {t:.3f} | {t / floor:.1f}x |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
