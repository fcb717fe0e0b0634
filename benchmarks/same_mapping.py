"""Mapping texts of every model in benchmarks/mapping.py, to compare two commits.

    .venv/bin/python benchmarks/same_mapping.py write DIR    # per case its .cim and report .json; times.tsv
    .venv/bin/python benchmarks/same_mapping.py diff A B     # which cases differ, compile times side by side

A restructuring that should not change what cimc maps is checked by writing DIR at the commit it
starts from and at the end, then `diff`. The cases are those of `mapping.py`: the paper setting
(SqueezeNet 1.1 and MobileNetV3-small on rnc-128 at the paper's budgets, pack slack 0 and 0.5)
and the zoo (ResNet-18/20 and the onnx package's graphs on rram-256 and isaac at the
baseline's crossbar count), plus the `fast` pipeline on the zoo.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cimc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mapping  # noqa: E402  (the benchmark's models and settings)


def cases():
    for name, build in (("squeezenet1_1", mapping.networks.squeezenet1_1),
                        ("mobilenet_v3_small", mapping.networks.mobilenet_v3_small)):
        model = cimc.import_model(mapping._export(build, (1, 3, 64, 64)), name=name)
        for slack in mapping.SLACKS:
            passes = "full" if not slack else f"lower,partition,duplicate,pack{{slack={slack}}},schedule,cost"
            for budget in mapping.PAPER[name]:
                yield f"{name}.rnc-128.b{budget}.s{slack:g}", model, "rnc-128", passes, budget
    models = {"resnet18": mapping._export(mapping.networks.resnet18, (1, 3, 224, 224)),
              "resnet20": mapping.ROOT / "examples" / "resnet20.onnx"}
    models.update({p.stem.removeprefix("light_"): p for p in sorted(mapping.ZOO.glob("light_*.onnx"))})
    for target in ("rram-256", "isaac"):
        for name, model in models.items():
            net = cimc.import_model(model, name=name)
            base = cimc.compile(net, target, "lower,partition,place,schedule,cost")
            if base.crossbars_used > cimc.load_target(target).xbars:
                continue
            yield f"{name}.{target}.full", net, target, "full", base.crossbars_used
            yield f"{name}.{target}.fast", net, target, "fast", None


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case, model, target, passes, budget in cases():
        t0 = time.perf_counter()
        try:
            r = cimc.compile(model, target, passes, budget=budget)
            text = r.text()
            report = json.loads(r.to_json())
            report.pop("compile_s", None)
        except cimc.CimcError as e:
            text, report = f"error: {e}\n", {}
        seconds = time.perf_counter() - t0
        (out / f"{case}.cim").write_text(text)
        (out / f"{case}.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        rows.append(f"{case}\t{seconds:.3f}")
        print(rows[-1], flush=True)
    (out / "times.tsv").write_text("\n".join(rows) + "\n")


# texts that changed on purpose and mean the same: compared as equal, and said so
RENAMED = [("GREEDY (water-filling)", "GREEDY (slowest layer first)")]  # duplicate's status (issue 17)


def _text(path: Path) -> str:
    text = path.read_text()
    for old, new in RENAMED:
        text = text.replace(old, new)
    return text


def diff(a: Path, b: Path) -> None:
    times = [{k: float(v) for k, v in (line.split("\t") for line in (d / "times.tsv").read_text().split("\n") if line)}
             for d in (a, b)]
    same = 0
    print("| case | same mapping text and report | compile s before | after |")
    print("|---|---|---|---|")
    for case in times[0]:
        eq = case in times[1] and all(_text(a / f"{case}{ext}") == _text(b / f"{case}{ext}") for ext in (".cim", ".json")
                                      if (a / f"{case}{ext}").exists())
        same += eq
        print(f"| {case} | {'yes' if eq else 'NO'} | {times[0][case]:.2f} | {times[1].get(case, float('nan')):.2f} |")
    print(f"\n{same} of {len(times[0])} cases give the same mapping text (renamed on purpose: "
          f"{'; '.join(f'{o!r} -> {n!r}' for o, n in RENAMED)}); total compile "
          f"{sum(times[0].values()):.1f} s before, {sum(times[1].values()):.1f} s after")


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"] and len(sys.argv) == 3:
        write(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["diff"] and len(sys.argv) == 4:
        diff(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
