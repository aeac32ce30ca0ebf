"""Shared fixtures: offline switches, the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import varnet  # noqa: F401  (the offline switches, before any library reads them)

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU, like CI

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
