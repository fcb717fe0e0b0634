"""Water-filling at one period: light layers first (one copy each, best fit in cells and time),
then the heavy layers' copies poured into the time left, each taking the MVMs that time allows."""

from __future__ import annotations

import heapq
import math

from cimc.cost import block_mvm_ns
from cimc.mapping import block_footprint, copy_name, leaves_no_room
from cimc.passes.pack.items import EPS, FillPlan
from cimc.passes.pack.relieve import relieve_crossbars
from cimc.passes.pack.rules import OpenCrossbars, any_room


def waterfill(options, t, infos, period: float, budget: int, neighbours: dict | None = None,
               relieve: bool = False):
    """`waterfill_once`; where that fails after the light blocks took crossbars that
    heavy blocks with no room beside them need, again with the light blocks kept off
    those (denser light blocks leave less room beside them: only where spreading fails)."""
    facts: dict = {}
    plan = waterfill_once(options, t, infos, period, budget, neighbours, relieve, facts=facts)
    if plan is None and facts.get("reserved"):
        plan = waterfill_once(options, t, infos, period, budget, neighbours, relieve, reserve=True)
    return plan


def waterfill_once(options, t, infos, period: float, budget: int, neighbours: dict | None = None,
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
    state = OpenCrossbars.start(options, t, budget, neighbours)
    light, heavy = [], []
    for i in infos:
        work = i.mvms * i.mvm_ns
        (light if work <= period and (work / period) <= (i.cells / cells) else heavy).append(i)
    order = {b.result: n for n, b in enumerate(b for i in light for b in i.blocks)}  # module order, not names
    blocks = sorted(((i, b) for i in light for b in i.blocks),
                    key=lambda ib: (-block_footprint(t, ib[1]).cells, order[ib[1].result]))
    reserved = _reserved_for_heavy(t, blocks, heavy, period)
    light_cells = sum(block_footprint(t, b).cells for _, b in blocks)
    if blocks and facts is not None and reserved + light_cells / cells <= budget:
        facts["reserved"] = reserved  # (where the light cells fit beside them at all)
    light_budget = max(1, budget - reserved) if blocks and reserve else budget
    if not _place_light(t, state, blocks, period, light_budget, light_cells):
        return None
    if facts is not None and len(state.bins) <= budget - facts.get("reserved", 0):
        facts["reserved"] = 0  # the light blocks left those crossbars empty: keeping off them changes nothing
    rank = {i.name: n for n, i in enumerate(infos)}  # ties in module order (canonical), never by name
    heavy = sorted(heavy, key=lambda i: (-max(block_footprint(t, b).cells for b in i.blocks), rank[i.name]))
    if not _pour_heavy(t, state, heavy, period, min(i.mvm_ns for i in infos) * (1 - EPS)):
        return None
    if relieve:
        relieve_crossbars(t, state, light, rank=rank)
    return FillPlan(len(state.bins), state.where, state.shares)


def _reserved_for_heavy(t, light_blocks: list, heavy: list, period: float) -> int:
    """Crossbars heavy blocks that leave no room beside them for any light block need to
    themselves, one per copy the period asks for (with `reserve`, light blocks keep off them)."""
    if not light_blocks:
        return 0
    min_r = min(block_footprint(t, b).rows for _, b in light_blocks)
    min_c = min(block_footprint(t, b).cols for _, b in light_blocks)
    return sum(math.ceil(i.mvms * block_mvm_ns(t, b) / period * (1 - EPS)) for i in heavy for b in i.blocks
               if leaves_no_room(t, block_footprint(t, b).rows, block_footprint(t, b).cols, min_r, min_c))


def _place_light(t, state: OpenCrossbars, blocks: list, period: float, light_budget: int, light_cells: int) -> bool:
    """One copy of each light layer, best fit in cells and time; False when the budget runs out."""
    cells = t.cells_per_xbar
    bins, load = state.bins, state.load
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
            if load[j] + need > period * (1 + EPS) or not state.may_hold(j, i.name, 0):
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
                if load[j] + need <= period * (1 + EPS) and state.may_hold(j, i.name, 0):
                    best = (None, j, spot[1], spot[2])
                    break
                k += 1
        if best is None:
            j = state.new_bin()
            if j is None:
                return False
            light_open.append(j)
            best = (None, j, 0, 0)
        _, j, r, c = best
        state.put(j, r, c, fp, i.name, 0)
        load[j] += need
        heapq.heappush(state.heap, (load[j], j))
        if bins[j].used_cells >= 0.97 * light_cap and j in light_open:
            light_open.remove(j)
        state.where[b.result] = (j, r, c)
    return True


def _most_time_left(state: OpenCrossbars, chosen: dict, cells: int, period: float, min_mvm_ns: float) -> list[int]:
    """The open crossbars with the least load (a few), and those the copy uses."""
    heap, load, bins = state.heap, state.load, state.bins
    got: list[int] = []
    while heap and len(got) < 24:
        ld, j = heapq.heappop(heap)
        if ld != load[j] or j in got or bins[j].used_cells >= cells or period - ld < min_mvm_ns:
            continue  # stale, full, or without time for one more MVM: dropped for good
        got.append(j)
    for j in got:
        heapq.heappush(heap, (load[j], j))
    return sorted(set(got) | set(chosen))


def _pour_heavy(t, state: OpenCrossbars, heavy: list, period: float, min_mvm_ns: float) -> bool:
    """The heavy layers' copies poured into the time left; False when the budget runs out."""
    cells = t.cells_per_xbar
    bins, load, budget = state.bins, state.load, state.budget
    shape_heaps: dict[tuple[int, int], list] = {}  # for `any_room`
    work_left = sum(i.mvms * i.sum_mvm_ns for i in heavy)
    for i in heavy:
        if work_left > (budget * period - sum(load)) * (1 + EPS):
            return False  # the heavy work left exceeds the time left on the budget
        work_left -= i.mvms * i.sum_mvm_ns
        remaining, copy = i.mvms, 0
        state.shares[i.name] = []
        times = {b.result: block_mvm_ns(t, b) for b in i.blocks}
        while remaining > 0:
            chosen: dict[int, float] = {}  # crossbar -> time per MVM of this copy's blocks there
            spots = []
            for b in sorted(i.blocks, key=lambda b: -block_footprint(t, b).cells):
                fp = block_footprint(t, b)
                block_ns = times[b.result]
                best = None
                for j in _most_time_left(state, chosen, cells, period, min_mvm_ns):
                    if not state.may_hold(j, i.name, copy):
                        continue
                    room = int((period * (1 + EPS) - load[j]) // (chosen.get(j, 0.0) + block_ns))
                    if room < 1:
                        continue
                    spot = bins[j].fit(fp.rows, fp.cols)
                    if spot is not None and (best is None or (-room, spot[0], j) < best[0]):
                        best = ((-room, spot[0], j), j, spot[1], spot[2], room)
                least = min(remaining, max(1, int(period / block_ns / 10)))
                if best is None and len(bins) >= budget:
                    best = any_room(bins, load, period, fp, block_ns, chosen, shape_heaps,
                                    lambda j: state.may_hold(j, i.name, copy))
                if best is None or best[4] < least:
                    j = state.new_bin()
                    if j is None:
                        if best is None:
                            return False
                    else:
                        best = (None, j, 0, 0, int(period * (1 + EPS) // block_ns))
                _, j, r, c, _ = best
                state.put(j, r, c, fp, i.name, copy)
                chosen[j] = chosen.get(j, 0.0) + block_ns
                spots.append((b, j, r, c))
            share = min([remaining] + [int((period * (1 + EPS) - load[j]) // tj) for j, tj in chosen.items()])
            if share < 1:
                return False
            for j, tj in chosen.items():
                load[j] += share * tj
                heapq.heappush(state.heap, (load[j], j))
            for b, j, r, c in spots:
                state.where[copy_name(i.name, b.result, copy)] = (j, r, c)
            state.shares[i.name].append(share)
            for j in chosen:
                state.on_bin[j].append((i, copy))
            remaining -= share
            copy += 1
    return True
