"""cimc search: spaces and their errors, families and supernets, evaluators, infeasible
candidates, constraints, determinism, the cache, outputs, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cimc
from cimc import search
from cimc.search.families import Shape
from cimc.search.knobs import knob
from cimc.search.supernet import extract, member_tensors
from conftest import ROOT

QUICK = ROOT / "examples" / "search" / "quick.toml"
DIGITS = Shape(1, 8, 10)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test trains into a cache folder of its own (never ~/.cache)."""
    monkeypatch.setenv("CIMC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cli(*args, cwd=None, env=None, timeout=600):
    p = subprocess.run([sys.executable, "-m", "cimc", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, **(env or {})}, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def tiny_space(**kw) -> search.Space:
    args = dict(network=search.families.cnn(stages=1), network_knobs={"s0.width": [8, 16], "s0.kernel": [3, 5],
                                                                        "s0.depth": 1},
                hardware={"xbar_rows": [64, 128, 256]}, target="rram-256", data="digits",
                objectives={"accuracy": "max", "latency_ns": "min"}, evaluator=search.Train(epochs=2))
    args.update(kw)
    return search.Space(**args)


def counting_callback():
    calls = []

    def fn(model, config):
        calls.append(dict(config))
        return {"accuracy": 0.5 + 0.01 * config["s0.width"]}

    return search.Callback(fn, ("accuracy",)), calls


# ---- spaces ---------------------------------------------------------------------------------

def write(tmp_path, text: str) -> Path:
    p = tmp_path / "space.toml"
    p.write_text(text)
    return p


BASE = """
data = "digits"
[network]
family = "cnn"
stages = 1
[objectives]
accuracy = "max"
latency_ns = "min"
"""

BAD_SPACES = [
    ("colour = 3\n", "unknown key(s) colour"),
    ("[network.knobs]\nwidth = [8]\n", "has no knob width"),
    ("[hardware]\nxbar_size = [64]\n", "'xbar_size' names no target key"),
    ("[hardware]\nadc_bits = {low = 8, high = 4}\n", "low = 8 is above high = 4"),
    ("[hardware]\nbudget = {low = 0, high = 64, log = true}\n", "a log range needs low > 0"),
    ("[hardware]\nadc_bits = [4.5, 6]\n", "'adc_bits' takes an int"),
    ("[hardware]\nadc_bits = [4, 40]\n", "adc_bits = 40 is not valid"),
    ("[hardware]\ndevice = [\"rram-9bit\"]\n", "unknown device 'rram-9bit'"),
    ("[hardware]\nxbar_rows = []\n", "an empty list of choices"),
    ("[hardware]\npasses = [\"lower,nonsense\"]\n", "passes = 'lower,nonsense' is not valid"),
    ("[constraints]\nchip_area_mm2 = [\"<\", 4]\n", "give [\"<=\", bound]"),
    ("[constraints]\nspeed = [\"<=\", 4]\n", "constraint 'speed' is not a metric"),
    ("[evaluator]\nkind = \"magic\"\n", "evaluator kind 'magic'"),
    ("[evaluator]\nkind = \"train\"\nepoch = 3\n", "has no setting epoch"),
    ("[evaluator]\nkind = \"train\"\nepochs = \"3\"\n", "'epochs' must be int"),
    ("[chip]\ndraw = 3\n", "[chip] has no setting draw"),
    ("sampler = \"grid\"\n", "sampler 'grid'"),
    ("pipeline = \"fast,,\"\n", "pipeline = 'fast,,'"),
    ("[reference]\nenergy_nj = 3\n", "[reference] 'energy_nj' is not an objective"),
]


@pytest.mark.parametrize("extra,message", BAD_SPACES, ids=[m for _, m in BAD_SPACES])
def test_bad_space_is_a_clear_error(tmp_path, extra, message):
    text = BASE + extra if extra.startswith("[") else extra + BASE
    with pytest.raises(search.SpaceError) as e:
        search.Space.from_toml(write(tmp_path, text))
    assert message in str(e.value)


def test_bad_space_errors_on_the_command_line(tmp_path):
    path = write(tmp_path, BASE + "[hardware]\nxbar_size = [64]\n")
    code, out, err = cli("search", path, "--out", tmp_path / "out")
    assert code == 1 and "names no target key" in err and "Traceback" not in err
    code, _, err = cli("search", tmp_path / "nope.toml")
    assert code == 1 and "does not exist" in err
    (tmp_path / "broken.toml").write_text("[network\n")
    code, _, err = cli("search", tmp_path / "broken.toml")
    assert code == 1 and "not valid TOML" in err
    code, _, err = cli("search", "show", tmp_path)
    assert code == 1 and "no pareto.json" in err
    code, _, err = cli("search", QUICK, "--trials", "0")
    assert code == 1 and "'trials' must be a positive integer" in err


def test_space_without_network_or_objectives(tmp_path):
    with pytest.raises(search.SpaceError, match="no \\[network\\] table"):
        search.Space.from_toml(write(tmp_path, "data = \"digits\"\n[objectives]\naccuracy = \"max\"\n"))
    with pytest.raises(search.SpaceError, match="no objectives"):
        search.Space.from_toml(write(tmp_path, "[network]\nfamily = \"cnn\"\n"))
    with pytest.raises(search.SpaceError, match="unknown network family 'alexnet'"):
        search.Space.from_toml(write(tmp_path, "[network]\nfamily = \"alexnet\"\n[objectives]\naccuracy = \"max\"\n"))
    with pytest.raises(search.SpaceError, match="evaluator gives no accuracy"):
        search.Space.from_toml(write(tmp_path, BASE + "[evaluator]\nkind = \"none\"\n"))


def test_variation_metrics_need_programmed_chips():
    space = tiny_space(objectives={"accuracy_variation_p5": "max", "latency_ns": "min"})
    with pytest.raises(search.SpaceError, match="need programmed chips"):
        search.run(space, trials=1)


def test_quick_space_parses():
    space = search.Space.from_toml(QUICK)
    assert space.network.name == "cnn" and space.options["trials"] == 12
    assert {"xbar_rows", "adc_bits", "tiles"} <= set(space.hw_knobs)
    assert space.hw_knobs["adc_bits"].kind == "int" and space.hw_knobs["adc_bits"].values() == [4, 5, 6, 7, 8]
    assert space.objectives["chip_area_mm2"] == "min" and space.constraints["chip_area_mm2"] == ("<=", 12.0)


def test_user_builder_from_a_file(tmp_path):
    (tmp_path / "mynet.py").write_text(
        "import torch\n"
        "def build(config):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, config['hidden']), torch.nn.ReLU(),\n"
        "                               torch.nn.Linear(config['hidden'], 10))\n")
    path = write(tmp_path, "data = \"digits\"\n[network]\nbuilder = \"mynet.py:build\"\n[network.knobs]\n"
                           "hidden = [16, 32]\n[objectives]\naccuracy = \"max\"\nenergy_nj = \"min\"\n"
                           "[evaluator]\nepochs = 2\n")
    space = search.Space.from_toml(path)
    result = search.run(space, trials=3, seed=0, progress=False)
    done = [t for t in result.trials() if t.state.name == "COMPLETE"]
    assert len(done) == 3 and all(t.user_attrs["network"]["hidden"] in (16, 32) for t in done)
    with pytest.raises(search.SpaceError, match="has no function 'nothere'"):
        search.Space.from_toml(write(tmp_path, "[network]\nbuilder = \"mynet.py:nothere\"\n[objectives]\n"
                                               "accuracy = \"max\"\n"))


SPECS = st.one_of(
    st.integers(-5, 300), st.sampled_from(["a", "b"]), st.lists(st.integers(0, 9), max_size=4),
    st.fixed_dictionaries({"low": st.integers(-3, 20), "high": st.integers(-3, 20)},
                          optional={"step": st.integers(-1, 3), "log": st.booleans()}),
    st.fixed_dictionaries({"low": st.floats(-2, 5), "high": st.floats(-2, 5)}, optional={"log": st.booleans()}))


@settings(max_examples=200, deadline=None)
@given(SPECS, st.integers(0, 2 ** 16))
def test_knob_suggests_only_values_it_contains(spec, seed):
    """Any written knob either is refused with a SpaceError or suggests values inside its domain."""
    try:
        k = knob("x", spec, "test")
    except search.SpaceError:
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(5):
        trial = study.ask()
        v = k.suggest(trial)
        assert k.contains(v), (spec, v)
        if k.kind == "int":
            assert isinstance(v, int)
        study.tell(trial, 0.0)


# ---- families and supernets --------------------------------------------------------------------

FAMILY_CASES = [("cnn", {}), ("mobilenet_v3", {"stages": 3}), ("resnet", {"stages": 2}), ("vit", {})]


@pytest.mark.parametrize("name,args", FAMILY_CASES)
def test_family_members_export_and_compile(name, args):
    fam = search.families.family(name, **args)
    for pick in (min, max):
        cfg = {k: pick(kb.values()) for k, kb in fam.knobs.items()}
        model, used = fam.build(cfg, DIGITS)
        assert set(used) <= set(cfg)
        x = torch.zeros(1, 1, 8, 8)
        assert model.eval()(x).shape == (1, 10)
        r = cimc.compile(cimc.export_onnx(model, (x,)), "rram-256", "fast")
        assert r.latency_ns > 0 and r.energy_nj > 0


@pytest.mark.parametrize("name,args", FAMILY_CASES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_member_nests_in_the_largest(name, args, data):
    """A member's every parameter is a slice of the largest member's of the same name: what the
    supernet hands out. At the largest config the member is the supernet itself."""
    fam = search.families.family(name, **args)
    knobs = fam.knobs
    largest = {k: kb.largest() for k, kb in knobs.items()}
    big, _ = fam.build(largest, DIGITS)
    cfg = {k: data.draw(st.sampled_from(kb.values()), label=k) for k, kb in knobs.items()}
    member, _ = fam.build(cfg, DIGITS)
    tensors = member_tensors(big, member)
    for pname, t in member.named_parameters():
        assert tensors[pname].shape == t.shape
        assert tensors[pname].data_ptr() >= big.get_parameter(pname).data_ptr()  # a view into the supernet


def test_extracted_largest_member_computes_what_the_supernet_does():
    fam = search.families.mobilenet_v3(stages=2)
    largest = {k: kb.largest() for k, kb in fam.knobs.items()}
    torch.manual_seed(0)
    big, _ = fam.build(largest, DIGITS)
    big.eval()
    member, _ = fam.build(largest, DIGITS)
    member = extract(big, member, np.zeros((0, 1, 8, 8), np.float32))  # no BN re-estimation
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(member(x), big(x), atol=1e-6)
    small = {**largest, "s0.kernel": 3, "s0.width": 8}
    member, _ = fam.build(small, DIGITS)
    member = extract(big, member, np.zeros((0, 1, 8, 8), np.float32))
    w_big, w = big.stages[0][0].dw.conv.weight, member.stages[0][0].dw.conv.weight
    assert w.shape[-1] == 3 and torch.equal(w, w_big[: w.shape[0], :, 2:5, 2:5])  # the centre of the 7x7


def test_supernet_evaluator_trains_once_and_gives_members_accuracy(cache):
    space = tiny_space(network_knobs={"s0.width": [8, 16], "s0.kernel": [3, 5], "s0.depth": [1, 2]})
    ev = search.Supernet(epochs=4, batch=64, lr=0.01)
    data = search.SearchData.load("digits")
    net = ev.supernet(space.network, space.net_knobs, data)
    assert ev.train_seconds > 0 and list((cache / "supernets").glob("*.pt"))
    ev2 = search.Supernet(epochs=4, batch=64, lr=0.01)
    net2 = ev2.supernet(space.network, space.net_knobs, data)
    assert ev2.train_seconds == 0  # from the cache
    for (n1, p1), (_, p2) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert torch.equal(p1, p2), n1
    for cfg in ({"s0.width": 8, "s0.kernel": 3, "s0.depth": 1}, {"s0.width": 16, "s0.kernel": 5, "s0.depth": 2}):
        _, metrics = ev.model(space.network, cfg, data, knobs=space.net_knobs)
        assert metrics["accuracy"] > 0.5  # ten classes: chance is 0.1


def test_train_evaluator_caches_by_network(cache):
    space = tiny_space()
    data = search.SearchData.load("digits")
    ev = search.Train(epochs=2)
    cfg = {"s0.width": 8, "s0.kernel": 3, "s0.depth": 1}
    m1, a1 = ev.model(space.network, cfg, data)
    files = list((cache / "models").glob("*.pt"))
    assert len(files) == 1 and a1["accuracy"] > 0.3
    t0 = time.perf_counter()
    m2, a2 = ev.model(space.network, cfg, data)
    assert a2 == a1 and time.perf_counter() - t0 < 1.0
    for p1, p2 in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(p1, p2)
    ev.model(space.network, {**cfg, "s0.width": 16}, data)
    assert len(list((cache / "models").glob("*.pt"))) == 2


def test_validation_split_is_not_the_test_split():
    data = search.SearchData.load("digits")
    test = {x.tobytes() for x in data.x_test}
    assert not any(x.tobytes() in test for x in data.x_val[:50])
    assert len(data.x_val) + len(data.x_train) == len(cimc.data.load_dataset("digits").x_train)


def test_callback_must_return_numbers():
    space = tiny_space(evaluator=search.Callback(lambda model, config: {"accuracy": "high"}))
    with pytest.raises(search.SpaceError, match="must return"):
        search.run(space, trials=1, progress=False)


# ---- the engine -----------------------------------------------------------------------------

def test_infeasible_candidates_complete_with_their_reason():
    """A chip with one crossbar per tile cannot hold the fast pipeline's blocks: those trials
    complete as infeasible (reason kept), violate 'compiles', and are never on the front."""
    ev, _ = counting_callback()
    space = tiny_space(hardware={"xbars_per_tile": [1, 48], "tiles": 1}, evaluator=ev)
    result = search.run(space, trials=6, seed=1, progress=False)
    done = [t for t in result.trials() if t.state.name == "COMPLETE"]
    assert len(done) == 6
    bad = [t for t in done if t.user_attrs["hardware"]["xbars_per_tile"] == 1]
    good = [t for t in done if t.user_attrs["hardware"]["xbars_per_tile"] == 48]
    assert bad and good
    for t in bad:
        assert "Infeasible" in t.user_attrs["infeasible"] and t.constraints["compiles"] == 1.0
    assert all(t.constraints["compiles"] == 0.0 and not t.user_attrs["infeasible"] for t in good)
    assert {p.trial for p in result.pareto()} <= {t.number for t in good}


def test_the_chips_knob_lets_a_candidate_span_chips():
    """The same one-crossbar-per-tile chip, allowed 64 chips: the candidates compile over
    several chips (stages), and their area counts every chip."""
    ev, _ = counting_callback()
    space = tiny_space(hardware={"xbars_per_tile": 1, "tiles": 1, "chips": [1, 64]}, evaluator=ev)
    result = search.run(space, trials=6, seed=1, progress=False)
    done = [t for t in result.trials() if t.state.name == "COMPLETE"]
    one = [t for t in done if t.user_attrs["hardware"]["chips"] == 1]
    many = [t for t in done if t.user_attrs["hardware"]["chips"] == 64]
    assert one and many
    assert all("more than the 1 allowed" in t.user_attrs["infeasible"] for t in one)
    for t in many:
        assert not t.user_attrs["infeasible"]
        assert t.user_attrs["metrics"]["area_mm2"] > t.user_attrs["metrics"]["chip_area_mm2"]
    with pytest.raises(search.SpaceError, match="chips"):
        tiny_space(hardware={"chips": [0, 2]}).hw_knobs


def test_constraints_keep_violators_off_the_front():
    ev, _ = counting_callback()
    space = tiny_space(hardware={"tiles": [1, 2, 4, 8]}, evaluator=ev,
                       objectives={"accuracy": "max", "latency_ns": "min"},
                       constraints={"chip_area_mm2": ("<=", 1.5)})
    result = search.run(space, trials=10, seed=0, progress=False)
    for t in result.trials():
        area = t.user_attrs["metrics"]["chip_area_mm2"]
        assert (t.constraints["chip_area_mm2"] <= 0) == (area <= 1.5)
    assert result.pareto() and all(p.metrics["chip_area_mm2"] <= 1.5 for p in result.pareto())


def test_identical_candidates_are_evaluated_once():
    ev, calls = counting_callback()
    space = tiny_space(network_knobs={"s0.width": [8, 16], "s0.kernel": 3, "s0.depth": 1},
                       hardware={"xbar_rows": 128}, evaluator=ev)
    result = search.run(space, trials=8, seed=0, sampler="random", progress=False)
    done = [t for t in result.trials() if t.state.name == "COMPLETE"]
    assert len(done) == 8 and len(calls) == 2  # two distinct candidates in the whole space
    twins = [t for t in done if "cached_from" in t.user_attrs]
    assert len(twins) == 6
    for t in twins:
        src = result.study.trials[t.user_attrs["cached_from"]]
        assert t.user_attrs["metrics"] == src.user_attrs["metrics"] and t.values == src.values


def test_unread_knobs_are_not_part_of_a_candidate():
    """The kernel of a block past its stage's depth does not change the network: such configs
    are one candidate."""
    fam = search.families.resnet(stages=1, max_depth=2)
    base = {"stem": 8, "s0.depth": 1, "s0.width": 8, "s0.b0.kernel": 3}
    _, a = fam.build({**base, "s0.b1.kernel": 3}, DIGITS)
    _, b = fam.build({**base, "s0.b1.kernel": 7}, DIGITS)
    assert a == b and "s0.b1.kernel" not in a


def _trial_rows(result):
    return [(t.number, t.state.name, t.params, t.values, {k: v for k, v in t.user_attrs["metrics"].items()
                                                          if k != "compile_s"})
            for t in sorted(result.trials(), key=lambda t: t.number)]


def test_same_seed_same_search_in_memory_and_sqlite(tmp_path):
    space = search.Space.from_toml(QUICK)
    kw = dict(trials=6, seed=3, progress=False, final=False)
    a = _trial_rows(search.run(space, **kw))
    b = _trial_rows(search.run(space, **kw))
    c = _trial_rows(search.run(space, storage=f"sqlite:///{tmp_path / 's.db'}", **kw))
    assert a == b == c
    d = _trial_rows(search.run(space, **{**kw, "seed": 4}))
    assert [r[2] for r in d] != [r[2] for r in a]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_other_samplers(sampler):
    ev, _ = counting_callback()
    result = search.run(tiny_space(evaluator=ev), trials=5, seed=0, sampler=sampler, progress=False)
    assert sum(t.state.name == "COMPLETE" for t in result.trials()) == 5


def test_study_of_another_space_is_not_joined(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    ev, _ = counting_callback()
    search.run(tiny_space(evaluator=ev), storage=url, study="s", trials=2, progress=False)
    with pytest.raises(search.SpaceError, match="made for another space"):
        search.run(tiny_space(evaluator=ev, hardware={"xbar_rows": [64]}), storage=url, study="s", trials=2)
    with pytest.raises(search.SpaceError, match="no study 'other'"):
        search.run(tiny_space(evaluator=ev), storage=url, study="other", resume=True, trials=2)
    more = search.run(tiny_space(evaluator=ev), storage=url, study="s", trials=4, progress=False)
    assert sum(t.state.name == "COMPLETE" for t in more.trials()) == 4  # joined: two more


def test_local_workers_complete_exactly_the_trials(tmp_path):
    def slow(model, config):  # long enough that the forked worker is up before the parent is done
        time.sleep(0.4)
        return {"accuracy": 0.5 + 0.01 * config["s0.width"]}

    ev = search.Callback(slow, ("accuracy",))
    result = search.run(tiny_space(evaluator=ev, network_knobs={"s0.width": [8, 16, 24, 32], "s0.kernel": [3, 5],
                                                                 "s0.depth": 1}),
                        trials=7, workers=2, out=tmp_path / "out", progress=False, final=False, timeout_s=300)
    states = [t.state.name for t in result.trials()]
    assert states.count("COMPLETE") == 7 and "RUNNING" not in states and "WAITING" not in states
    assert (tmp_path / "out" / "study.db").is_file()
    assert len({t.user_attrs["worker"] for t in result.trials()}) == 2  # both processes ran trials


# ---- outputs and the command line -----------------------------------------------------------

def test_cli_quick_search_writes_every_output(tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("search", QUICK, "--trials", "5", "--seed", "0", "--out", out,
                            env={"CIMC_CACHE": str(tmp_path / "c")})
    assert code == 0, err
    assert "accuracy_quant (max)" in stdout and "knobs:" in stdout
    for name in ("trials.csv", "pareto.json", "pareto.png", "hypervolume.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["completed"] == 5 and doc["points"] and doc["reference_point"]
    assert doc["hypervolume"] >= 0
    lines = (out / "trials.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("trial,state,feasible")
    for p in doc["points"]:
        assert p["final"]["pipeline"] == "full"
        folder = out / Path(p["mapping_path"]).parent
        onnx.checker.check_model(onnx.load(folder / "model.onnx"))
        module = cimc.parse_file(folder / "mapping.cim")
        report = json.loads((folder / "report.json").read_text())
        assert report["crossbars_used"] == cimc.report(module).crossbars_used
        acc = json.loads((folder / "accuracy.json").read_text())
        assert acc["data"] == "digits/test" and 0 <= acc["accuracy"] <= 1
        assert p["final"]["test_accuracy"] == acc["accuracy"]
    code, shown, err = cli("search", "show", out)
    assert code == 0 and f"{len(doc['points'])} on the front" in shown
    code, shown, _ = cli("search", "show", out, "--json")
    assert json.loads(shown)["points"] == doc["points"]


def test_hypervolume_history_never_falls(tmp_path):
    ev, _ = counting_callback()
    result = search.run(tiny_space(evaluator=ev, hardware={"xbar_rows": [64, 128, 256], "tiles": [1, 2, 4]}),
                        trials=12, seed=0, progress=False, reference={"accuracy": 0.0, "latency_ns": 1e6})
    hist = [h for _, h in result.hypervolume_history()]
    assert len(hist) == 12 and hist[-1] > 0 and all(b >= a for a, b in zip(hist, hist[1:]))
    assert hist[-1] == pytest.approx(result.hypervolume())


def test_resume_after_a_kill_evaluates_nothing_twice(tmp_path):
    """A worker killed in the middle of a trial: the rerun fails its stale trial after the
    heartbeat's grace period, runs it again, and completes exactly the trials asked for; no
    trial that had completed is evaluated again."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    marks = tmp_path / "marks"
    marks.mkdir()
    worker = [sys.executable, str(ROOT / "tests" / "search_worker.py"), url, "s", "6", str(marks)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    p = subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(list(marks.glob("end-*"))) >= 2 and
                  len(list(marks.glob("start-*"))) > len(list(marks.glob("end-*"))), p)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        p.kill()
    store = optuna.storages.RDBStorage(url)
    before = optuna.load_study(study_name="s", storage=store).trials
    assert [t.state.name for t in before].count("RUNNING") == 1
    done_before = {t.number for t in before if t.state.name == "COMPLETE"}
    p2 = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=300)
    assert p2.returncode == 0, p2.stderr
    after = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url)).trials
    states = [t.state.name for t in after]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states and "WAITING" not in states
    assert states.count("FAIL") == 1
    failed = next(t for t in after if t.state.name == "FAIL")
    assert any(t.system_attrs.get("failed_trial") == failed.number for t in after)  # retried once
    assert done_before <= {t.number for t in after if t.state.name == "COMPLETE"}
    evaluated = [t for t in after if t.state.name == "COMPLETE" and "cached_from" not in t.user_attrs]
    assert len(list(marks.glob("end-*"))) == len(evaluated)  # every completed evaluation ran once


def _wait_for(cond, proc, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.05)


def test_outputs_never_replace_links_or_folders(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (out / "pareto.json").symlink_to(victim)
    code, _, err = cli("search", QUICK, "--trials", "2", "--out", out)
    assert code == 1 and "is a link or not a regular file" in err and "Traceback" not in err
    assert victim.read_text() == "keep me" and (out / "pareto.json").is_symlink()
    (out / "pareto.json").unlink()
    (out / "trials.csv").mkdir()
    code, _, err = cli("search", QUICK, "--trials", "2", "--out", out)
    assert code == 1 and "not a regular file" in err
    code, _, err = cli("search", QUICK, "--trials", "2", "--out", victim)
    assert code == 1 and "is a file; give a folder" in err and victim.read_text() == "keep me"


def test_a_search_over_adc_bits_that_cannot_see_its_accuracy_cost_says_so():
    from cimc.search.engine import cautions, settings_for

    def said(**kw):
        space = tiny_space(**kw)
        return cautions(settings_for(space))

    blind = said(hardware={"adc_bits": [4, 8]})
    assert len(blind) == 1 and "partial_sums" in blind[0] and "accuracy_quant" in blind[0]
    assert said(hardware={"adc_bits": [4, 8]}, objectives={"accuracy_quant": "max", "latency_ns": "min"}) == []
    assert said(hardware={"adc_bits": [4, 8], "partial_sums": "exact"}) == []
    assert said(hardware={"xbar_rows": [64, 128]}) == []


def test_start_designs_are_tried_first_and_checked():
    """`start` queues designs before the sampler's own: the first trials are exactly them
    (left-out knobs at their largest), once, and a design outside the space is refused."""
    ev, _ = counting_callback()
    space = tiny_space(network_knobs={"s0.width": [8, 16], "s0.kernel": [3, 5], "s0.depth": 1},
                       hardware={"xbar_rows": [64, 128, 256], "adc_bits": {"low": 4, "high": 8}}, evaluator=ev)
    result = search.run(space, trials=5, seed=0, progress=False,
                        start=[{"s0.width": 8, "xbar_rows": 64}, {"s0.kernel": 3, "adc_bits": 5}])
    first = sorted(result.trials(), key=lambda t: t.number)[:2]
    assert first[0].params == {"s0.width": 8, "s0.kernel": 5, "xbar_rows": 64, "adc_bits": 8}
    assert first[1].params == {"s0.width": 16, "s0.kernel": 3, "xbar_rows": 256, "adc_bits": 5}
    assert len(result.trials()) == 5
    for bad, message in (({"s9.width": 8}, "no knob s9.width"), ({"xbar_rows": 96}, "outside its domain")):
        with pytest.raises(cimc.CimcError, match=message):
            search.run(space, trials=2, seed=0, progress=False, start=[bad])
