"""Time to accuracy: epochs and wall time until the validation accuracy first reaches 95% and 98%
on the default survey, beside the paper's released training log.

Trains the `joint` variant with `varnet.training.train.train_variant` (the code `varnet train joint`
runs, MLflow run, per-epoch checkpoint and validation included) on the default survey's
sequences in a scratch project (benchmarks.common.default_survey), with params.yaml plus the
overlay given (default: none, i.e. `make run`'s settings) and `train.epochs` capped. Training
stops at the first epoch with validation accuracy >= the highest target; a target not reached
within the cap is reported as such.

The paper's released run (../shared/data/tsang2019-reference/training.csv.gz, GRU 96, batch
2000, lr 2e-4, float64 on a GPU): 95% at epoch 282 and 98% at epoch 757 of 2001 (0-based epoch
index, as in its log), ~24 s per epoch. Epochs are not equal work: the paper's epoch is 39,403
sequences (20 steps of 2,000); ours is the default survey's training set, so steps and
sequences seen are reported too.

    .venv/bin/python -m benchmarks.time_to_accuracy                     # params.yaml as is
    .venv/bin/python -m benchmarks.time_to_accuracy --overlay benchmarks/fast-cpu.yaml --epochs 120
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from varnet.core import files

TARGETS = (0.95, 0.98)
PAPER_LOG = common.ROOT.parent / "shared" / "data" / "tsang2019-reference" / "training.csv.gz"
PAPER = {"epochs": 2001, "train_sequences": 39403, "batch_size": 2000,
         "epoch_index": {"0.95": 282, "0.98": 757}}
"""The released run (docs/method.md §6), used when the log itself is not on this machine."""
DEFAULT_EPOCH_CAP = 100


def paper_reference() -> dict[str, Any]:
    """First epoch index and hours of wall time at which the paper's log reaches each target."""
    reference = {"source": "docs/method.md §6", **PAPER}
    if not PAPER_LOG.is_file():
        return reference
    import pandas as pd

    log = pd.read_csv(PAPER_LOG, parse_dates=["time"])
    start = log["time"].iloc[0] - (log["time"].iloc[1] - log["time"].iloc[0])
    reference.update(source=str(PAPER_LOG.relative_to(common.ROOT.parent)),
                     epochs=len(log), epoch_index={}, wall_h={})
    for target in TARGETS:
        reached = log[log["val_gamma_acc"] >= target]
        if len(reached):
            row = reached.iloc[0]
            reference["epoch_index"][f"{target:g}"] = int(row["epoch"])
            reference["wall_h"][f"{target:g}"] = round(
                (row["time"] - start).total_seconds() / 3600, 2)
    reference["s_per_epoch"] = round(log["time"].diff().median().total_seconds(), 1)
    return reference


def run(quick: bool = False, overlay: str | None = None, epochs: int | None = None
        ) -> dict[str, Any]:
    import keras

    from varnet.core.config import TrainParams, section
    from varnet.training.train import train_variant

    params = common.root_params(*([overlay] if overlay else []))
    survey = common.default_survey()
    cap = epochs or (3 if quick else DEFAULT_EPOCH_CAP)
    params["train"] = {**params["train"], "epochs": cap, "early_stopping_patience": 0}
    cfg = section(TrainParams, params)

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            wall_s = round(time.perf_counter() - self.started, 2)
            self.rows.append({"epoch": epoch, "wall_s": wall_s,
                              "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
                              "accuracy": float(logs.get("accuracy", float("nan")))})
            if self.rows[-1]["val_accuracy"] >= max(TARGETS):
                self.model.stop_training = True

    recorder = Recorder()
    machine = common.machine()
    with common.project_dir(common.WORK_DIR / "default") as project:
        out_dir = project / "models" / "time-to-accuracy"
        train_variant("joint", params, out_dir, callbacks=[recorder], register=False,
                      restart=True)
        final = common.test_scores(out_dir)
    total_s = time.perf_counter() - recorder.started
    steps_per_epoch = max(survey["train_sequences"] // cfg.batch_size, 1)
    reached = {}
    for target in TARGETS:
        first = next((r for r in recorder.rows if r["val_accuracy"] >= target), None)
        reached[f"{target:g}"] = None if first is None else {
            "epoch_index": first["epoch"], "epochs": first["epoch"] + 1,
            "steps": (first["epoch"] + 1) * steps_per_epoch,
            "sequences_seen": (first["epoch"] + 1) * steps_per_epoch * cfg.batch_size,
            "wall_s": first["wall_s"]}
    return {
        "benchmark": "time_to_accuracy", "machine": machine, "overlay": overlay,
        "command": "python -m benchmarks.time_to_accuracy"
                   + (f" --overlay {overlay}" if overlay else "") + f" --epochs {cap}",
        "model": params["model"], "train": {k: v for k, v in params["train"].items()
                                            if k != "variants"},
        "survey": {k: v for k, v in survey.items() if k != "recipe"},
        "epoch_cap": cap, "epochs_run": len(recorder.rows), "steps_per_epoch": steps_per_epoch,
        "reached": reached, **final, "total_s": round(total_s, 1),
        "history": recorder.rows, "paper": paper_reference(), "load_after": common.load(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlay", default=None,
                        help="params overlay merged over params.yaml, relative to the repo root")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epoch cap (default {DEFAULT_EPOCH_CAP})")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="3 epochs (a smoke test)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.overlay, args.epochs)
    result["peak_rss_mib"] = round(common.peak_rss_mib(), 1)
    if args.json:
        files.write_json(result, args.json)
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
