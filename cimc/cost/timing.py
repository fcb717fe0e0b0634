"""Time of one block: a read (`footprint_read_ns`), one MVM, the load its copy's share of the
layer's MVMs puts on its crossbar; the even split of MVMs over copies (`copy_share`); the least
MVM time any lanes or layout give (for bounds)."""

from __future__ import annotations

import math

from cimc.ir import Op
from cimc.mapping import (
    block_footprint,
    footprint,
    max_lanes,
)
from cimc.ops import DIGITAL_KINDS
from cimc.plans import all_layouts, plan_blocks, plan_shapes, shape_block


def copies_reads(mvms: int, copies: int, lanes: int = 1) -> int:
    """Reads all copies of a layer make per inference, its MVMs split evenly over them
    (`copy_share`), each read doing `lanes` MVMs at once."""
    base, extra = divmod(mvms, copies)
    return extra * -(-(base + 1) // lanes) + (copies - extra) * -(-base // lanes)


def copy_share(mvms: int, copies: int, copy: int) -> int:
    """MVMs that copy `copy` of `copies` performs (the first `mvms % copies` take one more)."""
    return mvms // copies + (1 if copy < mvms % copies else 0)


def block_share(block: Op, mvms: int, copies: int) -> int:
    """MVMs a block's copy performs: its explicit `share`, else an even split."""
    share = block.get("share")
    return share if share is not None else copy_share(mvms, copies, block["copy"])


def footprint_read_ns(target, fp) -> float:
    """Time of the reads that make one MVM on a block of footprint `fp`."""
    return (fp.reads_per_mvm + target.mvm_fill_reads) * target.read_ns(fp.active_cols)


def block_read_ns(target, block: Op) -> float:
    """Time of the reads that make one MVM of the block (of each of its lanes at once)."""
    return footprint_read_ns(target, block_footprint(target, block))


def block_mvm_ns(target, block: Op) -> float:
    """Time per MVM of the block: a block with `lanes` replicas does that many per read."""
    return block_read_ns(target, block) / block.get("lanes", 1)


def block_load_ns(target, block: Op, mvms: int) -> float:
    """Crossbar time of `mvms` MVMs on the block (a last read may fill only some lanes)."""
    lanes = block.get("lanes", 1)
    return (-(-mvms // lanes) if lanes > 1 else mvms) * block_read_ns(target, block)


def one_lane(block: Op) -> Op:
    """The block with one lane (itself when it has one)."""
    return block if block.get("lanes", 1) == 1 else block.with_attrs(lanes=None)


def best_mvm_ns(target, block: Op) -> float:
    """The least time per MVM any number of lanes gives the block (for bounds that hold
    whatever lanes a mapping chooses)."""
    memo = target.footprint_memo  # remembered by the target, per block size and pool
    groups, rows, cols, layout, _, pool = block.block_dims
    key = ("best", groups, rows, cols, layout, pool)
    best = memo.get(key)
    if best is None:
        best = memo[key] = min(
            footprint_read_ns(target, footprint(target, groups * n, rows, cols, layout)) / n
            for n in range(1, max_lanes(target, block) + 1))
    return best


def layout_family(view, op: Op) -> tuple[float, float, float, int, int] | None:
    """Over every layout the passes may give a grouped layer (`partition.all_layouts`), the
    least of: block-read work per MVM of the layer (best lanes), its longest block's time
    per MVM (best lanes), its longest block's MVM with one lane; and the fewest rows and
    columns of a block. None for layers with one layout. Bounds use these, so they hold
    whichever layout duplicate picks."""
    key = ("family", op["groups"], op["rows"], op["cols"])
    memo = view.footprint_memo
    if key not in memo:
        figures = None
        plans = all_layouts(view, op["groups"], op["rows"], op["cols"])
        if plans:
            work, longest, one, rows, cols = [], [], [], [], []
            for plan in plans:
                shapes = plan_shapes(plan)
                blocks = {sh: shape_block(op.result, sh) for sh in shapes}
                best = {sh: best_mvm_ns(view, b) for sh, b in blocks.items()}
                work.append(sum(n * best[sh] for sh, n in shapes.items()))
                longest.append(max(best.values()))
                one.append(max(block_mvm_ns(view, b) for b in blocks.values()))
                fps = [block_footprint(view, b) for b in blocks.values()]
                rows.append(min(f.rows for f in fps))
                cols.append(min(f.cols for f in fps))
            figures = (min(work), min(longest), min(one), min(rows), min(cols))
        memo[key] = figures
    return memo[key]


def partition_mvm_ns(view, op: Op, first: list) -> float:
    """The longest one-lane block MVM of the layer as partitioned: its blocks, or, where
    duplicate gave it another layout, the partition's (`partition_layout`, `partition_groups`
    per block)."""
    layout = op.get("partition_layout")
    if layout is not None:
        per = op["partition_groups"]
        plan = plan_blocks(view, op["groups"], op["rows"], op["cols"], layout, max_groups=per)
        return max(block_mvm_ns(view, shape_block(op.result, sh)) for sh in plan_shapes(plan))
    return max((block_mvm_ns(view, b) for b in first), default=0.0)


def block_mvm_parts(target, block: Op) -> tuple[float, float, float]:
    """Energy (pJ) of one MVM of a block: (DACs and row periphery, the array, the ADCs).
    Every row is driven once per input digit, also when the rows are read in parts; every
    read converts its active columns; a block with lanes shares a read among its lanes."""
    fp = block_footprint(target, block)
    n = fp.reads_per_mvm // fp.row_splits
    lanes = block.get("lanes", 1)
    return (n * fp.rows * target.row_read_pj / lanes,
            n * fp.rows * fp.active_cols * target.cell_read_fj * 1e-3 / lanes,
            fp.reads_per_mvm * fp.active_cols * target.adc_conversion_pj / lanes)


def digital_ops(module) -> int:
    """The element operations of an inference's digital ops."""
    return sum(op.get("ops", 0) for op in module.ops if op.kind in DIGITAL_KINDS)


def digital_ns(target, ops: float, tiles: int) -> float:
    """Time the digital units of `tiles` tiles take for `ops` element operations split evenly."""
    return ops / (target.digital_ops_per_ns * tiles)


def tiles_for_digital(target, ops: float, period_ns: float) -> int:
    """The fewest tiles whose digital units do `ops` element operations within `period_ns`."""
    return math.ceil(ops / (target.digital_ops_per_ns * period_ns) * (1 - 1e-9))
