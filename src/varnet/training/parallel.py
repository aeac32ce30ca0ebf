"""Train several variants side by side, each in its own `varnet train <variant>` process.

A training step of these small GRUs is bound by per-op overhead, not arithmetic: one process
uses two cores at ~1.3x the speed of one, so two single-threaded trainings at once finish
about 1.5x sooner than two after each other (measured on 2 cores: 3.7 s an epoch alone with
two threads, 4.8 s each for two at once with one thread; docs/results.md). Three at once on
2 cores (params.yaml) keep both cores busy until the last one ends: the default train stage
took 437 s against 575 s with two. `train.jobs` processes run at once, each with
max(1, cores / jobs) threads; a variant with ``autoencoder_from``
starts after the variant it takes the autoencoder from. Each line a worker prints is prefixed
with its variant. Thread counts change the last bits of a training's floating-point sums, so
`train.jobs` is a parameter of the DVC stage: the same jobs on the same machine give the same
models to the bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from varnet.core.config import TrainParams
from varnet.core.errors import VarnetError


def thread_env(jobs: int) -> dict[str, str]:
    """The environment of one of ``jobs`` workers: its share of the cores (all of them alone)."""
    env = dict(os.environ)
    if jobs > 1:
        threads = str(max(1, len(os.sched_getaffinity(0)) // jobs))
        env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads,
                   OMP_NUM_THREADS=threads)
    return env


def train_variants(names: Sequence[str], cfg: TrainParams, jobs: int,
                   params_files: Sequence[str] | None, flags: Sequence[str] = ()) -> None:
    """Run ``varnet train <name>`` for every name, ``jobs`` at a time; raise if any failed."""
    waiting = list(names)
    running: dict[str, tuple[subprocess.Popen, threading.Thread]] = {}
    finished = 0
    failed: list[str] = []
    env = thread_env(jobs)
    base = [sys.executable, "-m", "varnet.cli",
            *(arg for path in params_files or () for arg in ("--params", str(path))), "train"]
    started = time.perf_counter()
    while waiting or running:
        for name in [n for n in waiting if _ready(n, cfg, waiting, running)][:jobs - len(running)]:
            waiting.remove(name)
            print(f"varnet train: starting {name} ({len(running) + 1} of {jobs} at once)",
                  flush=True)
            process = subprocess.Popen([*base, name, *flags], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1)
            relay = threading.Thread(target=_relay, args=(name, process), daemon=True)
            relay.start()
            running[name] = (process, relay)
        time.sleep(0.2)
        for name, (process, relay) in list(running.items()):
            if process.poll() is None:
                continue
            relay.join()
            del running[name]
            if process.returncode == 0:
                finished += 1
            else:
                failed.append(name)
            print(f"varnet train: {name} {'FAILED' if process.returncode else 'done'} "
                  f"after {time.perf_counter() - started:.0f} s", flush=True)
    if failed:
        raise VarnetError(f"training failed for {', '.join(sorted(failed))} (its lines above, "
                          f"prefixed [{failed[0]}]); {finished} other variant(s) finished")


def _ready(name: str, cfg: TrainParams, waiting: list[str], running: dict) -> bool:
    """A variant starts once the variant it takes the autoencoder from is no longer pending."""
    source = cfg.variant(name).autoencoder_from
    return source is None or (source not in waiting and source not in running)


def _relay(name: str, process: subprocess.Popen) -> None:
    for line in process.stdout:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()
