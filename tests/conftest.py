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
