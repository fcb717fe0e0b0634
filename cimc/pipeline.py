"""Passes and pipelines.

A pass is a frozen dataclass: its fields are its options, `name` is its pipeline name and
`run(module) -> Module` returns a new Module. A pipeline is text,
`lower,partition{grouped=serial},place,cost`, parsed into pass objects; option names use
dashes or underscores (`max-blocks` is field `max_blocks`). Named pipelines stand for
whole sequences (`baseline`). The pipeline verifies after every pass; a failure names the
pass and the passes before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import re
import time
import typing
from collections.abc import Sequence

from cimc import progress
from cimc.analyses import Analyses
from cimc.errors import CimcError, PipelineError, VerifyError
from cimc.ir import Module
from cimc.passes import (
    PASSES,  # the passes package sits above this module: read at call time
)

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

def registry() -> dict[str, type]:
    return PASSES


OPTION_INT_MAX = 10 ** 9  # no option needs more: a bound keeps solvers and schedules within memory
_NAME = re.compile(r"[A-Za-z_][\w-]*")
_VALUE = re.compile(r"[^,{}=]*")


class _Reader:
    """A cursor over pipeline text; every error names the column it stopped at."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def fail(self, message: str, at: int | None = None) -> PipelineError:
        col = (self.pos if at is None else at) + 1
        return PipelineError(f"pipeline '{self.text}', column {col}: {message}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, char: str) -> bool:
        self.skip()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def name(self, what: str) -> tuple[str, int]:
        self.skip()
        m = _NAME.match(self.text, self.pos)
        if not m:
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
            raise self.fail(f"expected {what}, found {found}; write pass names separated by commas, "
                            "options in braces: partition{grouped=serial}.")
        self.pos = m.end()
        return m.group(0), m.start()

    def value(self) -> tuple[str, int]:
        self.skip()
        m = _VALUE.match(self.text, self.pos)
        self.pos = m.end()
        raw = m.group(0).strip()
        if not raw:
            raise self.fail("an option needs a value after '=', e.g. budget=96.")
        return raw, m.start()


def _option_type(cls, field: dataclasses.Field):
    """The option's type from the pass's real type hints: (base type, whether None is allowed)."""
    hint = typing.get_type_hints(cls)[field.name]
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def _convert(reader: _Reader, at: int, pass_name: str, cls, field: dataclasses.Field, raw: str):
    kind, optional = _option_type(cls, field)
    where = f"pass '{pass_name}': option '{field.name.replace('_', '-')}'"
    if optional and raw.lower() == "none":
        return None
    try:
        if kind is bool:
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if kind is int:
            if len(raw.lstrip("+-")) > 12 or abs(int(raw)) > OPTION_INT_MAX:
                raise reader.fail(f"{where} = {raw[:20]} is out of range (at most {OPTION_INT_MAX:,}).", at)
            return int(raw)
        if kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise reader.fail(f"{where} must be a finite number, got '{raw}'.", at)
            return value
        if kind is str:
            return raw
    except ValueError:
        want = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise reader.fail(f"{where} must be {want}, got '{raw}'.", at) from None
    raise AssertionError(f"{cls.__name__}.{field.name}: option type {kind} has no conversion")


def parse_pipeline(text: str) -> list:
    """Pass objects for a pipeline text; named pipelines are expanded. Strict: a trailing or
    doubled comma, a repeated option, a value that is not of the option's type (or not finite)
    is refused with the column it is at."""
    if not text.strip():
        raise PipelineError("the pipeline is empty; give passes like 'lower,partition,place,cost' or 'baseline'.")
    reader, passes, reg = _Reader(text), [], registry()
    while True:
        name, name_at = reader.name("a pass name")
        opts: list[tuple[str, int, str, int]] | None = None
        if reader.take("{"):
            opts = []
            if not reader.take("}"):
                while True:
                    key, key_at = reader.name("an option name")
                    if not reader.take("="):
                        raise reader.fail(f"option '{key}' needs '=' and a value, e.g. {key}=1.")
                    raw, raw_at = reader.value()
                    opts.append((key, key_at, raw, raw_at))
                    if reader.take("}"):
                        break
                    if not reader.take(","):
                        raise reader.fail("expected ',' or '}' after an option value.")
        passes.extend(_make_pass(reader, reg, name, name_at, opts))
        reader.skip()
        if reader.pos == len(text):
            return passes
        if not reader.take(","):
            raise reader.fail(f"expected ',' between passes, found {text[reader.pos]!r}.")
        reader.skip()
        if reader.pos == len(text):
            raise reader.fail("the pipeline ends with a comma; remove it or name the next pass.")


def _make_pass(reader: _Reader, reg: dict, name: str, name_at: int, opts) -> list:
    if name in NAMED and opts is None:
        return parse_pipeline(NAMED[name])
    cls = reg.get(name.replace("_", "-")) or reg.get(name)
    if cls is None:
        raise reader.fail(f"unknown pass '{name}'. Passes: {', '.join(sorted(reg))}; "
                          f"pipelines: {', '.join(sorted(NAMED))}.", name_at)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, key_at, raw, raw_at in opts or ():
        field_name = key.replace("-", "_")
        if field_name in kwargs:
            raise reader.fail(f"pass '{name}': option '{key}' is given twice.", key_at)
        if field_name not in fields:
            raise reader.fail(f"pass '{name}': unknown option '{key}'. Options: "
                              f"{', '.join(sorted(f.replace('_', '-') for f in fields)) or 'none'}.", key_at)
        kwargs[field_name] = _convert(reader, raw_at, name, cls, fields[field_name], raw)
    try:
        return [cls(**kwargs)]
    except PipelineError as e:
        raise reader.fail(str(e), name_at) from None
    except (ValueError, TypeError) as e:
        raise reader.fail(f"pass '{name}': {e}", name_at) from None


def print_pipeline(passes: Sequence) -> str:
    """The canonical text of a pass list (options that differ from their defaults only)."""
    items = []
    for p in passes:
        opts = [f"{f.name.replace('_', '-')}={getattr(p, f.name)}" for f in dataclasses.fields(p)
                if getattr(p, f.name) != f.default]
        items.append(p.name + ("{" + ",".join(opts) + "}" if opts else ""))
    return ",".join(items)


def run_pipeline(module: Module, passes: Sequence, check: bool = True, analyses: Analyses | None = None) -> Module:
    """Run passes in order; records them in the module's `passes`. check: verify the result;
    when it does not hold (or a pass fails on what an earlier one made), the passes run again
    verifying after each, so that the error names the pass that broke the rule. `analyses`
    (a fresh one by default) keeps what the run found: the verifier's memory, the cost pass's
    report."""
    analyses = analyses if analyses is not None else Analyses()
    with _few_collections():
        if not check:
            return _run(module, passes, False, analyses)
        try:
            out = _run(module, passes, False, analyses)
            analyses.verifier.verify(out)
            return out
        except CimcError as e:
            if not isinstance(e, VerifyError):
                raise
        except Exception:  # noqa: BLE001 - an internal error after an unverified pass: find the pass
            pass
        return _run(module, passes, True, analyses)


@contextlib.contextmanager
def _few_collections():
    """Passes make millions of small objects (ops, tuples, dicts) and almost no reference
    cycles, which reference counting frees anyway; Python's cycle collector, run every 700
    allocations by default, then costs a quarter to a third of a compile for nothing. Within
    a pipeline run it runs every 100,000; the caller's thresholds come back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run(module: Module, passes: Sequence, each: bool, analyses: Analyses) -> Module:
    done = [p for p in str(module.get("passes", "")).split(",") if p]
    analyses.pass_seconds.clear()
    for i, p in enumerate(passes, 1):
        progress.stage(f"{module.name}: pass {i}/{len(passes)} {p.name}")
        t0 = time.perf_counter()
        try:
            if hasattr(p, "run_with_report"):  # a pass that costs the mapping it returns
                module, report = p.run_with_report(module)
                analyses.keep_report(module, report)
            else:
                module = p.run(module)
            if each:
                analyses.verifier.verify(module)
        except VerifyError as e:
            before = ",".join(done) or "nothing"
            raise VerifyError(f"after pass '{p.name}' (run after: {before}): {e}") from None
        except CimcError:
            raise
        analyses.add_time(p.name, time.perf_counter() - t0)
        done.append(print_pipeline([p]))
        module = module.with_ops(module.ops, passes=",".join(done))  # the same ops: a kept report holds
    return module
