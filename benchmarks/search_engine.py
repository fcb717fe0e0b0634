"""The search engine's benchmarks (cimc.search).

    .venv/bin/python benchmarks/search_engine.py samplers [--trials 100] [--seeds 3]
    .venv/bin/python benchmarks/search_engine.py overhead [--trials 1000]
    .venv/bin/python benchmarks/search_engine.py speed [--trials 200]

samplers: NSGA-II, TPE and random at equal trials on the joint space of
  examples/search/quick.toml (cnn on digits, short training; crossbar size, ADC bits, crossbars
  per tile, tiles), hypervolume against one fixed reference point, mean and spread over seeds;
  a plot of the mean hypervolume history (out/search/samplers.png). Trained networks are cached
  (~/.cache/cimc), so repeats of a network cost nothing and change nothing (training is seeded).
overhead: the engine's own time per trial (storage, sampler, bookkeeping: the trial's wall time
  less the time spent compiling and evaluating) at N trials, in memory, SQLite and PostgreSQL (a
  throw-away cluster, tests/pgcluster.py), first and last hundred trials apart.
speed: candidates per second of examples/search/mbv3_fashion.toml (fast pipeline in the loop,
  the supernet evaluator; the supernet is trained first if not cached, and its time printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cimc import search  # noqa: E402

QUICK = ROOT / "examples" / "search" / "quick.toml"
MBV3 = ROOT / "examples" / "search" / "mbv3_fashion.toml"
# fixed for every sampler and seed: worse than any candidate worth having on each objective
REFERENCE = {"accuracy": 0.5, "latency_ns": 50_000.0, "chip_area_mm2": 12.0}


def samplers(args) -> None:
    space = search.Space.from_toml(QUICK)
    print(f"joint space {QUICK.name}: {len(space.net_knobs)} network knobs, {len(space.hw_knobs)} hardware knobs; "
          f"{args.trials} trials, seeds 0..{args.seeds - 1}; reference point {REFERENCE}\n")
    print("| sampler | hypervolume mean | std | min | max | feasible (mean) | minutes (mean) |")
    print("|---|---|---|---|---|---|---|")
    histories = {}
    for sampler in ("nsga2", "tpe", "random"):
        hvs, feas, mins, hist = [], [], [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            r = search.run(space, trials=args.trials, seed=seed, sampler=sampler, reference=REFERENCE,
                           progress=False, final=False)
            mins.append((time.perf_counter() - t0) / 60)
            hvs.append(r.hypervolume())
            feas.append(len(r.feasible()))
            hist.append([h for _, h in r.hypervolume_history()])
        histories[sampler] = np.mean(np.array(hist), axis=0)
        print(f"| {sampler} | {statistics.mean(hvs):.1f} | {statistics.pstdev(hvs):.1f} | {min(hvs):.1f} | "
              f"{max(hvs):.1f} | {statistics.mean(feas):.1f} | {statistics.mean(mins):.2f} |")
        sys.stdout.flush()
    base = histories["random"][-1]
    for name in ("nsga2", "tpe"):
        print(f"\n{name} / random hypervolume at {args.trials} trials: {histories[name][-1] / base:.3f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ROOT / "out" / "search"
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, h in histories.items():
        ax.plot(range(1, len(h) + 1), h, label=name)
    ax.set_xlabel("trials completed")
    ax.set_ylabel(f"hypervolume (mean of {args.seeds} seeds)")
    ax.set_title("quick.toml: accuracy / latency / chip area")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "samplers.png", dpi=120)
    print(f"\nplot: {out / 'samplers.png'}")


def _overhead_space() -> search.Space:
    """A joint space whose evaluation is a compile and nothing else (a callback scores it)."""
    return search.Space(network=search.families.cnn(stages=2),
                        network_knobs={"s0.width": [8, 16, 24, 32], "s1.width": [16, 32, 48], "s0.kernel": [3, 5],
                                       "s1.kernel": [3, 5], "s0.depth": 1, "s1.depth": 1},
                        hardware={"xbar_rows": [64, 128, 256], "adc_bits": {"low": 4, "high": 8},
                                  "tiles": {"low": 1, "high": 84}},
                        target="rram-256", data="digits",
                        objectives={"accuracy": "max", "latency_ns": "min", "chip_area_mm2": "min"},
                        evaluator=search.Callback(lambda model, config: {"accuracy": 0.5}, ("accuracy",)))


def overhead(args) -> None:
    import pgcluster

    space = _overhead_space()
    print(f"engine overhead per trial at {args.trials} trials (NSGA-II, population 10): the trial's wall time "
          "less compile and evaluation\n")
    print("| storage | trials/s | engine ms/trial (mean) | first 100 | last 100 | evaluated (not cached) |")
    print("|---|---|---|---|---|---|")
    stores = [("in memory", None), ("SQLite", "sqlite"), ("PostgreSQL", "pg")]
    for label, kind in stores:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            if kind == "pg":
                if pgcluster.bindir() is None:
                    print(f"| {label} | (not installed) | | | | |")
                    continue
                ctx = pgcluster.cluster()
            else:
                from contextlib import nullcontext

                ctx = nullcontext(None if kind is None else f"sqlite:///{tmp}/s.db")
            with ctx as url:
                t0 = time.perf_counter()
                r = search.run(space, trials=args.trials, seed=0, storage=url, progress=False, final=False)
                wall = time.perf_counter() - t0
                trials = sorted(r.trials(), key=lambda t: t.number)
                eng = []
                for t in trials:
                    total = (t.datetime_complete - t.datetime_start).total_seconds()
                    inner = t.user_attrs["seconds"].get("total", 0.0)
                    eng.append(1e3 * max(0.0, total - inner))
                between = wall / len(trials) * 1e3 - statistics.mean(t.user_attrs["seconds"].get("total", 0) * 1e3
                                                                     for t in trials)
                evaluated = sum("cached_from" not in t.user_attrs for t in trials)
                print(f"| {label} | {len(trials) / wall:.1f} | {between:.1f} (in the trial: "
                      f"{statistics.mean(eng):.1f}) | {statistics.mean(eng[:100]):.1f} | "
                      f"{statistics.mean(eng[-100:]):.1f} | {evaluated} |")
                sys.stdout.flush()


def speed(args) -> None:
    space = search.Space.from_toml(MBV3)
    ev = space.evaluator
    data = search.SearchData.load(space.data, space.options.get("val_fraction", 0.1),
                                  space.options.get("train_samples"), space.options.get("val_samples"))
    t0 = time.perf_counter()
    ev.supernet(space.network, space.net_knobs, data)
    print(f"supernet: {'trained in %.1f min' % (ev.train_seconds / 60) if ev.train_seconds else 'from the cache'} "
          f"({time.perf_counter() - t0:.1f} s here)")
    t0 = time.perf_counter()
    r = search.run(space, trials=args.trials, seed=0, progress=False, final=False)
    wall = time.perf_counter() - t0
    trials = r.trials()
    parts = {k: sum(t.user_attrs["seconds"].get(k, 0.0) for t in trials) for k in ("train", "compile", "chip")}
    print(f"{len(trials)} trials in {wall / 60:.2f} min: {len(trials) / wall:.2f} candidates/s; "
          f"of that, members from the supernet {parts['train']:.0f} s, compiles {parts['compile']:.0f} s; "
          f"{len(r.feasible())} feasible, {len(r.pareto())} on the front, "
          f"{sum('cached_from' in t.user_attrs for t in trials)} cached")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["samplers", "overhead", "speed"])
    ap.add_argument("--trials", type=int)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    args.trials = args.trials or {"samplers": 100, "overhead": 1000, "speed": 200}[args.what]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    {"samplers": samplers, "overhead": overhead, "speed": speed}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
