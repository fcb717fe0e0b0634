"""CiMNet's experiment: does searching network and CiM hardware together beat searching the
network alone? (CiMNet, Qu et al.: at ViT-B's accuracy, model-only search gave 1.7x lower
execution time, model + CiM hardware (bandwidth, PE size, memory size) 3.1x: 3.1 / 1.7 = 1.82.)

For each family (a CNN and the small ViT, on Fashion-MNIST), three searches with equal trials,
one seed, NSGA-II over (validation accuracy max, latency min), every chip held to the reference
chip's area:
  model-only     the network knobs; the hardware is rram-256 as it is;
  hardware-only  the hardware knobs of cimnet_<family>.toml; the network is the reference;
  joint          both.
Reference: the family's largest member (every knob at its largest) on rram-256; each search's
first trial is the reference design (`search.run(start=...)`), as CiMNet starts from ViT-B. Every design
computes exact partial sums (`partial_sums = "exact"`: fewer ADC bits read fewer rows at a
time, and that is charged), so float accuracy is the accuracy of the chip. Accuracy comes
from one weight-sharing supernet per family (trained once, cached in ~/.cache/cimc; its
training time is printed), shared by all three searches. A search's result is its lowest
latency among the trials within 0.5 points (validation) of the reference's validation
accuracy (or the reference itself, which every space holds, where it found nothing faster);
its improvement is the reference's latency over that one. The chosen points are
then compiled with the full pipeline and their accuracy measured on the test split.

    .venv/bin/python benchmarks/search/cimnet.py            # 2 x 3 searches of 300 trials (~8 min; the
                                                            # supernets' first training ~14 min more)
    .venv/bin/python benchmarks/search/cimnet.py --quick    # every step, small (~4 min; not the headline)

Prints a table per family, writes out/search/cimnet_<family>.png (latency against accuracy of
every trial of the three searches) and prints the headline ratio last:
joint improvement / model-only improvement, for each family (goal >= 1.8 for both).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "out" / "search"
TOLERANCE = 0.005  # accuracy points below the reference a result may be (0.5 points)

import cimc  # noqa: E402
from cimc.search import Space, run  # noqa: E402
from cimc.search.engine import Oracle, settings_for  # noqa: E402
from cimc.search.evaluators import Evaluator, float_accuracy  # noqa: E402

BASE_HW = {"partial_sums": "exact"}  # rram-256 as it is, its partial sums exact like every design here


@dataclass
class Shared(Evaluator):
    """The joint space's supernet for a space with fewer network knobs (hardware-only: one
    member): its members are the joint supernet's, so no other network is trained."""

    inner: Evaluator = None
    knobs: dict = None
    kind = "shared-supernet"

    def signature(self):
        return {"kind": self.kind, "inner": self.inner.signature()}

    def model(self, family, config, data, knobs=None):
        return self.inner.model(family, config, data, knobs=self.knobs)

    def metrics(self):
        return self.inner.metrics()


def spaces(path: Path, quick: bool):
    raw = tomllib.loads(path.read_text())
    if quick:
        raw.update(train_samples=3000, val_samples=500, population=6)
        raw["evaluator"].update(epochs=1)
    joint = Space.from_dict(copy.deepcopy(raw), where=path.name, root=path.parent)
    largest = {k: kb.largest() for k, kb in joint.net_knobs.items()}
    model_only = copy.deepcopy(raw)
    model_only["hardware"] = dict(BASE_HW)
    hw_only = copy.deepcopy(raw)
    hw_only["network"]["knobs"] = dict(largest)
    return joint, Space.from_dict(model_only, where="model-only"), Space.from_dict(hw_only, where="hardware-only"), \
        largest


def best_within(result, ref_acc: float):
    """The feasible trial with the lowest latency among those within TOLERANCE of ref_acc."""
    ok = [t for t in result.feasible() if t.user_attrs["metrics"]["accuracy"] >= ref_acc - TOLERANCE]
    return min(ok, key=lambda t: (t.user_attrs["metrics"]["latency_ns"], t.number), default=None)


def final_figures(oracle: Oracle, space: Space, net_cfg: dict, hw_cfg: dict) -> dict:
    """The full pipeline's latency and EDAP, and test accuracy, of one point."""
    net = oracle.network({**{k: kb.largest() for k, kb in space.net_knobs.items()}, **net_cfg})
    hw = dict(hw_cfg)
    budget = hw.pop("budget", None)
    r = cimc.compile(net["module"], cimc.load_target(space.target, hw), "full", budget=budget)
    data = oracle.s.data
    return {"latency_ns": r.report.latency_ns, "edap": r.report.edap,
            "test_accuracy": float_accuracy(net["model"], data.x_test, data.y_test)}


def experiment(name: str, path: Path, trials: int, seed: int, quick: bool, pipeline: str | None = None) -> dict:
    joint, model_only, hw_only, largest = spaces(path, quick)
    objectives = dict(joint.objectives)
    settings = settings_for(joint, None, None, None, trials, seed, None, pipeline, None, None, None, None, False, 10, 30)
    oracle = Oracle(settings)
    t0 = time.perf_counter()
    ref = oracle.evaluate(largest, BASE_HW)  # trains the supernet the first time
    train_s = settings.evaluator.train_seconds
    print(f"\n## {name}: {path.name}, {trials} trials per search, seed {seed}"
          f"{' (quick)' if quick else ''}\nsupernet: "
          + (f"trained in {train_s / 60:.1f} min" if train_s else "from the cache")
          + f"; reference {largest} on rram-256: {ref['metrics']['accuracy']:.4f} validation accuracy, "
          f"{ref['metrics']['latency_ns'] / 1e3:.2f} us ({settings.pipeline} pipeline in the loop), "
          f"{time.perf_counter() - t0:.0f} s",
          flush=True)
    if ref["infeasible"]:
        raise SystemExit(f"the reference does not compile: {ref['infeasible']}")
    ref_acc, ref_lat = ref["metrics"]["accuracy"], ref["metrics"]["latency_ns"]
    shared = Shared(inner=settings.evaluator, knobs=joint.net_knobs)
    base = cimc.load_target(joint.target)
    ref_hw = {k: getattr(base, k) for k in joint.hw_knobs if not joint.hw_knobs[k].fixed}
    runs = {}
    for label, space, ev, start in (("model-only", model_only, settings.evaluator, largest),
                                    ("hardware-only", hw_only, shared, ref_hw),
                                    ("joint", joint, settings.evaluator, {**largest, **ref_hw})):
        t1 = time.perf_counter()
        # every search starts from the reference design, as CiMNet's start from ViT-B
        res = run(space, objectives=objectives, evaluator=ev, trials=trials, seed=seed, progress=False, final=False,
                  start=[start], pipeline=pipeline)
        runs[label] = (res, time.perf_counter() - t1)
        print(f"  {label}: {len(res.feasible())} feasible of {trials}, {time.perf_counter() - t1:.0f} s", flush=True)
    ref_final = final_figures(oracle, joint, largest, BASE_HW)
    rows = {}
    for label, (res, secs) in runs.items():
        t = best_within(res, ref_acc)
        if t is None or t.user_attrs["metrics"]["latency_ns"] >= ref_lat:  # the reference is in every space
            rows[label] = {"trial": None, "accuracy": ref_acc, "latency_ns": ref_lat, "improvement": 1.0,
                           "final": ref_final, "final_improvement": 1.0, "edap_improvement": 1.0,
                           "network": largest, "hardware": BASE_HW, "seconds": secs}
            continue
        m = t.user_attrs["metrics"]
        hw = {**BASE_HW, **t.user_attrs["hardware"]} if label == "model-only" else t.user_attrs["hardware"]
        fin = final_figures(oracle, joint, t.user_attrs["network"], hw)
        rows[label] = {"trial": t.number, "accuracy": m["accuracy"], "latency_ns": m["latency_ns"],
                       "improvement": ref_lat / m["latency_ns"], "final": fin,
                       "final_improvement": ref_final["latency_ns"] / fin["latency_ns"],
                       "edap_improvement": ref_final["edap"] / fin["edap"],
                       "network": t.user_attrs["network"], "hardware": t.user_attrs["hardware"], "seconds": secs}
    print(f"\n| search | best within 0.5 pt: val acc | latency ({settings.pipeline}, in the loop) | improvement | "
          "full pipeline: latency | "
          "improvement | EDAP improvement | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| reference | {ref_acc:.4f} | {ref_lat / 1e3:.2f} us | 1.00x | {ref_final['latency_ns'] / 1e3:.2f} us | "
          f"1.00x | 1.00x | {ref_final['test_accuracy']:.4f} |")
    for label, row in rows.items():
        print(f"| {label}{' (found nothing faster: the reference)' if row['trial'] is None else ''} | {row['accuracy']:.4f} | {row['latency_ns'] / 1e3:.2f} us | {row['improvement']:.2f}x | "
              f"{row['final']['latency_ns'] / 1e3:.2f} us | {row['final_improvement']:.2f}x | "
              f"{row['edap_improvement']:.2f}x | {row['final']['test_accuracy']:.4f} |")
    for label, row in rows.items():
        if row:
            print(f"  {label} point: trial {row['trial']}, network {row['network']}, hardware {row['hardware']}")
    plot(name, runs, ref_acc, ref_lat)
    ratio = rows["joint"]["improvement"] / rows["model-only"]["improvement"]
    full = rows["joint"]["final_improvement"] / rows["model-only"]["final_improvement"]
    return {"name": name, "ratio": ratio, "full_ratio": full, "rows": rows, "train_s": train_s}


def plot(name: str, runs: dict, ref_acc: float, ref_lat: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for (label, (res, _)), c in zip(runs.items(), ("#4c6ef5", "#12b886", "#c2410c")):
        pts = [(t.user_attrs["metrics"]["latency_ns"] / 1e3, t.user_attrs["metrics"]["accuracy"]) for t in res.feasible()]
        if pts:
            ax.scatter(*zip(*pts), s=10, color=c, alpha=0.7, label=label)
    ax.scatter([ref_lat / 1e3], [ref_acc], marker="*", s=120, color="black", label="reference")
    ax.axhline(ref_acc - TOLERANCE, color="grey", ls="--", lw=0.8, label="reference - 0.5 pt")
    ax.set_xscale("log")
    ax.set_xlabel("latency (us, the pipeline in the loop)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"CiMNet experiment, {name} on Fashion-MNIST")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / f"cimnet_{name}.png", dpi=150)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="every step, small: 12 trials, 1 epoch, 3,000 images")
    p.add_argument("--trials", type=int, help="trials per search (default 300; 12 with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", choices=["cnn", "vit", "both"], default="both")
    p.add_argument("--pipeline", help="the pipeline in the loop (default: the space's, fast); full: the mapping the "
                   "points are judged by, slower")
    a = p.parse_args()
    trials = a.trials or (12 if a.quick else 300)
    t0 = time.perf_counter()
    results = [experiment(f, HERE / f"cimnet_{f}.toml", trials, a.seed, a.quick, a.pipeline)
               for f in (("cnn", "vit") if a.family == "both" else (a.family,))]
    print(f"\nall in {(time.perf_counter() - t0) / 60:.1f} min; plots in {OUT}/cimnet_*.png")
    full = ", ".join(f"{r['name']} {r['full_ratio']:.2f}" for r in results)
    heads = ", ".join(f"{r['name']} {r['ratio']:.2f}" for r in results)
    print(f"the same points through the full pipeline: joint / model-only latency improvement {full}")
    print(f"headline: joint / model-only latency improvement in the loop (goal >= 1.8 for both): {heads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
