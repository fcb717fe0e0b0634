"""Simulator speed: images per second per Monte Carlo draw vs onnxruntime's float inference
of the same model on the same machine.

    .venv/bin/python benchmarks/simulator.py [--images 2000]

Models: the project's small CNN (Fashion-MNIST size, random weights: speed does not depend
on the values) and ResNet-20 (CIFAR size). Settings: the target's 8-bit weights in 2-bit cells,
8-bit inputs through 1-bit DACs, 8-bit ADCs, Gaussian variation sigma = 0.1 (the sliced
path with an ADC per read); "no ADC" is the exact collapsed path (adc_bits = 0). Where aihwkit's sources are there
(`bash benchmarks/get_aihwkit.sh`), its torch inference tile with 8-bit DAC and ADC on the same
network is timed too (one analog MVM per layer: no bit slicing, no bit-serial reads).

Why the per-read path is slow: the chip does 8 reads (8-bit inputs, 1-bit DACs) x 4 slices
(8-bit weights, 2-bit cells) x 2 arrays (differential) = 64 column partial sums for every
multiply-accumulate of the float network, and each goes through an ADC. The simulator does
exactly that work in float32 matmuls (about 60% of its time) plus the ADC rounding, so it
cannot come near onnxruntime's float speed without leaving the per-read model.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cimc.search.networks import resnet20, small_cnn  # noqa: E402

import cimc  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.sim import Precision, Simulator, Variation  # noqa: E402


def best(fn, reps=3):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--passes", default="baseline", help="mapping pipeline (copies each get their own cells)")
    args = ap.parse_args()
    try:  # optional: aihwkit's sources (bash benchmarks/get_aihwkit.sh)
        from benchmarks.aihwkit_check import import_aihwkit

        import_aihwkit()
        aihwkit_ok = True
    except SystemExit:
        aihwkit_ok = False
    torch.manual_seed(0)
    rows = []
    for name, net, shape in (("small_cnn", small_cnn(), (1, 1, 28, 28)), ("resnet20", resnet20(), (1, 3, 32, 32))):
        net.eval()
        model = export_torch(net, (torch.zeros(shape),), dynamic_batch=True)
        x = np.random.default_rng(0).random((args.images, *shape[1:]), dtype=np.float32)
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        ort_s = best(lambda: [sess.run(None, {iname: x[i:i + 256]}) for i in range(0, len(x), 256)])
        module = cimc.compile(model, "rram-256", args.passes).module
        if aihwkit_ok:  # aihwkit's torch inference tile, 8-bit ADC and DAC, on the same network
            from aihwkit.nn.conversion import convert_to_analog

            from benchmarks.aihwkit_check import layer_config

            analog = convert_to_analog(copy.deepcopy(net), layer_config(8, None, False)).eval()
            xt = torch.as_tensor(x)
            with torch.no_grad():
                s = best(lambda: [analog(xt[i:i + 256]) for i in range(0, len(x), 256)], reps=2)
            rows.append((name, "aihwkit torch tile, 8-bit ADC", args.images / ort_s, args.images / s, s / ort_s))
        for label, prec in (("8-bit ADC", {}), ("no ADC", {"adc_bits": 0})):
            sim = Simulator(model, module, Precision.of(module.target, **prec), Variation(sigma=0.1))
            sim.calibrate(x[:64])
            sim.program(0)
            s = best(lambda: sim.run(x, "quant"), reps=2)
            rows.append((name, label, args.images / ort_s, args.images / s, s / ort_s))
    print(f"{'model':<10} {'setting':<30} {'onnxruntime img/s':>18} {'simulator img/s':>16} {'slowdown':>9}")
    for r in rows:
        print(f"{r[0]:<10} {r[1]:<30} {r[2]:>18.0f} {r[3]:>16.0f} {r[4]:>8.1f}x")


if __name__ == "__main__":
    main()
