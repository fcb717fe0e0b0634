"""Models larger than one chip: stages over several chips, weight reloading in rounds, the
links between chips and the tile buffers' capacity (passes/chips.py, cimc/cost/chips.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cimc
from cimc.passes import DuplicatePass, PackPass
from cimc.passes.chips import run_per_chip
from cimc.pipeline import parse_pipeline, run_pipeline
from cimc.text import print_module
from onnx_builders import small_cnn

SMALL = {"tiles": 1, "xbars_per_tile": 4}  # rram-128 cut to 4 crossbars: the small CNN needs several chips
CNN = small_cnn(depth=4, width=32, size=16)


def finite_positive(r) -> None:
    for name in ("latency_ns", "throughput_ips", "period_ns", "energy_nj", "area_mm2", "edap"):
        value = getattr(r, name)
        assert math.isfinite(value) and value > 0, (name, value)


def chip_of_tile(module, tile: int) -> int:
    return tile // module.target.tiles


def test_a_model_larger_than_a_chip_is_split_into_stages_one_per_chip():
    r = cimc.compile(CNN, "rram-128", **SMALL)
    finite_positive(r)
    ch = r.report.chips
    assert ch["stages"] == ch["physical"] == r.chips_used > 1
    assert "reload" not in ch
    # each layer's blocks sit on the tiles of its own chip, and each chip holds one chip of crossbars at most
    defs = r.module.by_name()
    blocks = {op.result: op for op in r.module.ops if op.kind == "map.block"}
    for p in r.module.ops:
        if p.kind == "map.place":
            b = blocks[p.operands[0]]
            own = b.get("chip")  # a layer larger than a chip: each block says its chip
            assert chip_of_tile(r.module, p["tile"]) == (own if own is not None else defs[b.operands[0]]["chip"])
    assert all(c["crossbars"] <= r.module.target.xbars for c in ch["per_chip"])
    # the links are costed: bytes cross them, and the busiest one bounds the period
    assert ch["link"]["bytes_per_inference"] > 0 and ch["link"]["energy_nj"] > 0
    assert r.period_ns >= ch["link"]["period_ns"] > 0
    assert r.period_lower_bound_ns >= ch["link"]["period_ns"]
    assert r.report.energy_breakdown_nj["link"] > 0
    assert not any("not costed" in w for w in r.report.warnings)
    # the mapping text holds the split and reads back to the same figures
    again = cimc.report(cimc.parse(r.text()))
    assert again.period_ns == pytest.approx(r.period_ns) and again.chips["stages"] == ch["stages"]


def test_the_multi_chip_path_with_one_chip_maps_as_one_chip(resnet20_path):
    """duplicate and pack run through the per-chip path on a one-stage split give the same
    mapping text as run directly."""
    m = run_pipeline(cimc.import_model(resnet20_path, "rram-256"), parse_pipeline("lower,partition"))
    staged = m.with_ops([op.with_attrs(chip=0) if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output")
                         else op for op in m.ops])

    def unstaged(mod):
        return mod.with_ops([op.with_attrs(chip=None) if op.namespace == "nn" else op for op in mod.ops])

    direct = DuplicatePass().run(m)
    via = unstaged(run_per_chip(DuplicatePass(), staged))
    assert print_module(via) == print_module(direct)
    packed = PackPass().run(direct)
    via_pack = unstaged(run_per_chip(PackPass(), staged.with_ops(
        [op.with_attrs(chip=0) if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output") else op
         for op in direct.ops], **dict(direct.attrs))))
    assert print_module(via_pack) == print_module(packed)


def test_fewer_chips_than_stages_runs_in_rounds_and_says_what_it_wears():
    spread = cimc.compile(CNN, "rram-128", **SMALL)
    one = cimc.compile(CNN, "rram-128", chips=1, **SMALL)
    finite_positive(one)
    rl = one.report.chips["reload"]
    assert one.chips_used == 1 and rl["rounds"] == spread.report.chips["stages"] > 1
    assert rl["writes_per_cell_per_inference"] == pytest.approx(rl["rounds"] / 1)
    assert 0 < rl["lifetime_s"] < math.inf
    assert one.period_ns >= rl["write_ns_per_inference"] > 0
    assert one.report.energy_breakdown_nj["reload"] > 0
    # reprogramming costs: one chip is slower than as many chips as stages, and takes less area
    assert one.period_ns > spread.period_ns
    assert one.area_mm2 < spread.area_mm2
    # a larger batch amortises the writes: more throughput, less energy, fewer writes per cell
    big = cimc.compile(CNN, "rram-128", chips=1, batch=16, **SMALL)
    assert big.period_ns < one.period_ns and big.energy_nj < one.energy_nj
    assert big.report.chips["reload"]["writes_per_cell_per_inference"] == pytest.approx(rl["rounds"] / 16)
    # the lifetime follows the device's endurance
    tough = cimc.compile(CNN, "rram-128", chips=1, endurance_cycles=1e9, **SMALL)
    assert tough.report.chips["reload"]["lifetime_s"] == pytest.approx(rl["lifetime_s"] * 1e3, rel=1e-6)


def test_reload_forces_rounds_and_two_chips_make_a_mix():
    two = cimc.compile(CNN, "rram-128", chips=2, **SMALL)
    stages = two.report.chips["stages"]
    assert two.chips_used == 2 and two.report.chips["reload"]["rounds"] == -(-stages // 2)
    forced = cimc.compile(CNN, "rram-128", reload=True, **SMALL)
    assert forced.chips_used == 1 and forced.report.chips["reload"]["rounds"] == stages


def test_more_chips_than_needed_spread_the_model_for_throughput():
    fewest = cimc.compile(CNN, "rram-128", tiles=4)  # 16 crossbars: fits... or not, as the split says
    more = cimc.compile(CNN, "rram-128", chips=4, tiles=4)
    assert more.report.chips["stages"] == more.chips_used <= 4
    assert more.chips_used >= fewest.chips_used
    assert more.period_ns <= fewest.period_ns * 1.0001


def test_chips_must_be_a_positive_whole_number():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(cimc.CimcError, match="chips must be"):
            cimc.compile(CNN, "rram-128", chips=bad)


def _period(**target) -> float:
    return cimc.compile(CNN, "rram-128", "fast", **target).period_ns


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kb=st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 64.0]), shrink=st.sampled_from([0.1, 0.25, 0.5]))
def test_a_smaller_buffer_or_less_bandwidth_is_never_faster(kb, shrink):
    base = dict(tiles=2)
    assert _period(buffer_kb=kb * shrink, **base) >= _period(buffer_kb=kb, **base) * (1 - 1e-9)
    assert _period(buffer_kb=kb, offchip_bytes_per_ns=6.4 * shrink, **base) >= \
        _period(buffer_kb=kb, **base) * (1 - 1e-9)
    assert _period(buffer_kb=kb, buffer_bytes_per_ns=38.4 * shrink, **base) >= \
        _period(buffer_kb=kb, **base) * (1 - 1e-9)


def test_a_slower_link_is_never_faster():
    fast = cimc.compile(CNN, "rram-128", **SMALL)
    slow = cimc.compile(CNN, "rram-128", link_bytes_per_ns=0.1, **SMALL)
    assert slow.period_ns >= fast.period_ns and slow.latency_ns >= fast.latency_ns
    assert slow.report.chips["link"]["period_ns"] > fast.report.chips["link"]["period_ns"]


def test_spills_go_off_chip_when_the_buffer_is_small():
    roomy = cimc.compile(CNN, "rram-128", "fast", tiles=2)
    tight = cimc.compile(CNN, "rram-128", "fast", tiles=2, buffer_kb=0.25)
    assert not roomy.report.chips  # one chip, nothing spilled
    sp = tight.report.chips["spills"]
    assert sp["bytes_per_inference"] > 0 and sp["energy_nj"] > 0
    assert tight.energy_nj > roomy.energy_nj
    # a global buffer takes what the tiles do not hold
    helped = cimc.compile(CNN, "rram-128", "fast", tiles=2, buffer_kb=0.25, global_buffer_kb=1024.0)
    assert helped.report.chips.get("spills", {}).get("bytes_per_inference", 0.0) < sp["bytes_per_inference"]


def test_cli_chips_one_gives_a_reloading_mapping(tmp_path: Path):
    path = tmp_path / "cnn.onnx"
    onnx.save(CNN, path)
    out = subprocess.run([sys.executable, "-m", "cimc", "compile", str(path), "-t", "rram-128", "--set", "tiles=1",
                          "--set", "xbars_per_tile=4", "--chips", "1", "--batch", "4", "--no-progress",
                          "--report", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "reload:" in out.stdout and "lifetime" in out.stdout and "in rounds" in out.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["chips"]["reload"]["batch"] == 4 and rep["chips_used"] == 1
    bad = subprocess.run([sys.executable, "-m", "cimc", "compile", str(path), "--chips", "0", "--no-progress"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "chips must be" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "zfnet"])
def test_networks_with_a_layer_larger_than_a_chip_compile_by_default(name, tmp_path: Path):
    """AlexNet's and ZFNet's first fully connected layer (9216 x 4096) needs more crossbars than
    one rram-256 chip: it goes over two chips, and the default pipeline maps the network."""
    import torch

    from cimc.frontend import export_torch
    from cimc.search import networks

    torch.manual_seed(0)
    model = export_torch(getattr(networks, name)().eval(), (torch.randn(1, 3, 224, 224),))
    r = cimc.compile(model, "rram-256")
    finite_positive(r)
    assert r.chips_used >= 3 and r.report.chips["link"]["bytes_per_inference"] > 0
    big = [op for op in r.module.ops if op.kind == "map.block" and op.get("chip") is not None]
    assert len({op["chip"] for op in big}) >= 2  # one layer over several chips
    reload = cimc.compile(model, "rram-256", chips=1, batch=8)
    finite_positive(reload)
    assert reload.report.chips["reload"]["rounds"] == r.report.chips["stages"]
    # the convolutions' stage keeps fewer copies when it is rewritten every round
    assert reload.report.chips["per_chip"][0]["crossbars"] < r.report.chips["per_chip"][0]["crossbars"]


def test_the_split_is_deterministic():
    a = cimc.compile(CNN, "rram-128", chips=3, **SMALL).text()
    b = cimc.compile(CNN, "rram-128", chips=3, **SMALL).text()
    assert a == b and "chip = 1" in a


def test_reloaded_stages_take_copies_by_what_the_batch_amortises():
    """A reloaded stage's copies are written every round: a small batch keeps few, a large
    batch fills the chip (the crossbars that minimise writes + the batch's reads)."""
    from cimc import facts

    def budgets(batch):
        m = cimc.compile(CNN, "rram-128", chips=1, batch=batch, tiles=1, xbars_per_tile=8,
                         offchip_bytes_per_ns=0.01).module  # a slow link: each crossbar's write costs 0.4 ms
        text = facts.get(m, "chip_budgets")
        return {int(c): int(b) for c, b in (kv.split(":") for kv in text.split(","))}

    few, many = budgets(1), budgets(100000)
    assert few.keys() == many.keys() and len(few) > 1
    assert all(few[c] <= many[c] <= 8 for c in few) and any(few[c] < many[c] for c in few)
    assert all(b == 8 for b in many.values())
