"""Passes and pipelines.

A pass is a frozen dataclass: its fields are its options, `name` is its pipeline name and
`run(module) -> Module` returns a new Module. A pipeline is text,
`lower,partition{grouped=serial},place,cost`, parsed into pass objects; option names use
dashes or underscores (`max-blocks` is field `max_blocks`). Named pipelines stand for
whole sequences (`baseline`). The pipeline verifies after every pass; a failure names the
pass and the passes before it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Sequence

from cimc.errors import CimcError, PipelineError, VerifyError
from cimc.ir import Module
from cimc.verify import verify

NAMED = {
    # every block on its own crossbar, one copy per layer: the ISAAC-like baseline
    "baseline": "lower,partition,place,cost",
    # duplicate for throughput within the budget, pack, schedule: the default
    "full": "lower,partition,duplicate,pack,schedule,cost",
    # for search loops: the solver held short, copies kept compact, every block on a
    # crossbar of its own, no packing or schedule
    "fast": "lower,partition,duplicate{method=greedy,compact=true},cost",
}
DEFAULT = "full"

_ITEM = re.compile(r"\s*([A-Za-z_][\w-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def registry() -> dict[str, type]:
    from cimc.passes import PASSES

    return PASSES


OPTION_INT_MAX = 10 ** 9  # no option needs more: a bound keeps solvers and schedules within memory


def _convert(pass_name: str, field: dataclasses.Field, raw: str):
    kind = field.type
    try:
        if kind in ("int", "int | None") and raw.lower() != "none":
            if len(raw.lstrip("+-")) > 12 or abs(int(raw)) > OPTION_INT_MAX:
                raise PipelineError(f"pass '{pass_name}': option '{field.name}' = {raw[:20]} is out of range "
                                    f"(at most {OPTION_INT_MAX:,}).")
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise PipelineError(f"pass '{pass_name}': option '{field.name}' must be a finite number, got '{raw}'.")
            return value
        if kind == "bool":
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if kind in ("int | None",):
            return None if raw.lower() == "none" else int(raw)
        return raw
    except ValueError:
        raise PipelineError(f"pass '{pass_name}': option '{field.name}' must be {kind}, got '{raw}'.") from None


def parse_pipeline(text: str) -> list:
    """Pass objects for a pipeline text; named pipelines are expanded."""
    text = text.strip()
    if not text:
        raise PipelineError("the pipeline is empty; give passes like 'lower,partition,place,cost' or 'baseline'.")
    passes, pos = [], 0
    reg = registry()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"pipeline '{text}': cannot read it at column {pos + 1}; "
                                "write pass names separated by commas, options in braces: partition{grouped=serial}.")
        pos = m.end()
        name, opts = m.group(1), m.group(3)
        if name in NAMED and opts is None:
            passes.extend(parse_pipeline(NAMED[name]))
            continue
        cls = reg.get(name.replace("_", "-")) or reg.get(name)
        if cls is None:
            raise PipelineError(f"unknown pass '{name}' in pipeline '{text}'. Passes: {', '.join(sorted(reg))}; "
                                f"pipelines: {', '.join(sorted(NAMED))}.")
        kwargs = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for item in filter(None, (s.strip() for s in (opts or "").split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if key in kwargs:
                raise PipelineError(f"pass '{name}': option '{key}' is given twice.")
            if not sep or key not in fields:
                raise PipelineError(f"pass '{name}': unknown option '{item}'. Options: "
                                    f"{', '.join(sorted(fields)) or 'none'}.")
            kwargs[key] = _convert(name, fields[key], raw.strip())
        try:
            passes.append(cls(**kwargs))
        except (ValueError, TypeError) as e:
            raise PipelineError(f"pass '{name}': {e}") from None
    return passes


def print_pipeline(passes: Sequence) -> str:
    """The canonical text of a pass list (options that differ from their defaults only)."""
    items = []
    for p in passes:
        opts = [f"{f.name.replace('_', '-')}={getattr(p, f.name)}" for f in dataclasses.fields(p)
                if getattr(p, f.name) != f.default]
        items.append(p.name + ("{" + ",".join(opts) + "}" if opts else ""))
    return ",".join(items)


def run_pipeline(module: Module, passes: Sequence, check: bool = True) -> Module:
    """Run passes in order; records them in the module's `passes`. check: verify the result;
    when it does not hold (or a pass fails on what an earlier one made), the passes run again
    verifying after each, so that the error names the pass that broke the rule."""
    if not check:
        return _run(module, passes, False)
    try:
        out = _run(module, passes, False)
        verify(out)
        return out
    except CimcError as e:
        if not isinstance(e, VerifyError):
            raise
    except Exception:  # noqa: BLE001 - an internal error after an unverified pass: find the pass
        pass
    return _run(module, passes, True)


def _run(module: Module, passes: Sequence, each: bool) -> Module:
    done = [p for p in str(module.get("passes", "")).split(",") if p]
    for p in passes:
        try:
            module = p.run(module)
            if each:
                verify(module)
        except VerifyError as e:
            before = ",".join(done) or "nothing"
            raise VerifyError(f"after pass '{p.name}' (run after: {before}): {e}") from None
        except CimcError:
            raise
        done.append(print_pipeline([p]))
        report = module.__dict__.get("_report")
        module = module.with_ops(module.ops, passes=",".join(done))
        if report is not None:  # the same ops: the cost pass's report still holds
            object.__setattr__(module, "_report", report)
    return module
