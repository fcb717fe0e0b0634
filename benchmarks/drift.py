"""Accuracy against time since programming, on the chip as mapped.

    .venv/bin/python benchmarks/drift.py [--draws 10] [--quick]

A CNN trained on digits (the one of benchmarks/aihwkit_check.py), compiled for rram-256 with the
full pipeline (2-bit cells, 1-bit DACs, 8-bit ADCs, every copy with its own cells), read at
1 s .. 1 year after programming with each published device model the simulator has: RRAM
(Wan et al., Nature 2022: state-dependent spread after write-verify and its relaxation up to
2 days, held after) and PCM (Nandakumar et al., ICECS 2019: drift and 1/f read noise), with and
without global drift compensation; and the constant-sigma model with a power-law drift of
nu = 0.05 +- 0.02 for comparison. Each device preset's g_max, and the wires' IR drop with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.aihwkit_check import CACHE, trained_cnn  # noqa: E402
from cimc.accuracy import evaluate_accuracy, parse_time  # noqa: E402
from cimc.api import compile as compile_model  # noqa: E402
from cimc.data import load_dataset  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.sim import Variation  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    draws = 3 if args.quick else args.draws
    labels = ("1h", "1y") if args.quick else ("1s", "1h", "1d", "1w", "1y")
    times = tuple(parse_time(t) for t in labels)
    ds = load_dataset("digits")
    net = trained_cnn(ds)
    CACHE.joinpath("bench").mkdir(parents=True, exist_ok=True)
    path = CACHE / "bench" / "digits_cnn_drift.onnx"
    onnx.save(export_torch(net, torch.zeros(1, 1, 8, 8)), path)
    cases = [("RRAM (Wan et al. 2022)", "rram-wan2022", Variation(model="rram-wan2022")),
             ("PCM (Nandakumar et al. 2019)", "pcm-nandakumar2019", Variation(model="pcm-nandakumar2019")),
             ("constant sigma 0.02, nu 0.05 +- 0.02", "rram-wan2022",
              Variation(sigma=0.02, drift_nu=0.05, drift_nu_std=0.02))]
    print(f"| device | compensation | just programmed | {' | '.join(labels)} |")
    print("|---|---|---|" + "---|" * len(labels))
    notes = set()
    for name, device, var in cases:
        module = compile_model(str(path), "rram-256", "full", device=device).module
        for comp in (False, True):
            rep = evaluate_accuracy(str(path), "rram-256", ds, module=module, variation=var, draws=draws,
                                    times=times, compensate=comp)
            cells = " | ".join(f"{e['mean']:.2%} ± {e['std']:.2%}" for e in rep.times)
            print(f"| {name} | {'global' if comp else 'none'} | {rep.variation_mean:.2%} | {cells} |")
            notes.update(rep.notes)
            notes.add(f"IR drop ({device}): {rep.ir_drop}")
    print(f"\nfloat {rep.float_accuracy:.2%}, ideal chip {rep.quant_accuracy:.2%}; {draws} chips per row, "
          f"{rep.samples} test images")
    for n in sorted(notes):
        print(f"- {n}")
    print(f"({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
