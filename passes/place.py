"""place: put every block on a crossbar of its own, at row 0, column 0.

This is the ISAAC-like baseline placement (no packing, no sharing): crossbars are handed
out in op order, filling tile 0 first. A model needing more crossbars than one chip has
spills onto further chips of the same kind (`overflow=chips`, the default, as ISAAC maps
large networks over several chips: tile t is on chip t // tiles, and the report says how
many chips it took), or is `Infeasible` with the count it needs (`overflow=error`).
With several crossbar pools, each pool's blocks take that pool's crossbars in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimc.errors import Infeasible, PipelineError
from cimc.ir import Module, Op
from cimc.mapping import block_pool, require_blocks
from cimc.passes.chips import run_per_chip, staged
from cimc.passes.duplicate.copies import expand_copies


@dataclass(frozen=True)
class PlacePass:
    name = "place"
    overflow: str = "chips"

    def __post_init__(self):
        if self.overflow not in ("chips", "error"):
            raise PipelineError(f"place: overflow must be 'chips' or 'error', got '{self.overflow}'.")

    def run(self, module: Module) -> Module:
        require_blocks(module, "place")
        if staged(module):  # split over chips by duplicate: each stage on its chip's tiles
            return run_per_chip(self, module)
        module = expand_copies(module)
        target = module.target
        blocks = [op for op in module.ops if op.kind == "map.block"]
        place = []
        used = [0] * len(target.pool_list)
        for b in blocks:
            p = block_pool(target, b)
            n = target.pool_list[p][2]
            i = used[p]
            used[p] += 1
            place.append(Op.make("map.place", None, [b.result], tile=i // n, xbar=target.pool_offset(p) + i % n,
                                 at=(0, 0)))
        for p, (rows, cols, n) in enumerate(target.pool_list):
            if used[p] > n * target.tiles and self.overflow == "error":
                what = f"{rows}x{cols} crossbars (pool {p})" if target.pools else "crossbars"
                raise Infeasible(
                    f"model '{module.name}' needs {used[p]} {what} with one block per crossbar, but target "
                    f"'{target.name}' has {n * target.tiles} ({target.tiles} tiles x {n}). "
                    f"Use a larger target (e.g. --set tiles={-(-used[p] // n)}) "
                    "or let it span chips (place{overflow=chips}).")
        ops = [op for op in module.ops if op.kind not in ("map.place", "map.digital") and op.namespace != "cost"]
        # a block's place op follows the block, keeping each layer's mapping together in the text
        out: list[Op] = []
        by_block = {p.operands[0]: p for p in place}
        for op in ops:
            out.append(op)
            if op.kind == "map.block":
                out.append(by_block[op.result])
        return module.with_ops(out)
