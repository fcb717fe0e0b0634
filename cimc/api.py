"""The Python API: `compile` a model and get a `Result` (module + report)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cimc import files, progress
from cimc.analyses import Analyses
from cimc.cost import evaluate
from cimc.errors import CimcError
from cimc.frontend import export_torch, import_onnx
from cimc.ir import Module
from cimc.mapping import WEIGHT_KINDS
from cimc.pipeline import DEFAULT, parse_pipeline, print_pipeline, run_pipeline
from cimc.report import Report
from cimc.targets import Target, load_target
from cimc.text import print_module


@dataclass(frozen=True)
class Result:
    """A compiled mapping: `module` (the mapping IR) and `report` (its figures).

    Report figures are readable as attributes: `r.latency_ns`, `r.energy_nj`, ...
    """

    module: Module
    report: Report

    def __getattr__(self, name):
        if name in ("module", "report"):
            raise AttributeError(name)
        try:
            return getattr(self.report, name)
        except AttributeError:
            raise AttributeError(f"Result has no figure '{name}'") from None

    def text(self) -> str:
        return print_module(self.module)

    def to_json(self, indent: int | None = 2) -> str:
        return self.report.to_json(indent)

    def save(self, path: "str | os.PathLike") -> None:
        """Write the mapping-IR text to `path` atomically."""
        write_atomic(Path(path), self.text())


def write_atomic(path: "str | os.PathLike", text: "str | bytes") -> None:
    """Write to a temporary file beside `path`, then rename: `path` is never half-written, and
    only a regular file (or a new name) is replaced (see cimc.files)."""
    files.write_atomic(path, text)


def compile(model, target: "str | Path | Target" = "rram-256", passes: str = DEFAULT, *, batch: int = 1,
            input_shapes: dict | None = None, example_inputs=None, name: str | None = None,
            budget: int | None = None, check: bool = True, input_density=None, chips: int | None = None,
            reload: bool | None = None, **target_overrides) -> Result:
    """Compile `model` for `target` and cost the mapping.

    model: a path to an .onnx file, an `onnx.ModelProto`, ONNX bytes, a `torch.nn.Module`
        (then `example_inputs` gives the input tensors to trace with), or a network
        `import_model` has read (to compile one network for many targets).
    target: a preset name (`cimc.targets.preset_names()`), a TOML file or a `Target`;
        keyword arguments override its keys (`xbar_rows=128`).
    passes: pipeline text or name: "full" (default), "fast", "baseline", or e.g.
        "lower,partition{grouped=serial},duplicate{budget=96},pack,schedule,cost".
    budget: crossbars the mapping may use (duplicate and pack); default: all of the target.
    chips: chips of the target's kind the mapping may run on (default: as many as one copy of
        every layer needs). Fewer than that runs the model in rounds, reprogramming the chips
        between them (weight reloading); more spreads it over them for throughput.
    reload: True: run in rounds on `chips` chips (default 1) even where more chips would hold
        it; False: never, a model needing more than `chips` chips is `Infeasible`; None (the
        default): in rounds only where `chips` are too few.
    batch: the size of a dynamic batch dimension, and the inferences each round runs before
        the next is programmed (when the weights are reloaded).
    input_density: how hard the inputs drive the rows (0..1 of every row in every read, the
        default 1): a number for every layer, {layer: number}, or the path of a `cimc eval`
        JSON report (its measured `input_density`). Scales row and array energy.
    Raises `CimcError` (with a message for the user) on bad input; `Infeasible` when the
    model does not fit the target.
    """
    t0 = time.perf_counter()
    tgt = load_target(target, target_overrides)
    pipeline = parse_pipeline(passes)
    if isinstance(model, Module):  # imported once (`import_model`), compiled for this target
        if any(op.namespace != "nn" for op in model.ops):
            raise CimcError(f"compile: module '{model.name}' is already mapped (it has map/sched/cost ops); "
                            "compile takes a network as `cimc.import_model` returns it. Run passes on a mapped "
                            "module with cimc.opt.")
        if batch != 1 or input_shapes or example_inputs is not None:
            raise CimcError("compile: batch, input shapes and example inputs are fixed when the network is "
                            "imported; give them to cimc.import_model.")
        module = model.with_target(tgt)
        if name:
            module = dataclasses.replace(module, name=name)
    else:
        progress.stage("importing the model")
        module = import_model(model, tgt, batch=batch, input_shapes=input_shapes, example_inputs=example_inputs,
                              name=name)
    if input_density is not None:
        module = with_input_density(module, input_density)
    module = with_chips(module, chips, reload, batch)
    if budget is not None:
        if budget < 1:
            raise CimcError(f"budget must be at least 1 crossbar, got {budget}.")
        module = module.with_ops(module.ops, budget=int(budget))
    analyses = Analyses()
    module = run_pipeline(module, pipeline, check=check, analyses=analyses)
    report = analyses.report_of(module)  # the final cost pass's, when it costed exactly this mapping
    if report is not None and report.model == module.name:
        report = dataclasses.replace(report, passes=print_pipeline(pipeline), compile_s=time.perf_counter() - t0)
    else:
        report = evaluate(module, passes=print_pipeline(pipeline), compile_s=time.perf_counter() - t0)
    return Result(module, dataclasses.replace(report, pass_seconds=dict(analyses.pass_seconds)))


def with_chips(module: Module, chips: int | None, reload: bool | None, batch: int) -> Module:
    """The module with the chips it may use, whether to reload, and the batch of a round."""
    if chips is not None and (isinstance(chips, bool) or not isinstance(chips, int) or chips < 1):
        raise CimcError(f"chips must be a whole number of at least 1, got {chips!r}.")
    attrs: dict = {}
    if reload:
        attrs.update(chips=chips or 1, chips_plan="reload")
    elif chips is not None:
        attrs["chips"] = chips
        if reload is False:
            attrs["chips_plan"] = "spread"
    if batch > 1:
        attrs["batch"] = int(batch)
    return module.with_ops(module.ops, **attrs) if attrs else module


def import_model(model, target: "str | Path | Target" = "rram-256", *, batch: int = 1,
                 input_shapes: dict | None = None, example_inputs=None, name: str | None = None) -> Module:
    """Read a network into the graph IR once, to compile it for many targets:
    `net = cimc.import_model("model.onnx")`, then `cimc.compile(net, "isaac")`, ... (a
    hardware sweep then skips reading, checking and lowering the ONNX graph each time).
    model, batch, input_shapes, example_inputs, name: as for `compile`."""
    tgt = target if isinstance(target, Target) else load_target(target)
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        model = export_torch(model, example_inputs)
        name = name or "torch_model"
    return import_onnx(model, tgt, batch=batch, input_shapes=input_shapes, name=name)


def with_input_density(module: Module, spec) -> Module:
    """The module with input densities: one for all layers (a module attribute) or per layer."""

    def checked(value, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 \
                or not math.isfinite(value):
            raise CimcError(f"input density {what} must be a number from 0 to 1, got {value!r}.")
        return float(value)

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return module.with_ops(module.ops, input_density=checked(spec, "for every layer"))
    if isinstance(spec, (str, Path)):
        path = spec
        try:
            data = json.loads(files.read_text(path, "input density file"))
        except json.JSONDecodeError as e:
            raise CimcError(f"input density '{path}': not a number and not a readable JSON file ({e}).") from None
        spec = data.get("input_density", data) if isinstance(data, dict) else data
        if not isinstance(spec, dict) or not spec:
            raise CimcError(f"input density file '{path}' has no 'input_density' table (write one with "
                            "cimc eval --report FILE).")
    if not isinstance(spec, dict):
        raise CimcError(f"input_density must be a number, a {{layer: number}} table or a JSON file, got {spec!r}.")
    layers = {op.result for op in module.ops if op.kind in WEIGHT_KINDS}
    unknown = sorted(set(spec) - layers)
    if unknown:
        raise CimcError(f"input density for {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}: no such "
                        f"weight layer in model '{module.name}' (was the table measured on another model?).")
    values = {name: checked(v, f"of {name}") for name, v in spec.items()}
    return module.with_ops([op.with_attrs(input_density=values[op.result]) if op.result in values else op
                            for op in module.ops])


def opt(module: Module, passes: str, check: bool = True) -> Result:
    """Run a pipeline on an existing Module (e.g. parsed from mapping-IR text)."""
    t0 = time.perf_counter()
    pipeline = parse_pipeline(passes)
    analyses = Analyses()
    module = run_pipeline(module, pipeline, check=check, analyses=analyses)
    return Result(module, evaluate(module, compile_s=time.perf_counter() - t0,
                                   pass_seconds=dict(analyses.pass_seconds)))


def report(module: Module) -> Report:
    """The figures of a Module as it stands."""
    return evaluate(module)


__all__ = ["compile", "import_model", "opt", "report", "Result", "write_atomic", "CimcError"]
