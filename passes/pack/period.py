"""The period search: bisect the period between the proven bound and duplicate's target for the
fewest crossbars that reach it, network balance included."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

from cimc.cost import placed_network_period_ns
from cimc.errors import Infeasible
from cimc.ir import Module
from cimc.mapping import WEIGHT_KINDS
from cimc.passes.duplicate.copies import with_copies, with_lanes
from cimc.passes.duplicate.infos import layer_infos
from cimc.passes.duplicate.layouts import as_partitioned
from cimc.passes.pack.emit import placed_mapping
from cimc.passes.pack.firstfit import pack_with_retries
from cimc.passes.pack.items import (
    EPS,
    FillPlan,
    Packing,
    items_of,
    split_big_light_blocks,
    with_shares,
)
from cimc.passes.pack.relieve import relieve_packing
from cimc.passes.pack.waterfill import waterfill


def search_period(options, module: Module, period: float, budget: int, neighbours: dict, floor: float = 0.0,
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
    hi = max([period] + [i.mvms * i.mvm_ns for _, variant_infos in variants for i in variant_infos])

    def attempt(p: float):
        """(plan, module it refers to, period) or None. Tried as partitioned, and with
        big blocks of light layers cut in two column halves (more reads in all, but the
        halves leave room and time for other layers): the variant that packed last
        first, the other only when it does not pack."""
        nonlocal steps
        steps += 1
        for n, (base, variant_infos) in enumerate(variants):
            plan = waterfill(options, t, variant_infos, p, budget, neighbours)
            if plan is not None:
                if n:
                    variants.insert(0, variants.pop(n))
                return plan, base, p
        return None

    lo, found = period, attempt(period)
    if found is not None and 0 < lower < period:
        lo = lower
    growth = 1.02 if options.search_steps >= 10 else 1.15  # coarser first steps when few are allowed
    while found is None and lo < hi and steps < options.search_steps - 1:
        p = min(hi, lo * growth)
        found = attempt(p)
        if found is None:
            lo, growth = p, growth * growth
    if found is None and lo < hi:
        found = attempt(hi)
    if found is None:  # not even one copy per layer packs within the period: no period limit
        return one_copy_each(options, module, split_module if split_infos is not None else None, budget, neighbours)
    nets: dict[int, tuple] = {}  # id(plan) -> (plan, its network period)

    def network(plan: FillPlan, base: Module) -> float:
        if id(plan) not in nets:
            nets[id(plan)] = (plan, network_period(options, base, plan))
        return nets[id(plan)][1]

    # a smaller period needs more copies, spread further: not worth searching for once
    # the network is slower than the crossbars
    while steps < options.search_steps and found[2] / lo > 1.005 \
            and network(found[0], found[1]) <= found[2] * (1 + 1e-3):
        mid = math.sqrt(lo * found[2])
        got = attempt(mid)
        if got is None:
            lo = mid
        else:
            found = got
    plan, base, p = found
    variant_infos = next(v for b, v in variants if b is base)
    if options.slack > 0:  # a slower period, for the fewest crossbars that take it
        slower = fewest_crossbars(options, t, variant_infos, p * (1 + options.slack), budget, neighbours)
        if slower is not None and slower.bins < plan.bins:
            plan, p, budget = slower, p * (1 + options.slack), slower.bins
        else:
            budget = plan.bins
    if p <= floor * (1 + 1e-6):  # at the floor: relieving crossbars with more copies buys nothing
        budget = plan.bins
    if t.noc_bytes_per_ns:  # more copies spread data further: stop where the network sets the pace
        plan, p, budget, net_steps = network_balance(options, base, variant_infos, plan, p, budget, neighbours,
                                                           network(plan, base))
        steps += net_steps
    # the chosen packing again, now relieving the busiest crossbars with extra copies
    plan = waterfill(options, t, variant_infos, p, budget, neighbours, relieve=True) or plan
    m = with_shares(base, plan.shares)
    items = items_of(m)
    where = {k: plan.where[it.op.result] for k, it in enumerate(items)}
    cap = max(p, max(it.load_ns for it in items))
    bins = [None] * plan.bins
    method = f"water-filling, period search {steps} steps"
    # one block per crossbar, one copy each, is a candidate too when the budget has room
    one = with_copies(module, {i.name: 1 for i in infos})
    one_items = items_of(one)
    if len(one_items) <= budget and max(it.load_ns for it in one_items) <= cap * (1 + EPS):
        m, items, cap = one, one_items, max(it.load_ns for it in one_items)
        where = {k: (k, 0, 0) for k in range(len(items))}
        bins, method = [None] * len(items), "one block per crossbar (no better packing found)"
    m = m.with_ops(m.ops, period_target_ns=cap)
    return Packing(m, items, bins, where, cap, method)


def fewest_crossbars(options, t, infos, period: float, budget: int, neighbours: dict):
    """The water-filling plan within `period` on the fewest crossbars: water-filling
    spreads light blocks over the crossbars it is given, so fewer are found by
    bisection on that number, from what one copy's cells and all the work need."""
    best = waterfill(options, t, infos, period, budget, neighbours)
    if best is None:
        return None
    cells = sum(i.cells for i in infos) / t.cells_per_xbar
    work = sum(i.mvms * i.sum_mvm_ns for i in infos) / period
    lo, hi = max(1, math.ceil(max(cells, work) * (1 - 1e-9))) - 1, best.bins  # lo: none fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got = waterfill(options, t, infos, period, mid, neighbours)
        if got is None:
            lo = mid
        else:
            best, hi = got, got.bins
    return best


def one_copy_each(options, module: Module, split_module: Module | None, budget: int, neighbours: dict):
    """One copy of every layer, packed in as short a period as the budget allows: with
    the lanes duplicate chose and with none (lanes cost cells, and cells may be what the
    budget lacks), as partitioned and with big light blocks halved; the best that packs."""
    best, error = None, None
    for base, note in ((module, ""), (split_module, ", big light blocks halved")):
        if base is None:
            continue
        for variant in dict.fromkeys([with_lanes(base, {}), base]):  # without lanes first
            one = with_copies(variant, {op.result: 1 for op in variant.ops if op.kind in WEIGHT_KINDS})
            try:
                got = pack_with_retries(options, one, budget, "", neighbours)
            except Infeasible as e:
                error = error or e
                continue
            if best is None or got.period_ns < best[0].period_ns * (1 - 1e-9):
                best = (got, note)
        if best is not None:
            break
    if best is None:
        raise error
    packing, note = best
    relieved = relieve_packing(options, packing.module, packing.items, packing.bins, packing.where, budget, neighbours)
    busiest = defaultdict(float)
    for k, it in enumerate(packing.items):
        busiest[packing.where[k][0]] += it.load_ns
    if relieved is not None and relieved.period_ns <= max(busiest.values()) * (1 + 1e-9):  # never slower
        return dataclasses.replace(relieved, method=packing.method + note + ", one copy per layer, then copies in "
                                                                            "free spots")
    return dataclasses.replace(packing, method=packing.method + note + ", one copy per layer", layer_cap={})


def network_period(options, base: Module, plan: FillPlan) -> float:
    return placed_network_period_ns(placed_mapping(options, base, plan)) if base.target.noc_bytes_per_ns else 0.0


def network_balance(options, base: Module, infos, plan: FillPlan, period: float, budget: int, neighbours: dict,
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
    best = (net, plan.bins, period, plan)
    lo, hi, tried = period, net, 0
    while tried < max(2, options.search_steps // 2) and hi / lo > 1.01:
        mid = hi if tried == 0 else math.sqrt(lo * hi)
        tried += 1
        cand = waterfill(options, t, infos, mid, budget, neighbours)
        if cand is None:
            lo = mid
            continue
        n = network_period(options, base, cand)
        score = max(mid, n)
        if score < best[0] * (1 - 1e-3) or (score <= best[0] * (1 + 1e-3) and cand.bins < best[1]):
            best = (score, cand.bins, mid, cand)
        if n > mid:
            lo = mid
        else:
            hi = mid
    _, bins, p, plan = best
    return plan, p, bins, tried
