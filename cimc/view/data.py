"""What a report page shows of one mapping, as plain data (lists and numbers, for JSON).

`mapping_view(module, report)` collects, beside the report itself: every used crossbar (its
tile, chip, pool and size, its load per inference), every placed block (its crossbar, layer,
copy, weight ranges, place and physical size, its share of the period), the schedule's pieces
for one inference and for the stream of K (from the schedule pass's own solve with the
options the mapping was made with: the same pieces its `sched.slot` ops summarise), and the
chips with the data that crosses between them. Every figure comes from the cost model or the
schedule; nothing here estimates anything of its own.
"""

from __future__ import annotations

import math
from collections import defaultdict

from cimc.cost import digital_tiles, mapping_loads, tiles_in_use
from cimc.ir import Module
from cimc.mapping import block_footprint, block_pool
from cimc.pipeline import parse_pipeline
from cimc.report import Report

STEADY_MAX_PIECES = 400_000  # the stream's pieces kept whole in a page (beyond: a window of three periods)


def _round(x: float) -> float:
    return round(float(x), 2)


def _schedule_pass(module: Module):
    """The schedule pass the mapping was made with (its options), or None."""
    try:
        passes = parse_pipeline(str(module.get("passes", "")) or "cost")
    except Exception:  # noqa: BLE001 - a hand-written passes attribute: no schedule to draw
        return None
    found = [p for p in passes if getattr(p, "name", "") == "schedule"]
    return found[-1] if found else None


def schedule_pieces(module: Module, rows: dict, op_index: dict, period_ns: float) -> dict:
    """Pieces of the schedule per resource row, for one inference ("one") and the stream of K
    ("stream"), each a flat list of [row, op, inference, chunk, start_ns, end_ns] * pieces
    (`rows` maps a resource key, (tile, xbar) or ("digital", tile), to its row; `op_index` an
    op's name to its index in the report's layers). A stream of more than STEADY_MAX_PIECES
    keeps the pieces of three periods from the moment the last inference enters, when the
    pipeline is fullest ("window"). Empty when the mapping has no schedule."""
    sp = _schedule_pass(module)
    if sp is None or not any(op.kind == "sched.slot" for op in module.ops):
        return {}
    jobs, results, methods = sp.solve(module)
    out = {"inferences": sp.inferences, "chunks": sp.chunks, "method": "; ".join(methods)}
    sizes = [dict(j.pieces) for j in jobs]
    for k, span in sorted(results.items()):
        pieces = []
        for (inf, n, c), (_, _, placed) in span.items():
            for res, start in placed:
                row = rows.get(res)
                if row is not None:
                    pieces.append((row, op_index[jobs[n].name], inf, c, _round(start), _round(start + sizes[n][res])))
        pieces.sort(key=lambda p: (p[0], p[4], p[2]))
        if k == sp.inferences and len(pieces) > STEADY_MAX_PIECES:
            # from the moment the last inference enters, when the most inferences are in flight
            t0 = min(p[4] for p in pieces if p[2] == k - 1)
            t1 = t0 + 3 * period_ns
            pieces = [p for p in pieces if p[5] > t0 and p[4] < t1]
            out["window"] = [_round(t0), _round(t1)]
        flat = [x for p in pieces for x in p]
        if k == 1:
            out["one"] = flat
        if k == sp.inferences:
            out["stream"] = flat
    return out


def _chips(module: Module, loads, xbar_rows: dict, report: Report) -> dict:
    """Chips used, what each holds, and the bytes each op's output sends from one chip to another."""
    t = module.target
    per_chip = defaultdict(lambda: {"tiles": set(), "crossbars": 0, "layers": set()})
    op_chips = defaultdict(set)
    defs = module.by_name()
    for name, p in loads.placed.items():
        chip = p["tile"] // t.tiles
        layer = defs[name].operands[0]
        per_chip[chip]["tiles"].add(p["tile"])
        per_chip[chip]["layers"].add(layer)
        op_chips[layer].add(chip)
    for (tile, _xbar) in xbar_rows:
        per_chip[tile // t.tiles]["crossbars"] += 1
    if loads.placed:
        in_use = tiles_in_use(module, loads)
        for op, tiles in digital_tiles(module, loads.blocks, loads.placed, in_use).items():
            op_chips[op].update(tile // t.tiles for tile in tiles)
    links = defaultdict(float)
    for op in module.ops:
        if op.namespace != "nn" or op.kind in ("nn.input", "nn.output"):
            continue
        for o in dict.fromkeys(op.operands):
            src, dst = op_chips.get(o, set()), op_chips.get(op.result, set())
            if not src or not dst or src == dst:
                continue
            shape = defs[o].get("shape") or ()
            nbytes = math.prod(shape) * t.input_bits / 8 if shape else 0.0
            for a in sorted(src):
                for b in sorted(dst - {a}):
                    links[(a, b)] += nbytes / len(src)
    return {"count": report.chips.get("stages", report.chips_used), "tiles_per_chip": t.tiles, "xbars_per_chip": t.xbars,
            "chips": [{"chip": c, "tiles": len(v["tiles"]), "crossbars": v["crossbars"], "layers": len(v["layers"])}
                      for c, v in sorted(per_chip.items())],
            "links": [{"from": a, "to": b, "bytes": _round(v)} for (a, b), v in sorted(links.items())],
            "reprogramming": report.reprogramming}


def mapping_view(module: Module, report: Report) -> dict:
    t = module.target
    loads = mapping_loads(module)
    defs = module.by_name()
    # the report's layers are the module's nn ops in order (the cost model walks them so)
    ops = [op.result for op in module.ops if op.namespace == "nn" and op.kind not in ("nn.input", "nn.output")]
    op_index = ({name: i for i, name in enumerate(ops)} if len(ops) == len(report.layers)
                else {layer.name: i for i, layer in enumerate(report.layers)})
    keys = sorted({(p["tile"], p["xbar"]) for p in loads.placed.values()})
    xbar_rows = {k: i for i, k in enumerate(keys)}
    xbars = []
    for tile, xbar in keys:
        pool = t.pool_of_xbar(xbar) if t.pools else 0
        view = t.pool(pool) if t.pools else t
        xbars.append({"tile": tile, "xbar": xbar, "chip": tile // t.tiles, "pool": pool, "rows": view.xbar_rows,
                      "cols": view.xbar_cols, "load_ns": _round(loads.xbar_load.get((tile, xbar), 0.0))})
    blocks = []
    for name, p in loads.placed.items():
        b = defs[name]
        fp = block_footprint(t, b)
        blocks.append({"name": name, "x": xbar_rows[(p["tile"], p["xbar"])], "layer": op_index[b.operands[0]],
                       "copy": b["copy"], "groups": list(b["groups"]), "rows": list(b["rows"]), "cols": list(b["cols"]),
                       "layout": b["layout"], "lanes": b.get("lanes", 1), "at": list(p["at"]), "h": fp.rows,
                       "w": fp.cols, "load_ns": _round(loads.block_load.get(name, 0.0)),
                       "pool": block_pool(t, b), "compact": defs[b.operands[0]].get("copies") or 1})
    blocks.sort(key=lambda b: (b["x"], b["at"][0], b["at"][1]))
    unplaced = sum(len(bs) for bs in loads.blocks.values()) - len(blocks)
    digital_rows = {}
    for tile in sorted({tile for tile, _ in keys}):
        digital_rows[("digital", tile)] = len(keys) + len(digital_rows)
    resources = [f"tile {tile} xbar {xbar}" for tile, xbar in keys] + [f"tile {k[1]} digital" for k in digital_rows]
    rows = {**xbar_rows, **digital_rows}
    schedule = schedule_pieces(module, rows, op_index, report.period_ns) if loads.placed else {}
    pools = [{"rows": r, "cols": c, "per_tile": n} for r, c, n in t.pool_list]
    return {"report": report.to_dict(), "crossbars": xbars, "blocks": blocks, "unplaced_blocks": unplaced,
            "resources": resources, "schedule": schedule, "chips": _chips(module, loads, xbar_rows, report),
            "target": {"name": t.name, "tiles": t.tiles, "xbars_per_tile": t.xbars_per_tile_all,
                       "xbar_rows": t.xbar_rows, "xbar_cols": t.xbar_cols, "pools": pools,
                       "cols_per_weight": t.cols_per_weight, "description": t.description}}
