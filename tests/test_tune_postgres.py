"""Two `varnet tune` workers, as on two machines, share one study in a real PostgreSQL server.

docs/tuning.md promises that workers on several machines can run one study through a SQL
storage: every trial runs exactly once, `tune.n_trials` counts over all workers, and each
worker's own `--seed` keeps them from proposing the same values. The sqlite and journal tests in
test_tune.py run in one process; here a PostgreSQL server of our own (initdb + pg_ctl in a temp
dir, unix socket only, no TCP port) holds the Optuna study and the MLflow store, and two
`varnet tune` subprocesses, each in its own copy of a tiny project, run trials side by side (the
second joins after the first worker's first trial, as docs/tuning.md says to start them).

Skipped, with the reason, when PostgreSQL (Debian: `apt-get install postgresql`; `.ci/run` does
it where it can) or psycopg2 (`pip install -e '.[dev]'`) is missing, or the server won't start.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
import tiny_project
import yaml
from optuna.trial import TrialState
from test_tune import PARAMS, fake_train, tracking  # noqa: F401  (tracking is a fixture)

from varnet.core.config import TuneParams
from varnet.training import tune

N_TRIALS = 6
SEEDS = (1, 2)  # what docs/tuning.md tells the user to give two machines
DB_USER = "varnet"
TRIAL_LINE = re.compile(r"^trial (\d+) (COMPLETE|PRUNED|FAIL) \[", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Server:
    optuna_url: str
    mlflow_url: str


def _postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout), else initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parents[1].name)])
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None or not (Path(initdb).resolve().parent / "pg_ctl").is_file():
        pytest.skip("PostgreSQL is not installed: no initdb and pg_ctl under "
                    "/usr/lib/postgresql/*/bin or on PATH (Debian: apt-get install postgresql)")
    return Path(initdb).resolve().parent


def _server_user() -> dict:
    """subprocess arguments that drop root: postgres refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    """A throwaway PostgreSQL server with databases `optuna` and `mlflow`, stopped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is not installed "
                                   "(pip install -e '.[dev]')")
    bin_dir = _postgres_bin_dir()
    as_user = _server_user()
    # a short path under /tmp: the socket path must stay under 107 bytes, and the server user
    # must be able to reach it (pytest's tmp_path is private to the test user)
    base = Path(tempfile.mkdtemp(prefix="varnet-pg-", dir="/tmp"))
    data, log = base / "data", base / "server.log"
    if as_user:
        os.chown(base, as_user["user"], as_user["group"])
    run = dict(cwd=base, capture_output=True, text=True, timeout=120, **as_user)
    started = False
    try:
        init = subprocess.run([bin_dir / "initdb", "-D", data, "-U", DB_USER, "--auth=trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"], **run)
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL initdb failed: {(init.stderr or init.stdout)[-500:]}")
        options = (f"-c listen_addresses='' -c unix_socket_directories={base} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        start = subprocess.run([bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60",
                                "-o", options, "start"], **run)
        started = start.returncode == 0
        if not started:
            tail = log.read_text()[-500:] if log.exists() else start.stderr[-500:]
            pytest.skip(f"PostgreSQL server did not start: {tail}")
        conn = psycopg2.connect(host=str(base), user=DB_USER, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        url = f"postgresql+psycopg2://{DB_USER}@/{{}}?host={base}"
        yield Server(url.format("optuna"), url.format("mlflow"))
    finally:
        if started:
            subprocess.run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], **run)
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_a_finished_trial(client: mlflow.MlflowClient, experiment: str,
                               worker: subprocess.Popen, log: Path) -> None:
    """Until the worker's first trial run is closed (tagged optuna.state).

    Two workers that start together on a new database collide outside Optuna's trial
    bookkeeping (docs/tuning.md): both create Optuna's tables, and their first trials insert the
    same MLflow dataset rows. Here the first one has done both before the second starts.
    """
    deadline = time.monotonic() + 180
    while not client.search_runs([experiment], "tags.`optuna.state` != ''", max_results=1):
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the first worker finished no trial:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _wait(workers: list[subprocess.Popen], logs: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            worker.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pytest.fail("a worker ran past the time limit:\n" + "\n".join(
            f"--- {log.parent.name}\n{log.read_text()[-2000:]}" for log in logs))


@pytest.mark.timeout(360)
def test_two_workers_share_one_study_without_losing_or_repeating_a_trial(postgres, tmp_path):
    """What a user on two machines runs: the study must come out as if one worker had run it,
    every trial once, and each worker's log must agree with the storage about who ran what."""
    clones = [tmp_path / "machine-a", tmp_path / "machine-b"]
    params = tiny_project.write_project(clones[0])
    params["train"]["epochs"] = 3  # pruning can act after epochs 1 and 2
    params["tune"]["pruning"] = {"percentile": 50, "n_startup_trials": 2, "n_warmup_epochs": 0}
    (clones[0] / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(clones[0], clones[1])  # the second machine's checkout: same data and params
    # one MLflow store for both, made (schema and experiment) before they start, as a tracking
    # server would be
    client = mlflow.MlflowClient(tracking_uri=postgres.mlflow_url)
    experiment = client.create_experiment(
        params["mlflow"]["experiment"], artifact_location=(tmp_path / "artifacts").as_uri())
    env = {**os.environ, "MLFLOW_TRACKING_URI": postgres.mlflow_url}
    env.pop("MLFLOW_EXPERIMENT_ID", None)

    logs = [clone / "tune.log" for clone in clones]
    workers: list[subprocess.Popen] = []
    try:
        for clone, log, seed in zip(clones, logs, SEEDS, strict=True):
            if workers:  # the second machine joins once the first has finished a trial
                _wait_for_a_finished_trial(client, experiment, workers[0], logs[0])
            with log.open("w") as out:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "varnet.cli", "tune", "--storage",
                     postgres.optuna_url, "--n-trials", str(N_TRIALS), "--seed", str(seed)],
                    cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT))
        _wait(workers, logs, timeout=300)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    outputs = [log.read_text() for log in logs]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name=params["tune"]["study"],
                              storage=tune.open_storage(postgres.optuna_url, 0, 0))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers  # unique, none missing
    assert len({t._trial_id for t in trials}) == len(trials)
    # nothing left RUNNING or WAITING, nothing failed; n_trials finished over both workers
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}, \
        [(t.number, t.state.name) for t in trials]
    # a worker stops starting trials once n_trials have finished, but the other one's trial in
    # flight at that moment still finishes: at most one more (Optuna's MaxTrialsCallback)
    assert N_TRIALS <= len(trials) <= N_TRIALS + len(workers) - 1, len(trials)

    # every trial was run by exactly one of the two workers, and each worker's own log lists
    # exactly the trials the storage credits it with
    owner = {t.number: t.user_attrs[tune.WORKER_ATTR]["pid"] for t in trials}
    for worker, output in zip(workers, outputs, strict=True):
        logged = [int(n) for n, _ in TRIAL_LINE.findall(output)]
        assert len(logged) == len(set(logged)), output[-3000:]
        mine = {n for n, pid in owner.items() if pid == worker.pid}
        assert mine, f"worker {worker.pid} ran no trial:\n{output[-3000:]}"
        assert set(logged) == mine, (logged, owner)
    assert set(owner.values()) == {w.pid for w in workers}

    # random startup draws with different seeds: no two trials share their lambda
    lambdas = [t.params["lambda_energy"] for t in trials]
    assert len(set(lambdas)) == len(trials), [t.params for t in trials]
    for t in trials:
        assert t.params["embedding"] in params["tune"]["embedding_choices"]
        if t.state == TrialState.COMPLETE:
            assert len(t.values) == 2 and all(math.isfinite(v) for v in t.values)

    # MLflow: one run per trial, nested under the one study run, the run the trial records,
    # tagged with its state
    runs = client.search_runs([experiment], max_results=1000)
    trial_runs = [r for r in runs if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs) == sorted(numbers)
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in trial_runs}
    for t in trials:
        run = by_trial[t.number]
        assert run.info.run_id == t.user_attrs[tune.RUN_ATTR]
        assert run.data.tags["mlflow.parentRunId"] == study.user_attrs[tune.RUN_ATTR]
        assert run.data.tags["optuna.state"] == t.state.name
    assert len(runs) == len(trials) + 1  # and the study run


def test_worker_seeds_do_not_replay_each_other(tracking):  # noqa: F811
    """`--seed 2` on the empty study and `--seed 1` joining after its first trial must draw
    different values (the sampler seed was seed + trials so far: both were 2)."""
    first = tune.run_study(TuneParams(storage="optuna/study.log", n_trials=1, pruning=None,
                                      seed=2), PARAMS, train_fn=fake_train, log=lambda _: None)
    joined = tune.run_study(TuneParams(storage="optuna/study.log", n_trials=2, pruning=None,
                                       seed=1), PARAMS, train_fn=fake_train, log=lambda _: None)
    assert joined.trials[1].params["lambda_energy"] != first.trials[0].params["lambda_energy"]
