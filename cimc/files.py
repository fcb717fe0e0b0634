"""Files in and out: the one place every input is opened and every output written.

Inputs: only regular files are read (a FIFO would block forever, /dev/zero would fill the
memory), within a size limit checked before reading. Outputs: written to a temporary file
beside the destination and renamed over it, so a destination is never half-written; only a
regular file (or a new name) is replaced: a link is followed to the regular file it names, a
device, FIFO, socket or folder is refused; an output is never one of the command's inputs
(compared as resolved files, not as strings); an existing file keeps its permission bits.
Every OS error becomes a `CimcError` naming the path. `terminating()` turns SIGTERM and SIGHUP
into `Terminated`, so that a write in progress cleans up like it does for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
from pathlib import Path

from cimc.errors import CimcError

GIB = 1 << 30
MODEL_MAX_BYTES = 2 * GIB  # protobuf cannot parse a message over 2 GB (onnx's own limit)
TEXT_MAX_BYTES = 1 * GIB  # mapping IR, JSON
TOML_MAX_BYTES = 16 << 20
DATA_MAX_BYTES = 4 * GIB  # the arrays of an .npz, uncompressed (CIMC_MAX_DATA_BYTES overrides)


def data_max_bytes() -> int:
    try:
        return int(os.environ.get("CIMC_MAX_DATA_BYTES", DATA_MAX_BYTES))
    except ValueError:
        return DATA_MAX_BYTES


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (a BaseException, like KeyboardInterrupt: cleanup runs, then exit)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def terminating():
    """While inside, SIGTERM and SIGHUP raise `Terminated` in the main thread (a signal the
    process was started ignoring, as nohup does with SIGHUP, stays ignored)."""
    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) is signal.SIG_IGN:  # ignored on purpose (nohup): leave it so
                continue
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread, or no such signal here
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_input(path: "str | os.PathLike", what: str, max_bytes: int, missing: str | None = None) -> Path:
    """`path` if it is a regular file of at most `max_bytes`; else a CimcError saying why."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CimcError(missing or f"{what} '{path}': no such file.") from None
    except OSError as e:
        raise CimcError(f"{what} '{path}': cannot open it ({e.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise CimcError(f"{what} '{path}' is {kind_of(st.st_mode)}, not a regular file; cimc reads only regular "
                        "files. Give the path of the file itself.")
    if st.st_size > max_bytes:
        raise CimcError(f"{what} '{path}' is {size_text(st.st_size)}, over the {size_text(max_bytes)} cimc reads "
                        "for it.")
    return path


def read_bytes(path, what: str, max_bytes: int, missing: str | None = None) -> bytes:
    path = check_input(path, what, max_bytes, missing)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise CimcError(f"{what} '{path}': cannot read it ({e.strerror}).") from None
    if len(data) > max_bytes:  # it grew while we read
        raise CimcError(f"{what} '{path}' is over the {size_text(max_bytes)} cimc reads for it.")
    return data


def read_text(path, what: str, max_bytes: int = TEXT_MAX_BYTES, missing: str | None = None) -> str:
    data = read_bytes(path, what, max_bytes, missing)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CimcError(f"{what} '{path}' is not UTF-8 text (byte {e.start}).") from None


def destination(path: "str | os.PathLike", what: str = "output") -> Path:
    """The file an output to `path` replaces: `path`, or the regular file a link at `path`
    names. Refuses folders, devices, FIFOs and sockets (and links to them)."""
    path = Path(path)
    try:
        st = path.stat()  # follows links
    except FileNotFoundError:
        if path.is_symlink():
            raise CimcError(f"{what} '{path}' is a link to '{os.readlink(path)}', which does not exist; cimc does "
                            "not write through dangling links. Give another name.") from None
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            reason = "does not exist" if not parent.exists() else "is not a folder"
            raise CimcError(f"{what} '{path}': its folder '{parent}' {reason}.") from None
        return path
    except OSError as e:
        raise CimcError(f"{what} '{path}': cannot use it ({e.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise CimcError(f"{what} '{path}' is {kind_of(st.st_mode)}; cimc writes only regular files (or '-' for "
                        "standard output). Give a file name.")
    return Path(os.path.realpath(path))


def same_file(a: "str | os.PathLike", b: "str | os.PathLike") -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: dict, inputs: list) -> None:
    """outputs: {flag: path or None}; inputs: paths the command reads. Refuses an output that is
    an input, two outputs on one file, and any output that is no regular file or new name."""
    named = [(flag, p) for flag, p in outputs.items() if p and str(p) != "-"]
    for i, (flag, p) in enumerate(named):
        dest = destination(p, f"{flag}")
        for other_flag, q in named[i + 1:]:
            if os.path.realpath(p) == os.path.realpath(q) or same_file(p, q):
                raise CimcError(f"{flag} and {other_flag} both name '{p}'; give two different files.")
        for inp in inputs:
            if inp is not None and Path(inp).exists() and same_file(dest, inp):
                raise CimcError(f"{flag} '{p}' is an input of this command ('{inp}'); cimc never overwrites its "
                                "input. Give another output name.")


def write_atomic(path: "str | os.PathLike", data: "str | bytes", what: str = "output") -> None:
    """Write `data` to `path` ('-': standard output) through a temporary file and a rename."""
    if str(path) == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        sys.stdout.flush()
        return
    dest = destination(path, what)
    try:
        mode = stat.S_IMODE(dest.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
        tmp = None
    except OSError as e:
        raise CimcError(f"{what} '{path}': cannot write it ({e.strerror or e}).") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


_CONTROL = {c: f"\\x{c:02x}" for c in list(range(0, 32)) + list(range(127, 160)) if c != 10}
MESSAGE_LINES = 24
LINE_CHARS = 400


def safe_text(text: str, max_chars: int = LINE_CHARS) -> str:
    """`text` with control characters escaped (newlines too) and cut in the middle to `max_chars`:
    for names from a model, which may hold terminal escape codes."""
    text = str(text).translate(_CONTROL).replace("\n", "\\n")
    if len(text) > max_chars:
        half = max_chars // 2 - 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


def safe_message(message: str) -> str:
    """An error message fit for a terminal: control characters escaped, each line cut to a
    window, at most MESSAGE_LINES lines."""
    lines = [safe_text(line) for line in str(message).translate(_CONTROL).split("\n")]
    if len(lines) > MESSAGE_LINES:
        lines = lines[:MESSAGE_LINES - 1] + [f"... ({len(lines) - MESSAGE_LINES + 1} more lines)"]
    return "\n".join(lines)
