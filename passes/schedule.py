"""schedule: start times of every op for one inference, and for a stream of K inferences.

Layers pipeline row by row, as on an ISAAC-like chip whose tile buffers pass each output
row on as soon as it is made. Every op's output rows are cut into at most `chunks` row
chunks; a chunk is the unit of scheduling:

- a chunk may start once the producer rows it reads exist: output row r of a convolution
  or pool reads input rows up to r x stride - top padding + dilation x (kernel - 1) (a
  transposed convolution up to (r + top padding) / stride); element-wise ops and
  concatenations along channels read the same rows (proportionally when the heights
  differ); ops that
  need the whole tensor (matmul, RNN, softmax, reshapes and transposes, global pools,
  norms other than BatchNormalization/LRN, concatenations along other axes) wait for all
  of it, and a non-spatial op is a single chunk;
- a weight layer's chunk puts its share of the layer's load on each of its crossbars (the
  load of the crossbar / chunks: copies split every row's outputs); a crossbar reads one
  block at a time, so chunks on one crossbar never overlap, whichever layer or inference
  they belong to; a chunk ends no earlier than one MVM after its inputs exist;
- an op's chunks end in row order;
- a chunk's inputs cross the network first: it ends no earlier than its share of the op's
  network time plus one MVM after its inputs exist;
- a digital op's chunk puts its share of the op's compute on the digital units of each tile
  that runs it (`cimc.cost.digital_tiles`: split evenly); a tile's digital units do one
  chunk at a time, whichever op or inference it belongs to;
- every op also streams its rows through its own unit (its tile buffer traffic: that time /
  chunks per chunk, one chunk after the other).

The list schedule takes chunks in the order their inputs become ready (ties: earlier
inference, earlier op, earlier chunk) and starts each as early as its crossbars allow.
Where the instance has at most `max_intervals` crossbar pieces, CP-SAT (one worker, fixed
seed, deterministic time limit, hinted with the list schedule) minimises the makespan of
the same model; the better is kept, and `schedule_method` records which and its status.
Writes `sched.slot(%op) {start_ns, end_ns}` (first chunk start, last chunk end) for
inference 0, and the K-inference makespan as `stream_makespan_ns`.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
from collections import defaultdict
from dataclasses import dataclass

from cimc.cost import (
    block_read_ns,
    digital_tiles,
    evaluate,
    mapping_loads,
    tiles_in_use,
)
from cimc.errors import PipelineError
from cimc.ir import Module, Op
from cimc.ops import DIGITAL_KINDS

UNITS_PER_NS = 10
ROW_LOCAL_NORMS = ("BatchNormalization", "LRN")


@dataclass
class _Job:
    name: str
    chunks: int
    unit_ns: float  # the op's own stream unit, per chunk
    step_ns: float  # a chunk ends at least this long after its inputs exist (one MVM)
    pieces: list  # (crossbar, ns per chunk)
    needs: list  # (producer index, [producer chunk each chunk needs, or -1 for none])


def _bounds(rows: int, chunks: int) -> list[int]:
    """First output row of every chunk, and the row count at the end."""
    return [i * rows // chunks for i in range(chunks)] + [rows]


def _last_input_row(op: Op, row: int, p_rows: int, rows: int) -> int | None:
    """The last producer row output row `row` of `op` reads (may be < 0: padding only), or
    None when the op needs the producer's whole output."""
    if op.kind in ("nn.conv", "nn.pool") and op.get("kernel") and op.get("stride"):
        k, s = op["kernel"][0], op["stride"][0]
        top = op["pads"][0] if op.get("pads") else 0
        d = op["dilation"][0] if op.get("dilation") else 1
        first = row * s - top  # the row of tap 0; the last tap that lands inside the input:
        taps = min(k - 1, (p_rows - 1 - first) // d)
        return first + taps * d if taps >= 0 else -1
    if op.kind == "nn.conv_transpose":  # input row i adds to output rows i x stride - top + tap
        top = op["pads"][0] if op.get("pads") else 0
        s, d = op["stride"][0], (op["dilation"][0] if op.get("dilation") else 1)
        rows_in = [(row + top - tap * d) // s for tap in range(op["kernel"][0]) if (row + top - tap * d) % s == 0]
        return max([i for i in rows_in if 0 <= i < p_rows], default=-1)
    if op.kind == "nn.pool":  # no window recorded (older mapping text): the common 3-row window
        halo = None if op["fn"].startswith(("Global", "Reduce")) else 1
    elif op.kind in ("nn.act", "nn.eltwise"):
        halo = 0
    elif op.kind == "nn.norm":
        halo = 0 if op["fn"] in ROW_LOCAL_NORMS else None
    elif op.kind == "nn.concat":
        halo = 0 if op["axis"] in (1, -3) else None
    else:
        halo = None
    return None if halo is None else -(-(row + 1) * p_rows // rows) - 1 + halo


def _jobs(module: Module, max_chunks: int) -> list[_Job]:
    report = evaluate(module.with_ops([op for op in module.ops if op.kind != "sched.slot"]), bounds=False)
    costs = {layer.name: layer for layer in report.layers}
    loads = mapping_loads(module)
    blocks, layer_xbar_load = loads.blocks, loads.layer_xbar_load
    in_use = tiles_in_use(module, loads)
    op_tiles = digital_tiles(module, blocks, loads.placed, in_use)
    rate = module.target.digital_ops_per_ns
    defs = module.by_name()
    ops = [op for op in module.ops if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output")]
    index = {op.result: n for n, op in enumerate(ops)}
    n_chunks, row_bounds = {}, {}
    for op in ops:
        shape = op["shape"]
        rows = shape[2] if len(shape) == 4 else 1
        n_chunks[op.result] = max(1, min(rows, max_chunks))
        row_bounds[op.result] = _bounds(rows, n_chunks[op.result])
    jobs = []
    for op in ops:
        g = n_chunks[op.result]
        ob = row_bounds[op.result]
        needs = []
        for o in dict.fromkeys(op.operands):
            if o not in index:
                continue
            pg, pb = n_chunks[o], row_bounds[o]
            p_rows = pb[-1]
            if len(defs[o]["shape"]) != 4 or len(op["shape"]) != 4 or _last_input_row(op, 0, p_rows, ob[-1]) is None:
                need = [pg - 1] * g  # the whole input
            else:  # every row of a chunk: with strides and transposed windows the last row may read less
                lasts = [max(_last_input_row(op, r, p_rows, ob[-1]) for r in range(ob[i], ob[i + 1])) for i in range(g)]
                need = [bisect.bisect_right(pb, min(p_rows - 1, last)) - 1 for last in lasts]
            needs.append((index[o], need))
        step = max((block_read_ns(module.target, b) for b in blocks.get(op.result, [])), default=0.0)
        pieces = [(x, load / g) for x, load in layer_xbar_load.get(op.result, {}).items()]
        if op.kind in DIGITAL_KINDS and op.get("ops"):  # split over its tiles' digital units, shared by every op there
            where = op_tiles.get(op.result) or in_use
            pieces += [(("digital", tile), op["ops"] / (rate * len(where)) / g) for tile in where]
        cost = costs.get(op.result)
        if cost is None:
            unit = lag = 0.0
        else:  # the op's own unit: its buffer traffic
            unit = cost.buffer_ns
            lag = cost.network_ns / g  # a chunk's inputs cross the network after they exist
        jobs.append(_Job(op.result, g, unit / g, step + lag, pieces, needs))
    return jobs


Span = dict  # (inference, job index, chunk) -> (start, end, ((resource, start), ...))


def _release(span: Span, inf: int, j: _Job, c: int) -> float:
    return max((span[(inf, p, need[c])][1] for p, need in j.needs if need[c] >= 0), default=0.0)


def _list_schedule(jobs: list[_Job], k: int) -> Span:
    """Event-driven list schedule: whenever a crossbar (or an op's unit) is free, it takes
    the waiting piece of highest priority: earlier inference, then earlier op, then
    earlier chunk. A chunk is done when all its pieces are (and one MVM after its inputs
    exist); the chunks that read it are released then."""
    users = defaultdict(list)  # (producer, chunk) -> [(consumer, chunk)]
    waiting = {}
    for n, j in enumerate(jobs):
        for c in range(j.chunks):
            deps = {(p, need[c]) for p, need in j.needs if need[c] >= 0}
            waiting[(n, c)] = len(deps)
            for d in deps:
                users[d].append((n, c))
    left = {(inf, n, c): w for inf in range(k) for (n, c), w in waiting.items()}
    resources: dict = {}
    pieces = [[(resources.setdefault(r, len(resources)), r, size)
               for r, size in [(("unit", n), j.unit_ns)] + j.pieces if size > 0] for n, j in enumerate(jobs)]
    busy_until = [0.0] * len(resources)
    queue = [[] for _ in resources]  # heap of (chunk, size, resource) waiting for the resource
    span: Span = {}
    todo: dict = {}  # chunk -> [pieces not started, release, end so far, placed pieces]
    # events (time, kind, sequence, chunk or resource): kind 0 a chunk is released, 1 a
    # resource with pieces waiting is free, 2 a chunk is done
    events = [(0.0, 0, 0, (inf, n, c)) for inf in range(k) for (n, c), w in waiting.items() if w == 0]
    heapq.heapify(events)
    seq = 0

    def begin(key, rid, r, size, now):
        nonlocal seq
        end = now + size
        busy_until[rid] = end
        t = todo[key]
        t[3].append((r, now))
        if end > t[2]:
            t[2] = end
        t[0] -= 1
        if t[0] == 0:
            seq += 1
            heapq.heappush(events, (t[2], 2, seq, key))

    while events:
        now, kind, _, key = heapq.heappop(events)
        if kind == 1:  # key is a resource id
            key, r, size = heapq.heappop(queue[key])[:3]
            rid = resources[r]
            begin(key, rid, r, size, now)
            if queue[rid]:
                seq += 1
                heapq.heappush(events, (busy_until[rid], 1, seq, rid))
            continue
        inf, n, c = key
        if kind == 0:
            todo[key] = [len(pieces[n]) + 1, now, now + jobs[n].step_ns, []]
            for rid, r, size in pieces[n]:
                if not queue[rid] and busy_until[rid] <= now:
                    begin(key, rid, r, size, now)
                else:
                    if not queue[rid]:
                        seq += 1
                        heapq.heappush(events, (busy_until[rid], 1, seq, rid))
                    heapq.heappush(queue[rid], (key, r, size))
            begin_done = todo[key]  # the release itself counts as one piece: done now
            begin_done[0] -= 1
            if begin_done[0] == 0:
                seq += 1
                heapq.heappush(events, (begin_done[2], 2, seq, key))
        else:
            _, release, _, placed = todo.pop(key)
            span[key] = (min([ps for _, ps in placed], default=release), now, tuple(placed))
            for u, uc in users[(n, c)]:
                ukey = (inf, u, uc)
                left[ukey] -= 1
                if left[ukey] == 0:
                    seq += 1
                    heapq.heappush(events, (now, 0, seq, ukey))
    return span


def check_schedule(jobs: list[_Job], span: Span, k: int) -> list[str]:
    """Every rule of the model, checked on a schedule: what it breaks (empty: none)."""
    errors = []
    busy = defaultdict(list)
    for inf in range(k):
        for n, j in enumerate(jobs):
            for c in range(j.chunks):
                if (inf, n, c) not in span:
                    errors.append(f"inference {inf}: {j.name} chunk {c} not scheduled")
                    continue
                s, e, placed = span[(inf, n, c)]
                r = _release(span, inf, j, c)
                sizes = dict([(("unit", n), j.unit_ns)] + j.pieces)
                if sorted(map(str, sizes)) != sorted(str(res) for res, _ in placed):
                    errors.append(f"inference {inf}: {j.name} chunk {c} is not on its crossbars and unit")
                    continue
                if s < r - 1e-6 or any(ps < r - 1e-6 or ps < s - 1e-6 for _, ps in placed):
                    errors.append(f"inference {inf}: {j.name} chunk {c} starts before its inputs exist ({r} ns)")
                if c and e < span[(inf, n, c - 1)][1] - 1e-6:
                    errors.append(f"inference {inf}: {j.name} chunk {c} ends before chunk {c - 1}")
                if e < r + j.step_ns - 1e-6 or any(e < ps + sizes[res] - 1e-6 for res, ps in placed):
                    errors.append(f"inference {inf}: {j.name} chunk {c} ends before its work is done")
                for res, ps in placed:
                    if sizes[res] > 0:
                        busy[res].append((ps, ps + sizes[res], f"{inf}:{j.name}:{c}"))
    for res, intervals in busy.items():
        intervals.sort()
        for (a, b, x), (c, d, y) in zip(intervals, intervals[1:]):
            if c < b - 1e-6:
                errors.append(f"{x} and {y} overlap on {res}: ({a}, {b}) and ({c}, {d})")
    return errors


def _cp_sat(jobs: list[_Job], k: int, time_limit: float):
    from ortools.sat.python import cp_model

    from cimc.passes.solver import deterministic_solver, solve

    u = lambda ns: int(math.ceil(ns * UNITS_PER_NS - 1e-9))  # noqa: E731
    # the hint: the list schedule of the same jobs with every time rounded up to whole units,
    # so that it is a solution of the model as given to CP-SAT
    q = lambda ns: u(ns) / UNITS_PER_NS  # noqa: E731
    hint = _list_schedule([dataclasses.replace(j, unit_ns=q(j.unit_ns), step_ns=q(j.step_ns),
                                               pieces=[(x, q(load)) for x, load in j.pieces]) for j in jobs], k)
    n_pieces = sum(j.chunks * (len(j.pieces) + 2) for j in jobs) * k  # each rounds up by < 1 unit
    horizon = u(_makespan(hint)) + n_pieces + 1
    m = cp_model.CpModel()
    starts, ends, placed, per_res = {}, {}, {}, defaultdict(list)
    makespan = m.new_int_var(0, horizon, "makespan")
    for inf in range(k):
        for n, j in enumerate(jobs):
            for c in range(j.chunks):
                key = (inf, n, c)
                e = m.new_int_var(0, horizon, f"e{key}")
                release = [ends[(inf, p, need[c])] for p, need in j.needs if need[c] >= 0]
                r = m.new_int_var(0, horizon, f"r{key}")
                if release:
                    m.add_max_equality(r, release)
                else:
                    m.add(r == 0)
                firsts, pieces = [], []
                for res, size in [(("unit", n), u(j.unit_ns))] + [(x, u(load)) for x, load in j.pieces]:
                    s = m.new_int_var(0, horizon, f"s{key}{res}")
                    m.add(s >= r)
                    m.add(e >= s + size)
                    firsts.append(s)
                    pieces.append((res, s))
                    if size > 0:
                        per_res[res].append(m.new_fixed_size_interval_var(s, size, f"i{key}{res}"))
                m.add(e >= r + u(j.step_ns))
                if c:  # rows leave in order
                    m.add(e >= ends[(inf, n, c - 1)])
                st = m.new_int_var(0, horizon, f"S{key}")
                m.add_min_equality(st, firsts)
                hinted = dict(hint[key][2])
                for res, s in pieces:
                    m.add_hint(s, round(hinted.get(res, hint[key][1]) * UNITS_PER_NS))
                m.add_hint(e, round(hint[key][1] * UNITS_PER_NS))
                starts[key], ends[key] = st, e
                placed[key] = pieces
                m.add(makespan >= e)
    for intervals in per_res.values():
        if len(intervals) > 1:
            m.add_no_overlap(intervals)
    m.minimize(makespan)
    solver = deterministic_solver(time_limit)
    status = solve(solver, m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, solver.status_name(status)
    v = lambda var: solver.value(var) / UNITS_PER_NS  # noqa: E731
    return ({key: (v(starts[key]), v(ends[key]), tuple((res, v(s)) for res, s in placed[key])) for key in starts},
            solver.status_name(status))


@dataclass(frozen=True)
class SchedulePass:
    name = "schedule"
    inferences: int = 8  # K, the stream scheduled back to back
    chunks: int = 16  # row chunks per op at most
    time_limit: float = 0.03  # CP-SAT deterministic time per solve (about 0.4 s of one core here)
    max_intervals: int = 1000  # crossbar pieces (all K inferences) CP-SAT takes on; larger: list schedule

    def __post_init__(self):
        if self.inferences > 1000 or self.chunks > 4096:  # the schedule of K x chunks pieces must fit in memory
            raise PipelineError(f"schedule: inferences = {self.inferences} and chunks = {self.chunks}; at most 1000 "
                                "inferences and 4096 chunks per op.")
        if self.inferences < 1 or self.chunks < 1 or self.time_limit <= 0 or self.max_intervals < 0:
            raise PipelineError("schedule: inferences and chunks must be >= 1, time-limit > 0, "
                                "max-intervals >= 0.")

    def solve(self, module: Module) -> tuple[list[_Job], dict[int, Span], list[str]]:
        """The jobs, the schedule for 1 and K inferences, and how each was found."""
        jobs = _jobs(module, self.chunks)
        results, methods = {}, []
        for k in sorted({1, self.inferences}):
            best = _list_schedule(jobs, k)
            method = "list"
            n_pieces = k * sum(j.chunks * (len(j.pieces) + 1) for j in jobs)
            if n_pieces <= self.max_intervals:
                got, status = _cp_sat(jobs, k, self.time_limit)
                # CP-SAT's times are rounded up to 0.1 ns: keep it unless it is really worse
                if got is not None and _makespan(got) <= _makespan(best) * (1 + 1e-3):
                    best, method = got, f"cp-sat {status.lower()}"
                else:
                    method = f"list (cp-sat {status.lower()})"
            results[k] = best
            methods.append(f"K={k}: {method}")
        return jobs, results, methods

    def run(self, module: Module) -> Module:
        module = module.with_ops([op for op in module.ops if op.kind != "sched.slot"])
        jobs, results, methods = self.solve(module)
        one = results[1]
        slots = []
        for n, j in enumerate(jobs):
            chunks = [one[(0, n, c)] for c in range(j.chunks)]
            slots.append(Op.make("sched.slot", None, [j.name], start_ns=float(min(s for s, _, _ in chunks)),
                                 end_ns=float(max(e for _, e, _ in chunks))))
        return module.with_ops(list(module.ops) + slots, schedule_method="; ".join(methods),
                               stream_inferences=self.inferences,
                               stream_makespan_ns=float(_makespan(results[self.inferences])))


def _makespan(span: dict) -> float:
    return max((e for _, e, _ in span.values()), default=0.0)
