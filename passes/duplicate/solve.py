"""Copies by CP-SAT: one candidate per layer (copy count, lanes, layout) under the cell and big-
block limits, minimising the period or the longest path."""

from __future__ import annotations

import math

from cimc.cost import evaluate
from cimc.cost.timing import copies_reads
from cimc.errors import Infeasible
from cimc.ir import Module
from cimc.passes.duplicate.greedy import slowest_first_copies
from cimc.passes.duplicate.infos import TIME_UNITS_PER_NS, LayerInfo


def copy_candidates(mvms: int, max_copies: int) -> list[tuple[int, int]]:
    """(copies, MVMs per copy) for every copy count where ceil(mvms / copies) changes."""
    out, c = [], 1
    max_copies = max(1, min(max_copies, mvms))
    while c <= max_copies:
        q = -(-mvms // c)
        out.append((c, q))
        if q == 1:
            break
        c = -(-mvms // (q - 1))
    return out


def undominated(cands: list[tuple]) -> list[tuple]:
    """Candidates (cells, time, load, big blocks, ...) no other one matches or beats on all
    four figures (the first of equals kept): the model's constraints see nothing else."""
    kept: list[tuple] = []
    for c in sorted(cands, key=lambda c: c[:4]):  # stable: equal figures keep their order
        if not any(k[1] <= c[1] and k[2] <= c[2] and k[3] <= c[3] for k in kept):
            kept.append(c)
    return kept


def longest_path_var(m, module: Module, layer_time: dict, horizon: int):
    """An int var >= the longest path, weight layers taking `layer_time`, others fixed."""
    fixed = {layer.name: layer.latency_ns for layer in evaluate(module, bounds=False).layers if layer.crossbars == 0}
    finish = {}
    end = m.new_int_var(0, horizon * 2, "makespan")
    for op in module.ops:
        if op.namespace != "nn" or op.result is None or op.kind == "nn.input":
            continue
        f = m.new_int_var(0, horizon * 2, f"finish:{op.result}")
        dur = layer_time.get(op.result, int(math.ceil(fixed.get(op.result, 0.0) * TIME_UNITS_PER_NS)))
        preds = [finish[o] for o in op.operands if o in finish]
        for p in preds:
            m.add(f >= p + dur)
        if not preds:
            m.add(f >= dur)
        finish[op.result] = f
        m.add(end >= f)
    return end


def solve_copies(module: Module, infos: list[LayerInfo], budget: int, objective: str, fill: float,
                 time_limit: float, bound_only: bool = False, check_only: bool = False,
                 alternatives: dict | None = None, least_cells=None,
                 whole_crossbars: bool = False) -> tuple[dict[str, int], float, dict]:
    """Copies per layer, the period (or latency) they reach in ns, and solver facts.
    least_cells: given the period reached (ns), the fewest cells the answer should use
    (compact mappings: crossbars whose tiles' digital units keep up).
    alternatives: {layer: [(tag, lanes, LayerInfo), ...]}: other block sets the layer may
    take instead of its own (other layouts, several lanes); a copy of k lanes doing q MVMs
    takes ceil(q / k) reads of k MVMs each. The tags chosen (where not the layer's own
    blocks) are in facts["choice"]."""
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver, solve

    t = module.target
    cap_cells = int(fill * budget * t.cells_per_xbar)
    options = {i.name: [(None, 1, i)] + list((alternatives or {}).get(i.name, ())) for i in infos}
    least = {i.name: min(options[i.name], key=lambda o: (o[2].cells, o[2].big_blocks))[2] for i in infos}
    base_cells = sum(v.cells for v in least.values())
    big = sum(min(v.big_blocks for _, _, v in options[i.name]) for i in infos)
    if whole_crossbars and base_cells > budget * t.cells_per_xbar:
        raise Infeasible(f"model '{module.name}': compact copies (the 'fast' pipeline) give every block a crossbar "
                         f"of its own, and one copy of every layer has {base_cells // t.cells_per_xbar} blocks, "
                         f"more than a budget of {budget} crossbars; raise the budget, or use the 'full' "
                         "pipeline, which packs blocks of several layers into one crossbar.")
    if base_cells > budget * t.cells_per_xbar or big > budget:
        raise Infeasible(f"model '{module.name}': one copy of every layer needs {base_cells:,} cells "
                         f"({math.ceil(base_cells / t.cells_per_xbar)} crossbars at best)"
                         + (f" and {big} crossbars to itself for blocks over half a crossbar" if big else "")
                         + f", more than a budget of {budget} crossbars; raise the budget.")
    if check_only:  # the budget holds one copy of everything
        return {}, 0.0, {}
    if base_cells > cap_cells:  # no room for any copy: one each, and pack decides whether that fits
        period = max(max(v.mvms * v.mvm_ns for v in least.values()),
                      sum(v.mvms * v.sum_mvm_ns for v in least.values()) / budget)
        facts = {"status": "ONE_COPY (no room for copies)", "optimal": True, "objective_ns": period,
                 "bound_ns": period, "cells": base_cells}
        choice = {i.name: tag for i in infos for tag, _, v in options[i.name] if v is least[i.name] and tag}
        if choice:
            facts["choice"] = choice
        return {i.name: 1 for i in infos}, period, facts
    units = lambda ns: int(math.ceil(ns * TIME_UNITS_PER_NS - 1e-6))  # noqa: E731
    m = cp_model.CpModel()
    choice: dict[str, list] = {}
    cells_terms, load_terms, big_terms, other_layout = [], [], [], []
    cells_of: dict[tuple, int] = {}
    # a start: the slowest-first copies (feasible for the cell and big-block limits; one copy
    # each when the objective is latency)
    start = slowest_first_copies(infos, cap_cells, budget)[0] if objective == "throughput" and \
        sum(i.cells for i in infos) <= cap_cells else {}
    layer_time = {}
    for i in infos:
        cands = []
        for tag, k, v in options[i.name]:
            max_c = min(i.mvms, (cap_cells - base_cells + least[i.name].cells) // max(v.cells, 1))
            if bound_only:  # a relaxation of every split pack may make: k-MVM reads shared out, not MVMs
                total = -(-i.mvms // k)  # the fewest reads of all copies together
                for c, r in copy_candidates(total, max_c):
                    cands.append((c * v.cells, units(r * k * v.mvm_ns), units(total * k * v.sum_mvm_ns),
                                  c * v.big_blocks, (tag, c, k)))
                continue
            for c, q in copy_candidates(i.mvms, max_c):
                reads = -(-q // k)
                # the load: every copy's own reads (copies split the MVMs evenly), not c times the
                # slowest copy's (that made the relaxed period "bound" exceed mappings pack finds)
                cands.append((c * v.cells, units(reads * k * v.mvm_ns), units(copies_reads(i.mvms, c, k) * k * v.sum_mvm_ns),
                              c * v.big_blocks, (tag, c, k)))
        choice[i.name] = []
        terms = []
        for cells, time_u, load_u, big_n, (tag, c, k) in undominated(cands):
            x = m.new_bool_var(f"{i.name}:{tag}:{c}x{k}")
            m.add_hint(x, tag is None and c == start.get(i.name, 1))
            choice[i.name].append(((tag, c), x))
            cells_of[i.name, tag, c] = cells
            cells_terms.append(cells * x)
            load_terms.append(load_u * x)
            terms.append(time_u * x)
            if big_n:
                big_terms.append(big_n * x)
            if tag is not None and tag[0]:
                other_layout.append(x)
        m.add_exactly_one([x for _, x in choice[i.name]])
        layer_time[i.name] = sum(terms)
    m.add(sum(cells_terms) <= cap_cells)
    if big_terms:
        m.add(sum(big_terms) <= budget)
    horizon = sum(units(v.mvms * v.sum_mvm_ns) for v in
                  (max(options[i.name], key=lambda o: o[2].mvms * o[2].sum_mvm_ns)[2] for i in infos)) + 1
    if objective == "throughput":
        # few crossbars shared by many layers: the period may exceed any one layer's time
        goal = m.new_int_var(0, horizon, "period")
        for i in infos:
            m.add(layer_time[i.name] <= goal)
        m.add(sum(load_terms) <= budget * goal)
    else:
        goal = longest_path_var(m, module, layer_time, horizon)
    m.minimize(goal)
    # presolve cannot shrink this model (one choice per layer, three sums) and took most of
    # the time: ResNet-50 0.54 -> 0.12 s per solve, same optima
    solver = deterministic_solver(time_limit, presolve=False)
    status = solve(solver, m)
    if status == cp_model.UNKNOWN and objective == "throughput" and not bound_only and start:
        # the time limit ran out before a first solution: slowest-first copies instead
        copies, period = slowest_first_copies(infos, cap_cells, budget)
        return copies, period, {"status": "GREEDY (CP-SAT found nothing in its time limit)", "optimal": False,
                                "objective_ns": period, "bound_ns": 0.0}
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise Infeasible(f"model '{module.name}': the duplication model has no solution within {budget} crossbars "
                         f"({solver.status_name(status)}).")
    best, bound = solver.objective_value, solver.best_objective_bound
    facts = {"status": solver.status_name(status), "optimal": status == cp_model.OPTIMAL,
             "objective_ns": best / TIME_UNITS_PER_NS, "bound_ns": bound / TIME_UNITS_PER_NS}
    if bound_only:
        return {}, best / TIME_UNITS_PER_NS, facts
    # second solve: the same objective value with the partition's layouts where they reach
    # it (more, smaller blocks pack worse), then the fewest cells (room for the packer)
    m.add(goal <= int(round(best)))
    m.clear_objective()
    cells_sum = sum(cells_terms)
    if least_cells:  # as few cells as give the digital units enough tiles, else the most
        short = m.new_int_var(0, cap_cells, "cells short")
        m.add(short >= min(cap_cells, least_cells(best / TIME_UNITS_PER_NS)) - cells_sum)
        m.minimize(short * (cap_cells + 1) + cells_sum)
    else:
        m.minimize(sum(other_layout) * (cap_cells + 1) + cells_sum if other_layout else cells_sum)
    m.clear_hints()
    for cands_xs in choice.values():
        for _, x in cands_xs:
            m.add_hint(x, solver.boolean_value(x))
    second = deterministic_solver(time_limit, presolve=False)
    status2 = solve(second, m)
    final = second if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE) else solver
    facts["second_status"] = second.status_name(status2)
    picked = {name: next(tc for tc, x in cx if final.boolean_value(x)) for name, cx in choice.items()}
    copies = {name: c for name, (tag, c) in picked.items()}
    chosen = {name: tag for name, (tag, c) in picked.items() if tag is not None}
    if chosen:
        facts["choice"] = chosen
    facts["cells"] = sum(cells_of[name, tag, c] for name, (tag, c) in picked.items())
    return copies, best / TIME_UNITS_PER_NS, facts
