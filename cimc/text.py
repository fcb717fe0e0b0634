"""Mapping-IR text: `print_module` and `parse`, exact inverses of each other.

`parse(print_module(m)) == m` for every valid Module, and `print_module(parse(t)) == t` for
every text the printer wrote. The grammar is `mapping_ir.lark` (LALR). Errors carry
file:line:col, the source line and a caret.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import VisitError

from cimc import files
from cimc.errors import CimcError, MappingSyntaxError, TargetError, VerifyError
from cimc.ir import INT_END, INT_MIN, Module, Op, freeze_attrs
from cimc.targets import from_dict
from cimc.verify import verify as _verify

# ---- printing --------------------------------------------------------------------------


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same float
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return "[" + ", ".join(_value(x) for x in v) + "]"


def _attrs(attrs) -> str:
    return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in attrs) + "}"


def print_op(op: Op) -> str:
    lhs = f"%{op.result} = " if op.result is not None else ""
    args = ", ".join(f"%{o}" for o in op.operands)
    tail = f" {_attrs(op.attrs)}" if op.attrs else ""
    return f"{lhs}{op.kind}({args}){tail}"


def print_module(module: Module) -> str:
    """The module as mapping-IR text (ends with a newline)."""
    target_attrs = freeze_attrs(module.target.to_dict())
    lines = [f"module @{module.name} {_attrs(module.attrs)} target {_attrs(target_attrs)} {{"]
    lines += [f"  {print_op(op)}" for op in module.ops]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- parsing ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "mapping_ir.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class _ValueError(Exception):
    """A literal the IR cannot hold (an integer over 64 bits, a number that overflows)."""

    def __init__(self, message: str, tok):
        super().__init__(message)
        self.tok = tok


@v_args(inline=True)
class _Build(Transformer):
    def int(self, tok):
        digits = len(tok.lstrip("-"))
        value = int(tok) if digits <= 20 else None  # never convert a 400-digit literal
        if value is None or not INT_MIN <= value < INT_END:
            raise _ValueError(f"integer {tok[:24]}{'...' if len(tok) > 24 else ''} ({digits} digits) does not fit "
                              "in 64 bits", tok)
        return value

    def float(self, tok):
        value = float(tok)
        if not math.isfinite(value):
            raise _ValueError(f"number {tok[:24]} is not finite (it overflows a 64-bit float)", tok)
        return value

    def string(self, tok):
        return json.loads(tok)

    def true(self):
        return True

    def false(self):
        return False

    def list(self, *items):
        return tuple(i for i in items if i is not None)

    def attr(self, key, value):
        return (str(key), value)

    def attr_dict(self, *items):
        return [i for i in items if i is not None]


_WHAT = {"VALUE_NAME": "a value like %x", "MODULE_NAME": "a module name like @net", "OP_KIND": "an op kind like nn.conv",
         "KEY": "an attribute name", "INT": "an integer", "FLOAT": "a number", "STRING": 'a "string"'}


def _describe(terminal: str) -> str:
    if terminal in _WHAT:
        return _WHAT[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
        return f"'{pattern.value}'" if pattern.type == "str" else terminal
    except KeyError:
        return terminal


def _line_of(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _duplicate_keys(pairs, what: str):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"attribute '{k}' is given twice in {what}")
        seen.add(k)


def parse(text: str, filename: str = "<text>", verify: bool = True) -> Module:
    """Parse mapping-IR text into a Module (verified unless `verify=False`)."""
    try:
        tree = _parser().parse(text)
    except RecursionError:
        raise MappingSyntaxError("lists are nested too deep to read", filename, 1, 1, _line_of(text, 1)) from None
    except UnexpectedInput as e:
        line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
        token = getattr(e, "token", None)
        if token is not None and getattr(token, "type", "") == "$END":
            msg = "the text ends early: a closing '}' or an op is missing"
        elif token is not None:
            expected = sorted({_describe(t) for t in (getattr(e, "expected", []) or [])})
            msg = f"unexpected '{token}'" + (f"; expected {' or '.join(expected[:8])}" if expected else "")
        else:
            msg = f"unexpected character {text[e.pos_in_stream]!r}" if getattr(e, "pos_in_stream", None) is not None and e.pos_in_stream < len(text) else "syntax error"
        raise MappingSyntaxError(msg, filename, line, col, _line_of(text, line)) from None

    def fail(msg: str, meta) -> MappingSyntaxError:
        line, col = getattr(meta, "line", 1), getattr(meta, "column", 1)
        return MappingSyntaxError(msg, filename, line, col, _line_of(text, line))

    build = _Build()

    def transform(subtree):
        try:
            return build.transform(subtree)
        except VisitError as e:
            if isinstance(e.orig_exc, _ValueError):
                tok = e.orig_exc.tok
                raise MappingSyntaxError(str(e.orig_exc), filename, tok.line, tok.column,
                                         _line_of(text, tok.line)) from None
            if isinstance(e.orig_exc, RecursionError):
                raise fail("lists are nested too deep to read", subtree.meta) from None
            raise
        except RecursionError:
            raise fail("lists are nested too deep to read", subtree.meta) from None

    name_tok, mod_attrs_tree, target_tree, *op_trees = tree.children
    mod_attrs = transform(mod_attrs_tree)
    target_pairs = transform(target_tree)
    try:
        _duplicate_keys(mod_attrs, "the module attributes")
        _duplicate_keys(target_pairs, "the target")
        target = from_dict(dict(target_pairs), where="target")
    except (ValueError, TargetError) as e:
        raise fail(str(e), target_tree.meta) from None
    ops, lines = [], []
    for t in op_trees:
        result_tok, kind_tok, *rest = t.children
        attrs_tree = rest[-1] if rest and getattr(rest[-1], "data", None) == "attr_dict" else None
        operands = [str(x)[1:] for x in rest if isinstance(x, Token) and x.type == "VALUE_NAME"]
        pairs = transform(attrs_tree) if attrs_tree is not None else []
        try:
            _duplicate_keys(pairs, f"{kind_tok}")
            op = Op(str(kind_tok), str(result_tok)[1:] if result_tok is not None else None,
                    tuple(operands), freeze_attrs(pairs))
        except (ValueError, TypeError) as e:
            raise fail(str(e), t.meta) from None
        ops.append(op)
        lines.append(t.meta)
    module = Module(str(name_tok)[1:], target, tuple(ops), freeze_attrs(mod_attrs))
    if verify:
        try:
            _verify(module)
        except VerifyError as e:
            meta = lines[e.index] if getattr(e, "index", None) is not None else tree.meta
            for attr in getattr(mod_attrs_tree, "children", ()):
                if getattr(e, "fact", None) is not None and getattr(attr, "children", None) \
                        and str(attr.children[0]) == e.fact:
                    meta = attr.meta
            raise fail(str(e), meta) from None
    return module


def parse_file(path: "str | Path", verify: bool = True) -> Module:
    path = Path(path)
    text = files.read_text(path, "mapping-IR file", missing=f"{path}: no such mapping-IR file.")
    if not text.strip():
        raise CimcError(f"{path}: the file is empty; write a module, e.g. with cimc compile -o {path.name}.")
    return parse(text, filename=str(path), verify=verify)
