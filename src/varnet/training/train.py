"""Train one variant of the dual network (GRU autoencoder + estimation network + GMM).

Reads   data/processed/sequences.npz and data/processed/split.npz (`varnet sequences`, `split`)
Writes  models/<variant>/: the files of schema.MODEL_FILES (the network, the GMM refitted once
        on the training set, the novelty thresholds, every sequence's predictions, the history,
        the resolved config and the MLflow run).
MLflow  one run per training in the experiment of params `mlflow` (sqlite under mlruns/):
        params, per-epoch losses, final metrics (valid_accuracy, novelty_auroc, phi_<CLASS>,
        thresholds), gmm.npz, history, a learning-curve figure, the data version (tags
        data.<file> = md5, as in dvc.lock) and the git commit; the model is logged as a pyfunc
        model and registered as a new version of `varnet`.

Variants are the keys of params `train.variants` (mode + photometric):
  joint            L_AE + L_CE + lambda L_GMM, all at once (the paper's main model), then,
                   for train.joint_estimation_epochs, the estimation network alone on the
                   frozen features (0: none, the paper)
  sequential       the autoencoder alone for train.epochs, then the estimation network on the
                   frozen features for train.estimation_epochs
  joint-phot, sequential-phot   the same with the Gaia M_G, BP-RP, W_RP appended (§3.3)
A sequential variant with ``autoencoder_from: <variant>`` (sequential-phot in params.yaml) takes
that variant's trained autoencoder from its model folder instead of training the same one again,
when variant.json shows the same data, params and code; else it trains its own. Either way the
weights are the same (bit-identical on CPU with train.deterministic): the photometric inputs
reach the estimation network only. The autoencoder's epochs are copied into history.csv and the
MLflow run, which is tagged varnet.autoencoder_from.
The architecture is params `model` (docs/model.md). Defaults are CPU-sized (minutes on 2 cores).
The work is split by concern: training.data (the checked subsets), training.loop (the epochs),
training.checkpoint (resume); this module orchestrates them and writes the results.

Resume: a checkpoint is written to models/<variant>/checkpoint/ after every epoch (weights,
optimizer state, epoch, MLflow run id). Rerunning the same command (or `dvc repro`) after an
interruption continues from the last finished epoch in the same MLflow run, which then ends
FINISHED. Changed params or data start over (the old run is marked FAILED); --restart forces
that. The checkpoint is deleted when the variant is complete.

Paper-scale profile (GRU 96, batch 2000, lr 2e-4, 2000 epochs; a GPU, ~half a day):
  varnet --params params.yaml --params configs/paper-gpu.yaml train joint
  dvc exp run -S model.gru_units=96 -S train.batch_size=2000 -S train.learning_rate=2e-4 \\
      -S train.epochs=2000 -S train.estimation_epochs=250 -S train.deterministic=false \\
      -S train.joint_estimation_epochs=0 -S train.lr_schedule=constant -S train.warmup_epochs=0

Several variants (none named: all of params train.variants, the DVC stage) train in worker
processes, train.jobs at a time (training.parallel).

Examples:
  varnet train                             # every variant, train.jobs at once (`dvc repro`)
  varnet train joint                       # one variant, in this process
  varnet train sequential --restart        # ignore an interrupted attempt's checkpoint
  dvc exp run -S model.embedding=32        # an experiment with another embedding size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset

from varnet.core import files, provenance, schema, taxonomy, tracking
from varnet.core.config import (
    CutsParams,
    EvaluateParams,
    MlflowParams,
    ModelParams,
    SequencesParams,
    TrainParams,
    VariantParams,
    as_dict,
    section,
)
from varnet.core.errors import VarnetError
from varnet.core.schema import MODEL_FILES, ModelFolder
from varnet.model import autoencoder_layers, build_network, feature_names, gmm
from varnet.scoring import calibration, metrics
from varnet.scoring.calibration import Calibration
from varnet.scoring.inference import predict
from varnet.training.checkpoint import Checkpoint, run_exists
from varnet.training.data import SUBSETS, Subset, load_data
from varnet.training.loop import PREDICT_BATCH, TrainingLoop, log_epoch
from varnet.training.parallel import train_variants

HISTORY_METRICS = ("loss", "ae_loss", "ce_loss", "energy_loss", "accuracy")
HISTORY_COLUMNS = ("epoch", "phase", *HISTORY_METRICS, *(f"val_{m}" for m in HISTORY_METRICS),
                   "val_recon_r2", "time_s")


def score_subsets(network: keras.Model, data: dict[str, Subset], jitter: float
                  ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """GMM refitted once on the training set (dropout off) and every subset's outputs, energies
    and per-sequence reconstruction R²."""
    outputs = {name: predict(network, s.inputs, PREDICT_BATCH) if len(s.index) else None
               for name, s in data.items()}
    train = outputs["train"]
    params = gmm.fit_numpy(train["features"], train["gamma"], train["observed"], jitter)
    for out in outputs.values():
        if out is not None:
            out["energy"], out["class_energy"] = gmm.energy_numpy(out["features"], params,
                                                                  out["observed"])
    for name, out in outputs.items():
        if out is not None:
            out["recon_r2"] = metrics.reconstruction_r2(data[name].inputs["X"][:, :, 1],
                                                        out["reconstruction"], data[name].weight)
    return params, outputs


def predictions_table(data: dict[str, Subset], outputs: dict) -> dict[str, np.ndarray]:
    """predictions.npz: the sequences of every split subset, one subset after the other."""
    names = [n for n in SUBSETS if outputs[n] is not None]
    table = {
        "index": np.concatenate([data[n].index for n in names]),
        "subset": np.concatenate([np.full(len(data[n].index), n) for n in names]),
        "label": np.concatenate([data[n].label for n in names]).astype(np.int16),
        "star_id": np.concatenate([data[n].star_id for n in names]),
    }
    for key in ("gamma", "energy", "class_energy", "embedding", "features", "reconstruction",
                "recon_r2"):
        table[key] = np.concatenate([outputs[n][key] for n in names])
    return table


def final_metrics(data: dict[str, Subset], outputs: dict, params: dict[str, np.ndarray],
                  thresholds: dict[str, dict[str, float]], fitted: Calibration
                  ) -> dict[str, float]:
    """What the run logs, the tuner maximises and the promotion gate compares: accuracies,
    novelty AUROC (valid vs novel_valid sequences: the sets that choose, never test), the
    mixture weights, the thresholds and the temperatures."""
    result: dict[str, float] = {}
    for name in ("train", "valid"):
        if outputs[name] is not None:
            result[f"{name}_accuracy"] = metrics.accuracy(data[name].label,
                                                          outputs[name]["gamma"].argmax(axis=1))
    result.setdefault("valid_accuracy", float("nan"))
    valid, novel = outputs["valid"], outputs["novel_valid"]
    if valid is not None and novel is not None:
        is_novel = np.r_[np.zeros(len(valid["energy"])), np.ones(len(novel["energy"]))]
        result["novelty_auroc"] = metrics.novelty_scores(
            np.r_[valid["energy"], novel["energy"]], is_novel, {})["auroc"]
    else:
        result["novelty_auroc"] = float("nan")
    for k, name in enumerate(taxonomy.CLASSES):
        result[f"phi_{name}"] = float(params["phi"][k])
    for level, by_percentile in thresholds.items():
        for key, value in by_percentile.items():
            result[f"threshold_{level}_p{key}"] = value
        result[f"temperature_{level}"] = fitted[level].temperature
    for name in ("train", "valid"):
        if outputs[name] is not None:
            result[f"energy_median_{name}"] = float(np.median(outputs[name]["energy"]))
            result[f"{name}_recon_r2"] = float(np.nanmedian(outputs[name]["recon_r2"]))
    return result


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


def resolve(name: str, params: dict[str, Any]) -> tuple[ModelParams, TrainParams, VariantParams]:
    model_cfg = section(ModelParams, params)
    cfg = section(TrainParams, params)
    return model_cfg, cfg, cfg.variant(name)


def trained_bands(train: Subset, sequences: Path = schema.SEQUENCES_FILE) -> list[str]:
    """The bands of the training sequences: scoring names and leaves out any other band."""
    return sorted(set(files.read_npz(sequences)["band"][train.index].astype(str).tolist()))


def train_variant(name: str, params: dict[str, Any], out_dir: Path, *, callbacks=(),
                  nested: bool = False, register: bool = True, restart: bool = False
                  ) -> dict[str, Any]:
    """Train variant ``name`` of params ``train.variants``, write ``out_dir``, log an MLflow run.

    Resumes from ``out_dir/checkpoint`` when it matches the params and data (``restart``
    discards it, closing its run as FAILED). ``callbacks`` are
    Keras callbacks that see every epoch's logs (val_accuracy included once the estimation
    network trains). Returns the final metrics (valid_accuracy, novelty_auroc, ...) and run_id.
    """
    folder = ModelFolder(Path(out_dir))
    model_cfg, cfg, variant = resolve(name, params)
    data = load_data(variant.photometric)
    data_version = tracking.data_version([schema.SEQUENCES_FILE, schema.SPLIT_FILE])
    resolved = trained_config(name, params)
    fingerprint = hashlib.sha256(json.dumps(
        {**{k: v for k, v in resolved.items() if k not in ("data", "code")},
         "data": data_version}, sort_keys=True).encode()).hexdigest()

    tracking.configure(params)
    checkpoint = Checkpoint(folder.checkpoint, fingerprint)
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
        if not run_exists(state["run_id"]):
            print(f"varnet train {name}: run {state.pop('run_id')} is gone from the tracking "
                  "store; continuing in a new run")
    else:
        state = {"phase": 0, "phase_epochs": 0, "epoch": -1, "offset": 0, "best": None,
                 "wait": 0, "stopped": False, "history": []}
        if variant.autoencoder_from:
            source = ModelFolder(folder.root.parent / variant.autoencoder_from)
            why_not = why_not_reusable(source, resolved)
            if why_not:
                print(f"varnet train {name}: trains its own autoencoder, not {source.root}'s "
                      f"({why_not})")
            else:
                state.update(reused_autoencoder(source, network, cfg.epochs),
                             autoencoder_from=str(source.root))
                print(f"varnet train {name}: the autoencoder of {source.root} (same data, "
                      "params and code), then the estimation network")

    if "autoencoder_from" in state:  # in the state, so that a resumed training records it too
        resolved["autoencoder_from"] = state["autoencoder_from"]
    with mlflow.start_run(run_id=state.get("run_id"), run_name=None if "run_id" in state else name,
                          nested=nested) as run:
        if "run_id" not in state:
            state["run_id"] = run.info.run_id
            _log_inputs(resolved, data, data_version)
            if "autoencoder_from" in resolved:
                _log_reused_epochs(resolved["autoencoder_from"], state["history"])
        started = time.perf_counter()
        TrainingLoop(network, model_cfg, cfg, variant, data, checkpoint, state, callbacks).run()
        mlflow.log_metric("train_time_s", time.perf_counter() - started)
        registered_model = section(MlflowParams, params).registered_model if register else None
        result = _finish(name, params, network, model_cfg, data, state, resolved,
                         folder, registered_model)
        result["run_id"] = run.info.run_id
    checkpoint.remove()
    return result


def inputs_fingerprint() -> dict[str, Any]:
    """The data and the code a training reads now (core.provenance), as variant.json holds them."""
    return {"data": provenance.data_fingerprint(), "code": provenance.code_fingerprint()}


def trained_config(name: str, params: dict[str, Any], inputs: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """What variant.json records of a training of ``name`` now: its params and ``inputs``
    (default: inputs_fingerprint(), which hashes the data; pass it once for several)."""
    model_cfg, cfg, variant = resolve(name, params)
    return {"name": name, "mode": variant.mode, "photometric": variant.photometric,
            "model": as_dict(model_cfg),
            "train": {k: v for k, v in as_dict(cfg).items() if k not in ORCHESTRATION},
            "percentiles": [float(p) for p in section(EvaluateParams, params).percentiles],
            **(inputs_fingerprint() if inputs is None else inputs)}


def is_up_to_date(name: str, params: dict[str, Any], folder: ModelFolder,
                  inputs: dict[str, Any]) -> bool:
    """``folder`` holds a finished training of ``name`` with today's params and ``inputs``."""
    if folder.missing(MODEL_FILES) or folder.checkpoint.exists():
        return False
    recorded = files.read_json(folder.variant)
    now = json.loads(json.dumps(trained_config(name, params, inputs)))
    return all(recorded.get(key) == value for key, value in now.items())


ORCHESTRATION = ("variants", "jobs")
"""train params that say which trainings run and how many at once, not how one trains."""

AUTOENCODER_INDEPENDENT = ("estimation_epochs", "joint_estimation_epochs")
"""train params that a sequential autoencoder never reads (its estimation phase, joint's)."""


def why_not_reusable(source: ModelFolder, resolved: dict) -> str | None:
    """Why the autoencoder in ``source`` is not the one this training would train, or None."""
    if not source.variant.is_file() or not source.model.is_file():
        return "not trained yet"
    trained = files.read_json(source.variant)
    differs = [key for key, mine, theirs in (
        ("mode", "sequential", trained.get("mode")),
        ("model", resolved["model"], trained.get("model")),
        ("train", _without(resolved["train"]), _without(trained.get("train") or {})),
        ("data", resolved["data"], trained.get("data")),
        ("code", resolved["code"], trained.get("code"))) if mine != theirs]
    return f"its {', '.join(differs)} differ" if differs else None


def _without(train: dict) -> dict:
    return {k: v for k, v in train.items() if k not in AUTOENCODER_INDEPENDENT}


def reused_autoencoder(source: ModelFolder, network: keras.Model, epochs: int) -> dict:
    """The training state at the end of ``source``'s autoencoder phase, its encoder and decoder
    variables (dropout seeds included; the period decoder too) copied into ``network``.

    The estimation phase neither trains nor runs (in training mode) the encoder and decoder, so
    the source's final network holds them exactly as its autoencoder phase left them."""
    trained = keras.models.load_model(source.model, compile=False)
    for part in autoencoder_layers(network):
        for mine, theirs in zip(part.variables, trained.get_layer(part.name).variables,
                                strict=True):
            mine.assign(theirs)
    # round_trip: the copied rows equal the source's to the bit (pandas' fast parser may not)
    history = pd.read_csv(source.history, float_precision="round_trip")
    rows = [{k: v for k, v in row.items() if not pd.isna(v)}
            for row in history.to_dict("records") if row["phase"] == "autoencoder"]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return {"phase": 0, "phase_epochs": len(rows), "epoch": rows[-1]["epoch"],
            "stopped": len(rows) < epochs, "history": rows}


def _log_reused_epochs(source: str, history: list[dict]) -> None:
    """The copied autoencoder epochs in this run, as if trained here, and where they are from."""
    for row in history:
        log_epoch(row)
    run_id = files.read_json(ModelFolder(Path(source)).run).get("run_id")
    mlflow.set_tag("varnet.autoencoder_from", f"{source} (MLflow run {run_id})")


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


def _finish(name, params, network, model_cfg, data, state, resolved,
            folder: ModelFolder, registered_model) -> dict[str, Any]:
    """Refit the GMM, score every subset, write the model folder (each file replaced
    atomically), log to MLflow and register the model."""
    gmm_params, outputs = score_subsets(network, data, model_cfg.gmm_jitter)
    train_energy = outputs["train"]["energy"]
    if not np.isfinite(train_energy).all():
        raise VarnetError(f"variant {name}: non-finite training energies; the GMM fit failed "
                          "(try a larger model.gmm_jitter)")
    thresholds = calibration.novelty_thresholds(data["train"].star_id, train_energy,
                                                 resolved["percentiles"])
    valid = outputs["valid"]
    if valid is None:
        raise VarnetError(f"variant {name}: no validation sequences to calibrate on")
    fitted = Calibration.fit(data["valid"].star_id, data["valid"].label,
                                         valid["gamma"], valid["energy"], valid["class_energy"])
    result = final_metrics(data, outputs, gmm_params, thresholds, fitted)
    history = pd.DataFrame(state["history"]).reindex(columns=list(HISTORY_COLUMNS))
    variant = {**resolved, "classes": list(taxonomy.CLASSES),
               "features": feature_names(model_cfg.embedding, resolved["photometric"]),
               "sequence_length": int(data["train"].inputs["X"].shape[1]),
               "sequences": as_dict(section(SequencesParams, params)),
               "cuts": as_dict(section(CutsParams, params)),
               "trained_bands": trained_bands(data["train"]),
               "epochs_trained": int(state["epoch"]) + 1}

    staging = ModelFolder(folder.root / ".staging")
    shutil.rmtree(staging.root, ignore_errors=True)
    staging.root.mkdir(parents=True)
    network.save(staging.model)
    files.write_npz(staging.gmm, **gmm_params)
    files.write_json(thresholds, staging.thresholds)
    fitted.save(staging.calibration)
    files.write_npz(staging.predictions, **predictions_table(data, outputs))
    files.write_text(history.to_csv(index=False), staging.history)
    files.write_json(variant, staging.variant)

    mlflow.log_metrics({k: v for k, v in result.items() if math.isfinite(v)})
    for path in (staging.gmm, staging.thresholds, staging.calibration, staging.history,
                 staging.variant):
        mlflow.log_artifact(str(path))
    fig = learning_curves(history, name)
    mlflow.log_figure(fig, "figures/learning_curves.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    run = mlflow.active_run()
    version = None
    if registered_model:
        from varnet.scoring import pyfunc

        model_version = pyfunc.log_model(staging.root, registered_model)
        version = None if model_version is None else str(model_version.version)
    files.write_json({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                      "registered_model": registered_model, "version": version}, staging.run)
    for name in MODEL_FILES:
        staging.file(name).replace(folder.file(name))
    shutil.rmtree(staging.root)
    return {**result, "registered_model": registered_model, "version": version}


# --- command line -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("variants", nargs="*", metavar="variant",
                        help="keys of params train.variants, e.g. joint, sequential, "
                        "joint-phot, sequential-phot (default: all of them, what `dvc repro` "
                        "runs)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="with several variants: how many train at once, each in its own "
                        "process with cores/jobs threads (default: params train.jobs)")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted attempt's checkpoint and start over")
    parser.add_argument("--no-register", action="store_true",
                        help="log the run but do not register a model version")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory of a single variant (default: models/<variant>)")


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    cfg = section(TrainParams, params)
    names = list(args.variants or cfg.variants)
    for name in names:
        resolve(name, params)  # a bad variant name fails before any work
    if len(names) > 1:
        if args.out is not None:
            raise VarnetError("--out names the folder of one variant; give one variant")
        jobs = cfg.jobs if args.jobs is None else args.jobs
        if jobs < 1:
            raise VarnetError(f"--jobs must be >= 1, got {jobs}")
        if not args.restart:  # an interrupted `dvc repro` does not retrain finished ones
            inputs = inputs_fingerprint()
            for name in [n for n in names
                         if is_up_to_date(n, params, ModelFolder.of(n), inputs)]:
                print(f"varnet train: {name} is up to date ({ModelFolder.of(name).variant}: "
                      "the same params, data and code), skipped; --restart retrains it")
                names.remove(name)
        flags = [flag for flag, on in (("--restart", args.restart),
                                       ("--no-register", args.no_register)) if on]
        if names:
            train_variants(names, cfg, min(jobs, len(names)), args.params, flags)
        return 0
    out_dir = args.out or ModelFolder.of(names[0]).root
    result = train_variant(names[0], params, out_dir, register=not args.no_register,
                           restart=args.restart)
    version = f", registered as version {result['version']}" if result.get("version") else ""
    print(f"varnet train {names[0]}: valid accuracy {result['valid_accuracy']:.4f}, "
          f"novelty AUROC {result['novelty_auroc']:.4f} -> {out_dir} "
          f"(MLflow run {result['run_id']}{version})")
    return 0
