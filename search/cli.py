"""The `cimc` command: `cimc search ...` here, every other command in `cimc.cli` (the core,
which never imports the search).

    cimc search SPACE.toml --trials 200 --seed 0 --out runs/x/
    cimc search SPACE.toml --storage sqlite:///runs/s.db --out runs/s/ [--resume]
    cimc search SPACE.toml --storage postgresql://user@127.0.0.1:5432/cimc --study s1 --out runs/s1/
    cimc search show runs/x/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cimc import cli as core
from cimc.errors import CimcError
from cimc.search.results import OUT_FILES, check_output, load_front, show

EPILOG = """examples:
  cimc search examples/search/quick.toml --trials 12 --seed 0 --out runs/quick/
  cimc search space.toml --storage sqlite:///runs/s.db --out runs/s/ --resume
  cimc search space.toml --storage postgresql://user@127.0.0.1:5432/cimc --study s1 --out runs/s1/
  cimc search show runs/quick/

The space file declares the network family and its knobs, the hardware knobs (target keys,
budget, passes), objectives, constraints and the accuracy evaluator: see examples/search/.
"""


def _parser() -> argparse.ArgumentParser:
    p = core._Parser(prog="cimc search", description="Joint network + hardware search with cimc as the cost "
                     "oracle (Optuna).", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", help="the space file (.toml); or 'show' followed by an output folder")
    p.add_argument("--trials", type=int, help="trials to complete in the study (default: the space's, else 50)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the space's, else 0)")
    p.add_argument("--out", help="output folder (default runs/<space name>/)")
    p.add_argument("--storage", help="sqlite:///file.db (resumable) or postgresql://user@host:port/db (shared)")
    p.add_argument("--study", default=None, help="study name in the storage (default: the space file's name)")
    p.add_argument("--resume", action="store_true", help="continue the study in --storage (it must exist)")
    p.add_argument("--sampler", choices=["nsga2", "tpe", "random"], help="default: the space's, else nsga2")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--pipeline", help="pipeline compiled in the loop (default: the space's, else fast)")
    p.add_argument("--final-pipeline", help="pipeline for the Pareto points (default: the space's, else full)")
    p.add_argument("--no-final", action="store_true", help="do not re-compile the Pareto points")
    p.add_argument("--timeout", type=float, help="stop this process's loop after this many seconds")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S",
                   help="heartbeat interval of a running trial in a storage (default 10 s); a trial whose worker "
                        "is silent for 3 intervals is failed and run again")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="a progress line per trial even when stderr is not a terminal")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _show(argv: list[str]) -> int:
    p = core._Parser(prog="cimc search show", description="The Pareto front of a finished search.")
    p.add_argument("folder", help="the --out folder of a cimc search")
    p.add_argument("--json", action="store_true", help="print pareto.json")
    args = p.parse_args(argv)

    if args.json:
        print(json.dumps(load_front(args.folder), indent=2))
    else:
        print(show(args.folder))
    return 0


def search(argv: list[str]) -> int:
    if argv[:1] == ["show"]:
        return _show(argv[1:])
    args = _parser().parse_args(argv)
    try:
        import optuna  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise CimcError(f"cimc search needs torch and optuna ({e}); pip install 'cimc[search]'.") from None
    from cimc.search.engine import run
    from cimc.search.space import Space

    space_path = Path(args.space)
    space = Space.from_toml(space_path)
    out = Path(args.out) if args.out else Path("runs") / space_path.stem
    if out.exists() and not out.is_dir():
        raise CimcError(f"--out '{out}' is a file; give a folder.")

    for name in OUT_FILES:  # before any work
        check_output(out / name)
        if (out / name).exists() and os.path.samefile(out / name, space_path):
            raise CimcError(f"--out: '{out / name}' is the space file; give another folder.")
    result = run(space, trials=args.trials, seed=args.seed, storage=args.storage,
                 study=args.study or space_path.stem, sampler=args.sampler, workers=args.workers, out=out,
                 pipeline=args.pipeline, final_pipeline=args.final_pipeline, resume=args.resume,
                 progress=args.progress, timeout_s=args.timeout, final=not args.no_final,
                 heartbeat_s=args.heartbeat, grace_s=3 * args.heartbeat)
    print(result.table())
    print(f"\nwrote {out}/: index.html (open it in a browser), trials.csv, pareto.json, pareto.png, hypervolume.png"
          + (", points/" if not args.no_final and result.pareto() else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["search"]:
        return core.main(argv)
    return core.guarded(lambda: search(argv[1:]),
                        "the study keeps every completed trial (rerun with --storage ... --resume)")


if __name__ == "__main__":
    sys.exit(main())
