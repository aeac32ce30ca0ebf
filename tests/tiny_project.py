"""A tiny varnet project on disk for the tune/score/serve tests: synthetic light curves of the
8 classes plus VAR, 20-point sequences, a one-layer 8-unit GRU, and params pointing MLflow at a
sqlite store inside the project. Training it takes seconds; `registered_project` trains and
registers one model per test session and makes it the champion."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from varnet.core import files, schema
from varnet.core.taxonomy import CLASSES, NOVEL
from varnet.prepare.sequences import build_sequences
from varnet.prepare.split import split_indices

ROOT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
LENGTH = 20
PERIODS = {"CEPH": 5.3, "DSCT": 0.11, "ECL": 0.42, "M": 310.0, "ROT": 9.0, "RRAB": 0.57,
           "RRCD": 0.31, "SR": 95.0, NOVEL: 2.2}


def star_lightcurve(star_id: str, period: float, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = np.sort(rng.uniform(0.0, 1000.0, n))
    amplitude = 0.1 + 0.3 * (np.log10(period) + 1.5) / 4
    mag = (13.0 + 0.2 * np.log10(period) + amplitude * np.sin(2 * np.pi * time / period)
           + rng.normal(0.0, 0.02, n))
    return pd.DataFrame({"id": star_id, "band": "V", "time": time, "mag": mag, "err": 0.02})


def survey(stars_per_class: int = 4, n_points: int = 2 * LENGTH + 5
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(catalog, light curves): ``stars_per_class`` stars of every class and of VAR."""
    rows, curves = [], []
    for c, name in enumerate((*CLASSES, NOVEL)):
        for i in range(stars_per_class):
            star_id = f"{name.lower()}{i}"
            rows.append({"id": star_id, "period": PERIODS[name], "superclass": name})
            curves.append(star_lightcurve(star_id, PERIODS[name], n_points, 100 * c + i))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def tiny_params(root: Path, **train: object) -> dict:
    params = yaml.safe_load(ROOT_PARAMS.read_text())
    params["sequences"]["length"] = LENGTH
    params["split"].update(by="star", n_splits=3)
    params["model"].update(embedding=4, gru_units=8, gru_layers=1)
    params["train"].update(epochs=2, estimation_epochs=2, joint_estimation_epochs=2, batch_size=32,
                           **train)
    params["tune"].update(storage="sqlite:///optuna/tiny.db", epochs=None)
    return params


def write_project(root: Path, stars_per_class: int = 4, **train: object) -> dict:
    """sequences.npz, split.npz and params.yaml under ``root``; returns the params."""
    params = tiny_params(root, **train)
    catalog, lightcurves = survey(stars_per_class)
    arrays = build_sequences(catalog, lightcurves, LENGTH)[0]
    split = split_indices(arrays["label"], arrays["star_id"], by="star", n_splits=3)
    files.write_npz(root / schema.SEQUENCES_FILE, **arrays)
    files.write_npz(root / schema.SPLIT_FILE, **split)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def forget_mlflow_state() -> None:
    """Drop the active experiment MLflow remembers (in the process and in MLFLOW_EXPERIMENT_ID),
    which would point into another test's tracking store."""
    import mlflow

    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)


@contextmanager
def inside(root: Path):
    """cwd = root and MLflow tracking in root/mlruns (what the commands see in a project)."""
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    forget_mlflow_state()
    os.chdir(root)
    (root / "mlruns").mkdir(exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri
        forget_mlflow_state()


_REGISTERED: dict[str, Path] = {}


def registered_project(tmp_path_factory) -> Path:
    """A tiny project whose trained joint model is version 1 of `varnet` and the champion.

    Built once per test session (a few seconds of training) and shared by the score and serve
    tests, which only read it.
    """
    if "root" not in _REGISTERED:
        from varnet.serving import promote
        from varnet.training.train import train_variant

        root = tmp_path_factory.mktemp("tiny-project")
        params = write_project(root)
        with inside(root):
            train_variant("joint", params, root / "models" / "joint")
            import mlflow

            outcome, *_ = promote.promote(mlflow.MlflowClient(), "varnet", None,
                                           promote.PromoteParams())
            assert outcome == "promoted"
        _REGISTERED["root"] = root
    return _REGISTERED["root"]
