"""Knobs: one dimension of a search space (categorical, integer or float range, linear or log),
read from TOML or Python, suggested through an Optuna trial.

Written forms (TOML and Python alike):
    16                          fixed: the knob takes this value, the search does not turn it
    [3, 5, 7]                   categorical (any scalars: ints, floats, strings, booleans)
    {low = 4, high = 8}         integer range (both ints), step 1; `step = 2` for another step
    {low = 0.01, high = 0.3}    float range (either bound a float)
    {low = 64, high = 1024, log = true}   log-uniform (integer or float)
Python also takes `range(4, 9)` (categorical over the range) and `(64, 1024, "log")` or
`(4, 8)` tuples (ranges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimc.errors import CimcError


class SpaceError(CimcError):
    """A search space (TOML or Python) names an unknown knob, has a bad range or a bad value."""


SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Knob:
    """kind: 'fixed', 'categorical', 'int' or 'float'. For ranges, low..high inclusive."""

    name: str
    kind: str
    choices: tuple = ()
    low: float = 0
    high: float = 0
    step: float | None = None
    log: bool = False

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    def suggest(self, trial):
        """The value Optuna suggests for this knob in `trial` (a fixed knob suggests nothing)."""
        if self.kind == "fixed":
            return self.choices[0]
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def values(self) -> list:
        """Every value a discrete knob can take (for a float range: its two ends)."""
        if self.kind in ("fixed", "categorical"):
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        return [self.low, self.high]

    def largest(self):
        """The value that makes the biggest network (for a supernet): the largest number, True."""
        vals = self.values()
        if all(isinstance(v, (int, float)) for v in vals):
            return max(vals)
        raise SpaceError(f"knob '{self.name}' has non-numeric values {vals}; fix it to one value for a supernet.")

    def contains(self, value) -> bool:
        if self.kind in ("fixed", "categorical"):
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.choices[0])
        if self.kind == "categorical":
            return "[" + ", ".join(map(repr, self.choices)) + "]"
        step = f", step {self.step:g}" if self.step else ""
        return f"{self.kind} {self.low:g}..{self.high:g}{step}{', log' if self.log else ''}"


def knob(name: str, spec, where: str) -> Knob:
    """A Knob from any written form (see the module docstring); SpaceError says what is wrong."""
    at = f"{where}: knob '{name}'"
    if isinstance(spec, Knob):
        return spec if spec.name == name else Knob(name, spec.kind, spec.choices, spec.low, spec.high, spec.step,
                                                   spec.log)
    if isinstance(spec, SCALARS):
        if isinstance(spec, float) and not math.isfinite(spec):
            raise SpaceError(f"{at} = {spec}: not a finite number.")
        return Knob(name, "fixed", (spec,))
    if isinstance(spec, range):
        spec = list(spec)
    if isinstance(spec, (list, frozenset, set)):
        choices = list(spec)
        if not choices:
            raise SpaceError(f"{at}: an empty list of choices; give at least one value.")
        for c in choices:
            if not isinstance(c, SCALARS) or (isinstance(c, float) and not math.isfinite(c)):
                raise SpaceError(f"{at}: choice {c!r} is not a number, string or boolean.")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{at}: choices {choices} repeat a value.")
        return Knob(name, "categorical", tuple(choices)) if len(choices) > 1 else Knob(name, "fixed", tuple(choices))
    if isinstance(spec, tuple):
        if len(spec) == 3 and spec[2] == "log":
            spec = {"low": spec[0], "high": spec[1], "log": True}
        elif len(spec) == 2:
            spec = {"low": spec[0], "high": spec[1]}
        else:
            raise SpaceError(f"{at} = {spec!r}: a tuple is a range, (low, high) or (low, high, 'log').")
    if not isinstance(spec, dict):
        raise SpaceError(f"{at} = {spec!r}: give a value, a list of choices or {{low = .., high = ..}}.")
    extra = sorted(set(spec) - {"low", "high", "step", "log"})
    if extra or "low" not in spec or "high" not in spec:
        raise SpaceError(f"{at}: a range needs 'low' and 'high' (and optionally 'step', 'log'); got keys "
                         f"{sorted(spec)}.")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    for label, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpaceError(f"{at}: '{label}' = {v!r} is not a finite number.")
    if not isinstance(log, bool):
        raise SpaceError(f"{at}: 'log' must be true or false, got {log!r}.")
    if low > high:
        raise SpaceError(f"{at}: low = {low} is above high = {high}.")
    if log and low <= 0:
        raise SpaceError(f"{at}: a log range needs low > 0, got {low}.")
    if step is not None and (step <= 0 or log):
        raise SpaceError(f"{at}: step must be positive and cannot go with log (step = {step}, log = {log}).")
    kind = "int" if all(isinstance(v, int) for v in (low, high) + ((step,) if step is not None else ())) else "float"
    if low == high:
        return Knob(name, "fixed", (low,))
    return Knob(name, kind, (), low, high, step, log)

