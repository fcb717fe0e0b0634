"""The ONNX frontend on hand-built graphs and torch exports: what maps where, and the
errors a user gets."""

import onnx
import pytest
import torch
from onnx import TensorProto, helper

import cimc
from cimc.errors import ModelError
from cimc.frontend import import_onnx
from cimc.search import networks

import onnx_builders as ob

T = cimc.load_target("rram-256")


def ops_of(module, kind):
    return [op for op in module.ops if op.kind == kind]


def lowered(model, **kw):
    return cimc.compile(model, "rram-256", "lower", **kw).module


def test_dynamic_batch_is_one_or_the_batch_given():
    one = lowered(ob.tiny_cnn())
    four = lowered(ob.tiny_cnn(), batch=4)
    c1, c4 = ops_of(one, "nn.conv")[0], ops_of(four, "nn.conv")[0]
    assert c1["shape"][0] == 1 and c4["shape"][0] == 4
    assert c4["mvms"] == 4 * c1["mvms"] == 4 * 64


def test_dynamic_spatial_dims_need_input_shapes():
    m = ob.tiny_cnn()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(ModelError, match="--input-shape x="):
        lowered(m)
    ok = lowered(m, input_shapes={"x": [1, 3, 16, 16]})
    assert ops_of(ok, "nn.conv")[0]["mvms"] == 256


def test_zero_sized_input():
    m = ob.tiny_cnn(batch=1)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    with pytest.raises(ModelError, match="zero-sized|no elements"):
        lowered(m)


def _with_node(node, extra_inits=()):
    m = ob.tiny_cnn(bn=False)
    nodes = list(m.graph.node)
    i = next(k for k, n in enumerate(nodes) if n.name == "relu1")
    relu = nodes[i]
    node.output[0] = "r1"
    nodes[i] = helper.make_node("Relu", ["c1"], ["r0"], name="relu1")
    node.input[0] = "r0"
    nodes.insert(i + 1, node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(extra_inits)
    assert relu.output[0] == "r1"
    return m


def test_unknown_op_without_weights_is_costed_as_elementwise():
    m = _with_node(helper.make_node("Frob", ["x"], ["y"], name="frob1", domain="com.acme"))
    m.opset_import.append(helper.make_opsetid("com.acme", 1))
    r = cimc.compile(m, "rram-256")
    frob = next(op for op in r.module.ops if op.get("fn") == "com.acme.Frob")
    assert frob.kind == "nn.eltwise" and frob.get("known") is False and frob["ops"] == 8 * 8 * 8
    assert any(layer.fn == "com.acme.Frob" and layer.crossbars == 0 for layer in r.report.layers)


def test_unknown_op_with_weights_is_an_error_naming_it():
    m = _with_node(helper.make_node("Frob", ["x", "fw"], ["y"], name="frob1", domain="com.acme"),
                   [ob.weight("fw", 8, 8)])
    m.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(ModelError, match=r"frob1.*com\.acme\.Frob.*'fw'"):
        lowered(m)


def test_model_without_weight_layers():
    m = ob.model([helper.make_node("Relu", ["x"], ["y"])], [ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 4)])
    with pytest.raises(ModelError, match="no weight layer"):
        lowered(m)


def test_control_flow_is_refused():
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "b", [], [ob.tensor("o", 1, 4)])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body, name="branch")
    m = ob.model([node], [ob.tensor("c", elem=TensorProto.BOOL), ob.tensor("x", 1, 4)], [ob.tensor("y", 1, 4)])
    with pytest.raises(ModelError, match="control-flow"):
        lowered(m)


def test_matmul_with_constant_left_operand():
    node = helper.make_node("MatMul", ["W", "x"], ["y"], name="mm")
    m = ob.model([node], [ob.tensor("x", 32, 5)], [ob.tensor("y", 16, 5)], [ob.weight("W", 16, 32)])
    mm = ops_of(lowered(m), "nn.matmul")[0]
    assert (mm["rows"], mm["cols"], mm["mvms"]) == (32, 16, 5)


def test_conv_transpose_maps_in_scatter_form():
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up", strides=[2, 2], kernel_shape=[2, 2])
    m = ob.model([node], [ob.tensor("x", 1, 8, 4, 4)], [ob.tensor("y", 1, 4, 8, 8)], [ob.weight("W", 8, 4, 2, 2)])
    up = ops_of(lowered(m), "nn.conv_transpose")[0]
    assert (up["rows"], up["cols"], up["mvms"]) == (8, 4 * 2 * 2, 16)


def test_opset7_model_and_gemm_without_transb():
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], name="fc")
    m = ob.model([node], [ob.tensor("x", 1, 12)], [ob.tensor("y", 1, 6)], [ob.weight("W", 12, 6), ob.weight("C", 6)],
                 opset=7)
    fc = ops_of(lowered(m), "nn.matmul")[0]
    assert (fc["rows"], fc["cols"]) == (12, 6)


def test_a_graph_that_breaks_onnx_rules_gets_the_checkers_reason():
    """Gemm takes C from opset 11 on only; before, the checker refuses a Gemm without it."""
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")
    m = ob.model([node], [ob.tensor("x", 1, 12)], [ob.tensor("y", 1, 6)], [ob.weight("W", 12, 6)], opset=7)
    with pytest.raises(ModelError, match=r"breaks ONNX's rules \(onnx.checker: .*Gemm"):
        lowered(m)


def test_external_data_outside_the_folder_is_refused(tmp_path):
    m = ob.tiny_cnn()
    w = next(t for t in m.graph.initializer if t.name == "w1")
    w.ClearField("raw_data")
    del w.float_data[:]
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(ModelError, match="outside the model's folder"):
        lowered(path)


def _export(module, *inputs, opset=17):
    return cimc.frontend.export_torch(module, inputs, opset=opset)


def test_transformer_maps_projections_to_crossbars_and_attention_to_digital():
    torch.manual_seed(0)
    m = lowered(_export(networks.TinyTransformer(tokens=16, dim=64), torch.randn(1, 16, 64)))
    matmuls = ops_of(m, "nn.matmul")
    assert matmuls and all(op["mvms"] in (16, 1) for op in matmuls)
    assert any(op["rows"] == 64 and op["cols"] == 128 for op in matmuls)  # feed-forward 64 -> 128
    dots = ops_of(m, "nn.dot")
    assert len(dots) >= 4  # QK^T and AV in each of 2 layers
    fns = {op.get("fn") for op in m.ops}
    assert "LayerNormalization" in fns and ("Erf" in fns or "Gelu" in fns) and "Softmax" in fns


def test_lstm_maps_gates_as_one_matrix_per_direction():
    m = lowered(_export(networks.TinyLSTM(features=16, hidden=32), torch.randn(10, 1, 16)))
    rnn = ops_of(m, "nn.rnn")[0]
    assert (rnn["rows"], rnn["cols"], rnn["groups"], rnn["mvms"]) == (16 + 32, 4 * 32, 1, 10)


def test_torch_export_ops_of_mobilenet():
    m = cimc.compile(networks.mobilenet_v3_small(), "rram-256", "lower", example_inputs=torch.randn(1, 3, 64, 64))
    fns = {op.get("fn") for op in m.module.ops}
    assert {"HardSwish", "HardSigmoid", "Mul", "GlobalAveragePool"} & fns >= {"HardSwish", "Mul"}
    dw = [op for op in ops_of(m.module, "nn.conv") if op["groups"] > 1]
    assert dw and all(op["groups"] == op["in_channels"] for op in dw)


def test_compile_accepts_bytes_modelproto_and_path(tmp_path, resnet20_path):
    by_path = cimc.compile(resnet20_path)
    by_bytes = cimc.compile(resnet20_path.read_bytes(), name="resnet20")
    by_proto = cimc.compile(onnx.load(str(resnet20_path)), name="resnet20")
    assert by_path.crossbars_used == by_bytes.crossbars_used == by_proto.crossbars_used
    assert by_path.report.layers == by_bytes.report.layers


def test_import_keeps_weight_names(resnet20_path):
    m = import_onnx(resnet20_path, T)
    model = onnx.load(str(resnet20_path))
    names = {t.name for t in model.graph.initializer}
    assert all(op["weight"] in names for op in m.ops if op.kind in ("nn.conv", "nn.matmul"))


def test_same_input_same_text(mobilenet_path):
    a = cimc.compile(mobilenet_path, "isaac").text()
    b = cimc.compile(mobilenet_path, "isaac").text()
    assert a == b
