"""What a pipeline run has worked out about its modules, kept beside them, never on them.

Modules and ops are immutable, so what was found about one object holds while that object
lives. A pipeline run keeps one `Analyses`: its verifier (which remembers the ops that passed)
and the report the cost pass computed for the mapping it returned, so that `compile` does not
cost the same mapping twice. Entries are keyed by the objects themselves (identity, with the
object kept alive), so a changed module is never mistaken for the one analysed.
"""

from __future__ import annotations

from cimc.ir import Module
from cimc.verify import Verifier


class Analyses:
    def __init__(self):
        self.verifier = Verifier()
        self._report: tuple | None = None  # (ops, target, report)
        self.pass_seconds: dict[str, float] = {}  # wall-clock seconds of each pass of the last run, in order

    def add_time(self, name: str, seconds: float) -> None:
        """A pass's time; a pass that runs twice in one pipeline is `name#2`."""
        key, n = name, 1
        while key in self.pass_seconds:
            n += 1
            key = f"{name}#{n}"
        self.pass_seconds[key] = seconds

    def keep_report(self, module: Module, report) -> None:
        """`report` holds for `module` and for any module with the very same ops and target."""
        self._report = (module.ops, module.target, report)

    def report_of(self, module: Module):
        """The kept report, if it was computed for exactly these ops and target; else None."""
        if self._report is not None and self._report[0] is module.ops and self._report[1] is module.target:
            return self._report[2]
        return None
