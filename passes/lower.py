"""lower: give each weight layer its matrix view; fold BatchNormalization into the layer.

After this pass every weight op has `groups` matrices of `rows` x `cols` weights, each
doing `mvms` matrix-vector products per inference:
- Conv: rows = C_in/g * prod(kernel), cols = C_out/g, mvms = output pixels (batch included);
- ConvTranspose (scatter form: each input pixel times a C_in/g x C_out/g*prod(kernel)
  matrix, the overlaps added digitally): mvms = input pixels;
- Gemm / MatMul with a constant operand: rows = K, cols = N, mvms = rows of the activation;
- LSTM/GRU/RNN: one matrix [x, h] -> gates per direction, mvms = time steps x batch.
A BatchNormalization whose only input is a weight layer used by nothing else is folded
into the layer's weights (recorded in `fused`): on a crossbar it costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimc.ir import Module, Op
from cimc.ops import RNN_GATES


def matrix_view(op: Op, defs: dict[str, Op]) -> dict[str, int]:
    out = op["shape"]
    if op.kind == "nn.conv":
        g = op["groups"]
        return dict(groups=g, rows=op["in_channels"] // g * math.prod(op["kernel"]), cols=op["out_channels"] // g,
                    mvms=math.prod(out) // op["out_channels"])
    if op.kind == "nn.conv_transpose":
        g = op["groups"]
        x = defs[op.operands[0]]["shape"]
        return dict(groups=g, rows=op["in_channels"] // g, cols=op["out_channels"] // g * math.prod(op["kernel"]),
                    mvms=math.prod(x) // op["in_channels"])
    if op.kind == "nn.matmul":
        return dict(groups=1, rows=op["in_features"], cols=op["out_features"], mvms=math.prod(out) // op["out_features"])
    if op.kind == "nn.rnn":
        return dict(groups=op["directions"], rows=op["input_size"] + op["hidden_size"],
                    cols=RNN_GATES.get(op["cell"], 1) * op["hidden_size"], mvms=op["seq_len"])
    raise AssertionError(op.kind)


@dataclass(frozen=True)
class LowerPass:
    name = "lower"
    fold_bn: bool = True

    def run(self, module: Module) -> Module:
        defs = module.by_name()
        users = module.users()
        rename: dict[str, str] = {}
        fused: dict[str, tuple[str, ...]] = {}
        if self.fold_bn:
            for op in module.of_kind("nn.norm"):
                src = defs.get(op.operands[0])
                if (op["fn"] == "BatchNormalization" and len(op.operands) == 1 and src is not None
                        and src.kind in ("nn.conv", "nn.conv_transpose", "nn.matmul")
                        and len(users.get(src.result, [])) == 1 and src.result not in rename.values()):
                    rename[op.result] = src.result
                    fused[src.result] = tuple(src.get("fused", ())) + ("BatchNormalization",)
        ops = []
        for op in module.ops:
            if op.result in rename:
                continue
            if any(o in rename for o in op.operands):
                op = Op(op.kind, op.result, tuple(rename.get(o, o) for o in op.operands), op.attrs)
            if op.kind in ("nn.conv", "nn.conv_transpose", "nn.matmul", "nn.rnn"):
                op = op.with_attrs(**matrix_view(op, defs), fused=fused.get(op.result, op.get("fused")))
            ops.append(op)
        return module.with_ops(ops)
