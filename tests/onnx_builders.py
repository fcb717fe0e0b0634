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


def small_cnn(depth: int = 2, width: int = 8, kernel: int = 3, size: int = 8, seed: int = 0,
              classes: int = 10) -> onnx.ModelProto:
    """`depth` x (Conv k x k -> Relu), a MaxPool after the first, GAP, Flatten, Gemm."""
    nodes, inits, prev, c_in = [], [], "x", 3
    for d in range(depth):
        inits.append(weight(f"w{d}", width, c_in, kernel, kernel, seed=seed))
        nodes.append(helper.make_node("Conv", [prev, f"w{d}"], [f"c{d}"], name=f"conv{d}",
                                      kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{d}"], [f"r{d}"], name=f"relu{d}"))
        prev, c_in = f"r{d}", width
        if d == 0:
            nodes.append(helper.make_node("MaxPool", [prev], ["mp"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
            prev = "mp"
    inits.append(weight("fc", classes, width, seed=seed))
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1)]
    return model(nodes, [tensor("x", 1, 3, size, size)], [tensor("y", 1, classes)], inits,
                 name=f"cnn_d{depth}_w{width}_k{kernel}")


def nas201_cell(arch, channels: int = 16, size: int = 16) -> onnx.ModelProto:
    """A NAS-Bench-201 cell after a 3x3 stem: node j sums, over i < j, edge (i, j)'s op on
    node i; `arch` gives the six edges' ops in order (0,1), (0,2), (1,2), (0,3), (1,3), (2,3):
    none, skip, conv1 (Relu, 1x1 Conv), conv3 (Relu, 3x3 Conv) or avg (3x3 average pool)."""
    c = channels
    nodes = [helper.make_node("Conv", ["x", "stem"], ["n0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = [weight("stem", c, 3, 3, 3)]
    edges = iter(arch)
    for j in range(1, 4):
        terms = []
        for i in range(j):
            op, src, out = next(edges), f"n{i}", f"e{i}{j}"
            if op == "skip":
                terms.append(src)
            elif op == "avg":
                nodes.append(helper.make_node("AveragePool", [src], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                              count_include_pad=0))
                terms.append(out)
            elif op in ("conv1", "conv3"):
                k = 1 if op == "conv1" else 3
                inits.append(weight(f"w{i}{j}", c, c, k, k))
                nodes += [helper.make_node("Relu", [src], [out + "r"]),
                          helper.make_node("Conv", [out + "r", f"w{i}{j}"], [out], kernel_shape=[k, k], pads=[k // 2] * 4)]
                terms.append(out)
        if not terms:  # a node with no edge in is zero
            inits.append(numpy_helper.from_array(np.zeros(1, np.float32), f"zero{j}"))
            nodes.append(helper.make_node("Mul", ["n0", f"zero{j}"], [f"n{j}"]))
            continue
        acc = terms[0]
        for n, term in enumerate(terms[1:]):
            out = f"n{j}" if n == len(terms) - 2 else f"s{j}_{n}"
            nodes.append(helper.make_node("Add", [acc, term], [out]))
            acc = out
        if len(terms) == 1:
            nodes.append(helper.make_node("Identity", [acc], [f"n{j}"]))
    inits.append(weight("fc", c, 10))
    nodes += [helper.make_node("GlobalAveragePool", ["n3"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fc"], ["y"])]
    return model(nodes, [tensor("x", 1, 3, size, size)], [tensor("y", 1, 10)], inits, name="cell")


def renumbered(m: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """The same graph with its nodes in another (random) topological order, the operands of
    every Add swapped at random, and every tensor and node renamed."""
    import random

    rng = random.Random(seed)
    names: dict[str, str] = {}
    io = {v.name for v in list(m.graph.input) + list(m.graph.output)}

    def rename(x: str) -> str:
        if not x or x in io:
            return x
        return names.setdefault(x, f"t{rng.randrange(10 ** 9)}_{len(names)}")

    nodes = list(m.graph.node)
    made = {o: n for n, node in enumerate(nodes) for o in node.output}
    deps = {n: {made[i] for i in node.input if i in made} for n, node in enumerate(nodes)}
    done: list[int] = []
    while len(done) < len(nodes):
        done.append(rng.choice([n for n in range(len(nodes)) if n not in done and deps[n] <= set(done)]))
    out = []
    for n in done:
        node = nodes[n]
        inputs = [rename(i) for i in node.input]
        if node.op_type == "Add" and rng.random() < 0.5:
            inputs.reverse()
        new = helper.make_node(node.op_type, inputs, [rename(o) for o in node.output], name=f"node{rng.randrange(10 ** 6)}")
        new.attribute.extend(node.attribute)
        out.append(new)
    inits = []
    for init in m.graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = rename(init.name)
        inits.append(copy)
    return model(out, list(m.graph.input), list(m.graph.output), inits, name=m.graph.name)
