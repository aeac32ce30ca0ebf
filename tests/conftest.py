"""Shared fixtures: offline switches, the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _key, _value in {
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}.items():
    os.environ.setdefault(_key, _value)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VARNET_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real labeled light curves of ../shared/data, read in place (never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set VARNET_SHARED_DATA to run this)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_experiment(monkeypatch):
    """MLflow remembers the active experiment in MLFLOW_EXPERIMENT_ID; a test that tracks into
    its own store must not hand that id to the next test's store."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
