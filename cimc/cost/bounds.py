"""Lower bounds that hold whatever duplicate and pack choose: the shared-work bound on the period,
the longest paths for latency."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from cimc.cost.timing import best_mvm_ns, footprint_read_ns, one_lane
from cimc.ir import Module
from cimc.mapping import (
    block_footprint,
    footprint,
    leaves_no_room,
    splittable_big_block,
    weight_cells,
)


@dataclass
class _Blocks:
    """What the shared-work bound reads of a mapping's blocks (one copy, one lane)."""

    work: float  # all block-read work of an inference
    alone: list  # blocks that hold a crossbar alone: (w, extra work e if halved or None, halves' (w, crossbars))
    area_parts: dict  # (alone whole?, (w, crossbars of cells) of one copy, the same per half or None) -> count
    fit_beside_halves_ns: float  # work of the blocks that fit beside a half (at its most)


def _read_blocks(t, blocks: dict, defs: dict, families: dict) -> _Blocks | None:
    first = [one_lane(b) for bs in blocks.values() for b in bs if b["copy"] == 0 and b.operands[0] not in families]
    if not first and not families:
        return None
    fps = [block_footprint(t, b) for b in first]

    def half(b, lo: int, hi: int):  # footprint of a column range of a one-lane block
        return footprint(t, b["groups"][1] - b["groups"][0], b["rows"][1] - b["rows"][0], hi - lo, b["layout"])

    halves = []  # the two halves' footprints of each block pack may halve, else None
    for b in first:
        c0, c1 = b["cols"]
        halves.append((half(b, c0, (c0 + c1) // 2), half(b, (c0 + c1) // 2, c1))
                      if splittable_big_block(t, defs[b.operands[0]]["mvms"], b) else None)
    min_r = min([fp.rows for fp in fps] + [f[3] for f in families.values()])
    min_c = min([h[0].cols if h is not None else fp.cols for h, fp in zip(halves, fps)]
                + [f[4] for f in families.values()])

    def no_room(fp) -> bool:
        return leaves_no_room(t, fp.rows, fp.cols, min_r, min_c)

    work = sum(defs[name]["mvms"] * f[0] for name, f in families.items())
    alone = []
    others = []  # the blocks that are not alone: (footprint, halves or None, w, MVMs)
    area_parts: dict[tuple, int] = defaultdict(int)
    per_xbar = t.cells_per_xbar
    for name, f in families.items():  # a copy: its programmed weights, its longest block's time
        area_parts[(False, (defs[name]["mvms"] * f[1], weight_cells(t, defs[name]) / per_xbar), None)] += 1
    for b, fp, h in zip(first, fps, halves):
        mvms = defs[b.operands[0]]["mvms"]
        w = mvms * best_mvm_ns(t, b)
        work += w
        as_halves = None if h is None else tuple((mvms * footprint_read_ns(t, x), x.cells / per_xbar) for x in h)
        if no_room(fp):
            e = None
            if h is not None and not no_room(h[0]):
                e = max(0.0, mvms * (footprint_read_ns(t, h[0]) + footprint_read_ns(t, h[1])) - w)
            alone.append((w, e, as_halves if e is not None else None))
            if e is not None:  # whole it holds crossbars alone, halved it shares
                area_parts[(True, (w, 1.0), as_halves)] += 1
        else:
            area_parts[(False, (w, fp.cells / per_xbar), as_halves)] += 1
            others.append((fp, h, w, mvms))
    # Halves of blocks alone whole share crossbars with other halves and with the blocks
    # that fit beside a half; the time beside the halves that those blocks cannot fill is
    # lost as well. A crossbar holds halves worth at most its cells: the crossbars holding
    # them have, over copies k_i of halves of c_i crossbars of cells, at least
    # sum k_i c_i P of time, of which the blocks that fit beside a half fill at most their
    # work (taken at its most: halved where that reads more).
    hr = min((x[0].rows for x in halves if x is not None), default=t.xbar_rows)
    hc = min((x[0].cols for x in halves if x is not None), default=t.xbar_cols)
    fit = sum(defs[name]["mvms"] * f[0] for name, f in families.items()
              if f[3] <= t.xbar_rows - hr or f[4] <= t.xbar_cols - hc)
    for fp, h, w, mvms in others:
        if min(fp.rows, h[0].rows if h else fp.rows) <= t.xbar_rows - hr or \
                min(fp.cols, h[0].cols if h else fp.cols) <= t.xbar_cols - hc:
            fit += w if h is None else max(w, mvms * (footprint_read_ns(t, h[0]) + footprint_read_ns(t, h[1])))
    return _Blocks(work, alone, area_parts, fit)


def _copies(w: float, p: float) -> int:  # each copy does at most p of the work w
    return max(1, math.ceil(w / p - 1e-12))


def _crossbars_needed(blocks: _Blocks, p: float) -> float:
    """Crossbars the blocks need at period p: every copy of a block alone takes one, and
    nothing shares it; every other copy takes its cells of the rest."""
    need = float(sum(_copies(w, p) for w, e, _ in blocks.alone if e is None))
    for (_, (w, xbars), as_halves), n in blocks.area_parts.items():
        best = _copies(w, p) * xbars  # alone: a crossbar per copy; else its cells
        if as_halves is not None:
            best = min(best, sum(_copies(wh, p) * xh for wh, xh in as_halves))
        need += n * best
    return need


def _bound_with_one_copy_each(blocks: _Blocks, budget: int) -> float:
    """The least P with every k = ceil(w / P) taken as 1 (bisection: the right side then grows
    slower than the left), raised to where the other blocks' copies fit in the cells left."""

    def short(p: float) -> float:  # > 0: p is too small
        return blocks.work + sum(p - w if e is None else min(p - w, e) for w, e, _ in blocks.alone) - p * budget

    lo = blocks.work / budget  # copies may split any block's load, so nothing higher is known yet
    if short(lo) > 0:
        hi = lo * 2
        while short(hi) > 0:
            hi *= 2
        while hi - lo > 1e-9 * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if short(mid) > 0 else (lo, mid)
        lo = hi
    if _crossbars_needed(blocks, lo) > budget * (1 + 1e-12):
        # the area falls with p: bisect for where it fits, keeping the side where it does not
        # (a bound must not overshoot)
        a, b = lo, lo * 2
        while _crossbars_needed(blocks, b) > budget * (1 + 1e-12):
            a, b = b, b * 2
        while b - a > 1e-9 * b:
            mid = (a + b) / 2
            a, b = (mid, b) if _crossbars_needed(blocks, mid) > budget * (1 + 1e-12) else (a, mid)
        lo = a
    return lo


def _lower_line(a, b, p, nxt):
    """The smaller of two lines (const, slope) right of p, and where they cross if before nxt."""
    va, vb = a[0] + a[1] * p, b[0] + b[1] * p
    if a[1] != b[1]:
        q = (b[0] - a[0]) / (a[1] - b[1])
        if q > p:
            nxt = min(nxt, q)
    return (a if (va, a[1]) <= (vb, b[1]) else b), nxt


def _walk_pieces(blocks: _Blocks, budget: int, lo: float) -> float:
    """k = ceil(w / P) >= 1 only adds to the right side: no P below `lo` meets it. Walk up the
    pieces on which every k (and every min's side) is fixed: there the shortfall is linear in
    P (const + slope x P), so its first zero is found exactly. Two sums of lost time hold,
    each a lower bound: halves costing their extra reads (e), and halves costing the crossbar
    time they hold less the work that fits beside them."""
    p = lo
    for _ in range(10000):
        nxt = math.inf
        extra_reads = [blocks.work, -float(budget)]  # const, slope
        held_time = [blocks.work - blocks.fit_beside_halves_ns, -float(budget)]
        for w, e, halves in blocks.alone:
            k = _copies(w, p)
            if k > 1:
                nxt = min(nxt, w / (k - 1))
            whole = (-w, float(k))  # k P - w
            by_reads, by_time = whole, whole
            if e is not None:
                by_reads, nxt = _lower_line(whole, (e, 0.0), p, nxt)
                held = 0.0
                for wh, xh in halves:
                    kh = _copies(wh, p)
                    if kh > 1:
                        nxt = min(nxt, wh / (kh - 1))
                    held += kh * xh
                by_time, nxt = _lower_line(whole, (-w, held), p, nxt)
            extra_reads[0] += by_reads[0]
            extra_reads[1] += by_reads[1]
            held_time[0] += by_time[0]
            held_time[1] += by_time[1]
        # the least P in [p, nxt) where both lines are <= 0
        start_p, end_p = p, nxt
        for c, sl in (extra_reads, held_time):
            tol = 1e-9 * p * budget
            if sl < 0:
                start_p = max(start_p, (c - tol) / -sl)
            elif c + sl * p > tol:
                start_p = math.inf
            elif sl > 0:
                end_p = min(end_p, (tol - c) / sl)
        if start_p < end_p or (start_p <= end_p and start_p < math.inf):
            return start_p
        if nxt == math.inf:
            return p  # cannot happen (budget > blocks alone): keep the bound found so far
        p = max(nxt * (1 + 1e-12), p * (1 + 1e-12))
    return lo  # (a walk that long: the k = 1 bound, which holds)


def shared_work_bound(t, blocks: dict, defs: dict, budget: int, families: dict | None = None) -> float:
    """A period bound for crossbars that cannot share: a block that leaves no room beside it
    for the smallest block of the model (fewer free rows than any block has rows, fewer free
    columns than any has columns) has a crossbar to itself in every packing, and so has every
    copy of it. Its load w (all its MVMs) needs at least k = ceil(w / P) such crossbars, and
    the time they have beyond w is lost: k P - w. Pack may instead cut a light one into two
    column halves that leave room: then the halves' extra reads are work (e). So
    P x budget >= all work + sum of (k P - w) over blocks alone + sum of min(k P - w, e) over
    blocks alone whole that could be halved; the bound is the least P that meets it. The
    right side is piecewise linear in P (k drops at P = w / (k - 1)): the least P is found
    with k = 1 first (the right side then grows slower than the left: bisection), then by
    walking the pieces up from there. Two more conditions hold and raise it: nothing fits
    beside a block alone, so the other blocks' copies (ceil(w / P) each, a copy of a grouped
    layer at least its weight cells) must fit in the cells of the crossbars left; and halves
    that only halves and a few small blocks fit beside hold crossbars whose time beyond the
    halves' reads is lost, less the work of those small blocks (the walk takes the larger of
    the two sums of lost time). Grouped layers that may take other layouts count with their
    least work and smallest blocks, never alone (`families`: `layout_family` per layer).
    Single-pool chips only."""
    if t.pools:
        return 0.0
    read = _read_blocks(t, blocks, defs, families or {})
    if read is None or not read.alone or budget <= len(read.alone):
        return 0.0
    return _walk_pieces(read, budget, _bound_with_one_copy_each(read, budget))


def longest_paths(module: Module, times: tuple[dict[str, float], ...]) -> list[float]:
    """Longest path (sum of op times) from any input to any op, over the def-use order, for
    each set of op times."""
    finish: list[dict[str, float]] = [{} for _ in times]
    best = [0.0] * len(times)
    for op in module.ops:
        if op.namespace != "nn" or op.result is None:
            continue
        for n, time_ns in enumerate(times):
            done = finish[n]
            start = max([done.get(o, 0.0) for o in op.operands], default=0.0)
            done[op.result] = end = start + time_ns.get(op.result, 0.0)
            if end > best[n]:
                best[n] = end
    return best
