"""Train a small CNN on Fashion-MNIST (plain), fine-tune a copy variation-aware, export both to
ONNX, compile them for rram-256 and measure their accuracy on the simulated chip under
per-cell device variation.

    .venv/bin/python examples/fashion_mnist.py [--epochs 3] [--sigma 0.1] [--draws 5] [--limit 2000]

Needs Debian's dataset-fashion-mnist (`make data` installs it). Takes a few minutes on 2 cores.
The same from the command line, for any ONNX model:
    cimc eval out/fmnist_aware.onnx --target rram-256 --data fashion-mnist --sigma 0.1 --draws 20
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cimc  # noqa: E402
from cimc.accuracy import evaluate_accuracy  # noqa: E402
from cimc.data import load_dataset  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.search.networks import small_cnn  # noqa: E402
from cimc.sim import Variation  # noqa: E402
from cimc.train import fit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--widths", default="16,32", help="channels of the conv stages")
    ap.add_argument("--sigma", type=float, default=0.1, help="per-cell Gaussian variation, fraction of cell range")
    ap.add_argument("--train-sigma", type=float, help="sigma used in variation-aware training (default: --sigma)")
    ap.add_argument("--clip", type=float, default=2.0, help="variation-aware: clip weights to +-CLIP std (0: off)")
    ap.add_argument("--aware-epochs", type=int, default=4, help="variation-aware fine-tuning epochs")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--limit", type=int, default=2000, help="test samples to evaluate on")
    ap.add_argument("--target", default="rram-256")
    ap.add_argument("--no-per-copy", action="store_true",
                    help="variation-aware: one noise draw per layer (default: one per copy of the full mapping)")
    ap.add_argument("--no-input-quant", action="store_true",
                    help="variation-aware: leave the inputs unquantised in training (default: on the DACs' grid)")
    ap.add_argument("--out", default="out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    data = load_dataset("fashion-mnist")
    widths = tuple(int(w) for w in args.widths.split(","))
    rows = []
    plain = None
    for name, var in (("plain", None), ("aware", Variation(sigma=args.train_sigma or args.sigma))):
        t0 = time.perf_counter()
        if var is None:
            torch.manual_seed(0)  # the initial weights: the same network every run
            net = plain = fit(small_cnn(widths), data.x_train, data.y_train, epochs=args.epochs, target=args.target,
                              log=lambda s: print(f"  [plain] {s}"))
        else:  # variation-aware: fine-tune the plain network with cell noise injected, weights clipped,
            # each copy of the full pipeline's mapping with its own noise
            mapping = None
            if not args.no_per_copy:
                mapping = cimc.compile(export_torch(plain, (torch.zeros(1, 1, 28, 28),)), args.target).module
            net = fit(copy.deepcopy(plain), data.x_train, data.y_train, epochs=args.aware_epochs, lr=1e-3,
                      variation=var, clip_std=args.clip or None, target=args.target, mapping=mapping,
                      quantize_inputs=not args.no_input_quant, log=lambda s: print(f"  [aware] {s}"))
        path = out / f"fmnist_{name}.onnx"
        onnx.save(export_torch(net, (torch.zeros(1, 1, 28, 28),), dynamic_batch=True), path)
        train_s = time.perf_counter() - t0
        for passes, what in (("full", "full pipeline"), ("baseline", "one copy per layer")):
            rep = evaluate_accuracy(path, args.target, data, passes=passes, variation=Variation(sigma=args.sigma),
                                    draws=args.draws, limit=args.limit)
            print(rep.table())
            rows.append((name, what, rep, train_s))
    print(f"\n{'training':<10} {'mapping':<20} {'float':>7} {'quantised':>9} {'under var. (mean)':>17} {'p5':>7} "
          f"{'loss':>7}")
    for name, what, r, _ in rows:
        print(f"{name:<10} {what:<20} {100 * r.float_accuracy:6.2f}% {100 * r.quant_accuracy:8.2f}% "
              f"{100 * r.variation_mean:16.2f}% {100 * r.variation_p5:6.2f}% {100 * r.variation_loss:6.2f}%")


if __name__ == "__main__":
    main()
