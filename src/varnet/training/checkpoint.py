"""Per-epoch training state, so that an interrupted training resumes where it stopped.

The state lives in ``models/<variant>/checkpoint/`` (schema.ModelFolder.checkpoint) and belongs
to one configuration: its fingerprint hashes the resolved params and the data version, and a
state of another configuration is discarded (its MLflow run closed as FAILED).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import mlflow
import numpy as np

from varnet.core import files
from varnet.core.errors import VarnetError

FORMAT = 2
"""Layout of a checkpoint folder; a state of another layout is discarded like a stale one."""


class Checkpoint:
    """Per-epoch training state in ``directory``, written atomically, matched by fingerprint.

    Each save goes to a fresh ``epoch-NNNNN/`` and then ``state.json`` is replaced to point at
    it, so a kill at any moment leaves a usable state. Together they hold everything the next
    epoch depends on, so a resumed training is bit-identical to an uninterrupted one: every
    network variable (weights and the dropout layers' SeedGenerator states), every optimizer
    variable (the iteration count, which also places the learning-rate schedule, and the Adam
    moments), and in ``state.json`` the phase, its epoch count, early stopping and the history.
    The data order needs no state: epoch e of a phase is shuffled by (seed, phase, e) alone
    (data.training_batches).
    """

    def __init__(self, directory: Path, fingerprint: str):
        self.directory = directory
        self.fingerprint = fingerprint

    def load(self) -> dict | None:
        """The saved state if it belongs to this configuration; a stale one is discarded."""
        state_file = self.directory / "state.json"
        if not state_file.is_file():
            return None
        state = files.read_json(state_file)
        if state.get("fingerprint") != self.fingerprint:
            self.discard("params or data changed since the interrupted run")
            return None
        if state.get("format") != FORMAT:
            self.discard("checkpoint written by another varnet version")
            return None
        return state

    def save(self, state: dict, network: keras.Model, optimizer) -> None:
        folder = self.directory / f"epoch-{state['epoch']:05d}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _write_variables(folder / "network.npz", network.variables)
        _write_variables(folder / "optimizer.npz", optimizer.variables)
        files.write_json({**state, "fingerprint": self.fingerprint, "format": FORMAT,
                          "folder": folder.name}, self.directory / "state.json")
        for old in self.directory.glob("epoch-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def restore_network(self, state: dict, network: keras.Model) -> None:
        _read_variables(self.directory / state["folder"] / "network.npz", network.variables)

    def restore_optimizer(self, state: dict, optimizer, variables: list) -> None:
        optimizer.build(variables)
        _read_variables(self.directory / state["folder"] / "optimizer.npz", optimizer.variables)

    def discard(self, reason: str) -> None:
        """Drop any saved state, closing its run as FAILED."""
        state_file = self.directory / "state.json"
        if state_file.is_file():
            fail_run(files.read_json(state_file).get("run_id"), reason)
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_variables(path: Path, variables: list) -> None:
    files.write_npz(path, **{f"v{i:04d}": np.asarray(v) for i, v in enumerate(variables)})


def _read_variables(path: Path, variables: list) -> None:
    saved = files.read_npz(path)
    shapes = [tuple(v.shape) for v in variables]
    if [saved[key].shape for key in sorted(saved)] != shapes:
        raise VarnetError(f"{path}: the checkpointed variables do not match the model's; "
                          "rerun with --restart")
    for key, variable in zip(sorted(saved), variables, strict=True):
        variable.assign(saved[key])


def fail_run(run_id: str | None, reason: str) -> None:
    """Close an abandoned attempt's run as FAILED so no run stays RUNNING."""
    if not run_id:
        return
    client = mlflow.MlflowClient()
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "varnet.abandoned", reason)
            client.set_terminated(run_id, "FAILED")
    except mlflow.exceptions.MlflowException:
        pass  # the run is gone (store reset): nothing to close


def run_exists(run_id: str) -> bool:
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True
