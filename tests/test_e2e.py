"""End-to-end: real model-zoo graphs and the project's torch exports compile on rram-256
and isaac, with crossbar counts checked against an independent count of each layer's
matrix computed here from the ONNX file alone."""

import math

import onnx
import pytest

import cimc
from conftest import EXAMPLES, ZOO_MODELS, zoo

BIG = {"bvlc_alexnet", "vgg19", "zfnet512", "resnet50", "densenet121"}


def independent_blocks(path, target) -> tuple[int, int]:
    """(blocks with one block per group-tile, weight cells) from ONNX weight shapes."""
    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    for vi in list(m.graph.value_info) + list(m.graph.input):
        shapes.setdefault(vi.name, [d.dim_value for d in vi.type.tensor_type.shape.dim])
    const = {t.name for t in m.graph.initializer}
    for n in m.graph.node:  # weights may be computed from constants (ConstantOfShape, Reshape of one)
        if all(i in const for i in n.input if i):
            const.update(n.output)
    col_limit = (target.xbar_cols - (target.signed_weights == "offset")) // target.cols_per_weight
    blocks = cells = 0
    for n in m.graph.node:
        if n.op_type not in ("Conv", "Gemm", "MatMul") or len(n.input) < 2:
            continue
        w = n.input[1]
        if w not in const:
            continue
        ws = shapes[w]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            g = attrs.get("group", 1)
            rows, cols = ws[1] * math.prod(ws[2:]), ws[0] // g
        else:
            g = 1
            rows, cols = (ws[1], ws[0]) if attrs.get("transB", 0) else (ws[0], ws[1])
        blocks += g * math.ceil(rows / target.xbar_rows) * math.ceil(cols / col_limit)
        cells += g * rows * cols * target.cols_per_weight
    return blocks, cells


CASES = [(name, t) for name in ZOO_MODELS for t in ("rram-256", "isaac")]


@pytest.mark.parametrize("name, target", [
    pytest.param(n, t, marks=pytest.mark.slow) if n in BIG else (n, t) for n, t in CASES])
def test_zoo_model_compiles_with_independent_crossbar_count(name, target):
    path = zoo(name)
    r = cimc.compile(path, target, "lower,partition{grouped=per-group},place,cost")
    tgt = cimc.load_target(target)
    blocks, cells = independent_blocks(path, tgt)
    assert r.crossbars_used == blocks
    assert r.weight_cells == cells
    assert r.crossbars_lower_bound == math.ceil(cells / tgt.cells_per_xbar)
    assert r.crossbars_lower_bound <= r.crossbars_used
    assert 0 < r.utilization <= 1
    assert r.latency_lower_bound_ns <= r.latency_ns
    assert r.throughput_ips <= r.throughput_upper_bound_ips * (1 + 1e-9)
    assert r.energy_nj > 0 and r.area_mm2 > 0
    # the baseline with the auto grouped layout never needs more crossbars than one block per group
    if name in ("shufflenet", "squeezenet"):
        auto = cimc.compile(path, target, "baseline")
        assert auto.crossbars_used <= r.crossbars_used


@pytest.mark.parametrize("model", ["resnet20", "mobilenet_tiny"])
@pytest.mark.parametrize("target", ["rram-256", "isaac"])
def test_own_exports_compile_with_independent_crossbar_count(model, target):
    path = EXAMPLES / f"{model}.onnx"
    r = cimc.compile(path, target, "lower,partition{grouped=per-group},place,cost")
    blocks, cells = independent_blocks(path, cimc.load_target(target))
    assert (r.crossbars_used, r.weight_cells) == (blocks, cells)
    text = r.text()
    assert cimc.print_module(cimc.parse(text)) == text


def test_resnet50_matrix_views():
    r = cimc.compile(zoo("resnet50"), "rram-256", "lower")
    convs = [op for op in r.module.ops if op.kind == "nn.conv"]
    assert len(convs) == 53
    first = convs[0]
    assert (first["rows"], first["cols"], first["mvms"]) == (3 * 7 * 7, 64, 112 * 112)
    assert first.get("fused") == ("BatchNormalization",)  # BN folded into the conv
    assert not any(op.kind == "nn.norm" for op in r.module.ops)
    fc = next(op for op in r.module.ops if op.kind == "nn.matmul")
    assert (fc["rows"], fc["cols"], fc["mvms"]) == (2048, 1000, 1)


def test_shufflenet_grouped_convs_and_channel_shuffle():
    r = cimc.compile(zoo("shufflenet"), "rram-256", "lower")
    grouped = [op for op in r.module.ops if op.kind == "nn.conv" and op["groups"] > 1]
    assert any(op["groups"] == op["in_channels"] for op in grouped)  # depthwise
    assert any(1 < op["groups"] < op["in_channels"] for op in grouped)  # grouped 1x1
    assert any(op.kind == "nn.reshape" and op["fn"] == "Transpose" for op in r.module.ops)


def test_alexnet_digital_ops_are_listed():
    r = cimc.compile(zoo("bvlc_alexnet"), "rram-256", "lower,partition,cost")
    fns = {layer.fn for layer in r.report.layers if layer.crossbars == 0 and layer.rows == 0}
    assert {"LRN", "MaxPool", "Relu", "Softmax"} <= fns


@pytest.mark.slow
def test_model_too_big_for_one_chip_maps_over_chips():
    """VGG-19 (the model zoo's) needs 17,536 crossbars of rram-256 (4,032 on a chip): the
    optimising pipeline splits it over chips and costs the links between them; held to one
    chip's budget, or to one chip without reloading, it is refused with the count it needs;
    the baseline spreads it over chips too."""
    r = cimc.compile(zoo("vgg19"), "rram-256", "full")
    assert r.chips_used >= 5 and r.report.chips["link"]["bytes_per_inference"] > 0
    assert r.report.chips["stages"] == r.chips_used and not r.warnings
    with pytest.raises(cimc.errors.Infeasible, match=r"17536 crossbars at best.*budget of 4032"):
        cimc.compile(zoo("vgg19"), "rram-256", "full", budget=4032)
    with pytest.raises(cimc.errors.Infeasible, match=r"needs \d+ chips of rram-256.*more than the 2 allowed"):
        cimc.compile(zoo("vgg19"), "rram-256", "fast", chips=2, reload=False)
    b = cimc.compile(zoo("vgg19"), "rram-256", "baseline")
    assert b.chips_used == 5 and b.area_mm2 > 4 * b.chip_area_mm2 * 0.8
    assert b.report.chips["link"]["bytes_per_inference"] > 0 and not b.warnings
    assert "one chip reprogrammed per inference instead" in b.report.table()
    small = cimc.compile(zoo("squeezenet"), "rram-256", "baseline")
    assert small.chips_used == 1 and small.warnings == ()
