"""The search space: network knobs (a family), hardware knobs (target keys, the crossbar budget,
the pipeline), and what to optimise. Built in Python or read from TOML (`Space.from_toml`).

A TOML space file (every section but [network] optional; see examples/search/):

    target = "rram-256"          # the preset or .toml file hardware knobs override
    data = "digits"              # digits | fashion-mnist | an .npz (cimc.data)
    trials = 12                  # default for --trials
    seed = 0
    sampler = "nsga2"            # nsga2 | tpe | random
    pipeline = "fast"            # compiled in the loop
    final_pipeline = "full"      # the Pareto points are compiled again with this
    train_samples = 2000         # cap on the training split (optional); val_samples likewise
    val_fraction = 0.1

    [network]
    family = "cnn"               # cnn | mobilenet_v3 | resnet | vit, or builder = "file.py:build"
    stages = 2                   # the family's own arguments
    [network.knobs]              # narrow or fix the family's knobs (a user builder declares them all)
    "s0.width" = [8, 16]

    [hardware]                   # any target key, `budget` (crossbars), `chips` (default 1), `passes`
    xbar_rows = [64, 128, 256]
    adc_bits = {low = 4, high = 8}
    budget = {low = 32, high = 1024, log = true}

    [objectives]                 # metric = "min" | "max" (see METRICS)
    accuracy = "max"
    latency_ns = "min"
    [constraints]                # metric = ["<=" | ">=", bound]
    chip_area_mm2 = ["<=", 40]
    [evaluator]                  # kind = train | supernet | none, and its settings
    kind = "train"
    epochs = 2
    [chip]                       # accuracy on the candidate's own mapping (the simulator)
    draws = 0                    # programmed chips per candidate; 0: not simulated
    samples = 300                # validation images simulated
    sigma = 0.1                  # cell variation (default: the device's variation_sigma)
    [reference]                  # hypervolume reference point (default: from the first generation)
    accuracy = 0.0
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cimc import files
from cimc.errors import CimcError
from cimc.pipeline import parse_pipeline
from cimc.search.evaluators import Evaluator, Train, from_table
from cimc.search.families import Family, family
from cimc.search.knobs import Knob, SpaceError, knob
from cimc.targets import Target, load_target

# Figures a candidate can be judged by. Chip figures are of the chip its hardware knobs define
# (all of its tiles), whatever part of it a mapping fills.
METRICS = {
    "latency_ns": "time of one inference through the mapping",
    "throughput_ips": "inferences per second, pipelined",
    "period_ns": "time between inferences in the steady state",
    "energy_nj": "energy of one inference (leakage over one period included)",
    "edap": "energy x latency x area of the tiles used (nJ.ns.mm2)",
    "chip_edap": "energy x latency x chip area (nJ.ns.mm2)",
    "area_mm2": "area of the tiles the mapping uses (a throughput mapping fills the chip with copies)",
    "chip_area_mm2": "area of the chip the hardware knobs define",
    "chip_power_w": "peak power of that chip, every crossbar busy",
    "tops_per_w": "operations (2 per multiply-accumulate) per joule of one inference, in TOPS/W",
    "utilization": "weight cells (all copies) over the cells of the crossbars used",
    "crossbars_used": "crossbars the mapping uses, copies included (the budget, by design, with copies)",
    "weight_crossbars": "crossbars one copy of every weight takes, one block per crossbar (the network's size), in "
                        "the partition the pipeline chose: a grouped or depthwise layer's layout can differ between "
                        "pipelines, and so can this count",
    "crossbars_lower_bound": "fewest crossbars any mapping of the weights needs",
    "speedup": "throughput over the ISAAC-like baseline mapping of the same network and chip",
    "macs": "multiply-accumulates of one inference on crossbars",
    "weights": "weights on crossbars (one copy)",
    "compile_s": "seconds the compile took",
    "chips_used": "chips of the candidate's kind the mapping runs on (at most the 'chips' knob, default 1)",
    "system_area_mm2": "area of all those chips",
    "accuracy": "float accuracy on the validation split",
    "accuracy_quant": "accuracy of the compiled mapping on the simulated chip, ideal cells (needs [chip] draws)",
    "accuracy_variation_mean": "mean accuracy over programmed chips under device variation (needs [chip] draws)",
    "accuracy_variation_p5": "5th percentile of that accuracy over the chips: a yield figure (needs [chip] draws)",
    "accuracy_variation_std": "its standard deviation over the chips",
}
CHIP_METRICS = ("accuracy_quant", "accuracy_variation_mean", "accuracy_variation_p5", "accuracy_variation_std")
SPECIAL_HARDWARE = ("budget", "passes", "chips")
SAMPLERS = ("nsga2", "tpe", "random")
TOP_KEYS = {"target", "data", "trials", "seed", "sampler", "pipeline", "final_pipeline", "train_samples",
            "val_samples", "val_fraction", "network", "hardware", "objectives", "constraints", "evaluator", "chip",
            "reference", "population"}


@dataclass(frozen=True)
class Chip:
    """Accuracy on the candidate's compiled mapping: `draws` programmed chips under cell
    variation `sigma` (None: the device's variation_sigma), on `samples` validation images."""

    draws: int = 0
    samples: int = 300
    sigma: float | None = None
    calib: int = 64

    def __post_init__(self):
        if self.draws < 0 or self.samples < 1 or self.calib < 1 or (self.sigma is not None and not
                                                                    (math.isfinite(self.sigma) and self.sigma >= 0)):
            raise SpaceError(f"[chip]: draws {self.draws} >= 0, samples {self.samples} >= 1, calib {self.calib} >= 1, "
                             f"sigma {self.sigma} a number >= 0.")


@dataclass
class Space:
    """network: a Family (its knobs narrowed by `network_knobs`); hardware: {target key |
    'budget' | 'passes': knob spec}; target: the preset or file they override. The other
    fields are the defaults `search.run` takes when not given."""

    network: Family
    hardware: dict = field(default_factory=dict)
    target: str = "rram-256"
    network_knobs: dict = field(default_factory=dict)
    objectives: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    evaluator: Evaluator | None = None
    chip: Chip = field(default_factory=Chip)
    data: str = "digits"
    reference: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # trials, seed, sampler, pipeline, final_pipeline, ...
    where: str = "space"

    def __post_init__(self):
        if not isinstance(self.network, Family):
            raise SpaceError(f"{self.where}: network must be a search family (search.families.cnn(), ...), got "
                             f"{type(self.network).__name__}.")
        self.net_knobs = self._network_knobs()
        self.hw_knobs = self._hardware_knobs()
        clash = sorted(set(self.net_knobs) & set(self.hw_knobs))
        if clash:
            raise SpaceError(f"{self.where}: knob name(s) {', '.join(clash)} are both network and hardware knobs; "
                             "rename the network knob.")

    # ---- knobs ------------------------------------------------------------------------
    def _network_knobs(self) -> dict[str, Knob]:
        knobs = dict(self.network.knobs)
        unknown = sorted(set(self.network_knobs) - set(knobs))
        if unknown:
            raise SpaceError(f"{self.where}: network family '{self.network.name}' has no knob "
                             f"{', '.join(unknown)}; its knobs: {', '.join(knobs) or 'none'}.")
        for name, spec in self.network_knobs.items():
            knobs[name] = knob(name, spec, f"{self.where} [network.knobs]")
        return knobs

    def _hardware_knobs(self) -> dict[str, Knob]:
        fields = Target.__dataclass_fields__
        base = load_target(self.target)  # a bad target is an error now, not in every trial
        out = {}
        for name, spec in self.hardware.items():
            where = f"{self.where} [hardware]"
            if name not in fields and name not in SPECIAL_HARDWARE:
                raise SpaceError(f"{where}: '{name}' names no target key. Hardware knobs are target keys "
                                 f"({', '.join(sorted(f for f in fields if f not in ('name', 'source', 'description')))}), "
                                 "'budget' (crossbars the mapping may use), 'chips' (chips of the target it "
                                 "may span, default 1) and 'passes' (the pipeline).")
            if name in ("name", "source", "description"):
                raise SpaceError(f"{where}: '{name}' is a label, not a knob.")
            k = knob(name, spec, where)
            kind = "int" if name in ("budget", "chips") else "str" if name == "passes" else fields[name].type if name in fields else "str"
            for v in k.values():
                ok = {"int": isinstance(v, int) and not isinstance(v, bool),
                      "float": isinstance(v, (int, float)) and not isinstance(v, bool),
                      "str": isinstance(v, str)}[kind]
                if not ok or (k.kind == "float" and kind == "int"):
                    raise SpaceError(f"{where}: '{name}' takes {'an' if kind == 'int' else 'a'} {kind}; "
                                     f"{k.describe()} has {v!r}.")
            for v in k.values():  # each value alone must make a valid chip (combinations are tried per trial)
                try:
                    if name in ("budget", "chips"):
                        if v < 1:
                            raise CimcError(f"{v} {'crossbars' if name == 'budget' else 'chips'}; give at least 1")
                    elif name == "passes":
                        parse_pipeline(v)
                    else:
                        base.replace(**{name: v})
                except CimcError as e:
                    raise SpaceError(f"{where}: {name} = {v!r} is not valid: {e}") from None
            out[name] = k
        return out

    def knobs(self) -> dict[str, Knob]:
        return {**self.net_knobs, **self.hw_knobs}

    def suggest(self, trial) -> tuple[dict, dict]:
        """(network config, hardware config) for an Optuna trial."""
        return ({k: kb.suggest(trial) for k, kb in self.net_knobs.items()},
                {k: kb.suggest(trial) for k, kb in self.hw_knobs.items()})

    def fingerprint(self) -> str:
        """Identity of the space (knob domains, family, target, data, objectives): a study is
        joined only by runs of the same space."""
        d = {"family": self.network.name, "args": self.network.args, "target": self.target, "data": self.data,
             "knobs": {k: kb.describe() for k, kb in self.knobs().items()}, "objectives": self.objectives,
             "constraints": {k: list(v) for k, v in self.constraints.items()}}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> str:
        lines = [f"network family {self.network.name} {self.network.args or ''}".rstrip()]
        lines += [f"  {k:<24} {kb.describe()}" for k, kb in self.net_knobs.items()]
        lines.append(f"hardware: target {self.target}")
        lines += [f"  {k:<24} {kb.describe()}" for k, kb in self.hw_knobs.items()]
        return "\n".join(lines)

    # ---- TOML ---------------------------------------------------------------------------
    @staticmethod
    def from_toml(path: "str | Path") -> "Space":
        path = Path(path)
        try:
            data = tomllib.loads(files.read_text(path, "space file", files.TOML_MAX_BYTES,
                                                 missing=f"space file '{path}' does not exist."))
        except SpaceError:
            raise
        except CimcError as e:
            raise SpaceError(str(e)) from None
        except tomllib.TOMLDecodeError as e:
            raise SpaceError(f"{path}: not valid TOML ({e}).") from None
        return Space.from_dict(data, str(path), path.parent)

    @staticmethod
    def from_dict(data: dict, where: str = "space", root: Path = Path(".")) -> "Space":
        unknown = sorted(set(data) - TOP_KEYS)
        if unknown:
            raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)}; a space file has "
                             f"{', '.join(sorted(TOP_KEYS))}.")
        for sec in ("network", "hardware", "objectives", "constraints", "evaluator", "chip", "reference"):
            if sec in data and not isinstance(data[sec], dict):
                raise SpaceError(f"{where}: [{sec}] must be a table.")
        net = dict(data.get("network") or {})
        if not net:
            raise SpaceError(f"{where}: no [network] table; give family = \"cnn\" (or mobilenet_v3, resnet, vit) "
                             "or builder = \"file.py:function\".")
        knobs = net.pop("knobs", {})
        if not isinstance(knobs, dict):
            raise SpaceError(f"{where}: [network.knobs] must be a table.")
        if "builder" in net:
            builder = net.pop("builder")
            if net:
                raise SpaceError(f"{where}: [network] with a builder takes only 'builder' and [network.knobs]; "
                                 f"also has {', '.join(sorted(net))}.")
            fam = Family.custom(str(builder), load_builder(builder, root, where), knobs)
            knobs = {}
        else:
            name = net.pop("family", None)
            if not isinstance(name, str):
                raise SpaceError(f"{where}: [network] needs family = \"...\" or builder = \"file.py:function\".")
            fam = family(name, **net)
        options = {k: data[k] for k in ("trials", "seed", "sampler", "pipeline", "final_pipeline", "train_samples",
                                        "val_samples", "val_fraction", "population") if k in data}
        check_options(options, where)
        objectives = data.get("objectives") or {}
        constraints = {k: tuple(v) if isinstance(v, list) else v for k, v in (data.get("constraints") or {}).items()}
        chip_table = data.get("chip") or {}
        bad = sorted(set(chip_table) - {"draws", "samples", "sigma", "calib"})
        if bad:
            raise SpaceError(f"{where}: [chip] has no setting {', '.join(bad)}; it takes draws, samples, sigma, calib.")
        for k, v in chip_table.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SpaceError(f"{where}: [chip] {k} must be a number, got {v!r}.")
        target = data.get("target", "rram-256")
        if not isinstance(target, str):
            raise SpaceError(f"{where}: target must be a preset name or a .toml path, got {target!r}.")
        if target.endswith(".toml") and not Path(target).is_absolute():
            target = str(root / target)
        ev = data.get("evaluator")
        space = Space(fam, data.get("hardware") or {}, target, knobs, objectives, constraints,
                      from_table(ev, f"{where} [evaluator]") if ev is not None else None,
                      Chip(**chip_table), str(data.get("data", "digits")), dict(data.get("reference") or {}),
                      options, where)
        check_goals(space.objectives, space.constraints, space.evaluator or Train(), space.reference, where)
        return space


def check_options(options: dict, where: str) -> None:
    ints = ("trials", "seed", "train_samples", "val_samples", "population")
    for k in ints:
        if k in options and (isinstance(options[k], bool) or not isinstance(options[k], int) or options[k] < 0
                             or (k in ("trials", "population") and options[k] < 1)):
            raise SpaceError(f"{where}: '{k}' must be a {'positive' if k in ('trials', 'population') else 'non-negative'} "
                             f"integer, got {options[k]!r}.")
    if "sampler" in options and options["sampler"] not in SAMPLERS:
        raise SpaceError(f"{where}: sampler '{options['sampler']}'; give one of {', '.join(SAMPLERS)}.")
    if "val_fraction" in options and not (isinstance(options["val_fraction"], float) and 0 < options["val_fraction"] < 1):
        raise SpaceError(f"{where}: val_fraction must be a fraction between 0 and 1, got {options['val_fraction']!r}.")
    for k in ("pipeline", "final_pipeline"):
        if k in options:
            if not isinstance(options[k], str):
                raise SpaceError(f"{where}: '{k}' must be pipeline text, got {options[k]!r}.")
            try:
                parse_pipeline(options[k])
            except CimcError as e:
                raise SpaceError(f"{where}: {k} = {options[k]!r}: {e}") from None


def check_goals(objectives: dict, constraints: dict, evaluator: Evaluator, reference: dict, where: str) -> None:
    """Objectives and constraints name known metrics with a direction or a bound."""
    known = set(METRICS) - {"accuracy"} | set(evaluator.metrics())
    if not objectives:
        raise SpaceError(f"{where}: no objectives; give e.g. objectives = {{accuracy = \"max\", latency_ns = \"min\"}}.")

    def check_name(name: str, what: str):
        if name not in known:
            extra = " (the evaluator gives no accuracy)" if name == "accuracy" else ""
            raise SpaceError(f"{where}: {what} '{name}' is not a metric{extra}; metrics: {', '.join(sorted(known))}.")

    for name, sense in objectives.items():
        check_name(name, "objective")
        if sense not in ("min", "max"):
            raise SpaceError(f"{where}: objective '{name}' = {sense!r}; give \"min\" or \"max\".")
    for name, rule in constraints.items():
        check_name(name, "constraint")
        if not (isinstance(rule, tuple) and len(rule) == 2 and rule[0] in ("<=", ">=")
                and isinstance(rule[1], (int, float)) and not isinstance(rule[1], bool) and math.isfinite(rule[1])):
            raise SpaceError(f"{where}: constraint '{name}' = {rule!r}; give [\"<=\", bound] or [\">=\", bound].")
    for name, value in reference.items():
        if name not in objectives:
            raise SpaceError(f"{where}: [reference] '{name}' is not an objective.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpaceError(f"{where}: [reference] '{name}' = {value!r} is not a finite number.")


def load_builder(spec, root: Path, where: str):
    """'file.py:function' (relative to the space file) or 'package.module:function'."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise SpaceError(f"{where}: builder = {spec!r}; write \"file.py:function\" or \"package.module:function\".")
    mod, fn = spec.split(":")
    try:
        if mod.endswith(".py"):
            path = Path(mod) if Path(mod).is_absolute() else root / mod
            if not path.is_file():
                raise SpaceError(f"{where}: builder file '{path}' does not exist.")
            s = importlib.util.spec_from_file_location(f"cimc_user_builder_{path.stem}", path)
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            module = importlib.import_module(mod)
    except SpaceError:
        raise
    except Exception as e:  # the user's module failed to import: say so, with its error
        raise SpaceError(f"{where}: cannot load builder module '{mod}': {type(e).__name__}: {e}") from None
    if not callable(getattr(module, fn, None)):
        raise SpaceError(f"{where}: '{mod}' has no function '{fn}'.")
    return getattr(module, fn)
