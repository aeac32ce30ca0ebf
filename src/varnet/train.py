"""Train one variant of the dual network (GRU autoencoder + estimation network + GMM).

Reads   data/processed/sequences.npz and data/processed/split.npz (`varnet sequences`, `split`)
Writes  models/<variant>/: model.keras (the network, standardisation inside), gmm.npz (phi, mu,
        Sigma refitted once on the whole training set, dropout off), thresholds.json (the
        params evaluate.percentiles of the training energies), predictions.npz (gamma, energy,
        embedding, features of every train/valid/novel sequence), history.csv (one row per
        epoch), variant.json (the resolved config) and run.json (the MLflow run and the
        registered model version).
MLflow  one run per training in the experiment of params `mlflow` (sqlite under mlruns/):
        params, per-epoch losses, final metrics (valid_accuracy, novelty_auroc, phi_<CLASS>,
        thresholds), gmm.npz, history, a learning-curve figure, the data version (tags
        data.<file> = md5, as in dvc.lock) and the git commit; the model is logged as a pyfunc
        model and registered as a new version of `varnet`.

Variants are the keys of params `train.variants` (mode + photometric):
  joint            L_AE + L_CE + lambda L_GMM, all at once (the paper's main model)
  sequential       the autoencoder alone for train.epochs, then the estimation network on the
                   frozen features for train.estimation_epochs
  joint-phot, sequential-phot   the same with the Gaia M_G, BP-RP, W_RP appended (§3.3)
The architecture is params `model` (docs/model.md). Defaults are CPU-sized (minutes on 2 cores).

Resume: a checkpoint is written to models/<variant>/checkpoint/ after every epoch (weights,
optimizer state, epoch, MLflow run id). Rerunning the same command (or `dvc repro`) after an
interruption continues from the last finished epoch in the same MLflow run, which then ends
FINISHED. Changed params or data start over (the old run is marked FAILED); --restart forces
that. The checkpoint is deleted when the variant is complete.

Paper-scale profile (GRU 96, batch 2000, lr 2e-4, 2000 epochs; a GPU, ~half a day):
  varnet train joint --profile configs/paper-gpu.yaml
  dvc exp run -S model.gru_units=96 -S train.batch_size=2000 -S train.learning_rate=2e-4 \\
      -S train.epochs=2000 -S train.estimation_epochs=250 -S train.deterministic=false

Examples:
  varnet train joint                       # one variant (what `dvc repro` runs per variant)
  varnet train sequential --restart        # ignore an interrupted attempt's checkpoint
  dvc exp run -S model.embedding=32        # an experiment with another embedding size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset

from varnet import io, schema, taxonomy, tracking
from varnet.config import as_dict, deep_merge, from_dict, load_params, section
from varnet.errors import VarnetError
from varnet.inference import predict
from varnet.model import DualTrainer, ModelConfig, build_network, feature_names, gmm

MODES = ("joint", "sequential")
LR_SCHEDULES = ("constant", "cosine")
ARTEFACTS = ("model.keras", "gmm.npz", "thresholds.json", "predictions.npz", "history.csv",
             "variant.json", "run.json")
HISTORY_METRICS = ("loss", "ae_loss", "ce_loss", "energy_loss", "accuracy")
HISTORY_COLUMNS = ("epoch", "phase", *HISTORY_METRICS, *(f"val_{m}" for m in HISTORY_METRICS),
                   "time_s")
PREDICT_BATCH = 500


@dataclass
class VariantConfig:
    """One entry of params ``train.variants``."""

    mode: str
    photometric: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")


@dataclass
class TrainConfig:
    """params.yaml ``train``."""

    lambda_energy: float = 1.0e-3
    learning_rate: float = 1.0e-2
    batch_size: int = 128
    epochs: int = 25
    estimation_epochs: int = 60
    lr_schedule: str = "constant"
    early_stopping_patience: int = 0
    seed: int = 0
    deterministic: bool = True
    variants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}")

    def learning_rate_for(self, n_epochs: int, steps_per_epoch: int):
        """Constant (the paper), or cosine decay to a tenth over the phase: short CPU runs
        end on a settled model instead of a noisy last step at a high rate."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            self.learning_rate, decay_steps=max(1, n_epochs * steps_per_epoch), alpha=0.1)

    def variant(self, name: str) -> VariantConfig:
        if name not in self.variants:
            raise VarnetError(f"unknown variant {name!r}; params train.variants has "
                              f"{sorted(self.variants)}")
        return from_dict(VariantConfig, self.variants[name], where=f"train.variants.{name}")


# --- data -------------------------------------------------------------------------------------

@dataclass
class Subset:
    """One of train/valid/novel: network inputs, targets and bookkeeping."""

    index: np.ndarray
    inputs: dict[str, np.ndarray]
    label: np.ndarray
    weight: np.ndarray
    star_id: np.ndarray


def load_data(photometric: bool, sequences: Path = schema.SEQUENCES_FILE,
              split: Path = schema.SPLIT_FILE) -> dict[str, Subset]:
    """The train/valid/novel subsets, checked: finite inputs, known labels, the class order."""
    arrays = io.read_npz(sequences)
    indices = io.read_npz(split)
    needed = ["X", "weight", "aux", "label", "star_id"] + (["phot"] if photometric else [])
    if missing := [k for k in needed if k not in arrays]:
        raise VarnetError(f"{sequences}: missing arrays {missing} (rerun `varnet sequences`)")
    if "classes" in arrays and tuple(arrays["classes"].tolist()) != taxonomy.CLASSES:
        raise VarnetError(f"{sequences}: classes {arrays['classes'].tolist()} differ from "
                          f"{list(taxonomy.CLASSES)}")
    n = len(arrays["label"])
    subsets = {}
    for name in ("train", "valid", "novel"):
        index = np.asarray(indices.get(name, np.zeros(0, np.int64)), dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise VarnetError(f"{split}: {name} indices outside [0, {n}) of {sequences}; "
                              "rerun `varnet split`")
        inputs = {"X": arrays["X"][index].astype(np.float32),
                  "aux": arrays["aux"][index].astype(np.float32)}
        if photometric:
            inputs["phot"] = arrays["phot"][index].astype(np.float32)
        subsets[name] = Subset(index, inputs, arrays["label"][index].astype(np.int32),
                               arrays["weight"][index].astype(np.float32),
                               arrays["star_id"][index].astype(str))
    _check(subsets, sequences)
    return subsets


def _check(subsets: dict[str, Subset], path: Path) -> None:
    train = subsets["train"]
    if len(train.index) == 0:
        raise VarnetError(f"{path}: no training sequences in the split")
    for name, subset in subsets.items():
        for key in ("X", "aux"):
            values = subset.inputs[key]
            bad = ~np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
            if bad.any():
                raise VarnetError(f"{path}: {int(bad.sum())} {name} sequence(s) with non-finite "
                                  f"{key}, e.g. star {subset.star_id[bad][0]}")
        if name == "novel":
            continue
        bad = ~(np.isfinite(subset.weight) & (subset.weight >= 0)).all(axis=1)
        if bad.any():
            raise VarnetError(f"{path}: {int(bad.sum())} {name} sequence(s) with a non-finite or "
                              f"negative weight s/err, e.g. star {subset.star_id[bad][0]}")
        if ((subset.label < 0) | (subset.label >= len(taxonomy.CLASSES))).any():
            raise VarnetError(f"{path}: {name} holds sequences without a known class label")


def _dataset(inputs: dict, subset: Subset, batch_size: int, shuffle_seed: int | None
             ) -> tf.data.Dataset:
    targets = {"label": subset.label, "weight": subset.weight}
    data = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle_seed is not None:
        data = data.shuffle(len(subset.label), seed=shuffle_seed, reshuffle_each_iteration=True)
    # drop a ragged last training batch: a GMM fitted on a handful of samples is noise
    drop = shuffle_seed is not None and len(subset.label) > batch_size
    return data.batch(batch_size, drop_remainder=drop).prefetch(tf.data.AUTOTUNE)


# --- checkpoints ------------------------------------------------------------------------------

class Checkpoint:
    """Per-epoch training state in ``directory``, written atomically, matched by fingerprint.

    Each save goes to a fresh ``epoch-NNNNN/`` (weights, optimizer variables) and then
    ``state.json`` is replaced to point at it, so a kill at any moment leaves a usable state.
    """

    def __init__(self, directory: Path, fingerprint: str):
        self.directory = directory
        self.fingerprint = fingerprint

    def load(self) -> dict | None:
        """The saved state if it belongs to this configuration; a stale one is discarded."""
        state_file = self.directory / "state.json"
        if not state_file.is_file():
            return None
        state = io.read_json(state_file)
        if state.get("fingerprint") != self.fingerprint:
            self.discard("params or data changed since the interrupted run")
            return None
        return state

    def save(self, state: dict, network: keras.Model, optimizer) -> None:
        folder = self.directory / f"epoch-{state['epoch']:05d}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        network.save_weights(folder / "network.weights.h5")
        io.write_npz(folder / "optimizer.npz",
                     **{f"v{i:04d}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
        io.write_json({**state, "fingerprint": self.fingerprint, "folder": folder.name},
                      self.directory / "state.json")
        for old in self.directory.glob("epoch-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def restore_network(self, state: dict, network: keras.Model) -> None:
        network.load_weights(self.directory / state["folder"] / "network.weights.h5")

    def restore_optimizer(self, state: dict, optimizer, variables: list) -> None:
        optimizer.build(variables)
        saved = io.read_npz(self.directory / state["folder"] / "optimizer.npz")
        if len(saved) != len(optimizer.variables):
            raise VarnetError(f"{self.directory}: checkpoint optimizer state does not match the "
                              "model; rerun with --restart")
        for i, variable in enumerate(optimizer.variables):
            variable.assign(saved[f"v{i:04d}"])

    def discard(self, reason: str) -> None:
        """Drop any saved state, closing its run as FAILED."""
        state_file = self.directory / "state.json"
        if state_file.is_file():
            _fail_run(io.read_json(state_file).get("run_id"), reason)
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _fail_run(run_id: str | None, reason: str) -> None:
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


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


# --- the epoch loop ---------------------------------------------------------------------------

class EpochEnd(keras.callbacks.Callback):
    """After each epoch: history row, MLflow metrics, early stopping, checkpoint."""

    def __init__(self, loop: TrainingLoop, phase: int):
        super().__init__()
        self.loop = loop
        self.phase = phase
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        loop, state = self.loop, self.loop.state
        logs = {k: float(v) for k, v in (logs or {}).items()}
        global_epoch = state["offset"] + epoch
        row = {"epoch": global_epoch, "phase": loop.phases[self.phase][0], **logs,
               "time_s": round(time.perf_counter() - self.started, 3)}
        state["history"].append(row)
        mlflow.log_metrics({**logs, "epoch_time_s": row["time_s"]}, step=global_epoch)
        state.update(phase=self.phase, phase_epochs=epoch + 1, epoch=global_epoch)
        self._early_stopping(logs)
        loop.checkpoint.save(state, loop.network, self.model.optimizer)

    def _early_stopping(self, logs: dict) -> None:
        patience = self.loop.cfg.early_stopping_patience
        monitor = logs.get("val_loss", logs.get("loss"))
        if patience <= 0 or monitor is None:
            return
        state = self.loop.state
        if state["best"] is None or monitor < state["best"]:
            state.update(best=monitor, wait=0)
            return
        state["wait"] += 1
        if state["wait"] >= patience:
            state["stopped"] = True
            self.model.stop_training = True


class TrainingLoop:
    """The phases of one variant (joint, or autoencoder then estimation) with resume."""

    def __init__(self, network: keras.Model, model_cfg: ModelConfig, cfg: TrainConfig,
                 variant: VariantConfig, data: dict[str, Subset], checkpoint: Checkpoint,
                 state: dict, callbacks=()):
        self.network = network
        self.model_cfg = model_cfg
        self.cfg = cfg
        self.data = data
        self.checkpoint = checkpoint
        self.state = state
        self.callbacks = list(callbacks)
        if variant.mode == "joint":
            self.phases = [("joint", cfg.epochs)]
        else:
            self.phases = [("autoencoder", cfg.epochs), ("estimation", cfg.estimation_epochs)]

    def run(self) -> None:
        verbose = 1 if sys.stdout.isatty() else 2
        for index, (mode, n_epochs) in enumerate(self.phases):
            if index < self.state["phase"]:
                continue
            if index > self.state["phase"]:  # a new phase: fresh optimizer and counters
                self.state.update(phase=index, offset=self.state["epoch"] + 1, phase_epochs=0,
                                  best=None, wait=0, stopped=False)
            done = self.state["phase_epochs"]
            if self.state["stopped"] or done >= n_epochs:
                continue
            trainer = DualTrainer(self.network, mode, self.cfg.lambda_energy,
                                  self.model_cfg.gmm_jitter)
            n_train, batch = len(self.data["train"].index), self.cfg.batch_size
            steps = n_train // batch if n_train > batch else 1
            learning_rate = self.cfg.learning_rate_for(n_epochs, steps)
            trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
            if done:
                self.checkpoint.restore_optimizer(self.state, trainer.optimizer,
                                                  trainer.trained_variables())
            train, valid = self._datasets(mode, index)
            trainer.fit(train, validation_data=valid, initial_epoch=done, epochs=n_epochs,
                        shuffle=False,  # the dataset reshuffles itself every epoch
                        callbacks=[EpochEnd(self, index), *self.callbacks], verbose=verbose)

    def _datasets(self, mode: str, phase: int):
        train, valid = self.data["train"], self.data["valid"]
        train_inputs, valid_inputs = train.inputs, valid.inputs
        if mode == "estimation":  # features of the frozen autoencoder, computed once
            train_inputs = _frozen_features(self.network, train.inputs)
            valid_inputs = _frozen_features(self.network, valid.inputs)
        seed = self.cfg.seed + 1000 * phase + self.state["phase_epochs"]
        train_ds = _dataset(train_inputs, train, self.cfg.batch_size, shuffle_seed=seed)
        # validation batches as large as prediction's: fewer steps, a steadier per-batch GMM
        valid_batch = max(self.cfg.batch_size, PREDICT_BATCH)
        valid_ds = (_dataset(valid_inputs, valid, valid_batch, shuffle_seed=None)
                    if len(valid.index) else None)
        return train_ds, valid_ds


def _frozen_features(network: keras.Model, inputs: dict) -> dict[str, np.ndarray]:
    out = predict(network, inputs, PREDICT_BATCH)
    return {"features": out["features"], "observed": out["observed"]}


# --- after training ---------------------------------------------------------------------------

def score_subsets(network: keras.Model, data: dict[str, Subset], jitter: float
                  ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """GMM refitted once on the training set (dropout off) and every subset's outputs/energies."""
    outputs = {name: predict(network, s.inputs, PREDICT_BATCH) if len(s.index) else None
               for name, s in data.items()}
    train = outputs["train"]
    params = gmm.fit_numpy(train["features"], train["gamma"], train["observed"], jitter)
    for out in outputs.values():
        if out is not None:
            out["energy"], out["class_energy"] = gmm.energy_numpy(out["features"], params,
                                                                  out["observed"])
    return params, outputs


def predictions_table(data: dict[str, Subset], outputs: dict) -> dict[str, np.ndarray]:
    """predictions.npz: the train, valid and novel sequences one after the other."""
    names = [n for n in ("train", "valid", "novel") if outputs[n] is not None]
    table = {
        "index": np.concatenate([data[n].index for n in names]),
        "subset": np.concatenate([np.full(len(data[n].index), n) for n in names]),
        "label": np.concatenate([data[n].label for n in names]).astype(np.int16),
        "star_id": np.concatenate([data[n].star_id for n in names]),
    }
    for key in ("gamma", "energy", "class_energy", "embedding", "features"):
        table[key] = np.concatenate([outputs[n][key] for n in names])
    return table


def final_metrics(data: dict[str, Subset], outputs: dict, params: dict[str, np.ndarray],
                  thresholds: dict[str, float]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    metrics: dict[str, float] = {}
    for name in ("train", "valid"):
        if outputs[name] is not None:
            predicted = outputs[name]["gamma"].argmax(axis=1)
            metrics[f"{name}_accuracy"] = float((predicted == data[name].label).mean())
    metrics.setdefault("valid_accuracy", float("nan"))
    valid, novel = outputs["valid"], outputs["novel"]
    if valid is not None and novel is not None:
        y = np.r_[np.zeros(len(valid["energy"])), np.ones(len(novel["energy"]))]
        metrics["novelty_auroc"] = float(roc_auc_score(y, np.r_[valid["energy"], novel["energy"]]))
    else:
        metrics["novelty_auroc"] = float("nan")
    for k, name in enumerate(taxonomy.CLASSES):
        metrics[f"phi_{name}"] = float(params["phi"][k])
    for key, value in thresholds.items():
        metrics[f"threshold_p{key}"] = value
    for name, out in outputs.items():
        if out is not None:
            metrics[f"energy_median_{name}"] = float(np.median(out["energy"]))
    return metrics


def learning_curves(history: pd.DataFrame, name: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [m for m in ("ae_loss", "ce_loss", "energy_loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        for column, style in ((metric, "-"), (f"val_{metric}", "--")):
            if column in history and history[column].notna().any():
                ax.plot(history["epoch"], history[column], style, label=column)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"varnet {name}")
    fig.tight_layout()
    return fig


# --- the variant ------------------------------------------------------------------------------

def resolve(name: str, params: dict[str, Any]) -> tuple[ModelConfig, TrainConfig, VariantConfig]:
    model_cfg = section(ModelConfig, "model", params)
    cfg = section(TrainConfig, "train", params)
    return model_cfg, cfg, cfg.variant(name)


def train_variant(name: str, params: dict[str, Any], out_dir: Path, *, callbacks=(),
                  nested: bool = False, register: bool = True, restart: bool = False
                  ) -> dict[str, Any]:
    """Train variant ``name`` of params ``train.variants``, write ``out_dir``, log an MLflow run.

    Resumes from ``out_dir/checkpoint`` when it matches the params and data (``restart``
    discards it, closing its run as FAILED). ``callbacks`` are
    Keras callbacks that see every epoch's logs (val_accuracy included once the estimation
    network trains). Returns the final metrics (valid_accuracy, novelty_auroc, ...) and run_id.
    """
    out_dir = Path(out_dir)
    model_cfg, cfg, variant = resolve(name, params)
    data = load_data(variant.photometric)
    percentiles = [float(p) for p in (params.get("evaluate") or {}).get("percentiles", [80, 95])]
    data_version = tracking.data_version([schema.SEQUENCES_FILE, schema.SPLIT_FILE])
    resolved = {"name": name, "mode": variant.mode, "photometric": variant.photometric,
                "model": as_dict(model_cfg),
                "train": {k: v for k, v in as_dict(cfg).items() if k != "variants"}}
    fingerprint = hashlib.sha256(json.dumps(
        {**resolved, "percentiles": percentiles, "data": data_version},
        sort_keys=True).encode()).hexdigest()

    mlflow_cfg = tracking.configure(params)
    checkpoint = Checkpoint(out_dir / "checkpoint", fingerprint)
    if restart:
        checkpoint.discard("restarted with --restart")
    state = checkpoint.load()
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:  # free on CPU; some GPU kernels have no deterministic version
        tf.config.experimental.enable_op_determinism()
    train = data["train"]
    network = build_network(model_cfg, n_classes=len(taxonomy.CLASSES),
                            n_steps=train.inputs["X"].shape[1], aux_train=train.inputs["aux"],
                            phot_train=train.inputs.get("phot"))
    if state is not None:
        checkpoint.restore_network(state, network)
        print(f"varnet train {name}: resuming after epoch {state['epoch']} "
              f"(MLflow run {state['run_id']})")
        if not _run_exists(state["run_id"]):
            print(f"varnet train {name}: run {state.pop('run_id')} is gone from the tracking "
                  "store; continuing in a new run")
    else:
        state = {"phase": 0, "phase_epochs": 0, "epoch": -1, "offset": 0, "best": None,
                 "wait": 0, "stopped": False, "history": []}

    with mlflow.start_run(run_id=state.get("run_id"), run_name=None if "run_id" in state else name,
                          nested=nested) as run:
        if "run_id" not in state:
            state["run_id"] = run.info.run_id
            _log_inputs(resolved, data, data_version)
        started = time.perf_counter()
        TrainingLoop(network, model_cfg, cfg, variant, data, checkpoint, state, callbacks).run()
        mlflow.log_metric("train_time_s", time.perf_counter() - started)
        result = _finish(name, params, network, model_cfg, data, state, resolved, percentiles,
                         out_dir, mlflow_cfg.registered_model if register else None)
        result["run_id"] = run.info.run_id
    checkpoint.remove()
    return result


def _log_inputs(resolved: dict, data: dict[str, Subset], data_version: dict[str, str]) -> None:
    flat = {"variant": resolved["name"], "mode": resolved["mode"],
            "photometric": resolved["photometric"],
            **{f"model.{k}": v for k, v in resolved["model"].items()},
            **{f"train.{k}": v for k, v in resolved["train"].items()},
            **{f"n_{name}": len(s.index) for name, s in data.items()}}
    mlflow.log_params(flat)
    tags = {f"data.{path}": md5 for path, md5 in data_version.items()}
    commit = tracking.git_commit()
    if commit:
        tags["git_commit"] = commit
    mlflow.set_tags({**tags, "varnet.variant": resolved["name"]})
    for path, md5 in data_version.items():
        with warnings.catch_warnings():  # "file://" matches two equivalent source types
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(Path(path).resolve().as_uri())
        mlflow.log_input(MetaDataset(source, name=Path(path).name, digest=md5[:10]),
                         context="training")


def _finish(name, params, network, model_cfg, data, state, resolved, percentiles, out_dir,
            registered_model) -> dict[str, Any]:
    """Refit the GMM, score every subset, write out_dir atomically per file, log to MLflow."""
    gmm_params, outputs = score_subsets(network, data, model_cfg.gmm_jitter)
    train_energy = outputs["train"]["energy"]
    if not np.isfinite(train_energy).all():
        raise VarnetError(f"variant {name}: non-finite training energies; the GMM fit failed "
                          "(try a larger model.gmm_jitter)")
    thresholds = {f"{p:g}": float(np.percentile(train_energy, p)) for p in percentiles}
    metrics = final_metrics(data, outputs, gmm_params, thresholds)
    history = pd.DataFrame(state["history"]).reindex(columns=list(HISTORY_COLUMNS))
    variant = {**resolved, "classes": list(taxonomy.CLASSES),
               "features": feature_names(model_cfg.embedding, resolved["photometric"]),
               "sequence_length": int(data["train"].inputs["X"].shape[1]),
               "sequences": params.get("sequences") or {}, "cuts": params.get("cuts") or {},
               "epochs_trained": int(state["epoch"]) + 1}

    staging = out_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    network.save(staging / "model.keras")
    io.write_npz(staging / "gmm.npz", **gmm_params)
    io.write_json(thresholds, staging / "thresholds.json")
    io.write_npz(staging / "predictions.npz", **predictions_table(data, outputs))
    io.write_text(history.to_csv(index=False), staging / "history.csv")
    io.write_json(variant, staging / "variant.json")

    mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
    for artefact in ("gmm.npz", "thresholds.json", "history.csv", "variant.json"):
        mlflow.log_artifact(str(staging / artefact))
    fig = learning_curves(history, name)
    mlflow.log_figure(fig, "figures/learning_curves.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    run = mlflow.active_run()
    version = None
    if registered_model:
        from varnet import pyfunc

        model_version = pyfunc.log_model(staging, registered_model)
        version = None if model_version is None else str(model_version.version)
    io.write_json({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                   "registered_model": registered_model, "version": version},
                  staging / "run.json")
    for artefact in ARTEFACTS:
        (staging / artefact).replace(out_dir / artefact)
    shutil.rmtree(staging)
    return {**metrics, "registered_model": registered_model, "version": version}


# --- command line -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("variant", help="a key of params train.variants, e.g. joint, sequential, "
                        "joint-phot, sequential-phot")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a params overlay merged over --params, e.g. configs/paper-gpu.yaml")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted attempt's checkpoint and start over")
    parser.add_argument("--no-register", action="store_true",
                        help="log the run but do not register a model version")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: models/<variant>)")


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.profile is not None:
        if not args.profile.is_file():
            raise VarnetError(f"{args.profile}: profile not found")
        params = deep_merge(params, load_params(args.profile))
    out_dir = args.out or schema.MODELS_DIR / args.variant
    resolve(args.variant, params)  # a bad variant name fails before any work
    result = train_variant(args.variant, params, out_dir, register=not args.no_register,
                           restart=args.restart)
    version = f", registered as version {result['version']}" if result.get("version") else ""
    print(f"varnet train {args.variant}: valid accuracy {result['valid_accuracy']:.4f}, "
          f"novelty AUROC {result['novelty_auroc']:.4f} -> {out_dir} "
          f"(MLflow run {result['run_id']}{version})")
    return 0

