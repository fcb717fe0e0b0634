"""The one way cimc's passes create and run a CP-SAT solver."""

from __future__ import annotations

from ortools.sat.python import cp_model

from cimc import progress


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


def solve(solver: cp_model.CpSolver, model: cp_model.CpModel) -> int:
    """`solver.solve(model)`, where an internal failure of CP-SAT's presolve (OR-Tools 9.15
    raises IndexError `absl::...::at` on some small packing models: google/or-tools#5288 is
    the same family) is answered by solving again without presolve; if that fails too, the
    status is UNKNOWN, which every caller already handles (a heuristic answer stands)."""
    watch = _Watch() if progress.active() else None
    try:
        return solver.solve(model, watch)
    except (IndexError, RuntimeError):
        if not solver.parameters.cp_model_presolve:
            return cp_model.UNKNOWN
    solver.parameters.cp_model_presolve = False
    try:
        return solver.solve(model, watch)
    except (IndexError, RuntimeError):
        return cp_model.UNKNOWN


class _Watch(cp_model.CpSolverSolutionCallback):
    """Each solution CP-SAT finds, on the progress line (only while one is shown: it watches
    the search, one worker as always, and changes nothing it finds)."""

    def __init__(self):
        super().__init__()
        self.found = 0

    def on_solution_callback(self) -> None:
        self.found += 1
        progress.detail(f"CP-SAT: solution {self.found}, objective {self.objective_value:.6g}, "
                        f"bound {self.best_objective_bound:.6g}")
