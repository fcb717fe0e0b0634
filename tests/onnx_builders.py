"""Small ONNX graphs built by hand with onnx.helper, for frontend, pass and error tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weight(name: str, *shape: int, seed: int = 0) -> onnx.TensorProto:
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)


def model(nodes, inputs, outputs, inits=(), opset: int = 13, name: str = "g") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def tensor(name: str, *shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape) if shape else None)


def tiny_cnn(batch="N", bn: bool = True) -> onnx.ModelProto:
    """Conv(+BN) -> Relu -> depthwise Conv -> 1x1 Conv -> GAP -> Flatten -> Gemm -> Softmax."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = [weight("w1", 8, 3, 3, 3), weight("w2", 8, 1, 3, 3), weight("w3", 16, 8, 1, 1), weight("fc", 10, 16),
             weight("fcb", 10)]
    prev = "c1"
    if bn:
        inits += [weight(n, 8) for n in ("s", "b", "m")] + [numpy_helper.from_array(np.ones(8, np.float32), "v")]
        nodes.append(helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn1"], name="bn1"))
        prev = "bn1"
    nodes += [
        helper.make_node("Relu", [prev], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="dw2", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], name="pw3", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y0"], name="fc", transB=1),
        helper.make_node("Softmax", ["y0"], ["y"], name="softmax", axis=1),
    ]
    return model(nodes, [tensor("x", batch, 3, 8, 8)], [tensor("y", batch, 10)], inits, name="tiny_cnn")
