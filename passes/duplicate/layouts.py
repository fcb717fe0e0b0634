"""Other layouts for grouped layers: the variants a layer may take, the mapping with them, and back
to the partition's."""

from __future__ import annotations

from cimc.ir import Module, Op
from cimc.mapping import (
    WEIGHT_KINDS,
    max_lanes,
)
from cimc.passes.duplicate.infos import layer_info, plan_info
from cimc.plans import all_layouts, plan_blocks, plan_shapes, shape_block


def layout_variants(module: Module) -> dict[str, list[list]]:
    """Per grouped layer whose every group fits one block: block plans (groups, rows, cols,
    layout) in layouts other than its blocks' (`partition.all_layouts`): on the diagonal with
    fewer groups per block (fewer cells per group, more reads per MVM of the layer), and
    serial, groups side by side (every cell programmed, one group per read)."""
    t = module.target
    firsts: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            firsts.setdefault(op.operands[0], []).append(op)
    out: dict[str, list[list]] = {}
    for op in module.ops:
        if op.kind in WEIGHT_KINDS and op.result in firsts:
            have = tuple((b["groups"], b["layout"]) for b in firsts[op.result])
            plans = [plan for plan in all_layouts(t, op["groups"], op["rows"], op["cols"])
                     if tuple((g, lay) for g, _, _, lay in plan) != have]
            if plans:
                out[op.result] = plans
    return out


def as_partitioned(module: Module) -> Module:
    """The module with the partition's blocks back (one copy, one lane) for every layer that
    duplicate gave another layout (`partition_layout`); the module itself when there is none."""
    t = module.target
    blocks = {op.result: plan_ops(op.result, plan_blocks(t, op["groups"], op["rows"], op["cols"], op["partition_layout"],
                                                         max_groups=op["partition_groups"]))
              for op in module.ops if op.kind in WEIGHT_KINDS and op.get("partition_layout") is not None}
    if not blocks:
        return module
    m = with_layouts(module, blocks)
    return m.with_ops([op.with_attrs(partition_layout=None, partition_groups=None) if op.result in blocks else op
                       for op in m.ops])


def plan_ops(layer: str, plan) -> tuple[Op, ...]:
    """The copy-0 blocks of a layer's plan (groups, rows, cols, layout), named as partition
    names them."""
    return tuple(Op.make("map.block", f"{layer}.b{n}", [layer], copy=0, groups=g, rows=r, cols=c, layout=lay)
                 for n, (g, r, c, lay) in enumerate(plan))


def with_layouts(module: Module, blocks: dict[str, tuple[Op, ...]]) -> Module:
    """The module with the copy-0 blocks of each layer in `blocks` replaced by those given
    (its copies dropped). The layer records the partition's layout and groups per block
    (`partition_layout`, `partition_groups`): the cost model's baseline is the partition's."""
    if not blocks:
        return module
    first: dict[str, Op] = {}
    gone = set()
    for op in module.ops:
        if op.kind == "map.block" and op.operands[0] in blocks:
            gone.add(op.result)
            first.setdefault(op.operands[0], op)
    ops: list[Op] = []
    for op in module.ops:
        if op.result in gone or (op.kind == "map.place" and op.operands[0] in gone):
            continue
        if op.result in blocks:
            if op.get("partition_layout") is None:
                b = first[op.result]
                op = op.with_attrs(partition_layout=b["layout"], partition_groups=b["groups"][1] - b["groups"][0])
            ops.append(op)
            ops.extend(blocks[op.result])
            continue
        ops.append(op)
    return module.with_ops(ops)


def layout_alternatives(options, module: Module, layouts: bool):
    """{layer: [((variant, lanes), lanes, LayerInfo)]}, the block sets a layer may take
    besides its own (variant 0, one lane): its own with the most lanes its blocks allow,
    and each other layout (`layout_variants`) with one lane and with its most; and
    {layer: {variant: blocks}}."""
    t = module.target
    defs = module.by_name()
    own: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            own.setdefault(op.operands[0], []).append(op)
    others = layout_variants(module) if layouts else {}
    alternatives: dict[str, list] = {}
    block_sets: dict[str, dict[int, tuple]] = {}
    for name, bs in own.items():
        op = defs[name]
        plans = others.get(name, [])
        block_sets[name] = {0: tuple(bs), **{v: plan for v, plan in enumerate(plans, 1)}}
        opts = []
        k = min(min(max_lanes(t, b) for b in bs), op["mvms"]) if options.lanes else 1
        if k > 1:
            opts.append(((0, k), k, layer_info(t, op, [b.with_attrs(lanes=k) for b in bs], options.compact)))
        for v, plan in enumerate(plans, 1):
            opts.append(((v, 1), 1, plan_info(t, op, plan, 1, options.compact)))
            k = 1
            if options.lanes:
                k = min(op["mvms"], min(max_lanes(t, shape_block(name, shape)) for shape in plan_shapes(plan)))
            if k > 1:
                opts.append(((v, k), k, plan_info(t, op, plan, k, options.compact)))
        if opts:
            alternatives[name] = opts
    return alternatives, block_sets
