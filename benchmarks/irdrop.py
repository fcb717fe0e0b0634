"""IR drop: the simulator's model against the exact resistive network, and what it costs in
accuracy as crossbars grow.

    .venv/bin/python benchmarks/irdrop.py [--quick]

Table 1: random 2-bit cells (levels 0..3 over 0..40 uS, g_max of Wan et al. 2022's NeuRRAM
fit), every row driven at the same voltage, 0.35 Ohm between cells (aihwkit's default):
the column-current loss the exact nodal solve gives (`cimc.sim.physics.ir_drop_exact`), the
simulator's resummed first order, and the plain first order.

Table 2: an MLP trained on Fashion-MNIST (784-256-256-10: blocks as tall as the crossbar;
digits and 64 inputs where Fashion-MNIST is not installed), compiled for square crossbars of
32..512 cells on a 40 uS device with 0.35 and 1 Ohm wires: ideal cells, 8-bit ADC, accuracy with and without the wires, and the mean relative
error IR drop makes in the logits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cimc  # noqa: E402
from cimc.data import DataError, load_dataset  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.sim import Simulator  # noqa: E402
from cimc.sim.physics import ir_drop_conductances, ir_drop_exact  # noqa: E402
from cimc.train import fit  # noqa: E402


def model_table(sizes):
    rng = np.random.default_rng(0)
    dg = 40e-6 / 3
    r = 0.35
    print("| crossbar | exact loss | simulator (resummed) | plain first order | max column error (simulator) |")
    print("|---|---|---|---|---|")
    for n in sizes:
        lv = rng.integers(0, 4, (n, n)).astype(float)
        v = np.full(n, 0.2)
        exact = ir_drop_exact(lv * dg, v, r) / (0.2 * dg)
        ideal = lv.sum(0)
        u = torch.tensor(lv)
        sim = ir_drop_conductances(u, r * dg).sum(0).numpy()
        j = torch.arange(n)
        k_row = (torch.minimum(j[:, None], j[None, :]) + 1).double()
        k_col = (n - torch.maximum(j[:, None], j[None, :])).double()
        plain = (u * (1 - r * dg * (u @ k_row + k_col @ u))).sum(0).numpy()
        def loss(a, ideal=ideal):
            return (ideal - a).sum() / ideal.sum()

        err = np.abs(sim - exact).max() / ideal.max()
        print(f"| {n} x {n} | {loss(exact):.2%} | {loss(sim):.2%} | {loss(plain):.2%} | {err:.2%} |")


def mlp(inputs):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(inputs, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def accuracy_table(sizes, wires):
    try:
        d = load_dataset("fashion-mnist")
        epochs = 4
    except DataError:
        d, epochs = load_dataset("digits"), 20
    print(f"MLP on {d.name}, {min(2000, len(d.y_test))} test images\n")
    shape = d.x_train.shape[1:]
    torch.manual_seed(0)
    net = fit(mlp(int(np.prod(shape))), d.x_train, d.y_train, epochs=epochs, batch=128, lr=3e-3, seed=0)
    model = export_torch(net, torch.zeros(1, *shape))
    x, y = d.x_test[:2000], d.y_test[:2000]
    print("| crossbar | wire | crossbars used | accuracy, no IR drop | with IR drop | logit error |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for wire in wires:
            module = cimc.compile(model, "rram-256", "baseline", xbar_rows=n, xbar_cols=n, r_on_kohm=25.0,
                                  wire_ohm=wire).module
            used = len({(o["tile"], o["xbar"]) for o in module.ops if o.kind == "map.place"})
            outs = []
            for ir in (False, True):
                sim = Simulator(model, module, ir_drop=ir)
                sim.calibrate(d.x_train[:64])
                outs.append(sim.run(x, "quant"))
            acc = [float((o.argmax(1) == y).mean()) for o in outs]
            err = float(np.abs(outs[1] - outs[0]).mean() / np.abs(outs[0]).mean())
            print(f"| {n} x {n} | {wire:g} Ohm | {used} | {acc[0]:.2%} | {acc[1]:.2%} | {err:.2%} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    model_table((16, 64) if args.quick else (16, 32, 64, 128, 256))
    print()
    accuracy_table((64, 256) if args.quick else (32, 64, 128, 256, 512), (0.35,) if args.quick else (0.35, 1.0))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
