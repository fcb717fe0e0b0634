"""A search worker for the distributed and kill tests: `python tests/search_worker.py STORAGE
STUDY TRIALS MARKS` runs trials of a small joint space whose evaluator (a callback) notes each
evaluation's start and end in MARKS (a folder) and takes about a second, so a test can kill the
process in the middle of a trial."""

import os
import sys
import time
from pathlib import Path

from cimc import search


def space(marks: Path) -> search.Space:
    def evaluate(model, config):
        stamp = f"{os.getpid()}-{time.monotonic_ns()}"
        (marks / f"start-{stamp}").write_text(repr(sorted(config.items())))
        time.sleep(float(os.environ.get("CIMC_TEST_TRIAL_S", "1.0")))
        (marks / f"end-{stamp}").write_text(repr(sorted(config.items())))
        return {"accuracy": 0.5 + 0.01 * config["s0.width"] - 0.001 * config["s0.kernel"]}

    return search.Space(network=search.families.cnn(stages=1),
                        network_knobs={"s0.width": [8, 16, 24, 32, 40, 48], "s0.kernel": [3, 5],
                                       "s0.depth": [1, 2]},
                        hardware={"xbar_rows": 128},  # fixed: a candidate is its network, one callback each target="rram-256", data="digits",
                        objectives={"accuracy": "max", "latency_ns": "min"},
                        evaluator=search.Callback(evaluate, ("accuracy",)))


if __name__ == "__main__":
    storage, study, trials, marks = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    result = search.run(space(marks), storage=storage, study=study, trials=trials, seed=os.getpid() % 1000,
                        progress=False, heartbeat_s=1, grace_s=3, timeout_s=240, final=False)
    print(len(result.trials()))
