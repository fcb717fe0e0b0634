"""Export the project's own example networks to ONNX (run from the repository root).

    python examples/export_models.py          # writes examples/*.onnx

Weights are random (seeded): the compiler needs only the graph and weight shapes.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from cimc.search import networks

HERE = Path(__file__).parent
MODELS = {
    "resnet20": (networks.resnet20, (1, 3, 32, 32)),
    "mobilenet_tiny": (networks.mobilenet_tiny, (1, 3, 32, 32)),
}


def export(name: str, out_dir: Path = HERE) -> Path:
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    path = out_dir / f"{name}.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter on purpose (no onnxscript needed): not its notices
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(model, (torch.randn(*shape),), str(path), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        print("wrote", export(name))
