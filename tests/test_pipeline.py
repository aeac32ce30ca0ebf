"""The whole pipeline, stage by stage through the CLI, on a tiny simulated survey.

This is `dvc repro` in miniature: each stage reads what the previous one wrote, and the
outputs the README and DVC promise (cut flow, sequences, split, a model directory with its
MLflow run and registered version, Table 2, figures, metrics) exist and agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from varnet import cli
from varnet.core import files, schema

ROOT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def tiny_params() -> dict:
    params = yaml.safe_load(ROOT_PARAMS.read_text())
    params["survey"]["synthetic"].update(n_stars=160, min_stars_per_class=14)
    params["cuts"].update(max_ss_resid=None, min_class_probability=0.5, min_epochs=100)
    params["sequences"]["length"] = 100
    params["split"].update(n_splits=3)
    params["model"].update(embedding=4, gru_units=8, gru_layers=1)
    params["train"].update(epochs=2, estimation_epochs=2, joint_estimation_epochs=2,
                           batch_size=64,
                           variants={"joint": {"mode": "joint", "photometric": False}})
    params["baseline"].update(n_estimators=[10], criterion=["gini"], max_features=[0.3],
                              min_samples_leaf=[1], cv=2, variants=["joint"])
    return params


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    return tmp_path


def test_every_stage_runs_and_hands_over_to_the_next(project):
    for stage in (["snapshot"], ["validate"], ["sequences"], ["split"], ["train", "joint"],
                  ["baseline"], ["evaluate"]):
        assert cli.main(stage) == 0, f"stage {stage} failed"

    catalog, lightcurves = schema.raw_paths("synthetic")
    assert catalog.exists() and lightcurves.exists()
    assert "stars kept" in Path("reports/cutflow.md").read_text()

    sequences = files.read_npz(schema.SEQUENCES_FILE)
    split = files.read_npz(schema.SPLIT_FILE)
    assert sequences["X"].shape[1:] == (100, 2)
    train_stars = set(sequences["star_id"][split["train"]])
    for held in ("valid", "test"):
        assert not train_stars & set(sequences["star_id"][split[held]])
    for novel in ("novel_valid", "novel_test"):
        assert (sequences["label"][split[novel]] == -1).all()
    assert json.loads(Path("reports/split.json").read_text())["test_sequences"] > 0

    model_dir = Path("models/joint")
    for name in ("model.keras", "gmm.npz", "thresholds.json", "calibration.npz",
                 "predictions.npz", "run.json"):
        assert (model_dir / name).exists(), name
    gmm = files.read_npz(model_dir / "gmm.npz")
    assert np.isclose(gmm["phi"].sum(), 1.0)

    import mlflow

    run = json.loads((model_dir / "run.json").read_text())
    client = mlflow.MlflowClient()
    assert client.get_run(run["run_id"]).info.status == "FINISHED"
    version = client.get_model_version(run["registered_model"], run["version"])
    assert version.run_id == run["run_id"]

    metrics = json.loads(Path("reports/metrics.json").read_text())
    assert "joint" in json.dumps(metrics)
    assert "Joint" in Path("reports/table2.md").read_text()
    figures = {p.name for p in Path("reports/figures/evaluation").glob("*.png")}
    assert {"confusion_joint.png", "energy_joint.png", "ae_loss.png",
            "reliability_joint.png"} <= figures
    assert os.path.getsize("reports/baseline.json") > 0
