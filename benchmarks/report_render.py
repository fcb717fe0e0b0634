"""How long HTML reports take to make and to draw, from hundreds to about 15,000 crossbars.

For each mapping: compile seconds, seconds to build the page in Python (the view's data, the
schedule's pieces, gzip), the page's size, and the seconds headless Chromium takes from
navigation until the page says it is drawn (median of 3 loads, the browser kept open), with
the elements it drew. One table, measured in one run on this machine.

    .venv/bin/python benchmarks/report_render.py           # ~6 minutes (ResNet-50 on rram-128 compiles in ~3)
    .venv/bin/python benchmarks/report_render.py --quick   # the two small cases
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx

import cimc
from cimc.view import mapping_html
from cimc.view.browser import Browser

ROOT = Path(__file__).resolve().parent.parent
ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

CASES = [
    ("MobileNet (tiny) on rram-256, full", ROOT / "examples/mobilenet_tiny.onnx", "rram-256", "full", {}),
    ("ResNet-20 on rram-256, full", ROOT / "examples/resnet20.onnx", "rram-256", "full", {}),
    ("ResNet-50 on rram-256, full", ZOO / "light_resnet50.onnx", "rram-256", "full", {}),
    ("ResNet-50 on 256x64 crossbars, baseline (4 chips)", ZOO / "light_resnet50.onnx", "rram-256", "baseline",
     {"xbar_cols": 64}),
    ("ResNet-50 on rram-128, full", ZOO / "light_resnet50.onnx", "rram-128", "full", {}),
]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    cases = CASES[:2] if a.quick else CASES
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Browser(1400, 1000, timeout_s=300) as b:
        for label, model, target, passes, sets in cases:
            t0 = time.perf_counter()
            r = cimc.compile(model, target, passes, **sets)
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            page = mapping_html(r.module, r.report)
            build_s = time.perf_counter() - t0
            path = Path(tmp) / "page.html"
            path.write_text(page, encoding="utf-8")
            draws = [b.open(path, ready_timeout_s=300) for _ in range(3)]
            counts = b.eval("[...['#xbar-map rect.xbar', '#xbar-map rect.blk', '#gantt-one rect.bar', "
                            "'#gantt-stream rect.bar']].map(s => document.querySelectorAll(s).length)")
            rows.append((label, r.report.crossbars_used, r.report.chips_used, compile_s, build_s, len(page) / 1e6,
                         statistics.median(draws), counts))
            print(f"  {label}: {r.report.crossbars_used} crossbars, drawn in {statistics.median(draws):.2f} s",
                  file=sys.stderr)
    print("| mapping | crossbars | chips | compile s | page built s | page MB | drawn in s (median of 3) "
          "| elements: crossbars, blocks, Gantt bars (first page of units, one inference + stream) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, xb, chips, cs, bs, mb, draw, counts in rows:
        print(f"| {label} | {xb:,} | {chips} | {cs:.1f} | {bs:.2f} | {mb:.2f} | {draw:.2f} | "
              f"{counts[0]:,}, {counts[1]:,}, {counts[2]:,} + {counts[3]:,} |")
    largest = max(rows, key=lambda x: x[1])
    print(f"\nlargest: {largest[1]:,} crossbars drawn in {largest[6]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
