"""The `cimc` command line. Exit codes: 0 done, 1 bad input or infeasible, 2 usage,
3 internal error (a bug), 130 interrupted. Output files are written only when the
command succeeded, atomically, and never over an input file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cimc.errors import CimcError

EPILOG = """examples:
  cimc compile model.onnx --target rram-256
  cimc compile model.onnx --target rram-256 -o model.cim --report model.json
  cimc compile model.onnx --target my-chip.toml --set adc_bits=6 --set xbar_rows=128
  cimc opt model.cim --passes partition,place,cost -o remapped.cim
  cimc report model.cim
  cimc targets
  cimc eval model.onnx --target rram-256 --data fashion-mnist --sigma 0.1 --draws 20
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: exit 2 with the usage line, no traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"cimc: usage error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cimc", description="Compile neural networks onto RRAM compute-in-memory accelerators.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def outputs(sp):
        sp.add_argument("-o", "--output", help="write the mapping-IR text here")
        sp.add_argument("--report", help="write the JSON report here")
        sp.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
        sp.add_argument("--all-layers", action="store_true", help="list every layer in the table")

    c = sub.add_parser("compile", help="compile an ONNX model", description="Compile an ONNX model for a target.")
    c.add_argument("model", help="the .onnx file")
    c.add_argument("-t", "--target", default="rram-256", help="preset name or .toml file (default rram-256)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    c.add_argument("--passes", default="full", help="pipeline text or name: full (default), fast, baseline")
    c.add_argument("--budget", type=int, help="crossbars the mapping may use (duplicate and pack); default: all")
    c.add_argument("--batch", type=int, default=1, help="size of a dynamic batch dimension (default 1)")
    c.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="static shape for an input with dynamic dimensions")
    outputs(c)

    o = sub.add_parser("opt", help="run passes on mapping-IR text", description="Run passes on a mapping-IR file.")
    o.add_argument("file", help="the .cim file")
    o.add_argument("--passes", required=True, help="pipeline text, e.g. partition,place,cost")
    outputs(o)

    r = sub.add_parser("report", help="cost a mapping-IR file", description="Print the figures of a mapping-IR file.")
    r.add_argument("file", help="the .cim file")
    r.add_argument("--report", help="write the JSON report here")
    r.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    r.add_argument("--all-layers", action="store_true", help="list every layer in the table")

    e = sub.add_parser("eval", help="accuracy on the chip under quantisation and device variation",
                       description="Compile a model and measure its accuracy with the crossbar-level simulator: "
                                   "float, quantised, and under device variation (Monte Carlo over programmed chips).")
    e.add_argument("model", help="the .onnx file (with its weights)")
    e.add_argument("-t", "--target", default="rram-256", help="preset name or .toml file (default rram-256)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    e.add_argument("--data", default="digits", help="digits, fashion-mnist, or an .npz with arrays x and y")
    e.add_argument("--passes", default="full", help="pipeline used to map the model (default full)")
    e.add_argument("--budget", type=int, help="crossbars the mapping may use")
    e.add_argument("--sigma", type=float, default=0.0, help="Gaussian cell variation, fraction of the cell range")
    e.add_argument("--lognormal", type=float, default=0.0, help="lognormal variation: G*exp(N(0, s))")
    e.add_argument("--stuck-on", type=float, default=0.0, help="rate of cells stuck at the highest conductance")
    e.add_argument("--stuck-off", type=float, default=0.0, help="rate of cells stuck at the lowest conductance")
    e.add_argument("--read-sigma", type=float, default=0.0, help="read noise per cell per read, fraction of range")
    e.add_argument("--draws", type=int, default=10, help="Monte Carlo chips (default 10)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--limit", type=int, help="evaluate on the first N test samples only")
    e.add_argument("--adc-bits", type=int, help="ADC bits for the simulation (0: no ADC quantisation)")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    e.add_argument("--report", help="write the JSON here")

    t = sub.add_parser("targets", help="list target presets", description="List target presets, or show one.")
    t.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    t.add_argument("name", nargs="?", help="preset name or .toml file (with show)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    t.add_argument("--json", action="store_true", help="print JSON")
    return p


def _overrides(items: list[str]) -> dict:
    from cimc.targets import parse_override

    return dict(parse_override(s) for s in items)


def _input_shapes(items: list[str]) -> dict:
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not sep or not name or not shape or min(shape) < 1:
            raise CimcError(f"--input-shape '{item}': write it as NAME=D0,D1,... with positive sizes, "
                            "e.g. --input-shape input=1,3,224,224.")
        shapes[name] = shape
    return shapes


def _check_outputs(args, inputs: list[str]) -> None:
    """Refuse an output path that is an input file or an existing folder."""
    outs = [x for x in (getattr(args, "output", None), getattr(args, "report", None)) if x]
    if len(outs) == 2 and os.path.abspath(outs[0]) == os.path.abspath(outs[1]):
        raise CimcError(f"-o and --report both name '{outs[0]}'; give two different files.")
    for out in outs:
        path = Path(out)
        if path.is_dir():
            raise CimcError(f"output '{out}' is a folder; give a file name.")
        if not path.parent.exists() and str(path.parent) not in ("", "."):
            raise CimcError(f"output '{out}': folder '{path.parent}' does not exist.")
        for inp in inputs:
            if path.exists() and Path(inp).exists() and os.path.samefile(path, inp):
                raise CimcError(f"output '{out}' is the input file; cimc never overwrites its input. "
                                "Give another output name.")


def _emit(args, result) -> None:
    from cimc.api import write_atomic

    if getattr(args, "output", None):
        write_atomic(Path(args.output), result.text())
    if args.report:
        write_atomic(Path(args.report), result.to_json() + "\n")
    if args.json:
        print(result.to_json())
    else:
        print(result.report.table(None if args.all_layers else 40))
        written = [x for x in (getattr(args, "output", None), args.report) if x]
        if written:
            print("\nwrote " + ", ".join(written))


def _targets(args) -> None:
    from cimc.targets import load_target, preset_names

    if args.action == "show":
        if not args.name:
            raise CimcError("cimc targets show NAME: give a preset name or a .toml file.")
        t = load_target(args.name, _overrides(args.set))
        figures = {**t.to_dict(), "xbars": t.xbars, "cols_per_weight": t.cols_per_weight,
                   "reads_per_mvm": t.reads_per_mvm, "xbar_mvm_ns": t.xbar_mvm_ns, **t.peak()}
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            width = max(map(len, figures))
            for k, v in figures.items():
                print(f"{k:<{width}}  {v}")
        return
    rows = []
    for name in preset_names():
        t = load_target(name)
        peak = t.peak()
        rows.append({"name": name, "xbar": f"{t.xbar_rows}x{t.xbar_cols}", "xbars": t.xbars,
                     "cell_bits": t.cell_bits, "weight_bits": t.weight_bits, "adc_bits": t.adc_bits,
                     "weight_capacity": peak["weight_capacity"], "peak_tops": peak["peak_gops"] / 1e3,
                     "tops_per_w": peak["peak_gops_per_w"] / 1e3, "area_mm2": round(peak["area_mm2"], 2),
                     "description": t.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<10} {'crossbar':>9} {'xbars':>7} {'cell':>5} {'weight':>6} {'adc':>4} {'capacity':>12} "
          f"{'peak TOPS':>10} {'TOPS/W':>7} {'area mm2':>9}")
    for r in rows:
        print(f"{r['name']:<10} {r['xbar']:>9} {r['xbars']:>7} {r['cell_bits']:>5} {r['weight_bits']:>6} "
              f"{r['adc_bits']:>4} {r['weight_capacity']:>12,} {r['peak_tops']:>10.1f} {r['tops_per_w']:>7.2f} "
              f"{r['area_mm2']:>9}")
    print("\ncimc targets show NAME   for every key; any preset key can be overridden with --set KEY=VALUE")


def _eval(args) -> None:
    from cimc.accuracy import evaluate_accuracy
    from cimc.api import write_atomic
    from cimc.sim import Variation

    _check_outputs(args, [args.model])
    var = Variation(args.sigma, args.lognormal, args.stuck_on, args.stuck_off, args.read_sigma)
    rep = evaluate_accuracy(args.model, args.target, args.data, passes=args.passes, budget=args.budget,
                            variation=var, draws=args.draws, seed=args.seed, limit=args.limit,
                            precision={"adc_bits": args.adc_bits}, **_overrides(args.set))
    if args.report:
        write_atomic(Path(args.report), rep.to_json() + "\n")
    print(rep.to_json() if args.json else rep.table())


def run(argv: list[str]) -> int:
    args = _build_parser().parse_args(argv)
    import cimc

    if args.command == "compile":
        _check_outputs(args, [args.model])
        result = cimc.compile(args.model, args.target, args.passes, batch=args.batch, budget=args.budget,
                              input_shapes=_input_shapes(args.input_shape), **_overrides(args.set))
        _emit(args, result)
    elif args.command == "opt":
        _check_outputs(args, [args.file])
        result = cimc.opt(cimc.parse_file(args.file), args.passes)
        _emit(args, result)
    elif args.command == "report":
        _check_outputs(args, [args.file])
        module = cimc.parse_file(args.file)
        from cimc.api import Result

        _emit(args, Result(module, cimc.report(module)))
    elif args.command == "targets":
        _targets(args)
    elif args.command == "eval":
        _eval(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except CimcError as e:
        print(f"cimc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cimc: interrupted; no output file was written or changed.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("CIMC_DEBUG"):
            raise
        print(f"cimc: internal error: {type(e).__name__}: {e}\n"
              "This is a bug in cimc, not in your input. Rerun with CIMC_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
