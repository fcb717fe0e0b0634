"""The verifier: structure first, then each op, then whole-mapping rules.

1. structure: known op kinds, operand counts, result present iff the kind defines one,
   unique result names, operands defined by an earlier op, attributes of the right type;
2. per op: the check hook of its kind in `cimc.ops.OPS`;
3. mapping: each copy of a layer's blocks covers its matrices exactly once, copies are
   numbered 0..k-1, every block is placed once (or none is), no two blocks overlap in a
   crossbar.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from cimc import facts as module_facts
from cimc.errors import VerifyError
from cimc.ir import Module, Op
from cimc.mapping import WEIGHT_KINDS, block_footprint, weight_boxes
from cimc.ops import OPS, TYPE_TEXT, _is

NAME = re.compile(r"[A-Za-z0-9_.$\-]+")  # a value or module name the text can hold (VALUE_NAME in mapping.lark)


def _where(op: Op) -> str:
    return f"%{op.result} = {op.kind}" if op.result is not None else f"{op.kind}(%{', %'.join(op.operands)})"


def _structure(module: Module, typed: dict | None) -> dict[str, Op]:
    if not NAME.fullmatch(module.name):
        raise VerifyError(f"module name @{module.name!r} cannot be written as mapping-IR text; use letters, digits "
                          "and _ . $ - only.")
    defs: dict[str, Op] = {}
    for i, op in enumerate(module.ops):
        try:
            _structure_op(op, defs, typed)
        except VerifyError as e:
            raise VerifyError(str(e), i) from None
    return defs


def _structure_op(op: Op, defs: dict[str, Op], typed: dict | None) -> None:
    spec = OPS.get(op.kind)
    if spec is None:
        raise VerifyError(f"{_where(op)}: unknown op kind '{op.kind}'. Known kinds: {', '.join(sorted(OPS))}.")
    n = len(op.operands)
    if n < spec.min_operands or (spec.max_operands is not None and n > spec.max_operands):
        want = spec.min_operands if spec.max_operands == spec.min_operands else f"at least {spec.min_operands}"
        raise VerifyError(f"{_where(op)}: takes {want} operand(s), got {n}.")
    if spec.has_result != (op.result is not None):
        raise VerifyError(f"{_where(op)}: {'needs' if spec.has_result else 'must not have'} a result name.")
    for name in (op.result, *op.operands):
        if name is not None and not (type(name) is str and NAME.fullmatch(name)):
            raise VerifyError(f"{_where(op)}: the value name {name!r} cannot be written as mapping-IR text; use "
                              "letters, digits and _ . $ - only.")
    for o in op.operands:
        if o not in defs:
            raise VerifyError(f"{_where(op)}: operand %{o} is not defined by an earlier op.")
    if typed is None or typed.get(id(op)) is not op:  # ops are immutable: their attributes are checked once
        _attr_types(op, spec, _where(op))
        if typed is not None:
            typed[id(op)] = op
    if op.result is not None:
        if op.result in defs:
            raise VerifyError(f"{_where(op)}: the name %{op.result} is defined twice.")
        defs[op.result] = op


def _attr_types(op: Op, spec, where: str) -> None:
    present = op._by_key
    for key, kind in spec.required.items():
        if key not in present:
            raise VerifyError(f"{where}: missing attribute '{key}' ({TYPE_TEXT[kind]}).")
    for key, value in op.attrs:
        kind = spec.required.get(key) or spec.optional.get(key)
        if kind is None:
            raise VerifyError(f"{where}: unknown attribute '{key}' for {op.kind}.")
        if not _is(kind, value):
            raise VerifyError(f"{where}: attribute '{key}' must be {TYPE_TEXT[kind]}, got {value!r}.")


def _overlapping(boxes: np.ndarray) -> tuple[int, int] | None:
    """First pair of half-open boxes (n x 2k array of lo/hi pairs) that overlap, if any."""
    n = len(boxes)
    if n < 2:
        return None
    k = boxes.shape[1] // 2
    if n > 64:
        # Paint the boxes on the grid their corners make: cheap when they tile a region
        # (the usual case); a cell painted twice reveals an overlap.
        axes = [np.unique(boxes[:, 2 * d:2 * d + 2]) for d in range(k)]
        if np.prod([len(a) for a in axes], dtype=np.float64) <= 8e6:
            idx = [np.searchsorted(axes[d], boxes[:, 2 * d:2 * d + 2]) for d in range(k)]
            grid = np.zeros([len(a) - 1 for a in axes], dtype=np.int32)
            clash = False
            for i in range(n):
                cell = grid[tuple(slice(idx[d][i, 0], idx[d][i, 1]) for d in range(k))]
                if cell.any():
                    clash = True
                    break
                cell += 1
            if not clash:
                return None
            # fall through to find the pair by name
    for i in range(n - 1):
        rest = boxes[i + 1:]
        hit = np.ones(len(rest), dtype=bool)
        for d in range(k):
            lo, hi = boxes[i, 2 * d], boxes[i, 2 * d + 1]
            hit &= (rest[:, 2 * d] < hi) & (lo < rest[:, 2 * d + 1])
        if hit.any():
            return i, i + 1 + int(np.argmax(hit))
    return None


SMALL = 16  # up to this many boxes, a pairwise test in Python is quicker than numpy's set-up


def _overlapping_few(boxes: list) -> tuple[int, int] | None:
    """`_overlapping` for a few boxes given as tuples (lo, hi, lo, hi, ...)."""
    for i in range(len(boxes) - 1):
        a = boxes[i]
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if all(b[d] < a[d + 1] and a[d] < b[d + 1] for d in range(0, len(a), 2)):
                return i, j
    return None


def _mapping_key(module: Module) -> tuple:
    """What the whole-mapping rules read: the target and the weight, block and placement ops."""
    return (module.target, *(op for op in module.ops if op.namespace == "map" or op.kind in WEIGHT_KINDS))


def _check_mapping(module: Module, defs: dict[str, Op]) -> None:
    target = module.target
    blocks_of: dict[tuple[str, int], list[Op]] = defaultdict(list)
    placed: dict[str, Op] = {}
    for op in module.ops:
        if op.kind == "map.block":
            blocks_of[(op.operands[0], op["copy"])].append(op)
        elif op.kind == "map.place":
            b = op.operands[0]
            if b in placed:
                raise VerifyError(f"{_where(op)}: block %{b} is placed twice.")
            placed[b] = op
    copies: dict[str, set[int]] = defaultdict(set)
    for (layer_name, copy), blocks in blocks_of.items():
        copies[layer_name].add(copy)
        layer = defs[layer_name]
        boxes = [box for b in blocks for box in weight_boxes(b, layer["cols"])]
        vol = sum((g1 - g0) * (r1 - r0) * (c1 - c0) for g0, g1, r0, r1, c0, c1 in boxes)
        want = layer["groups"] * layer["rows"] * layer["cols"]
        pair = _overlapping_few(boxes) if len(boxes) <= SMALL else _overlapping(np.array(boxes, dtype=np.int64))
        if pair is not None:
            owner = [b for b in blocks for _ in weight_boxes(b, layer["cols"])]
            a, b = owner[pair[0]], owner[pair[1]]
            raise VerifyError(f"%{a.result} and %{b.result}: blocks of copy {copy} of %{layer_name} overlap.")
        if vol != want:
            raise VerifyError(
                f"%{layer_name}: the blocks of copy {copy} cover {vol} of its {want} weights; "
                "each copy's blocks must cover every group, row and column exactly once.")
    for layer_name, cs in copies.items():
        if defs[layer_name].get("copies") and cs != {0}:
            raise VerifyError(f"%{layer_name}: has compact copies (copies = {defs[layer_name]['copies']}) and copy "
                              f"blocks {sorted(cs - {0})}; keep one or the other.")
        if cs != set(range(len(cs))):
            raise VerifyError(f"%{layer_name}: copies are numbered {sorted(cs)}; they must be 0..{len(cs) - 1}.")
    # explicit shares: one per copy, on all of its blocks or none, adding up to the layer's MVMs
    for layer_name, cs in copies.items():
        shares = {}
        for c in cs:
            values = {b.get("share") for b in blocks_of[(layer_name, c)]}
            if len(values) > 1:
                raise VerifyError(f"%{layer_name}: the blocks of copy {c} have different shares {sorted(map(str, values))}.")
            shares[c] = values.pop()
        given = [v for v in shares.values() if v is not None]
        if given and len(given) != len(shares):
            raise VerifyError(f"%{layer_name}: some copies have a share and some not; give every copy one or none.")
        if given and sum(given) != defs[layer_name]["mvms"]:
            raise VerifyError(f"%{layer_name}: the copies' shares add up to {sum(given)}, not the layer's "
                              f"{defs[layer_name]['mvms']} MVMs.")
    if placed:
        unplaced = [b.result for bs in blocks_of.values() for b in bs if b.result not in placed]
        if unplaced:
            raise VerifyError(f"%{unplaced[0]}: block is not placed (and {len(unplaced) - 1} more); "
                              "place every block or none.")
        by_xbar: dict[tuple[int, int], list[tuple[Op, Op]]] = defaultdict(list)
        for b, p in placed.items():
            by_xbar[(p["tile"], p["xbar"])].append((defs[b], p))
        for (tile, xbar), items in by_xbar.items():
            if len(items) < 2:
                continue
            rects = []
            for block, p in items:
                fp = block_footprint(target, block)
                r, c = p["at"]
                rects.append([r, r + fp.rows, c, c + fp.cols])
            pair = _overlapping_few(rects) if len(rects) <= SMALL else _overlapping(np.array(rects, dtype=np.int64))
            if pair is not None:
                a, b = items[pair[0]][0].result, items[pair[1]][0].result
                raise VerifyError(f"blocks %{a} and %{b} overlap in crossbar {xbar} of tile {tile}.")


class Verifier:
    """Verifies modules, remembering what passed: ops are immutable, so an op whose attributes
    were typed, or whose check passed with the very same operand ops and target, need not be
    checked again; a mapping whose ops are the very objects of the last one that passed
    (schedule and cost add ops but leave the blocks alone) neither. The memory is this
    object's (a pipeline run keeps one), never the ops'."""

    def __init__(self):
        self._typed: dict[int, Op] = {}  # id(op) -> op (kept, so that the id is not reused)
        self._checked: dict[int, tuple] = {}  # id(op) -> (op, target, operand ops...)
        self._last_mapping: tuple | None = None

    def verify(self, module: Module) -> Module:
        """Raise VerifyError naming the op and the rule broken; return the module if it holds."""
        module_facts.check(module.attrs)
        defs = _structure(module, self._typed)
        for i, op in enumerate(module.ops):
            spec = OPS[op.kind]
            if spec.check is not None:
                inputs = (op, module.target, *(defs[o] for o in op.operands))
                seen = self._checked.get(id(op))
                if seen is not None and len(seen) == len(inputs) and all(a is b for a, b in zip(seen, inputs)):
                    continue
                err = spec.check(op, defs, module.target)
                if err:
                    raise VerifyError(f"{_where(op)}: {err}.", i)
                self._checked[id(op)] = inputs
        key = _mapping_key(module)
        last = self._last_mapping
        if last is None or len(last) != len(key) or not all(a is b for a, b in zip(last, key)):
            _check_mapping(module, defs)
            self._last_mapping = key
        return module


def verify(module: Module) -> Module:
    """Raise VerifyError naming the op and the rule broken; return the module if it holds."""
    return Verifier().verify(module)
