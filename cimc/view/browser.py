"""Open a report in headless Chromium and read it back, as a user's browser shows it.

The DevTools protocol over a pipe (`--remote-debugging-pipe`: JSON messages, each ending in a
NUL byte, on file descriptors 3 and 4), so nothing listens on a port and nothing but the
standard library is needed. The browser gets no network: every host resolves to nothing and
the proxy is a closed port. Every wait is bounded; the browser and its profile are removed on
close. Used by the tests and benchmarks, and from the command line for screenshots:

    python -m cimc.view.browser report.html shot.png [--width 1400 --height 1000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The browser: $CIMC_CHROMIUM, else the first of CANDIDATES on PATH."""
    env = os.environ.get("CIMC_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, width: int = 1400, height: int = 1000, timeout_s: float = 60.0):
        exe = find_chromium()
        if exe is None:
            raise BrowserError("no Chromium found (install Debian's chromium, or set CIMC_CHROMIUM)")
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="cimc-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():  # in the child: the protocol's descriptors 3 (it reads) and 4 (it writes)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--disable-dev-shm-usage", "--mute-audio", "--proxy-server=127.0.0.1:9",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.call("Page.enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.close()
            raise

    # ---- the protocol ------------------------------------------------------------------
    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                    raise BrowserError(f"{method}: no answer within {self.timeout_s:.0f} s")
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"{method}: the browser closed the pipe")
                self._buf += chunk
            line, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def eval(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable values; promises awaited)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression[:60]}: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    # ---- pages -------------------------------------------------------------------------
    def open(self, path: str | os.PathLike, ready_timeout_s: float | None = None) -> float:
        """Load a report and wait until it says it is drawn (<body data-ready>); the seconds it took.
        Raises if it draws an error or does not finish in time."""
        t0 = time.monotonic()
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        deadline = t0 + (ready_timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            ready = self.eval("document.readyState === 'complete' && document.body ? document.body.dataset.ready || ''"
                              " : ''")
            if ready == "1":
                return time.monotonic() - t0
            if ready == "error":
                raise BrowserError("the page drew an error: " + str(self.eval("document.getElementById('error')"
                                                                            ".textContent")))
            time.sleep(0.05)
        raise BrowserError(f"{path}: not drawn within {ready_timeout_s or self.timeout_s:.0f} s")

    def screenshot(self, path: str | os.PathLike, full_page: bool = False) -> None:
        params = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1})
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except (BrowserError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cimc.view.browser", description="Screenshot a cimc HTML report.")
    p.add_argument("page")
    p.add_argument("png")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1000)
    p.add_argument("--scroll-to", help="an element id to scroll to before the shot")
    p.add_argument("--full-page", action="store_true")
    a = p.parse_args(argv)
    with Browser(a.width, a.height) as b:
        took = b.open(a.page)
        if a.scroll_to:
            b.eval(f"document.getElementById({json.dumps(a.scroll_to)}).scrollIntoView()")
            time.sleep(0.2)
        b.screenshot(a.png, a.full_page)
    print(f"drawn in {took:.2f} s; wrote {a.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
