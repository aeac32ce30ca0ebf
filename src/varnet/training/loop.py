"""The epoch loop of one variant: joint, or the autoencoder then the estimation network.

After every epoch `EpochEnd` appends the history row, logs the epoch's metrics to the active
MLflow run, applies early stopping and saves the checkpoint; `TrainingLoop.run` starts each
phase from that state, so a resumed training continues with the next epoch.
"""

from __future__ import annotations

import sys
import time

import keras
import mlflow
import numpy as np

from varnet.core import taxonomy
from varnet.core.config import ModelParams, TrainParams, VariantParams
from varnet.model import DualTrainer
from varnet.scoring import metrics
from varnet.scoring.inference import predict
from varnet.training.checkpoint import Checkpoint
from varnet.training.data import Subset, evaluation_batches, steps_per_epoch, training_batches

PREDICT_BATCH = 500
"""Rows per inference batch (frozen features, final scores): one traced shape for all."""


def learning_rate(cfg: TrainParams, n_epochs: int, steps_per_epoch: int):
    """Constant (the paper), or cosine decay to a tenth over the phase: short CPU runs
    end on a settled model instead of a noisy last step at a high rate. Either may start with
    a linear warm-up from a tenth of the rate over ``warmup_epochs``."""
    warmup = min(cfg.warmup_epochs, n_epochs) * steps_per_epoch
    if cfg.lr_schedule == "constant" and not warmup:
        return cfg.learning_rate
    decay = max(1, n_epochs * steps_per_epoch - warmup)
    alpha = 1.0 if cfg.lr_schedule == "constant" else 0.1
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate / 10, decay, alpha=alpha, warmup_target=cfg.learning_rate,
        warmup_steps=warmup)


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
        if len(loop.data["valid"].index):
            logs["val_recon_r2"] = float(np.nanmedian(reconstruction_r2(loop.network,
                                                                        loop.data["valid"])))
        global_epoch = state["offset"] + epoch
        row = {"epoch": global_epoch, "phase": loop.phases[self.phase][0], **logs,
               "time_s": round(time.perf_counter() - self.started, 3)}
        state["history"].append(row)
        log_epoch(row)
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


def log_epoch(row: dict) -> None:
    """One history row's metrics in the active MLflow run, at its epoch."""
    logs = {k: v for k, v in row.items() if k not in ("epoch", "phase", "time_s")}
    mlflow.log_metrics({**logs, "epoch_time_s": row["time_s"]}, step=row["epoch"])


class TrainingLoop:
    """The phases of one variant (joint, or autoencoder then estimation) with resume."""

    def __init__(self, network: keras.Model, model_cfg: ModelParams, cfg: TrainParams,
                 variant: VariantParams, data: dict[str, Subset], checkpoint: Checkpoint,
                 state: dict, callbacks=()):
        self.network = network
        self.model_cfg = model_cfg
        self.cfg = cfg
        self.data = data
        self.checkpoint = checkpoint
        self.state = state
        self.callbacks = list(callbacks)
        self.class_weight = (balanced_class_weight(data["train"].label)
                             if cfg.class_weight == "balanced" else None)
        joint = variant.mode == "joint"
        # a phase of 0 epochs is skipped by run(): joint-only is the paper's training
        self.phases = [("joint" if joint else "autoencoder", cfg.epochs),
                       ("estimation", cfg.joint_estimation_epochs if joint
                        else cfg.estimation_epochs)]

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
                                  self.model_cfg.gmm_jitter, self.class_weight,
                                  lambda_period=self.cfg.lambda_period)
            steps = steps_per_epoch(len(self.data["train"].index), self.cfg.batch_size)
            rate = learning_rate(self.cfg, n_epochs, steps)
            trainer.compile(optimizer=keras.optimizers.Adam(rate, clipnorm=self.cfg.clipnorm),
                            jit_compile=False)
            if done:
                self.checkpoint.restore_optimizer(self.state, trainer.optimizer,
                                                  trainer.trained_variables())
            train, valid = self._datasets(mode, index, range(done, n_epochs))
            trainer.fit(train, validation_data=valid, initial_epoch=done, epochs=n_epochs,
                        steps_per_epoch=steps,  # one iterator over the epochs' batches
                        shuffle=False,  # the dataset shuffles each epoch itself
                        callbacks=[EpochEnd(self, index), *self.callbacks], verbose=verbose)

    def _datasets(self, mode: str, phase: int, epochs: range):
        train, valid = self.data["train"], self.data["valid"]
        train_inputs, valid_inputs = train.inputs, valid.inputs
        if mode == "estimation":  # features of the frozen autoencoder, computed once
            train_inputs = frozen_features(self.network, train.inputs)
            valid_inputs = frozen_features(self.network, valid.inputs)
        train_ds = training_batches(train_inputs, train, self.cfg.batch_size,
                                    seed=(self.cfg.seed, phase), epochs=epochs)
        # validation batches as large as prediction's: fewer steps, a steadier per-batch GMM
        valid_batch = max(self.cfg.batch_size, PREDICT_BATCH)
        valid_ds = (evaluation_batches(valid_inputs, valid, valid_batch)
                    if len(valid.index) else None)
        return train_ds, valid_ds


def balanced_class_weight(label: np.ndarray) -> np.ndarray:
    """N / (K n_k) for each of the K classes present in the training labels, 0 for the others:
    every class weighs the same in L_CE as a whole."""
    counts = np.bincount(label, minlength=len(taxonomy.CLASSES))
    present = counts > 0
    weight = np.zeros(len(counts), np.float32)
    weight[present] = len(label) / (present.sum() * counts[present])
    return weight


def reconstruction_r2(network: keras.Model, subset: Subset) -> np.ndarray:
    """Per-sequence weighted R² of the autoencoder on a subset (dropout off)."""
    out = predict(network, subset.inputs, PREDICT_BATCH)
    return metrics.reconstruction_r2(subset.inputs["X"][:, :, 1], out["reconstruction"],
                                     subset.weight)


def frozen_features(network: keras.Model, inputs: dict) -> dict[str, np.ndarray]:
    out = predict(network, inputs, PREDICT_BATCH)
    return {"features": out["features"], "observed": out["observed"]}
