"""The report page's figures as PNG files (matplotlib, 300 dpi: print quality), from the same
data the page draws (`mapping_view`): busy time per op against the period, the crossbar
map, the schedule of one inference and of the stream, energy and area by component and by
layer, and for a mapping over several chips the chips and the data between them.

    cimc compile model.onnx --png figures/
"""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path

from cimc.errors import CimcError
from cimc.files import write_atomic

DPI = 300
COMPONENTS = {"adc": "#4c6ef5", "dac_and_periphery": "#12b886", "array": "#fab005", "digital": "#e64980",
              "buffer": "#7950f2", "network": "#fd7e14", "static": "#868e96", "group_periphery": "#15aabf",
              "other": "#adb5bd"}


def colour(i: int):
    """The page's colour of layer i (golden-angle hues), as RGB."""
    h = (i * 137.508) % 360 / 360
    light = (44 + (i % 3) * 9) / 100
    return colorsys.hls_to_rgb(h, light, 0.62)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(name: str, n: int = 34) -> str:
    return name if len(name) <= n else name[: n // 2 - 1] + "\u2026" + name[-(n - n // 2):]


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    write_atomic(path, buf.getvalue(), "--png")


def busy(view: dict, path: Path) -> None:
    r = view["report"]
    rows = [(i, x) for i, x in enumerate(r["layers"]) if x["busy_ns"] > 0 or x["buffer_ns"] > 0]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.16 * len(rows) + 0.8)))
    y = range(len(rows))
    ax.barh(list(y), [x["busy_ns"] / 1e3 for _, x in rows], color=[colour(i) for i, _ in rows], label="busy")
    ax.barh(list(y), [max(0.0, x["buffer_ns"] - x["busy_ns"]) / 1e3 for _, x in rows],
            left=[x["busy_ns"] / 1e3 for _, x in rows], color="#ced4da", label="buffer beyond busy")
    ax.axvline(r["period_ns"] / 1e3, color="#c2410c", ls="--", lw=1, label=f"period {r['period_ns'] / 1e3:.4g} us")
    ax.set_yticks(list(y), [_short(x["name"]) + (" (sets the period)" if x["name"] == r["bottleneck"] else "")
                            for _, x in rows], fontsize=5)
    ax.invert_yaxis()
    ax.set_xlabel("work per inference on its busiest unit (us)")
    ax.set_title(f"{r['model']} on {r['target']}: busy time against the period", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    _save(fig, path)


def crossbar_map(view: dict, path: Path) -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    xbars, blocks = view["crossbars"], view["blocks"]
    per_row = max(1, math.ceil(math.sqrt(len(xbars) * 1.6)))
    size = max(max(x["rows"], x["cols"]) for x in xbars)
    slot = size * 1.12
    pos = [((k % per_row) * slot, (k // per_row) * slot) for k in range(len(xbars))]
    plt = _plt()
    n_rows = math.ceil(len(xbars) / per_row)
    fig, ax = plt.subplots(figsize=(8, max(2.0, 8 * n_rows / per_row + 0.6)))
    empty = [Rectangle(pos[i], x["cols"], x["rows"]) for i, x in enumerate(xbars)]
    ax.add_collection(PatchCollection(empty, facecolor="#e7e9ee", edgecolor="#b8bec9", linewidth=0.2))
    rects = [Rectangle((pos[b["x"]][0] + b["at"][1], pos[b["x"]][1] + b["at"][0]), b["w"], b["h"]) for b in blocks]
    ax.add_collection(PatchCollection(rects, facecolor=[colour(b["layer"]) for b in blocks], edgecolor="none"))
    ax.set_xlim(-slot * 0.1, per_row * slot)
    ax.set_ylim(n_rows * slot, -slot * 0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    r = view["report"]
    ax.set_title(f"{r['model']} on {r['target']}: {len(xbars)} crossbars used, {len(blocks)} blocks "
                 f"(colour: layer; grey: unused cells)", fontsize=8)
    _save(fig, path)


def schedule(view: dict, path: Path, rows_shown: int = 48) -> None:
    s = view["schedule"]
    names = view["resources"]
    rows = min(rows_shown, len(names))
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(8, 2 * (0.12 * rows + 0.9)))
    for ax, key, title in ((axes[0], "one", "one inference"),
                           (axes[1], "stream", f"{s['inferences']} inferences back to back")):
        flat = s.get(key) or []
        bars: dict = {}
        for k in range(0, len(flat), 6):
            row, op = flat[k], flat[k + 1]
            if row < rows:
                bars.setdefault((row, op), []).append((flat[k + 4] / 1e3, (flat[k + 5] - flat[k + 4]) / 1e3))
        for (row, op), spans in bars.items():
            ax.broken_barh(spans, (row + 0.1, 0.8), facecolors=colour(op), linewidth=0)
        ax.set_ylim(rows, 0)
        ax.set_yticks(range(rows), names[:rows], fontsize=3.5)
        ax.set_xlabel("us", fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_title(f"schedule, {title} (first {rows} of {len(names)} units)", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def breakdowns(view: dict, path: Path) -> None:
    r = view["report"]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1, 2]})
    for ax, key, unit, title in ((axes[0], "energy_breakdown_nj", "nJ", "energy per inference"),
                                 (axes[1], "area_breakdown_mm2", "mm2", "area of the tiles used")):
        items = [(k, v) for k, v in r[key].items() if v > 0]
        ax.barh([k for k, _ in items], [v for _, v in items], color=[COMPONENTS.get(k, "#999") for k, _ in items])
        ax.invert_yaxis()
        ax.set_xlabel(unit, fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=6)
    top = sorted(r["layers"], key=lambda x: -x["energy_nj"])[:20]
    ax = axes[2]
    left = [0.0] * len(top)
    for comp, c in COMPONENTS.items():
        vals = [x["energy_breakdown_nj"].get(comp, 0.0) for x in top]
        if any(vals):
            ax.barh(range(len(top)), vals, left=left, color=c, label=comp)
            left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(top)), [_short(x["name"], 28) for x in top], fontsize=5)
    ax.invert_yaxis()
    ax.set_xlabel("nJ", fontsize=7)
    ax.set_title("energy by layer (the 20 largest)", fontsize=8)
    ax.legend(fontsize=5)
    ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    _save(fig, path)


def chips(view: dict, path: Path) -> None:
    c = view["chips"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(c["chips"])), 2.2))
    index = {ch["chip"]: i for i, ch in enumerate(c["chips"])}
    for i, ch in enumerate(c["chips"]):
        ax.add_patch(plt.Rectangle((i * 1.5, 0), 1, 1, facecolor="#eef2ff", edgecolor="#4c6ef5"))
        ax.text(i * 1.5 + 0.5, 0.5, f"chip {ch['chip']}\n{ch['tiles']} tiles\n{ch['crossbars']} xbars", ha="center",
                va="center", fontsize=6)
    for link in c["links"]:
        a, b = index.get(link["from"]), index.get(link["to"])
        if a is None or b is None:
            continue
        ax.annotate("", xy=(b * 1.5 + 0.5, 1.0), xytext=(a * 1.5 + 0.5, 1.0),
                    arrowprops={"arrowstyle": "->", "color": "#fd7e14", "connectionstyle": "arc3,rad=-0.4"})
        ax.text((a + b) * 0.75 + 0.5, 1.25 + 0.1 * abs(b - a), f"{link['bytes'] / 1e3:.4g} kB", ha="center", fontsize=5)
    ax.set_xlim(-0.2, len(c["chips"]) * 1.5)
    ax.set_ylim(-0.2, 1.9)
    ax.axis("off")
    _save(fig, path)


def write_pngs(view: dict, folder: str | Path) -> list[Path]:
    """Every figure of the mapping into `folder` (made if missing); the files written."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise CimcError(f"--png '{folder}' is a link or not a folder; give a folder (it is made if missing).")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    jobs = [("busy.png", busy, True), ("crossbar_map.png", crossbar_map, bool(view["crossbars"])),
            ("schedule.png", schedule, bool(view["schedule"])), ("breakdowns.png", breakdowns, True),
            ("chips.png", chips, view["chips"]["count"] > 1)]
    for name, fn, wanted in jobs:
        if wanted:
            fn(view, folder / name)
            out.append(folder / name)
    return out
