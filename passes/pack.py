"""pack: place every block (copies included) on crossbars, several per crossbar.

Blocks of any layers share a crossbar at non-overlapping rectangles. A crossbar's reads
are serial, so its load (the sum of its blocks' loads: MVMs x MVM time) must stay within
the period the duplicate pass aimed at (`period_target_ns`; without it, the longest
block load, so packing never slows the pipeline down).

Method: MaxRects best-short-side-fit, blocks in decreasing order of their larger share of
a crossbar (cells or load), each into the open crossbar where it fits best, else a new
one. Small instances (`exact_blocks` or fewer) are then handed to CP-SAT (NoOverlap2D per
crossbar over optional intervals, load per crossbar) to prove the count or use one fewer.
When the blocks do not fit the budget, the copies are re-chosen with fewer cells (by the
duplicate pass's own model) and packed again, at most `retries` times; the last resort is
one copy per layer; if even that does not fit, the model is `Infeasible`.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import defaultdict
from dataclasses import dataclass

from cimc import facts as module_facts
from cimc.errors import Infeasible, PipelineError
from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, block_footprint, require_blocks, splittable_big_block
from cimc.passes.digital import spread_digital
from cimc.passes.maxrects import Crossbar

EPS = 1e-6


@dataclass
class _Item:
    op: Op
    layer: str
    copy: int
    h: int
    w: int
    load_ns: float


def _items(module: Module) -> list[_Item]:
    from cimc.cost import block_load_ns, block_share

    t = module.target
    defs = module.by_name()
    copies: dict[str, int] = defaultdict(int)
    blocks = [op for op in module.ops if op.kind == "map.block"]
    for b in blocks:
        copies[b.operands[0]] = max(copies[b.operands[0]], b["copy"] + 1)
    items = []
    for b in blocks:
        fp = block_footprint(t, b)
        layer = b.operands[0]
        n = block_share(b, defs[layer]["mvms"], copies[layer])
        items.append(_Item(b, layer, b["copy"], fp.rows, fp.cols, block_load_ns(t, b, n)))
    return items


def _copy_name(layer: str, block: Op, copy: int) -> str:
    """Name of copy `copy` of a copy-0 block."""
    return block.result if copy == 0 else f"{layer}.c{copy}.{block.result[len(layer) + 1:]}"


def with_shares(module: Module, plan: dict) -> Module:
    """The module with the copies and MVM shares of a water-filling plan: copy k of a
    layer gets `share` MVMs on all its blocks; layers not in the plan keep one copy."""
    from cimc.passes.duplicate import with_copies

    shares = plan["shares"]
    m = with_copies(module, {name: len(v) for name, v in shares.items()})
    ops = []
    for op in m.ops:
        if op.kind == "map.block" and op.operands[0] in shares:
            op = op.with_attrs(share=shares[op.operands[0]][op["copy"]])
        ops.append(op)
    return m.with_ops(ops)


def split_big_light_blocks(module: Module) -> Module:
    """Cut blocks over half a crossbar in both directions, of layers with few MVMs per
    cell, into two column halves (the layer's blocks are renumbered)."""
    t = module.target
    defs = module.by_name()
    out, counter = [], {}
    changed = False
    for op in module.ops:
        if op.kind != "map.block" or op["copy"] != 0:
            if op.kind not in ("map.place", "map.digital") and not (op.kind == "map.block" and op["copy"] != 0):
                out.append(op)
            continue
        layer = defs[op.operands[0]]
        c0, c1 = op["cols"]
        pieces = [op["cols"]]
        if splittable_big_block(t, layer["mvms"], op):
            mid = (c0 + c1) // 2
            pieces, changed = [(c0, mid), (mid, c1)], True
        for cols in pieces:
            k = counter.get(layer.result, 0)
            counter[layer.result] = k + 1
            out.append(Op(op.kind, f"{layer.result}.b{k}", op.operands, op.with_attrs(cols=cols).attrs))
    return module.with_ops(out) if changed else module


def _neighbours(module: Module) -> dict[str, set[str]]:
    g = module.graph()
    weight = {op.result for op in module.ops if op.kind.startswith("nn.") and op.get("rows") is not None}
    out: dict[str, set[str]] = defaultdict(set)
    for name in weight:
        # nearest weight layers up and down the graph, through digital ops
        for step in (g.successors, g.predecessors):
            seen, todo = set(), list(step(name))
            while todo:
                n = todo.pop()
                if n in seen:
                    continue
                seen.add(n)
                if n in weight:
                    out[name].add(n)
                else:
                    todo.extend(step(n))
    return out


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
        from cimc.passes.duplicate import expand_copies

        require_blocks(module, "pack")
        module = expand_copies(module)
        t = module.target
        budget = module_facts.get(module, "budget") or None
        if t.pools:
            from cimc.passes.pools import run_per_pool

            return run_per_pool(self, module, budget)
        neighbours = _neighbours(module) if self.separate_neighbours else {}
        period = module_facts.get(module, "period_target_ns")
        objective = module_facts.get(module, "duplicate_objective")
        if objective == "throughput" and period > 0:
            from cimc.cost import period_floor_ns

            floor = period_floor_ns(module)
            if module_facts.duplicate_found_no_room(module):
                # the duplicate pass saw no room for a whole copy's cells, but copies of small
                # heavy layers may still fit beside other blocks: search from the proven bound
                period = min(period, module_facts.get(module, "period_bound_ns") or period)
            # crossbars faster than the floor buy nothing: search from there, fewest crossbars
            # no packing beats the proven bound (every cell of the budget allowed): where the
            # target packs at once, the search bisects down towards it
            lower = max(module_facts.get(module, "period_bound_ns"), floor)
            module, items, bins, where, cap, method = self._search_period(module, max(period, floor), budget,
                                                                          neighbours, floor, lower)
            layer_cap = {}
        else:
            module, items, bins, where, cap, layer_cap, method = self._retry(module, budget, objective, neighbours)
        status = "heuristic"
        lower = self._lower_bound(t, items, cap)
        if len(bins) == lower:
            status = "optimal (meets the lower bound)"
        elif len(items) <= self.exact_blocks:
            exact = self._exact(t, items, cap, len(bins) - 1, layer_cap, neighbours)
            if exact is None:
                status = "optimal (CP-SAT: no packing in one crossbar fewer)"
            elif exact == "unknown":
                status = "heuristic (CP-SAT undecided)"
            else:
                bins, where = exact
                status = "improved by CP-SAT"
                method += " + cp-sat"
        placed = self._emit(module, items, where, method, status, lower)
        return spread_digital(placed) if self.spread and not t.pools else placed

    def _search_period(self, module: Module, period: float, budget: int, neighbours: dict, floor: float = 0.0,
                       lower: float = 0.0):
        """The smallest period, from the duplicate pass's bound up, that water-filling packs
        into the budget (`_waterfill`): the period grows geometrically from the bound until
        a packing fits, then a bisection between the last failure and the first success;
        `search_steps` attempts at most. Each attempt tries the blocks as partitioned, with
        big light blocks halved, (when duplicate gave blocks lanes) both without lanes, and
        (when duplicate gave grouped layers other layouts) both in the partition's layouts.
        When `period` packs at the first attempt, the bisection runs down from it towards
        `lower` (a period no packing beats): duplicate's target leaves cells unused for
        packing losses, and copies may still fit in them."""
        from cimc.passes.duplicate import as_partitioned, layer_infos, with_copies, with_lanes

        t = module.target
        infos = layer_infos(module)
        split_module = split_big_light_blocks(module)
        split_infos = layer_infos(split_module) if split_module is not module else None
        steps = 0

        variants = [(module, infos)] + ([(split_module, split_infos)] if split_infos is not None else [])
        plain = with_lanes(module, {})
        if plain is not module:  # lanes cost cells: where cells are short, blocks without them may pack better
            plain_split = split_big_light_blocks(plain)
            variants += [(plain, layer_infos(plain))] + (
                [(plain_split, layer_infos(plain_split))] if plain_split is not plain else [])
        original = as_partitioned(plain)
        if original is not plain:  # duplicate's other layouts make more, smaller blocks: may pack worse
            original_split = split_big_light_blocks(original)
            variants += [(original, layer_infos(original))] + (
                [(original_split, layer_infos(original_split))] if original_split is not original else [])

        # one copy of every layer within the period: the most any variant needs
        hi = max([period] + [i.mvms * i.mvm_ns for _, these in variants for i in these])

        def attempt(p: float):
            """(plan, module it refers to, period) or None. Tried as partitioned, and with
            big blocks of light layers cut in two column halves (more reads in all, but the
            halves leave room and time for other layers): the variant that packed last
            first, the other only when it does not pack."""
            nonlocal steps
            steps += 1
            for n, (base, these) in enumerate(variants):
                plan = self._waterfill(t, these, p, budget, neighbours)
                if plan is not None:
                    if n:
                        variants.insert(0, variants.pop(n))
                    return plan, base, p
            return None

        lo, found = period, attempt(period)
        if found is not None and 0 < lower < period:
            lo = lower
        growth = 1.02 if self.search_steps >= 10 else 1.15  # coarser first steps when few are allowed
        while found is None and lo < hi and steps < self.search_steps - 1:
            p = min(hi, lo * growth)
            found = attempt(p)
            if found is None:
                lo, growth = p, growth * growth
        if found is None and lo < hi:
            found = attempt(hi)
        if found is None:  # not even one copy per layer packs within the period: no period limit
            return self._one_copy_each(module, split_module if split_infos is not None else None, budget, neighbours)
        nets: dict[int, tuple] = {}  # id(plan) -> (plan, its network period)

        def network(plan: dict, base: Module) -> float:
            if id(plan) not in nets:
                nets[id(plan)] = (plan, self._network_period(base, plan))
            return nets[id(plan)][1]

        # a smaller period needs more copies, spread further: not worth searching for once
        # the network is slower than the crossbars
        while steps < self.search_steps and found[2] / lo > 1.005 \
                and network(found[0], found[1]) <= found[2] * (1 + 1e-3):
            mid = math.sqrt(lo * found[2])
            got = attempt(mid)
            if got is None:
                lo = mid
            else:
                found = got
        plan, base, p = found
        these = next(v for b, v in variants if b is base)
        if self.slack > 0:  # a slower period, for the fewest crossbars that take it
            slower = self._fewest_crossbars(t, these, p * (1 + self.slack), budget, neighbours)
            if slower is not None and slower["bins"] < plan["bins"]:
                plan, p, budget = slower, p * (1 + self.slack), slower["bins"]
            else:
                budget = plan["bins"]
        if p <= floor * (1 + 1e-6):  # at the floor: relieving crossbars with more copies buys nothing
            budget = plan["bins"]
        if t.noc_bytes_per_ns:  # more copies spread data further: stop where the network sets the pace
            plan, p, budget, net_steps = self._network_balance(base, these, plan, p, budget, neighbours,
                                                               network(plan, base))
            steps += net_steps
        # the chosen packing again, now relieving the busiest crossbars with extra copies
        plan = self._waterfill(t, these, p, budget, neighbours, relieve=True) or plan
        m = with_shares(base, plan)
        items = _items(m)
        where = {k: plan["where"][it.op.result] for k, it in enumerate(items)}
        cap = max(p, max(it.load_ns for it in items))
        bins = [None] * plan["bins"]
        method = f"water-filling, period search {steps} steps"
        # one block per crossbar, one copy each, is a candidate too when the budget has room
        one = with_copies(module, {i.name: 1 for i in infos})
        one_items = _items(one)
        if len(one_items) <= budget and max(it.load_ns for it in one_items) <= cap * (1 + EPS):
            m, items, cap = one, one_items, max(it.load_ns for it in one_items)
            where = {k: (k, 0, 0) for k in range(len(items))}
            bins, method = [None] * len(items), "one block per crossbar (no better packing found)"
        m = m.with_ops(m.ops, period_target_ns=cap)
        return m, items, bins, where, cap, method

    def _fewest_crossbars(self, t, infos, period: float, budget: int, neighbours: dict):
        """The water-filling plan within `period` on the fewest crossbars: water-filling
        spreads light blocks over the crossbars it is given, so fewer are found by
        bisection on that number, from what one copy's cells and all the work need."""
        best = self._waterfill(t, infos, period, budget, neighbours)
        if best is None:
            return None
        cells = sum(i.cells for i in infos) / t.cells_per_xbar
        work = sum(i.mvms * i.sum_mvm_ns for i in infos) / period
        lo, hi = max(1, math.ceil(max(cells, work) * (1 - 1e-9))) - 1, best["bins"]  # lo: none fit
        while hi - lo > 1:
            mid = (lo + hi) // 2
            got = self._waterfill(t, infos, period, mid, neighbours)
            if got is None:
                lo = mid
            else:
                best, hi = got, got["bins"]
        return best

    def _one_copy_each(self, module: Module, split_module: Module | None, budget: int, neighbours: dict):
        """One copy of every layer, packed in as short a period as the budget allows: with
        the lanes duplicate chose and with none (lanes cost cells, and cells may be what the
        budget lacks), as partitioned and with big light blocks halved; the best that packs."""
        from cimc.passes.duplicate import with_copies, with_lanes

        best, error = None, None
        for base, note in ((module, ""), (split_module, ", big light blocks halved")):
            if base is None:
                continue
            for variant in dict.fromkeys([with_lanes(base, {}), base]):  # without lanes first
                one = with_copies(variant, {op.result: 1 for op in variant.ops if op.kind in WEIGHT_KINDS})
                try:
                    got = self._retry(one, budget, "", neighbours)
                except Infeasible as e:
                    error = error or e
                    continue
                if best is None or got[4] < best[0][4] * (1 - 1e-9):
                    best = (got, note)
            if best is not None:
                break
        if best is None:
            raise error
        (module, items, bins, where, cap, _, method), note = best
        relieved = self._relieve_packing(module, items, bins, where, budget, neighbours)
        busiest = defaultdict(float)
        for k, it in enumerate(items):
            busiest[where[k][0]] += it.load_ns
        if relieved is not None and relieved[4] <= max(busiest.values()) * (1 + 1e-9):  # never slower
            return relieved[:5] + (method + note + ", one copy per layer, then copies in free spots",)
        return module, items, bins, where, cap, method + note + ", one copy per layer"

    def _crossbar_rules(self, t, budget: int, neighbours: dict, bins, load, count, held, heap):
        """(new_bin, may_hold) over a packing's state: open one more crossbar of the budget
        (None when it is spent); whether crossbar j may take a block of (layer, copy) under
        the pass options (blocks per crossbar, copies apart, neighbours apart)."""
        def new_bin() -> int | None:
            if len(bins) >= budget:
                return None
            bins.append(Crossbar(t.xbar_rows, t.xbar_cols))
            load.append(0.0)
            count.append(0)
            held.append(defaultdict(set))
            heapq.heappush(heap, (0.0, len(bins) - 1))
            return len(bins) - 1

        def may_hold(j: int, layer: str, copy: int) -> bool:
            if self.max_blocks and count[j] >= self.max_blocks:
                return False
            if self.separate_copies and held[j][layer] - {copy}:
                return False
            return not (neighbours and neighbours.get(layer, set()) & set(held[j]))

        return new_bin, may_hold

    def _relieve_packing(self, module: Module, items, bins, where, budget: int, neighbours: dict):
        """A packing of one copy per layer with copies added in its free spots (`_relieve`:
        the busiest crossbar hands MVMs to new copies, never raising the period), as
        (module, items, bins, where, period); None when no copy found room."""
        from cimc.passes.duplicate import layer_infos

        t = module.target
        infos = {i.name: i for i in layer_infos(module)}
        load = [0.0] * len(bins)
        count = [0] * len(bins)
        held: list[dict[str, set]] = [defaultdict(set) for _ in bins]
        on_bin: dict[int, list] = defaultdict(list)
        places = {}
        for k, it in enumerate(items):
            j = where[k][0]
            load[j] += it.load_ns
            count[j] += 1
            held[j][it.layer].add(0)
            places[it.op.result] = where[k]
            if (infos[it.layer], 0) not in on_bin[j]:
                on_bin[j].append((infos[it.layer], 0))
        shares = {name: [i.mvms] for name, i in infos.items()}
        bins = [b.copy() for b in bins]
        heap = [(ld, j) for j, ld in enumerate(load)]
        heapq.heapify(heap)

        new_bin, may_hold = self._crossbar_rules(t, budget, neighbours, bins, load, count, held, heap)

        before = sum(len(v) for v in shares.values())
        self._relieve(t, bins, load, count, held, places, shares, on_bin, heap, new_bin, may_hold, budget,
                      rank={name: n for n, name in enumerate(infos)})
        if sum(len(v) for v in shares.values()) == before:
            return None
        m = with_shares(module, {"shares": {n: v for n, v in shares.items() if len(v) > 1}})
        new_items = _items(m)
        new_where = {k: places[it.op.result] for k, it in enumerate(new_items)}
        period = defaultdict(float)
        for k, it in enumerate(new_items):
            period[new_where[k][0]] += it.load_ns
        return m, new_items, [None] * len(bins), new_where, max(period.values())

    def _placed(self, base: Module, plan: dict) -> Module:
        """The module with a water-filling plan's copies, shares and places."""
        m = with_shares(base, plan)
        items = _items(m)
        where = {k: plan["where"][it.op.result] for k, it in enumerate(items)}
        return self._emit(m, items, where, "", "", 0)

    def _network_period(self, base: Module, plan: dict) -> float:
        from cimc.cost import placed_network_period_ns

        return placed_network_period_ns(self._placed(base, plan)) if base.target.noc_bytes_per_ns else 0.0

    def _network_balance(self, base: Module, infos, plan: dict, period: float, budget: int, neighbours: dict,
                         net: float):
        """A packing whose period is not set by the network. Copies spread a layer's data
        over more tiles and further: past some point more crossbars make the network (all
        byte-hops of an inference over all links, as `cost` counts it) slower than the
        crossbars. If the plan is there, look for the period where crossbars and network
        meet (bisection between the plan's period and its network period) and keep the
        plan that is best for max(crossbar period, network period), fewer crossbars on a tie.
        `net`: the plan's network period. Returns (plan, period, budget, packings tried)."""
        t = base.target
        if net <= period * (1 + 1e-3):
            return plan, period, budget, 0
        best = (net, plan["bins"], period, plan)
        lo, hi, tried = period, net, 0
        while tried < max(2, self.search_steps // 2) and hi / lo > 1.01:
            mid = hi if tried == 0 else math.sqrt(lo * hi)
            tried += 1
            cand = self._waterfill(t, infos, mid, budget, neighbours)
            if cand is None:
                lo = mid
                continue
            n = self._network_period(base, cand)
            score = max(mid, n)
            if score < best[0] * (1 - 1e-3) or (score <= best[0] * (1 + 1e-3) and cand["bins"] < best[1]):
                best = (score, cand["bins"], mid, cand)
            if n > mid:
                lo = mid
            else:
                hi = mid
        _, bins, p, plan = best
        return plan, p, bins, tried

    def _waterfill(self, t, infos, period: float, budget: int, neighbours: dict | None = None,
                   relieve: bool = False):
        """`_waterfill_once`; where that fails after the light blocks took crossbars that
        heavy blocks with no room beside them need, again with the light blocks kept off
        those (denser light blocks leave less room beside them: only where spreading fails)."""
        facts: dict = {}
        plan = self._waterfill_once(t, infos, period, budget, neighbours, relieve, facts=facts)
        if plan is None and facts.get("reserved"):
            plan = self._waterfill_once(t, infos, period, budget, neighbours, relieve, reserve=True)
        return plan

    def _waterfill_once(self, t, infos, period: float, budget: int, neighbours: dict | None = None,
                        relieve: bool = False, reserve: bool = False, facts: dict | None = None):
        """Place every layer within `period` per crossbar, or None if it takes more than
        `budget` crossbars.

        Layers light in time for their cells (one copy's load within the period and its
        density, time share over cell share, at most 1) go first, one copy each, best fit
        in cells and time. Then the heavy layers, largest blocks first, are poured into the
        time left: each new copy goes where the most time is left and the blocks fit, and
        takes as many MVMs (its `share`) as that time allows; a crossbar is opened only when
        no open one would take a tenth of a crossbar's time of it. Once every crossbar of
        the budget is open, a light block past its crossbars' light share goes into the first
        crossbar it fits with time for it, and a heavy block that fits
        none of the crossbars with the most time left tries every crossbar, most time first.
        """
        cells = t.cells_per_xbar
        if sum(i.cells for i in infos) > budget * cells or sum(i.mvms * i.sum_mvm_ns for i in infos) > budget * period:
            return None  # one copy's cells, or all the work, exceed the budget
        bins: list[Crossbar] = []
        load: list[float] = []
        count: list[int] = []
        where: dict[str, tuple[int, int, int]] = {}
        shares: dict[str, list[int]] = {}
        on_bin: dict[int, list] = defaultdict(list)  # crossbar -> one-block heavy copies (layer info, copy)

        heap: list[tuple[float, int]] = []  # (load, crossbar), stale entries dropped lazily
        min_mvm_ns = min(i.mvm_ns for i in infos) * (1 - EPS)

        held: list[dict[str, set]] = []  # crossbar -> layer -> copies on it

        new_bin, may_hold = self._crossbar_rules(t, budget, neighbours, bins, load, count, held, heap)

        def most_time_left(chosen: dict) -> list[int]:
            """The open crossbars with the least load (a few), and those the copy uses."""
            got: list[int] = []
            while heap and len(got) < 24:
                ld, j = heapq.heappop(heap)
                if ld != load[j] or j in got or bins[j].used_cells >= cells or period - ld < min_mvm_ns:
                    continue  # stale, full, or without time for one more MVM: dropped for good
                got.append(j)
            for j in got:
                heapq.heappush(heap, (load[j], j))
            return sorted(set(got) | set(chosen))

        light, heavy = [], []
        for i in infos:
            work = i.mvms * i.mvm_ns
            (light if work <= period and (work / period) <= (i.cells / cells) else heavy).append(i)
        from cimc.cost import block_mvm_ns

        order = {b.result: n for n, b in enumerate(b for i in light for b in i.blocks)}  # module order, not names
        blocks = sorted(((i, b) for i in light for b in i.blocks),
                        key=lambda ib: (-block_footprint(t, ib[1]).cells, order[ib[1].result]))
        # heavy blocks that leave no room beside them for any light block need crossbars of
        # their own, one per copy the period asks for: with `reserve`, light blocks keep off
        # that many
        if blocks:
            min_r = min(block_footprint(t, b).rows for _, b in blocks)
            min_c = min(block_footprint(t, b).cols for _, b in blocks)
            reserved = sum(math.ceil(i.mvms * block_mvm_ns(t, b) / period * (1 - EPS)) for i in heavy for b in i.blocks
                           if min_r > t.xbar_rows - block_footprint(t, b).rows
                           and min_c > t.xbar_cols - block_footprint(t, b).cols)
        light_cells = sum(block_footprint(t, b).cells for _, b in blocks)
        if blocks and facts is not None and reserved + light_cells / cells <= budget:
            facts["reserved"] = reserved  # (where the light cells fit beside them at all)
        light_budget = max(1, budget - reserved) if blocks and reserve else budget
        # light blocks are spread so that every crossbar keeps room for the heavy copies
        # that will use its time: each takes light cells up to their share of the budget
        light_cap = cells * min(1.0, max(0.3, light_cells / (light_budget * cells) + 0.1))
        light_open: list[int] = []  # crossbars light blocks may still go into
        light_alive: dict[tuple[int, int], list[int]] = {}  # block shape -> crossbars it may fit
        for i, b in blocks:
            fp = block_footprint(t, b)
            need = i.mvms * block_mvm_ns(t, b)
            best = None
            for j in light_open[-16:]:
                if load[j] + need > period * (1 + EPS) or not may_hold(j, i.name, 0):
                    continue
                if bins[j].used_cells + fp.cells > light_cap:
                    continue
                spot = bins[j].fit(fp.rows, fp.cols)
                if spot is None:
                    continue
                left = (cells - bins[j].used_cells - fp.cells) / cells + (period - load[j] - need) / period
                if best is None or (left, spot[0], j) < best[0]:
                    best = ((left, spot[0], j), j, spot[1], spot[2])
            if best is None and len(bins) >= light_budget:
                # no crossbar left to open: past the light share, into the first crossbar it
                # fits (per block shape, crossbars without room for it leave its list for good)
                alive = light_alive.setdefault((fp.rows, fp.cols), list(range(len(bins))))
                k = 0
                while k < len(alive):
                    j = alive[k]
                    spot = bins[j].fit(fp.rows, fp.cols) if bins[j].used_cells + fp.cells <= cells else None
                    if spot is None:
                        alive[k] = alive[-1]
                        alive.pop()
                        continue
                    if load[j] + need <= period * (1 + EPS) and may_hold(j, i.name, 0):
                        best = (None, j, spot[1], spot[2])
                        break
                    k += 1
            if best is None:
                j = new_bin()
                if j is None:
                    return None
                light_open.append(j)
                best = (None, j, 0, 0)
            _, j, r, c = best
            bins[j].place(r, c, fp.rows, fp.cols)
            load[j] += need
            count[j] += 1
            held[j][i.name].add(0)
            heapq.heappush(heap, (load[j], j))
            if bins[j].used_cells >= 0.97 * light_cap and j in light_open:
                light_open.remove(j)
            where[b.result] = (j, r, c)
        if facts is not None and len(bins) <= budget - facts.get("reserved", 0):
            facts["reserved"] = 0  # the light blocks left those crossbars empty: keeping off them changes nothing
        shape_heaps: dict[tuple[int, int], list] = {}  # for `_any_room`
        rank = {i.name: n for n, i in enumerate(infos)}  # ties in module order (canonical), never by name
        heavy = sorted(heavy, key=lambda i: (-max(block_footprint(t, b).cells for b in i.blocks), rank[i.name]))
        work_left = sum(i.mvms * i.sum_mvm_ns for i in heavy)
        for i in heavy:
            if work_left > (budget * period - sum(load)) * (1 + EPS):
                return None  # the heavy work left exceeds the time left on the budget
            work_left -= i.mvms * i.sum_mvm_ns
            remaining, copy = i.mvms, 0
            shares[i.name] = []
            times = {b.result: block_mvm_ns(t, b) for b in i.blocks}
            while remaining > 0:
                chosen: dict[int, float] = {}  # crossbar -> time per MVM of this copy's blocks there
                spots = []
                for b in sorted(i.blocks, key=lambda b: -block_footprint(t, b).cells):
                    fp = block_footprint(t, b)
                    tb = times[b.result]
                    best = None
                    for j in most_time_left(chosen):
                        if not may_hold(j, i.name, copy):
                            continue
                        room = int((period * (1 + EPS) - load[j]) // (chosen.get(j, 0.0) + tb))
                        if room < 1:
                            continue
                        spot = bins[j].fit(fp.rows, fp.cols)
                        if spot is not None and (best is None or (-room, spot[0], j) < best[0]):
                            best = ((-room, spot[0], j), j, spot[1], spot[2], room)
                    least = min(remaining, max(1, int(period / tb / 10)))
                    if best is None and len(bins) >= budget:
                        best = self._any_room(bins, load, period, fp, tb, chosen, shape_heaps,
                                              lambda j: may_hold(j, i.name, copy))
                    if best is None or best[4] < least:
                        j = new_bin()
                        if j is None:
                            if best is None:
                                return None
                        else:
                            best = (None, j, 0, 0, int(period * (1 + EPS) // tb))
                    _, j, r, c, _ = best
                    bins[j].place(r, c, fp.rows, fp.cols)
                    count[j] += 1
                    held[j][i.name].add(copy)
                    chosen[j] = chosen.get(j, 0.0) + tb
                    spots.append((b, j, r, c))
                share = min([remaining] + [int((period * (1 + EPS) - load[j]) // tj) for j, tj in chosen.items()])
                if share < 1:
                    return None
                for j, tj in chosen.items():
                    load[j] += share * tj
                    heapq.heappush(heap, (load[j], j))
                for b, j, r, c in spots:
                    where[_copy_name(i.name, b, copy)] = (j, r, c)
                shares[i.name].append(share)
                for j in chosen:
                    on_bin[j].append((i, copy))
                remaining -= share
                copy += 1
        if relieve:
            self._relieve(t, bins, load, count, held, where, shares, on_bin, heap, new_bin, may_hold, budget, light,
                          rank=rank)
        return {"bins": len(bins), "where": where, "shares": shares}

    @staticmethod
    def _any_room(bins, load, period, fp, tb, chosen, heaps, may_hold):
        """The crossbar with the most time left that has room for a block of footprint `fp`
        taking `tb` per MVM (with this copy's blocks already `chosen` there), as a candidate
        (key, crossbar, row, col, MVMs it has time for); None if there is none. Each block
        shape keeps a heap of the crossbars by load (`heaps`, filled once every crossbar of
        the budget is open), refreshed lazily: loads only grow and free space only shrinks,
        so a crossbar without room for the shape leaves its heap for good."""
        shape = (fp.rows, fp.cols)
        heap = heaps.get(shape)
        if heap is None:
            heap = heaps[shape] = [(ld, j) for j, ld in enumerate(load)]
            heapq.heapify(heap)
        cells = bins[0].rows * bins[0].cols
        limit = period * (1 + EPS)
        kept, best = [], None
        while heap:
            ld, j = heap[0]
            if ld != load[j]:  # stale: the crossbar has more load now
                heapq.heapreplace(heap, (load[j], j))
                continue
            if limit - ld < tb:
                break  # by load: no crossbar left has time for one more MVM
            room = int((limit - ld) // (chosen.get(j, 0.0) + tb))
            if room < 1 or not may_hold(j):  # not for this copy; maybe for another
                kept.append(heapq.heappop(heap))
                continue
            spot = bins[j].fit(fp.rows, fp.cols) if bins[j].used_cells + fp.cells <= cells else None
            if spot is None:
                heapq.heappop(heap)
                continue
            best = ((-room, spot[0], j), j, spot[1], spot[2], room)
            break
        for entry in kept:
            heapq.heappush(heap, entry)
        return best

    @staticmethod
    def _relieve(t, bins, load, count, held, where, shares, on_bin, heap, new_bin, may_hold, budget, light=(),
                 rounds=20000, rank=None):
        """After water-filling, move MVMs into new copies placed in free spots.

        1. Relieve: the busiest crossbar gives part of the share of a heavy copy on it to a
           new copy of the same layer, whose blocks go where load is least and they fit
           (else on crossbars of the budget not yet used), about halving the difference.
           Stops when the busiest crossbar holds no such copy or no move lowers it.
        2. Spread: the layer whose largest copy works longest (light layers, placed with one
           copy, included) gives half of that copy's share to a new copy in free spots of
           used crossbars, as long as no crossbar's load passes the busiest one's. A layer
           runs as long as its largest copy, so this shortens layers (latency), and it
           fills cells (utilization).
        Neither step ever raises the period."""
        rank = rank or {name: n for n, name in enumerate(shares)}  # layers in module order: ties never by name
        from cimc.cost import block_mvm_ns

        def copy_time(i):
            return sum(block_mvm_ns(t, b) for b in i.blocks)

        shape_heaps: dict = {}  # for `_any_room`

        def split(i, k: int, avoid: int | None, limit, fresh_when, below: float) -> bool:
            """Give `limit(taken, per_mvm_on)` MVMs of copy k of layer i to a new copy (its
            blocks on crossbars whose load stays `below`)."""
            new_copy = len(shares[i.name])
            taken: dict[int, float] = {}  # crossbar -> time per MVM of the new copy there
            spots = []
            for b in sorted(i.blocks, key=lambda b: -block_footprint(t, b).cells):
                fp, tb = block_footprint(t, b), block_mvm_ns(t, b)
                best = None
                for j in sorted(set(j for _, j in heapq.nsmallest(32, heap)) - {avoid}):
                    if j in taken or bins[j].used_cells >= bins[j].rows * bins[j].cols or not may_hold(j, i.name, new_copy):
                        continue
                    spot = bins[j].fit(fp.rows, fp.cols)
                    if spot is not None and (best is None or (load[j], j) < (load[best[0]], best[0])):
                        best = (j, spot[1], spot[2])
                if best is None:  # none of the least loaded has room: the least loaded that has
                    got = PackPass._any_room(bins, load, below * (1 - 2 * EPS), fp, tb, {}, shape_heaps,
                                             lambda j: j != avoid and j not in taken and may_hold(j, i.name, new_copy))
                    best = None if got is None else got[1:4]
                if fresh_when(best, tb):
                    fresh = new_bin()
                    best = (fresh, 0, 0) if fresh is not None else None
                if best is None:
                    return False
                taken[best[0]] = tb  # one block of the copy per crossbar, so fits need no placing yet
                spots.append((b, *best))
            move = min(shares[i.name][k] - 1, limit(taken))
            if move < 1:
                return False
            shares[i.name][k] -= move
            shares[i.name].append(move)
            for b in i.blocks:
                jd = where[_copy_name(i.name, b, k)][0]
                load[jd] -= move * block_mvm_ns(t, b)
                heapq.heappush(busiest, (-load[jd], jd))
                heapq.heappush(heap, (load[jd], jd))
            for b, j, r, c in spots:
                fp = block_footprint(t, b)
                bins[j].place(r, c, fp.rows, fp.cols)
                where[_copy_name(i.name, b, new_copy)] = (j, r, c)
                count[j] += 1
                held[j][i.name].add(new_copy)
            for j, tj in taken.items():
                load[j] += move * tj
                on_bin[j].append((i, new_copy))
                heapq.heappush(busiest, (-load[j], j))
                heapq.heappush(heap, (load[j], j))
            return True

        busiest = [(-ld, j) for j, ld in enumerate(load)]
        heapq.heapify(busiest)

        def top() -> int | None:
            while busiest and -busiest[0][0] != load[busiest[0][1]]:
                heapq.heappop(busiest)
            return busiest[0][1] if busiest else None

        for _ in range(rounds):  # 1. relieve the busiest crossbar
            d = top()
            if d is None:
                break
            movable = sorted(((shares[i.name][k] * copy_time(i), -rank[i.name], k, i) for i, k in on_bin[d]
                              if shares[i.name][k] > 1), key=lambda m: m[:3], reverse=True)
            if not movable:
                break
            _, _, k, i = movable[0]
            on_d = sum(block_mvm_ns(t, b) for b in i.blocks if where[_copy_name(i.name, b, k)][0] == d)
            gain = lambda taken: min(int((load[d] - load[j]) / (tj + on_d)) for j, tj in taken.items())  # noqa: E731
            if not split(i, k, d, gain, lambda best, tb: best is None or load[best[0]] + 2 * tb > load[d], load[d]):
                break
        d = top()
        period = load[d] if d is not None else 0.0
        layers = {i.name: i for i, _ in (x for xs in on_bin.values() for x in xs)}
        for i in light:  # one copy with all the MVMs, to begin with
            shares[i.name] = [i.mvms]
            layers[i.name] = i
            for b in i.blocks:
                on_bin[where[b.result][0]].append((i, 0))
        queue = [(-max(shares[n]) * copy_time(i), rank.get(n, len(rank)), n) for n, i in layers.items()]
        heapq.heapify(queue)
        for _ in range(rounds):  # 2. spread the longest-running layers
            if not queue:
                break
            _, _, n = heapq.heappop(queue)
            i = layers[n]
            k = max(range(len(shares[n])), key=lambda c: (shares[n][c], -c))
            room = lambda taken: min([shares[n][k] // 2] + [int((period - load[j]) / tj)  # noqa: E731
                                                             for j, tj in taken.items()])
            if split(i, k, None, room, lambda best, tb: False, period):
                heapq.heappush(queue, (-max(shares[n]) * copy_time(i), rank.get(n, len(rank)), n))
        for i in light:  # not spread: stays as placed, one copy
            if len(shares[i.name]) == 1:
                del shares[i.name]

    def _retry(self, module: Module, budget, objective: str, neighbours: dict):
        """Pack as the copies stand; for the latency objective re-choose copies with fewer
        cells when they do not fit (at most `retries` times, then one copy per layer)."""
        from cimc.passes.duplicate import layer_infos, solve_copies, with_copies

        t = module.target
        fill, attempt, method = 0.97, 0, "maxrects"
        while True:
            items = _items(module)
            cap = max(it.load_ns for it in items) if objective != "latency" else float("inf")
            layer_cap = self._layer_caps(module, items) if objective == "latency" else {}
            bins, where = self._pack(t, items, cap, layer_cap, neighbours, budget)
            if budget is not None and len(bins) > budget and objective != "latency":
                # too few crossbars for one block's time each: several blocks share a
                # crossbar's time, and the period grows to the least that packs
                raised = self._raise_period(t, items, cap, neighbours, budget)
                if len(raised[1]) <= budget:
                    cap, bins, where = raised
                    method += ", period raised to fit the budget"
                else:  # not even sharing crossbars in time: say how many that takes
                    bins = raised[1]
            if budget is None or len(bins) <= budget:
                return module, items, bins, where, cap, layer_cap, method
            attempt += 1
            infos = layer_infos(module)
            if objective != "latency" or attempt > self.retries + 1 or all(
                    b["copy"] == 0 for b in module.of_kind("map.block")):
                raise Infeasible(
                    f"model '{module.name}': its blocks need {len(bins)} crossbars packed, more than the budget of "
                    f"{budget}; raise the budget or relax the pack options.")
            if attempt > self.retries:
                copies, method = {i.name: 1 for i in infos}, "maxrects, one copy per layer"
            else:
                fill *= min(0.98, budget / len(bins))
                try:
                    copies, _, _ = solve_copies(module, infos, budget, objective, fill, 5.0)
                except Infeasible:
                    copies = {i.name: 1 for i in infos}
                method = f"maxrects, copies re-chosen {attempt}x"
            module = with_copies(module, copies)

    def _raise_period(self, t, items, cap: float, neighbours: dict, budget: int):
        """(period, bins, where): the least period from `cap` up (geometric bisection,
        `search_steps` packings at most) at which the blocks pack into the budget; when they
        do not even with no time limit, that packing (more bins than the budget)."""
        hi = sum(it.load_ns for it in items)  # everything on one crossbar: no time limit
        bins, where = self._pack(t, items, hi, {}, neighbours, budget)
        if len(bins) > budget:
            return hi, bins, where
        best, lo = (hi, bins, where), cap
        for _ in range(self.search_steps):
            if best[0] / lo <= 1.01:
                break
            mid = math.sqrt(lo * best[0])
            bins, where = self._pack(t, items, mid, {}, neighbours, budget)
            if len(bins) <= budget:
                best = (mid, bins, where)
            else:
                lo = mid
        return best

    # -- the constructive packer -------------------------------------------------------
    def _allowed(self, item: _Item, state: dict, cap: float, layer_cap: dict, neighbours: dict) -> bool:
        if state["load"] + item.load_ns > cap * (1 + EPS):
            return False
        if self.max_blocks and state["count"] >= self.max_blocks:
            return False
        if layer_cap and state["layer_load"][item.layer] + item.load_ns > layer_cap[item.layer] * (1 + EPS):
            return False
        if self.separate_copies and any(c != item.copy for c in state["copies"][item.layer]):
            return False
        if neighbours and neighbours.get(item.layer, set()) & state["layers"]:
            return False
        return True

    def _pack(self, t, items, cap, layer_cap, neighbours, budget):
        order = sorted(range(len(items)), key=lambda k: (
            -max(items[k].h * items[k].w / t.cells_per_xbar, items[k].load_ns / cap if cap else 0),
            -items[k].h, -items[k].w, k))
        bins: list[Crossbar] = []
        states: list[dict] = []
        open_bins: list[int] = []
        where: dict[int, tuple[int, int, int]] = {}
        cells = t.cells_per_xbar
        for k in order:
            it = items[k]
            best = None
            for j in open_bins[-self.window:]:
                if not self._allowed(it, states[j], cap, layer_cap, neighbours):
                    continue
                spot = bins[j].fit(it.h, it.w)
                if spot is None:
                    continue
                # best fit in both resources: the crossbar left fullest (cells and time) wins
                left = (cells - bins[j].used_cells - it.h * it.w) / cells
                if cap and cap != float("inf"):
                    left += (cap - states[j]["load"] - it.load_ns) / cap
                key = (left, spot[0], j)
                if best is None or key < best[0]:
                    best = (key, j, spot[1], spot[2])
            if best is None:
                bins.append(Crossbar(t.xbar_rows, t.xbar_cols))
                states.append({"load": 0.0, "count": 0, "layer_load": defaultdict(float),
                               "copies": defaultdict(set), "layers": set()})
                j = len(bins) - 1
                open_bins.append(j)
                best = (None, j, 0, 0)
            _, j, r, c = best
            bins[j].place(r, c, it.h, it.w)
            s = states[j]
            s["load"] += it.load_ns
            s["count"] += 1
            s["layer_load"][it.layer] += it.load_ns
            s["copies"][it.layer].add(it.copy)
            s["layers"].add(it.layer)
            where[k] = (j, r, c)
            if bins[j].used_cells == t.cells_per_xbar or s["load"] >= cap * (1 - EPS):
                open_bins.remove(j)
        return bins, where

    @staticmethod
    def _layer_caps(module: Module, items: list[_Item]) -> dict[str, float]:
        """Latency objective: a layer's load on one crossbar stays within one copy's time."""
        per_copy: dict[tuple[str, int], float] = defaultdict(float)
        for it in items:
            per_copy[(it.layer, it.copy)] = max(per_copy[(it.layer, it.copy)], it.load_ns)
        caps: dict[str, float] = {}
        for (layer, _), v in per_copy.items():
            caps[layer] = max(caps.get(layer, 0.0), v)
        return caps

    @staticmethod
    def _lower_bound(t, items, cap) -> int:
        cells = sum(i.h * i.w for i in items)
        load = sum(i.load_ns for i in items)
        big = sum(1 for i in items if 2 * i.h > t.xbar_rows and 2 * i.w > t.xbar_cols)
        return max(math.ceil(cells / t.cells_per_xbar), math.ceil(load / cap - EPS) if cap else 1, big, 1)

    # -- CP-SAT: can the blocks go into `k` crossbars? ----------------------------------
    def _exact(self, t, items, cap, k, layer_cap, neighbours):
        from ortools.sat.python import cp_model

        from cimc.passes.solver import deterministic_solver

        if k < 1:
            return None
        m = cp_model.CpModel()
        # loads in 1e-5 of the cap, rounded up: the model may refuse a packing that fits by a
        # hair, never accepts one that does not
        scale = 100000.0 / max(cap, EPS)
        present = [[m.new_bool_var(f"a{b}_{j}") for j in range(k)] for b in range(len(items))]
        xs = [m.new_int_var(0, t.xbar_cols - it.w, f"x{b}") for b, it in enumerate(items)]
        ys = [m.new_int_var(0, t.xbar_rows - it.h, f"y{b}") for b, it in enumerate(items)]
        for b in range(len(items)):
            m.add_exactly_one(present[b])
        m.add(present[0][0] == 1)  # symmetry: the first block in the first crossbar
        for j in range(k):
            xi = [m.new_optional_fixed_size_interval_var(xs[b], it.w, present[b][j], f"xi{b}_{j}")
                  for b, it in enumerate(items)]
            yi = [m.new_optional_fixed_size_interval_var(ys[b], it.h, present[b][j], f"yi{b}_{j}")
                  for b, it in enumerate(items)]
            m.add_no_overlap_2d(xi, yi)
            m.add(sum(int(math.ceil(it.load_ns * scale)) * present[b][j] for b, it in enumerate(items))
                  <= 100000)
            if self.max_blocks:
                m.add(sum(present[b][j] for b in range(len(items))) <= self.max_blocks)
            by_layer = defaultdict(list)
            for b, it in enumerate(items):
                by_layer[it.layer].append(b)
            for layer, bs in by_layer.items():
                if layer_cap:
                    m.add(sum(int(math.ceil(items[b].load_ns * scale)) * present[b][j] for b in bs)
                          <= int(layer_cap[layer] * scale))
                if self.separate_copies:
                    for a in bs:
                        for b in bs:
                            if a < b and items[a].copy != items[b].copy:
                                m.add_bool_or([present[a][j].Not(), present[b][j].Not()])
            for a, ia in enumerate(items):
                for b, ib in enumerate(items):
                    if a < b and ib.layer in neighbours.get(ia.layer, ()):
                        m.add_bool_or([present[a][j].Not(), present[b][j].Not()])
        solver = deterministic_solver(self.time_limit)
        status = solver.solve(m)
        if status == cp_model.INFEASIBLE:
            return None
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return "unknown"
        where = {}
        for b in range(len(items)):
            j = next(j for j in range(k) if solver.boolean_value(present[b][j]))
            where[b] = (j, solver.value(ys[b]), solver.value(xs[b]))
        return [None] * k, where

    def _tile_maps(self, module: Module, items, where, renumber) -> list:
        """Ways to share the crossbars out over tiles, crossbar number -> (tile, crossbar in
        it). First: in order, filling tiles. With `spread` (one pool, the chip has the tiles):
        in order over as many tiles as the digital units need to keep pace with the busiest
        crossbar, and round-robin over that many tiles and over every tile of the chip. A
        digital op runs on the tiles holding the layer it reads (`cimc.cost.digital_tiles`), so
        round-robin gives each layer's digital work more units, at the price of more traffic."""
        from cimc.ops import DIGITAL_KINDS

        t = module.target
        per = t.xbars_per_tile
        used = len(renumber)
        least = -(-used // per)
        maps = [lambda idx: (idx // per, idx % per)]
        if not self.spread or used > t.xbars or t.pools:
            return maps
        digital = sum(op.get("ops", 0) for op in module.ops if op.kind in DIGITAL_KINDS)
        if not digital:
            return maps
        load: dict[int, float] = defaultdict(float)
        for k, it in enumerate(items):
            load[where[k][0]] += it.load_ns
        busiest = max(load.values(), default=0.0)
        need = min(t.tiles, max(least, math.ceil(digital / (t.digital_ops_per_ns * busiest) - 1e-9))) \
            if busiest > 0 else least
        if need > least:
            first = [n * used // need for n in range(need + 1)]  # first crossbar of each tile

            def spread(idx):
                tile = bisect.bisect_right(first, idx) - 1
                return tile, idx - first[tile]
            maps.append(spread)
        for tiles in sorted({need, min(t.tiles, used)}):
            if tiles > 1:
                maps.append(lambda idx, n=tiles: (idx % n, idx // n))
        return maps

    def _emit(self, module: Module, items, where, method, status, lower) -> Module:
        # number the crossbars in the order the text first uses them
        index = {it.op.result: k for k, it in enumerate(items)}
        renumber: dict[int, int] = {}
        for op in module.ops:
            if op.kind == "map.block":
                renumber.setdefault(where[index[op.result]][0], len(renumber))
        used = len({w[0] for w in where.values()})
        best = None
        for tile_of in self._tile_maps(module, items, where, renumber):
            place: dict[str, Op] = {}
            for k, it in enumerate(items):
                j, r, c = where[k]
                tile, xbar = tile_of(renumber[j])
                place[it.op.result] = Op.make("map.place", None, [it.op.result], tile=tile, xbar=xbar, at=(r, c))
            out = []
            for op in module.ops:
                if op.kind in ("map.place", "map.digital") or op.namespace in ("cost", "sched"):
                    continue
                out.append(op)
                if op.kind == "map.block":
                    out.append(place[op.result])
            placed = module.with_ops(out, pack_method=method, pack_status=status, pack_crossbars=used,
                                     pack_lower_bound=lower)
            score = self._score(placed)
            if best is None or score < best[0]:
                best = (score, placed)
        return best[1]

    @staticmethod
    def _score(module: Module) -> tuple:
        """What a tile assignment is chosen by: the period, then latency, then energy
        (latency first when duplicate's objective was latency)."""
        from cimc.cost import evaluate

        r = evaluate(module)
        if module_facts.get(module, "duplicate_objective") == "latency":
            return (round(r.latency_ns, 6), round(r.period_ns, 6), round(r.energy_nj, 6))
        return (round(r.period_ns, 6), round(r.latency_ns, 6), round(r.energy_nj, 6))
