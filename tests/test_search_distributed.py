"""Many machines on one study: two worker processes share a PostgreSQL study; one is killed
in the middle of a trial. The study still completes exactly the trials asked for, keeps every
completed trial, counts none twice and leaves none RUNNING."""

import os
import signal
import subprocess
import sys
import time

import optuna

from conftest import ROOT

TRIALS = 8


def _count(path, prefix, pid=None):
    return sum(1 for f in path.iterdir() if f.name.startswith(prefix) and (pid is None or f"-{pid}-" in f"{f.name}-"))


def test_two_workers_on_postgres_one_killed_mid_trial(postgres_url, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "CIMC_CACHE": str(tmp_path / "cache"),
           "CIMC_TEST_TRIAL_S": "1.5"}
    cmd = [sys.executable, str(ROOT / "tests" / "search_worker.py"), postgres_url, "shared", str(TRIALS), str(marks)]
    victim = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    survivor = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        # kill the victim once it has completed a trial and is inside the next one
        while not (_count(marks, "end-", victim.pid) >= 1
                   and _count(marks, "start-", victim.pid) > _count(marks, "end-", victim.pid)):
            assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
            assert time.monotonic() - t0 < 180, "the victim never started a second trial"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        out, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, err.decode()[-3000:]
    finally:
        for p in (victim, survivor):
            p.kill()
    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == TRIALS
    assert "RUNNING" not in states and "WAITING" not in states
    assert states.count("FAIL") == 1  # the killed trial, failed by the heartbeat check
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert failed.user_attrs["worker"].endswith(f":{victim.pid}")
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == failed.params
    # every trial the victim completed before it died is kept, and each evaluation ran once
    by_victim = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs["worker"].endswith(f":{victim.pid}")]
    assert len([t for t in by_victim if "cached_from" not in t.user_attrs]) == _count(marks, "end-", victim.pid) >= 1
    evaluated = [t for t in trials if t.state.name == "COMPLETE" and "cached_from" not in t.user_attrs]
    assert len(evaluated) == _count(marks, "end-")
    assert len({t.number for t in trials}) == len(trials)


def test_many_workers_starting_at_once_on_an_empty_database(postgres_url, tmp_path):
    """Optuna creates its tables on first use; workers that start together must not collide
    (PostgreSQL refuses concurrent CREATE TABLE of one name). Eight processes, imports done,
    released together."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE fresh")
    url = postgres_url.rsplit("/", 1)[0] + "/fresh"
    go = tmp_path / "go"
    code = ("import sys, time, types, pathlib; from cimc.search.engine import make_storage; import optuna, sqlalchemy\n"
            "go = pathlib.Path(sys.argv[2]); t0 = time.monotonic()\n"
            "while not go.exists() and time.monotonic() - t0 < 120: time.sleep(0.001)\n"
            "make_storage(sys.argv[1], types.SimpleNamespace(heartbeat_s=10, grace_s=30)); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(8)  # every process has imported and is waiting
    go.write_text("")
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-400:] for _, err in results if err]
    assert all(out.strip() == "ok" for out, _ in results)
