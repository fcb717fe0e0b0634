"""Beyond one chip: ViT-B/16 and BERT-base over 1, 2, 4 and 8 chips and reloaded on one chip at
batch 1, 8 and 64; ResNet-50 through the multi-chip path with one chip; throughput against
the tile buffer's size and the off-chip bandwidth on ResNet-18 and ViT-B.

    .venv/bin/python benchmarks/chips.py [--out out/chips] [--quick]

Models are the project's own torch builders, exported once into --out. Writes chips.md (the
tables) and buffers.png (the sweep) into --out, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cimc  # noqa: E402
from scale import export  # noqa: E402


def _row(name: str, how: str, r, seconds: float) -> dict:
    ch = r.report.chips
    rl = ch.get("reload", {})
    return {"model": name, "how": how, "chips": r.chips_used, "stages": ch.get("stages", 1),
            "rounds": rl.get("rounds", 1), "throughput_ips": r.throughput_ips, "latency_ms": r.latency_ns * 1e-6,
            "energy_mj": r.energy_nj * 1e-6, "link_share": ch.get("link", {}).get("share_of_period", 0.0),
            "link_energy_share": ch.get("link", {}).get("share_of_energy", 0.0),
            "reload_share": rl.get("share_of_period", 0.0), "spill_mb": ch.get("spills", {}).get(
                "bytes_per_inference", 0.0) / 1e6, "writes_per_cell": rl.get("writes_per_cell_per_inference", 0.0),
            "lifetime": rl.get("lifetime", "programmed once"), "set_by": r.period_set_by, "compile_s": seconds}


def chips_table(models: dict, configs: list) -> list[dict]:
    rows = []
    for name, net in models.items():
        for how, kw in configs:
            t0 = time.perf_counter()
            try:
                r = cimc.compile(net, "rram-256", **kw)
            except cimc.CimcError as e:
                print(f"{name} {how}: {e}", file=sys.stderr)
                continue
            rows.append(_row(name, how, r, time.perf_counter() - t0))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def one_chip_path(path: Path) -> dict:
    """ResNet-50 fits one chip: --chips 1 must give the default mapping, op for op."""
    default = cimc.compile(path, "rram-256")
    one = cimc.compile(path, "rram-256", chips=1)
    body = lambda r: r.text().split("\n", 1)[1]  # noqa: E731 - the ops, without the module's facts line
    return {"same_mapping_text": body(default) == body(one), "chips_used": one.chips_used,
            "lines": default.text().count("\n")}


def buffer_sweep(paths: dict, quick: bool) -> list[dict]:
    rows = []
    sizes = [0.25, 1, 4, 16, 64, 256, 1024] if not quick else [1, 64]
    bands = [0.8, 3.2, 6.4, 25.6] if not quick else [3.2, 6.4]
    for name, path in paths.items():
        net = cimc.import_model(path, "rram-256")
        for kb in sizes:
            r = cimc.compile(net, "rram-256", buffer_kb=float(kb))
            rows.append({"model": name, "knob": "buffer_kb", "buffer_kb": kb, "value": kb,
                         "throughput_ips": r.throughput_ips,
                         "spill_mb": r.report.chips.get("spills", {}).get("bytes_per_inference", 0.0) / 1e6})
            print(json.dumps(rows[-1]), flush=True)
        for kb in (1.0, 64.0):  # the bandwidth matters where something spills
            for bw in bands:
                r = cimc.compile(net, "rram-256", buffer_kb=kb, offchip_bytes_per_ns=bw)
                rows.append({"model": name, "knob": "offchip_bytes_per_ns", "buffer_kb": kb, "value": bw,
                             "throughput_ips": r.throughput_ips,
                             "spill_mb": r.report.chips.get("spills", {}).get("bytes_per_inference", 0.0) / 1e6})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, knob, label in ((axes[0], "buffer_kb", "tile buffer (KB)"),
                            (axes[1], "offchip_bytes_per_ns", "off-chip bandwidth (B/ns)")):
        # the buffer sweep one line per model; the bandwidth sweep one per model and buffer size
        line = (lambda r: (r["model"], None)) if knob == "buffer_kb" else (lambda r: (r["model"], r["buffer_kb"]))
        for model, kb in sorted({line(r) for r in rows if r["knob"] == knob}, key=str):
            pts = [(r["value"], r["throughput_ips"]) for r in rows if r["knob"] == knob and line(r) == (model, kb)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=model if knob == "buffer_kb" else f"{model}, {kb:g} KB buffer")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("throughput (inferences/s)")
        ax.legend()
    fig.suptitle("rram-256, full pipeline: throughput against buffer size and off-chip bandwidth")
    fig.tight_layout()
    fig.savefig(out, dpi=150)


def markdown(rows: list[dict], keys: list[str]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "chips"))
    ap.add_argument("--quick", action="store_true", help="BERT-base only, fewer points")
    ap.add_argument("--sweep", action="store_true", help="the buffer and bandwidth sweep only")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from cimc.search import networks as nets

    img, seq = (1, 3, 224, 224), (1, 128, 768)
    paths = {"bert_base": export(out, "bert_base", nets.bert_base, seq)}
    if not args.quick:
        paths["vit_b16"] = export(out, "vit_b16", nets.vit_b16, img)
    configs = [("default", {})] + [(f"{n} chips", {"chips": n}) for n in (1, 2, 4, 8)] + \
        [(f"reload batch {b}", {"reload": True, "batch": b}) for b in (8, 64)]
    models = {name: cimc.import_model(p, "rram-256") for name, p in paths.items()} if not args.sweep else {}
    # batch is fixed when a network is imported: the reloading batches compile from the file
    table = []
    for name, path in (paths.items() if not args.sweep else ()):
        table += chips_table({name: models[name]}, [c for c in configs if "batch" not in c[1]])
        table += chips_table({name: path}, [c for c in configs if "batch" in c[1]])
    resnet = {}
    if not args.quick and not args.sweep:
        resnet = one_chip_path(export(out, "resnet50", nets.resnet50, img))
    sweep_paths = {"resnet18": export(out, "resnet18", nets.resnet18, img), **({} if args.quick else
                                                                             {"vit_b16": paths["vit_b16"]})}
    sweep = buffer_sweep(sweep_paths, args.quick)
    plot(sweep, out / "buffers.png")
    text = ["## Chips and reloading (rram-256, full pipeline)", "",
            markdown(table, ["model", "how", "chips", "stages", "rounds", "throughput_ips", "latency_ms", "energy_mj",
                             "link_share", "link_energy_share", "reload_share", "spill_mb", "writes_per_cell",
                             "lifetime", "set_by", "compile_s"]), ""]
    if resnet:
        text += [f"ResNet-50 with --chips 1: same mapping text as the default: {resnet['same_mapping_text']} "
                 f"({resnet['lines']} lines, {resnet['chips_used']} chip)", ""]
    text += ["## Throughput against the buffer and the off-chip bandwidth", "",
             markdown(sweep, ["model", "knob", "buffer_kb", "value", "throughput_ips", "spill_mb"]), ""]
    (out / ("sweep.md" if args.sweep else "chips.md")).write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
