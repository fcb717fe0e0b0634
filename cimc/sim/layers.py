"""The simulated layers: each weight layer of the mapping with its blocks (where its weights sit),
its constants, and its programmed cells."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from cimc.mapping import WEIGHT_KINDS, pool_target, weight_boxes

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
from cimc.sim.devices import SimError, Variation, perturb, slice_levels
from cimc.sim.physics import ir_drop_conductances


@dataclass
class SimBlock:
    g0: int
    g1: int
    r0: int
    r1: int
    c0: int
    c1: int
    layout: str = "diag"
    row0: int = 0  # where the block sits in its crossbar (map.place's at), for the wires' IR drop
    col0: int = 0
    xbar_rows: int = 0  # rows of its crossbar (0: as many as the block has)


@dataclass
class SimLayer:
    name: str  # IR op
    node: object  # ONNX node
    kind: str  # conv | matmul | matmul_left
    w: "torch.Tensor"  # [G, R, C] float weights (BN folded)
    bias: "torch.Tensor | None"  # added after the MVMs (digital)
    attrs: dict  # ONNX attributes of the node (conv geometry)
    w_shape: tuple  # ONNX weight shape (conv)
    mvms: int  # per inference
    copies: list  # per copy: list of SimBlock
    shares: list  # per copy: MVMs it computes per inference
    q: "torch.Tensor | None" = None
    s_w: float = 1.0
    x_signed: bool = False
    s_x: float = 1.0
    x_max: float = 0.0
    x_min: float = 0.0
    p_lo: "torch.Tensor | None" = None  # calibrated ADC range per column class (slice)
    p_hi: "torch.Tensor | None" = None
    bn_node: object = None
    cells: list = field(default_factory=list)  # per group of same-shaped copies: (copies, blocks, cells)
    drive: float = 0.0  # sum over the inputs' DAC digits of |digit| / full scale (see input_densities)
    digits_seen: int = 0
    alpha: float = 1.0  # drift compensation: the factor on the layer's outputs


def layer_constant(sim, name, what):
    t = sim.interp.const.get(name)
    if t is None:
        raise SimError(f"{sim.where}: the {what} '{name}' is not a constant of the model.")
    return t.to(torch.float32)


def build_layer(sim, op, node, consumers) -> SimLayer:
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    label = node.name or node.output[0]
    bias = None
    if node.op_type == "Conv":
        w4 = layer_constant(sim, node.input[1], "weight")
        g = int(a.get("group", 1))
        if w4.dim() not in (3, 4):
            raise SimError(f"{sim.where}: Conv '{label}' has {w4.dim() - 2} spatial dims; the simulator maps 1-D "
                           "and 2-D convolutions.")
        cout = w4.shape[0]
        w = w4.reshape(g, cout // g, -1).transpose(1, 2).contiguous()
        if len(node.input) > 2 and node.input[2]:
            bias = layer_constant(sim, node.input[2], "bias")
        kind, w_shape = "conv", tuple(w4.shape)
    elif node.op_type in ("Gemm", "MatMul"):
        right = node.input[1] in sim.interp.const
        if right:
            b = layer_constant(sim, node.input[1], "weight")
            if node.op_type == "Gemm" and a.get("transB", 0):
                b = b.t()
            if b.dim() > 2:
                b = b.reshape(b.shape[-2], b.shape[-1])
            if b.dim() == 1:
                b = b.reshape(-1, 1)
            if node.op_type == "Gemm" and a.get("transA", 0):
                raise SimError(f"{sim.where}: Gemm '{label}' with transA is not supported by the simulator.")
            w = (b * a.get("alpha", 1.0)).unsqueeze(0)
            kind = "matmul"
            if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
                bias = layer_constant(sim, node.input[2], "bias") * a.get("beta", 1.0)
        else:
            m = layer_constant(sim, node.input[0], "weight")
            if node.op_type == "Gemm":
                raise SimError(f"{sim.where}: Gemm '{label}' with a constant first operand is not supported by "
                               "the simulator.")
            if m.dim() == 1:
                m = m.reshape(1, -1)
            w = m.reshape(m.shape[-2], m.shape[-1]).t().contiguous().unsqueeze(0)
            kind = "matmul_left"
        w_shape = tuple(w.shape)
    else:
        raise SimError(f"{sim.where}: node '{label}' ({node.op_type}) is not a layer the simulator maps.")
    if w.shape[1] != op["rows"] or w.shape[2] != op["cols"] or w.shape[0] != op["groups"]:
        raise SimError(f"{sim.where}: layer '{op.result}' is {op['groups']} x {op['rows']} x {op['cols']} in the "
                       f"mapping but {tuple(w.shape)} in the model; the mapping is of another model.")
    layer = SimLayer(op.result, node, kind, w, bias, a, w_shape, op["mvms"], [], [])
    if "BatchNormalization" in (op.get("fused") or ()):
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "BatchNormalization":
            raise SimError(f"{sim.where}: the mapping folds a BatchNormalization into '{op.result}' but the model "
                           "has none after it.")
        bn = users[0]
        scale, beta, mean, var = (layer_constant(sim, x, "BatchNormalization parameter") for x in bn.input[1:5])
        eps = next((onnx.helper.get_attribute_value(x) for x in bn.attribute if x.name == "epsilon"), 1e-5)
        k = scale / torch.sqrt(var + eps)
        G, R, C = layer.w.shape
        layer.w = layer.w * k.reshape(G, 1, C)
        b0 = bias if bias is not None else torch.zeros(G * C)
        layer.bias = (b0 - mean) * k + beta
        layer.bn_node = bn
        sim.skip.add(bn.output[0])
    return layer


def assign_blocks(sim, layer: SimLayer, op, blocks, places):
    n = 1 + max(b["copy"] for b in blocks)
    layer.copies = [[] for _ in range(n)]
    shares = [None] * n
    for b in blocks:  # a dense block computes where its rows meet its columns (zeros elsewhere add
        # nothing; its partial reads are grouped as on the diagonal of that part)
        place = places.get(b.result)
        at = place["at"] if place is not None else (0, 0)
        xbar_rows = pool_target(sim.target, b).xbar_rows if place is not None else 0
        for box in weight_boxes(b, op["cols"]):
            layer.copies[b["copy"]].append(SimBlock(*box, "diag" if b["layout"] == "dense" else b["layout"],
                                                    at[0], at[1], xbar_rows))
        if b.get("share") is not None:
            shares[b["copy"]] = b["share"]
    if any(s is None for s in shares):
        base, extra = divmod(layer.mvms, n)
        shares = [base + (1 if k < extra else 0) for k in range(n)]
    layer.shares = shares


# ---- set-up --------------------------------------------------------------------
def build_layers(sim):
    by_label = {}
    for node in sim.interp.nodes:
        by_label[node.name or node.output[0]] = node
    consumers = {}
    for node in sim.interp.nodes:
        for x in node.input:
            consumers.setdefault(x, []).append(node)
    blocks: dict[str, list] = {}
    places: dict[str, object] = {}
    for op in sim.module.ops:
        if op.kind == "map.block":
            blocks.setdefault(op.operands[0], []).append(op)
        elif op.kind == "map.place":
            places[op.operands[0]] = op
    for op in sim.module.ops:
        if op.kind not in WEIGHT_KINDS:
            continue
        node = by_label.get(op.get("onnx"))
        if node is None:
            raise SimError(f"{sim.where}: the mapping's layer '{op.result}' (ONNX node '{op.get('onnx')}') is not "
                           "in the model; simulate the model the mapping was compiled from.")
        if not blocks.get(op.result):
            raise SimError(f"{sim.where}: layer '{op.result}' has no blocks; compile with a pipeline that "
                           "partitions (e.g. baseline or full) before simulating.")
        layer = build_layer(sim, op, node, consumers)
        sim.layers[node.name or node.output[0]] = layer
        assign_blocks(sim, layer, op, blocks[op.result], places)


def block_cells(sim, arrays, b: "SimBlock", var: Variation, gen, t: float = 0.0, tgen=None) -> "torch.Tensor":
    """Programmed cells of one block at time t: [Gb, Rb, Cb*A*S (+ S reference cells)]; the A*S
    physical columns of a logical column are adjacent (array-major, LSB slice first). In level
    units above g_min (the offset the periphery removes), after the wires' IR drop."""
    p = sim.precision
    rng = sim.range
    parts = [perturb(slice_levels(mag[b.g0:b.g1, b.r0:b.r1, b.c0:b.c1], p), p, var, gen, rng, t, tgen)
             for _, mag in arrays]
    cells = torch.stack(parts)  # [A, S, Gb, Rb, Cb]
    A, S, Gb, Rb, Cb = cells.shape
    cells = cells.permute(2, 3, 4, 0, 1).reshape(Gb, Rb, Cb * A * S)
    if p.signed_weights == "offset":  # the block's reference column
        ref = torch.full((Gb, Rb), float(2 ** (p.weight_bits - 1)))
        ref = perturb(slice_levels(ref, p), p, var, gen, rng, t, tgen).permute(1, 2, 0)  # [Gb, Rb, S]
        cells = torch.cat([cells, ref], dim=2)
    if sim.r_dg:
        cells = block_ir_drop(sim, cells, b)
    return cells.contiguous()


def block_ir_drop(sim, cells, b: "SimBlock"):
    """The wires' IR drop on a block's cells (`physics.ir_drop_conductances`): each group is an
    array of Rb rows and `width` columns, at its place in the crossbar (groups on the diagonal,
    or side by side on shared rows for the serial layout)."""
    rng = sim.range
    Gb, Rb, W = cells.shape
    u = cells + rng.l_min  # conductance
    g = torch.arange(Gb)
    col0 = b.col0 + g * W
    row0 = b.row0 + (g * Rb if b.layout != "serial" else torch.zeros_like(g))
    below = (torch.clamp(b.xbar_rows - (row0 + Rb), min=0) if b.xbar_rows else torch.zeros_like(g))
    eff = ir_drop_conductances(u, sim.r_dg, col0.reshape(Gb, 1, 1).to(u.dtype), below.reshape(Gb, 1, 1).to(u.dtype))
    return eff - rng.l_min
