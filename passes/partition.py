"""partition: cut each weight layer's matrices into crossbar-sized blocks (copy 0).

Rows are cut every `xbar_rows`; logical columns every `max_cols_per_block` (a weight's bit
slices, and its differential pair, stay in one crossbar). Grouped and depthwise layers
choose, by `grouped`:
- "diag": several groups on the diagonal of one crossbar, all read at once;
- "serial": groups side by side sharing rows, read one group after another
  (few crossbars, many reads);
- "per-group": every group in its own blocks (diag with one group per block);
- "dense": the layer as one dense, block-diagonal matrix cut into crossbar tiles, zero tiles
  included (PIMCOMP-NN's and NeuroSim's mapping), for comparing with them;
- "auto" (default): of diag and serial, the one with the smaller crossbars x reads
  product, then the fewer crossbars.
Existing map.* and cost.* ops (and the layers' `copies` and `partition_*`) are dropped:
partition starts a mapping afresh.

On a target with several crossbar pools (target key `pools`), each layer goes to one pool
(`pool`): "auto" (default) takes, layers in decreasing size, the pool whose crossbars its
blocks occupy with the least area (fewer blocks on a tie) among those with crossbars left
on the chip, else the least-area pool; a number puts every layer in that pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimc.errors import PipelineError, VerifyError
from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, footprint, max_cols_per_block
from cimc.targets import Target

GROUPED = ("auto", "diag", "serial", "per-group", "dense")


def _cuts(n: int, limit: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + limit, n)) for lo in range(0, n, limit)]


def plan_blocks(target: Target, groups: int, rows: int, cols: int, layout: str, max_groups: int | None = None):
    """Blocks (groups range, rows range, cols range, layout) for one layer in one layout,
    at most `max_groups` groups per block."""
    col_limit = max_cols_per_block(target)
    row_cuts, col_cuts = _cuts(rows, target.xbar_rows), _cuts(cols, col_limit)
    if layout == "dense":  # row bands of whole groups, against every column tile of the dense matrix
        per = max(1, min(target.xbar_rows // rows, groups, max_groups or groups)) if len(row_cuts) == 1 else 1
        return [((g0, min(g0 + per, groups)), r, c, layout)
                for g0 in range(0, groups, per) for r in row_cuts for c in _cuts(groups * cols, col_limit)]
    # groups per block: as many as fit the crossbar in this layout
    if len(row_cuts) > 1 or len(col_cuts) > 1:
        per = 1
    elif layout == "diag":
        per = min(target.xbar_rows // rows, col_limit // cols, groups)
    else:
        per = min(col_limit // cols, groups)
    per = max(1, min(per, max_groups or per))
    return [((g0, min(g0 + per, groups)), r, c, layout)
            for g0 in range(0, groups, per) for r in row_cuts for c in col_cuts]


def all_layouts(target: Target, groups: int, rows: int, cols: int) -> list[list]:
    """Every block plan cimc's passes may give a grouped layer whose groups each fit one
    block: on the diagonal and serial, with the most groups a crossbar takes per block and
    halved down to one (one group per serial block is the diagonal's one). [] when a group
    needs several blocks (or there is one group)."""
    from cimc.mapping import max_cols_per_block

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


def xbar_area_um2(view: Target) -> float:
    """Area of one crossbar of a (one-pool) target with its periphery and ADCs."""
    return view.xbar_area_um2 + view.xbar_periph_area_um2 + view.adcs_per_xbar * view.adc_area_um2


def choose_pools(target: Target, layers: list[Op], grouped: str, pool: str) -> dict[str, tuple[int, list]]:
    """Per weight layer: (pool, block plan)."""
    n = len(target.pool_list)
    if pool != "auto":
        p = int(pool)
        view = target.pool(p)
        return {op.result: (p, choose_layout(view, op["groups"], op["rows"], op["cols"], grouped)) for op in layers}
    options = {op.result: [(len(plan) * xbar_area_um2(target.pool(p)), len(plan), p, plan)
                           for p in range(n)
                           for plan in [choose_layout(target.pool(p), op["groups"], op["rows"], op["cols"], grouped)]]
               for op in layers}
    left = {p: cnt * target.tiles for p, (_, _, cnt) in enumerate(target.pool_list)}
    chosen = {}
    for name in sorted(options, key=lambda k: (-min(o[0] for o in options[k]), k)):
        ranked = sorted(options[name], key=lambda o: o[:3])
        area, blocks, p, plan = next((o for o in ranked if o[1] <= left[o[2]]), ranked[0])
        left[p] -= blocks
        chosen[name] = (p, plan)
    return chosen


@dataclass(frozen=True)
class PartitionPass:
    name = "partition"
    grouped: str = "auto"
    pool: str = "auto"  # pools: "auto" or the index of the pool every layer goes to

    def __post_init__(self):
        if self.grouped not in GROUPED:
            raise PipelineError(f"partition: grouped must be one of {', '.join(GROUPED)}, got '{self.grouped}'.")
        if self.pool != "auto" and not str(self.pool).isdigit():
            raise PipelineError(f"partition: pool must be 'auto' or a pool number, got '{self.pool}'.")

    def run(self, module: Module) -> Module:
        target = module.target
        layers = [op for op in module.ops if op.kind in WEIGHT_KINDS]
        for op in layers:
            if op.get("rows") is None:
                raise VerifyError(f"%{op.result}: {op.kind} has no matrix view; run 'lower' before 'partition'.")
        if self.pool != "auto" and int(self.pool) >= len(target.pool_list):
            raise PipelineError(f"partition: pool {self.pool}, but target '{target.name}' has "
                                f"{len(target.pool_list)} crossbar pool(s) (0..{len(target.pool_list) - 1}).")
        if target.pools:
            plans = choose_pools(target, layers, self.grouped, self.pool)
        else:
            plans = {op.result: (None, choose_layout(target, op["groups"], op["rows"], op["cols"], self.grouped))
                     for op in layers}
        ops: list[Op] = []
        for op in module.ops:
            if op.namespace in ("map", "cost"):
                continue
            if op.kind in WEIGHT_KINDS and (op.get("copies") is not None or op.get("partition_layout") is not None):
                op = op.with_attrs(copies=None, partition_layout=None, partition_groups=None)  # a mapping's
            ops.append(op)
            if op.result not in plans:
                continue
            p, plan = plans[op.result]
            extra = {} if p is None else {"pool": p}
            for i, (g, r, c, layout) in enumerate(plan):
                ops.append(Op.make("map.block", f"{op.result}.b{i}", [op.result], copy=0, groups=g, rows=r, cols=c,
                                   layout=layout, **extra))
        return module.with_ops(ops)
