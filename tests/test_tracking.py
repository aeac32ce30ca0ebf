"""Where MLflow runs go: the project's store, also from a queued DVC experiment's copy."""

from __future__ import annotations

from pathlib import Path

from varnet.core.config import MlflowParams
from varnet.core.tracking import artifact_uri, tracking_uri


def test_relative_store_is_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = MlflowParams()
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    artifacts = tmp_path.resolve() / "mlruns" / "artifacts"
    assert artifact_uri(cfg, tracking_uri(cfg)) == artifacts.as_uri()


def test_a_queued_dvc_experiment_logs_to_the_project_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    executor = tmp_path / ".dvc" / "tmp" / "exps" / "tmpk3j2"
    executor.mkdir(parents=True)
    monkeypatch.chdir(executor)
    cfg = MlflowParams()
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert Path(artifact_uri(cfg, tracking_uri(cfg))[len("file://"):]) == (
        tmp_path.resolve() / "mlruns" / "artifacts")


def test_absolute_and_environment_stores_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "elsewhere" / "runs.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert tracking_uri(MlflowParams()) == f"sqlite:///{store}"
    assert store.parent.is_dir()
