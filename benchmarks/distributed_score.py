"""Distributed scoring: `varnet score` of a HATS catalog on 1 and 2 Dask worker processes.

What `varnet hats-catalog` + `varnet score CATALOG --workers N` run, called in process:
simulated stars (benchmarks.preprocess.simulate_frames, ~400 epochs each) are written as a HATS
catalog with hats-import (`varnet.serving.catalog.write_hats_catalog`, the same partition size
for every survey size), then scored by `varnet.serving.distributed.score_catalog` on a fresh
`LocalCluster` per run (one thread per worker, TensorFlow too). The model is the default
architecture of params.yaml trained for one epoch per phase on the default survey and
registered in its own scratch project (throughput does not depend on the weights).

Per run: stars/s of the whole job (open, score every partition, write the output catalog,
count its notes), after each worker has loaded the model and traced the network once (that
warm-up is reported apart), each worker's peak resident memory, and how busy each worker and
the client were (CPU s / job s: below 1 a worker waited, for a core of a shared machine or for
work at the end of the job). 1 then 2 workers, three times over (``PAIRS``; the largest survey
once): the 2/1 ratio is the median of the pairs'. Two survey sizes with
catalog periods show that memory per worker does not grow with the number of stars; stars
without a period get a Lomb-Scargle period (varnet.prepare.periods, measured on fewer stars,
~30 ms a star for these 2,000-day baselines).
The output of the smaller survey is compared, row by row, with the single-process
`varnet score` of the same light curves (varnet.serving.score.score_files).

    .venv/bin/python -m benchmarks.distributed_score          # 8,000 and 32,000 stars, ~11 min
    .venv/bin/python -m benchmarks.distributed_score --quick
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import common
from benchmarks.preprocess import simulate_frames

SIZES = (8000, 32000)
LOMB_SCARGLE_STARS = 1200
STARS_PER_PARTITION = 1000
"""`varnet hats-catalog`'s default: the network pads each call to 500 sequences, so a partition
much smaller than ~300 stars still pays for a full batch."""
LOMB_SCARGLE_STARS_PER_PARTITION = 200
"""HATS pixels of at most 200 stars: 12 partitions of ~100, over which a worker's fixed cost per
partition (~0.34 s: one padded batch of the network, the nested table) is ~10% of the search.
At 40 (400 stars in 24 partitions of ~17, until 2026-12-03) it was 40% of the job: 8 s of
20.8 beyond the search's 400 x 31.5 ms, and the rate measured that overhead."""
WORKERS = (1, 2)
PAIRS = 3
"""Runs of 1 then 2 workers on the same catalog (the largest survey: one). A pair's ratio
moves by 0.1-0.2 between pairs minutes apart on this shared 2-core machine (docs/scaling.md);
the median of three is the figure."""
REGISTERED_MODEL = "varnet-bench"
PROJECT = common.WORK_DIR / "distributed-project"
"""Its own scratch project (default survey, MLflow store with the registered model)."""


def own_peak_rss_mib() -> float:
    """Peak resident memory of this process alone (VmHWM): a spawned worker's ru_maxrss also
    counts its parent's peak at the fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


def register_model(params: dict) -> str:
    """Train the default joint network briefly on the default survey; its registered URI."""
    from varnet.training.train import train_variant

    params = {**params, "mlflow": {**params["mlflow"], "registered_model": REGISTERED_MODEL},
              "train": {**params["train"], "epochs": 1, "estimation_epochs": 1,
                        "joint_estimation_epochs": 1}}
    out_dir = PROJECT / "models" / "joint"
    result = train_variant("joint", params, out_dir, restart=True)
    return f"models:/{REGISTERED_MODEL}/{result['version']}"


def write_survey(n_stars: int, with_period: bool, folder: Path) -> dict[str, Path]:
    """Light curves, catalog (without periods if asked) and the long table the local path
    reads (the catalog's period and Gaia values on every epoch), as parquet files."""
    from varnet.core.schema import PHOT_COLUMNS

    catalog, lightcurves = simulate_frames(n_stars, seed=3)
    if not with_period:
        catalog = catalog.drop(columns="period")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.parquet" for name in ("catalog", "lightcurves", "long")}
    catalog.to_parquet(paths["catalog"])
    lightcurves.to_parquet(paths["lightcurves"])
    per_star = [c for c in ("id", "period", *PHOT_COLUMNS) if c in catalog]
    lightcurves.merge(catalog[per_star], on="id", how="left").to_parquet(paths["long"])
    return paths


def convert(paths: dict[str, Path], output: Path, stars_per_partition: int) -> dict:
    from varnet.serving import catalog, distributed

    started = time.perf_counter()
    with distributed.dask_client(2, None) as client:
        stats = catalog.write_hats_catalog(client, [paths["lightcurves"]], paths["catalog"],
                                           output, stars_per_partition)
    return {**stats, "seconds": round(time.perf_counter() - started, 1)}


def score_run(hats: Path, output: Path, model: tuple[str, str], workers: int) -> dict:
    """One job on a fresh cluster of ``workers``: warm-up, then the timed job."""
    from varnet.scoring.calibration import DEFAULT_ALPHA
    from varnet.serving import distributed, score

    example = pd.read_parquet(hats.parent / "long.parquet").head(300)
    example = example[example["id"] == example["id"].iloc[0]]

    def warm() -> int:
        score.predict(distributed.worker_model(*model), example, "star", DEFAULT_ALPHA)
        return 1

    load = common.load()
    with distributed.dask_client(workers, None) as client:
        started = time.perf_counter()
        client.run(warm)   # load the model and trace the network once in every worker
        warmup = time.perf_counter() - started
        stars = distributed.open_stars(hats, {})
        cpu_before, client_before = client.run(cpu_seconds), cpu_seconds()
        stats = distributed.score_catalog(client, stars, output, model, level="star",
                                          alpha=DEFAULT_ALPHA, chunk_rows=200_000, columns={})
        cpu = {k: v - cpu_before[k] for k, v in client.run(cpu_seconds).items()}
        client_cpu = cpu_seconds() - client_before
        peaks = client.run(own_peak_rss_mib)
    return {"workers": workers, "stars": stats["stars"], "partitions": stats["partitions"],
            "unscored": stats["unscored"], "warmup_s": round(warmup, 1),
            "seconds": round(stats["seconds"], 2),
            "stars_per_s": round(stats["stars"] / stats["seconds"], 1),
            "worker_peak_rss_mib": sorted(round(v) for v in peaks.values()),
            # CPU seconds / job seconds: below 1 = the worker waited (for a core or for work)
            "worker_busy": sorted(round(v / stats["seconds"], 2) for v in cpu.values()),
            "client_busy": round(client_cpu / stats["seconds"], 2),
            "load_before": load, "load_after": common.load()}


def compare_with_local(hats_output: Path, long_table: Path, model_uri: str) -> dict:
    """The distributed rows against the single-process `varnet score` of the same stars."""
    import lsdb

    from varnet.serving import score
    from varnet.serving.distributed import SAME_SCORES_ATOL, SAME_SCORES_RTOL

    local_out = long_table.with_name("local.parquet")
    stats = score.score_files(score.load_model(model_uri), [long_table], local_out)
    local = pd.read_parquet(local_out).sort_values("id", ignore_index=True)
    ours = lsdb.open_catalog(hats_output).compute().reset_index(drop=True)
    ours = ours.drop(columns=["ra", "dec"]).sort_values("id", ignore_index=True)
    ours = ours.astype(local.dtypes.to_dict())
    floats = local.select_dtypes("float").columns
    a, b = ours[floats].to_numpy(dtype=float), local[floats].to_numpy(dtype=float)
    diff = np.abs(a - b)
    try:
        pd.testing.assert_frame_equal(ours, local, rtol=SAME_SCORES_RTOL, atol=SAME_SCORES_ATOL)
        identical = True
    except AssertionError:
        identical = False
    return {"rows": len(local), "identical": identical, "rtol": SAME_SCORES_RTOL,
            "max_abs_float_diff": float(np.nanmax(diff)),
            "max_rel_float_diff": float(np.nanmax(diff / np.maximum(np.abs(b), 1e-12))),
            "same_columns": list(ours.columns) == list(local.columns),
            "local_stars_per_s": round(stats["stars"] / stats["seconds"], 1)}


def run(quick: bool = False) -> dict:
    import mlflow

    params = common.root_params()
    common.default_survey(PROJECT)
    machine = common.machine()
    sizes = (1000, 2000) if quick else SIZES
    lomb_scargle = 8 if quick else LOMB_SCARGLE_STARS
    work = common.WORK_DIR / "distributed"
    shutil.rmtree(work, ignore_errors=True)
    with common.project_dir(PROJECT):
        model_uri = register_model(params)
        model = (mlflow.get_tracking_uri(), model_uri)
        per_partition = STARS_PER_PARTITION // 4 if quick else STARS_PER_PARTITION
        surveys = [("catalog", n, per_partition) for n in sizes]
        surveys.append(("lomb-scargle", lomb_scargle,
                        2 if quick else LOMB_SCARGLE_STARS_PER_PARTITION))
        conversions, runs, comparisons = [], [], {}
        for periods, n_stars, per_partition in surveys:
            folder = work / f"{periods}-{n_stars}"
            paths = write_survey(n_stars, periods == "catalog", folder)
            conversions.append({"periods": periods, **convert(paths, folder / "hats",
                                                              per_partition)})
            pairs = 1 if quick or n_stars == max(sizes) else PAIRS
            for pair in range(1, pairs + 1):
                for workers in WORKERS:
                    output = folder / f"scores-{workers}"
                    runs.append({"periods": periods, "pair": pair,
                                 **score_run(folder / "hats", output, model, workers)})
            if periods not in comparisons:
                comparisons[periods] = compare_with_local(output, paths["long"], model_uri)
    speedup, pair_speedups = {}, {}
    for periods, n_stars, _ in surveys:
        rates = {}
        for r in runs:
            if r["periods"] == periods and r["stars"] == n_stars:
                rates.setdefault(r["pair"], {})[r["workers"]] = r["stars_per_s"]
        ratios = [round(rate[2] / rate[1], 2) for rate in rates.values()]
        pair_speedups[f"{periods}-{n_stars}"] = ratios
        speedup[f"{periods}-{n_stars}"] = round(float(np.median(ratios)), 2)
    return {"benchmark": "distributed_score", "machine": machine,
            "command": "python -m benchmarks.distributed_score" + (" --quick" if quick else ""),
            "model": {**params["model"], "uri": model_uri}, "conversions": conversions,
            "runs": runs, "speedup_2_vs_1": speedup, "speedup_pairs": pair_speedups,
            "identical_to_local": comparisons,
            "load_after": common.load()}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
