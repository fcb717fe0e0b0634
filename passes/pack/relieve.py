"""Relieving, after water-filling: the busiest crossbar hands MVMs of a heavy copy to a new copy
in free spots, and the longest layers spread into free cells; neither raises the period."""

from __future__ import annotations

import heapq
from collections import defaultdict

from cimc.cost import block_mvm_ns
from cimc.ir import Module
from cimc.mapping import block_footprint, copy_name
from cimc.passes.duplicate.infos import layer_infos
from cimc.passes.pack.items import EPS, Packing, items_of, with_shares
from cimc.passes.pack.rules import OpenCrossbars, any_room


def relieve_crossbars(t, state: OpenCrossbars, light=(), rounds=20000, rank=None):
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
    bins, load, count, held, where, shares = state.bins, state.load, state.count, state.held, state.where, state.shares
    on_bin, heap, new_bin, may_hold = state.on_bin, state.heap, state.new_bin, state.may_hold
    rank = rank or {name: n for n, name in enumerate(shares)}  # layers in module order: ties never by name

    def copy_time(i):
        return sum(block_mvm_ns(t, b) for b in i.blocks)

    shape_heaps: dict = {}  # for `any_room`

    def split(i, k: int, avoid: int | None, limit, fresh_when, below: float) -> bool:
        """Give `limit(taken, per_mvm_on)` MVMs of copy k of layer i to a new copy (its
        blocks on crossbars whose load stays `below`)."""
        new_copy = len(shares[i.name])
        taken: dict[int, float] = {}  # crossbar -> time per MVM of the new copy there
        spots = []
        for b in sorted(i.blocks, key=lambda b: -block_footprint(t, b).cells):
            fp, block_ns = block_footprint(t, b), block_mvm_ns(t, b)
            best = None
            for j in sorted(set(j for _, j in heapq.nsmallest(32, heap)) - {avoid}):
                if j in taken or bins[j].used_cells >= bins[j].rows * bins[j].cols or not may_hold(j, i.name, new_copy):
                    continue
                spot = bins[j].fit(fp.rows, fp.cols)
                if spot is not None and (best is None or (load[j], j) < (load[best[0]], best[0])):
                    best = (j, spot[1], spot[2])
            if best is None:  # none of the least loaded has room: the least loaded that has
                got = any_room(bins, load, below * (1 - 2 * EPS), fp, block_ns, {}, shape_heaps,
                                         lambda j: j != avoid and j not in taken and may_hold(j, i.name, new_copy))
                best = None if got is None else got[1:4]
            if fresh_when(best, block_ns):
                fresh = new_bin()
                best = (fresh, 0, 0) if fresh is not None else None
            if best is None:
                return False
            taken[best[0]] = block_ns  # one block of the copy per crossbar, so fits need no placing yet
            spots.append((b, *best))
        move = min(shares[i.name][k] - 1, limit(taken))
        if move < 1:
            return False
        shares[i.name][k] -= move
        shares[i.name].append(move)
        for b in i.blocks:
            jd = where[copy_name(i.name, b.result, k)][0]
            load[jd] -= move * block_mvm_ns(t, b)
            heapq.heappush(busiest, (-load[jd], jd))
            heapq.heappush(heap, (load[jd], jd))
        for b, j, r, c in spots:
            fp = block_footprint(t, b)
            bins[j].place(r, c, fp.rows, fp.cols)
            where[copy_name(i.name, b.result, new_copy)] = (j, r, c)
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
        on_d = sum(block_mvm_ns(t, b) for b in i.blocks if where[copy_name(i.name, b.result, k)][0] == d)
        gain = lambda taken: min(int((load[d] - load[j]) / (tj + on_d)) for j, tj in taken.items())  # noqa: E731
        if not split(i, k, d, gain, lambda best, block_ns: best is None or load[best[0]] + 2 * block_ns > load[d], load[d]):
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
        if split(i, k, None, room, lambda best, block_ns: False, period):
            heapq.heappush(queue, (-max(shares[n]) * copy_time(i), rank.get(n, len(rank)), n))
    for i in light:  # not spread: stays as placed, one copy
        if len(shares[i.name]) == 1:
            del shares[i.name]


def relieve_packing(options, module: Module, items, bins, where, budget: int, neighbours: dict):
    """A packing of one copy per layer with copies added in its free spots (`relieve_crossbars`:
    the busiest crossbar hands MVMs to new copies, never raising the period), as
    (module, items, bins, where, period); None when no copy found room."""
    t = module.target
    infos = {i.name: i for i in layer_infos(module)}
    load = [0.0] * len(bins)
    count = [0] * len(bins)
    held: list[dict[str, set]] = [defaultdict(set) for _ in bins]
    on_bin: dict[int, list] = defaultdict(list)
    places: dict = {}
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

    state = OpenCrossbars.start(options, t, budget, neighbours, bins=bins, load=load, count=count, held=held,
                                heap=heap, where=places, shares=shares, on_bin=on_bin)
    before = sum(len(v) for v in shares.values())
    relieve_crossbars(t, state, rank={name: n for n, name in enumerate(infos)})
    if sum(len(v) for v in shares.values()) == before:
        return None
    m = with_shares(module, {n: v for n, v in shares.items() if len(v) > 1})
    new_items = items_of(m)
    new_where = {k: places[it.op.result] for k, it in enumerate(new_items)}
    period = defaultdict(float)
    for k, it in enumerate(new_items):
        period[new_where[k][0]] += it.load_ns
    return Packing(m, new_items, [None] * len(bins), new_where, max(period.values()), "")
