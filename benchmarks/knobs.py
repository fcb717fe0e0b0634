"""Knob physics, measured: what each circuit knob moves, and a sweep that checks the direction.

    python benchmarks/knobs.py table            # every law at three settings on rram-256
    python benchmarks/knobs.py sweep [--quick]  # 27 small CNNs x crossbar 64/128/256 x ADC 4/6/8,
                                                #   fast and full pipelines: does every figure move
                                                #   the right way?

`table` prints, for each knob, the figures its law moves (targets/laws.py) and the chip's
peak figures at three values. `sweep` compiles each CNN on every (crossbar, ADC) pair and
counts, per figure, the steps that move the wrong way: more ADC bits never lower energy, chip
area or latency (partial sums quantized, so the rows per read stay); bigger crossbars never
more crossbars, and a bigger chip per crossbar.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from onnx_builders import small_cnn  # noqa: E402

import cimc  # noqa: E402
from cimc.targets import laws, load_target  # noqa: E402

SETTINGS = {  # knob: three values on rram-256 (its own value in the middle where it has one)
    "adc_bits": (4, 8, 10), "dac_bits": (1, 2, 4), "xbar_rows": (128, 256, 512), "xbar_cols": (128, 256, 512),
    "cell_bits": (1, 2, 4), "cols_per_adc": (8, 32, 128), "buffer_kb": (16.0, 64.0, 256.0),
    "buffer_bytes_per_ns": (19.2, 38.4, 76.8), "digital_ops_per_ns": (1.2, 2.4, 4.8),
    "noc_bytes_per_ns": (2.4, 4.8, 9.6), "xbars_per_tile": (24, 48, 96), "tiles": (42, 84, 168),
}


def table() -> None:
    base = load_target("rram-256")
    print("| knob | figure it moves | law | source | values at three settings |")
    print("|---|---|---|---|---|")
    for knob, values in SETTINGS.items():
        moved = [law for law in laws.LAWS if knob in law.knobs]
        targets = [base.replace(**{knob: v}) for v in values]
        peaks = [t.peak() for t in targets]
        chip = ", ".join(f"{v}: {p['area_mm2']:.1f} mm2, {p['peak_gops_per_w'] / 1e3:.2f} TOPS/W" for v, p in zip(values, peaks))
        if not moved:
            print(f"| {knob} | (structural: counts) | - | - | {chip} |")
            continue
        for law in moved:
            figs = ", ".join(f"{v}: {getattr(t, law.figure):.4g}" for v, t in zip(values, targets))
            print(f"| {knob} | {law.figure} | {law.law} | {law.source} | {figs}; chip {chip} |")


def sweep(quick: bool) -> None:
    nets = [small_cnn(depth=d, width=w, kernel=k, size=16) for d, w, k in
            itertools.product((1, 2, 3), (8, 16, 32), (1, 3, 5))]
    if quick:
        nets = nets[::9]
    sizes, bits = (64, 128, 256), (4, 6, 8)
    wrong: dict[str, int] = {}
    steps: dict[str, int] = {}
    start = time.perf_counter()

    def check(name: str, ok: bool) -> None:
        steps[name] = steps.get(name, 0) + 1
        wrong[name] = wrong.get(name, 0) + (not ok)

    compiles = 0
    for passes in ("fast", "full"):
        for net in nets:
            grid = {}
            for size, b in itertools.product(sizes, bits):
                t = load_target("rram-256", {"xbar_rows": size, "xbar_cols": size, "adc_bits": b})
                grid[size, b] = cimc.compile(net, t, passes).report
                compiles += 1
            for size in sizes:
                for lo, hi in zip(bits, bits[1:]):
                    a, z = grid[size, lo], grid[size, hi]
                    check(f"{passes}: ADC bits up, energy not down", z.energy_nj >= a.energy_nj * (1 - 1e-9))
                    check(f"{passes}: ADC bits up, chip area up", z.chip_area_mm2 > a.chip_area_mm2)
                    check(f"{passes}: ADC bits up, ADC energy up", z.energy_breakdown_nj["adc"] > a.energy_breakdown_nj["adc"])
                    if passes == "fast":  # the full pipeline's packing heuristics may land differently
                        check(f"{passes}: ADC bits up, latency not down", z.latency_ns >= a.latency_ns * (1 - 1e-9))
            for b in bits:
                for lo, hi in zip(sizes, sizes[1:]):
                    a, z = grid[lo, b], grid[hi, b]
                    check(f"{passes}: crossbars bigger, not more of them", z.crossbars_used <= a.crossbars_used)
                    check(f"{passes}: crossbars bigger, chip area up", z.chip_area_mm2 > a.chip_area_mm2)
    secs = time.perf_counter() - start
    print(f"{len(nets)} CNNs x crossbar {sizes} x ADC {bits} x fast/full: {compiles} compiles in {secs:.0f} s")
    print(f"{'check':<48} {'steps':>6} {'wrong way':>10}")
    for name in steps:
        print(f"{name:<48} {steps[name]:>6} {wrong[name]:>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["table", "sweep"])
    ap.add_argument("--quick", action="store_true", help="3 CNNs instead of 27")
    args = ap.parse_args()
    table() if args.what == "table" else sweep(args.quick)


if __name__ == "__main__":
    main()
