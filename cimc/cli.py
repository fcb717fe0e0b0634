"""The `cimc` command line. Exit codes: 0 done, 1 bad input or infeasible, 2 usage,
3 internal error (a bug), 130 interrupted. Output files are written only when the
command succeeded, atomically, and never over an input file."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import cimc
from cimc import files, progress
from cimc.api import Result, write_atomic
from cimc.errors import CimcError
from cimc.targets import (
    device_names,
    load_device,
    load_target,
    parse_override,
    preset_names,
)
from cimc.view import mapping_html, mapping_view
from cimc.view.figures import write_pngs

EPILOG = """examples:
  cimc compile model.onnx --target rram-256
  cimc compile model.onnx --target rram-256 -o model.cim --report model.json
  cimc compile model.onnx --target my-chip.toml --set adc_bits=6 --set xbar_rows=128
  cimc opt model.cim --passes partition,place,cost -o remapped.cim
  cimc report model.cim
  cimc targets
  cimc eval model.onnx --target rram-256 --data fashion-mnist --sigma 0.1 --draws 20
  cimc search examples/search/quick.toml --trials 12 --seed 0 --out runs/quick/
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

    def views(sp):
        sp.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
        sp.add_argument("--all-layers", action="store_true", help="list every layer in the table")
        sp.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML page")
        sp.add_argument("--png", metavar="DIR", help="write the report's figures as PNG files (300 dpi) into DIR")
        sp.add_argument("--no-color", action="store_true", help="no colour in the table (also: NO_COLOR set, or "
                        "standard output not a terminal)")
        prog = sp.add_mutually_exclusive_group()
        prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show the pass running and the solvers' progress on stderr (default: when stderr is "
                          "a terminal)")
        prog.add_argument("--no-progress", dest="progress", action="store_false")

    def outputs(sp):
        sp.add_argument("-o", "--output", help="write the mapping-IR text here")
        sp.add_argument("--report", help="write the JSON report here")
        views(sp)

    c = sub.add_parser("compile", help="compile an ONNX model", description="Compile an ONNX model for a target.")
    c.add_argument("model", help="the .onnx file")
    c.add_argument("-t", "--target", default="rram-256", help="preset name or .toml file (default rram-256)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    c.add_argument("--passes", default="full", help="pipeline text or name: full (default), fast, baseline")
    c.add_argument("--budget", type=int, help="crossbars the mapping may use (duplicate and pack); default: all")
    c.add_argument("--input-density", metavar="X|FILE",
                   help="how hard inputs drive the rows, 0..1 of every row in every read (default 1): a number "
                        "for every layer, or the JSON report of cimc eval (per layer, measured on data)")
    c.add_argument("--batch", type=int, default=1, help="size of a dynamic batch dimension, and the inferences a "
                   "round runs when weights are reloaded (default 1)")
    c.add_argument("--chips", type=int, help="chips the mapping may use (default: as many as the weights need; "
                   "fewer reloads the weights in rounds)")
    c.add_argument("--reload", action="store_true", default=None, help="run in rounds on --chips chips "
                   "(default 1), reprogramming them, instead of more chips")
    c.add_argument("--no-reload", dest="reload", action="store_false", help="never reload: a model that needs "
                   "more than --chips chips is refused")
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
    views(r)

    e = sub.add_parser("eval", help="accuracy on the chip under quantisation and device variation",
                       description="Compile a model and measure its accuracy with the crossbar-level simulator: "
                                   "float, quantised, and under device variation (Monte Carlo over programmed chips).")
    e.add_argument("model", help="the .onnx file (with its weights)")
    e.add_argument("-t", "--target", default="rram-256", help="preset name or .toml file (default rram-256)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    e.add_argument("--data", default="digits", help="digits, fashion-mnist, or an .npz with arrays x and y")
    e.add_argument("--passes", default="full", help="pipeline used to map the model (default full)")
    e.add_argument("--budget", type=int, help="crossbars the mapping may use")
    e.add_argument("--sigma", type=float, default=None,
                   help="Gaussian cell variation, fraction of the cell range (default: the target's device, "
                        "variation_sigma)")
    e.add_argument("--lognormal", type=float, default=0.0, help="lognormal variation: G*exp(N(0, s))")
    e.add_argument("--stuck-on", type=float, default=0.0, help="rate of cells stuck at the highest conductance")
    e.add_argument("--stuck-off", type=float, default=0.0, help="rate of cells stuck at the lowest conductance")
    e.add_argument("--read-sigma", type=float, default=0.0, help="read noise per cell per read, fraction of range")
    e.add_argument("--out-noise", type=float, default=0.0,
                   help="noise at each column before its ADC, per read, in cell levels at full input")
    e.add_argument("--dac-noise", type=float, default=0.0, help="noise of each row's drive, per read, fraction of full")
    e.add_argument("--noise-model", help="device model: constant (--sigma), pcm-nandakumar2019 or rram-wan2022 "
                                         "(published state-dependent fits; default: the target's device)")
    e.add_argument("--noise-scale", type=float, default=1.0, help="scale of a fitted model's noise (default 1)")
    e.add_argument("--drift-nu", type=float, default=0.0, help="power-law drift exponent, where the model has none")
    e.add_argument("--drift-nu-std", type=float, default=0.0, help="its spread across cells")
    e.add_argument("--time", help="times since programming to read the chips at, comma-separated: 1s,1h,1d,1y; "
                                  "the report gives accuracy against time")
    e.add_argument("--drift-compensation", action="store_true",
                   help="global drift compensation (each layer's outputs rescaled to its programmed weight scale)")
    e.add_argument("--no-ir-drop", action="store_true", help="leave the wires' IR drop out")
    e.add_argument("--draws", type=int, default=10, help="Monte Carlo chips (default 10)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--limit", type=int, help="evaluate on the first N test samples only")
    e.add_argument("--adc-bits", type=int, help="ADC bits for the simulation (0: no ADC quantisation)")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    e.add_argument("--report", help="write the JSON here")

    # `cimc search` is run by cimc.search.cli (the search sits above the core); listed here for --help
    sub.add_parser("search", help="joint network + hardware search (cimc search --help)", add_help=False)

    t = sub.add_parser("targets", help="list target presets", description=(
        "List target presets (list), show one with its derived figures (show NAME), or list the "
        "device presets a target can name with device = \"...\" or --set device=... (devices)."))
    t.add_argument("action", nargs="?", choices=["list", "show", "devices"], default="list")
    t.add_argument("name", nargs="?", help="preset name or .toml file (with show)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a target key")
    t.add_argument("--json", action="store_true", help="print JSON")
    return p


def _overrides(items: list[str]) -> dict:
    return dict(parse_override(s) for s in items)


def _input_shapes(items: list[str]) -> dict:
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not sep or not name or not shape or min(shape) < 1 or max(shape) > 1 << 31 \
                or math.prod(shape) > 1 << 40:
            raise CimcError(f"--input-shape '{files.safe_text(item, 80)}': write it as NAME=D0,D1,... with positive "
                            "sizes (each at most 2**31, at most 2**40 elements), e.g. --input-shape input=1,3,224,224.")
        shapes[name] = shape
    return shapes


def _check_outputs(args, inputs: list) -> None:
    """Before any work: every output is a regular file or a new name ('-': standard output),
    no output is an input (model, mapping, target file, density file, data file), and the two
    outputs are two files (cimc.files)."""
    target = getattr(args, "target", None)
    extra = [target if target and (str(target).endswith(".toml") or os.path.exists(target)) else None,
             getattr(args, "input_density", None), getattr(args, "data", None)]
    files.check_outputs({"-o": getattr(args, "output", None), "--report": getattr(args, "report", None),
                         "--html": getattr(args, "html", None)},
                        [i for i in list(inputs) + extra if i])
    png = getattr(args, "png", None)
    if png and (os.path.islink(png) or (os.path.exists(png) and not os.path.isdir(png))):
        raise CimcError(f"--png '{files.safe_text(png, 200)}' is a link or not a folder; give a folder (it is made "
                        "if missing).")


def _color(args) -> bool:
    """Colour in the table: a terminal, no --no-color, no NO_COLOR (no-color.org)."""
    return sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")


def _emit(args, result) -> None:
    if getattr(args, "output", None):
        write_atomic(args.output, result.text())
    if args.report:
        write_atomic(args.report, result.to_json() + "\n")
    written = [x for x in (getattr(args, "output", None), args.report) if x]
    if args.html or args.png:
        view = mapping_view(result.module, result.report)
        if args.html:
            files.write_atomic(args.html, mapping_html(result.module, result.report, view), "--html")
            written.append(args.html)
        if args.png:
            written += [str(p) for p in write_pngs(view, args.png)]
    if "-" in (getattr(args, "output", None), args.report, args.html):  # stdout holds a file; nothing else goes there
        return
    if args.json:
        print(result.to_json())
    else:
        print(result.report.table(None if args.all_layers else 40, color=_color(args)))
        if written:
            print("\nwrote " + ", ".join(written))


def _print_rows(rows: list[dict], columns: list[tuple[str, str, str]], as_json: bool, footer: str) -> None:
    """Rows as JSON, or as a table of `columns` (header, key, format spec such as ">9.2f")
    with a footer; a value a row lacks shows as '-'."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return

    def box(spec: str) -> str:  # alignment and width of a spec, for headers and '-'
        align = spec[0] if spec[:1] in ("<", ">", "^") else "<"
        width = "".join(ch for ch in spec.lstrip("<>^").split(".")[0] if ch.isdigit())
        return align + width

    print(" ".join(f"{head:{box(spec)}}" for head, _, spec in columns))
    for r in rows:
        print(" ".join(f"{r[key]:{spec}}" if key in r else f"{'-':{box(spec)}}" for _, key, spec in columns))
    print(footer)


def _targets(args) -> None:
    if args.action == "devices":
        _print_rows([load_device(n) for n in device_names()],
                    [("device", "name", "<18"), ("cell", "cell_bits", ">4"), ("R_on kOhm", "r_on_kohm", ">9"),
                     ("on/off", "on_off_ratio", ">7"), ("read V", "read_voltage_v", ">6"),
                     ("write ns/row", "cell_write_ns", ">12.6"), ("write pJ/cell", "cell_write_pj", ">13.6"),
                     ("sigma", "variation_sigma", ">6"), ("noise model", "noise_model", "<18"),
                     (" description", "description", "")], args.json,
                    "\nuse one with: --set device=NAME (its keys replace the target's), or device = \"NAME\" in a "
                    "target file")
        return
    if args.action == "show":
        if not args.name:
            raise CimcError("cimc targets show NAME: give a preset name or a .toml file.")
        t = load_target(args.name, _overrides(args.set))
        figures = target_figures(t)
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            print(describe_target(t, figures))
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
    _print_rows(rows, [("preset", "name", "<10"), ("crossbar", "xbar", ">9"), ("xbars", "xbars", ">7"),
                       ("cell", "cell_bits", ">5"), ("weight", "weight_bits", ">6"), ("adc", "adc_bits", ">4"),
                       ("capacity", "weight_capacity", ">12,"), ("peak TOPS", "peak_tops", ">10.1f"),
                       ("TOPS/W", "tops_per_w", ">7.2f"), ("area mm2", "area_mm2", ">9")], args.json,
                "\ncimc targets show NAME   every key and derived figure; any key can be overridden with --set "
                "KEY=VALUE\ncimc targets devices     device presets")


def target_figures(t) -> dict:
    """Every key of a target and the figures derived from them (numbers, for --json)."""
    peak = t.peak()
    return {**t.to_dict(), "xbars": t.xbars, "groups_per_tile": t.groups_per_tile, "slices": t.slices,
            "cols_per_weight": t.cols_per_weight, "weights_per_xbar": t.weights_per_xbar,
            "reads_per_mvm": t.reads_per_mvm, "xbar_mvm_ns": t.xbar_mvm_ns, "xbar_mvm_pj": t.xbar_mvm_pj,
            "peak_tops": peak["peak_gops"] / 1e3, "peak_tops_per_w": peak["peak_gops_per_w"] / 1e3,
            "peak_tops_per_mm2": peak["peak_gops_per_s_mm2"] / 1e3, **peak,
            "tile_power_breakdown_mw": t.tile_power_breakdown(), "tile_area_breakdown_mm2": t.tile_area_breakdown(),
            "converter": t.converter()}


def _converter_line(c: dict) -> str:
    how = ("partial sums quantized: the simulator models the loss" if c["quantized"]
           else "each conversion exact")
    return (f"          a read of {c['rows_per_conversion']} rows needs {c['bits_needed']} ADC bits; "
            f"{c['reads_per_digit']} read{'s' if c['reads_per_digit'] > 1 else ''} per input digit, {how}")


def describe_target(t, f: dict) -> str:
    def parts(d: dict, unit: str) -> str:
        total = sum(d.values()) or 1.0
        return ", ".join(f"{k} {v:.4g} {unit} ({100 * v / total:.0f}%)" for k, v in d.items() if v)

    signed = {"differential": "a column pair per weight", "offset": "one reference column per block",
              "bias": "bias removed digitally", "unsigned": "unsigned"}[t.signed_weights]
    lines = [f"{t.name}: {t.description}", f"source: {t.source}", "",
             f"chip      {t.tiles} tiles, {t.xbars:,} crossbars, {f['area_mm2']:.4g} mm2, {f['power_w']:.4g} W peak"
             + (f" (off-chip link {t.chip_io_power_mw / 1e3:.4g} W, {t.chip_io_area_mm2:.4g} mm2)" if t.chip_io_power_mw else ""),
             f"tile      {t.groups_per_tile} groups x {t.xbars_per_group} crossbars, {t.tile_area_mm2:.4g} mm2, "
             f"{f['tile_power_mw']:.4g} mW" + (f", buffer {t.buffer_kb:g} KB" if t.buffer_kb else ""),
             *(["pools     " + ", ".join(f"{r}x{c} x {n}" + (" (pool 0)" if p == 0 else "")
                                       for p, (r, c, n) in enumerate(t.pool_list)) + " per tile"]
               if t.pools else []),
             f"group     {t.xbars_per_group} crossbars, {f['group_area_mm2']:.4g} mm2, {f['group_power_mw']:.4g} mW",
             f"crossbar  {t.xbar_rows}x{t.xbar_cols}, {t.cell_bits}-bit cells, {t.weight_bits}-bit weights in "
             f"{t.slices} slices ({signed}): {t.weights_per_xbar:,} weights",
             f"          {t.dac_bits}-bit DACs ({t.reads_per_mvm} reads per {t.input_bits}-bit input), {t.adc_bits}-bit ADC "
             f"per {t.cols_per_adc} columns" + (f", {t.rows_per_read} rows per read" if t.rows_per_read else "")
             + (f", {t.mvm_fill_reads} fill reads per MVM" if t.mvm_fill_reads else ""),
             _converter_line(t.converter()),
             f"          one full MVM {t.xbar_mvm_ns:.4g} ns, {t.xbar_mvm_pj / 1e3:.4g} nJ",
             f"network   {t.noc}" + (f", {t.tiles_per_router} tiles per router" if t.noc == "mesh" else "")
             + (f", {t.noc_bytes_per_ns:g} B/ns per link" if t.noc_bytes_per_ns else ", transfers not timed")
             + (f", {t.noc_hop_ns:g} ns per hop" if t.noc_hop_ns else "")
             + f", {t.noc_pj_per_byte_hop:g} pJ per byte per router",
             "off chip  " + (f"{t.offchip_bytes_per_ns:g} B/ns, {t.offchip_pj_per_byte:g} pJ/B"
                              if t.offchip_bytes_per_ns else "not modelled"),
             f"device    {t.device or '(none named)'}: {t.cell_bits}-bit cells"
             + (f", R_on {t.r_on_kohm:g} kOhm, on/off {t.on_off_ratio:g}" if t.r_on_kohm else "")
             + (f", read {t.read_voltage_v:g} V" if t.read_voltage_v else "")
             + (f", write {t.cell_write_ns:.4g} ns per row, {t.cell_write_pj:.4g} pJ per cell" if t.cell_write_ns
                else ", write not costed")
             + f", variation sigma {t.variation_sigma:g}",
             "",
             f"peak      {f['peak_tops']:.4g} TOPS, {f['peak_tops_per_w']:.4g} TOPS/W, {f['peak_tops_per_mm2']:.4g} "
             f"TOPS/mm2, {f['weight_capacity']:,} weights",
             f"tile power  {parts(f['tile_power_breakdown_mw'], 'mW')}",
             f"tile area   {parts(f['tile_area_breakdown_mm2'], 'mm2')}",
             "",
             "every key (override with --set KEY=VALUE):"]
    width = max(map(len, t.to_dict()))
    lines += [f"  {k:<{width}}  {v}" for k, v in t.to_dict().items()]
    return "\n".join(lines)


def _eval(args) -> None:
    from cimc.accuracy import evaluate_accuracy, parse_time
    from cimc.sim import Variation

    _check_outputs(args, [args.model])
    times = tuple(parse_time(t) for t in args.time.split(",")) if args.time else ()
    var = Variation.of(load_target(args.target, _overrides(args.set)), args.sigma, model=args.noise_model,
                       lognormal=args.lognormal, stuck_on=args.stuck_on, stuck_off=args.stuck_off,
                       read_sigma=args.read_sigma, scale=args.noise_scale, drift_nu=args.drift_nu,
                       drift_nu_std=args.drift_nu_std, out_sigma=args.out_noise, dac_sigma=args.dac_noise)
    rep = evaluate_accuracy(args.model, args.target, args.data, passes=args.passes, budget=args.budget,
                            variation=var, draws=args.draws, seed=args.seed, limit=args.limit,
                            precision={"adc_bits": args.adc_bits}, times=times, compensate=args.drift_compensation,
                            ir_drop=not args.no_ir_drop, **_overrides(args.set))
    if args.report:
        write_atomic(args.report, rep.to_json() + "\n")
    if args.report != "-":
        print(rep.to_json() if args.json else rep.table())


def run(argv: list[str]) -> int:
    args = _build_parser().parse_args(argv)

    with progress.showing(getattr(args, "progress", False)):
        return _command(args)


def _command(args) -> int:
    if args.command == "compile":
        _check_outputs(args, [args.model])
        density = args.input_density
        if density is not None:
            try:
                density = float(density)
            except ValueError:
                pass  # a file
        result = cimc.compile(args.model, args.target, args.passes, batch=args.batch, budget=args.budget,
                              input_shapes=_input_shapes(args.input_shape), input_density=density,
                              chips=args.chips, reload=args.reload, **_overrides(args.set))
        _emit(args, result)
    elif args.command == "opt":
        _check_outputs(args, [args.file])
        result = cimc.opt(cimc.parse_file(args.file), args.passes)
        _emit(args, result)
    elif args.command == "report":
        _check_outputs(args, [args.file])
        module = cimc.parse_file(args.file)

        _emit(args, Result(module, cimc.report(module)))
    elif args.command == "targets":
        _targets(args)
    elif args.command == "eval":
        _eval(args)
    elif args.command == "search":
        raise CimcError("cimc search runs through the cimc command (cimc.search.cli:main), not cimc.cli.")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return guarded(lambda: run(argv), "no output file was written or changed")


def guarded(command, on_stop: str) -> int:
    """Run `command()` as a CLI command: its exit code, or the exit code and one message for
    bad input (1), Ctrl-C (130), SIGTERM/SIGHUP (128 + signal) and a bug (3, no traceback
    unless CIMC_DEBUG is set). `on_stop` says what an interruption left behind."""
    try:
        with files.terminating():  # SIGTERM/SIGHUP clean up a write in progress, like Ctrl-C
            return command()
    except CimcError as e:
        print(f"cimc: error: {files.safe_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cimc: interrupted; {on_stop}.", file=sys.stderr)
        return 130
    except files.Terminated as e:
        print(f"cimc: stopped by {e}; {on_stop}.", file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("CIMC_DEBUG"):
            raise
        print(f"cimc: internal error: {type(e).__name__}: {files.safe_message(e)}\n"
              "This is a bug in cimc, not in your input. Rerun with CIMC_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
