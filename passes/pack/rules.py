"""Which blocks may share a crossbar (the pass's options: blocks per crossbar, copies apart,
neighbours apart), and whether any open crossbar has room for a block."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from cimc.passes.maxrects import Crossbar
from cimc.passes.pack.items import EPS, Item


def crossbar_rules(options, t, budget: int, neighbours: dict, bins, load, count, held, heap):
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
        if options.max_blocks and count[j] >= options.max_blocks:
            return False
        if options.separate_copies and held[j][layer] - {copy}:
            return False
        return not (neighbours and neighbours.get(layer, set()) & set(held[j]))

    return new_bin, may_hold


@dataclass
class OpenCrossbars:
    """The crossbars water-filling and relieving fill: each one's rectangles (`bins`), load
    (ns per inference), block count and the (layer -> copies) it holds; a heap of (load,
    crossbar) with stale entries dropped lazily; where each block went and each layer's copy
    shares; the one-block heavy copies on each crossbar (`on_bin`). `new_bin` opens one more
    crossbar of the budget (None when it is spent); `may_hold` applies the pass options."""

    budget: int
    bins: list = field(default_factory=list)
    load: list = field(default_factory=list)
    count: list = field(default_factory=list)
    held: list = field(default_factory=list)
    heap: list = field(default_factory=list)
    where: dict = field(default_factory=dict)
    shares: dict = field(default_factory=dict)
    on_bin: dict = field(default_factory=lambda: defaultdict(list))
    new_bin: Callable = None
    may_hold: Callable = None

    @staticmethod
    def start(options, t, budget: int, neighbours: dict | None, **filled) -> "OpenCrossbars":
        state = OpenCrossbars(budget, **filled)
        state.new_bin, state.may_hold = crossbar_rules(options, t, budget, neighbours, state.bins, state.load,
                                                       state.count, state.held, state.heap)
        return state

    def put(self, j: int, r: int, c: int, fp, layer: str, copy: int) -> None:
        """Place a block of footprint `fp` of (layer, copy) at (r, c) of crossbar j (its load apart)."""
        self.bins[j].place(r, c, fp.rows, fp.cols)
        self.count[j] += 1
        self.held[j][layer].add(copy)


# -- first fit: may an item join a crossbar? ------------------------------------------
def allowed_together(options, item: Item, state: dict, cap: float, layer_cap: dict, neighbours: dict) -> bool:
    if state["load"] + item.load_ns > cap * (1 + EPS):
        return False
    if options.max_blocks and state["count"] >= options.max_blocks:
        return False
    if layer_cap and state["layer_load"][item.layer] + item.load_ns > layer_cap[item.layer] * (1 + EPS):
        return False
    if options.separate_copies and any(c != item.copy for c in state["copies"][item.layer]):
        return False
    if neighbours and neighbours.get(item.layer, set()) & state["layers"]:
        return False
    return True


def any_room(bins, load, period, fp, block_ns, chosen, heaps, may_hold):
    """The crossbar with the most time left that has room for a block of footprint `fp`
    taking `block_ns` per MVM (with this copy's blocks already `chosen` there), as a candidate
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
        if limit - ld < block_ns:
            break  # by load: no crossbar left has time for one more MVM
        room = int((limit - ld) // (chosen.get(j, 0.0) + block_ns))
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
