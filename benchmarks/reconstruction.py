"""Time to reconstruct and to accuracy: how well, and how soon, the autoencoder learns the
folded light curves and the classifier reaches 95% and 98% validation accuracy.

The reference is what a smooth folded curve allows: a 4-harmonic Fourier series in phase fitted
to each validation sequence on its own by weighted least squares, with the weights of L_AE
(w = s/err), scored with the same weighted R² as the network (varnet.scoring.metrics
.reconstruction_r2). The target is a median R² of at least 0.9 x the reference's on the same
sequences: validation for the time to reconstruct, test for the reported R².

Each variant (params.yaml, the overlays and --set values) is trained with
`varnet.training.train.train_variant` on the default survey's sequences in a scratch project;
the per-epoch validation R² and accuracy come from its history.csv (`val_recon_r2`,
`val_accuracy`). Reported: the first epoch and training wall time (the sum of the epochs' times)
at the R² target and at each accuracy target, the final validation accuracy, the test accuracy,
R² and novelty AUROC, and the test accuracy of the baseline's random forest on the embedding
alone (`varnet.evaluation.baseline` with params' `baseline` grid, as `varnet baseline` does).

Beside them, the paper's released run (../shared/data/tsang2019-reference/training.csv.gz, GRU
96, batch 2000, lr 2e-4, float64 on a GPU): 95% at epoch 282 and 98% at epoch 757 of 2001
(0-based epoch index, as in its log), ~24 s per epoch. Epochs are not equal work: the paper's
epoch is 39,403 sequences (20 steps of 2,000); ours is the default survey's training set.

    .venv/bin/python -m benchmarks.reconstruction
    .venv/bin/python -m benchmarks.reconstruction --set model.decoder_phase=false --variants joint
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import common
from varnet.core import files

HARMONICS = 4
TARGET_FRACTION = 0.9
ACCURACY_TARGETS = (0.95, 0.98)
PAPER_LOG = common.ROOT.parent / "shared" / "data" / "tsang2019-reference" / "training.csv.gz"
PAPER = {"epochs": 2001, "train_sequences": 39403, "batch_size": 2000,
         "epoch_index": {"0.95": 282, "0.98": 757}}
"""The released run (docs/method.md §6), used when the log itself is not on this machine."""


def paper_reference() -> dict[str, Any]:
    """First epoch index and hours of wall time at which the paper's log reaches each
    accuracy target."""
    reference = {"source": "docs/method.md §6", **PAPER}
    if not PAPER_LOG.is_file():
        return reference
    import pandas as pd

    log = pd.read_csv(PAPER_LOG, parse_dates=["time"])
    start = log["time"].iloc[0] - (log["time"].iloc[1] - log["time"].iloc[0])
    reference.update(source=str(PAPER_LOG.relative_to(common.ROOT.parent)),
                     epochs=len(log), epoch_index={}, wall_h={})
    for target in ACCURACY_TARGETS:
        reached = log[log["val_gamma_acc"] >= target]
        if len(reached):
            row = reached.iloc[0]
            reference["epoch_index"][f"{target:g}"] = int(row["epoch"])
            reference["wall_h"][f"{target:g}"] = round(
                (row["time"] - start).total_seconds() / 3600, 2)
    reference["s_per_epoch"] = round(log["time"].diff().median().total_seconds(), 1)
    return reference


def fourier_r2(sequences: dict[str, np.ndarray], index: np.ndarray,
               harmonics: int = HARMONICS) -> np.ndarray:
    """Weighted R² of a per-sequence Fourier fit in phase (the reference of the module doc)."""
    from varnet.prepare.sequences import folded_phase
    from varnet.scoring import metrics

    mag = sequences["X"][index, :, 1].astype(np.float64)
    weight = sequences["weight"][index].astype(np.float64)
    phase = folded_phase(sequences["X"][index, :, 0], sequences["period"][index])
    angle = 2 * np.pi * phase[..., None] * np.arange(1, harmonics + 1)
    design = np.concatenate([np.ones(phase.shape + (1,)), np.cos(angle), np.sin(angle)], axis=-1)
    normal = np.einsum("ntk,nt,ntl->nkl", design, weight, design)
    rhs = np.einsum("ntk,nt,nt->nk", design, weight, mag)
    coef = np.linalg.solve(normal + 1e-9 * np.eye(design.shape[-1]), rhs[..., None])[..., 0]
    return metrics.reconstruction_r2(mag, np.einsum("ntk,nk->nt", design, coef), weight)


def apply_settings(params: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """``section.key=value`` (value in YAML) set on a copy of the params."""
    from varnet.core.config import deep_merge

    for setting in settings:
        key, _, value = setting.partition("=")
        *path, leaf = key.split(".")
        patch: dict[str, Any] = {leaf: yaml.safe_load(value)}
        for name in reversed(path):
            patch = {name: patch}
        params = deep_merge(params, patch)
    return params


def rf_on_embedding(model_dir: Path, sequences: dict[str, np.ndarray], photometric: bool,
                    params: dict[str, Any]) -> dict[str, float]:
    """Test accuracy per sequence of the baseline's forest on the embedding alone (the
    `embedding` row of reports/baseline.md), searched and refit as `varnet baseline` does."""
    from varnet.core.config import BaselineParams, section
    from varnet.evaluation import baseline
    from varnet.scoring import metrics

    started = time.perf_counter()
    pred = files.read_npz(model_dir / "predictions.npz")
    train, test = pred["subset"] == "train", pred["subset"] == "test"
    x = baseline.feature_matrix(pred, sequences, "embedding", photometric)
    label = np.asarray(pred["label"], dtype=np.int64)
    forest, search = baseline.fit_forest(x[train], label[train], np.asarray(
        pred["star_id"])[train], section(BaselineParams, params))
    return {"rf_embedding_test_accuracy": metrics.accuracy(label[test], forest.predict(x[test])),
            "rf_embedding_cv_accuracy": round(float(search.best_score_), 4),
            "rf_s": round(time.perf_counter() - started, 1)}


def first_at(history, column: str, target: float) -> dict[str, Any] | None:
    """The first epoch of ``history`` whose ``column`` reaches ``target`` (epoch 1-based, index
    0-based as in the paper's log), or None."""
    reached = history[history[column] >= target]
    if reached.empty:
        return None
    first = reached.iloc[0]
    return {"epoch": int(first["epoch"]) + 1, "epoch_index": int(first["epoch"]),
            "phase": first["phase"], "wall_s": round(float(first["wall_s"]), 1)}


def train_one(variant: str, params: dict[str, Any], target: float, workdir: Path,
              sequences: dict[str, np.ndarray]) -> dict[str, Any]:
    import pandas as pd

    from varnet.training.train import train_variant

    photometric = bool(params["train"]["variants"][variant]["photometric"])
    started = time.perf_counter()
    with common.project_dir(workdir) as project:
        out_dir = project / "models" / f"reconstruction-{variant}"
        train_variant(variant, params, out_dir, register=False, restart=True)
        history = pd.read_csv(out_dir / "history.csv")
    total_s = time.perf_counter() - started
    history["wall_s"] = history["time_s"].cumsum()
    return {
        "variant": variant, "total_s": round(total_s, 1), "epochs_run": len(history),
        "reached": first_at(history, "val_recon_r2", target),
        "accuracy_reached": {f"{t:g}": first_at(history, "val_accuracy", t)
                             for t in ACCURACY_TARGETS},
        "valid_accuracy": round(float(history["val_accuracy"].dropna().iloc[-1]), 4),
        "valid_recon_r2": round(float(history["val_recon_r2"].dropna().iloc[-1]), 4),
        **common.test_scores(out_dir),
        **rf_on_embedding(out_dir, sequences, photometric, params),
        "history": history[["epoch", "phase", "val_recon_r2", "val_accuracy", "wall_s"]]
        .round(4).to_dict(orient="list"),
    }


def run(quick: bool = False, settings: tuple[str, ...] = (),
        variants: tuple[str, ...] = ("joint", "sequential")) -> dict[str, Any]:
    params = apply_settings(common.root_params(), list(settings))
    if quick:
        params = apply_settings(params, ["train.epochs=2", "train.estimation_epochs=2",
                                         "train.joint_estimation_epochs=2"])
    survey = common.default_survey()
    workdir = common.WORK_DIR / "default"
    sequences = files.read_npz(workdir / "data" / "processed" / "sequences.npz")
    split = files.read_npz(workdir / "data" / "processed" / "split.npz")
    # each R² against the reference on the same sequences: valid for the time to reconstruct
    # (val_recon_r2 per epoch), test for the reported test R²
    reference = {subset: float(np.nanmedian(fourier_r2(sequences, split[subset])))
                 for subset in ("valid", "test")}
    targets = {subset: TARGET_FRACTION * r2 for subset, r2 in reference.items()}
    machine = common.machine()
    runs = [train_one(v, params, targets["valid"], workdir, sequences) for v in variants]
    return {
        "benchmark": "reconstruction", "machine": machine,
        "command": "python -m benchmarks.reconstruction"
                   + "".join(f" --set {s}" for s in settings)
                   + ("" if variants == ("joint", "sequential")
                      else " --variants " + " ".join(variants)),
        "model": params["model"],
        "train": {k: v for k, v in params["train"].items() if k != "variants"},
        "survey": {k: v for k, v in survey.items() if k != "recipe"},
        "fourier_reference": {"harmonics": HARMONICS,
                              **{f"median_{k}_r2": round(v, 4) for k, v in reference.items()}},
        "target_r2": {k: round(v, 4) for k, v in targets.items()},
        "runs": runs, "paper": paper_reference(), "load_after": common.load(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params value, e.g. model.decoder_phase=true (repeatable)")
    parser.add_argument("--variants", nargs="+", default=["joint", "sequential"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2 epochs (a smoke test)")
    args = parser.parse_args(argv)
    result = run(args.quick, tuple(args.set), tuple(args.variants))
    result["peak_rss_mib"] = round(common.peak_rss_mib(), 1)
    if args.json:
        files.write_json(result, args.json)
    summary = {k: v for k, v in result.items() if k not in ("runs", "machine")}
    summary["runs"] = [{k: v for k, v in r.items() if k != "history"} for r in result["runs"]]
    print(files.to_json(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
