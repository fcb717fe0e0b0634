"""pack: place every block (copies included) on crossbars, several per crossbar.

Blocks of any layers share a crossbar at non-overlapping rectangles. A crossbar's reads are
serial, so its load (the sum of its blocks' loads: MVMs x MVM time) sets the period.

With duplicate's throughput facts (`period_target_ns`, `duplicate_status`, `period_bound_ns`),
pack re-chooses the copies itself while it packs (`period.search_period`): it bisects the
period between the proven bound (or the digital units' floor) and duplicate's target, and at
each period water-fills (`waterfill`): light layers first, one copy each, then the heavy
layers' copies poured into the time left, each taking the MVMs (its `share`) the time allows;
the fewest crossbars that reach the period win, the network's period is balanced against the
crossbars', and relieving (`relieve`) hands MVMs of the busiest crossbar to new copies in
free spots. Without those facts (latency, or a hand-made mapping) the blocks are packed first
fit (`firstfit`: MaxRects best-short-side-fit, larger share of a crossbar first), re-choosing
fewer copies at most `retries` times when the budget is short; one copy per layer is the last
resort, and if even that does not fit, the model is `Infeasible`. Small instances
(`exact_blocks` or fewer) go to CP-SAT (`exact`) to prove the crossbar count or use one
fewer. Emission (`emit`) maps crossbars to tiles (in order, spread, round robin; the cost
model scores them), writes `map.place`, and `spread` adds `map.digital` spreads where the
tiles' digital units would set the period.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimc import facts as module_facts
from cimc.cost import period_floor_ns
from cimc.errors import PipelineError
from cimc.ir import Module
from cimc.mapping import holds_a_crossbar_alone, require_blocks
from cimc.passes.chips import run_per_chip, staged
from cimc.passes.digital import spread_digital
from cimc.passes.duplicate.copies import expand_copies
from cimc.passes.pack.emit import emit
from cimc.passes.pack.exact import exact_packing
from cimc.passes.pack.firstfit import crossbar_lower_bound, pack_with_retries
from cimc.passes.pack.items import Packing, items_of, neighbours_of
from cimc.passes.pack.period import search_period
from cimc.passes.pools import run_per_pool


@dataclass(frozen=True)
class PackPass:
    name = "pack"
    max_blocks: int = 0  # blocks per crossbar at most; 0: no limit
    separate_copies: bool = False  # never put two copies of one layer in one crossbar
    separate_neighbours: bool = False  # never put a layer next to its producer or consumer layers
    exact_blocks: int = 40  # CP-SAT tries to improve packings of at most this many blocks
    time_limit: float = 2.0  # CP-SAT deterministic time for that
    retries: int = 6
    window: int = 256  # open crossbars tried per block (keeps large models linear)
    search_steps: int = 12  # packings tried while searching the period
    slack: float = 0.0  # accept this much more than the best period found, for fewer crossbars
    spread: bool = True  # use more tiles when their digital units would be slower than the crossbars

    def __post_init__(self):
        if self.max_blocks < 0 or self.retries < 0 or self.exact_blocks < 0 or self.window < 1 or self.search_steps < 2 \
                or not 0 <= self.slack <= 10:
            raise PipelineError("pack: max-blocks, retries, exact-blocks must be >= 0, window >= 1, search-steps >= 2, "
                                "slack in [0, 10].")

    def run(self, module: Module) -> Module:
        require_blocks(module, "pack")
        if staged(module):
            return run_per_chip(self, module)
        module = expand_copies(module)
        t = module.target
        budget = module_facts.get(module, "budget") or None
        if t.pools:
            return run_per_pool(self, module, budget)
        neighbours = neighbours_of(module) if self.separate_neighbours else {}
        period = module_facts.get(module, "period_target_ns")
        objective = module_facts.get(module, "duplicate_objective")
        if objective == "throughput" and period > 0:
            floor = period_floor_ns(module)
            if module_facts.duplicate_found_no_room(module):
                # the duplicate pass saw no room for a whole copy's cells, but copies of small
                # heavy layers may still fit beside other blocks: search from the proven bound
                period = min(period, module_facts.get(module, "period_bound_ns") or period)
            # crossbars faster than the floor buy nothing: search from there, fewest crossbars
            # no packing beats the proven bound (every cell of the budget allowed): where the
            # target packs at once, the search bisects down towards it
            lower = max(module_facts.get(module, "period_bound_ns"), floor)
            packing = alone_under_the_floor(module, budget, floor) or \
                search_period(self, module, max(period, floor), budget, neighbours, floor, lower)
        else:
            packing = pack_with_retries(self, module, budget, objective, neighbours)
        module, items, bins, where, cap = packing.module, packing.items, packing.bins, packing.where, packing.period_ns
        layer_cap, method = packing.layer_cap, packing.method
        status = "heuristic"
        lower = crossbar_lower_bound(t, items, cap)
        if len(bins) == lower:
            status = "optimal (meets the lower bound)"
        elif len(items) <= self.exact_blocks:
            exact = exact_packing(self, t, items, cap, len(bins) - 1, layer_cap, neighbours)
            if exact is None:
                status = "optimal (CP-SAT: no packing in one crossbar fewer)"
            elif exact == "unknown":
                status = "heuristic (CP-SAT undecided)"
            else:
                bins, where = exact
                status = "improved by CP-SAT"
                method += " + cp-sat"
        placed = emit(self, module, items, where, method, status, lower)
        return spread_digital(placed) if self.spread and not t.pools else placed


def alone_under_the_floor(module: Module, budget: int | None, floor: float) -> Packing | None:
    """One copy of every layer whose blocks each hold a crossbar alone (big, not to be halved),
    with every crossbar under the period floor: one block per crossbar is then the fewest
    crossbars and the floor's period, and no search can do better (a stage of a transformer
    split over chips, whose period the digital units or the buffers set)."""
    t = module.target
    defs = module.by_name()
    blocks = [op for op in module.ops if op.kind == "map.block"]
    if not blocks or (budget and len(blocks) > budget) or any(b["copy"] for b in blocks) or \
            not all(holds_a_crossbar_alone(t, defs[b.operands[0]]["mvms"], b) for b in blocks):
        return None
    items = items_of(module)
    cap = max(it.load_ns for it in items)
    if cap > floor:
        return None
    return Packing(module, items, [None] * len(items), {k: (k, 0, 0) for k in range(len(items))}, cap,
                   "one block per crossbar (each holds one alone, all under the period floor)")
