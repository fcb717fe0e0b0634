"""Signs of life on stderr while a compile runs: the pass running, its time, and a solver's
best so far. Shown only where someone watches (stderr a terminal) or when asked
(`--progress`); never in pipes or CI logs otherwise. One line, redrawn in place on a terminal
at most ten times a second and by a ticking clock twice a second; when stderr is not a
terminal (asked for all the same) one plain line per pass.

Passes and solvers call `stage()` and `detail()`; both do nothing when no `Progress` is
active, so the cost of the hooks is a global lookup.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

_active: Progress | None = None


class Progress:
    def __init__(self, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.t0 = time.monotonic()
        self.stage_t0 = self.t0
        self.stage_text = ""
        self.detail_text = ""
        self._drawn = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock = None

    def start(self) -> None:
        if self.tty:
            self._clock = threading.Thread(target=self._tick, daemon=True)
            self._clock.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self.draw(force=True)

    def stage(self, text: str) -> None:
        with self._lock:
            self.stage_text, self.detail_text = text, ""
            self.stage_t0 = time.monotonic()
        if self.tty:
            self.draw(force=True)
        else:
            print(f"cimc: {text}", file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        with self._lock:
            first = not self.detail_text
            self.detail_text = text
        if self.tty:
            self.draw(force=first)  # the first of a stage at once, then at most ten a second

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not force and now - self._drawn < 0.1):
            return
        with self._lock:
            self._drawn = now
            line = f"cimc: {self.stage_text} ({now - self.stage_t0:.1f} s)"
            if self.detail_text:
                line += f"  {self.detail_text}"
            try:
                self.stream.write("\r\033[K" + line[:200])
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self._stop.set()
        if self._clock is not None:
            self._clock.join(timeout=2)
        if self.tty:
            try:
                self.stream.write("\r\033[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass


@contextlib.contextmanager
def showing(enabled: bool | None = None, stream=None):
    """Progress on `stream` (stderr) for the block: enabled None means when it is a terminal."""
    global _active
    stream = stream or sys.stderr
    if enabled is None:
        enabled = stream.isatty()
    if not enabled or _active is not None:
        yield None
        return
    p = Progress(stream)
    _active = p
    p.start()
    try:
        yield p
    finally:
        _active = None
        p.close()


def stage(text: str) -> None:
    if _active is not None:
        _active.stage(text)


def detail(text: str) -> None:
    if _active is not None:
        _active.detail(text)


def active() -> bool:
    return _active is not None
