"""Block plans: how a layer's matrices are cut into crossbar-sized blocks.

A plan is a list of `PlannedBlock`s (the groups, rows and logical columns a block holds, and
its layout); `plan_blocks` makes one for a layout, `all_layouts` every one the passes may give
a grouped layer, `choose_layout` the partition's choice. The partition, duplicate (other
layouts), and the cost model's bounds (which must hold whatever layout duplicate picks) all
read plans from here. `plan_shapes` counts a plan's distinct block shapes; `shape_block` is
a stand-in block of one shape, for its figures.
"""

from __future__ import annotations

from typing import NamedTuple

from cimc.ir import Op
from cimc.mapping import footprint, max_cols_per_block
from cimc.targets import Target


class PlannedBlock(NamedTuple):
    groups: tuple[int, int]  # [lo, hi) of the layer's groups
    rows: tuple[int, int]  # [lo, hi) of each group's rows
    cols: tuple[int, int]  # [lo, hi) of each group's logical columns (of the dense matrix for "dense")
    layout: str  # diag, serial or dense


def cuts(n: int, limit: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + limit, n)) for lo in range(0, n, limit)]


def plan_blocks(target: Target, groups: int, rows: int, cols: int, layout: str, max_groups: int | None = None):
    """Blocks (groups range, rows range, cols range, layout) for one layer in one layout,
    at most `max_groups` groups per block."""
    col_limit = max_cols_per_block(target)
    row_cuts, col_cuts = cuts(rows, target.xbar_rows), cuts(cols, col_limit)
    if layout == "dense":  # row bands of whole groups, against every column tile of the dense matrix
        per = max(1, min(target.xbar_rows // rows, groups, max_groups or groups)) if len(row_cuts) == 1 else 1
        return [PlannedBlock((g0, min(g0 + per, groups)), r, c, layout)
                for g0 in range(0, groups, per) for r in row_cuts for c in cuts(groups * cols, col_limit)]
    # groups per block: as many as fit the crossbar in this layout
    if len(row_cuts) > 1 or len(col_cuts) > 1:
        per = 1
    elif layout == "diag":
        per = min(target.xbar_rows // rows, col_limit // cols, groups)
    else:
        per = min(col_limit // cols, groups)
    per = max(1, min(per, max_groups or per))
    return [PlannedBlock((g0, min(g0 + per, groups)), r, c, layout)
            for g0 in range(0, groups, per) for r in row_cuts for c in col_cuts]


def all_layouts(target: Target, groups: int, rows: int, cols: int) -> list[list]:
    """Every block plan cimc's passes may give a grouped layer whose groups each fit one
    block: on the diagonal and serial, with the most groups a crossbar takes per block and
    halved down to one (one group per serial block is the diagonal's one). [] when a group
    needs several blocks (or there is one group)."""
    if groups < 2 or rows > target.xbar_rows or cols > max_cols_per_block(target):
        return []
    plans, seen = [], set()
    for layout in ("diag", "serial"):
        per = plan_blocks(target, groups, rows, cols, layout)[0][0]
        per = per[1] - per[0]
        while per >= (1 if layout == "diag" else 2):
            plan = plan_blocks(target, groups, rows, cols, layout, max_groups=per)
            key = tuple((g, lay) for g, _, _, lay in plan)
            if key not in seen:
                seen.add(key)
                plans.append(plan)
            per = per // 2 if per > 1 else 0
    return plans


def choose_layout(target: Target, groups: int, rows: int, cols: int, grouped: str) -> list:
    if groups == 1 or grouped == "diag":
        return plan_blocks(target, groups, rows, cols, "diag")
    if grouped == "per-group":
        return plan_blocks(target, groups, rows, cols, "diag", max_groups=1)
    if grouped in ("serial", "dense"):
        return plan_blocks(target, groups, rows, cols, grouped)

    def score(plan):
        reads = max(footprint(target, g[1] - g[0], r[1] - r[0], c[1] - c[0], lay).reads_per_mvm
                    for g, r, c, lay in plan)
        return (len(plan) * reads, len(plan))

    return min((plan_blocks(target, groups, rows, cols, lay) for lay in ("diag", "serial")), key=score)


def plan_shapes(plan) -> dict[tuple, int]:
    """The block shapes (groups, rows range, cols range, layout) of a block plan (as `plan_blocks` makes), with how many blocks have each."""
    shapes: dict[tuple, int] = {}
    for g, r, c, lay in plan:
        key = (g[1] - g[0], r, c, lay)
        shapes[key] = shapes.get(key, 0) + 1
    return shapes


def shape_block(layer: str, shape, lanes: int = 1):
    """A stand-in copy-0 block of one of `plan_shapes`' shapes (for its figures)."""
    n, r, c, lay = shape
    return Op.make("map.block", None, [layer], copy=0, groups=(0, n), rows=r, cols=c, layout=lay,
                   **({"lanes": lanes} if lanes > 1 else {}))
