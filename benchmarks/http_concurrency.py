"""HTTP serving under concurrent clients: `mlflow models serve` of a registered model on loopback.

What a survey's alert broker or a web page does: many small requests at once. The model is the
default architecture of params.yaml trained for one epoch per phase on the default survey and
registered in its own scratch project (latency does not depend on the weights), served with
`mlflow models serve -m models:/varnet-bench/<version> --env-manager local` on 127.0.0.1 with
MLflow's default number of server workers. Each request is one simulated star's raw epochs
(benchmarks.preprocess.simulate_frames: ~400 V-band epochs, 150 to 1,500) with its
catalog period, in the documented `dataframe_split` body; a thread pool of client workers sends
them all as fast as it can. Two warm-up requests (model graph tracing) are not counted.

Reported: p50 / p95 / max latency of a request (send to full answer), the success rate (HTTP 200
with one row for the star), requests/s over the whole burst, and the load before and after.

    .venv/bin/python -m benchmarks.http_concurrency          # 100 requests, 16 client workers
    .venv/bin/python -m benchmarks.http_concurrency --quick  # 20 requests, 4 client workers
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.preprocess import simulate_frames

REQUESTS = 100
CLIENT_WORKERS = 16
WARMUP_REQUESTS = 2
START_DEADLINE_S = 300
REQUEST_TIMEOUT_S = 120
PROJECT = common.WORK_DIR / "http-project"
"""Its own scratch project (default survey, MLflow store with the registered model)."""
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
REGISTERED_MODEL = "varnet-bench"


def register_model(params: dict) -> str:
    """Train the default joint network briefly on the default survey; its registered URI."""
    from varnet.training.train import train_variant

    params = {**params, "mlflow": {**params["mlflow"], "registered_model": REGISTERED_MODEL},
              "train": {**params["train"], "epochs": 1, "estimation_epochs": 1,
                        "joint_estimation_epochs": 1}}
    result = train_variant("joint", params, PROJECT / "models" / "joint", restart=True)
    return f"models:/{REGISTERED_MODEL}/{result['version']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_bodies(n: int) -> list[bytes]:
    """One star per request: its raw epochs and catalog period, the documented JSON body."""
    catalog, lightcurves = simulate_frames(n, seed=5)
    periods = catalog.set_index("id")["period"]
    bodies = []
    for star, points in lightcurves.groupby("id", sort=False):
        frame = points[["id", "time", "mag", "err", "band"]].assign(period=periods[star])
        split = json.loads(frame.to_json(orient="split", index=False))
        bodies.append(json.dumps({"dataframe_split": split,
                                  "params": {"level": "star"}}).encode())
    return bodies[:n]


def post(url: str, body: bytes) -> tuple[bool, float]:
    """(answered with one scored row, seconds from send to the whole answer)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            answer = json.loads(response.read())
            ok = response.status == 200 and len(answer["predictions"]) == 1
    except (OSError, ValueError, KeyError):
        ok = False
    return ok, time.perf_counter() - started


def start_server(model_uri: str, port: int, log: Path, *, cwd: Path | None = None,
                 tracking_uri: str | None = None,
                 deadline_s: float = START_DEADLINE_S) -> subprocess.Popen:
    """`mlflow models serve` on 127.0.0.1:port in its own process group, once /ping answers
    (also the fixture of tests/test_serve.py). The store is ``tracking_uri`` or the caller's
    MLFLOW_TRACKING_URI; mlflow starts `uvicorn` from PATH: the virtualenv's, as when it is
    activated."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(MLFLOW).parent),
                                                  os.environ.get("PATH", "")])}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    with log.open("w") as out:
        proc = subprocess.Popen([MLFLOW, "models", "serve", "-m", model_uri, "-h", "127.0.0.1",
                                 "-p", str(port), "--env-manager", "local"],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the model server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"the model server did not start in {deadline_s} s")
        time.sleep(1)


def stop_server(proc: subprocess.Popen) -> None:
    """End the server's own process group (mlflow and its uvicorn child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def burst(url: str, bodies: list[bytes], client_workers: int) -> dict:
    load = common.load()
    started = time.perf_counter()
    with ThreadPoolExecutor(client_workers) as pool:
        results = list(pool.map(lambda body: post(url, body), bodies))
    seconds = time.perf_counter() - started
    ok = np.array([r[0] for r in results])
    latency = np.array([r[1] for r in results])
    return {"requests": len(bodies), "client_workers": client_workers,
            "success_rate": round(float(ok.mean()), 4),
            "p50_s": round(float(np.percentile(latency, 50)), 3),
            "p95_s": round(float(np.percentile(latency, 95)), 3),
            "max_s": round(float(latency.max()), 3),
            "seconds": round(seconds, 2), "requests_per_s": round(len(bodies) / seconds, 2),
            "load_before": load, "load_after": common.load()}


def run(quick: bool = False) -> dict:
    params = common.root_params()
    common.default_survey(PROJECT)
    machine = common.machine()
    n_requests, client_workers = (20, 4) if quick else (REQUESTS, CLIENT_WORKERS)
    bodies = request_bodies(n_requests + WARMUP_REQUESTS)
    with common.project_dir(PROJECT):
        model_uri = register_model(params)
        port = free_port()
        proc = start_server(model_uri, port, PROJECT / "serve.log")
        try:
            url = f"http://127.0.0.1:{port}/invocations"
            warmup = [post(url, body) for body in bodies[:WARMUP_REQUESTS]]
            if not all(ok for ok, _ in warmup):
                raise SystemExit(f"warm-up requests failed:\n"
                                 f"{(PROJECT / 'serve.log').read_text()[-3000:]}")
            result = burst(url, bodies[WARMUP_REQUESTS:], client_workers)
        finally:
            stop_server(proc)
    return {"benchmark": "http_concurrency", "machine": machine,
            "command": "python -m benchmarks.http_concurrency" + (" --quick" if quick else ""),
            "model": {**params["model"], "uri": model_uri},
            "server": "mlflow models serve --env-manager local (default workers), 127.0.0.1",
            "request": "one star, ~400 epochs, catalog period, level star",
            "warmup_s": [round(s, 2) for _, s in warmup], **result}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
