"""First fit (MaxRects best-short-side-fit) of blocks into crossbars, with retries that re-choose
fewer copies when the budget is short."""

from __future__ import annotations

import math
from collections import defaultdict

from cimc.errors import Infeasible
from cimc.ir import Module
from cimc.mapping import is_big_block
from cimc.passes.duplicate.copies import with_copies
from cimc.passes.duplicate.infos import layer_infos
from cimc.passes.duplicate.solve import solve_copies
from cimc.passes.maxrects import Crossbar
from cimc.passes.pack.items import EPS, Item, Packing, items_of
from cimc.passes.pack.rules import allowed_together


def first_fit(options, t, items, cap, layer_cap, neighbours, budget):
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
        for j in open_bins[-options.window:]:
            if not allowed_together(options, it, states[j], cap, layer_cap, neighbours):
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


def layer_caps(module: Module, items: list[Item]) -> dict[str, float]:
    """Latency objective: a layer's load on one crossbar stays within one copy's time."""
    per_copy: dict[tuple[str, int], float] = defaultdict(float)
    for it in items:
        per_copy[(it.layer, it.copy)] = max(per_copy[(it.layer, it.copy)], it.load_ns)
    caps: dict[str, float] = {}
    for (layer, _), v in per_copy.items():
        caps[layer] = max(caps.get(layer, 0.0), v)
    return caps


def crossbar_lower_bound(t, items, cap) -> int:
    cells = sum(i.h * i.w for i in items)
    load = sum(i.load_ns for i in items)
    big = sum(1 for i in items if is_big_block(t, i.h, i.w))
    return max(math.ceil(cells / t.cells_per_xbar), math.ceil(load / cap - EPS) if cap else 1, big, 1)


def pack_with_retries(options, module: Module, budget, objective: str, neighbours: dict):
    """Pack as the copies stand; for the latency objective re-choose copies with fewer
    cells when they do not fit (at most `retries` times, then one copy per layer)."""
    t = module.target
    fill, attempt, method = 0.97, 0, "maxrects"
    while True:
        items = items_of(module)
        cap = max(it.load_ns for it in items) if objective != "latency" else float("inf")
        layer_cap = layer_caps(module, items) if objective == "latency" else {}
        bins, where = first_fit(options, t, items, cap, layer_cap, neighbours, budget)
        if budget is not None and len(bins) > budget and objective != "latency":
            # too few crossbars for one block's time each: several blocks share a
            # crossbar's time, and the period grows to the least that packs
            raised = raise_period(options, t, items, cap, neighbours, budget)
            if len(raised[1]) <= budget:
                cap, bins, where = raised
                method += ", period raised to fit the budget"
            else:  # not even sharing crossbars in time: say how many that takes
                bins = raised[1]
        if budget is None or len(bins) <= budget:
            return Packing(module, items, bins, where, cap, method, layer_cap)
        attempt += 1
        infos = layer_infos(module)
        if objective != "latency" or attempt > options.retries + 1 or all(
                b["copy"] == 0 for b in module.of_kind("map.block")):
            raise Infeasible(
                f"model '{module.name}': its blocks need {len(bins)} crossbars packed, more than the budget of "
                f"{budget}; raise the budget or relax the pack options.")
        if attempt > options.retries:
            copies, method = {i.name: 1 for i in infos}, "maxrects, one copy per layer"
        else:
            fill *= min(0.98, budget / len(bins))
            try:
                copies, _, _ = solve_copies(module, infos, budget, objective, fill, 5.0)
            except Infeasible:
                copies = {i.name: 1 for i in infos}
            method = f"maxrects, copies re-chosen {attempt}x"
        module = with_copies(module, copies)


def raise_period(options, t, items, cap: float, neighbours: dict, budget: int):
    """(period, bins, where): the least period from `cap` up (geometric bisection,
    `search_steps` packings at most) at which the blocks pack into the budget; when they
    do not even with no time limit, that packing (more bins than the budget)."""
    hi = sum(it.load_ns for it in items)  # everything on one crossbar: no time limit
    bins, where = first_fit(options, t, items, hi, {}, neighbours, budget)
    if len(bins) > budget:
        return hi, bins, where
    best, lo = (hi, bins, where), cap
    for _ in range(options.search_steps):
        if best[0] / lo <= 1.01:
            break
        mid = math.sqrt(lo * best[0])
        bins, where = first_fit(options, t, items, mid, {}, neighbours, budget)
        if len(bins) <= budget:
            best = (mid, bins, where)
        else:
            lo = mid
    return best
