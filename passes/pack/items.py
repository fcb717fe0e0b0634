"""What pack places: blocks as items (size and load), copy names, shares, big light blocks cut in
two, neighbour layers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from cimc.cost import block_load_ns, block_share
from cimc.ir import Module, Op
from cimc.mapping import block_footprint, splittable_big_block
from cimc.passes.duplicate.copies import with_copies

EPS = 1e-6


@dataclass
class Item:
    op: Op
    layer: str
    copy: int
    h: int
    w: int
    load_ns: float


def items_of(module: Module) -> list[Item]:
    t = module.target
    defs = module.by_name()
    copies: dict[str, int] = defaultdict(int)
    blocks = [op for op in module.ops if op.kind == "map.block"]
    for b in blocks:
        copies[b.operands[0]] = max(copies[b.operands[0]], b["copy"] + 1)
    items = []
    for b in blocks:
        fp = block_footprint(t, b)
        layer = b.operands[0]
        n = block_share(b, defs[layer]["mvms"], copies[layer])
        items.append(Item(b, layer, b["copy"], fp.rows, fp.cols, block_load_ns(t, b, n)))
    return items


@dataclass(frozen=True)
class Packing:
    """A packing of a module's blocks: its items, the crossbars (`bins`: their rectangles; None
    where only the places are known), where each item went (item index -> (crossbar, row, col)),
    the load every crossbar stays within, how it was found; per-layer load caps (latency)."""

    module: Module
    items: list
    bins: list
    where: dict
    period_ns: float
    method: str
    layer_cap: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FillPlan:
    """What water-filling found: the crossbars it opened, the crossbar of every block (by
    the block's name), and the MVMs each copy of a layer takes (layers absent: one copy)."""

    bins: int
    where: dict[str, int]
    shares: dict[str, list[int]]


def with_shares(module: Module, shares: dict[str, list[int]]) -> Module:
    """The module with the copies and MVM shares of a water-filling plan: copy k of a
    layer gets `shares[layer][k]` MVMs on all its blocks; other layers keep one copy."""
    m = with_copies(module, {name: len(v) for name, v in shares.items()})
    ops = []
    for op in m.ops:
        if op.kind == "map.block" and op.operands[0] in shares:
            op = op.with_attrs(share=shares[op.operands[0]][op["copy"]])
        ops.append(op)
    return m.with_ops(ops)


def split_big_light_blocks(module: Module) -> Module:
    """Cut blocks over half a crossbar in both directions, of layers with few MVMs per
    cell, into two column halves (the layer's blocks are renumbered)."""
    t = module.target
    defs = module.by_name()
    out, counter = [], {}
    changed = False
    for op in module.ops:
        if op.kind != "map.block" or op["copy"] != 0:
            if op.kind not in ("map.place", "map.digital") and not (op.kind == "map.block" and op["copy"] != 0):
                out.append(op)
            continue
        layer = defs[op.operands[0]]
        c0, c1 = op["cols"]
        pieces = [op["cols"]]
        if splittable_big_block(t, layer["mvms"], op):
            mid = (c0 + c1) // 2
            pieces, changed = [(c0, mid), (mid, c1)], True
        for cols in pieces:
            k = counter.get(layer.result, 0)
            counter[layer.result] = k + 1
            out.append(Op(op.kind, f"{layer.result}.b{k}", op.operands, op.with_attrs(cols=cols).attrs))
    return module.with_ops(out) if changed else module


def neighbours_of(module: Module) -> dict[str, set[str]]:
    g = module.graph()
    weight = {op.result for op in module.ops if op.kind.startswith("nn.") and op.get("rows") is not None}
    out: dict[str, set[str]] = defaultdict(set)
    for name in weight:
        # nearest weight layers up and down the graph, through digital ops
        for step in (g.successors, g.predecessors):
            seen, todo = set(), list(step(name))
            while todo:
                n = todo.pop()
                if n in seen:
                    continue
                seen.add(n)
                if n in weight:
                    out[name].add(n)
                else:
                    todo.extend(step(n))
    return out
