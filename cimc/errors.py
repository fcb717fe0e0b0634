"""Errors cimc raises on purpose.

Every error a user can cause is a `CimcError`: its message says what went wrong, where,
and what to do. The CLI prints the message and exits 1; anything else escaping is a bug.
"""

from __future__ import annotations


class CimcError(Exception):
    """Base of every error caused by input (model, target, mapping text, options)."""


class ModelError(CimcError):
    """The ONNX model cannot be read or holds something cimc cannot map."""


class TargetError(CimcError):
    """A target preset, target file or --set override is wrong."""


class VerifyError(CimcError):
    """A Module breaks an IR invariant (structure or a per-op rule).

    `index` is the position of the offending op in `Module.ops`, when one op is to blame.
    """

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


class PipelineError(CimcError):
    """A pipeline text names an unknown pass or option, or an option has a wrong value."""


class Infeasible(CimcError):
    """The model cannot be mapped onto the target (too few crossbars, nothing fits).

    An expected outcome of a search: callers may catch it and score the candidate as
    infeasible.
    """


class MappingSyntaxError(CimcError):
    """Mapping-IR text that does not parse; the message carries file:line:col and a caret."""

    WINDOW = 60  # characters of the source line shown on each side of the caret

    def __init__(self, message: str, filename: str, line: int, column: int, source_line: str):
        self.filename, self.line, self.column = filename, line, column
        start = max(0, column - 1 - self.WINDOW)
        end = column - 1 + self.WINDOW
        shown = ("..." if start else "") + source_line[start:end] + ("..." if end < len(source_line) else "")
        caret = " " * (column - 1 - start + (3 if start else 0)) + "^"
        super().__init__(f"{filename}:{line}:{column}: {message}\n  {shown}\n  {caret}")
