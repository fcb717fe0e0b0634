"""Copies without a solver, slowest layer first: the slowest layer gets its next useful copy count
while cells and crossbars for big blocks allow."""

from __future__ import annotations

import heapq

from cimc.passes.duplicate.infos import LayerInfo


def slowest_first_copies(infos: list[LayerInfo], cap_cells: int, budget: int) -> tuple[dict[str, int], float]:
    """Copies slowest layer first (greedy): give the slowest layer its next useful copy count while the
    cells and the crossbars for big blocks allow; stop when the slowest cannot get one."""
    # plain lists: this loop runs once per copy step (hundreds per compile in search loops)
    mvms = [i.mvms for i in infos]
    mvm_ns = [i.mvm_ns for i in infos]
    layer_cells = [i.cells for i in infos]
    layer_big = [i.big_blocks for i in infos]
    copies = [1] * len(infos)
    cells = sum(layer_cells)
    big = sum(layer_big)
    heap = [(-m * t, n) for n, (m, t) in enumerate(zip(mvms, mvm_ns))]
    heapq.heapify(heap)
    while heap:
        n = heap[0][1]
        q = -(-mvms[n] // copies[n])
        if q == 1:
            break
        nxt = -(-mvms[n] // (q - 1))  # the fewest copies that take one MVM off the slowest copy
        extra = nxt - copies[n]
        if cells + extra * layer_cells[n] > cap_cells or big + extra * layer_big[n] > budget:
            break
        cells += extra * layer_cells[n]
        big += extra * layer_big[n]
        copies[n] = nxt
        heapq.heapreplace(heap, (-(-(-mvms[n] // nxt)) * mvm_ns[n], n))
    return {i.name: c for i, c in zip(infos, copies)}, -heap[0][0] if heap else 0.0
