"""The cost model against figures worked out by hand from the target's numbers."""

import math

import pytest

import cimc
from cimc.ir import Module, Op
from cimc.targets import load_target


def _one_layer(target, rows, cols, mvms, groups=1, passes="lower,partition,place,cost"):
    ops = [
        Op.make("nn.input", "x", (), shape=(1, rows * groups), name="x"),
        Op.make("nn.matmul", "fc", ["x"], shape=(1, cols), in_features=rows, out_features=cols, weight="w",
                bias=False) if groups == 1 else
        Op.make("nn.conv", "fc", ["x"], shape=(1, cols * groups, 1, mvms), in_channels=rows * groups,
                out_channels=cols * groups, kernel=(1, 1), stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
                groups=groups, weight="w", bias=False),
        Op.make("nn.output", None, ["fc"]),
    ]
    m = Module("t", target, tuple(ops))
    return cimc.opt(m, passes)


def test_single_block_latency_energy_and_bounds():
    t = load_target("rram-256")
    r = _one_layer(t, rows=100, cols=20, mvms=1).report
    layer = next(x for x in r.layers if x.name == "fc")
    active_cols = 20 * t.cols_per_weight  # 160 physical columns
    read_ns = max(t.xbar_read_ns, min(active_cols, t.cols_per_adc) * t.adc_conversion_ns)
    mvm_ns = t.reads_per_mvm * read_ns
    traffic_bytes = (100 + 20) * t.input_bits / 8
    assert layer.latency_ns == pytest.approx(max(mvm_ns, traffic_bytes / t.buffer_bytes_per_ns))
    block_pj = t.reads_per_mvm * (100 * t.row_read_pj + 100 * active_cols * t.cell_read_fj * 1e-3
                                  + active_cols * t.adc_conversion_pj)
    assert layer.energy_nj == pytest.approx((block_pj + traffic_bytes * t.buffer_pj_per_byte) * 1e-3)
    assert (r.crossbars_used, r.crossbars_lower_bound, r.tiles_used) == (1, 1, 1)
    assert r.utilization == pytest.approx(100 * 20 * t.cols_per_weight / t.cells_per_xbar)
    assert r.area_mm2 == pytest.approx(t.tile_area_mm2)
    assert r.latency_lower_bound_ns <= r.latency_ns
    assert r.throughput_ips <= r.throughput_upper_bound_ips
    assert r.edap == pytest.approx(r.energy_nj * r.latency_ns * r.area_mm2)


def test_layer_split_in_row_blocks_reads_in_parallel_and_adds_partial_sums():
    t = load_target("rram-128")
    one = _one_layer(t, rows=128, cols=16, mvms=1).report
    two = _one_layer(t, rows=256, cols=16, mvms=1).report
    l1 = next(x for x in one.layers if x.name == "fc")
    l2 = next(x for x in two.layers if x.name == "fc")
    assert (l1.blocks, l2.blocks) == (1, 2)
    assert l2.crossbars == 2
    # same read time (parallel crossbars); twice the array energy plus one partial-sum add per output
    assert l2.latency_ns == pytest.approx(l1.latency_ns, rel=0.5)
    assert l2.energy_nj > 1.9 * (l1.energy_nj - (128 + 16) * t.buffer_pj_per_byte * 1e-3)


def test_depthwise_serial_is_slower_but_smaller_than_diag():
    t = load_target("rram-128")
    diag = _one_layer(t, 9, 1, 64, groups=32, passes="lower,partition{grouped=diag},place,cost").report
    serial = _one_layer(t, 9, 1, 64, groups=32, passes="lower,partition{grouped=serial},place,cost").report
    assert serial.crossbars_used < diag.crossbars_used
    assert serial.latency_ns > diag.latency_ns
    ld = next(x for x in diag.layers if x.name == "fc")
    # diag: 128 rows // 9 = 14 groups per crossbar -> ceil(32 / 14) = 3 crossbars
    assert ld.crossbars == math.ceil(32 / (128 // 9))


def test_throughput_is_the_busiest_crossbar():
    t = load_target("rram-256")
    r = _one_layer(t, rows=64, cols=8, mvms=50, groups=1, passes="baseline")
    layer = next(x for x in r.report.layers if x.name == "fc")
    assert r.report.throughput_ips == pytest.approx(1e9 / layer.latency_ns)


def test_cost_ops_are_written_and_replaced():
    t = load_target("rram-256")
    r = _one_layer(t, rows=64, cols=8, mvms=1)
    again = cimc.opt(r.module, "cost").module
    assert sum(op.kind == "cost.layer" for op in again.ops) == 1
    assert [op for op in again.ops if op.kind == "cost.layer"] == [op for op in r.module.ops if op.kind == "cost.layer"]
