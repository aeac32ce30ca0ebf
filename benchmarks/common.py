"""What every benchmark shares: the machine record, the matmul ceiling, GRU FLOP counts, peak
memory and a throw-away project directory holding the default survey's sequences.

The ceiling is the best float32 matrix-multiply rate of this machine, measured in the same
process as the figure it normalises (on a shared machine both see the same contention):
TensorFlow's ``tf.linalg.matmul`` and NumPy's ``@`` on n x n matrices, best of a few repeats,
2 n^3 FLOP each. GRU work is mostly matrix multiplies, so this is its physical ceiling.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from varnet.core import files

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
WORK_DIR = Path(os.environ.get("VARNET_BENCH_DIR", "/tmp/varnet-bench"))
"""Scratch projects (default survey, real surveys); never the repository's data/."""

PAPER_MODEL = {"gru_units": 96, "gru_layers": 2, "embedding": 16}
"""The released run's architecture (docs/method.md §2): 2 x GRU(96), m = 16, sequences of 200."""



# --- the machine ------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """CPU, cores usable by this process, memory, load, versions, date: the context of a figure."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = float("nan")
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        memory_gib = int(kib) / 2**20
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_gib, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "versions": _versions(),
        "git_commit": _git_commit(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tensorflow", "keras", "numpy", "pandas"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def load() -> float:
    """The 1-minute load average (runnable processes; above the core count = contention)."""
    return round(os.getloadavg()[0], 2)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the ceiling ------------------------------------------------------------------------------

def matmul_ceiling(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best float32 GFLOP/s of tf.linalg.matmul and of NumPy on n x n; ``ceiling`` = the higher."""
    import tensorflow as tf

    flop = 2.0 * n**3
    a = tf.random.normal((n, n), seed=0)
    b = tf.random.normal((n, n), seed=1)
    tf.linalg.matmul(a, b).numpy()  # warm-up: kernel selection, thread pool start

    def best(run) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return flop / min(times) / 1e9

    tf_rate = best(lambda: tf.linalg.matmul(a, b).numpy())
    a_np, b_np = a.numpy(), b.numpy()
    np_rate = best(lambda: a_np @ b_np)
    return {"n": n, "tf_gflops": round(tf_rate, 1), "numpy_gflops": round(np_rate, 1),
            "ceiling_gflops": round(max(tf_rate, np_rate), 1)}


def gru_layer_inputs(network) -> list[tuple[int, int]]:
    """(input width, units) of every GRU of a built network (encoder then decoder), read from
    its kernels: the widths follow the model options (log P for the encoder, the decoder's
    phase and harmonics) without restating them here."""
    import keras

    def walk(layer):
        if isinstance(layer, keras.layers.GRU):
            kernel = layer.cell.kernel.shape
            yield int(kernel[0]), int(kernel[1]) // 3
        for child in getattr(layer, "layers", []):
            yield from walk(child)

    return list(walk(network))


def gru_flop_per_sequence(network, steps: int, training: bool) -> float:
    """FLOP of the GRU layers of ``network`` for one sequence of ``steps`` points.

    forward = sum over layers of T * 3 gates * (input * units + units^2) * 2 (multiply + add);
    training = 3 x forward (the backward pass costs two forward passes: gradients with respect
    to the inputs and to the weights). Dense layers, the estimation network and the GMM add
    < 1% at the paper's size and are not counted.
    """
    per_step = sum(3 * (n_in * units + units**2) * 2 for n_in, units in gru_layer_inputs(network))
    return per_step * steps * (3 if training else 1)


# --- a scratch project with the default survey ----------------------------------------------

@contextlib.contextmanager
def project_dir(path: Path) -> Iterator[Path]:
    """Run inside ``path`` as a project root (data/, models/, mlruns/ relative to it), MLflow
    tracking in a sqlite file there. Restores the working directory and environment after."""
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    previous_dir = Path.cwd()
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{path / 'mlruns' / 'mlflow.db'}"
    (path / "mlruns").mkdir(exist_ok=True)
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous_dir)
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri


def root_params(*overlays: str | Path) -> dict[str, Any]:
    """The repository's params.yaml with optional overlays (paths relative to the root)."""
    from varnet.core.config import load_params

    return load_params([ROOT / "params.yaml", *(ROOT / p for p in overlays)])


def default_survey(workdir: Path = WORK_DIR / "default", params: dict | None = None
                   ) -> dict[str, Any]:
    """The `make run` default survey's sequences.npz and split.npz under ``workdir``.

    The stages' own functions in process (simulate_survey, apply_cuts, build_sequences,
    split_indices) with params.yaml's sections; the Great Expectations checks of `varnet
    validate` are skipped (they validate, they do not change the data). Reused when present
    and made from the same params.
    """
    from varnet.core import schema
    from varnet.core.config import (
        CutsParams,
        SequencesParams,
        SplitParams,
        SyntheticParams,
        section,
    )
    from varnet.prepare.cuts import apply_cuts
    from varnet.prepare.sequences import build_sequences
    from varnet.prepare.split import split_indices
    from varnet.surveys.synthetic import simulate_survey

    params = root_params() if params is None else params
    workdir = Path(workdir)
    recipe = {key: params.get(key) for key in ("survey", "cuts", "sequences", "split")}
    stamp = workdir / "survey.json"
    sequences, split = workdir / schema.SEQUENCES_FILE, workdir / schema.SPLIT_FILE
    if stamp.is_file() and sequences.is_file() and split.is_file():
        previous = json.loads(stamp.read_text())
        if previous["recipe"] == recipe:
            return previous
    started = time.perf_counter()
    synthetic = (params["survey"] or {}).get("synthetic") or {}
    catalog, lightcurves = simulate_survey(SyntheticParams(**synthetic))
    simulated = time.perf_counter()
    result = apply_cuts(catalog, lightcurves, section(CutsParams, params),
                        progress=False)
    seq_cfg = section(SequencesParams, params)
    arrays, _ = build_sequences(result.catalog, result.lightcurves, seq_cfg.length, seq_cfg.bands)
    split_cfg = section(SplitParams, params)
    indices = split_indices(arrays["label"], arrays["star_id"], by=split_cfg.by,
                            n_splits=split_cfg.n_splits, fold=split_cfg.fold, seed=split_cfg.seed)
    files.write_npz(sequences, **arrays)
    files.write_npz(split, **indices)
    info = {"recipe": recipe, "stars": len(catalog), "stars_kept": len(result.catalog),
            "sequences": int(arrays["label"].size),
            **{f"{k}_sequences": int(v.size) for k, v in indices.items()},
            "simulate_s": round(simulated - started, 1),
            "prepare_s": round(time.perf_counter() - simulated, 1)}
    stamp.write_text(json.dumps(info, indent=1))
    return info


# --- running one benchmark ------------------------------------------------------------------

def test_scores(model_dir: Path) -> dict[str, float]:
    """What a benchmark reports of a trained model: test accuracy, median reconstruction R² of
    the test sequences and novelty AUROC (test vs novel_test), from its predictions.npz; the
    valid set chose (the per-epoch curves read it), so it is never reported."""
    import numpy as np

    from varnet.scoring import metrics

    pred = files.read_npz(Path(model_dir) / "predictions.npz")
    test, novel = pred["subset"] == "test", pred["subset"] == "novel_test"
    scored = test | novel
    return {"test_accuracy": metrics.accuracy(pred["label"][test], pred["gamma"][test].argmax(1)),
            "test_recon_r2": float(np.nanmedian(pred["recon_r2"][test])),
            "test_novelty_auroc": metrics.novelty_scores(pred["energy"][scored], novel[scored],
                                                         {})["auroc"]}


def main(run, description: str, argv: list[str] | None = None) -> int:
    """Command line of one benchmark module: ``--json FILE`` (for __main__) and ``--quick``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--quick", action="store_true", help="smallest sizes (a smoke test)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if args.json:
        files.write_json(result, args.json)
    else:
        print(files.to_json(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(print(json.dumps({"machine": machine(), "matmul": matmul_ceiling()}, indent=1)))
