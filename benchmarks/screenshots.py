"""The README's screenshots: the HTML report of MobileNetV3-small on rram-256 (summary,
crossbar map, schedule) and the report of the quick search, shot in headless Chromium.

    .venv/bin/python benchmarks/screenshots.py        # writes docs/img/*.png (about a minute)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cimc.search import networks

import cimc
from cimc.view import mapping_html
from cimc.view.browser import Browser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"


def export_mbv3(path: Path) -> None:
    import warnings

    import torch

    torch.manual_seed(0)
    model = networks.mobilenet_v3_small(classes=1000).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_mbv3(tmp / "mobilenet_v3_small.onnx")
        r = cimc.compile(tmp / "mobilenet_v3_small.onnx", "rram-256", name="mobilenet_v3_small")
        page = tmp / "mbv3.html"
        page.write_text(mapping_html(r.module, r.report), encoding="utf-8")
        run = tmp / "search"
        subprocess.run([sys.executable, "-m", "cimc", "search", str(ROOT / "examples/search/quick.toml"), "--trials",
                        "24", "--seed", "0", "--out", str(run), "--no-progress"], check=True, capture_output=True)
        with Browser(1400, 900) as b:
            took = b.open(page)
            b.screenshot(OUT / "report_summary.png")
            for section, name in (("map", "report_map.png"), ("schedule", "report_schedule.png")):
                b.eval(f"document.getElementById('{section}').scrollIntoView()")
                time.sleep(0.2)
                b.screenshot(OUT / name)
            b.eval("document.querySelector('#layers-table tr.bottleneck').click()")  # its blocks highlighted
            b.eval("document.getElementById('map').scrollIntoView()")
            time.sleep(0.2)
            b.screenshot(OUT / "report_map_selected.png")
            b.open(run / "index.html")
            b.screenshot(OUT / "search_report.png")
    print(f"MobileNetV3-small on rram-256: {r.report.crossbars_used} crossbars, page drawn in {took:.2f} s; "
          f"wrote {OUT}/report_*.png, search_report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
