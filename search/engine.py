"""The search engine: an Optuna study whose trials are candidates (network config + hardware
config), each compiled by cimc (the cost oracle) and given an accuracy by an evaluator.

- Samplers: NSGA-II (default), TPE, random; seeded, so the same space, seed and storage (in
  memory or SQLite, one worker) give the same trials.
- Storage: in memory, SQLite (resumable) or PostgreSQL (many machines on one study), through
  Optuna's RDBStorage with heartbeats: a killed worker's running trial goes stale, is failed and
  re-queued once with the same parameters (RetryHeartbeatStaleTrialCallback), never left RUNNING.
- Exactly the requested number of trials complete: a worker takes a new trial only under a lock
  (a file lock for SQLite, an advisory lock for PostgreSQL) after counting the trials complete,
  running and waiting.
- Identical candidates are evaluated once: a trial whose canonical config (the network knobs the
  builder read, and the hardware knobs) matches a completed trial takes its figures.
- A candidate the compiler refuses (`Infeasible`, or knobs that define no valid chip) completes
  as infeasible, with the reason: its `compiles` constraint is violated, so NSGA-II and TPE
  rank it behind every feasible candidate (constrained domination) and learn from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import multiprocessing
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cimc
from cimc.errors import CimcError
from cimc.search.evaluators import Evaluator, SearchData, Train
from cimc.search.knobs import SpaceError
from cimc.search.results import Progress, Result, write_outputs
from cimc.search.space import CHIP_METRICS, Chip, Space, check_goals, check_options

INFEASIBLE = 1e30  # the objective value an infeasible candidate is told (it is never on a front)


@dataclass
class Settings:
    """Everything a worker needs besides the study: resolved from `run`'s arguments and the space."""

    space: Space
    objectives: dict
    constraints: dict
    evaluator: Evaluator
    chip: Chip
    data: SearchData
    pipeline: str
    final_pipeline: str
    trials: int
    seed: int
    sampler: str
    population: int
    reference: dict
    heartbeat_s: int = 10
    grace_s: int = 30
    progress: bool = False

    @property
    def directions(self) -> list[str]:
        return ["maximize" if s == "max" else "minimize" for s in self.objectives.values()]

    def wants_chip(self) -> bool:
        return self.chip.draws > 0 or any(m in CHIP_METRICS for m in list(self.objectives) + list(self.constraints))


# ---- storage, sampler, locks ------------------------------------------------------------------

def make_storage(url: str | None, settings: Settings):
    """Optuna storage for `url` (None: in memory), with heartbeats and one retry of stale trials."""
    import optuna

    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or "://" not in url:
        raise SpaceError(f"--storage {url!r}: give sqlite:///path/to/study.db or postgresql://user@host:port/db.")
    kwargs = {}
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            if path.exists() and not path.is_file():
                raise SpaceError(f"--storage {url}: '{path}' is not a regular file.")
            if not path.parent.is_dir():
                raise SpaceError(f"--storage {url}: folder '{path.parent}' does not exist.")
        kwargs = {"connect_args": {"timeout": 60}}
    try:
        # many machines starting on an empty database would all create Optuna's tables at once
        # (PostgreSQL then refuses all but one): one at a time, under an advisory lock
        guard = _AdvisoryLock(url, "schema") if url.startswith("postgresql") else contextlib.nullcontext
        with guard():
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=settings.heartbeat_s, grace_period=settings.grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except ImportError as e:
        raise SpaceError(f"--storage {url}: a driver is missing ({e}); for PostgreSQL: pip install 'psycopg[binary]'."
                         ) from None
    except Exception as e:  # SQLAlchemy's and the drivers' errors: cannot connect, bad URL, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpaceError(f"--storage {url}: cannot open the study storage ({type(e).__name__}: {first}).") from None


def sqlite_path(url: str) -> Path | None:
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(rest) if rest and rest != ":memory:" else None


def make_sampler(settings: Settings):
    import optuna

    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=settings.seed, population_size=settings.population)
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=settings.population,
                                          multivariate=True)
    return optuna.samplers.RandomSampler(seed=settings.seed)


class _FileLock:
    """An exclusive lock between processes on one machine (SQLite studies)."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def __call__(self):
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


class _AdvisoryLock:
    """A PostgreSQL advisory lock: exclusive between all machines on the database."""

    def __init__(self, url: str, name: str):
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.key = int.from_bytes(hashlib.sha256(f"cimc:{name}".encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def __call__(self):
        import sqlalchemy

        with self.engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})


def make_lock(url: str | None, study_name: str):
    if url is None:
        return contextlib.nullcontext
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        return _FileLock(Path(f"{path}.lock")) if path else contextlib.nullcontext
    if url.startswith("postgresql"):
        return _AdvisoryLock(url, study_name)
    return contextlib.nullcontext


class _Heartbeat:
    """Records a trial's heartbeat every interval while it runs (Optuna does this only inside
    `study.optimize`; the engine asks for trials itself, to count them under its lock)."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        interval = getattr(self.storage, "heartbeat_interval", None)
        if interval:
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)
            self.thread.start()
        return self

    def _beat(self, interval):
        while not self.stop.wait(interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # the database is briefly unreachable: the next beat tries again
                pass

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


# ---- one candidate ----------------------------------------------------------------------------

class Oracle:
    """Compiles and evaluates candidates; keeps each network's trained model, ONNX graph and
    imported module (a joint search compiles one network for many chips)."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.networks: dict[str, dict] = {}

    def network(self, config: dict, used: dict | None = None) -> dict:
        """`used`: the knobs the builder reads for `config` (built here when not given)."""
        s = self.s
        fam = s.space.network
        if used is None:
            _, used = fam.build(config, s.data.shape)  # which knobs matter: the candidate's identity
        key = json.dumps(used, sort_keys=True)
        net = self.networks.get(key)
        if net is None:
            t0 = time.perf_counter()
            model, metrics = s.evaluator.model(fam, config, s.data, knobs=s.space.net_knobs)
            train_s = time.perf_counter() - t0
            import torch

            x = torch.zeros((1, s.data.shape.channels, s.data.shape.image, s.data.shape.image))
            try:
                onnx_model = cimc.export_onnx(model, (x,))
                module = cimc.import_model(onnx_model, s.space.target)
            except CimcError as e:
                onnx_model, module = None, e
            net = {"used": used, "model": model, "onnx": onnx_model, "module": module, "metrics": metrics,
                   "train_s": train_s}
            if len(self.networks) >= 32:
                del self.networks[next(iter(self.networks))]
            self.networks[key] = net
        return net

    def evaluate(self, net_cfg: dict, hw_cfg: dict, used: dict | None = None) -> dict:
        """{'metrics', 'infeasible' (reason or ''), 'seconds', 'network' (the used knobs)}."""
        s = self.s
        t0 = time.perf_counter()
        net = self.network(net_cfg, used)
        seconds = {"train": net["train_s"]}
        out = {"network": net["used"], "metrics": dict(net["metrics"]), "infeasible": "", "seconds": seconds}
        hw = dict(hw_cfg)
        budget = hw.pop("budget", None)
        chips = hw.pop("chips", 1)  # a candidate is a chip (or `chips` of them) that holds the model: no reloading
        passes = hw.pop("passes", s.pipeline)
        t1 = time.perf_counter()
        try:
            if isinstance(net["module"], CimcError):
                raise net["module"]
            target = cimc.load_target(s.space.target, hw)
            result = cimc.compile(net["module"], target, passes, budget=budget, chips=chips, reload=False)
        except CimcError as e:
            out["infeasible"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
            seconds["compile"] = time.perf_counter() - t1
            seconds["total"] = time.perf_counter() - t0
            return out
        seconds["compile"] = time.perf_counter() - t1
        out["metrics"].update(cost_metrics(result, target))
        if s.wants_chip():
            t2 = time.perf_counter()
            out["metrics"].update(chip_accuracy(net["onnx"], result.module, s.data.validation(), target, s.chip))
            seconds["chip"] = time.perf_counter() - t2
        seconds["total"] = time.perf_counter() - t0
        return out


def cost_metrics(result, target) -> dict:
    """The figures of a compiled candidate (see `cimc.search.space.METRICS`)."""
    r = result.report
    peak = target.peak()
    macs = sum(layer.rows * layer.cols * layer.groups * layer.mvms for layer in r.layers if layer.rows)
    weights = sum(layer.rows * layer.cols * layer.groups for layer in r.layers if layer.rows)
    return {"latency_ns": r.latency_ns, "throughput_ips": r.throughput_ips, "period_ns": r.period_ns,
            "energy_nj": r.energy_nj, "edap": r.edap, "area_mm2": r.area_mm2, "chip_area_mm2": peak["area_mm2"],
            "chip_power_w": peak["power_w"], "chip_edap": r.energy_nj * r.latency_ns * peak["area_mm2"],
            "tops_per_w": 2 * macs / (r.energy_nj * 1e3) if r.energy_nj > 0 else 0.0,
            "utilization": r.utilization, "crossbars_used": r.crossbars_used,
            "weight_crossbars": int(r.baseline.get("crossbars", r.crossbars_lower_bound)),
            "crossbars_lower_bound": r.crossbars_lower_bound,
            "speedup": float(r.speedup_vs_baseline.get("throughput", 0.0)), "macs": macs, "weights": weights,
            "compile_s": r.compile_s, "chips_used": r.chips_used,
            "system_area_mm2": peak["area_mm2"] * r.chips_used}


def chip_accuracy(onnx_model, module, data, target, chip: Chip) -> dict:
    """Accuracy of the candidate's own mapping on the simulated chip (cimc.accuracy)."""
    from cimc.accuracy import evaluate_accuracy
    from cimc.sim import Variation

    var = Variation.of(target, chip.sigma)
    rep = evaluate_accuracy(onnx_model, target, data, module=module, variation=var,
                            draws=chip.draws, limit=chip.samples, calib=chip.calib)
    out = {"accuracy_quant": rep.quant_accuracy}
    if rep.draws:
        out.update(accuracy_variation_mean=rep.variation_mean, accuracy_variation_p5=rep.variation_p5,
                   accuracy_variation_std=rep.variation_std)
    elif var.ideal:  # no variation: every chip is the ideal one
        out.update(accuracy_variation_mean=rep.quant_accuracy, accuracy_variation_p5=rep.quant_accuracy,
                   accuracy_variation_std=0.0)
    return out


# ---- the trial loop ---------------------------------------------------------------------------

WORKER_HOST = socket.gethostname()


def canonical_key(network: dict, hardware: dict) -> str:
    return hashlib.sha256(json.dumps({"n": network, "h": hardware}, sort_keys=True, default=str).encode()
                          ).hexdigest()[:24]


def tell(study, trial, settings: Settings, outcome: dict) -> None:
    """Record a candidate's figures on its trial and complete it (feasible or not)."""
    import optuna

    metrics = outcome["metrics"]
    for k, v in (("network", outcome["network"]), ("hardware", outcome["hardware"]), ("key", outcome["key"]),
                 ("metrics", metrics), ("infeasible", outcome["infeasible"]), ("seconds", outcome["seconds"])):
        trial.set_user_attr(k, v)
    if outcome.get("cached_from") is not None:
        trial.set_user_attr("cached_from", outcome["cached_from"])
    if outcome["infeasible"]:
        trial.set_constraint("compiles", 1.0)
        for name in settings.constraints:
            trial.set_constraint(name, 1.0)
        values = [-INFEASIBLE if s == "max" else INFEASIBLE for s in settings.objectives.values()]
        study.tell(trial, values)
        return
    missing = [m for m in list(settings.objectives) + list(settings.constraints) if m not in metrics]
    bad = [m for m in settings.objectives if m in metrics and not math.isfinite(metrics[m])]
    if missing or bad:
        trial.set_user_attr("error", f"metrics {', '.join(missing + bad)} missing or not finite")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise CimcError(f"trial {trial.number}: the figures {', '.join(missing + bad)} are missing or not finite "
                        f"(metrics: {', '.join(sorted(metrics))}); the search stops.")
    trial.set_constraint("compiles", 0.0)
    for name, (op, bound) in settings.constraints.items():
        scale = abs(bound) if bound else 1.0
        v = metrics[name]
        trial.set_constraint(name, (v - bound) / scale if op == "<=" else (bound - v) / scale)
    study.tell(trial, [float(metrics[m]) for m in settings.objectives])


def _completed_by_key(study) -> dict:
    import optuna

    out = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        key = t.user_attrs.get("key")
        if key is not None and key not in out:
            out[key] = t
    return out


def worker(study, storage, lock, settings: Settings, oracle: Oracle | None = None, deadline: float | None = None,
           on_trial=None) -> int:
    """Run trials until the study has `settings.trials` complete ones. Returns how many this
    worker completed. Bounded: it stops when the study is done, or at `deadline` (monotonic)."""
    import optuna

    oracle = oracle or Oracle(settings)
    done = 0
    while True:
        with lock():
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            states = [t.state for t in trials]
            complete = states.count(optuna.trial.TrialState.COMPLETE)
            running = states.count(optuna.trial.TrialState.RUNNING)
            waiting = states.count(optuna.trial.TrialState.WAITING)
            trial = None
            if complete >= settings.trials:
                return done
            if waiting or complete + running < settings.trials:
                with warnings.catch_warnings():  # Optuna warns that heartbeats belong to optimize(); _Heartbeat beats
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()  # a waiting (retried) trial first, else a new one
                if hasattr(storage, "record_heartbeat") and getattr(storage, "heartbeat_interval", None):
                    storage.record_heartbeat(trial._trial_id)  # stale detection needs one beat
        if trial is None:  # the others' trials fill the study: wait for them to end or go stale
            if deadline is not None and time.monotonic() > deadline:
                return done
            time.sleep(min(1.0, settings.heartbeat_s / 2))
            continue
        with _Heartbeat(storage, trial._trial_id):
            run_trial(study, trial, settings, oracle)
        done += 1
        if on_trial:
            on_trial(study)
        if deadline is not None and time.monotonic() > deadline:
            return done


def run_trial(study, trial, settings: Settings, oracle: Oracle) -> None:
    import optuna

    t0 = time.perf_counter()
    trial.set_user_attr("worker", f"{WORKER_HOST}:{os.getpid()}")
    try:
        net_cfg, hw_cfg = settings.space.suggest(trial)
        _, used = settings.space.network.build(net_cfg, settings.data.shape)
        key = canonical_key(used, hw_cfg)
        twin = _completed_by_key(study).get(key)
        if twin is not None:  # evaluated already: the same figures, no second evaluation
            outcome = {"network": used, "hardware": hw_cfg, "key": key, "metrics": twin.user_attrs["metrics"],
                       "infeasible": twin.user_attrs.get("infeasible", ""), "cached_from": twin.number,
                       "seconds": {"total": time.perf_counter() - t0}}
        else:
            outcome = oracle.evaluate(net_cfg, hw_cfg, used)
            outcome.update(hardware=hw_cfg, key=key)
        tell(study, trial, settings, outcome)
    except BaseException as e:
        with contextlib.suppress(Exception):
            if study._storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.RUNNING:
                trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:1000])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise


# ---- the public entry -------------------------------------------------------------------------

def settings_for(space: Space, objectives=None, constraints=None, evaluator=None, trials=None, seed=None,
                 sampler=None, pipeline=None, final_pipeline=None, data=None, reference=None, chip=None,
                 progress=False, heartbeat_s=10, grace_s=30) -> Settings:
    o = space.options
    objectives = dict(objectives if objectives is not None else space.objectives)
    constraints = {k: tuple(v) for k, v in dict(constraints if constraints is not None else space.constraints).items()}
    evaluator = evaluator or space.evaluator or Train()
    reference = dict(reference if reference is not None else space.reference)
    given = {k: v for k, v in (("trials", trials), ("seed", seed), ("sampler", sampler), ("pipeline", pipeline),
                               ("final_pipeline", final_pipeline)) if v is not None}
    opts = {**o, **given}
    check_options(opts, "search")
    check_goals(objectives, constraints, evaluator, reference, "search")
    chip = chip or space.chip
    wants_var = [m for m in list(objectives) + list(constraints) if m.startswith("accuracy_variation")]
    if wants_var and chip.draws == 0:
        raise SpaceError(f"{', '.join(wants_var)} need programmed chips: set [chip] draws (e.g. 5).")
    sd = SearchData.load(data or space.data, opts.get("val_fraction", 0.1), opts.get("train_samples"),
                         opts.get("val_samples"))
    return Settings(space, objectives, constraints, evaluator, chip, sd, opts.get("pipeline", "fast"),
                    opts.get("final_pipeline", "full"), opts.get("trials", 50), opts.get("seed", 0),
                    opts.get("sampler", "nsga2"), opts.get("population", 10 if opts.get("trials", 50) >= 20 else 4),
                    reference, heartbeat_s, grace_s, progress)


def start_params(space: Space, start: list) -> list[dict]:
    """Optuna parameters of each start design: every knob the space turns, a left-out one at its
    largest value (a non-numeric one at its first); a knob not in the space, or a value outside
    its domain, is refused with the reason."""
    knobs = space.knobs()
    out = []
    for i, design in enumerate(start):
        if not isinstance(design, dict):
            raise SpaceError(f"start design {i}: give a {{knob: value}} table, got {type(design).__name__}.")
        unknown = sorted(set(design) - set(knobs))
        if unknown:
            raise SpaceError(f"start design {i}: no knob {', '.join(unknown)} in the space.")
        params = {}
        for name, kb in knobs.items():
            if kb.fixed:
                continue
            if name in design:
                if not kb.contains(design[name]):
                    raise SpaceError(f"start design {i}: {name} = {design[name]!r} is outside its domain "
                                     f"{kb.describe()}.")
                params[name] = design[name]
            else:
                vals = kb.values()
                params[name] = max(vals) if all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in vals) else vals[0]
        out.append(params)
    return out


def open_study(settings: Settings, storage_url: str | None, study_name: str, resume: bool):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat helpers
    storage = make_storage(storage_url, settings)
    exists = False
    if storage_url is not None:
        exists = any(s.study_name == study_name for s in optuna.get_all_study_summaries(storage))
        if resume and not exists:
            raise SpaceError(f"--resume: no study '{study_name}' in {storage_url}; leave out --resume to start it.")
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=make_sampler(settings),
                                directions=settings.directions, load_if_exists=True)
    fp = settings.space.fingerprint()
    have = study.user_attrs.get("cimc_space")
    if have is None:
        study.set_user_attr("cimc_space", fp)
        study.set_user_attr("cimc_objectives", settings.objectives)
    elif have != fp:
        raise SpaceError(f"study '{study_name}' in {storage_url} was made for another space (its knobs, target, "
                         "data or objectives differ); give another --study name or the same space file.")
    if [d.name.lower() for d in study.directions] != settings.directions:
        raise SpaceError(f"study '{study_name}' has other objective directions; give another --study name.")
    return study, storage


def cautions(settings: Settings) -> list[str]:
    """What in the space would make the search's gradient lie: a knob that lowers the ADC's
    resolution on a chip that quantizes partial sums is cheaper by its laws, and only accuracy
    on the chip (the simulator) sees what it loses."""
    hw = settings.space.hw_knobs
    if "adc_bits" not in hw or settings.wants_chip():
        return []
    modes = set(hw["partial_sums"].values()) if "partial_sums" in hw else \
        {cimc.load_target(settings.space.target).partial_sums}
    if "quantized" not in modes:
        return []
    return [f"adc_bits is searched ({hw['adc_bits'].describe()}) on a chip that quantizes partial sums, but no "
            "objective or constraint measures accuracy on the chip: fewer ADC bits will look free in accuracy. "
            "Add [chip] draws > 0 or an accuracy_quant objective, or set partial_sums = \"exact\" (fewer rows "
            "per conversion, charged in the cost)."]


def run(space: Space, objectives: dict | None = None, constraints: dict | None = None,
        evaluator: Evaluator | None = None, trials: int | None = None, seed: int | None = None,
        storage: str | None = None, study: str = "cimc", sampler: str | None = None, workers: int = 1,
        out: "str | Path | None" = None, pipeline: str | None = None, final_pipeline: str | None = None,
        resume: bool = False, progress: bool | None = None, data: str | None = None, reference: dict | None = None,
        chip: Chip | None = None, timeout_s: float | None = None, heartbeat_s: int = 10, grace_s: int = 30,
        final: bool = True, start: list | None = None):
    """Run a joint network + hardware search and return its `Result` (see cimc.search.results).

    objectives: {metric: "min" | "max"}; constraints: {metric: ("<=" | ">=", bound)}; both
    default to the space's. storage: None (in memory), "sqlite:///file.db" or
    "postgresql://user@host:port/db"; study: its name there (runs of the same space join it).
    workers: local processes (more than one needs a storage; without one a SQLite file in
    `out` is used). out: folder for trials.csv, pareto.json, plots and each Pareto point's
    model.onnx, mapping.cim, report.json and accuracy.json (final=False skips re-compiling the
    Pareto points with the final pipeline). timeout_s bounds this process's loop. start: designs
    to try first, each {knob: value} (knobs left out take their largest value; the reference
    design of a study, say), queued when the study has no trials yet: the samplers then learn
    from them as from any trial.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpaceError(f"workers = {workers!r}; give a positive integer.")
    if not (isinstance(heartbeat_s, int) and 1 <= heartbeat_s <= 3600 and isinstance(grace_s, int)
            and grace_s > heartbeat_s):
        raise SpaceError(f"heartbeat {heartbeat_s!r} s must be 1 to 3600, and the grace period {grace_s!r} s longer.")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s)
                                      and timeout_s > 0):
        raise SpaceError(f"timeout {timeout_s!r}: give a positive number of seconds.")
    if progress is None:
        progress = sys.stderr.isatty()
    settings = settings_for(space, objectives, constraints, evaluator, trials, seed, sampler, pipeline,
                            final_pipeline, data, reference, chip, progress, heartbeat_s, grace_s)
    for caution in cautions(settings):
        print(f"cimc search: note: {caution}", file=sys.stderr, flush=True)
    if progress and getattr(settings.evaluator, "log", False) is None:  # a supernet's training, epoch by epoch
        settings.evaluator.log = lambda message: print(f"cimc search: {message}", file=sys.stderr, flush=True)
    out = Path(out) if out is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise SpaceError(f"--out '{out}' is a file; give a folder.")
        out.mkdir(parents=True, exist_ok=True)
    if workers > 1 and storage is None:
        if out is None:
            raise SpaceError("workers > 1 need a storage the processes share: give storage (sqlite:///... or "
                             "postgresql://...) or out (a SQLite file is made there).")
        storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study_obj, store = open_study(settings, storage, study, resume)
    if start and not study_obj.get_trials(deepcopy=False):
        for params in start_params(space, start):
            study_obj.enqueue_trial(params, skip_if_exists=True)
    lock = make_lock(storage, study)
    oracle = Oracle(settings)
    if hasattr(settings.evaluator, "supernet"):  # trained (or loaded) once, before workers fork
        settings.evaluator.supernet(space.network, space.net_knobs, settings.data)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    bar = Progress(settings) if progress else None
    children = []
    if workers > 1:
        import torch

        torch.set_num_threads(1)
        ctx = multiprocessing.get_context("fork")
        for _ in range(workers - 1):
            p = ctx.Process(target=_child, args=(settings, storage, study, deadline), daemon=False)
            p.start()
            children.append(p)
    try:
        worker(study_obj, store, lock, settings, oracle, deadline=deadline, on_trial=bar.update if bar else None)
    finally:
        for p in children:
            p.join()
        if bar:
            bar.close()
    failed = [p.exitcode for p in children if p.exitcode]
    if failed:
        raise CimcError(f"{len(failed)} of the {workers - 1} extra workers stopped with an error (exit codes "
                        f"{failed}); the study keeps every trial they completed, rerun with --resume.")
    result = Result(study_obj, settings, out, oracle)
    if out is not None:
        write_outputs(result, final=final)
    return result


def _child(settings: Settings, storage_url: str, study_name: str, deadline) -> None:
    """A local worker process (forked): its own storage connection, the same study."""
    import torch

    torch.set_num_threads(1)
    settings = dataclasses.replace(settings, progress=False)
    try:
        study, store = open_study(settings, storage_url, study_name, resume=True)
        worker(study, store, make_lock(storage_url, study_name), settings, deadline=deadline)
    except CimcError as e:
        print(f"cimc search: worker {os.getpid()}: error: {e}", file=sys.stderr)
        os._exit(1)
    os._exit(0)


__all__ = ["run", "Settings", "Oracle", "worker", "open_study", "make_lock", "settings_for", "cost_metrics"]
