"""MLflow tracking setup shared by every command, and the provenance tags of a run.

The tracking store is sqlite (params ``mlflow.tracking_uri``, default
``sqlite:///mlruns/mlflow.db``) with artifacts under ``mlruns/artifacts``; relative paths are
taken from the project root and made absolute, so a run started from any stage finds the same
store. The project root is the current directory, except inside a queued DVC experiment, which
runs in a copy under ``<project>/.dvc/tmp/exps/``: its runs still belong in the project's
store. ``MLFLOW_TRACKING_URI`` in the environment wins over params (tests point it to a
temporary directory). Browse with
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from varnet.core.config import MlflowParams, section


def project_root() -> Path:
    """The current directory, or the project a queued DVC experiment's temporary copy is in."""
    cwd = Path.cwd().resolve()
    parts = cwd.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def tracking_uri(cfg: MlflowParams) -> str:
    """$MLFLOW_TRACKING_URI, else params' URI with a relative sqlite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        database = project_root() / uri[len(prefix):]  # an absolute path stays as it is
        database.parent.mkdir(parents=True, exist_ok=True)  # sqlite won't create its folder
        uri = prefix + str(database)
    return uri


def artifact_uri(cfg: MlflowParams, uri: str) -> str | None:
    """params' artifact location; when $MLFLOW_TRACKING_URI redirects tracking, artifacts go
    beside its sqlite file (or wherever its server puts them)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        if uri.startswith("sqlite:///"):
            return Path(uri[len("sqlite:///"):]).parent.joinpath("artifacts").as_uri()
        return None
    location = cfg.artifact_location
    if "://" in location:
        return location
    return (project_root() / location).as_uri()


def configure(params: dict[str, Any]) -> MlflowParams:
    """Point MLflow at the project's store and select (creating if needed) the experiment."""
    import mlflow

    cfg = section(MlflowParams, params)
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        if mlflow.get_experiment_by_name(cfg.experiment) is None:
            mlflow.create_experiment(cfg.experiment, artifact_location=artifact_uri(cfg, uri))
    mlflow.set_experiment(cfg.experiment)
    return cfg


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the first access to a sqlite store across processes: MLflow creates a new
    database by running its schema migrations, and two processes migrating the same new file
    at once (parallel stages, tune workers) leave it broken."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_file = Path(uri[len("sqlite:///"):]).with_suffix(".lock")  # folder made by tracking_uri
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str | None:
    """The HEAD commit of the project (suffixed ``-dirty`` with uncommitted changes), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if status.strip() else "")


def file_md5(path: str | os.PathLike) -> str:
    """md5 of a file's bytes: DVC 3's hash of a file output (as in dvc.lock)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """{path: md5} of the input files that exist (the DVC data version of a run)."""
    return {str(p): file_md5(p) for p in paths if Path(p).is_file()}
