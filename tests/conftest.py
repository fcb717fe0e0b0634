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



@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://cimc@127.0.0.1:PORT/cimc on a throw-away cluster (tests/pgcluster.py).
    Skipped where PostgreSQL is not installed, except in CI (CI=true), where `make test` installs it."""
    import pgcluster

    if pgcluster.bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; make test installs Debian's postgresql package.")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        with pgcluster.cluster() as url:
            yield url
    except pgcluster.ClusterError as e:
        pytest.fail(str(e))
