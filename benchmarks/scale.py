"""Scale: compile time and peak memory of large networks on rram-256, against their size.

    .venv/bin/python benchmarks/scale.py [--out out/scale] [--quick]

Models are the project's own torch builders, exported once to ONNX (weights included, as a
user would have them) into --out. Each compile runs in a fresh process so its peak resident
memory (VmHWM) is its own; "import floor" is the same process doing only the imports and
reading the file. Writes a table (stdout and scale.md) and a plot (scale.png) into --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, re, sys, time
def hwm():  # peak resident memory of this process in KiB (VmHWM resets at exec, ru_maxrss does not)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
import cimc
path, passes = sys.argv[1], sys.argv[2]
floor = hwm()
t1 = time.perf_counter()
out = {"floor_mb": floor / 1024}
try:
    r = cimc.compile(path, "rram-256", passes)
    out.update(ok=True, crossbars=r.crossbars_used, chips=r.chips_used, blocks=sum(op.kind == "map.block" for op in r.module.ops),
               ops=len(r.module.ops), layers=sum(op.kind in ("nn.conv", "nn.matmul") for op in r.module.ops))
except cimc.errors.CimcError as e:
    out.update(ok=False, error=str(e)[:200])
out["compile_s"] = time.perf_counter() - t1
out["peak_mb"] = hwm() / 1024
print(json.dumps(out))
"""


def models(quick: bool):
    from cimc.search import networks as nets

    img = (1, 3, 224, 224)
    seq = (1, 128, 768)
    out = [("resnet50", nets.resnet50, img), ("resnet101", nets.resnet101, img), ("resnet152", nets.resnet152, img),
           ("densenet121", nets.densenet121, img),
           ("vit_b16_d3", lambda: nets.vit_b16(depth=3), img), ("vit_b16_d6", lambda: nets.vit_b16(depth=6), img),
           ("vit_b16", nets.vit_b16, img),
           ("bert_base_d3", lambda: nets.bert_base(3), seq), ("bert_base_d6", lambda: nets.bert_base(6), seq),
           ("bert_base", nets.bert_base, seq),
           ("alexnet", nets.alexnet, img), ("zfnet", nets.zfnet, img), ("vgg19", nets.vgg19, img)]
    return [m for m in out if not quick or m[0] in ("resnet50", "vit_b16_d3", "bert_base_d3")]


def export(folder: Path, name, build, shape) -> Path:
    import onnx
    import torch

    from cimc.frontend import export_torch

    path = folder / f"{name}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        onnx.save(export_torch(build().eval(), (torch.randn(*shape),)), path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "scale"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated model names (default: all)")
    args = ap.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    only = set(args.only.split(",")) if args.only else None
    for name, build, shape in models(args.quick):
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        path = export(folder, name, build, shape)
        export_s = time.perf_counter() - t0
        for passes in ("baseline", "full"):
            p = subprocess.run([sys.executable, "-c", CHILD, str(path), passes], capture_output=True, text=True,
                               cwd=ROOT, timeout=1800)
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r.update(model=name, passes=passes, file_mb=path.stat().st_size / 2**20, export_s=export_s)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    head = ("| model | weight layers | ops | blocks | passes | compile s | peak MB | import floor MB | ONNX MB | "
            "result |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    layers_of = {r["model"]: r.get("layers") for r in rows if r.get("layers")}
    for r in rows:
        res = (f"{r['crossbars']} crossbars on {r['chips']} chip(s)" if r.get("ok")
               else "refused: " + r.get("error", "")[:90].replace("|", "/"))
        lines.append(f"| {r['model']} | {layers_of.get(r['model'], '')} | {r.get('ops', '')} | {r.get('blocks', '')} | "
                     f"{r['passes']} | {r['compile_s']:.2f} | {r['peak_mb']:.0f} | {r['floor_mb']:.0f} | "
                     f"{r['file_mb']:.0f} | {res} |")
    table = "\n".join(lines)
    print(table)
    (folder / "scale.md").write_text(table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        base = [r for r in rows if r["passes"] == "baseline" and r.get("ok")]
        for ax, key, label in ((axes[0], "compile_s", "compile time (s)"), (axes[1], "peak_mb", "peak memory (MB)")):
            ax.scatter([r["blocks"] for r in base], [r[key] for r in base])
            for r in base:
                ax.annotate(r["model"], (r["blocks"], r[key]), fontsize=7)
            ax.set_xlabel("crossbar blocks (baseline mapping)")
            ax.set_ylabel(label)
        fig.suptitle("cimc baseline compile on rram-256")
        fig.tight_layout()
        fig.savefig(folder / "scale.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
