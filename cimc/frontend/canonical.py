"""The canonical order of ops: isomorphic graphs give the same ops in the same order, whatever
their names (colour refinement over operands and users, twins individualised one at a time)."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections import Counter

from cimc.ir import Op

NAME_ATTRS = ("onnx", "weight", "name")  # attributes that name things: not part of what an op computes


COMMUTATIVE = ("Add", "Mul", "Sum", "Max", "Min", "Mean")


def commutes(op: Op) -> bool:
    return op.kind == "nn.eltwise" and op.get("fn") in COMMUTATIVE


def canonical_order(ops: list[Op]) -> list[Op]:
    """The ops in an order that depends only on what the graph computes, not on how its file
    numbers or orders the nodes: isomorphic graphs give the same order, so they map and cost
    the same. Each op gets a colour from its kind and attributes (names left out), refined
    until stable by the colours of its operands and of the ops it feeds (positions count,
    except in commutative element-wise ops): colour refinement, as in graph canonisation.
    Ops are taken in Kahn's order by (depth from the inputs, colour, where their operands came
    in the new order). Where ops still share a colour they are symmetric (a branch and its
    twin): the first in file order is taken and marked, and the colours are refined again, so
    the ops related to it are told from their twins' (individualisation). Commutative ops
    take their operands in (colour, new order) order. Inputs keep their order and come
    first; the output op comes last."""
    def digest(value) -> str:  # stable across processes (str hashes are salted)
        return hashlib.sha1(repr(value).encode()).hexdigest()[:16]

    inputs = [op for op in ops if op.kind == "nn.input"]
    body = [op for op in ops if op.kind != "nn.input" and op.result is not None]
    tail = [op for op in ops if op.result is None]
    names = {op.result for op in inputs} | {op.result for op in body}
    users: dict[str, list[tuple[str, int]]] = {n: [] for n in names}
    for op in body + tail:
        for pos, o in enumerate(op.operands):
            if o in users:
                users[o].append((op.result or "", 0 if commutes(op) else pos))
    by_name = {op.result: op for op in body}
    color = {op.result: f"input{n}" for n, op in enumerate(inputs)}
    for op in body:
        color[op.result] = digest((op.kind, [(k, v) for k, v in op.attrs if k not in NAME_ATTRS]))
    color[""] = "output"

    def refine(color: dict) -> dict:
        classes = len(set(color.values()))
        for _ in range(len(color) + 1):
            new = {"": "output"}
            for name in names:
                op = by_name.get(name)
                ins = [color[o] for o in op.operands] if op is not None else []
                if op is not None and commutes(op):
                    ins.sort()
                outs = sorted((color[u], pos) for u, pos in users[name])
                new[name] = digest((color[name], ins, outs))
            color = new
            now = len(set(color.values()))
            if now == classes:
                return color
            classes = now
        return color

    color = refine(color)
    depth: dict[str, int] = {op.result: 0 for op in inputs}
    for op in body:  # ops come in a topological order (the frontend sorted them)
        depth[op.result] = 1 + max((depth.get(o, 0) for o in op.operands), default=0)
    index = {op.result: n for n, op in enumerate(body)}
    emitted = {op.result: n for n, op in enumerate(inputs)}  # position in the new order
    waiting = {op.result: sum(1 for o in set(op.operands) if o in index) for op in body}

    def key(name: str) -> tuple:
        return (depth[name], color[name], tuple(sorted(emitted.get(o, -1) for o in by_name[name].operands)),
                index[name])

    left = Counter(color[op.result] for op in body)  # colours of the ops not yet taken
    ready = [key(r) for r, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out: list[Op] = []
    while ready:
        name = body[heapq.heappop(ready)[-1]].result
        if left[color[name]] > 1:  # it has a twin: mark the one taken, and tell their neighbours apart
            color[name] = digest((color[name], "taken"))
            color = refine(color)
            left = Counter(color[r] for r in index if r not in emitted and r != name)
            ready = [key(body[k[-1]].result) for k in ready]
            heapq.heapify(ready)
        else:
            left[color[name]] -= 1
        op = by_name[name]
        emitted[name] = len(inputs) + len(out)
        if commutes(op):
            ordered = tuple(sorted(op.operands, key=lambda o: (color.get(o, o), emitted.get(o, -1))))
            if ordered != op.operands:
                op = dataclasses.replace(op, operands=ordered)
        out.append(op)
        for u, _ in users[name]:
            if u in waiting:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, key(u))
    return inputs + out + tail
