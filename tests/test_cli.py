"""The command line: outputs, exit codes and messages for bad input (never a traceback)."""

import json
import os
import subprocess
import sys

import pytest

import cimc
from cimc.cli import main
from conftest import zoo

import onnx_builders as ob


def run(*args, cwd=None):
    """Run cimc in a subprocess; returns (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "cimc", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_compile_writes_mapping_and_report(tmp_path, resnet20_path):
    cim, rep = tmp_path / "r.cim", tmp_path / "r.json"
    code, out, err = run("compile", resnet20_path, "--target", "rram-256", "-o", cim, "--report", rep)
    assert code == 0, err
    assert "crossbars used" in out and "latency" in out
    data = json.loads(rep.read_text())
    for key in ("schema", "model", "target", "passes", "crossbars_used", "crossbars_available",
                "crossbars_lower_bound", "utilization", "latency_ns", "throughput_ips", "energy_nj", "area_mm2",
                "edap", "compile_s", "layers"):
        assert key in data
    for key in ("name", "op", "rows", "cols", "groups", "mvms", "blocks", "copies", "crossbars", "latency_ns",
                "energy_nj"):
        assert key in data["layers"][0]
    assert any(layer["crossbars"] == 0 for layer in data["layers"])  # digital ops listed
    assert cim.read_text().startswith("module @resnet20 ")
    # report from the text gives the same figures
    assert main(["report", str(cim), "--json"]) == 0


def test_report_json_matches_compile(tmp_path, resnet20_path, capsys):
    cim = tmp_path / "r.cim"
    assert main(["compile", str(resnet20_path), "-o", str(cim), "--json"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert main(["report", str(cim), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    for key in ("crossbars_used", "latency_ns", "energy_nj", "area_mm2", "utilization", "layers"):
        assert compiled[key] == reported[key]


def test_set_overrides_and_user_target(tmp_path, resnet20_path, capsys):
    chip = tmp_path / "chip.toml"
    chip.write_text('base = "rram-256"\nname = "mychip"\n')
    assert main(["compile", str(resnet20_path), "--target", str(chip), "--set", "adc_bits=6",
                 "--set", "xbar_rows=128", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == "mychip"
    def per_copy(report):  # blocks of one copy of the layer that needs the most
        return max(layer["blocks"] // max(layer["copies"], 1) for layer in report["layers"])
    small = per_copy(data)
    assert main(["compile", str(resnet20_path), "--json"]) == 0
    assert per_copy(json.loads(capsys.readouterr().out)) < small


def test_opt_runs_passes_on_text(tmp_path, resnet20_path):
    lowered = tmp_path / "l.cim"
    assert main(["compile", str(resnet20_path), "--passes", "lower", "-o", str(lowered)]) == 0
    mapped = tmp_path / "m.cim"
    assert main(["opt", str(lowered), "--passes", "partition,place,cost", "-o", str(mapped)]) == 0
    assert "map.place" in mapped.read_text() and "map.place" not in lowered.read_text()


def test_targets_lists_every_preset(capsys):
    from cimc.targets import preset_names

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert f"\n{name} " in out
    assert main(["targets", "show", "isaac", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["xbar_rows"] == 128
    for key in ("peak_gops", "peak_gops_per_w", "peak_gops_per_s_mm2", "area_mm2", "power_w", "weight_capacity"):
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    assert figures["peak_gops_per_w"] == pytest.approx(627.3, rel=1e-3)


def test_targets_show_prints_the_hierarchy_and_devices_list(capsys):
    assert main(["targets", "show", "puma"]) == 0
    out = capsys.readouterr().out
    for words in ("138 tiles", "8 groups x 16 crossbars", "128x128", "rram-2bit", "TOPS/W", "tile power"):
        assert words in out, words
    assert main(["targets", "show", "isaac", "--set", "device=rram-1bit", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cell_bits"] == 1
    assert main(["targets", "devices"]) == 0
    out = capsys.readouterr().out
    assert "rram-1bit" in out and "rram-2bit" in out


def _garbage_files(tmp_path, resnet20_path):
    good = resnet20_path.read_bytes()
    files = {
        "empty.onnx": b"",
        "truncated.onnx": good[: len(good) // 3],
        "random.onnx": os.urandom(4096),
        "text.onnx": b"this is not a model\n",
        "tensor.onnx": ob.weight("w", 3, 3).SerializeToString(),  # a valid protobuf, not a model
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return list(files)


@pytest.mark.parametrize("name", ["empty.onnx", "truncated.onnx", "random.onnx", "text.onnx", "tensor.onnx",
                                  "missing.onnx"])
def test_bad_model_files_give_one_clear_error(tmp_path, resnet20_path, name):
    _garbage_files(tmp_path, resnet20_path)
    out = tmp_path / "out.cim"
    code, stdout, err = run("compile", tmp_path / name, "-o", out)
    assert code == 1
    assert "Traceback" not in err and err.startswith("cimc: error: ")
    assert name in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.cim")]  # no temp file left


@pytest.mark.parametrize("args, words", [
    (["--target", "nope"], "unknown target 'nope'"),
    (["--set", "adc_bits=x"], "adc_bits"),
    (["--set", "bogus=1"], "unknown target key"),
    (["--passes", "lower,frobnicate"], "unknown pass 'frobnicate'"),
    (["--passes", "partition{grouped=sideways}"], "grouped"),
    (["--passes", "lower,partition,place{overflow=error}", "--set", "tiles=1", "--set", "xbars_per_tile=2"],
     "needs"),
    (["--input-shape", "x=1,a"], "--input-shape"),
])
def test_bad_options_give_one_clear_error(resnet20_path, args, words):
    code, _, err = run("compile", resnet20_path, *args)
    assert code == 1, err
    assert words in err and "Traceback" not in err


def test_usage_errors_exit_2():
    code, _, err = run("compile")
    assert code == 2 and "usage" in err
    code, _, err = run("frobnicate")
    assert code == 2


def test_never_overwrites_the_input(tmp_path, resnet20_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(resnet20_path.read_bytes())
    before = model.read_bytes()
    code, _, err = run("compile", model, "-o", model)
    assert code == 1 and "never overwrites" in err
    assert model.read_bytes() == before
    cim = tmp_path / "m.cim"
    assert run("compile", model, "-o", cim)[0] == 0
    text = cim.read_text()
    code, _, err = run("opt", cim, "--passes", "cost", "-o", cim)
    assert code == 1 and cim.read_text() == text


def test_failed_compile_keeps_the_previous_output(tmp_path, resnet20_path):
    out = tmp_path / "out.cim"
    out.write_text("previous")
    code, _, _ = run("compile", resnet20_path, "--target", "nope", "-o", out)
    assert code == 1 and out.read_text() == "previous"


def test_mapping_text_errors(tmp_path, resnet20_path):
    cim = tmp_path / "m.cim"
    assert main(["compile", str(resnet20_path), "-o", str(cim)]) == 0
    lines = cim.read_text().splitlines()
    # a syntax error on line 3
    bad = lines[:2] + [lines[2].replace("(", "((", 1)] + lines[3:]
    (tmp_path / "syntax.cim").write_text("\n".join(bad))
    code, _, err = run("report", tmp_path / "syntax.cim")
    assert code == 1 and "syntax.cim:3:" in err and "^" in err and "Traceback" not in err
    # a block placed over another one
    places = [i for i, l in enumerate(lines) if "map.place" in l]
    second = lines[places[1]]
    first_at = lines[places[0]].split("{", 1)[1]
    lines[places[1]] = second.split("{", 1)[0] + "{" + first_at
    (tmp_path / "overlap.cim").write_text("\n".join(lines) + "\n")
    code, _, err = run("report", tmp_path / "overlap.cim")
    assert code == 1 and "overlap" in err


def test_zoo_model_from_the_command_line():
    code, out, err = run("compile", zoo("squeezenet"), "--target", "isaac")
    assert code == 0, err
    assert "isaac" in out


def _default_signals():
    """In the child: SIGINT, SIGTERM and SIGHUP at their defaults, whatever this process inherited
    (a job started in the background of a shell ignores SIGINT, and so would its children)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


# In the child: the pack pass says it has started (a marker file) and then works on (sleeps), so the
# interrupt lands in the middle of the compile whatever the machine's load; then the real CLI runs.
_PAUSED_COMPILE = """
import pathlib, sys, time
import cimc.passes.pack as pack
real = pack.PackPass.run
def run(self, module):
    pathlib.Path(sys.argv[1]).write_text("packing")
    for _ in range(1200):  # 60 s at most: the test interrupts long before
        time.sleep(0.05)
    return real(self, module)
pack.PackPass.run = run
from cimc.search.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_interrupted_compile_keeps_the_previous_output(tmp_path):
    """Ctrl-C in the middle of a compile: exit 130, a message, the old output untouched, no temp file."""
    import signal
    import time

    out = tmp_path / "out.cim"
    out.write_text("previous mapping\n")
    marker = tmp_path.parent / f"{tmp_path.name}.packing"
    p = subprocess.Popen([sys.executable, "-c", _PAUSED_COMPILE, str(marker), "compile", str(zoo("squeezenet")),
                          "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while not marker.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the compile has reached the pack pass
    assert marker.exists() and p.poll() is None, "the compile did not reach the pack pass"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert out.read_text() == "previous mapping\n"
    assert [x.name for x in tmp_path.iterdir()] == ["out.cim"]


def test_a_network_imported_once_compiles_for_many_targets(resnet20_path):
    net = cimc.import_model(resnet20_path)
    for target in ("rram-256", "isaac"):
        once = cimc.compile(net, target, "fast")
        assert once.text() == cimc.compile(resnet20_path, target, "fast").text()
        assert once.module.target.name == target
    with pytest.raises(cimc.CimcError, match="already mapped"):
        cimc.compile(once.module, "isaac")
    with pytest.raises(cimc.CimcError, match="import_model"):
        cimc.compile(net, "isaac", batch=2)


def test_replaced_output_keeps_its_permission_bits_and_stdout_output(tmp_path, resnet20_path):
    out = tmp_path / "r.cim"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    code, _, err = run("compile", resnet20_path, "--passes", "baseline", "-o", out)
    assert code == 0, err
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o640) and out.read_text().startswith("module @")
    code, stdout, err = run("compile", resnet20_path, "--passes", "baseline", "-o", "-")
    assert code == 0 and stdout.startswith("module @resnet20") and "crossbars used" not in stdout
    link = tmp_path / "link.cim"
    link.symlink_to(out)
    code, _, err = run("compile", resnet20_path, "--passes", "fast", "-o", link)
    assert code == 0 and link.is_symlink() and "GREEDY" in out.read_text().splitlines()[0]  # written through the link


def test_a_signal_ignored_on_purpose_stays_ignored():
    """nohup ignores SIGHUP; cimc's SIGTERM/SIGHUP cleanup must not undo that."""
    import signal

    from cimc import files

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with files.terminating():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)
