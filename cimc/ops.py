"""The op table: every op kind, its operands, result, attributes and per-op check.

Attribute types: int, float, str, bool, ints (tuple of int), strs (tuple of str),
range (a pair [lo, hi) of ints with 0 <= lo < hi). A per-op check receives the op, the
ops it uses (by name) and the Module's target, and returns an error text or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from cimc.mapping import (
    LAYOUTS,
    WEIGHT_KINDS,
    block_footprint,
    block_pool,
    max_cols_per_block,
    pool_target,
)


@dataclass(frozen=True)
class OpSpec:
    min_operands: int
    max_operands: int | None  # None: any number
    has_result: bool
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    check: Callable | None = None


def _int(value) -> bool:
    """An int that is not a bool (the plain int first: it is the common case)."""
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is(kind: str, value) -> bool:
    """Whether `value` is of attribute type `kind` (bool is not an int here)."""
    t = type(value)  # the common cases first
    if t is int:
        return kind in ("int", "float")
    if t is str:
        return kind == "str"
    if kind == "int":
        return _int(value)
    if kind == "range":
        return (isinstance(value, tuple) and len(value) == 2 and _int(value[0]) and _int(value[1])
                and 0 <= value[0] < value[1])
    if kind == "float":
        return isinstance(value, float) or _int(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "ints":
        return isinstance(value, tuple) and all(_int(v) for v in value)
    if kind == "strs":
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    raise AssertionError(kind)


RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}  # gate matrices per cell kind (nn.rnn's `cell`)

TYPE_TEXT = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "ints": "a list of integers", "strs": "a list of strings", "range": "a range [lo, hi] with 0 <= lo < hi"}

# ---- per-op checks ---------------------------------------------------------------------

def _check_shape(op, defs, target):
    if any(d < 0 for d in op["shape"]):
        return f"shape {list(op['shape'])} has a negative dimension"
    if op.get("chip") is not None and op["chip"] < 0:
        return f"chip = {op['chip']} is negative"
    return None


def _check_weight(op, defs, target):
    err = _check_shape(op, defs, target)
    if err:
        return err
    if op.get("partition_layout") not in (None, "diag", "serial", "dense"):
        return f"partition_layout = '{op['partition_layout']}' must be diag, serial or dense"
    if (op.get("partition_layout") is None) != (op.get("partition_groups") is None):
        return "partition_layout and partition_groups go together"
    for key in ("rows", "cols", "groups", "mvms", "copies", "partition_groups"):
        v = op.get(key)
        if v is not None and (v <= 0 if key != "mvms" else v < 0):
            return f"'{key}' = {v} must be positive"
    density = op.get("input_density")
    if density is not None and not 0 <= density <= 1:
        return f"input_density = {density} must be between 0 and 1"
    if op.kind in ("nn.conv", "nn.conv_transpose"):
        g = op["groups"]
        if g <= 0 or op["in_channels"] % g or op["out_channels"] % g:
            return f"groups = {g} must divide in_channels = {op['in_channels']} and out_channels = {op['out_channels']}"
    return None


def _check_block(op, defs, target):
    layer = defs[op.operands[0]]
    if layer.kind not in WEIGHT_KINDS:
        return f"blocks a {layer.kind}; only weight layers ({', '.join(WEIGHT_KINDS)}) have blocks"
    if layer.get("rows") is None:
        return f"blocks %{layer.result}, which has no matrix view yet (run 'lower' first)"
    if op["layout"] not in LAYOUTS:
        return f"layout '{op['layout']}' is not one of {', '.join(LAYOUTS)}"
    cols = layer["cols"] * (layer["groups"] if op["layout"] == "dense" else 1)  # dense: the dense matrix's
    for key, limit in (("groups", layer["groups"]), ("rows", layer["rows"]), ("cols", cols)):
        lo, hi = op[key]
        if hi > limit:
            return f"{key} [{lo}, {hi}] runs past the layer's {limit} {key}"
    if op["copy"] < 0:
        return f"copy = {op['copy']} is negative"
    lanes = op.get("lanes", 1)
    if lanes < 1 or (lanes > 1 and op["layout"] != "diag"):
        return f"lanes = {lanes} must be at least 1, and 1 unless the layout is diag"
    if op.get("share") is not None and not 1 <= op["share"] <= layer["mvms"]:
        return f"share = {op['share']} must be between 1 and the layer's {layer['mvms']} MVMs"
    pool = op.get("pool")
    if pool is not None and not 0 <= pool < len(target.pool_list):
        return (f"pool = {pool}, but target '{target.name}' has {len(target.pool_list)} crossbar pool(s) "
                f"(0..{len(target.pool_list) - 1}; more with the target key 'pools')")
    view = pool_target(target, op)
    fp = block_footprint(target, op)
    if fp.rows > view.xbar_rows or fp.cols > view.xbar_cols:
        return (f"needs {fp.rows} x {fp.cols} cells, more than a {view.xbar_rows} x {view.xbar_cols} "
                f"crossbar of target '{target.name}'")
    if op["cols"][1] - op["cols"][0] > max_cols_per_block(view) and op["layout"] == "diag":
        return f"has more columns than fit one crossbar of target '{target.name}'"
    return None


def _check_place(op, defs, target):
    block = defs[op.operands[0]]
    if block.kind != "map.block":
        return f"places %{block.result}, a {block.kind}; only map.block values are placed"
    if op["tile"] < 0:  # tiles past the first chip's are on further chips of the same kind
        return f"tile = {op['tile']} is negative"
    if not 0 <= op["xbar"] < target.xbars_per_tile_all:
        return (f"xbar = {op['xbar']} is outside a tile of target '{target.name}' "
                f"(0..{target.xbars_per_tile_all - 1})")
    at = op["at"]
    if len(at) != 2 or min(at) < 0:
        return f"at = {list(at)} must be [row, col] >= 0"
    if target.pools and target.pool_of_xbar(op["xbar"]) != block_pool(target, block):
        return (f"puts a block of pool {block_pool(target, block)} on crossbar {op['xbar']}, which is in pool "
                f"{target.pool_of_xbar(op['xbar'])}")
    view = pool_target(target, block)
    fp = block_footprint(target, block)
    if at[0] + fp.rows > view.xbar_rows or at[1] + fp.cols > view.xbar_cols:
        return (f"puts a {fp.rows} x {fp.cols} block at {list(at)}, past the edge of a "
                f"{view.xbar_rows} x {view.xbar_cols} crossbar")
    return None


def _check_digital_tiles(op, defs, target):
    runs = defs[op.operands[0]]
    if OPS.get(runs.kind) is not _DIGITAL:
        return f"spreads %{runs.result}, a {runs.kind}; only digital ops run on tiles' digital units"
    tiles = list(op["tiles"])
    if not tiles or min(tiles) < 0 or tiles != sorted(set(tiles)):
        return f"tiles = {tiles} must be distinct tile numbers >= 0, in increasing order"
    return None


_SHAPE = {"shape": "ints"}
_CONV = {**_SHAPE, "in_channels": "int", "out_channels": "int", "kernel": "ints", "stride": "ints",
         "pads": "ints", "dilation": "ints", "groups": "int", "weight": "str", "bias": "bool"}
# copies: copies of the layer kept compact (written by duplicate{compact=true}): every block
# of copy 0 stands for that many, each on a crossbar of its own; pack and place expand them
# input_density: how hard the inputs drive the rows, 0..1 of every row in every read (measured
# by `cimc eval`); the cost model scales row and array energy by it (default 1)
# partition_layout, partition_groups: where duplicate gave a grouped layer another layout,
# the partition's (layout, groups per block): the cost model's baseline is the partition's
_MATRIX = {"rows": "int", "cols": "int", "mvms": "int", "fused": "strs", "onnx": "str", "copies": "int",
           "input_density": "float", "partition_layout": "str", "partition_groups": "int", "chip": "int"}
_DIGITAL_REQ = {**_SHAPE, "fn": "str", "ops": "int"}
_DIGITAL_OPT = {"onnx": "str", "known": "bool", "axis": "int", "index": "int",
                # window of a pooling op (the schedule reads which input rows an output row needs)
                "kernel": "ints", "stride": "ints", "pads": "ints", "dilation": "ints",
                # the stage (chip) of a model split over chips (passes/chips.py)
                "chip": "int"}
_DIGITAL = OpSpec(1, None, True, _DIGITAL_REQ, _DIGITAL_OPT, _check_shape)
_COST = {"latency_ns": "float", "energy_nj": "float", "crossbars": "int"}

OPS: dict[str, OpSpec] = {
    # what the network computes
    "nn.input": OpSpec(0, 0, True, {**_SHAPE, "name": "str"}, {}, _check_shape),
    "nn.output": OpSpec(1, None, False, {}),
    "nn.conv": OpSpec(1, 1, True, _CONV, _MATRIX, _check_weight),
    "nn.conv_transpose": OpSpec(1, 1, True, _CONV, _MATRIX, _check_weight),
    "nn.matmul": OpSpec(1, 1, True, {**_SHAPE, "in_features": "int", "out_features": "int", "weight": "str",
                                     "bias": "bool"}, {**_MATRIX, "groups": "int"}, _check_weight),
    "nn.rnn": OpSpec(1, 1, True, {**_SHAPE, "cell": "str", "input_size": "int", "hidden_size": "int",
                                  "directions": "int", "seq_len": "int", "weight": "str"},
                     {**_MATRIX, "groups": "int"}, _check_weight),
    # digital units: all costed by element operations `ops`
    "nn.act": _DIGITAL,
    "nn.eltwise": _DIGITAL,
    "nn.pool": _DIGITAL,
    "nn.norm": _DIGITAL,
    "nn.softmax": _DIGITAL,
    "nn.dot": _DIGITAL,  # activation x activation products (attention), on digital units
    "nn.concat": _DIGITAL,
    "nn.reshape": _DIGITAL,  # data movement only: Reshape, Transpose, Flatten, Split, Pad, ...
    # how it is mapped
    "map.block": OpSpec(1, 1, True, {"copy": "int", "groups": "range", "rows": "range", "cols": "range",
                                     "layout": "str"}, {"share": "int", "pool": "int", "lanes": "int", "chip": "int"}, _check_block),
    "map.place": OpSpec(1, 1, False, {"tile": "int", "xbar": "int", "at": "ints"}, {}, _check_place),
    # the tiles whose digital units share a digital op's work (written by pack where the tiles
    # holding its input would be slower than the crossbars); without it, those tiles
    "map.digital": OpSpec(1, 1, False, {"tiles": "ints"}, {}, _check_digital_tiles),
    # when it runs (written by the schedule pass), for inference 0
    "sched.slot": OpSpec(1, 1, False, {"start_ns": "float", "end_ns": "float"}),
    # what it costs (written by the cost pass)
    "cost.layer": OpSpec(1, 1, False, _COST, {"copies": "int", "blocks": "int"}),
}

DIGITAL_KINDS = tuple(k for k, s in OPS.items() if s is _DIGITAL)
