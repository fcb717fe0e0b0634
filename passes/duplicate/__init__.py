"""duplicate: choose how many copies of each weight layer to make, with CP-SAT.

Copies split a layer's MVMs, so its blocks' loads (MVMs x MVM time) shrink; they cost
crossbar cells. Within a budget of N crossbars of C cells:

- objective=throughput: minimise the period P (the busiest crossbar's load per inference)
  subject to: every block's load <= P; all copies' cells <= fill x N x C; the total load
  (fixed by the partition, up to rounding) <= N x P; blocks too large to share a crossbar
  with each other (over half its rows and half its columns) <= N;
- objective=latency: minimise the longest path through the graph, a weight layer taking
  ceil(MVMs / copies) x its MVM time, under the same cell and large-block limits.

Each layer chooses one candidate: a copy count with its blocks as partitioned, or with
several lanes (small blocks replicated on a crossbar's diagonal, read together), or, for
grouped and depthwise layers (layouts=true), in another layout: fewer groups per diagonal
block or serial blocks, which program fewer empty cells for more reads. Copy choices are
enumerated exactly (only the copy counts where ceil(MVMs / copies) changes) and candidates
no other beats on cells, time, load and big blocks kept, so the model is linear and CP-SAT
proves optimality on typical networks within its deterministic time limit; the status
says whether it did. Other layouts make more and smaller blocks, which pack worse: they
are solved for only where the relaxed bound says they could lower the period by 10%, or
the partition's layouts take 90% of the budget's cells (or do not fit), and kept where
they do lower it that much, or match it with fewer cells on such a tight budget. A layer
given another layout records the partition's (`partition_layout`, `partition_groups`).
A second solve keeps the optimum and uses the partition's layouts where it can, then the
fewest cells, which leaves the packer room (compact: the fewest crossbars whose tiles'
digital units keep up with the period). The result is recorded in module attributes
(`budget`, `period_target_ns`, `duplicate_*`) for `pack`.

compact=true (the `fast` pipeline, for search loops) writes each layer's copies as a
`copies` attribute instead of copy blocks, and counts every block as a crossbar of its own
(no packing follows): the cost model reads the copies from the attribute, so a mapping with
thousands of copies costs no more to build and cost than one with none. `pack` and `place`
expand compact copies into blocks first. bound=false skips the relaxed solve that proves
the period bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cimc import facts as module_facts
from cimc.errors import Infeasible, PipelineError
from cimc.ir import Module
from cimc.mapping import require_blocks
from cimc.passes.chips import run_per_chip, staged, with_stages
from cimc.passes.duplicate.copies import with_compact_copies, with_copies, with_lanes
from cimc.passes.duplicate.floor import digital_keeps_up, no_faster_than_the_floor
from cimc.passes.duplicate.greedy import slowest_first_copies
from cimc.passes.duplicate.infos import OTHER_LAYOUT_GAIN, TIGHT, layer_infos
from cimc.passes.duplicate.layouts import layout_alternatives, plan_ops, with_layouts
from cimc.passes.duplicate.solve import solve_copies
from cimc.passes.pools import run_per_pool


@dataclass(frozen=True)
class DuplicatePass:
    name = "duplicate"
    objective: str = "throughput"
    budget: int = 0  # crossbars; 0: every crossbar of the target
    fill: float = 0.97  # share of the budget's cells the copies may take (room for packing losses)
    time_limit: float = 10.0  # CP-SAT deterministic time units (about seconds of one core)
    compact: bool = False  # copies as layer attributes, every block a crossbar (no packing follows)
    method: str = "cp-sat"  # or "greedy": copies slowest layer first, no solver (objective=throughput only)
    bound: bool = True  # prove the period bound with a relaxed solve
    lanes: bool = True  # small blocks may hold several replicas read at once (block-diagonal)
    layouts: bool = True  # grouped layers may take other layouts than the partition's


    def __post_init__(self):
        if self.objective not in ("throughput", "latency"):
            raise PipelineError(f"duplicate: objective must be throughput or latency, got '{self.objective}'.")
        if self.method not in ("cp-sat", "greedy") or (self.method == "greedy" and self.objective != "throughput"):
            raise PipelineError(f"duplicate: method must be cp-sat, or greedy with objective=throughput; got "
                                f"'{self.method}' with objective={self.objective}.")
        if self.budget < 0 or not 0 < self.fill <= 1 or self.time_limit <= 0:
            raise PipelineError("duplicate: budget must be >= 0, fill in (0, 1], time-limit > 0.")

    def run(self, module: Module) -> Module:
        require_blocks(module, "duplicate")
        if staged(module):
            return run_per_chip(self, module)
        if not (self.budget or module_facts.get(module, "budget")):  # the whole chip: more chips if need be
            fill = 1.0 if self.compact else self.fill
            split = with_stages(module, layer_infos(module, whole_crossbars=self.compact), fill)
            if staged(split):
                return run_per_chip(self, split)
        budget = self.budget or module_facts.get(module, "budget") or module.target.xbars
        if module.target.pools:

            return run_per_pool(replace(self, budget=0), module, budget)
        module = with_lanes(module, {})  # lanes and layouts are chosen afresh
        infos = layer_infos(module, whole_crossbars=self.compact)
        fill = 1.0 if self.compact else self.fill  # no packing losses to leave room for
        alternatives, block_sets = layout_alternatives(self, module, layouts=self.layouts and self.method == "cp-sat")
        relaxed = None  # the proven period bound
        if self.objective == "throughput" and self.bound and not self.compact:
            # with every cell of the budget allowed, the model relaxes every real mapping of
            # this partition and its layouts (block loads, cells, total load, large blocks),
            # so its proven bound is a lower bound on the period
            relaxed = solve_copies(module, infos, budget, "throughput", 1.0, self.time_limit, bound_only=True,
                                   alternatives=alternatives)[2]["bound_ns"]
        if self.method == "greedy":
            cap = int(fill * budget * module.target.cells_per_xbar)
            solve_copies(module, infos, budget, self.objective, fill, self.time_limit, check_only=True,
                         whole_crossbars=self.compact)
            lanes, layouts = {}, {}
            if self.compact:  # a compact copy is a whole crossbar: lanes cost no cells
                most = {name: (k, v) for name, opts in alternatives.items() for tag, k, v in opts if tag[0] == 0}
                infos = [most[i.name][1] if i.name in most else i for i in infos]
                lanes = {name: k for name, (k, _) in most.items()}
            copies, goal_ns = slowest_first_copies(infos, cap, budget)
            facts = {"status": "GREEDY (slowest layer first)"}
        else:
            own = {name: [o for o in opts if o[0][0] == 0] for name, opts in alternatives.items()}
            least = digital_keeps_up(module) if self.compact and self.objective == "throughput" else None
            try:  # the partition's layouts first: more, smaller blocks pack worse
                copies, goal_ns, facts = solve_copies(module, infos, budget, self.objective, fill, self.time_limit,
                                                      alternatives=own, least_cells=least,
                                                      whole_crossbars=self.compact)
            except Infeasible:
                if own == alternatives:
                    raise
                goal_ns, facts = math.inf, {}
            # the partition's layouts leave the packer little room
            tight = facts.get("cells", 0) > TIGHT * budget * module.target.cells_per_xbar
            # other layouts where they are needed or save much (the relaxation says whether
            # they can)
            if own != alternatives and (goal_ns == math.inf or relaxed is None
                                        or relaxed < goal_ns * (1 - OTHER_LAYOUT_GAIN) or tight):
                try:
                    other = solve_copies(module, infos, budget, self.objective, fill, self.time_limit,
                                         alternatives=alternatives, least_cells=least, whole_crossbars=self.compact)
                except Infeasible:
                    if goal_ns == math.inf:
                        raise
                else:
                    # much faster; or as fast with fewer cells where room is tight
                    if other[1] < goal_ns * (1 - OTHER_LAYOUT_GAIN) or \
                            (tight and other[1] <= goal_ns and other[2].get("cells", 0) < facts["cells"]):
                        copies, goal_ns, facts = other
            chosen = facts.pop("choice", {})
            by_tag = {(name, tag): v for name, opts in alternatives.items() for tag, _, v in opts}
            infos = [by_tag[i.name, chosen[i.name]] if i.name in chosen else i for i in infos]
            lanes = {name: k for name, (_, k) in chosen.items() if k > 1}
            layouts = {name: plan_ops(name, block_sets[name][v]) for name, (v, _) in chosen.items() if v}
            if layouts:
                facts["status"] += f"; {len(layouts)} grouped layer(s) in another layout"
            module = with_layouts(module, layouts)
        module = with_lanes(module, lanes)
        if layouts:
            infos = layer_infos(module, whole_crossbars=self.compact)
        if self.objective == "throughput":
            copies, goal_ns, facts = no_faster_than_the_floor(module, infos, copies, goal_ns, facts, self.compact)
        out = with_compact_copies(module, copies) if self.compact else with_copies(module, copies)
        attrs = dict(budget=budget, duplicate_objective=self.objective, duplicate_status=facts["status"],
                     period_target_ns=goal_ns if self.objective == "throughput" else 0.0)
        if relaxed is not None:
            attrs["period_bound_ns"] = relaxed
        return out.with_ops(out.ops, **attrs)
