"""Facts between passes: the module attributes, declared once with their types and ranges.

What one pass tells the next (the crossbar budget, duplicate's period target and status, the
pool budgets, pack's and schedule's results, the bounds) is a module attribute. Each is declared
here; `check` refuses an unknown name or a value of the wrong type or range (the verifier and the
mapping-IR parser call it, so a hand-edited `budget = "lots"` is an error naming the line), and
`get` reads a fact typed, with its declared default. Passes read facts only through `get` and the
typed readers below, never by parsing a string where they use it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from cimc.errors import VerifyError


@dataclass(frozen=True)
class Fact:
    type: type  # int, float, str
    default: object
    doc: str
    valid: Callable[[object], str | None] | None = None  # an error text, or None


def _at_least(lo: float):
    return lambda v: None if v >= lo else f"must be at least {lo:g}"


def _fraction(v):
    return None if 0 <= v <= 1 else "must be between 0 and 1"


def _one_of(*words: str):
    return lambda v: None if v in words else f"must be one of {', '.join(words)}"


_POOL_BUDGETS = re.compile(r"\d+:\d+(,\d+:\d+)*")


def _pool_budgets_text(v: str):
    if not _POOL_BUDGETS.fullmatch(v):
        return "must read 'pool:crossbars,...', e.g. \"0:12,1:4\""
    pools = [kv.split(":")[0] for kv in v.split(",")]
    return None if len(set(pools)) == len(pools) else "names a pool twice"


# the first word of duplicate's status: how the copies were chosen
DUPLICATE_STATUS = ("OPTIMAL", "FEASIBLE", "GREEDY", "ONE_COPY")


def _duplicate_status_text(v: str):
    parts = re.split(r"(?:^|; )(?:pool|chip) \d+: ", v)[1:] if v.startswith(("pool ", "chip ")) else [v]
    for part in parts:
        if part.split(" ", 1)[0].split(";", 1)[0] not in DUPLICATE_STATUS:
            return f"must start with one of {', '.join(DUPLICATE_STATUS)}"
    return None


FACTS: dict[str, Fact] = {
    "source": Fact(str, "", "where the network came from (the ONNX file)"),
    "passes": Fact(str, "", "the passes run so far, as pipeline text"),
    "budget": Fact(int, 0, "crossbars the mapping may use (0: the whole chip)", _at_least(0)),
    "input_density": Fact(float, 1.0, "share of non-zero input bits, for every layer", _fraction),
    "pool_budgets": Fact(str, "", "crossbars each crossbar pool may use, 'pool:crossbars,...'", _pool_budgets_text),
    "duplicate_objective": Fact(str, "", "what duplicate balanced copies for", _one_of("throughput", "latency")),
    "duplicate_status": Fact(str, "", "how duplicate chose the copies, and why", _duplicate_status_text),
    "period_target_ns": Fact(float, 0.0, "the pipeline period duplicate's copies reach (ns)", _at_least(0)),
    "period_bound_ns": Fact(float, 0.0, "a proven lower bound on the period at the budget (ns)", _at_least(0)),
    "pack_method": Fact(str, "", "how pack placed the blocks"),
    "pack_status": Fact(str, "", "whether pack's crossbar count is proven fewest"),
    "pack_crossbars": Fact(int, 0, "crossbars pack used", _at_least(0)),
    "pack_lower_bound": Fact(int, 0, "a lower bound on the crossbars pack could use", _at_least(0)),
    "schedule_method": Fact(str, "", "how schedule found each inference count's start times"),
    "stream_inferences": Fact(int, 1, "inferences scheduled back to back", _at_least(1)),
    "stream_makespan_ns": Fact(float, 0.0, "the makespan of those inferences (ns)", _at_least(0)),
    "chips": Fact(int, 0, "chips of the target's kind the mapping runs on (0: one per stage)", _at_least(0)),
    "chips_plan": Fact(str, "", "reload in rounds when the chips are too few (''), always ('reload'), never "
                       "('spread': then the model must fit the chips)",
                       _one_of("", "spread", "reload")),
    "batch": Fact(int, 1, "inferences each round runs before the next is programmed", _at_least(1)),
    "chip_budgets": Fact(str, "", "crossbars each stage may use when it is reloaded, 'chip:crossbars,...'",
                         _pool_budgets_text),
}


def _type_error(name: str, fact: Fact, value) -> str | None:
    if fact.type is int:
        ok = type(value) is int
    elif fact.type is float:
        ok = type(value) in (int, float) and math.isfinite(value)
    else:
        ok = type(value) is str
    if not ok:
        want = {int: "an integer", float: "a finite number", str: "a string"}[fact.type]
        return f"module attribute '{name}' must be {want}, got {value!r}"
    problem = fact.valid(value) if fact.valid is not None else None
    return f"module attribute '{name}' = {value!r} {problem}" if problem else None


def problem(name: str, value) -> str | None:
    """What is wrong with module attribute `name` = `value`, or None."""
    fact = FACTS.get(name)
    if fact is None:
        return f"unknown module attribute '{name}'; known: {', '.join(sorted(FACTS))}"
    return _type_error(name, fact, value)


def check(attrs) -> None:
    """Raise VerifyError for the first module attribute that is unknown or wrong."""
    for name, value in attrs:
        err = problem(name, value)
        if err:
            e = VerifyError(err + ".")
            e.fact = name  # the parser points at this attribute
            raise e


def get(module, name: str):
    """The fact `name` of `module`, typed, or its declared default."""
    fact = FACTS[name]
    value = module.get(name)
    if value is None:
        return fact.default
    return float(value) if fact.type is float else value


def pool_budgets(module) -> dict[int, int]:
    """The pool budgets an earlier pass chose, by pool ({} when none)."""
    text = get(module, "pool_budgets")
    return {int(p): int(b) for p, b in (kv.split(":") for kv in text.split(","))} if text else {}


def pool_budgets_text(budgets: dict[int, int]) -> str:
    return ",".join(f"{p}:{b}" for p, b in sorted(budgets.items()))


def duplicate_found_no_room(module) -> bool:
    """Whether duplicate saw no room for a whole copy (its status starts with ONE_COPY)."""
    return get(module, "duplicate_status").startswith("ONE_COPY")
