"""The crossbar-level simulator: float path vs onnxruntime, quantised path vs an independent
fake-quantisation reference, bit-serial reads vs the collapsed arithmetic, variation."""

import io
import warnings
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import cimc
from cimc.data import DataError, fit_inputs, load_dataset
from cimc.search.networks import TinyTransformer, mobilenet_tiny, small_cnn
from cimc.sim import Precision, SimError, Simulator, Variation, effective_weights, quantize_weights
from cimc.sim.devices import perturb


def export(net, shape, bn=False) -> onnx.ModelProto:
    """Export with a dynamic batch; bn=True keeps BatchNormalization nodes (training-mode export)."""
    net.eval()
    buf = io.BytesIO()
    mode = torch.onnx.TrainingMode.PRESERVE if bn else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():  # the TorchScript exporter, on purpose (as cimc.export_onnx): its own notices
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(net, (torch.zeros(shape),), buf, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, training=mode, do_constant_folding=not bn)
    return onnx.load_from_string(buf.getvalue())


def ort_run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


class ConvBN(nn.Module):
    """Conv+BN, a grouped strided conv, a 1x1 conv and a Linear: every mapping case of a CNN."""

    def __init__(self, cin=2):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4)
        self.c3 = nn.Conv2d(16, 12, 1)
        self.fc = nn.Linear(12 * 5 * 5, 10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.c2(x))
        return self.fc(self.c3(x).flatten(1))


@pytest.fixture(scope="module")
def convbn():
    torch.manual_seed(0)
    net = ConvBN()
    with torch.no_grad():
        net.b1.running_mean.uniform_(-0.3, 0.3)
        net.b1.running_var.uniform_(0.5, 2.0)
        net.b1.weight.uniform_(0.5, 1.5)
    return export(net, (1, 2, 10, 10), bn=True)


def inputs(shape, n=24, seed=0, signed=True):
    x = np.random.default_rng(seed).standard_normal((n, *shape[1:])).astype(np.float32)
    return x if signed else np.abs(x)


def compiled(model, passes="baseline", target="rram-256", **kw):
    return cimc.compile(model, target, passes, **kw).module


def test_float_path_matches_onnxruntime_on_cnn_mobilenet_and_transformer(convbn):
    torch.manual_seed(1)
    cases = [(convbn, (1, 2, 10, 10)),
             (export(mobilenet_tiny(), (1, 3, 32, 32)), (1, 3, 32, 32)),
             (export(TinyTransformer(tokens=8, dim=32, heads=2, layers=1), (1, 8, 32)), (1, 8, 32))]
    for model, shape in cases:
        x = inputs(shape, n=4)
        sim = Simulator(model, compiled(model))
        got = sim.run(x, "float")
        ref = ort_run(model, x)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_ideal_chip_with_many_bits_matches_onnxruntime(convbn):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    sim = Simulator(convbn, module, Precision.of(module.target, weight_bits=16, input_bits=16, adc_bits=0))
    sim.calibrate(x)  # ranges from the same inputs: nothing is clipped
    got, ref = sim.run(x, "quant"), ort_run(convbn, x)
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def fake_quant_reference(model, sim, x):
    """Independent reference: each crossbar layer as a float conv/linear of weights quantised
    per layer and inputs quantised with the simulator's calibrated input scale."""
    from cimc.onnx_torch import Interpreter, conv

    interp = Interpreter(model)
    wbits = sim.precision.weight_bits
    folded = {}
    for node in interp.nodes:
        if node.op_type == "BatchNormalization":
            folded[node.input[0]] = node

    def hook(node, ins):
        label = node.name or node.output[0]
        if node.op_type == "BatchNormalization" and node.input[0] in folded:
            return ins[0]
        if label not in sim.layers:
            return None
        layer = sim.layers[label]
        qmax = 2 ** (wbits - 1) - 1
        x_ = ins[0]
        top = 2 ** (sim.precision.input_bits - 1) - 1 if layer.x_signed else 2 ** sim.precision.input_bits - 1
        lo = -top if layer.x_signed else 0
        xq = torch.clamp(torch.round(x_ / layer.s_x), lo, top) * layer.s_x
        w, b = ins[1], ins[2] if len(ins) > 2 else None
        if node.op_type == "Conv":
            bn = folded.get(node.output[0])
            if bn is not None:
                scale, beta, mean, var = (interp.const[n] for n in bn.input[1:5])
                k = scale / torch.sqrt(var + 1e-5)
                w = w * k.reshape(-1, 1, 1, 1)
                b = ((b if b is not None else 0) - mean) * k + beta
            s = w.abs().max() / qmax
            wq = torch.clamp(torch.round(w / s), -qmax, qmax) * s
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            return conv(xq, wq, b, a)
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        wt = w.t() if a.get("transB", 0) else w
        s = wt.abs().max() / qmax
        wq = torch.clamp(torch.round(wt / s), -qmax, qmax) * s
        return xq @ wq + (b if b is not None else 0)

    with torch.no_grad():
        return interp.run({interp.inputs[0]: torch.as_tensor(x)}, hook)[0].numpy()


@pytest.mark.parametrize("encoding", ["differential", "offset", "bias"])
def test_quantised_chip_without_adc_matches_fake_quantisation(convbn, encoding):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn, signed_weights=encoding)
    sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=0))
    sim.calibrate(x)
    got = sim.run(x, "quant")
    ref = fake_quant_reference(convbn, sim, x)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # and quantisation really changed something: 8-bit is not float
    assert np.abs(got - ort_run(convbn, x)).max() > 1e-5


@pytest.mark.parametrize("encoding,dac,cell,rows_per_read", [("differential", 1, 2, 0), ("offset", 2, 2, 0),
                                                             ("bias", 3, 1, 0), ("differential", 2, 3, 0),
                                                             ("offset", 1, 2, 8), ("differential", 2, 1, 5)])
def test_bit_serial_reads_with_lossless_adc_equal_the_collapsed_arithmetic(convbn, encoding, dac, cell,
                                                                           rows_per_read):
    """Digits, slices, two's complement inputs, the signed encodings and partial reads of a
    few rows recombine exactly: with an ADC too fine to lose anything, the per-read path
    gives the collapsed result. Small crossbars split the layers over several blocks."""
    x = inputs((1, 2, 10, 10), signed=True)
    module = compiled(convbn, signed_weights=encoding, xbar_rows=32, xbar_cols=64, dac_bits=dac, cell_bits=cell,
                      rows_per_read=rows_per_read)
    assert sum(op.kind == "map.block" for op in module.ops) > 6
    outs = []
    for adc in (0, 30):
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=adc))
        sim.calibrate(x)
        outs.append(sim.run(x, "quant"))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5 * np.abs(outs[0]).max())


def test_adc_bits_trade_accuracy(convbn):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    ref = None
    errs = {}
    for adc in (0, 3, 5, 8):
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=adc))
        sim.calibrate(x)
        y = sim.run(x, "quant")
        if adc == 0:
            ref = y
        else:
            errs[adc] = float(np.abs(y - ref).mean())
    assert errs[3] > errs[5] > errs[8] >= 0
    assert errs[3] > 0.01 * np.abs(ref).mean()


def test_partial_reads_of_fewer_rows_lose_less_to_a_coarse_adc(convbn):
    """NeuroSim's parallel read: a part of the rows per conversion keeps each partial sum in a
    smaller range, so a 4-bit ADC loses less than when it converts the sum of all rows."""
    x = inputs((1, 2, 10, 10))
    errs = {}
    for rows in (0, 8):
        module = compiled(convbn, rows_per_read=rows)
        exact = Simulator(convbn, module, Precision.of(module.target, adc_bits=0))
        exact.calibrate(x)
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=4))
        sim.calibrate(x)
        errs[rows] = float(np.abs(sim.run(x, "quant") - exact.run(x, "quant")).mean())
    assert 0 < errs[8] < 0.7 * errs[0], errs


def test_mapping_does_not_change_exact_arithmetic_but_copies_have_their_own_cells(convbn):
    """Without ADC the result is the same for any partition and any number of copies; under
    variation every copy is a separately programmed set of cells."""
    x = inputs((1, 2, 10, 10))
    base = compiled(convbn)
    full = compiled(convbn, "full", budget=40)
    copies = {op.operands[0] for op in full.ops if op.kind == "map.block" and op["copy"] > 0}
    assert copies, "the full pipeline made no copies at this budget"
    outs = []
    for module in (base, full):
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=0))
        sim.calibrate(x)
        outs.append(sim.run(x, "quant"))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    sim = Simulator(convbn, full, Precision.of(full.target, adc_bits=0), Variation(sigma=0.05))
    sim.calibrate(x)
    sim.program(0)
    layer = next(layer for layer in sim.layers.values() if layer.name in copies)
    group = next(g for g in layer.cells if len(g[0]) > 1)
    cells = group[2][0]
    assert cells.shape[0] == len(group[0]) and not torch.allclose(cells[0], cells[1])


def test_draws_are_reproducible_and_differ(convbn):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    sim = Simulator(convbn, module, variation=Variation(sigma=0.1), seed=3)
    sim.calibrate(x)
    ideal = sim.run(x, "quant")
    sim.program(0)
    a = sim.run(x, "quant")
    sim.program(1)
    b = sim.run(x, "quant")
    sim.program(0)
    np.testing.assert_array_equal(sim.run(x, "quant"), a)
    assert np.abs(a - b).max() > 0 and np.abs(a - ideal).max() > 0


def test_cell_variation_has_the_stated_statistics():
    """Gaussian sigma per cell, in units of the cell range, and the device's range kept: a cell
    between the end levels has the stated spread around its level; a cell at level 0 cannot go
    below g_min, so it is a clamped Gaussian with mean sigma (L-1) / sqrt(2 pi) (hand-worked)."""
    p = Precision.of(cimc.targets.load_target("rram-256"))  # 2-bit cells: levels 0..3
    gen = torch.Generator().manual_seed(0)
    var = Variation(sigma=0.1)
    for level in (1.0, 2.0):  # 3.3 sigma from either end: clamping is negligible
        cells = perturb(torch.full((200_000,), level), p, var, gen)
        assert abs(float(cells.std()) / 0.3 - 1) < 0.01
        assert abs(float(cells.mean()) - level) < 0.003
    low = perturb(torch.zeros(200_000), p, var, gen)
    high = perturb(torch.full((200_000,), 3.0), p, var, gen)
    assert float(low.min()) == 0.0 and float(high.max()) == 3.0
    assert abs(float(low.mean()) - 0.3 / math.sqrt(2 * math.pi)) < 0.003
    assert abs(float((low == 0).float().mean()) - 0.5) < 0.005


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_stuck_cells_and_weight_error(encoding):
    target = cimc.targets.load_target("rram-256", {"signed_weights": encoding})
    p = Precision.of(target)
    q, _ = quantize_weights(torch.randn(200, 200), p.weight_bits)
    gen = torch.Generator().manual_seed(0)
    err = effective_weights(q, p, Variation(sigma=0.02), gen) - q
    # at sigma = 0.02 (15 sigma per level step) only the end levels' clamping biases the cells
    arrays = 2 if encoding == "differential" else 1
    expect = 0.02 * 3 * math.sqrt(arrays * sum(4.0 ** (2 * s) for s in range(p.slices)))
    assert 0.5 * expect < float(err.std()) < 1.05 * expect
    # stuck-at-on everywhere: every cell at the top level
    full = effective_weights(q, p, Variation(stuck_on=1.0), gen)
    top = sum(3 * 4 ** s for s in range(p.slices))
    expect_full = 0.0 if encoding == "differential" else top - 2 ** (p.weight_bits - 1)
    assert torch.allclose(full, torch.full_like(full, expect_full))


def test_read_noise_adds_error_per_inference(convbn):
    x = inputs((1, 2, 10, 10))
    module = compiled(convbn)
    sim = Simulator(convbn, module, variation=Variation(read_sigma=0.05))
    sim.calibrate(x)
    clean = sim.run(x, "quant")
    sim.program(0)
    noisy1, noisy2 = sim.run(x, "quant"), sim.run(x, "quant")
    assert np.abs(noisy1 - clean).max() > 0 and np.abs(noisy1 - noisy2).max() > 0


def test_layers_the_simulator_does_not_map_are_refused():
    lstm = cimc.search.networks.TinyLSTM()
    model = export(lstm, (6, 1, 16))
    with pytest.raises(SimError, match="recurrent"):
        Simulator(model, compiled(model))


def test_mapping_of_another_model_is_refused(convbn):
    other = export(small_cnn((4,), image=10, in_channels=2), (1, 2, 10, 10))
    with pytest.raises(SimError, match="another model|not in the model"):
        Simulator(convbn, compiled(other))


def test_bad_variation_and_precision_values():
    with pytest.raises(SimError, match="sigma"):
        Variation(sigma=-0.1)
    with pytest.raises(SimError, match="more than 1"):
        Variation(stuck_on=0.7, stuck_off=0.5)
    with pytest.raises(SimError, match="adc_bits"):
        Precision.of(cimc.targets.load_target("rram-256"), adc_bits=40)


def test_data_loaders_and_fit(tmp_path):
    d = load_dataset("digits")
    assert d.x_test.shape[1:] == (1, 8, 8) and d.classes == 10 and 0 <= d.x_test.min() and d.x_test.max() <= 1
    assert len(d.x_train) + len(d.x_test) == 1797
    assert fit_inputs(d.x_test, (1, 64), "m", "digits").shape == (len(d.x_test), 64)
    with pytest.raises(DataError, match=r"takes \[3, 32, 32\].*gives \[1, 8, 8\]"):
        fit_inputs(d.x_test, (1, 3, 32, 32), "m.onnx", "digits")
    np.savez(tmp_path / "ok.npz", x=np.zeros((5, 4, 4), np.float32), y=np.arange(5))
    assert load_dataset(str(tmp_path / "ok.npz")).x_test.shape == (5, 1, 4, 4)
    np.savez(tmp_path / "bad.npz", images=np.zeros((5, 4)))
    with pytest.raises(DataError, match="needs arrays 'x' and 'y'"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")


def test_fashion_mnist_loader():
    from cimc.data import FASHION_DIR

    if not FASHION_DIR.is_dir():
        with pytest.raises(DataError, match="apt-get install"):
            load_dataset("fashion-mnist")
        return
    d = load_dataset("fashion-mnist")
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.classes == 10 and d.x_train.dtype == np.float32 and float(d.x_train.max()) == 1.0


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory):
    """A small CNN trained on digits plainly and with variation-aware training."""
    from cimc.train import fit

    d = load_dataset("digits")
    import copy

    folder = tmp_path_factory.mktemp("digits")
    plain = fit(small_cnn((8,), image=8), d.x_train, d.y_train, epochs=25, batch=64, lr=5e-3, seed=0)
    aware = fit(copy.deepcopy(plain), d.x_train, d.y_train, epochs=15, batch=64, lr=2e-3, seed=1,
                variation=Variation(sigma=0.1), clip_std=2.5)
    out = {}
    for name, net in (("plain", plain), ("aware", aware)):
        path = folder / f"{name}.onnx"
        onnx.save(export(net, (1, 1, 8, 8)), path)
        out[name] = path
    return out


def test_variation_aware_training_keeps_accuracy_under_variation(digits_models):
    from cimc.accuracy import evaluate_accuracy

    reps = {name: evaluate_accuracy(path, "rram-256", "digits", passes="baseline", variation=Variation(sigma=0.1),
                                    draws=4) for name, path in digits_models.items()}
    for r in reps.values():
        assert r.float_accuracy > 0.85 and abs(r.quant_accuracy - r.float_accuracy) < 0.03
        assert len(r.per_draw) == 4 and r.variation_p5 <= r.variation_mean
    assert reps["aware"].variation_loss < reps["plain"].variation_loss - 0.02
    assert reps["aware"].variation_mean > reps["plain"].variation_mean


def test_cli_eval_prints_json_and_refuses_data_that_does_not_fit(digits_models, tmp_path, capsys):
    import json

    from cimc.cli import main

    out = tmp_path / "acc.json"
    assert main(["eval", str(digits_models["plain"]), "--data", "digits", "--sigma", "0.05", "--draws", "2",
                 "--passes", "baseline", "--limit", "100", "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "under variation" in text and "5th percentile" in text
    rep = json.loads(out.read_text())
    assert rep["schema"] == "cimc.accuracy/1" and rep["samples"] == 100 and len(rep["per_draw"]) == 2
    assert {"float_accuracy", "quant_accuracy", "variation_mean", "variation_std", "variation_p5"} <= set(rep)
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    assert main(["eval", str(digits_models["plain"]), "--data", str(tmp_path / "rgb.npz"), "--draws", "0"]) == 1
    err = capsys.readouterr().err
    assert "takes [1, 8, 8]" in err and "Traceback" not in err
    assert main(["eval", str(digits_models["plain"]), "--data", "digits", "--sigma", "-1"]) == 1
    assert "must be a finite number >= 0" in capsys.readouterr().err


def test_measured_input_density_feeds_the_cost_model(digits_models, tmp_path, capsys):
    """cimc eval measures how hard each crossbar layer's inputs drive its rows; compile takes
    the report and scales those layers' row and array energy by it (ADC energy stays)."""
    import json

    from cimc.cli import main

    out = tmp_path / "acc.json"
    assert main(["eval", str(digits_models["plain"]), "--data", "digits", "--draws", "0", "--sigma", "0",
                 "--passes", "baseline", "--limit", "64", "--report", str(out)]) == 0
    assert "input density" in capsys.readouterr().out
    density = json.loads(out.read_text())["input_density"]
    full = cimc.compile(digits_models["plain"], "rram-256", "baseline")
    weight_layers = {x.name for x in full.report.layers if x.crossbars}
    assert set(density) == weight_layers
    assert all(0 < v < 1 for v in density.values())  # digits after ReLU: far from every bit set
    # the first conv, by hand: its im2col inputs (3x3, zero padding) quantised to 8 bits on
    # the calibration images' range, the share of bits that are 1 (1-bit DACs)
    d = load_dataset("digits")
    x = torch.tensor(d.x_test[:64].reshape(-1, 1, 8, 8))
    cols = torch.nn.functional.unfold(x, 3, padding=1)
    q = torch.clamp(torch.round(cols / (float(d.x_train[:64].max()) / 255)), 0, 255).to(torch.int64)
    ones = sum(((q >> bit) & 1).sum().item() for bit in range(8))
    first = min(density, key=lambda n: [op.result for op in full.module.ops].index(n))
    assert density[first] == pytest.approx(ones / (8 * q.numel()))

    scaled = cimc.compile(digits_models["plain"], "rram-256", "baseline", input_density=out)
    for a, b in zip(full.report.layers, scaled.report.layers):
        if a.name in density:
            for part in ("dac_and_periphery", "array"):
                assert b.energy_breakdown_nj[part] == pytest.approx(a.energy_breakdown_nj[part] * density[a.name])
            assert b.energy_breakdown_nj["adc"] == pytest.approx(a.energy_breakdown_nj["adc"])
    assert scaled.report.energy_nj < full.report.energy_nj
    half = cimc.compile(digits_models["plain"], "rram-256", "baseline", input_density=0.5).report
    assert half.energy_breakdown_nj["array"] == pytest.approx(full.report.energy_breakdown_nj["array"] / 2)
    assert main(["compile", str(digits_models["plain"]), "--input-density", "1.5"]) == 1
    assert "from 0 to 1" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"input_density": {"nope": 0.3}}))
    assert main(["compile", str(digits_models["plain"]), "--input-density", str(tmp_path / "other.json")]) == 1
    assert "no such weight layer" in capsys.readouterr().err


def test_copies_of_a_layer_with_one_mvm_per_input_take_turns_over_the_inputs():
    """A classifier does one MVM per input; with several copies (cimc's passes make none, since
    copies split an inference's MVMs, but a hand-edited mapping may), successive inputs use
    different copies, so under variation the same input gives different outputs."""
    from cimc.passes.duplicate.copies import with_copies

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model = export(net, (1, 64))
    base = compiled(model, "lower,partition")
    layers = [op.result for op in base.ops if op.kind == "nn.matmul"]
    module = with_copies(base, {name: 3 for name in layers})
    cimc.verify(module)
    x = np.repeat(inputs((1, 64), n=1), 4, axis=0)
    sim = Simulator(model, module, variation=Variation(sigma=0.1))
    sim.calibrate(x)
    ideal = sim.run(x, "quant")
    assert np.allclose(ideal, ideal[:1])
    sim.program(0)
    noisy = sim.run(x, "quant")
    assert not np.allclose(noisy[0], noisy[1])


def test_dense_layout_computes_what_the_diagonal_does(convbn):
    """PIMCOMP's and NeuroSim's dense mapping of a grouped layer (zero tiles included) holds
    the same weights as the diagonal one: the same outputs through an 8-bit ADC, on more
    crossbars."""
    from cimc.mapping import weight_boxes
    from cimc.targets import load_target

    x = inputs((1, 2, 10, 10))
    small = load_target("rram-128", {"xbar_rows": 64, "xbar_cols": 64})  # the grouped conv spans crossbars
    outs, xbars = [], []
    for grouped in ("diag", "dense"):
        result = cimc.compile(convbn, small, f"lower,partition{{grouped={grouped}}},place,cost")
        module = result.module
        sim = Simulator(convbn, module, Precision.of(module.target, adc_bits=8))
        sim.calibrate(x)
        outs.append(sim.run(x, "quant"))
        xbars.append(result.report.crossbars_used)
    dense = [op for op in module.ops if op.kind == "map.block" and op["layout"] == "dense"]
    layer = module.by_name()[dense[0].operands[0]]
    assert any(not weight_boxes(b, layer["cols"]) for b in dense)  # a tile off the diagonal, all zeros
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    assert xbars[1] > xbars[0]
