"""The simulator's device and array physics, each against a hand-worked or exactly solved case:
the device's conductance range and g_min, state-dependent programming noise, drift and its
compensation, relaxation over time, IR drop against the exact resistive network, per-slice ADC
ranges, and the collapsed path taken only where it is provably exact."""

import math

import numpy as np
import pytest
import torch
from cimc.search.networks import small_cnn
from cimc.targets import NOISE_MODELS, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

from cimc.accuracy import parse_time, time_label
from cimc.errors import CimcError
from cimc.sim import Precision, SimError, Simulator, Variation
from cimc.sim.crossbar import adc_is_exact
from cimc.sim.devices import perturb
from cimc.sim.physics import FITS, MODELS, Range, ir_drop_conductances, ir_drop_exact, relaxation_sigma
from tests.test_sim import compiled, convbn, export, inputs  # noqa: F401  (convbn: a fixture)


def test_the_targets_and_the_simulator_name_the_same_models():
    assert tuple(NOISE_MODELS) == tuple(MODELS)
    for name in FITS:
        assert "et al." in FITS[name].source  # each fit names its measurement


# ---- the conductance range ----------------------------------------------------------------
def test_range_in_level_units():
    # NeuroSim's binary RRAM: R_on 100 kOhm (g_max 10 uS), on/off 17: g_min = 10/17 uS
    rng = Range.of(load_target("neurosim"))
    assert rng.levels == 2 and rng.g_max_us == pytest.approx(10.0)
    assert rng.l_min == pytest.approx(1 / 16)  # g_min / one step = (10/17) / (10 - 10/17)
    assert rng.dg_us == pytest.approx(10 - 10 / 17)
    assert rng.span == pytest.approx(1 + 1 / 16)


def test_programmed_cells_never_leave_the_range():
    p = Precision.of(load_target("rram-256"))
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 4, (50_000,)).float()
    for var in (Variation(sigma=0.5), Variation(lognormal=0.8), Variation(model="rram-wan2022", scale=5.0),
                Variation(model="pcm-nandakumar2019", scale=3.0)):
        for t in (0.0, 3600.0, 3e7):
            cells = perturb(levels, p, var, gen, Range(4, 10.0, 40.0), t)
            assert float(cells.min()) >= 0.0 and float(cells.max()) <= 3.0


def test_state_dependent_noise_follows_the_fit():
    """Wan et al. 2022 (aihwkit's fit): sigma(g) = poly(g / g_max) uS at g_max 40 uS. A cell at
    level 2 of 4 (g = 2/3 g_max, g_min = 0) has sigma = poly(2/3) / 40 x 3 levels."""
    fit = FITS["rram-wan2022"]
    g = 2 / 3
    sigma_us = sum(c * g ** i for i, c in enumerate(fit.prog))
    p = Precision.of(load_target("rram-256"))
    cells = perturb(torch.full((400_000,), 2.0), p, Variation(model="rram-wan2022"), torch.Generator().manual_seed(1),
                    Range(4, 0.0, 40.0))
    assert float(cells.std()) == pytest.approx(sigma_us / 40 * 3, rel=0.01)
    # and it is state dependent: the spread at g_max is not the spread at 2/3 g_max
    top = perturb(torch.full((400_000,), 1.0), p, Variation(model="rram-wan2022"), torch.Generator().manual_seed(1),
                  Range(4, 0.0, 40.0))
    assert abs(float(top.std()) - float(cells.std())) > 0.005


def test_g_min_offset_is_removed_where_nothing_clips(convbn):
    """With no ADC the periphery's removal of g_min x (sum of digits) is exact: a finite on/off
    ratio gives the same outputs as an infinite one. With an ADC the offset uses part of its range
    (the calibrated range grows by what g_min conducts)."""
    x = inputs((1, 2, 10, 10))
    outs, highs = [], []
    for on_off in (0.0, 5.0):
        module = compiled(convbn, target="rram-256", on_off_ratio=on_off, r_on_kohm=25.0, wire_ohm=0.0)
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=0))
        sim.calibrate(x)
        outs.append(sim.run(x, "quant"))
        sim8 = Simulator(convbn, module)
        sim8.calibrate(x)
        highs.append(max(float(layer.p_hi.max()) for layer in sim8.layers.values()))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    assert highs[1] > highs[0]


# ---- time ----------------------------------------------------------------------------------
def test_power_law_drift_by_hand_and_compensation_undoes_it(convbn):
    """drift_nu = 0.05 with no spread and no other noise: every cell is g(t) = g(0) ((t+1)/1)^-0.05
    (t0 = 1 s), so with no ADC and g_min = 0 the outputs shrink by exactly that factor, and global
    drift compensation brings them back."""
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    var = Variation(drift_nu=0.05)
    sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=0), var)
    sim.calibrate(x)
    ref = sim.run(x, "quant")
    sim.program(0, 0.0)
    np.testing.assert_allclose(sim.run(x, "quant"), ref, rtol=1e-5, atol=1e-5)
    t = 86400.0
    sim.program(0, t)
    assert np.abs(sim.run(x, "quant") - ref).max() > 1e-3  # the outputs moved
    factor = (t + 1.0) ** -0.05
    sim_nb = Simulator(convbn, module, Precision.of(module.target, adc_bits=0), var)
    sim_nb.calibrate(x)
    layer = next(iter(sim_nb.layers.values()))
    sim_nb.program(0, t)
    cells = layer.cells[0][2][0]
    sim_nb.program(0, 0.0)
    cells0 = layer.cells[0][2][0]
    np.testing.assert_allclose(cells.numpy(), cells0.numpy() * factor, rtol=1e-5, atol=1e-6)
    sim.program(0, t, compensate=True)
    np.testing.assert_allclose(sim.run(x, "quant"), ref, rtol=1e-4, atol=1e-4)


def test_the_same_chip_is_followed_through_time(convbn):
    """A draw is one chip: reading it at t twice gives the same cells; its programming noise does
    not change with t (only what time adds)."""
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn, r_on_kohm=40.0, wire_ohm=0.0)
    sim = Simulator(convbn, module, variation=Variation(model="pcm-nandakumar2019"))
    sim.calibrate(x)
    sim.program(3, 3600.0)
    a = sim.run(x, "quant")
    sim.program(3, 3600.0)
    np.testing.assert_array_equal(sim.run(x, "quant"), a)
    sim.program(3, 3.15e7)
    assert np.abs(sim.run(x, "quant") - a).max() > 0


def test_relaxation_grows_between_the_measured_times_and_holds_after():
    fit = FITS["rram-wan2022"]
    rng = Range(4, 0.0, 40.0)
    lv = torch.tensor([1.0, 2.0])
    s = [relaxation_sigma(lv, rng, fit, 1.0, t) for t in (1.0, 60.0, 3600.0, 86400.0, 172800.0, 3e7)]
    assert float(s[0].abs().max()) == 0.0
    assert all(bool((b >= a - 1e-6).all()) for a, b in zip(s, s[1:4]))  # grows up to 1 day
    torch.testing.assert_close(s[-1], s[-2])  # past the last measurement: held


def test_times_parse_and_bad_ones_are_refused():
    assert parse_time("1h") == 3600 and parse_time("2d") == 172800 and parse_time("30min") == 1800
    assert parse_time("1y") == pytest.approx(365.25 * 86400) and parse_time("10") == 10
    assert time_label(3600) == "1h" and time_label(parse_time("1y")) == "1y"
    for bad in ("1 fortnight", "-1h", "h", ""):
        with pytest.raises(CimcError, match="not a time"):
            parse_time(bad)


def test_negative_time_and_unknown_model_are_clear_errors(convbn):
    with pytest.raises(SimError, match="noise model"):
        Variation(model="magic")
    module = compiled(convbn)
    sim = Simulator(convbn, module, variation=Variation(drift_nu=0.1))
    with pytest.raises(SimError, match="time"):
        sim.program(0, -5.0)


def test_cli_eval_gives_accuracy_against_time(tmp_path, capsys):
    import json

    from cimc.cli import main

    net = small_cnn((4,), image=8)
    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(export(net, (1, 1, 8, 8)), path)
    code = main(["eval", str(path), "--data", "digits", "--limit", "40", "--draws", "2", "--set",
                 "device=pcm-nandakumar2019", "--time", "1h,1y", "--drift-compensation", "--json"])
    assert code in (0, None)
    rep = json.loads(capsys.readouterr().out)
    assert [e["label"] for e in rep["times"]] == ["1h", "1y"]
    assert rep["drift_compensation"] and all(len(e["per_draw"]) == 2 for e in rep["times"])
    assert rep["variation"]["model"] == "pcm-nandakumar2019" and rep["ir_drop"].startswith("first order")
    assert main(["eval", str(path), "--data", "digits", "--time", "soon"]) == 1
    assert "not a time" in capsys.readouterr().err


# ---- IR drop -------------------------------------------------------------------------------
def test_ir_drop_first_order_matches_the_exact_network_on_a_small_crossbar():
    """8 x 6 crossbar of random conductances (1-40 uS), 1 Ohm wires, random row voltages: the
    model's column currents agree with the exact nodal solve to well within the drop itself."""
    rng = np.random.default_rng(0)
    n, m, r = 8, 6, 1.0
    g = rng.uniform(1e-6, 40e-6, (n, m))
    v = rng.uniform(0, 0.2, n)
    exact = ir_drop_exact(g, v, r)
    ideal = v @ g
    dg = 1e-6  # level unit: 1 uS
    model = v @ ir_drop_conductances(torch.tensor(g / dg), r * dg).numpy() * dg
    drop = ideal - exact
    assert drop.min() > 0  # the wires lose current
    assert np.abs(model - exact).max() < 0.01 * drop.max()


def test_ir_drop_exact_solver_on_a_hand_worked_case():
    """One cell: driver -r- row node -g- column node -r- sense amp: I = V / (2 r + 1 / g)."""
    got = ir_drop_exact(np.array([[1e-3]]), np.array([1.0]), 10.0)
    assert got[0] == pytest.approx(1.0 / (20.0 + 1000.0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 24), r_dg=st.floats(1e-6, 1e-3), level=st.integers(1, 3))
def test_a_bigger_crossbar_loses_more_current(n, r_dg, level):
    """Physics: the same cells on longer wires conduct less (per cell), and no cell gains."""
    small = ir_drop_conductances(torch.full((n, n), float(level)), r_dg)
    big = ir_drop_conductances(torch.full((n + 4, n + 4), float(level)), r_dg)
    assert float(small.max()) <= level
    assert float(big.sum(0).mean()) / (n + 4) < float(small.sum(0).mean()) / n


def test_ir_drop_costs_accuracy_on_bigger_crossbars():
    """A trained digits network on 64 x 64 and 512 x 512 crossbars of 40 uS cells and 2.5 Ohm wires:
    the bigger crossbar holds bigger blocks, whose columns lose more current."""
    from cimc.data import load_dataset
    from cimc.train import fit

    d = load_dataset("digits")
    net = fit(small_cnn((16,), image=8), d.x_train, d.y_train, epochs=8, batch=64, lr=5e-3, seed=0)
    model = export(net, (1, 1, 8, 8))
    x = d.x_test[:200].reshape(-1, 1, 8, 8)
    err = {}
    for size in (64, 512):
        module = compiled(model, target=f"rram-{'512' if size == 512 else '128'}", xbar_rows=size, xbar_cols=size,
                          r_on_kohm=25.0, wire_ohm=2.5)
        off = Simulator(model, module, Precision.of(module.target, adc_bits=0), ir_drop=False)
        on = Simulator(model, module, Precision.of(module.target, adc_bits=0))
        off.calibrate(x)
        on.calibrate(x)
        a, b = off.run(x, "quant"), on.run(x, "quant")
        err[size] = float(np.abs(a - b).mean() / np.abs(a).mean())
    assert 0 < err[64] < err[512]


# ---- ADC ranges and the collapsed path ---------------------------------------------------------
def test_adc_ranges_are_per_slice(convbn):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    sim = Simulator(convbn, module)
    sim.calibrate(x)
    layer = next(iter(sim.layers.values()))
    AS = module.target.cols_per_weight
    assert layer.p_hi.shape == (AS,)
    # the most significant slice holds the fewest high levels: its range is the smallest
    assert float(layer.p_hi[AS // 2 - 1]) < float(layer.p_hi[0])


def test_collapsed_path_is_taken_only_where_exact_and_then_equals_the_per_read_path(convbn):
    """ISAAC-like exact reads: 8 rows of 2-bit cells with 1-bit DACs make at most 24 < 2^5: a 5-bit ADC
    changes nothing, so the simulator takes one matmul; forcing the per-read path gives the same."""
    x = inputs((1, 2, 10, 10), signed=False)
    module = compiled(convbn, rows_per_read=8)
    p = Precision.of(module.target, adc_bits=6)
    sim = Simulator(convbn, module, p)
    sim.calibrate(x)
    assert all(adc_is_exact(sim, layer) for layer in sim.layers.values())
    fast = sim.run(x, "quant")
    import cimc.sim.crossbar as cb

    orig = cb.adc_is_exact
    cb.adc_is_exact = lambda sim, layer: False
    try:
        slow = sim.run(x, "quant")
    finally:
        cb.adc_is_exact = orig
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    # a 4-bit ADC would clip: not exact, the per-read path
    sim4 = Simulator(convbn, module, Precision.of(module.target, adc_bits=4))
    sim4.calibrate(x)
    assert not any(adc_is_exact(sim4, layer) for layer in sim4.layers.values())
    # variation: never
    simv = Simulator(convbn, module, p, Variation(sigma=0.05))
    simv.calibrate(x)
    simv.program(0)
    assert not any(adc_is_exact(simv, layer) for layer in simv.layers.values())
    assert math.isfinite(float(np.abs(fast).sum()))


# ---- per-read noise at the columns and the rows ----------------------------------------------
@pytest.mark.parametrize("kind", ["out", "dac"])
def test_column_and_row_noise_have_the_hand_worked_spread(kind):
    """One Linear layer (4 -> 3) on rram-256 (differential, 8-bit weights in four 2-bit slices,
    8-bit inputs by 1-bit DAC: 8 reads), no ADC, zero inputs: the outputs are the noise alone.
    Column noise s per read and physical column: var y = s^2 sum_t 4^t x 2 sum_s 16^s.
    Row noise s per read and row: var y_j = s^2 sum_t 4^t sum_i w_ij^2 (w: integer weights)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3, bias=False)
    model = export(net, (1, 4))
    module = compiled(model)
    s = 0.3
    var = Variation(out_sigma=s) if kind == "out" else Variation(dac_sigma=s)
    sim = Simulator(model, module, Precision.of(module.target, adc_bits=0), var)
    sim.calibrate(np.abs(np.random.default_rng(0).standard_normal((64, 4))).astype(np.float32))
    sim.program(0)
    y = sim.run(np.zeros((20_000, 4), np.float32), "quant")
    layer = next(iter(sim.layers.values()))
    scale = layer.s_w * layer.s_x
    reads = sum(4.0 ** t for t in range(8))
    if kind == "out":
        expect = np.full(3, s * math.sqrt(reads * 2 * sum(16.0 ** k for k in range(4))))
    else:
        w = layer.q[0].numpy()  # [rows, cols] integer weights
        expect = s * np.sqrt(reads * (w ** 2).sum(0))
    np.testing.assert_allclose(y.std(0) / scale, expect, rtol=0.03)
    assert np.abs(y.mean(0) / scale).max() < 0.05 * expect.max()


def test_training_with_the_chip_in_the_loop_quantises_inputs_and_leaves_nothing_behind():
    """fit(quantize_inputs=True): each layer sees its inputs on the DACs' grid in training; the
    trained model has no hooks or parametrizations left and still classifies digits."""
    from cimc.data import load_dataset
    from cimc.train import InputQuant, accuracy, fit

    d = load_dataset("digits")
    seen = []
    orig = InputQuant.__call__

    def spy(self, module, args):
        out = orig(self, module, args)
        if out is not None:
            seen.append((out[0], self.hi, self.signed, self.bits))
        return out

    InputQuant.__call__ = spy
    try:
        net = fit(small_cnn((8,), image=8), d.x_train, d.y_train, epochs=6, batch=64, lr=5e-3, seed=0,
                  variation=Variation(sigma=0.05), quantize_inputs=True)
    finally:
        InputQuant.__call__ = orig
    assert seen
    x, hi, signed, bits = seen[-1]
    step = hi / (2 ** (bits - 1) - 1 if signed else 2 ** bits - 1)
    grid = x / step
    assert torch.allclose(grid, grid.round(), atol=1e-3)  # on the grid
    for m in net.modules():
        assert not m._forward_pre_hooks and not hasattr(m, "parametrizations")
    assert accuracy(net, d.x_test, d.y_test) > 0.85


def test_training_gives_each_copy_its_own_noise_over_its_own_pixels():
    """PerCopy on a conv with 3 copies of shares 2:1:1 over a 4 x 4 output (16 pixels: 8, 4, 4):
    with a weight that changes by one on every access (standing for a fresh noise draw; the
    layer's own forward makes access 0), the pixels of copy k are computed with W + 1 + k; a
    classifier with 3 copies takes turns by sample (it keeps the layer's own draw for copy 0)."""
    from torch.nn.utils import parametrize

    from cimc.train import PerCopy

    class Count(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = -1

        def forward(self, w):
            self.k += 1
            return w + self.k

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    count = Count()
    parametrize.register_parametrization(conv, "weight", count)
    count.k = -1  # registering evaluated it once
    conv.register_forward_hook(PerCopy(3, [2, 1, 1], 4))
    conv.train()
    x = torch.randn(2, 2, 4, 4)
    y = conv(x).reshape(2, 3, 16)
    w0 = conv.parametrizations.weight.original.detach()
    for k, (a, b) in enumerate(((0, 8), (8, 12), (12, 16))):
        ref = torch.nn.functional.conv2d(x, w0 + 1 + k, conv.bias, padding=1).reshape(2, 3, 16)
        torch.testing.assert_close(y[..., a:b], ref[..., a:b], rtol=1e-4, atol=1e-4)
    fc = torch.nn.Linear(5, 2)
    count2 = Count()
    parametrize.register_parametrization(fc, "weight", count2)
    count2.k = -1
    fc.register_forward_hook(PerCopy(3, [1, 0, 0], 1))
    fc.train()
    x = torch.randn(6, 5)
    y = fc(x)
    w0 = fc.parametrizations.weight.original.detach()
    for i in range(6):
        torch.testing.assert_close(y[i], torch.nn.functional.linear(x[i], w0 + i % 3, fc.bias), rtol=1e-4, atol=1e-4)


def test_drift_alone_is_evaluated_against_time(tmp_path):
    """A chip with no programming noise still drifts: eval reads it at each time asked."""
    import onnx

    from cimc.accuracy import evaluate_accuracy

    path = tmp_path / "m.onnx"
    onnx.save(export(small_cnn((4,), image=8), (1, 1, 8, 8)), path)
    rep = evaluate_accuracy(path, "rram-256", "digits", passes="baseline", variation=Variation(drift_nu=0.2),
                            draws=2, times=(1e6,), limit=50, precision={"adc_bits": 0})
    assert len(rep.times) == 1 and len(rep.times[0]["per_draw"]) == 2 and not rep.notes
