"""The one way cimc's passes create a CP-SAT solver."""

from __future__ import annotations

from ortools.sat.python import cp_model


def deterministic_solver(time_limit: float, presolve: bool = True) -> cp_model.CpSolver:
    """A CP-SAT solver whose answer depends only on its model: one worker, a fixed seed and a
    deterministic time limit (solver work units, not wall-clock seconds). It leaves Ctrl-C to
    Python (as KeyboardInterrupt) instead of stopping the search and reporting no solution.
    presolve=False for models presolve cannot shrink (it costs more than it saves there)."""
    solver = cp_model.CpSolver()
    solver.parameters.catch_sigint_signal = False
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = time_limit
    solver.parameters.cp_model_presolve = presolve
    return solver
