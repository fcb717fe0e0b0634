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
from cimc.mapping import WEIGHT_KINDS, xbar_full_area_um2
from cimc.plans import choose_layout
from cimc.targets import Target

GROUPED = ("auto", "diag", "serial", "per-group", "dense")


def choose_pools(target: Target, layers: list[Op], grouped: str, pool: str) -> dict[str, tuple[int, list]]:
    """Per weight layer: (pool, block plan)."""
    n = len(target.pool_list)
    if pool != "auto":
        p = int(pool)
        view = target.pool(p)
        return {op.result: (p, choose_layout(view, op["groups"], op["rows"], op["cols"], grouped)) for op in layers}
    options = {op.result: [(len(plan) * xbar_full_area_um2(target.pool(p)), len(plan), p, plan)
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
