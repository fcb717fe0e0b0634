"""Knob physics: every knob the search turns moves the cost the way hardware does.

Scaling laws (targets/laws.py) reproduce each preset at its own values and move its figures
when a knob moves; the ADC resolution a read needs; one pipeline model for digital ops;
monotonicity and sanity over random networks and targets; isomorphic graphs cost the same."""

from __future__ import annotations

import math

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_builders import nas201_cell, renumbered, small_cnn

import cimc
from cimc.errors import TargetError
from cimc.targets import laws, load_target, preset_names

FIGURES = [law.figure for law in laws.LAWS]


# ---- the laws --------------------------------------------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_a_preset_at_its_own_values_is_the_preset(name):
    t = load_target(name)
    own = {k: getattr(t, k) for k in laws.KNOBS}
    assert t.replace(**own) == t


def test_isaac_adc_anchor_and_walden_law():
    isaac = load_target("isaac")
    assert isaac.adc_conversion_pj == 1.5625  # Table I: 16 mW / 8 ADCs / 1.28 GS/s, at 8 bits
    four = isaac.replace(adc_bits=4)
    assert four.adc_conversion_pj == pytest.approx(1.5625 / 16)
    assert four.adc_conversion_ns == pytest.approx(0.78125 / 2)  # SAR: time linear in bits
    assert four.adc_area_um2 == pytest.approx(1200 / 16)
    # NeuroSim's preset derived its 4-bit ADC from ISAAC's by the same Walden law (and 22/32)
    assert load_target("neurosim").adc_conversion_pj == pytest.approx(four.adc_conversion_pj * 22 / 32, rel=1e-6)
    # past the thermal corner each bit costs 4x
    assert isaac.replace(adc_bits=12).adc_conversion_pj == pytest.approx(isaac.replace(adc_bits=10).adc_conversion_pj * 16)


def test_laws_compose_and_a_figure_given_wins():
    t = load_target("rram-256")
    twice = t.replace(adc_bits=4, xbar_rows=64).replace(adc_bits=6, xbar_rows=128)
    once = t.replace(adc_bits=6, xbar_rows=128)
    for key in FIGURES:
        assert getattr(twice, key) == pytest.approx(getattr(once, key)), key
    assert t.replace(adc_bits=4, adc_conversion_pj=1.0).adc_conversion_pj == 1.0
    assert load_target("rram-256", {"adc_bits": 4}).adc_conversion_pj == pytest.approx(t.adc_conversion_pj / 16)


def test_crossbar_size_moves_array_and_periphery_area():
    base = load_target("rram-256")
    areas = [base.replace(xbar_rows=n, xbar_cols=n) for n in (64, 128, 256, 512)]
    assert [a.xbar_area_um2 for a in areas] == pytest.approx([100 * (n / 256) ** 2 for n in (64, 128, 256, 512)])
    assert [a.xbar_periph_area_um2 for a in areas] == pytest.approx([830 * n / 256 for n in (64, 128, 256, 512)])
    # matches the presets that were written by hand from ISAAC's figures
    assert areas[1].xbar_area_um2 == load_target("rram-128").xbar_area_um2
    assert areas[3].xbar_periph_area_um2 == pytest.approx(load_target("rram-512").xbar_periph_area_um2)
    chip = [a.chip_area_mm2 for a in areas]
    assert chip == sorted(chip) and len(set(chip)) == 4
    # more DAC levels: more driver energy and area per row
    d2 = base.replace(dac_bits=2)
    assert d2.row_read_pj > base.row_read_pj and d2.xbar_periph_area_um2 > base.xbar_periph_area_um2


def test_user_file_with_a_base_moves_the_base_figures(tmp_path):
    chip = tmp_path / "chip.toml"
    chip.write_text('base = "rram-256"\nname = "mine"\nadc_bits = 6\nbuffer_kb = 256.0\n')
    t = load_target(str(chip))
    base = load_target("rram-256")
    assert t.adc_conversion_pj == pytest.approx(base.adc_conversion_pj / 4)
    assert t.buffer_pj_per_byte == pytest.approx(base.buffer_pj_per_byte * 2)  # CACTI-style sqrt(capacity)
    assert t.buffer_area_mm2 > base.buffer_area_mm2


def test_targets_show_moves_with_adc_bits(capsys):
    import json

    from cimc.cli import main

    shown = []
    for bits in (4, 10):
        assert main(["targets", "show", "rram-256", "--set", f"adc_bits={bits}", "--json"]) == 0
        shown.append(json.loads(capsys.readouterr().out))
    low, high = shown
    for key in ("adc_conversion_pj", "adc_conversion_ns", "adc_area_um2"):
        assert low[key] < high[key], key


# ---- the resolution a read needs --------------------------------------------------------
def test_bits_a_read_needs_and_exact_partial_sums():
    t = load_target("rram-256")
    assert t.adc_bits_needed(256) == 10  # 256 rows x 3 levels: 769 values
    assert load_target("isaac").converter()["bits_needed"] == 8  # ISAAC's flip saves its 9th bit
    exact = t.replace(partial_sums="exact")
    assert exact.read_rows == 85 and exact.row_reads(256) == 4  # 85 x 3 + 1 = 256 levels
    assert t.replace(partial_sums="exact", adc_bits=10).read_rows == 0  # all rows at once
    with pytest.raises(TargetError, match="cannot convert even one row"):
        t.replace(partial_sums="exact", adc_bits=2, dac_bits=2)


def test_exact_partial_sums_cost_reads_and_the_report_says_so(resnet20_path):
    q = cimc.compile(resnet20_path, "rram-256", "fast").report
    e = cimc.compile(resnet20_path, load_target("rram-256", {"partial_sums": "exact"}), "fast").report
    assert e.converter["reads_per_digit"] == 4 and not e.converter["quantized"]
    assert q.converter["quantized"] and q.converter["bits_needed"] == 10
    assert e.energy_breakdown_nj["adc"] > q.energy_breakdown_nj["adc"]
    assert "rows per conversion" in q.table()


# ---- random networks and targets -----------------------------------------------------------
NETS = st.builds(small_cnn, depth=st.integers(1, 3), width=st.sampled_from([4, 8, 16]),
                 kernel=st.sampled_from([1, 3, 5]), size=st.sampled_from([8, 12]), seed=st.integers(0, 3))
BASES = st.sampled_from(["rram-128", "rram-256", "isaac", "puma", "neurosim"])
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fast(net: onnx.ModelProto, target):
    return cimc.compile(net, target, "fast").report


@SETTINGS
@given(NETS, BASES, st.integers(3, 9))
def test_more_adc_bits_never_cheaper(net, base, bits):
    t = load_target(base)
    lo, hi = (t.replace(adc_bits=b, partial_sums="quantized") for b in (bits, bits + 1))
    assert hi.tile_area_mm2 > lo.tile_area_mm2 and hi.chip_area_mm2 > lo.chip_area_mm2
    a, b = _fast(net, lo), _fast(net, hi)
    assert b.energy_nj >= a.energy_nj * (1 - 1e-9)
    assert b.latency_ns >= a.latency_ns * (1 - 1e-9) and b.period_ns >= a.period_ns * (1 - 1e-9)


@SETTINGS
@given(NETS, BASES, st.sampled_from(["buffer_bytes_per_ns", "noc_bytes_per_ns", "digital_ops_per_ns"]))
def test_more_bandwidth_never_slower(net, base, key):
    t = load_target(base)
    if not getattr(t, key):
        return
    a, b = _fast(net, t), _fast(net, t.replace(**{key: getattr(t, key) * 2}))
    assert b.latency_ns <= a.latency_ns * (1 + 1e-9) and b.period_ns <= a.period_ns * (1 + 1e-9)


@SETTINGS
@given(NETS, BASES)
def test_more_tiles_never_slower_at_the_same_budget(net, base):
    t = load_target(base)
    budget = t.xbars // 2
    a = cimc.compile(net, t, "fast", budget=budget).report
    b = cimc.compile(net, t.replace(tiles=t.tiles * 2), "fast", budget=budget).report
    assert b.period_ns <= a.period_ns * (1 + 1e-9) and b.latency_ns <= a.latency_ns * (1 + 1e-9)


@SETTINGS
@given(NETS, st.sampled_from(["rram-128", "rram-256", "puma"]))
def test_more_cells_per_weight_never_fewer_crossbars(net, base):
    t = load_target(base)
    wide, narrow = t.replace(cell_bits=2), t.replace(cell_bits=1)
    a = cimc.compile(net, wide, "lower,partition,cost").report
    b = cimc.compile(net, narrow, "lower,partition,cost").report
    assert b.crossbars_used >= a.crossbars_used and b.weight_cells >= a.weight_cells


@SETTINGS
@given(NETS, BASES, st.sampled_from(["fast", "full"]))
def test_pipeline_figures_agree(net, base, passes):
    """throughput x period = 1; latency >= period; no op's time on its resource exceeds the
    period that resource sets; energy per operation inside the band published chips span."""
    _figures_agree(cimc.compile(net, base, passes))


@pytest.mark.parametrize("passes", ["fast", "full"])
@pytest.mark.parametrize("config", [dict(depth=1, heads=1, dim=16, mlp_ratio=1),
                                    dict(depth=2, heads=2, dim=32, mlp_ratio=2)])
def test_pipeline_figures_agree_on_a_transformer(config, passes):
    """Attention's activation-by-activation products (nn.dot) run on digital units: the same
    rule holds for them (the issue: ViT-B's attention MatMuls took 12.4 ms at a 1.6 ms period)."""
    import torch

    from cimc.frontend import export_torch
    from cimc.search.families import Shape, vit

    net, _ = vit().build({**config, "patch": 4}, Shape(1, 28, 10))
    result = cimc.compile(export_torch(net.eval(), (torch.zeros(1, 1, 28, 28),)), "rram-256", passes)
    assert any(layer.op == "nn.dot" for layer in result.report.layers)
    _figures_agree(result)


def _figures_agree(result):
    from cimc.cost import digital_tiles, mapping_loads, tiles_in_use
    from cimc.ops import DIGITAL_KINDS

    r, m = result.report, result.module
    assert r.throughput_ips * r.period_ns * 1e-9 == pytest.approx(1.0)
    assert r.latency_ns >= r.period_ns * (1 - 1e-9)
    assert r.latency_lower_bound_ns <= r.latency_ns * (1 + 1e-9)
    assert r.period_lower_bound_ns <= r.period_ns * (1 + 1e-9)
    loads = mapping_loads(m)
    for per_xbar in loads.layer_xbar_load.values():
        assert max(per_xbar.values(), default=0.0) <= r.period_ns * (1 + 1e-9)
    tiles = digital_tiles(m, loads.blocks, loads.placed, tiles_in_use(m, loads))
    layers = {layer.name: layer for layer in r.layers}
    for op in m.ops:
        if op.kind in DIGITAL_KINDS and op["ops"]:
            on_one = op["ops"] / (m.target.digital_ops_per_ns * len(tiles[op.result]))
            assert max(on_one, layers[op.result].buffer_ns) <= r.period_ns * (1 + 1e-9)
    macs = sum(op["mvms"] * op["rows"] * op["cols"] * op["groups"] for op in m.ops if op.get("mvms"))
    tops_per_w = 2 * macs / (r.energy_nj * 1e-9) * 1e-12
    # ISAAC's peak 0.63 TOPS/W (16-bit) to NeuroSim's ~20 TOPS/W (1-bit cells, 4-bit ADC):
    # a mapping may run below peak (idle rows, leakage) but never beyond the best of them
    assert 0.01 < tops_per_w < 40, tops_per_w


# ---- graphs that compute the same thing cost the same ----------------------------------------
ARCH = st.tuples(*[st.sampled_from(("none", "skip", "conv1", "conv3", "avg"))] * 6)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARCH, st.integers(0, 10 ** 6), st.sampled_from(["fast", "full"]))
def test_renumbered_graph_costs_the_same(arch, seed, passes):
    cell = nas201_cell(arch)
    a = cimc.compile(cell, "rram-256", passes).report
    b = cimc.compile(renumbered(cell, seed), "rram-256", passes).report
    for key in ("latency_ns", "period_ns", "energy_nj", "crossbars_used", "area_mm2", "utilization"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9), key
    assert math.isclose(a.latency_lower_bound_ns, b.latency_lower_bound_ns, rel_tol=1e-9)


# ---- digital work spread over more tiles (map.digital) -----------------------------------------
def test_pack_spreads_digital_work_where_it_lowers_the_period():
    from cimc.cost import digital_tiles, evaluate, mapping_loads, tiles_in_use

    slow_units = load_target("rram-256", {"digital_ops_per_ns": 0.3, "buffer_bytes_per_ns": 1000.0})
    r = cimc.compile(small_cnn(depth=2, width=16, size=32), slow_units, "lower,partition,duplicate,pack,cost")
    spread = [op for op in r.module.ops if op.kind == "map.digital"]
    assert spread, "pack spread no digital op on this chip"
    m = r.module
    loads = mapping_loads(m)
    tiles = digital_tiles(m, loads.blocks, loads.placed, tiles_in_use(m, loads))
    for op in spread:
        assert tiles[op.operands[0]] == tuple(op["tiles"])
    narrow = m.with_ops([op for op in m.ops if op.kind != "map.digital"])
    wide, local = evaluate(m), evaluate(narrow)
    assert wide.period_ns < local.period_ns  # kept because it is better
    assert wide.network["byte_hops"] > local.network["byte_hops"]  # and the data it moves are charged
    text = cimc.print_module(m)
    assert cimc.print_module(cimc.parse(text)) == text and "map.digital(" in text


def test_map_digital_names_a_digital_op_and_sorted_tiles(mobilenet_path):
    from cimc.errors import MappingSyntaxError, VerifyError

    text = cimc.print_module(cimc.compile(mobilenet_path, "rram-256", "lower,partition,place,cost").module)
    layer = next(line.split("=")[0].strip() for line in text.splitlines() if " = nn.conv(" in line)
    act = next(line.split("=")[0].strip() for line in text.splitlines() if " = nn.act(" in line)
    for name, bad, why in ((layer, f"  map.digital({layer}) {{tiles = [0, 1]}}", "only digital ops"),
                           (act, f"  map.digital({act}) {{tiles = [1, 0]}}", "increasing order")):
        lines = text.splitlines()
        at = next(n for n, line in enumerate(lines) if line.strip().startswith(f"{name} = ")) + 1
        broken = "\n".join(lines[:at] + [bad] + lines[at:]) + "\n"
        with pytest.raises((VerifyError, MappingSyntaxError), match=why):
            cimc.parse(broken)
