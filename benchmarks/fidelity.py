"""Preset chips against their published figures: one table (preset, figure, published value,
cimc's value, error, status), from benchmarks/published.py's checks.

    .venv/bin/python benchmarks/fidelity.py [--out out/fidelity]

Writes fidelity.md and fidelity.json into --out as well as printing the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from published import format_table, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/fidelity")
    args = ap.parse_args()
    rows = table()
    text = format_table(rows)
    print(text)
    for r in rows:
        if r["gap"] or r["note"]:
            print(f"\n{r['preset']} {r['figure']}: {r['gap'] or r['note']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = ["| preset | figure | published | cimc | unit | error | status |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['figure']} | {r['published']:.4g} | {r['cimc']:.4g} | {r['unit']} | "
           f"{100 * r['error']:+.1f}% | {r['status']} |" for r in rows]
    (out / "fidelity.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {out / 'fidelity.md'}, {out / 'fidelity.json'}")


if __name__ == "__main__":
    main()
