"""The mapping model shared by the passes, the verifier and the cost model.

A weight layer is `groups` matrices of `rows` x `cols` logical weights; each runs `mvms`
matrix-vector products per inference. A block is a sub-matrix of a run of groups placed in
one crossbar:

- layout "diag": the groups of the block sit on the diagonal of the crossbar, each with
  its own rows and columns, and are all read in one crossbar read (zeros elsewhere);
- layout "serial": the groups share the same rows and sit side by side in columns; a read
  drives one group's inputs, so the groups are read one after another (the
  channel-serial depthwise mapping);
- layout "dense": the layer as one dense matrix (groups x rows) x (groups x cols), zero
  off the diagonal, cut into crossbar tiles as a dense layer is (PIMCOMP-NN's and
  NeuroSim's mapping of grouped layers): a block holds the rows of its groups and the
  columns `cols` of the dense matrix (of any groups), zero blocks included; every block is
  read in full.

A "diag" block may hold `lanes` replicas of itself, also on the diagonal: one read then
does `lanes` MVMs of the layer (for different output positions), as a block-diagonal
matrix of the same weights does. A small heavy block reads `lanes` times faster in the
same crossbar, at `lanes` times its cells.

A logical weight column takes `target.cols_per_weight` physical columns (bit slices, times
two for a differential pair); the "offset" encoding adds one reference column per block
(the "bias" encoding removes the bias digitally and needs none).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from cimc.errors import PipelineError
from cimc.targets import Target

WEIGHT_KINDS = ("nn.conv", "nn.conv_transpose", "nn.matmul", "nn.rnn")
LAYOUTS = ("diag", "serial", "dense")


@dataclass(frozen=True)
class Footprint:
    rows: int  # physical rows used
    cols: int  # physical columns used
    reads_per_mvm: int  # crossbar reads one MVM of the layer needs on this block
    active_cols: int  # columns converted per read
    row_splits: int = 1  # reads that share one input digit (partial reads of `rows_per_read` rows)

    @functools.cached_property
    def cells(self) -> int:
        return self.rows * self.cols


def footprint(target: Target, groups: int, rows: int, cols: int, layout: str) -> Footprint:
    """Physical size of a block of `groups` groups, each `rows` x `cols` logical weights."""
    key = (groups, rows, cols, layout)
    memo = target.footprint_memo
    fp = memo.get(key)
    if fp is None:
        fp = memo[key] = _footprint(target, groups, rows, cols, layout)
    return fp


def _footprint(target: Target, groups: int, rows: int, cols: int, layout: str) -> Footprint:
    offset = target.offset_cols
    phys_cols = groups * cols * target.cols_per_weight + offset
    if layout == "diag":
        split = target.row_reads(groups * rows)
        return Footprint(groups * rows, phys_cols, target.reads_per_mvm * split, phys_cols, split)
    if layout == "dense":  # `cols` are the block's columns of the dense matrix
        split = target.row_reads(groups * rows)
        phys_cols = cols * target.cols_per_weight + offset
        return Footprint(groups * rows, phys_cols, target.reads_per_mvm * split, phys_cols, split)
    # serial: one group per read, its columns only are converted
    split = target.row_reads(rows)
    return Footprint(rows, phys_cols, target.reads_per_mvm * groups * split, cols * target.cols_per_weight + offset,
                     split)


def weight_boxes(block, layer_cols: int) -> list[tuple[int, int, int, int, int, int]]:
    """The weights a block holds, as boxes (g0, g1, r0, r1, c0, c1) of groups, rows and
    per-group columns: its own ranges, or for a "dense" block, where its groups' rows meet
    its dense columns (none for a block off the diagonal)."""
    g0, g1 = block["groups"]
    r0, r1 = block["rows"]
    c0, c1 = block["cols"]
    if block["layout"] != "dense":
        return [(g0, g1, r0, r1, c0, c1)]
    boxes = []
    for g in range(max(g0, c0 // layer_cols), min(g1, -(-c1 // layer_cols))):
        lo, hi = max(c0, g * layer_cols) - g * layer_cols, min(c1, (g + 1) * layer_cols) - g * layer_cols
        if boxes and (lo, hi) == (0, layer_cols) and boxes[-1][4:] == (0, layer_cols) and boxes[-1][1] == g:
            boxes[-1] = (boxes[-1][0], g + 1, r0, r1, 0, layer_cols)  # whole groups side by side: one box
        else:
            boxes.append((g, g + 1, r0, r1, lo, hi))
    return boxes


def block_footprint(target: Target, block) -> Footprint:
    """Footprint of a `map.block` op (remembered by the target, per block size: this runs for
    every block many times per compile)."""
    dims = block.block_dims
    memo = target.footprint_memo
    fp = memo.get(dims)
    if fp is None:
        groups, rows, cols, layout, lanes, _ = dims
        fp = memo[dims] = footprint(target, groups * lanes, rows, cols, layout)
    return fp


def splittable_big_block(target: Target, mvms: int, block) -> bool:
    """A block over half a crossbar in both directions, of a layer with few MVMs for the
    cells it holds (light): `pack` may cut it into two column halves, which then share
    crossbars with other blocks. Bounds must not count it as needing a crossbar alone."""
    fp = block_footprint(target, block)
    c0, c1 = block["cols"]
    return mvms * fp.reads_per_mvm < 4 * target.xbar_rows and is_big_block(target, fp.rows, fp.cols) and c1 - c0 >= 2


def holds_a_crossbar_alone(target: Target, mvms: int, block) -> bool:
    """A big block pack may not halve: no other big block shares its crossbar."""
    fp = block_footprint(target, block)
    return is_big_block(target, fp.rows, fp.cols) and not splittable_big_block(target, mvms, block)


def max_lanes(target: Target, block) -> int:
    """The most replicas of a "diag" block (its `lanes` ignored) one crossbar holds on its
    diagonal; 1 for "serial" blocks."""
    a = block._by_key
    if a["layout"] != "diag":
        return 1
    view = pool_target(target, block)
    g0, g1 = a["groups"]
    r0, r1 = a["rows"]
    c0, c1 = a["cols"]
    key = ("lanes", g1 - g0, r1 - r0, c1 - c0)
    k = view.footprint_memo.get(key)
    if k is None:
        one = footprint(view, g1 - g0, r1 - r0, c1 - c0, "diag")
        k = max(1, min(view.xbar_rows // max(one.rows, 1), view.xbar_cols // max(one.cols, 1)))
        while k > 1 and footprint(view, (g1 - g0) * k, r1 - r0, c1 - c0, "diag").cols > view.xbar_cols:
            k -= 1  # the offset column is shared: check the real width
        view.footprint_memo[key] = k
    return k


def xbar_full_area_um2(view: Target) -> float:
    """Area of one crossbar of a (one-pool) target with its periphery and ADCs."""
    return view.xbar_area_um2 + view.xbar_periph_area_um2 + view.adcs_per_xbar * view.adc_area_um2


def require_blocks(module, pass_name: str) -> None:
    """A mapping pass needs the partition's blocks: say so when there are none."""
    if not any(op.kind == "map.block" for op in module.ops):
        raise PipelineError(f"{pass_name}: the module has no blocks; run 'partition' first.")


def block_pool(target: Target, block) -> int:
    """The crossbar pool a block is mapped to (0 on a one-pool target)."""
    return block.get("pool", 0) if target.pools else 0


def pool_target(target: Target, block) -> Target:
    """The target as the block's pool sees it (its crossbar size and count)."""
    return target.pool(block_pool(target, block)) if target.pools else target


def copy_name(layer: str, block_name: str, copy: int) -> str:
    """The name of copy `copy` of the copy-0 block `block_name` of `layer` (`%L.b3` -> `%L.c2.b3`)."""
    return block_name if copy == 0 else f"{layer}.c{copy}.{block_name[len(layer) + 1:]}"


def is_big_block(target: Target, rows: int, cols: int) -> bool:
    """Over half a crossbar in both directions: no two such blocks share a crossbar."""
    return 2 * rows > target.xbar_rows and 2 * cols > target.xbar_cols


def leaves_no_room(target: Target, rows: int, cols: int, min_rows: int, min_cols: int) -> bool:
    """Whether a rows x cols block leaves no room in its crossbar for a block of at least
    min_rows x min_cols (it fits neither below nor beside it)."""
    return min_rows > target.xbar_rows - rows and min_cols > target.xbar_cols - cols


def weight_cells(target: Target, layer) -> int:
    """Cells that hold this layer's weights (one copy), bit slices and sign columns included."""
    return layer["groups"] * layer["rows"] * layer["cols"] * target.cols_per_weight


def max_cols_per_block(target: Target) -> int:
    """Logical weight columns that fit one crossbar width."""
    return (target.xbar_cols - target.offset_cols) // target.cols_per_weight


def crossbars_lower_bound(target: Target, total_cells: int) -> int:
    return math.ceil(total_cells / target.cells_per_xbar)
