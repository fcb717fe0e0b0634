import os
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
ZOO_MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
              "squeezenet", "vgg19", "zfnet512"]
EXAMPLES = ROOT / "examples"


def zoo(name: str) -> Path:
    return ZOO / f"light_{name}.onnx"


@pytest.fixture(scope="session")
def resnet20_path() -> Path:
    return EXAMPLES / "resnet20.onnx"


@pytest.fixture(scope="session")
def mobilenet_path() -> Path:
    return EXAMPLES / "mobilenet_tiny.onnx"


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")


# ---- a throw-away PostgreSQL cluster (the distributed-search tests) ----------------------------

def _pg_bindir():
    import glob
    import shutil
    import subprocess

    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and Path(out, "initdb").exists():
            return Path(out)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://cimc@127.0.0.1:PORT/cimc on a cluster of its own: its own data folder and port,
    loopback only, run as a non-root user (initdb refuses root), stopped and removed at the end.
    Skipped where PostgreSQL is not installed, except in CI (CI=true), where `make test` installs it."""
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; make test installs Debian's postgresql package.")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    as_user = []
    base = Path(tempfile.mkdtemp(prefix="cimc-pg-"))
    if os.geteuid() == 0:  # a non-root user owns and runs the cluster
        user = "postgres" if _has_user("postgres") else "nobody"
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    data, sock, log = base / "data", base, base / "server.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def sh(*cmd, **kw):
        return subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, text=True, timeout=120,
                              **kw)

    try:
        sh(bindir / "initdb", "-D", data, "-A", "trust", "-U", "cimc", "--no-sync", "-E", "UTF8")
        sh(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
           f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", "start")
        sh(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "cimc", "cimc")
    except subprocess.CalledProcessError as e:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr or e.stdout}")
    try:
        yield f"postgresql://cimc@127.0.0.1:{port}/cimc"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
