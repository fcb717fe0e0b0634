"""schedule: start times of every op for one inference, and for a stream of K inferences.

Jobs are the network's ops; a weight layer occupies each of its crossbars for its load
there (MVMs x MVM time of its blocks on it), from the layer's start. Crossbars run one job
at a time. A consumer may start once its producer has made the rows its first output needs
(kernel height over the producer's output height; all of it for ops that need the whole
tensor) and finishes no earlier than its producer plus one output row of its own work:
layers pipeline within one inference. Digital ops take their time on the tile's digital
units, which are not a shared resource here.

CP-SAT (one worker, fixed seed, deterministic time limit, hinted with the list schedule)
minimises the makespan when the model has at most `max_intervals` crossbar intervals;
otherwise, or when it finds nothing better, the list schedule (jobs in topological order,
each at its earliest start) is kept. `schedule_method` records which, with the status.
Writes `sched.slot(%op) {start_ns, end_ns}` for inference 0 and the stream's makespan in
`stream_makespan_ns`.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import defaultdict
from dataclasses import dataclass

from cimc.errors import PipelineError
from cimc.ir import Module, Op

UNITS_PER_NS = 10


@dataclass
class _Job:
    name: str
    duration: float
    mvm_ns: float  # one MVM (weight layers), or one output row (digital ops)
    xbar_loads: dict  # crossbar -> ns
    preds: list  # (producer name, start fraction, finish lag ns)


def _jobs(module: Module) -> list[_Job]:
    from cimc.cost import block_mvm_ns, evaluate, mapping_loads

    report = evaluate(module.with_ops([op for op in module.ops if op.kind != "sched.slot"]))
    times = {layer.name: layer.latency_ns for layer in report.layers}
    _, blocks, layer_xbar_load, _, _, _ = mapping_loads(module)
    mvm_ns = {name: max(block_mvm_ns(module.target, b) for b in bs) for name, bs in blocks.items()}
    defs = module.by_name()
    jobs = []
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        dur = times.get(op.result, 0.0)
        step = mvm_ns.get(op.result, 0.0)
        preds = []
        for o in op.operands:
            p = defs.get(o)
            if p is None or p.kind == "nn.input":
                continue
            frac, rows = _start_fraction(op, p)
            # the last output needs the producer's last output, and then at least one MVM
            preds.append((o, frac, max(dur / max(rows, 1), step)))
        jobs.append(_Job(op.result, dur, step, dict(layer_xbar_load.get(op.result, {})), preds))
    return jobs


def _start_fraction(op: Op, producer: Op) -> tuple[float, int]:
    """(share of the producer's work done before `op` can start, output rows of `op`)."""
    pshape, shape = producer["shape"], op["shape"]
    spatial = len(pshape) == 4 and len(shape) == 4
    if not spatial or op.kind in ("nn.matmul", "nn.rnn", "nn.softmax", "nn.dot", "nn.reshape") or (
            op.kind == "nn.pool" and op["fn"].startswith(("Global", "Reduce"))):
        return 1.0, 1
    k = op["kernel"][0] if op.kind in ("nn.conv", "nn.conv_transpose") else 1
    if op.kind == "nn.pool":
        k = 3  # window height is not kept on pools; 3 is the common case and errs late
    return min(1.0, k / max(pshape[2], 1)), shape[2]


def _pieces(j: _Job) -> list[tuple[object, float]]:
    """(crossbar or None, duration): a weight layer's work on each of its crossbars, each
    free to start on its own; a digital op is one piece on no crossbar."""
    return list(j.xbar_loads.items()) or [(None, j.duration)]


def _list_schedule(jobs: list[_Job], k: int) -> dict[tuple[int, str], tuple[float, float]]:
    """The better of two list schedules (see `_list_pass`): inference by inference, and
    all inferences interleaved by the time each job becomes ready."""
    best = None
    for interleave in (False, True):
        span = _list_pass(jobs, k, interleave)
        if best is None or _makespan(span) < _makespan(best) - 1e-9:
            best = span
    return best


def _list_pass(jobs: list[_Job], k: int, interleave: bool) -> dict[tuple[int, str], tuple[float, float]]:
    """(start, end) of every job. Jobs are taken inference by inference (topological
    within one), or, interleaving, the ready job with the earliest release first; each
    piece goes at the earliest time the job's inputs allow into a gap of its crossbar."""
    busy: dict = defaultdict(list)  # crossbar -> sorted [(start, end)]
    span: dict[tuple[int, str], tuple[float, float]] = {}
    index = {j.name: n for n, j in enumerate(jobs)}

    def bounds(inf: int, j: _Job) -> tuple[float, float]:
        release, finish_after = 0.0, 0.0
        for p, frac, lag in j.preds:
            ps, pe = span[(inf, p)]
            release = max(release, ps + frac * (pe - ps))
            finish_after = max(finish_after, pe + lag)
        return release, finish_after

    def place(inf: int, j: _Job) -> None:
        release, finish_after = bounds(inf, j)
        starts, ends = [], []
        for x, load in _pieces(j):
            s = max(release, finish_after - load)
            if x is not None:
                for a, b in busy[x]:
                    if a < s + load - 1e-9 and s < b - 1e-9:
                        s = b
                bisect.insort(busy[x], (s, s + load))
            starts.append(s)
            ends.append(s + load)
        span[(inf, j.name)] = (min(starts), max(ends))

    if not interleave:
        for inf in range(k):
            for j in jobs:
                place(inf, j)
        return span
    waiting = {(inf, j.name): sum(1 for p, _, _ in j.preds) for inf in range(k) for j in jobs}
    users = defaultdict(list)
    for j in jobs:
        for p, _, _ in j.preds:
            users[p].append(j)
    ready = [(0.0, inf, index[j.name]) for inf in range(k) for j in jobs if not j.preds]
    heapq.heapify(ready)
    while ready:
        _, inf, n = heapq.heappop(ready)
        j = jobs[n]
        place(inf, j)
        for u in users[j.name]:
            waiting[(inf, u.name)] -= 1
            if waiting[(inf, u.name)] == 0:
                heapq.heappush(ready, (bounds(inf, u)[0], inf, index[u.name]))
    return span


def _cp_sat(jobs: list[_Job], k: int, hint: dict, time_limit: float):
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver

    u = lambda ns: int(math.ceil(ns * UNITS_PER_NS - 1e-9))  # noqa: E731
    horizon = u(max(e for _, e in hint.values())) + k * len(jobs) * 4 + 1
    m = cp_model.CpModel()
    span, per_xbar = {}, defaultdict(list)
    end = m.new_int_var(0, horizon, "makespan")
    for inf in range(k):
        for j in jobs:
            hs, he = hint[(inf, j.name)]
            starts, ends = [], []
            for n, (x, load) in enumerate(_pieces(j)):
                s = m.new_int_var(0, horizon, f"s{inf}:{j.name}:{n}")
                size = max(u(load), 1)
                starts.append(s)
                ends.append(s + size)
                if x is not None:
                    per_xbar[x].append(m.new_fixed_size_interval_var(s, size, f"i{inf}:{j.name}:{n}"))
            js, je = m.new_int_var(0, horizon, f"S{inf}:{j.name}"), m.new_int_var(0, horizon, f"E{inf}:{j.name}")
            m.add_min_equality(js, starts)
            m.add_max_equality(je, ends)
            m.add_hint(js, u(hs))
            m.add_hint(je, u(he))
            m.add(end >= je)
            span[(inf, j.name)] = (js, je, u(j.duration))
            for p, frac, lag in j.preds:
                ps, pe, pdur = span[(inf, p)]
                m.add(js >= ps + int(frac * pdur))
                m.add(je >= pe + u(lag))
    for intervals in per_xbar.values():
        if len(intervals) > 1:
            m.add_no_overlap(intervals)
    m.minimize(end)
    solver = deterministic_solver(time_limit)
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, solver.status_name(status)
    return ({key: (solver.value(a) / UNITS_PER_NS, solver.value(b) / UNITS_PER_NS) for key, (a, b, _) in span.items()},
            solver.status_name(status))


@dataclass(frozen=True)
class SchedulePass:
    name = "schedule"
    inferences: int = 8  # K, the stream scheduled back to back
    time_limit: float = 0.03  # CP-SAT deterministic time per solve (about 0.4 s of one core here)
    max_intervals: int = 1000  # crossbar pieces (all K inferences) CP-SAT takes on; larger: list schedule

    def __post_init__(self):
        if self.inferences < 1 or self.time_limit <= 0 or self.max_intervals < 0:
            raise PipelineError("schedule: inferences must be >= 1, time-limit > 0, max-intervals >= 0.")

    def run(self, module: Module) -> Module:
        module = module.with_ops([op for op in module.ops if op.kind != "sched.slot"])
        jobs = _jobs(module)
        results, methods = {}, []
        for k in sorted({1, self.inferences}):
            best = _list_schedule(jobs, k)
            method = "list"
            n_pieces = k * sum(len(_pieces(j)) for j in jobs)
            if n_pieces <= self.max_intervals:
                got, status = _cp_sat(jobs, k, best, self.time_limit)
                # CP-SAT's times are rounded up to 0.1 ns: keep it unless it is really worse
                if got is not None and _makespan(got) <= _makespan(best) * (1 + 1e-3):
                    best, method = got, f"cp-sat {status.lower()}"
                else:
                    method = f"list (cp-sat {status.lower()})"
            results[k] = best
            methods.append(f"K={k}: {method}")
        one = results[1]
        slots = [Op.make("sched.slot", None, [j.name], start_ns=float(one[(0, j.name)][0]),
                         end_ns=float(one[(0, j.name)][1])) for j in jobs]
        return module.with_ops(list(module.ops) + slots, schedule_method="; ".join(methods),
                               stream_inferences=self.inferences,
                               stream_makespan_ns=float(_makespan(results[self.inferences])))


def _makespan(span: dict) -> float:
    return max((e for _, e in span.values()), default=0.0)
