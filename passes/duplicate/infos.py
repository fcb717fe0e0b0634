"""What duplicate knows of a layer: its MVMs, the time of one MVM, the cells and the big blocks of
one copy (`LayerInfo`), for a layer as partitioned or in another layout."""

from __future__ import annotations

from dataclasses import dataclass

from cimc.cost import block_mvm_ns
from cimc.ir import Module, Op
from cimc.mapping import (
    WEIGHT_KINDS,
    block_footprint,
    holds_a_crossbar_alone,
)
from cimc.plans import plan_shapes, shape_block

TIME_UNITS_PER_NS = 100  # CP-SAT works in integers: 0.01 ns


# other layouts than the partition's are taken when they lower duplicate's period by more
# than this: they make more and smaller blocks, which cost about that much in packing
# (MobileNetV3-small on rnc-128 at 338 crossbars: 4% lower here, 17% slower packed)
OTHER_LAYOUT_GAIN = 0.1


TIGHT = 0.9  # ... or when the partition's layouts take this share of the budget's cells


@dataclass(frozen=True)
class LayerInfo:
    name: str
    mvms: int
    mvm_ns: float  # the slowest block's MVM time
    sum_mvm_ns: float  # all blocks of one copy
    cells: int  # footprint cells of one copy
    big_blocks: int  # blocks over half a crossbar in both directions
    blocks: tuple


def layer_info(t, op: Op, bs, whole_crossbars: bool = False) -> LayerInfo:
    """A weight layer's figures for one copy of the blocks `bs`."""
    fps = [block_footprint(t, b) for b in bs]
    times = [block_mvm_ns(t, b) for b in bs]
    # blocks too big to share a crossbar with each other (pack may halve light ones)
    big = sum(1 for b in bs if holds_a_crossbar_alone(t, op["mvms"], b))
    cells = len(bs) * t.cells_per_xbar if whole_crossbars else sum(f.cells for f in fps)
    return LayerInfo(op.result, op["mvms"], max(times), sum(times), cells, 0 if whole_crossbars else big, tuple(bs))


def layer_infos(module: Module, whole_crossbars: bool = False) -> list[LayerInfo]:
    """Per weight layer with blocks: its copy-0 blocks' figures. whole_crossbars: every block
    counts as a full crossbar of cells (mappings that will not be packed)."""
    by_layer: dict[str, list[Op]] = {}
    for op in module.ops:
        if op.kind == "map.block" and op["copy"] == 0:
            by_layer.setdefault(op.operands[0], []).append(op)
    return [layer_info(module.target, op, by_layer[op.result], whole_crossbars)
            for op in module.ops if op.kind in WEIGHT_KINDS and op.result in by_layer]


def plan_info(t, op: Op, plan, lanes: int, whole_crossbars: bool) -> LayerInfo:
    """`layer_info` of a plan's blocks with `lanes` lanes, figured once per block shape
    (without the blocks themselves: `blocks` is empty)."""
    mvm = total = 0.0
    cells = big = 0
    for shape, n in plan_shapes(plan).items():
        b = shape_block(op.result, shape, lanes)
        fp = block_footprint(t, b)
        block_ns = block_mvm_ns(t, b)
        mvm, total = max(mvm, block_ns), total + n * block_ns
        cells += n * (t.cells_per_xbar if whole_crossbars else fp.cells)
        if not whole_crossbars and holds_a_crossbar_alone(t, op["mvms"], b):
            big += n
    return LayerInfo(op.result, op["mvms"], mvm, total, cells, big, ())
