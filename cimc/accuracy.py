"""Accuracy of a compiled model on the chip: float, quantised, and under device variation.

`evaluate_accuracy` compiles the model (or takes a compiled Module), calibrates the
simulator on a few training inputs, and reports accuracy
- without non-idealities (the ONNX graph in float),
- with quantisation only (weights, inputs and ADCs as the target has them, ideal cells),
- under variation: one Monte Carlo draw = one programmed chip over the whole test set;
  mean, std and 5th percentile over the draws.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cimc.api import compile as compile_model
from cimc.data import fit_inputs, load_dataset
from cimc.errors import CimcError
from cimc.sim import Precision, Simulator, Variation

SCHEMA = "cimc.accuracy/1"


@dataclass
class AccuracyReport:
    model: str
    target: str
    data: str
    samples: int
    precision: dict
    variation: dict
    draws: int
    seed: int
    float_accuracy: float
    quant_accuracy: float
    variation_mean: float | None = None
    variation_std: float | None = None
    variation_p5: float | None = None
    variation_loss: float | None = None  # float_accuracy - variation_mean
    per_draw: list = field(default_factory=list)
    crossbars: int = 0
    seconds: float = 0.0
    # per crossbar layer: mean DAC digit of its inputs over full scale on the test data (1 = every
    # row driven in every read, the cost model's worst case); `cimc compile --input-density` takes it
    input_density: dict = field(default_factory=dict)
    # accuracy against time since programming (cimc eval --time): one entry per time, each with
    # t_s, label, mean, std, p5, per_draw; drift compensation and what the device data covers
    times: list = field(default_factory=list)
    drift_compensation: bool = False
    ir_drop: str = ""  # how the wires' IR drop was modelled, or why not
    notes: list = field(default_factory=list)
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        p = self.precision
        pct = lambda v: "-" if v is None else f"{100 * v:6.2f} %"  # noqa: E731
        lines = [f"{self.model} on {self.target} ({self.crossbars} crossbars), data {self.data}, "
                 f"{self.samples} test samples",
                 f"  float, no non-idealities       {pct(self.float_accuracy)}",
                 f"  quantised ({p['weight_bits']}b weights in {p['cell_bits']}b cells, {p['input_bits']}b inputs "
                 f"by {p['dac_bits']}b DAC, {p['adc_bits'] or 'no'}-bit ADC)  {pct(self.quant_accuracy)}"]
        if self.draws:
            v = ", ".join(f"{k}={val}" for k, val in self.variation.items() if val)
            lines.append(f"  under variation ({v or 'none'}; {self.draws} draws)")
            lines.append(f"    mean {pct(self.variation_mean)}   std {pct(self.variation_std)}   "
                         f"5th percentile {pct(self.variation_p5)}   loss vs float {pct(self.variation_loss)}")
        if self.times:
            comp = "with" if self.drift_compensation else "without"
            lines.append(f"  against time since programming ({comp} drift compensation; {self.draws} draws)")
            for e in self.times:
                lines.append(f"    {e['label']:>8}   mean {pct(e['mean'])}   std {pct(e['std'])}   "
                             f"5th percentile {pct(e['p5'])}")
        if self.ir_drop:
            lines.append(f"  IR drop: {self.ir_drop}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.input_density:
            d = list(self.input_density.values())
            lines.append(f"  input density {min(d):.3f}..{max(d):.3f} over {len(d)} layers (mean "
                         f"{sum(d) / len(d):.3f}): the rows' drive against every row in every read; give this "
                         "report to cimc compile --input-density")
        lines.append(f"  ({self.seconds:.1f} s)")
        return "\n".join(lines)


UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 365.25 * 86400.0}


def parse_time(text: str) -> float:
    """'1h', '30min', '2d', '1y', '10s' or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(s|min|h|d|w|y)?\s*", str(text))
    if not m:
        raise CimcError(f"time '{text}' is not a time; write a number with a unit: s, min, h, d, w or y "
                        "(e.g. 1h, 1d, 1y).")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def time_label(t: float) -> str:
    """Seconds in the largest unit they reach: 3600 -> '1h'."""
    unit = next((u for u in ("y", "w", "d", "h", "min") if t >= UNITS[u]), "s")
    return f"{t / UNITS[unit]:.3g}{unit}"


def _accuracy(out: np.ndarray, y: np.ndarray) -> float:
    logits = out.reshape(len(out), -1)
    if logits.shape[1] < int(y.max()) + 1:
        raise CimcError(f"the model gives {logits.shape[1]} outputs per sample but the labels go up to {int(y.max())}; "
                        "use data whose classes match the model's outputs.")
    return float((logits.argmax(1) == y).mean())


def _classes(module) -> int | None:
    """Outputs per sample of the module's first output (None when its shape is not known)."""
    out = next((op for op in module.ops if op.kind == "nn.output"), None)
    if out is None or not out.operands:
        return None
    producer = next((op for op in module.ops if op.result == out.operands[0]), None)
    shape = producer.get("shape") if producer is not None else None
    if not shape or len(shape) < 2:
        return None
    return int(np.prod(shape[1:]))


def evaluate_accuracy(model, target="rram-256", data="digits", *, passes: str = "full", budget: int | None = None,
                      variation: Variation = Variation(), draws: int = 10, seed: int = 0, limit: int | None = None,
                      calib: int = 64, module=None, precision: dict | None = None, batch: int = 256,
                      times: tuple = (), compensate: bool = False, ir_drop: bool = True,
                      **target_overrides) -> AccuracyReport:
    """Accuracy of `model` (an .onnx path or ModelProto with weights) mapped on `target`.

    data: 'digits', 'fashion-mnist', an .npz path, or a `cimc.data.Dataset`.
    module: a compiled Module to simulate instead of compiling here.
    precision: overrides of weight_bits, cell_bits, input_bits, dac_bits, adc_bits
    (adc_bits 0 = no ADC quantisation) for the simulation only.
    times: seconds since programming to read each chip at (accuracy against time); compensate:
    global drift compensation; ir_drop: model the wires' IR drop (where the device gives g_max).
    """
    t0 = time.perf_counter()
    if draws < 0:
        raise CimcError(f"draws = {draws} must be 0 or more.")
    if calib < 1:
        raise CimcError(f"calib = {calib} must be at least 1 sample.")
    ds = data if hasattr(data, "x_test") else load_dataset(str(data))
    if module is None:
        module = compile_model(model, target, passes, budget=budget, **target_overrides).module
    where = str(model) if isinstance(model, (str, Path)) else module.name
    shape = next(op["shape"] for op in module.ops if op.kind == "nn.input")
    x, y = ds.x_test, ds.y_test
    if limit is not None:
        if limit < 1:
            raise CimcError(f"limit = {limit} must be at least 1 sample.")
        x, y = x[:limit], y[:limit]
    outputs = _classes(module)
    if outputs is not None and len(y) and int(y.max()) >= outputs:
        raise CimcError(f"{where}: the model gives {outputs} outputs per sample but the labels of '{ds.name}' go up to "
                        f"{int(y.max())}; use data whose classes match the model's outputs.")
    x = fit_inputs(x, shape, where, ds.name)
    xc = ds.x_train[:calib] if len(ds.x_train) else ds.x_test[:calib]
    xc = fit_inputs(xc, shape, where, ds.name)
    prec = Precision.of(module.target, **(precision or {}))
    times = tuple(times)
    if any(not (isinstance(t, (int, float)) and t >= 0) for t in times):
        raise CimcError(f"times {list(times)} must be seconds >= 0.")
    sim = Simulator(model, module, prec, variation, seed, ir_drop=ir_drop)
    float_acc = _accuracy(sim.run(x, "float", batch), y)
    sim.calibrate(xc)
    quant_acc = _accuracy(sim.run(x, "quant", batch, measure=True), y)
    per_draw = []
    at_time = {t: [] for t in times}
    if draws and (not variation.ideal or (times and variation.drifts)):
        for d in range(draws):
            sim.program(d)
            per_draw.append(_accuracy(sim.run(x, "quant", batch), y))
            for t in times:
                sim.program(d, t, compensate)
                at_time[t].append(_accuracy(sim.run(x, "quant", batch), y))
    rep = AccuracyReport(where, module.target.name, ds.name, len(x), asdict(prec), asdict(variation),
                         len(per_draw), seed, float_acc, quant_acc, per_draw=per_draw,
                         crossbars=len({(o["tile"], o["xbar"]) for o in module.ops if o.kind == "map.place"}))
    rep.input_density = sim.input_densities()
    rep.drift_compensation = bool(compensate and times)
    for t, accs in at_time.items():
        a = np.array(accs) if accs else np.array([quant_acc])
        rep.times.append({"t_s": t, "label": time_label(t), "mean": float(a.mean()), "std": float(a.std()),
                          "p5": float(np.percentile(a, 5)), "per_draw": accs})
    fit = variation.fit
    if times and not variation.drifts:
        rep.notes.append(f"the device model ({variation.model}, drift_nu {variation.drift_nu:g}) has no change "
                         "with time: every time reads the chip as programmed")
    if fit is not None and fit.relax and times and max(times) > fit.relax[-1][0]:
        rep.notes.append(f"{fit.name}: measured up to {time_label(fit.relax[-1][0])}; later times hold that "
                         "spread (no data beyond it)")
    t_ = module.target
    if not ir_drop:
        rep.ir_drop = "off (asked)"
    elif not t_.r_on_kohm:
        rep.ir_drop = (f"not modelled: the device ({t_.device or 'none'}) gives no r_on_kohm, so g_max is not "
                       "known; set r_on_kohm (or a device preset with it)")
    elif not t_.wire_ohm:
        rep.ir_drop = "none (wire_ohm = 0)"
    else:
        g_min = f"on/off {t_.on_off_ratio:g}" if t_.on_off_ratio else "g_min 0"
        rep.ir_drop = f"first order, {t_.wire_ohm:g} Ohm per cell, g_max {1000 / t_.r_on_kohm:g} uS, {g_min}"
    if per_draw:
        a = np.array(per_draw)
        rep.variation_mean, rep.variation_std = float(a.mean()), float(a.std())
        rep.variation_p5 = float(np.percentile(a, 5))
        rep.variation_loss = float_acc - rep.variation_mean
    rep.seconds = time.perf_counter() - t0
    return rep
