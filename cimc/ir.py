"""The graph IR: immutable ops in a Module.

Invariants (checked by `cimc.verify.verify`):
- ops are in topological order: an operand is the result of an earlier op;
- result names are unique within a Module;
- attribute values are from a closed set (int, float, str, bool, and tuples of them), so
  every Module prints to mapping-IR text and parses back equal.

Ops are frozen; passes build new Modules. The networkx graph is derived on demand.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from cimc.targets import Target

AttrValue = Union[int, float, str, bool, tuple]


_ATOMS = (int, str, bool)


INT_MIN, INT_END = -(2 ** 63), 2 ** 63  # attribute integers are 64-bit: the text reads no others


def _int(value: int) -> int:
    if not INT_MIN <= value < INT_END:
        raise ValueError(f"attribute integer {str(value)[:24]}... does not fit in 64 bits")
    return value


def _freeze(value) -> AttrValue:
    t = type(value)
    if t is str or t is bool:
        return value
    if t is int:
        return value if INT_MIN <= value < INT_END else _int(value)
    if t is tuple:
        for v in value:  # a tuple of plain scalars is already frozen (the common case)
            if type(v) not in _ATOMS or (type(v) is int and not INT_MIN <= v < INT_END):
                return tuple(_freeze(v) for v in value)
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"attribute value {value} is not finite")
        return value
    # numpy scalars and the like
    if hasattr(value, "item"):
        return _freeze(value.item())
    raise TypeError(f"attribute value {value!r} of type {type(value).__name__} is not int, float, str, bool or a tuple")


def freeze_attrs(attrs: dict | Iterable[tuple[str, object]]) -> tuple[tuple[str, AttrValue], ...]:
    items = attrs.items() if isinstance(attrs, dict) else attrs
    return tuple(sorted([(k if type(k) is str else str(k), _freeze(v)) for k, v in items]))


@dataclass(frozen=True)
class Op:
    """One operation: `%result = kind(%operands...) {attrs}`.

    `result` is None for ops that define no value (map.place, nn.output, cost.*).
    `attrs` is a tuple of (key, value) pairs sorted by key, so equal ops compare equal.
    """

    kind: str
    result: str | None
    operands: tuple[str, ...] = ()
    attrs: tuple[tuple[str, AttrValue], ...] = ()

    def __post_init__(self):
        # Derived from the op's own fields only, once, as it is made (never from a target or
        # other ops, and never written later): an analysis that depends on more lives outside
        # the op (cimc.analyses, or a table keyed by the op).
        self.__dict__["_by_key"] = dict(self.attrs)
        self.__dict__["namespace"] = self.kind.split(".", 1)[0]  # read on every walk over the ops

    @functools.cached_property
    def block_dims(self) -> tuple:
        """A `map.block`'s size from its own attributes: (groups, rows, cols, layout, lanes,
        pool). The geometry (`cimc.mapping`) memoises footprints per target by it."""
        a = self._by_key
        g0, g1 = a["groups"]
        r0, r1 = a["rows"]
        c0, c1 = a["cols"]
        return g1 - g0, r1 - r0, c1 - c0, a["layout"], a.get("lanes", 1), a.get("pool", 0)

    @staticmethod
    def make(kind: str, result: str | None, operands: Iterable[str] = (), **attrs) -> "Op":
        return Op(kind, result, tuple(operands), freeze_attrs(attrs))

    @property
    def a(self) -> dict[str, AttrValue]:
        """The attributes as a dict (a fresh copy each call)."""
        return dict(self._by_key)

    def get(self, key: str, default=None):
        return self._by_key.get(key, default)

    def __getitem__(self, key: str):
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"op {self.kind} %{self.result} has no attribute '{key}'") from None

    def with_attrs(self, **changes) -> "Op":
        merged = dict(self._by_key)  # already frozen: only the changes need freezing
        for k, v in changes.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = _freeze(v)
        return Op(self.kind, self.result, self.operands, tuple(sorted(merged.items())))


@dataclass(frozen=True)
class Module:
    """A network and its mapping onto one target.

    `attrs` carries module-level facts (the source model, the passes run so far).
    """

    name: str
    target: Target
    ops: tuple[Op, ...]
    attrs: tuple[tuple[str, AttrValue], ...] = field(default=())

    def with_ops(self, ops: Iterable[Op], **attr_changes) -> "Module":
        attrs = dict(self.attrs)
        for k, v in attr_changes.items():
            attrs[k] = _freeze(v)
        return Module(self.name, self.target, tuple(ops), tuple(sorted(attrs.items())))

    def with_target(self, target: Target) -> "Module":
        return Module(self.name, target, self.ops, self.attrs)

    @functools.cached_property
    def _attr_map(self) -> dict:  # derived from the module's own attrs
        return dict(self.attrs)

    def get(self, key: str, default=None):
        return self._attr_map.get(key, default)

    def by_name(self) -> dict[str, Op]:
        return {op.result: op for op in self.ops if op.result is not None}

    def of_kind(self, *kinds: str) -> Iterator[Op]:
        return (op for op in self.ops if op.kind in kinds)

    def users(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {}
        for op in self.ops:
            for o in op.operands:
                users.setdefault(o, []).append(op)
        return users

    def graph(self):
        """The def-use graph of the `nn.*` ops as a networkx DiGraph (derived, not stored)."""
        import networkx as nx

        g = nx.DiGraph()
        for op in self.ops:
            if op.namespace == "nn" and op.result is not None:
                g.add_node(op.result, op=op)
        for op in self.ops:
            if op.namespace == "nn" and op.result is not None:
                for o in op.operands:
                    if o in g:
                        g.add_edge(o, op.result)
        return g
