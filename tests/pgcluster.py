"""A throw-away PostgreSQL cluster for tests and benchmarks: its own data folder and port,
listening on 127.0.0.1 only, run as a non-root user (initdb refuses root), stopped and
removed when the `with` block ends.

    with cluster() as url:      # postgresql://cimc@127.0.0.1:PORT/cimc
        ...
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class ClusterError(RuntimeError):
    pass


def bindir() -> Path | None:
    """The folder of initdb and pg_ctl, or None where PostgreSQL is not installed."""
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and Path(out, "initdb").exists():
            return Path(out)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _user() -> str | None:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    return None


@contextlib.contextmanager
def cluster():
    bins = bindir()
    if bins is None:
        raise ClusterError("PostgreSQL is not installed (apt-get install postgresql).")
    base = Path(tempfile.mkdtemp(prefix="cimc-pg-"))
    as_user = []
    if os.geteuid() == 0:
        user = _user()
        if user is None:
            raise ClusterError("running as root and no non-root user (postgres, nobody) to run PostgreSQL as.")
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    data = base / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        return subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    started = False
    try:
        run(bins / "initdb", "-D", data, "-A", "trust", "-U", "cimc", "--no-sync", "-E", "UTF8")
        run(bins / "pg_ctl", "-D", data, "-l", base / "server.log", "-w", "-t", "60", "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60", "start")
        started = True
        run(bins / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "cimc", "cimc")
        yield f"postgresql://cimc@127.0.0.1:{port}/cimc"
    except subprocess.CalledProcessError as e:
        log = (base / "server.log").read_text()[-2000:] if (base / "server.log").exists() else ""
        raise ClusterError(f"could not start PostgreSQL: {e.stderr or e.stdout}\n{log}") from None
    finally:
        if started:
            subprocess.run([*as_user, str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
