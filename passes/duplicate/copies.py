"""Copies in the mapping IR: copy blocks (`with_copies`), compact copies as a layer attribute and
their expansion, lanes."""

from __future__ import annotations

from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, copy_name


def with_compact_copies(module: Module, copies: dict[str, int]) -> Module:
    """The module with each layer's copies as its `copies` attribute (copy blocks dropped)."""
    ops = []
    for op in module.ops:
        if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched") or (op.kind == "map.block" and op["copy"]):
            continue
        if op.kind in WEIGHT_KINDS:
            c = copies.get(op.result, 1)
            op = op.with_attrs(copies=c if c > 1 else None)
        ops.append(op)
    return module.with_ops(ops)


def expand_copies(module: Module) -> Module:
    """Compact copies (`copies` attributes) as copy blocks; the module itself when it has none."""
    copies = {op.result: op["copies"] for op in module.ops if op.kind in WEIGHT_KINDS and op.get("copies")}
    if not copies:
        return module
    return with_copies(module, copies)


def with_lanes(module: Module, lanes: dict[str, int]) -> Module:
    """The module with every block of each layer in `lanes` holding that many replicas (the
    others one)."""
    ops = []
    changed = False
    for op in module.ops:
        if op.kind == "map.block":
            k = lanes.get(op.operands[0], 1)
            if op.get("lanes", 1) != k:
                op = op.with_attrs(lanes=k if k > 1 else None)
                changed = True
        ops.append(op)
    return module.with_ops(ops) if changed else module


def with_copies(module: Module, copies: dict[str, int]) -> Module:
    """The module with copies 1..c-1 of each layer's copy-0 blocks (existing copies and
    compact copies replaced)."""
    ops: list[Op] = []
    pending: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched"):
            continue
        if op.kind in WEIGHT_KINDS and op.get("copies"):
            op = op.with_attrs(copies=None)
        if op.kind == "map.block":
            if op["copy"] != 0:
                continue
            pending.setdefault(op.operands[0], []).append(op)
        ops.append(op)
    out: list[Op] = []
    last_block = {name: bs[-1].result for name, bs in pending.items()}
    for op in ops:
        out.append(op)
        if op.kind == "map.block" and last_block.get(op.operands[0]) == op.result:
            layer = op.operands[0]
            for k in range(1, copies.get(layer, 1)):
                for b in pending[layer]:
                    out.append(Op(b.kind, copy_name(layer, b.result, k), b.operands,
                                  b.with_attrs(copy=k).attrs))
    return module.with_ops(out)
