"""The search engine itself: NSGA-II vs TPE vs random on one joint space, hypervolume at 100,
300 and 1,000 trials over 3 seeds, against one fixed reference point.

The space is cimnet_vit.toml's (the small ViT family on Fashion-MNIST, four network and nine
hardware knobs, chip area held to rram-256's; --space cnn for the CNN's), objectives validation
accuracy (max) and latency (min), accuracy from the space's supernet (shared with
benchmarks/search/cimnet.py: trained once, cached). A sampler does not know how many trials will follow, so the first N trials of a run
of 1,000 are the run of N: one run per sampler and seed gives all three columns (the
hypervolume after the N-th completed trial).

    .venv/bin/python benchmarks/search/engine.py           # 3 samplers x 3 seeds x 1,000 trials
    .venv/bin/python benchmarks/search/engine.py --quick   # 1 seed, 100 trials, small data (not the headline)

Prints the table (mean and spread over seeds), writes out/search/engine.png (mean hypervolume
against trials) and prints the headline last: NSGA-II's hypervolume over random's at 300
trials (goal >= 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cimnet import OUT, spaces  # noqa: E402

from cimc.search import run  # noqa: E402

SAMPLERS = ("nsga2", "tpe", "random")
# fixed for every sampler and seed, near the reference design (the largest ViT on rram-256: 0.794
# validation accuracy, 504 us in the loop): the hypervolume is the part of the objective space
# the front takes that is both faster than that design and at most 10 points less accurate. A
# point far off (chance accuracy, 1 ms) makes every sampler's hypervolume the same box.
REFERENCE = {"accuracy": 0.70, "latency_ns": 500_000.0}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int)
    p.add_argument("--trials", type=int)
    p.add_argument("--space", choices=["vit", "cnn"], default="vit")
    a = p.parse_args()
    seeds = a.seeds or (1 if a.quick else 3)
    trials = a.trials or (100 if a.quick else 1000)
    marks = [n for n in (100, 300, 1000) if n <= trials] or [trials]
    joint, *_ = spaces(HERE / f"cimnet_{a.space}.toml", a.quick)
    reference = REFERENCE if a.space == "vit" and not a.quick else {"accuracy": 0.1, "latency_ns": 1e7}
    objectives = dict(joint.objectives)
    print(f"joint space cimnet_{a.space}.toml: {len(joint.net_knobs)} network knobs, {len(joint.hw_knobs)} hardware knobs; "
          f"objectives {objectives}; reference point {reference}; seeds 0..{seeds - 1}{' (quick)' if a.quick else ''}\n",
          flush=True)
    hv = {s: {n: [] for n in marks} for s in SAMPLERS}
    curves = {s: [] for s in SAMPLERS}
    minutes = {s: [] for s in SAMPLERS}
    evaluator = joint.evaluator
    for seed in range(seeds):
        for sampler in SAMPLERS:
            t0 = time.perf_counter()
            r = run(joint, objectives=objectives, evaluator=evaluator, trials=trials, seed=seed, sampler=sampler,
                    reference=reference, progress=False, final=False)
            hist = [h for _, h in r.hypervolume_history()]
            minutes[sampler].append((time.perf_counter() - t0) / 60)
            curves[sampler].append(hist)
            for n in marks:
                hv[sampler][n].append(hist[min(n, len(hist)) - 1])
            print(f"  seed {seed} {sampler}: hypervolume {', '.join(f'{n}: {hv[sampler][n][-1]:.4g}' for n in marks)}"
                  f" ({minutes[sampler][-1]:.1f} min)", flush=True)
    print("\n| sampler | " + " | ".join(f"hypervolume at {n} (mean ± std)" for n in marks) + " | minutes per run |")
    print("|---|" + "---|" * len(marks) + "---|")
    for s in SAMPLERS:
        cells = [f"{statistics.mean(hv[s][n]):.4g} ± {statistics.pstdev(hv[s][n]):.2g}" for n in marks]
        print(f"| {s} | " + " | ".join(cells) + f" | {statistics.mean(minutes[s]):.1f} |")
    plot(curves)
    at = 300 if 300 in marks else marks[-1]
    ratio = statistics.mean(hv["nsga2"][at]) / statistics.mean(hv["random"][at])
    print(f"\nheadline: NSGA-II / random hypervolume at {at} trials = {ratio:.3f} (goal >= 1.2)")
    return 0


def plot(curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for s, runs in curves.items():
        n = min(len(h) for h in runs)
        mean = np.mean(np.array([h[:n] for h in runs]), axis=0)
        ax.plot(range(1, n + 1), mean, label=s)
    ax.set_xscale("log")
    ax.set_xlabel("trials completed")
    ax.set_ylabel("hypervolume (accuracy x ns)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "engine.png", dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
