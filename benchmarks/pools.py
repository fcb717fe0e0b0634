"""Heterogeneous chips: the same networks on rram-256 alone and with a pool of small
crossbars beside the 256x256 ones (target key `pools`); the partition pass puts each layer
in the pool where its blocks take the least crossbar area.

    .venv/bin/python benchmarks/pools.py [--pools 64x64*64] [--passes baseline]

Columns: crossbars used (of each size), the area of those crossbars with their periphery
and ADCs, utilization (programmed cells over the cells of the crossbars used), energy per
inference and the steady-state period.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cimc  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.mapping import xbar_full_area_um2 as xbar_area_um2  # noqa: E402
from cimc.search import networks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def models() -> dict:
    torch.manual_seed(0)
    return {"resnet20": ROOT / "examples" / "resnet20.onnx",
            "mobilenet_tiny": ROOT / "examples" / "mobilenet_tiny.onnx",
            "squeezenet1_1 (64x64)": export_torch(networks.squeezenet1_1(), (torch.zeros(1, 3, 64, 64),)),
            "mobilenet_v3_small (64x64)": export_torch(networks.mobilenet_v3_small(), (torch.zeros(1, 3, 64, 64),)),
            "vgg8": export_torch(networks.vgg8(), (torch.zeros(1, 3, 32, 32),))}


def crossbars(r) -> tuple[Counter, float]:
    t = r.module.target
    used = {(op["tile"], op["xbar"]) for op in r.module.ops if op.kind == "map.place"}
    sizes = Counter()
    area = 0.0
    for _, x in used:
        view = t.pool(t.pool_of_xbar(x))
        sizes[f"{view.xbar_rows}x{view.xbar_cols}"] += 1
        area += xbar_area_um2(view) * 1e-6
    return sizes, area


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pools", default="64x64*64")
    ap.add_argument("--passes", default="baseline")
    args = ap.parse_args()
    print(f"passes: {args.passes}; second pool: {args.pools} per tile\n")
    print("| model | chip | crossbars used | crossbar area mm2 | utilization | energy uJ | period us |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models().items():
        for label, overrides in (("rram-256", {}), (f"rram-256 + {args.pools}", {"pools": args.pools})):
            r = cimc.compile(model, "rram-256", args.passes, name=name, **overrides)
            sizes, area = crossbars(r)
            used = ", ".join(f"{n} x {s}" for s, n in sorted(sizes.items(), reverse=True))
            print(f"| {name} | {label} | {used} | {area:.3f} | {100 * r.utilization:.1f}% | "
                  f"{r.report.energy_nj / 1e3:.2f} | {r.period_ns / 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
