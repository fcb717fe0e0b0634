from pathlib import Path

import pytest

from cimc.errors import TargetError
from cimc.targets import device_names, load_device, load_target, parse_override, preset_names

PRESETS = ["isaac", "puma", "pimcomp", "pimcomp-logical", "neurosim", "mnsim", "rnc-128", "rram-128", "rram-256", "rram-512"]


def test_every_preset_loads_and_notes_its_source():
    assert set(PRESETS) <= set(preset_names())
    for name in preset_names():
        t = load_target(name)
        assert t.name == name
        assert t.source.strip(), f"{name} has no source"


def test_generic_presets_match_the_issue():
    for size in (128, 256, 512):
        t = load_target(f"rram-{size}")
        assert (t.xbar_rows, t.xbar_cols, t.cell_bits, t.weight_bits, t.input_bits, t.dac_bits, t.adc_bits) == (
            size, size, 2, 8, 8, 1, 8)
        assert t.cols_per_adc > 1  # shared ADCs


def test_rnc128_is_the_papers_setting():
    t = load_target("rnc-128")
    assert (t.xbar_rows, t.xbar_cols, t.cols_per_weight, t.cols_per_adc) == (128, 128, 1, 1)
    assert t.reads_per_mvm * t.read_ns(128) == pytest.approx(152.8)


def test_isaac_tile_area_is_derived_from_components():
    # ISAAC Table I: tile 0.372 mm2, computed here from the array/ADC/periphery figures
    t = load_target("isaac")
    assert t.tile_area_mm2 == pytest.approx(0.372, rel=0.01)
    assert t.reads_per_mvm == 16 and t.slices == 8


def test_overrides_replace_keys_and_coerce_ints_to_floats():
    t = load_target("rram-256", {"xbar_rows": 128, "xbar_read_ns": 10})
    assert t.xbar_rows == 128 and t.xbar_read_ns == 10.0 and isinstance(t.xbar_read_ns, float)
    assert load_target(t) is t


@pytest.mark.parametrize("overrides, words", [
    ({"adc_bitz": 6}, "unknown"),
    ({"adc_bits": "six"}, "must be an int"),
    ({"adc_bits": True}, "must be an int"),
    ({"xbar_rows": 0}, "positive"),
    ({"xbar_rows": -4}, "positive"),
    ({"xbar_rows": 10**9}, "absurd"),
    ({"xbar_read_ns": -1.0}, ">= 0"),
    ({"signed_weights": "twos"}, "signed_weights"),
    ({"xbar_rows": 1, "xbar_cols": 1}, "columns"),  # a 1x1 crossbar cannot hold one 8-bit weight
])
def test_bad_overrides_are_clear_errors(overrides, words):
    with pytest.raises(TargetError, match=words):
        load_target("rram-256", overrides)


def test_unknown_target_names_the_presets():
    with pytest.raises(TargetError, match="rram-256"):
        load_target("no-such-chip")


def test_user_toml_file_with_base(tmp_path):
    f = tmp_path / "chip.toml"
    f.write_text('base = "rram-256"\nname = "chip"\nadc_bits = 6\n')
    t = load_target(f)
    assert (t.name, t.adc_bits, t.xbar_rows) == ("chip", 6, 256)


@pytest.mark.parametrize("text, words", [
    ("name = \n", "not valid TOML"),
    ('base = "nope"\n', "base"),
    ('base = "rram-256"\nfoo = 1\n', "unknown key"),
    ('name = "x"\n', "missing key"),
])
def test_bad_user_files(tmp_path, text, words):
    f = tmp_path / "chip.toml"
    f.write_text(text)
    with pytest.raises(TargetError, match=words):
        load_target(f)


def test_missing_target_file(tmp_path):
    with pytest.raises(TargetError, match="does not exist"):
        load_target(tmp_path / "nope.toml")


def test_parse_override():
    assert parse_override("adc_bits=6") == ("adc_bits", 6)
    assert parse_override("xbar_read_ns=2.5") == ("xbar_read_ns", 2.5)
    assert parse_override("signed_weights=offset") == ("signed_weights", "offset")
    with pytest.raises(TargetError, match="key=value"):
        parse_override("adc_bits")
    with pytest.raises(TargetError, match="unknown target key"):
        parse_override("bogus=1")


def test_peak_figures_follow_the_components():
    t = load_target("rram-256")
    slow = t.replace(xbar_read_ns=2 * t.xbar_read_ns, adc_conversion_ns=2 * t.adc_conversion_ns)
    assert slow.peak()["peak_gops"] == pytest.approx(t.peak()["peak_gops"] / 2)
    assert t.peak()["weight_capacity"] == t.xbars * t.xbar_rows * (t.xbar_cols // t.cols_per_weight)


def test_device_presets_fill_the_device_keys_under_the_target_and_under_overrides(tmp_path):
    assert {"rram-1bit", "rram-2bit"} <= set(device_names())
    for name in device_names():
        d = load_device(name)
        # binary and 2-bit cells set their bits; analog multi-level devices leave them to the target
        assert d["source"].strip() and d.get("cell_bits", "target's") in (1, 2, "target's")
    isaac = load_target("isaac")
    assert isaac.device == "rram-2bit" and isaac.cell_write_ns == load_device("rram-2bit")["cell_write_ns"]
    # a device named on the command line replaces the file's device keys; other overrides win over both
    one = load_target("isaac", {"device": "rram-1bit"})
    assert (one.cell_bits, one.on_off_ratio, one.slices) == (1, 17.0, 16)
    assert load_target("isaac", {"device": "rram-1bit", "cell_bits": 4}).cell_bits == 4
    assert isaac.replace(device="rram-1bit").cell_bits == 1
    # in a user file, its own keys win over its device's
    f = tmp_path / "chip.toml"
    f.write_text('base = "rram-256"\nname = "chip"\ndevice = "rram-1bit"\ncell_bits = 2\n')
    chip = load_target(f)
    assert (chip.cell_bits, chip.r_on_kohm) == (2, 100.0)
    with pytest.raises(TargetError, match="unknown device"):
        load_target("isaac", {"device": "memristor-9000"})


@pytest.mark.parametrize("overrides, words", [
    ({"rows_per_read": -1}, ">= 0"),
    ({"noc": "torus"}, "noc"),
    ({"xbars_per_group": 0}, "positive"),
])
def test_bad_hierarchy_values(overrides, words):
    with pytest.raises(TargetError, match=words):
        load_target("rram-256", overrides)


def test_hierarchy_figures():
    t = load_target("isaac")
    assert (t.groups_per_tile, t.xbars_per_group) == (12, 8)  # 12 IMAs of 8 crossbars
    assert load_target("rram-256", {"xbars_per_tile": 10}).groups_per_tile == 2  # a partial last group
    p = t.peak()
    assert p["group_power_mw"] * t.groups_per_tile + sum(
        v for k, v in t.tile_power_breakdown().items() if k in ("buffer", "network", "digital", "other")
    ) == pytest.approx(p["tile_power_mw"])
    assert sum(t.tile_area_breakdown().values()) == pytest.approx(t.tile_area_mm2)
    # partial reads: more conversions per MVM, so a full MVM takes longer
    r256 = load_target("rram-256")
    assert r256.replace(rows_per_read=64).xbar_mvm_ns == pytest.approx(4 * r256.xbar_mvm_ns)


def test_crossbar_pools():
    t = load_target("rram-256", {"pools": "64x64*64, 128x128*16"})
    assert t.pool_list == ((256, 256, 48), (64, 64, 64), (128, 128, 16))
    assert (t.xbars_per_tile_all, t.xbars, t.pool_offset(2)) == (128, 128 * 84, 112)
    assert [t.pool_of_xbar(x) for x in (0, 47, 48, 111, 112, 127)] == [0, 0, 1, 1, 2, 2]
    small = t.pool(1)
    assert (small.xbar_rows, small.xbar_cols, small.xbars_per_tile, small.pools) == (64, 64, 64, "")
    assert small.xbar_area_um2 == pytest.approx(t.xbar_area_um2 / 16)  # the array scales with its cells
    one = load_target("rram-256")
    # capacity and peak throughput add the pools' crossbars
    extra = 84 * (64 * 64 * (64 // one.cols_per_weight) + 16 * 128 * (128 // one.cols_per_weight))
    assert t.peak()["weight_capacity"] == one.peak()["weight_capacity"] + extra
    assert t.tile_area_mm2 > one.tile_area_mm2


@pytest.mark.parametrize("pools, words", [("64x64", "ROWSxCOLS"), ("64*3", "ROWSxCOLS"), ("0x64*3", "positive"),
                                          ("4x4*2", "cannot hold one weight")])
def test_bad_pools(pools, words):
    with pytest.raises(TargetError, match=words):
        load_target("rram-256", {"pools": pools})


def test_pimcomp_logical_counts_as_pimcomp_does():
    """PIMCOMP-NN's config counts 64 logical crossbars of 16-bit weights per core; `pimcomp`
    is the physical reading (2-bit cells): the same per-crossbar figures, 8x fewer weights."""
    import onnx

    import cimc

    phys, logical = load_target("pimcomp"), load_target("pimcomp-logical")
    assert logical.cols_per_weight == 1 and phys.cols_per_weight == 8
    assert logical.peak()["weight_capacity"] == 8 * phys.peak()["weight_capacity"]
    assert logical.group_power_mw == pytest.approx(phys.group_power_mw)  # the config's matrix unit, both ways
    zoo = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    on = {name: cimc.compile(zoo, name, "baseline").report.chips_used for name in ("pimcomp", "pimcomp-logical")}
    assert on == {"pimcomp": 2, "pimcomp-logical": 1}  # ResNet-50's 25.5 M weights, one copy
