"""cimc's crossbar simulator against IBM aihwkit's pure-torch inference tile, on the same trained
digits CNN and the same test images.

    bash benchmarks/get_aihwkit.sh                 # once: aihwkit's Python sources, nothing built
    .venv/bin/python benchmarks/aihwkit_check.py [--draws 30] [--quick]

aihwkit is an optional extra for this benchmark only (it is found on the path the script above
prints, under ~/.cache/cimc/aihwkit, or installed). The table gives each simulator's mean accuracy
over its Monte Carlo draws with its standard error, and whether the two agree within two standard
errors of their difference. Where their models coincide they must agree; where they do not, the
row says how they differ.

How the two are matched (the assumptions):
- one device per weight and sign in both: cimc with 9-bit weights in 8-bit cells (magnitudes
  0..255 on a cell's 256 levels, one cell, differential pair), aihwkit's SinglePairConductance
  converter (w_max of each layer on g_max); aihwkit leaves weights unquantised (9 bits: < 0.2%);
- inputs: cimc 16-bit inputs through a 16-bit DAC (one read) and no ADC in the noise rows; aihwkit
  with a perfect forward (no DAC, ADC or output noise);
- programming noise: Gaussian with a constant sigma of sigma x g_max per device in both
  (aihwkit's StateIndependentNoiseModel with no drift and no read noise); both clip at 0 S,
  cimc also at g_max (a device cannot be programmed past its range);
- drift: aihwkit's PCMLikeNoiseModel against cimc's "pcm-nandakumar2019" model (the same
  published fit), at 1 h, 1 day and 1 year, with and without global drift compensation;
- ADC rows are given side by side but are not the same model: aihwkit normalises each input
  vector by its abs-max (noise management) and converts the differential current once per
  column over a fixed bound; cimc converts each column of the pair over a range calibrated on
  training images, with static input ranges.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cimc.search.networks import small_cnn  # noqa: E402

from cimc.accuracy import evaluate_accuracy  # noqa: E402
from cimc.data import load_dataset  # noqa: E402
from cimc.frontend import export_torch  # noqa: E402
from cimc.sim import Variation  # noqa: E402
from cimc.train import fit  # noqa: E402

CACHE = Path(os.environ.get("CIMC_CACHE", Path.home() / ".cache" / "cimc"))


def import_aihwkit():
    try:
        import aihwkit  # noqa: F401
    except ImportError:
        for src in sorted((CACHE / "aihwkit").glob("aihwkit-*/src")):
            sys.path.insert(0, str(src))
        try:
            import aihwkit  # noqa: F401
        except ImportError:
            sys.exit("aihwkit is not available: run `bash benchmarks/get_aihwkit.sh` first.")
    import aihwkit

    return aihwkit


def trained_cnn(d):
    torch.manual_seed(0)
    return fit(small_cnn((8, 16), image=8), d.x_train, d.y_train, epochs=30, batch=64, lr=5e-3, seed=0)


def accuracy_torch(model, x, y):
    with torch.no_grad():
        out = model(torch.as_tensor(x))
    return float((out.argmax(1).numpy() == y).mean())


def output_bounds(net, x):
    """Per Conv/Linear layer, the largest |output| of its analog tile on inputs x, in the tile's
    units (abs-max weight 1, each input vector scaled to abs-max 1 by noise management): the ADC
    range a calibrated aihwkit tile would use."""
    bounds, hooks = {}, []

    def hook(name, m):
        def f(mod, inp, out):
            v = inp[0]
            if isinstance(mod, torch.nn.Conv2d):
                cols = torch.nn.functional.unfold(v, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
                vecs = cols.transpose(1, 2).reshape(-1, cols.shape[1])
                w = mod.weight.reshape(mod.weight.shape[0], -1)
            else:
                vecs, w = v.reshape(-1, v.shape[-1]), mod.weight
            vecs = vecs / vecs.abs().amax(1, keepdim=True).clamp_min(1e-12)
            o = vecs @ (w / w.abs().max()).t()
            bounds[name] = max(bounds.get(name, 0.0), float(o.abs().max()))
        return f

    for name, m in net.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            hooks.append(m.register_forward_hook(hook(name, m)))
    with torch.no_grad():
        net(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return bounds


def aihwkit_runs(net, x, y, *, noise=None, draws=1, t=0.0, compensate=False, adc_bits=None, seed=0, bounds=None):
    """aihwkit's accuracy per draw (one draw = one programming of the analog weights). bounds:
    per layer ADC bound (`output_bounds`), else aihwkit's default."""
    from aihwkit.nn.conversion import convert_to_analog

    if bounds:  # one configuration per layer, each with its own ADC bound
        accs = []
        for k in range(draws):
            torch.manual_seed(seed * 1000 + k)
            analog = copy.deepcopy(net)
            for name, m in list(analog.named_modules()):
                if name in bounds:
                    cfg = layer_config(adc_bits, noise, compensate)
                    cfg.forward.out_bound = bounds[name]
                    parent = analog.get_submodule(name.rsplit(".", 1)[0]) if "." in name else analog
                    setattr(parent, name.rsplit(".", 1)[-1], convert_to_analog(m, cfg))
            analog.eval()
            accs.append(accuracy_torch(analog, x, y))
        return accs
    cfg = layer_config(adc_bits, noise, compensate)
    accs = []
    for k in range(draws):
        torch.manual_seed(seed * 1000 + k)
        analog = convert_to_analog(copy.deepcopy(net), cfg)
        analog.eval()
        if noise is not None:
            analog.drift_analog_weights(t)  # programs (noise) and drifts to t
        accs.append(accuracy_torch(analog, x, y))
    return accs


def layer_config(adc_bits, noise, compensate):
    """aihwkit's torch inference tile: each layer's abs-max weight on g_max, one tile per layer,
    a perfect forward (adc_bits None) or 8-bit DACs and an adc_bits ADC with no output noise."""
    from aihwkit.inference.compensation.drift import GlobalDriftCompensation
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    cfg = TorchInferenceRPUConfig()
    cfg.mapping.weight_scaling_omega = 1.0
    cfg.mapping.max_input_size = 0
    cfg.mapping.max_output_size = 0
    if adc_bits is None:
        cfg.forward.is_perfect = True
    else:
        cfg.forward.out_noise = 0.0
        cfg.forward.inp_res = 1 / (2 ** 8 - 2)
        cfg.forward.out_res = 1 / (2 ** adc_bits - 2)
    if noise is not None:
        cfg.noise_model = noise
    cfg.drift_compensation = GlobalDriftCompensation() if compensate else None
    return cfg


def cimc_runs(path, ds, *, var=Variation(), draws=1, times=(), compensate=False, adc_bits=0, one_cell=True,
              device=None):
    over = {"weight_bits": 9, "cell_bits": 8, "input_bits": 16, "dac_bits": 16, "adc_bits": 8,
            "partial_sums": "quantized", "r_on_kohm": 0.0, "on_off_ratio": 0.0} if one_cell else {}
    if device:
        over["device"] = device
        over["cell_bits"], over["weight_bits"] = 8, 9
        over["r_on_kohm"] = 0.0  # no IR drop: aihwkit's torch tile has none
    rep = evaluate_accuracy(path, "rram-256", ds, passes="baseline", variation=var, draws=draws, seed=0,
                            precision={"adc_bits": adc_bits}, times=times, compensate=compensate, **over)
    return rep


def stats(a):
    a = np.asarray(a, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0
    return float(a.mean()), float(se)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="5 draws, fewer rows")
    args = ap.parse_args(argv)
    draws = 5 if args.quick else args.draws
    import_aihwkit()
    from aihwkit.inference.noise.custom import StateIndependentNoiseModel
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    x, y = ds.x_test, ds.y_test
    net = trained_cnn(ds)
    out = CACHE / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits_cnn_check.onnx"
    onnx.save(export_torch(net, torch.zeros(1, 1, 8, 8)), path)
    rows = []  # (case, cimc mean, se, aihwkit mean, se, same model?)

    def row(case, c, a, same):
        cm, cs = stats(c)
        am, as_ = stats(a)
        gap = abs(cm - am)
        tol = 2 * math.hypot(cs, as_)
        rows.append((case, cm, cs, am, as_, same, gap <= tol or gap < 1e-9))

    ideal_c = cimc_runs(path, ds, adc_bits=0)
    row("ideal (no ADC, 16-bit inputs)", [ideal_c.quant_accuracy], aihwkit_runs(net, x, y), True)
    bounds = output_bounds(net, ds.x_train[:64])  # calibrated on the training images cimc calibrates on
    for bits in ((8, 4) if args.quick else (8, 6, 4)):
        c = cimc_runs(path, ds, adc_bits=bits)
        a = aihwkit_runs(net, x, y, adc_bits=bits, bounds=bounds)
        row(f"{bits}-bit ADC (aihwkit: bound calibrated per layer)", [c.quant_accuracy], a, False)
        c2 = cimc_runs(path, ds, adc_bits=bits, one_cell=False)
        rows.append((f"{bits}-bit ADC, cimc on rram-256 as it is (2-bit cells, 1-bit DACs, per-slice ranges)",
                     c2.quant_accuracy, 0.0, float("nan"), 0.0, False, True))
    for sigma in ((0.05, 0.1) if args.quick else (0.02, 0.05, 0.1)):
        c = cimc_runs(path, ds, var=Variation(sigma=sigma), draws=draws)
        noise = StateIndependentNoiseModel(g_max=25.0, prog_coeff=[sigma * 25.0, 0.0, 0.0], drift_nu_mean=0.0,
                                           drift_nu_std=0.0, read_noise_scale=0.0)
        a = aihwkit_runs(net, x, y, noise=noise, draws=draws)
        row(f"weight noise sigma = {sigma:g} of g_max", c.per_draw, a, True)
    times = (3600.0, 86400.0, 365.25 * 86400) if not args.quick else (86400.0,)
    labels = {3600.0: "1 h", 86400.0: "1 day", 365.25 * 86400: "1 year"}
    for comp in (False, True):
        c = cimc_runs(path, ds, var=Variation(model="pcm-nandakumar2019"), draws=draws, times=times,
                      compensate=comp, device="pcm-nandakumar2019")
        for e, t in zip(c.times, times):
            a = aihwkit_runs(net, x, y, noise=PCMLikeNoiseModel(g_max=25.0), draws=draws, t=t, compensate=comp)
            row(f"PCM drift, {labels[t]}, {'with' if comp else 'no'} compensation", e["per_draw"], a, True)

    print(f"cimc vs aihwkit {import_aihwkit().__version__} (torch inference tile), digits CNN "
          f"(float {accuracy_torch(net, x, y):.2%}), {len(y)} test images, {draws} draws per noisy case\n")
    print("| case | cimc | aihwkit | same model | agree (2 SE) |")
    print("|---|---|---|---|---|")
    for case, cm, cs, am, as_, same, ok in rows:
        other = "-" if math.isnan(am) else f"{am:.2%} ± {as_:.2%}"
        agree = ("yes" if ok else "NO") if same else "(not compared)"
        print(f"| {case} | {cm:.2%} ± {cs:.2%} | {other} | {'yes' if same else 'no'} | {agree} |")
    bad = [r[0] for r in rows if r[5] and not r[6]]
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    print(f"where the models coincide: {sum(1 for r in rows if r[5]) - len(bad)} of {sum(1 for r in rows if r[5])} "
          "cases agree within two standard errors" + (f"; disagree: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
