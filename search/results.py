"""What a search leaves: the Pareto front, the hypervolume, and the files in `--out`.

Hypervolume: every objective is turned into one to minimise (a maximised one is negated); the
hypervolume is that of the feasible front against the reference point, in the objectives' own
units (no normalisation), by Optuna's exact WFG algorithm. The reference point is the space's
`[reference]` where it gives every objective; else it is fixed from the first generation (the
first `population` feasible trials): per objective their worst value plus a tenth of their
spread (or of the value, where they agree), stored in the study so every worker and every
resumed run uses the same one, and written to pareto.json.

Files: trials.csv (every trial: state, infeasible reason, knobs, figures, seconds),
pareto.json (the front with the in-loop figures and those of the final pipeline, the test-split
accuracy, the reference point, the hypervolume), pareto.png and hypervolume.png, and per
Pareto point points/<trial>/model.onnx, mapping.cim, report.json, accuracy.json.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import cimc
from cimc.api import write_atomic
from cimc.view import mapping_html, search_html

POINT_FILES = ("model.onnx", "mapping.cim", "report.json", "report.html", "accuracy.json")


@dataclass
class Point:
    """One Pareto-optimal candidate."""

    trial: int
    network: dict
    hardware: dict
    metrics: dict  # figures in the loop (the loop's pipeline, validation accuracy)
    final: dict | None = None  # figures of the final pipeline, accuracy on the test split
    onnx_path: Path | None = None
    mapping_path: Path | None = None
    report_path: Path | None = None
    accuracy_path: Path | None = None

    @property
    def config(self) -> dict:
        return {**self.network, **self.hardware}


def to_min(values, objectives: dict) -> np.ndarray:
    signs = np.array([-1.0 if s == "max" else 1.0 for s in objectives.values()])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of `points` (minimisation); of equal rows only the first is kept."""
    n = len(points)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        le = np.all(points <= points[i], axis=1)
        lt = np.any(points < points[i], axis=1)
        if np.any(le & lt):
            keep[i] = False
            continue
        same = np.all(points == points[i], axis=1)
        same[: i + 1] = False
        keep[same] = False
    return keep


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG

    inside = points[np.all(points <= ref, axis=1)] if len(points) else points
    if not len(inside):
        return 0.0
    return float(compute_hypervolume(inside, ref))


class Result:
    """A finished (or running) search: its study, settings and output folder."""

    def __init__(self, study, settings, out: Path | None, oracle=None):
        self.study, self.settings, self.out, self.oracle = study, settings, out, oracle
        self._points: list[Point] | None = None

    # ---- trials -------------------------------------------------------------------------
    def trials(self):
        return self.study.get_trials(deepcopy=False)

    def feasible(self) -> list:
        import optuna

        return [t for t in self.trials() if t.state == optuna.trial.TrialState.COMPLETE
                and not t.user_attrs.get("infeasible") and all(v <= 0 for v in t.constraints.values())]

    def _front(self, trials) -> list:
        if not trials:
            return []
        pts = to_min([t.values for t in trials], self.settings.objectives)
        return [t for t, k in zip(trials, pareto_mask(pts)) if k]

    def pareto(self) -> list[Point]:
        """The feasible Pareto front, best first by the first objective (after write_outputs,
        with the final pipeline's figures and the files' paths)."""
        if self._points is not None:
            return self._points
        first = list(self.settings.objectives)[0]
        sign = -1 if self.settings.objectives[first] == "max" else 1
        front = sorted(self._front(self.feasible()), key=lambda t: (sign * t.values[0], t.number))
        return [Point(t.number, t.user_attrs["network"], t.user_attrs["hardware"], t.user_attrs["metrics"])
                for t in front]

    # ---- hypervolume --------------------------------------------------------------------
    def reference(self) -> dict | None:
        """The hypervolume reference point {objective: value}, or None before a first generation."""
        objs = self.settings.objectives
        given = self.settings.reference
        if set(given) >= set(objs):
            return {k: float(given[k]) for k in objs}
        stored = self.study.user_attrs.get("cimc_reference")
        if stored:
            return stored
        feasible = sorted(self.feasible(), key=lambda t: t.number)[: self.settings.population]
        if len(feasible) < min(self.settings.population, self.settings.trials):
            return None
        pts = to_min([t.values for t in feasible], objs)
        worst, best = pts.max(0), pts.min(0)
        margin = np.where(worst > best, 0.1 * (worst - best), 0.1 * np.abs(worst))
        margin = np.where(margin > 0, margin, 1.0)
        ref_min = worst + margin
        ref = {k: float(v * (-1 if objs[k] == "max" else 1)) for k, v in zip(objs, ref_min)}
        ref.update({k: float(v) for k, v in given.items()})
        self.study.set_user_attr("cimc_reference", ref)
        return ref

    def hypervolume(self, upto: int | None = None) -> float | None:
        ref = self.reference()
        if ref is None:
            return None
        trials = [t for t in self.feasible() if upto is None or t.number <= upto]
        pts = to_min([t.values for t in trials], self.settings.objectives) if trials else np.zeros((0, len(ref)))
        return hypervolume(pts, to_min([ref[k] for k in self.settings.objectives], self.settings.objectives))

    def hypervolume_history(self) -> list[tuple[int, float]]:
        """(trials completed, hypervolume of the feasible front among them), per completed trial."""
        import optuna

        ref = self.reference()
        if ref is None:
            return []
        refv = to_min([ref[k] for k in self.settings.objectives], self.settings.objectives)
        done = sorted((t for t in self.trials() if t.state == optuna.trial.TrialState.COMPLETE),
                      key=lambda t: t.number)
        feasible_ids = {t.number for t in self.feasible()}
        hist, pts = [], []
        for i, t in enumerate(done, 1):
            if t.number in feasible_ids:
                pts.append(to_min(t.values, self.settings.objectives))
            hist.append((i, hypervolume(np.array(pts), refv) if pts else 0.0))
        return hist

    def table(self) -> str:
        return format_front(self.settings.objectives, [p.__dict__ for p in self.pareto()])


# ---- files ----------------------------------------------------------------------------------

def check_output(path: Path) -> None:
    """cimc writes only regular files: an output path that is a link, a folder, a device or a
    FIFO is refused, never replaced."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise cimc.CimcError(f"output '{path}' is a link or not a regular file; cimc replaces only regular files. "
                             "Give another --out folder.")


def trial_seconds(t) -> float | None:
    """A trial's own time (compile and evaluation), else its wall time in the storage."""
    secs = t.user_attrs.get("seconds", {}).get("total")
    if secs is None and t.datetime_start and t.datetime_complete:
        secs = (t.datetime_complete - t.datetime_start).total_seconds()
    return secs


OUT_FILES = ("trials.csv", "pareto.json", "pareto.png", "hypervolume.png", "index.html")


def search_view(result: Result, doc: dict) -> dict:
    """What the search page shows: pareto.json's document, every trial (state, figures, knobs,
    why infeasible, seconds), the hypervolume after each completed trial, and each Pareto
    point's mapping page (relative to the output folder)."""
    feasible = {t.number for t in result.feasible()}
    trials = []
    for t in sorted(result.trials(), key=lambda t: t.number):
        ua = t.user_attrs
        secs = trial_seconds(t)
        trials.append({"trial": t.number, "state": t.state.name, "feasible": t.number in feasible,
                       "reason": ua.get("infeasible") or ua.get("error", ""), "metrics": ua.get("metrics", {}),
                       "network": ua.get("network", {}), "hardware": ua.get("hardware", {}), "seconds": secs})
    reports = {p["trial"]: str(Path(p["report_path"]).with_name("report.html"))
               for p in doc["points"] if p.get("report_path")}
    return {"doc": doc, "trials": trials, "history": result.hypervolume_history(), "reports": reports}


def write_outputs(result: Result, final: bool = True) -> None:
    out = result.out
    s = result.settings
    for name in OUT_FILES:
        check_output(out / name)
    if (out / "points").is_symlink() or ((out / "points").exists() and not (out / "points").is_dir()):
        raise cimc.CimcError(f"'{out / 'points'}' is a link or not a folder; give another --out folder.")
    points = result.pareto()
    if final:
        points = [finish_point(result, p) for p in points]
    result._points = points
    write_atomic(out / "trials.csv", trials_csv(result))
    ref = result.reference()
    doc = {"schema": "cimc.search/1", "study": result.study.study_name, "space": s.space.fingerprint(),
           "target": s.space.target, "family": s.space.network.name, "data": s.data.name,
           "objectives": s.objectives, "constraints": {k: list(v) for k, v in s.constraints.items()},
           "pipeline": s.pipeline, "final_pipeline": s.final_pipeline if final else None,
           "sampler": s.sampler, "seed": s.seed, "trials": len(result.trials()),
           "completed": sum(1 for t in result.trials() if t.state.name == "COMPLETE"),
           "feasible": len(result.feasible()), "reference_point": ref,
           "hypervolume": result.hypervolume(), "hypervolume_normalisation": "none: objectives in their own units, "
           "maximised ones negated, against reference_point",
           "points": [{"trial": p.trial, "network": p.network, "hardware": p.hardware, "metrics": p.metrics,
                       "final": p.final, **{k: str(getattr(p, k).relative_to(out)) if getattr(p, k) else None
                                            for k in ("onnx_path", "mapping_path", "report_path", "accuracy_path")}}
                      for p in points]}
    write_atomic(out / "pareto.json", json.dumps(doc, indent=2, default=float) + "\n")
    plot_front(result, points, out / "pareto.png")
    plot_history(result, out / "hypervolume.png")
    write_atomic(out / "index.html", search_html(search_view(result, json.loads(json.dumps(doc, default=float)))))
    _prune_points(out, {p.trial for p in points} if final else set())


def finish_point(result: Result, p: Point) -> Point:
    """Compile a Pareto point again with the final pipeline and measure its accuracy on the
    test split; write its files."""
    from cimc.search.engine import Oracle, chip_accuracy, cost_metrics

    s = result.settings
    folder = result.out / "points" / f"{p.trial:05d}"
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise cimc.CimcError(f"'{folder}' is a link or not a folder; give another --out folder.")
    folder.mkdir(parents=True, exist_ok=True)
    for name in POINT_FILES:
        check_output(folder / name)
    oracle = result.oracle or Oracle(s)  # the loop's: its networks are trained already
    net = oracle.network({**_defaults(s), **p.network}, p.network)
    final: dict = {"pipeline": s.final_pipeline}
    hw = dict(p.hardware)
    budget = hw.pop("budget", None)
    chips = hw.pop("chips", 1)
    hw.pop("passes", None)  # the loop's pipeline knob; the final pipeline replaces it
    pipeline = s.final_pipeline
    p.onnx_path = folder / "model.onnx"
    write_atomic(p.onnx_path, net["onnx"].SerializeToString())
    try:
        target = cimc.load_target(s.space.target, hw)
        r = cimc.compile(net["module"], target, pipeline, budget=budget, chips=chips, reload=False)
    except cimc.CimcError as e:
        final["infeasible"] = str(e).splitlines()[0]
    else:
        final.update(cost_metrics(r, target))
        p.mapping_path, p.report_path = folder / "mapping.cim", folder / "report.json"
        r.save(p.mapping_path)
        write_atomic(p.report_path, r.to_json() + "\n")
        write_atomic(folder / "report.html", mapping_html(r.module, r.report))
        acc = {"data": f"{s.data.name}/test", "samples": len(s.data.x_test)}
        if s.evaluator.metrics() and "accuracy" in s.evaluator.metrics():
            from cimc.search.evaluators import float_accuracy

            acc["accuracy"] = float_accuracy(net["model"], s.data.x_test, s.data.y_test)
        if s.wants_chip():
            acc.update(chip_accuracy(net["onnx"], r.module, s.data.test(), target, s.chip))
        final.update({f"test_{k}" if k.startswith("accuracy") else k: v for k, v in acc.items()})
        p.accuracy_path = folder / "accuracy.json"
        write_atomic(p.accuracy_path, json.dumps(acc, indent=2) + "\n")
    p.final = final
    return p


def _defaults(s) -> dict:
    """Values for every network knob (a Pareto point lists only the ones its network read)."""
    return {k: kb.values()[0] for k, kb in s.space.net_knobs.items()}


def _prune_points(out: Path, keep: set) -> None:
    """Remove point folders of an earlier run that are no longer on the front (only folders
    holding nothing but the files a point has)."""
    root = out / "points"
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d.is_dir() and not d.is_symlink() and d.name.isdigit() and int(d.name) not in keep \
                and all(f.name in POINT_FILES and f.is_file() for f in d.iterdir()):
            shutil.rmtree(d)


def trials_csv(result: Result) -> str:
    s = result.settings
    trials = sorted(result.trials(), key=lambda t: t.number)
    net_cols = list(s.space.net_knobs)
    hw_cols = list(s.space.hw_knobs)
    metric_cols = sorted({k for t in trials for k in t.user_attrs.get("metrics", {})})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "state", "feasible", "infeasible_reason", "cached_from", "seconds"]
               + [f"net.{c}" for c in net_cols] + [f"hw.{c}" for c in hw_cols] + metric_cols)
    feasible = {t.number for t in result.feasible()}
    for t in trials:
        ua = t.user_attrs
        net, hw, m = ua.get("network", {}), ua.get("hardware", {}), ua.get("metrics", {})
        secs = trial_seconds(t)
        w.writerow([t.number, t.state.name, int(t.number in feasible), ua.get("infeasible") or ua.get("error", ""),
                    ua.get("cached_from", ""), f"{secs:.3f}" if secs is not None else ""]
                   + [net.get(c, "") for c in net_cols] + [hw.get(c, "") for c in hw_cols]
                   + [m.get(c, "") for c in metric_cols])
    return buf.getvalue()


def format_front(objectives: dict, points: list[dict]) -> str:
    """The Pareto front as a table: one row per point, its objectives (loop and final) and knobs."""
    if not points:
        return "no feasible point yet"
    knobs = sorted({k for p in points for k in {**p["network"], **p["hardware"]}})
    head = ["trial"] + [f"{k} ({v})" for k, v in objectives.items()]
    has_final = any(p.get("final") for p in points)
    if has_final:
        head += [f"final {k}" for k in objectives]
    rows = []
    for p in points:
        row = [str(p["trial"])] + [_fmt(p["metrics"].get(k)) for k in objectives]
        if has_final:
            f = p.get("final") or {}
            row += [_fmt(f.get(f"test_{k}" if k.startswith("accuracy") else k)) for k in objectives]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("")
    lines.append("knobs:")
    for p in points:
        cfg = {**p["network"], **p["hardware"]}
        lines.append(f"  {p['trial']}: " + ", ".join(f"{k}={cfg[k]}" for k in knobs if k in cfg))
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ---- plots ------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(result: Result, points: list[Point], path: Path) -> None:
    """Every pair of objectives: feasible trials grey, infeasible ones as crosses, the front in colour."""
    plt = _plt()
    objs = list(result.settings.objectives)
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))] or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 4), squeeze=False)
    feas = result.feasible()
    front = {p.trial for p in points}
    for ax, (i, j) in zip(axes[0], pairs):
        xs = [t.user_attrs["metrics"][objs[i]] for t in feas]
        ys = [t.user_attrs["metrics"][objs[j]] for t in feas]
        ax.scatter(xs, ys, s=12, c="0.7", label="feasible trials")
        fx = [t.user_attrs["metrics"][objs[i]] for t in feas if t.number in front]
        fy = [t.user_attrs["metrics"][objs[j]] for t in feas if t.number in front]
        ax.scatter(fx, fy, s=30, c="tab:red", label="Pareto front")
        ax.set_xlabel(f"{objs[i]} ({result.settings.objectives[objs[i]]})")
        ax.set_ylabel(f"{objs[j]} ({result.settings.objectives[objs[j]]})")
        for name, ax_set in ((objs[i], ax.set_xscale), (objs[j], ax.set_yscale)):
            vals = [t.user_attrs["metrics"][name] for t in feas]
            if vals and min(vals) > 0 and max(vals) / min(vals) > 30:
                ax_set("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{result.settings.space.network.name} on {Path(result.settings.space.target).stem}: "
                 f"{len(feas)} feasible of {len(result.trials())} trials")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def plot_history(result: Result, path: Path) -> None:
    plt = _plt()
    hist = result.hypervolume_history()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if hist:
        ax.plot([h[0] for h in hist], [h[1] for h in hist], drawstyle="steps-post")
    ax.set_xlabel("trials completed")
    ax.set_ylabel("hypervolume")
    ax.set_title("hypervolume of the feasible front")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_atomic(path, buf.getvalue())


# ---- progress on the terminal -----------------------------------------------------------------

class Progress:
    """One line on stderr: trials done, best so far per objective, hypervolume."""

    def __init__(self, settings):
        self.s = settings
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, study) -> None:
        r = Result(study, self.s, None)
        done = sum(1 for t in r.trials() if t.state.name == "COMPLETE")
        feas = r.feasible()
        best = []
        for i, (k, sense) in enumerate(self.s.objectives.items()):
            vals = [t.values[i] for t in feas]
            if vals:
                best.append(f"{k} {(max if sense == 'max' else min)(vals):.4g}")
        hv = r.hypervolume()
        width = 24
        fill = int(width * min(done, self.s.trials) / self.s.trials)
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {done}/{self.s.trials} trials, {len(feas)} feasible"
                f"{'; best ' + ', '.join(best) if best else ''}{f'; hypervolume {hv:.4g}' if hv else ''}"
                f" ({time.monotonic() - self.t0:.0f} s)")
        print(("\r\033[K" if self.tty else "") + line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def load_front(folder: str | Path) -> dict:
    """pareto.json of a search's output folder (for `cimc search show`)."""
    path = Path(folder) / "pareto.json"
    if not path.is_file():
        raise cimc.CimcError(f"'{folder}' has no pareto.json; give the --out folder of a finished cimc search.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise cimc.CimcError(f"{path}: not a readable search result ({e}).") from None
    if not isinstance(doc, dict) or doc.get("schema") != "cimc.search/1":
        raise cimc.CimcError(f"{path}: not a cimc search result (schema cimc.search/1).")
    return doc


def show(folder: str | Path) -> str:
    doc = load_front(folder)
    hv = doc.get("hypervolume")
    head = (f"{doc['family']} on {doc['target']}, data {doc['data']}: {doc['completed']} trials complete, "
            f"{doc['feasible']} feasible, {len(doc['points'])} on the front"
            + (f"; hypervolume {hv:.4g}" if isinstance(hv, (int, float)) and math.isfinite(hv) else ""))
    return head + "\n\n" + format_front(doc["objectives"], doc["points"])
