"""CP-SAT packing of small instances: NoOverlap2D per crossbar over optional intervals, to prove
the crossbar count or use one fewer."""

from __future__ import annotations

import math
from collections import defaultdict

from cimc.passes.pack.items import EPS


# -- CP-SAT: can the blocks go into `k` crossbars? ----------------------------------
def exact_packing(options, t, items, cap, k, layer_cap, neighbours):
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver, solve

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
        if options.max_blocks:
            m.add(sum(present[b][j] for b in range(len(items))) <= options.max_blocks)
        by_layer = defaultdict(list)
        for b, it in enumerate(items):
            by_layer[it.layer].append(b)
        for layer, bs in by_layer.items():
            if layer_cap:
                m.add(sum(int(math.ceil(items[b].load_ns * scale)) * present[b][j] for b in bs)
                      <= int(layer_cap[layer] * scale))
            if options.separate_copies:
                for a in bs:
                    for b in bs:
                        if a < b and items[a].copy != items[b].copy:
                            m.add_bool_or([present[a][j].Not(), present[b][j].Not()])
        for a, ia in enumerate(items):
            for b, ib in enumerate(items):
                if a < b and ib.layer in neighbours.get(ia.layer, ()):
                    m.add_bool_or([present[a][j].Not(), present[b][j].Not()])
    solver = deterministic_solver(options.time_limit)
    status = solve(solver, m)
    if status == cp_model.INFEASIBLE:
        return None
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "unknown"
    where = {}
    for b in range(len(items)):
        j = next(j for j in range(k) if solver.boolean_value(present[b][j]))
        where[b] = (j, solver.value(ys[b]), solver.value(xs[b]))
    return [None] * k, where
