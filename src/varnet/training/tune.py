"""Optuna study over the energy weight λ and the embedding size m (optionally the learning rate).

Each trial trains one variant (params `tune.variant`, default joint) for `tune.epochs` epochs
with the suggested values and returns two objectives measured on the validation split, both
maximised: classification accuracy and novelty AUROC (valid known vs novel_valid VAR energies;
the test and novel_test stars are never read, so Table 2 stays honest). The study
is multi-objective, so its result is a Pareto front; one trial is picked from it by a fixed rule:

    among the Pareto-optimal trials whose accuracy is within `tune.pick_accuracy_tolerance` of
    the best accuracy on the front, take the one with the highest novelty AUROC
    (ties: the smaller embedding, then the earlier trial).

Pruning: Optuna cannot report intermediate values of a multi-objective trial, so the per-epoch
validation accuracy is kept in the trial's user attribute `val_accuracy_curve` and a trial is
stopped when its best accuracy so far is below the `tune.pruning.percentile`-th percentile of
the completed trials' accuracies at the same epoch (Optuna's PercentilePruner rule, after
`n_startup_trials` completed trials and `n_warmup_epochs` epochs).

Storage (`--storage` or params tune.storage): a SQLAlchemy URL (sqlite:///...,
postgresql+psycopg2://...)
or a file path, which is used as an Optuna journal file. Several workers, on one machine or many,
run the same study by pointing at the same storage (`load_if_exists`). The study stops when
`tune.n_trials` trials have completed or been pruned, counted over all invocations and workers.
A worker killed mid-trial leaves a RUNNING trial: the next invocation on the same host marks it
FAIL (its process is gone), as does Optuna's heartbeat on SQL storages for workers on other
hosts; the failed trial's parameters are queued again once (`tune.retry_failed`), and the next
invocation on the dead worker's host deletes the trial's temporary folder.

MLflow: the study is one run (resumed by every invocation and worker), each trial a nested run
tagged `optuna.trial`, `optuna.state`. Outputs:
  reports/tune/best_params.yaml   the picked trial's params as params.yaml overrides
  reports/tune/trials.csv         every trial: number, state, params, objectives, duration
  reports/figures/tune/pareto.png the front, the other trials, and the pick

Example:
  varnet tune --n-trials 20
  varnet tune --storage postgresql+psycopg2://user@db/optuna --study varnet-tune  # 2nd machine
  dvc exp run -S train.lambda_energy=0.0021 -S model.embedding=32          # use the pick
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from varnet.core import files
from varnet.core.config import PruningParams, TrainParams, TuneParams, section
from varnet.core.errors import VarnetError
from varnet.core.schema import FIGURES_DIR, REPORTS_DIR, SEQUENCES_FILE, SPLIT_FILE

TUNE_DIR = REPORTS_DIR / "tune"
BEST_PARAMS_FILE = TUNE_DIR / "best_params.yaml"
TRIALS_FILE = TUNE_DIR / "trials.csv"
PARETO_FIGURE = FIGURES_DIR / "tune" / "pareto.png"
# heartbeats, retry callbacks and metric names are "experimental" in Optuna 5; we rely on them
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
OBJECTIVES = ("valid_accuracy", "novelty_auroc")
CURVE_ATTR = "val_accuracy_curve"
WORKER_ATTR = "worker"
RUN_ATTR = "mlflow_run_id"
DIR_ATTR = "trial_dir"
TRIAL_DIR_PREFIX = "varnet-trial-"


# --- pure rules ------------------------------------------------------------------------------

def should_prune(curve: Sequence[float], completed: Sequence[Sequence[float]],
                 rule: PruningParams) -> bool:
    """Whether a trial with per-epoch accuracies ``curve`` falls below the completed trials.

    Optuna's PercentilePruner rule for a maximised value: the trial's best value so far is
    compared with the ``percentile``-th percentile of the completed trials' values at the same
    epoch; trials too short to have that epoch are left out.
    """
    step = len(curve) - 1
    if step < rule.n_warmup_epochs or len(completed) < rule.n_startup_trials:
        return False
    at_step = [c[step] for c in completed if len(c) > step and math.isfinite(c[step])]
    if len(at_step) < max(rule.n_startup_trials, 1):
        return False
    best = max((v for v in curve if math.isfinite(v)), default=-math.inf)
    return best < float(np.percentile(at_step, rule.percentile))


def pick_trial(front: Sequence[FrozenTrial], accuracy_tolerance: float) -> FrozenTrial:
    """The trial the module docstring's rule picks from the Pareto front."""
    if not front:
        raise VarnetError("no completed trial yet: nothing to pick (run more trials)")
    best_accuracy = max(t.values[0] for t in front)
    eligible = [t for t in front if t.values[0] >= best_accuracy - accuracy_tolerance]
    return max(eligible, key=lambda t: (t.values[1], -t.params["embedding"], -t.number))


def trial_params(params: dict[str, Any], values: dict[str, Any], epochs: int | None
                 ) -> dict[str, Any]:
    """A copy of the whole params dict with a trial's values (and the tuning epochs) applied."""
    out = copy.deepcopy(params)
    out["train"]["lambda_energy"] = float(values["lambda_energy"])
    out["model"]["embedding"] = int(values["embedding"])
    if "learning_rate" in values:
        out["train"]["learning_rate"] = float(values["learning_rate"])
    if epochs is not None:
        out["train"]["epochs"] = int(epochs)
    return out


def best_params_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """A picked trial's values as a params.yaml-shaped mapping (what best_params.yaml holds)."""
    train = {"lambda_energy": float(values["lambda_energy"])}
    if "learning_rate" in values:
        train["learning_rate"] = float(values["learning_rate"])
    return {"model": {"embedding": int(values["embedding"])}, "train": train}


def set_param_args(overrides: dict[str, Any]) -> list[str]:
    """`dvc exp run` arguments that apply ``overrides``, e.g. ['-S', 'model.embedding=32']."""
    args = []
    for name, values in overrides.items():
        for key, value in values.items():
            args += ["-S", f"{name}.{key}={value:g}" if isinstance(value, float)
                     else f"{name}.{key}={value}"]
    return args


def is_sql_url(storage: str) -> bool:
    return "://" in storage


def display_url(storage: str) -> str:
    """The storage as it may be logged: a database password is masked."""
    if not is_sql_url(storage):
        return storage
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not parseable: log only the scheme
        return storage.split("://", 1)[0] + "://..."


# --- storage and stale trials ----------------------------------------------------------------

def open_storage(url: str, heartbeat_interval: int, retry_failed: int
                 ) -> optuna.storages.BaseStorage:
    """An RDB storage for a SQLAlchemy URL (heartbeat on), else a journal file at that path."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=retry_failed) if retry_failed else None
    if is_sql_url(url):
        if url.startswith("sqlite:///") and ":memory:" not in url:  # relative to the root
            db = Path(url.removeprefix("sqlite:///")).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{db}"
        heartbeat = heartbeat_interval or None
        try:
            return RDBStorage(url, heartbeat_interval=heartbeat,
                              grace_period=2 * heartbeat if heartbeat else None,
                              heartbeat_stale_trial_callback=retry if heartbeat else None)
        except Exception as exc:  # bad URL, missing driver, unreachable server
            raise VarnetError(f"cannot open Optuna storage {display_url(url)}: {exc}") from exc
    path = Path(url).resolve()
    if path.is_dir():
        raise VarnetError(f"Optuna storage {path} is a directory; give a journal file path or a "
                          "SQLAlchemy URL such as sqlite:///optuna/varnet.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fail_orphaned_trials(study: optuna.Study, retry_failed: int) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host no longer exists.

    A SIGKILL or a power cut leaves a trial RUNNING for ever; the worker recorded its host and
    pid, so a restart on the same host can tell that nobody runs it any more. The trial's MLflow
    run is closed as FAILED, and its parameters are queued again up to ``retry_failed`` times.
    Returns the numbers of the trials failed.
    """
    me = worker_id()
    retry = RetryHeartbeatStaleTrialCallback(max_retry=retry_failed) if retry_failed else None
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(WORKER_ATTR) or {}
        if owner.get("host") != me["host"] or owner.get("pid") == me["pid"]:
            continue
        if _pid_alive(int(owner.get("pid", -1))):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                               f"worker pid {owner.get('pid')} died")
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(trial.number)
        if trial.user_attrs.get(RUN_ATTR):
            _close_run(trial.user_attrs[RUN_ATTR], "FAILED", trial.number, "FAIL")
        if retry is not None:
            retry(study, study._storage.get_trial(trial._trial_id))
    return failed


def remove_dead_trial_dirs(study: optuna.Study) -> None:
    """Delete the temporary folders of trials whose worker on this host died mid-trial.

    A killed process cannot remove its TemporaryDirectory; whether the trial was then failed
    here or by the heartbeat of a worker elsewhere, the folder is on this host. Only a folder
    named like the objective's is touched, whatever path the storage holds.
    """
    me = worker_id()
    for trial in study.get_trials(deepcopy=False):
        owner = trial.user_attrs.get(WORKER_ATTR) or {}
        path = trial.user_attrs.get(DIR_ATTR)
        if (not path or not Path(path).name.startswith(TRIAL_DIR_PREFIX)
                or owner.get("host") != me["host"] or owner.get("pid") == me["pid"]
                or _pid_alive(int(owner.get("pid", -1)))):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _close_run(run_id: str, status: str, number: int, state: str) -> None:
    client = mlflow.MlflowClient()
    try:
        client.set_tag(run_id, "optuna.trial", str(number))
        client.set_tag(run_id, "optuna.state", state)
        if client.get_run(run_id).info.status != status:  # e.g. a pruned run ended FAILED
            client.set_terminated(run_id, status)
    except mlflow.exceptions.MlflowException:
        pass  # the run is gone (deleted experiment): nothing left to close


# --- pruning callback ------------------------------------------------------------------------

class PruningCallback(keras.callbacks.Callback):
    """Records per-epoch val_accuracy on the trial and raises TrialPruned by ``should_prune``.

    It also records the MLflow run that train_variant opened (the active run when training
    starts), so that a pruned or orphaned trial's run can be closed and tagged.
    """

    def __init__(self, trial: optuna.Trial, rule: PruningParams | None) -> None:
        super().__init__()
        self.trial = trial
        self.rule = rule
        self.curve: list[float] = []
        self.run_id: str | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        run = mlflow.active_run()
        if run is not None and self.run_id is None:
            self.run_id = run.info.run_id
            self.trial.set_user_attr(RUN_ATTR, self.run_id)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get("val_accuracy")
        if value is None:  # e.g. the autoencoder phase of a sequential variant
            return
        self.curve.append(float(value))
        self.trial.set_user_attr(CURVE_ATTR, self.curve)
        if self.rule is None:
            return
        completed = [t.user_attrs.get(CURVE_ATTR, []) for t in
                     self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if should_prune(self.curve, completed, self.rule):
            raise optuna.TrialPruned(f"val_accuracy {max(self.curve):.4f} after "
                                     f"{len(self.curve)} epochs is below the "
                                     f"{self.rule.percentile:g}th percentile of completed trials")


# --- the study -------------------------------------------------------------------------------

TrainFn = Callable[..., dict[str, Any]]


def _default_train_fn() -> TrainFn:
    from varnet.training.train import train_variant

    return train_variant


def suggest(trial: optuna.Trial, cfg: TuneParams) -> dict[str, Any]:
    values: dict[str, Any] = {
        "lambda_energy": trial.suggest_float("lambda_energy", *cfg.lambda_range, log=True),
        "embedding": trial.suggest_categorical("embedding", list(cfg.embedding_choices)),
    }
    if cfg.learning_rate_range is not None:
        values["learning_rate"] = trial.suggest_float("learning_rate", *cfg.learning_rate_range,
                                                      log=True)
    return values


def make_objective(cfg: TuneParams, params: dict[str, Any], train_fn: TrainFn
                   ) -> Callable[[optuna.Trial], tuple[float, float]]:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr(WORKER_ATTR, worker_id())
        values = suggest(trial, cfg)
        callback = PruningCallback(trial, cfg.pruning)
        with tempfile.TemporaryDirectory(prefix=f"{TRIAL_DIR_PREFIX}{trial.number}-") as out_dir:
            trial.set_user_attr(DIR_ATTR, out_dir)  # a killed worker's is removed on restart
            try:
                result = train_fn(cfg.variant, trial_params(params, values, cfg.epochs),
                                  Path(out_dir), callbacks=[callback], nested=True,
                                  register=False)
            except optuna.TrialPruned:
                if callback.run_id:
                    _close_run(callback.run_id, "KILLED", trial.number, "PRUNED")
                raise
            except BaseException:  # a failed trial (or Ctrl-C): its run says so too
                if callback.run_id:
                    _close_run(callback.run_id, "FAILED", trial.number, "FAIL")
                raise
        run_id = result.get("run_id") or callback.run_id
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)
            _close_run(run_id, "FINISHED", trial.number, "COMPLETE")
        objectives = tuple(float(result[k]) for k in OBJECTIVES)
        for key, value in zip(OBJECTIVES, objectives, strict=True):
            trial.set_user_attr(key, value)
        if not all(math.isfinite(v) for v in objectives):
            raise FloatingPointError(f"trial {trial.number}: non-finite objectives {objectives}")
        return objectives

    return objective


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_study(cfg: TuneParams, params: dict[str, Any], *, train_fn: TrainFn | None = None,
              log: Callable[[str], None] = print) -> optuna.Study:
    """Create or resume the study and run trials until ``cfg.n_trials`` are finished."""
    storage = open_storage(cfg.storage, cfg.heartbeat_interval, cfg.retry_failed)
    study = optuna.create_study(study_name=cfg.study, storage=storage,
                                directions=["maximize", "maximize"], load_if_exists=True)
    if study.directions != [optuna.study.StudyDirection.MAXIMIZE] * 2:
        raise VarnetError(f"study {cfg.study!r} in {display_url(cfg.storage)} is not a "
                          "two-objective (accuracy, AUROC) study; choose another --study name")
    study.set_metric_names(list(OBJECTIVES))
    # a continued study would re-propose its first trials with the same seed: offset it by the
    # trials already there, so each invocation draws new values; each --seed owns a block of
    # 2**20 offsets, else --seed 1 joining after one trial replays --seed 2 (1 + 1 == 2 + 0)
    study.sampler = optuna.samplers.TPESampler(
        seed=(cfg.seed * 2**20 + len(study.trials)) % 2**32)
    failed = fail_orphaned_trials(study, cfg.retry_failed)
    remove_dead_trial_dirs(study)
    if failed:
        log(f"marked trial(s) {failed} FAIL: their worker on this host is gone"
            + (" (parameters queued again)" if cfg.retry_failed else ""))
    remaining = cfg.n_trials - finished_count(study)
    if remaining <= 0:
        log(f"study {cfg.study!r} already has {finished_count(study)} finished trials "
            f"(n_trials {cfg.n_trials}): nothing to run")
        return study
    log(f"study {cfg.study!r} in {display_url(cfg.storage)}: {finished_count(study)} finished, "
        f"running up to {remaining} more")
    objective = make_objective(cfg, params, train_fn or _default_train_fn())
    stop_at_total = optuna.study.MaxTrialsCallback(
        cfg.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    with study_run(study, cfg):
        study.optimize(objective, n_trials=remaining, timeout=cfg.timeout_s,
                       callbacks=[stop_at_total, report_trial(cfg.n_trials, log)],
                       catch=(FloatingPointError, VarnetError), gc_after_trial=True)
    return study


def report_trial(n_trials: int, log: Callable[[str], None]
                 ) -> Callable[[optuna.Study, FrozenTrial], None]:
    """A study callback: one line per finished trial, so a long study shows its progress."""
    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        epochs = len(trial.user_attrs.get(CURVE_ATTR, []))
        values = (f"accuracy {trial.values[0]:.4f}, AUROC {trial.values[1]:.4f}"
                  if trial.values else f"after {epochs} epochs")
        seconds = trial.duration.total_seconds() if trial.duration else float("nan")
        lam = trial.params.get("lambda_energy", float("nan"))
        log(f"trial {trial.number} {trial.state.name} [{finished_count(study)}/{n_trials}] in "
            f"{seconds:.0f} s: lambda_energy={lam:.3g} embedding={trial.params.get('embedding')}"
            f": {values}")
    return report


@contextmanager
def study_run(study: optuna.Study, cfg: TuneParams) -> Iterator[mlflow.ActiveRun]:
    """The study's MLflow run: created by the first invocation, resumed by every later one."""
    run_id = study.user_attrs.get(RUN_ATTR)
    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException:
            run_id = None  # the tracking store was reset: start a new study run
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"tune-{cfg.study}") as run:
        if run_id is None:
            study.set_user_attr(RUN_ATTR, run.info.run_id)
            mlflow.set_tags({"optuna.study": cfg.study, "optuna.storage": display_url(cfg.storage)})
            space = {k: v for k, v in dataclasses.asdict(cfg).items()
                     if k not in ("study", "storage", "seed", "heartbeat_interval")}
            mlflow.log_params({f"tune.{k}": str(v) for k, v in space.items()})
        yield run


# --- reports ---------------------------------------------------------------------------------

def trials_table(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration else float("nan")
        values = t.values or [float("nan")] * len(OBJECTIVES)
        curve = t.user_attrs.get(CURVE_ATTR, [])
        rows.append({"number": t.number, "state": t.state.name, **t.params,
                     **dict(zip(OBJECTIVES, values, strict=True)),
                     "epochs_run": len(curve), "duration_s": duration,
                     "mlflow_run_id": t.user_attrs.get(RUN_ATTR, "")})
    return pd.DataFrame(rows)


def plot_pareto(study: optuna.Study, picked: FrozenTrial, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    fig, ax = plt.subplots(figsize=(6, 4.5))
    choices = sorted({t.params["embedding"] for t in complete})
    colors = dict(zip(choices, plt.cm.viridis(np.linspace(0, 0.9, len(choices))), strict=True))
    for m in choices:
        pts = [t for t in complete if t.params["embedding"] == m]
        ax.scatter([t.values[0] for t in pts], [t.values[1] for t in pts], color=colors[m],
                   s=[60 if t.number in front else 25 for t in pts],
                   edgecolors=["black" if t.number in front else "none" for t in pts],
                   label=f"m = {m}")
    ordered = sorted((t for t in complete if t.number in front), key=lambda t: t.values[0])
    ax.plot([t.values[0] for t in ordered], [t.values[1] for t in ordered], "k--", lw=0.8,
            label="Pareto front")
    ax.scatter([picked.values[0]], [picked.values[1]], marker="*", s=250, color="crimson",
               zorder=5, label=f"picked: trial {picked.number}")
    n_pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    ax.set_xlabel("validation accuracy")
    ax.set_ylabel("novelty AUROC (valid vs VAR)")
    ax.set_title(f"{study.study_name}: {len(complete)} complete, {n_pruned} pruned")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with files.atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_reports(study: optuna.Study, cfg: TuneParams, *, best_params: Path = BEST_PARAMS_FILE,
                  trials_file: Path = TRIALS_FILE, figure: Path = PARETO_FIGURE
                  ) -> FrozenTrial:
    """Write the trials table, the pick as params overrides, and the Pareto figure."""
    table = trials_table(study)
    with files.atomic_path(trials_file) as tmp:
        table.to_csv(tmp, index=False)
    picked = pick_trial(study.best_trials, cfg.pick_accuracy_tolerance)
    overrides = best_params_overrides(picked.params)
    use = " ".join(set_param_args(overrides))
    header = (f"# Picked by `varnet tune` from study {cfg.study!r}: trial {picked.number}, "
              f"valid_accuracy {picked.values[0]:.4f}, novelty_auroc {picked.values[1]:.4f}\n"
              f"# ({len(study.best_trials)} Pareto-optimal of {finished_count(study)} finished "
              f"trials; rule: docs/tuning.md). Use: dvc exp run {use}\n")
    files.write_text(header + yaml.safe_dump(overrides, sort_keys=True), best_params)
    plot_pareto(study, picked, figure)
    return picked


# --- command ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", help="SQLAlchemy URL or journal file path "
                        "(default: params tune.storage)")
    parser.add_argument("--study", help="study name (default: params tune.study)")
    parser.add_argument("--n-trials", type=int,
                        help="finished trials the study should have in total (default: params)")
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many s")
    parser.add_argument("--seed", type=int, help="sampler seed; give each worker its own")
    parser.add_argument("--report-only", action="store_true",
                        help="run no trial; only rewrite the reports from the stored study")


def config_from(args: argparse.Namespace, params: dict[str, Any]) -> TuneParams:
    cfg = section(TuneParams, params)
    overrides = {"storage": args.storage, "study": args.study, "n_trials": args.n_trials,
                 "timeout_s": args.timeout, "seed": args.seed}
    try:
        return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise VarnetError(f"varnet tune: {exc}") from exc


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    cfg = config_from(args, params)
    if cfg.variant not in section(TrainParams, params).variants:
        raise VarnetError(f"params tune.variant {cfg.variant!r} is not a key of train.variants")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from varnet.core import tracking

    tracking.configure(params)
    start = time.monotonic()
    if args.report_only:
        try:
            study = optuna.load_study(study_name=cfg.study,
                                      storage=open_storage(cfg.storage, 0, 0))
        except KeyError as exc:
            raise VarnetError(f"no study {cfg.study!r} in {display_url(cfg.storage)}") from exc
    else:
        missing = [str(p) for p in (SEQUENCES_FILE, SPLIT_FILE) if not p.is_file()]
        if missing:
            raise VarnetError(f"{', '.join(missing)}: not found; make the data first "
                              "(dvc repro split)")
        study = run_study(cfg, params)
    picked = write_reports(study, cfg)
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print(f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed "
          f"trials; this invocation took {time.monotonic() - start:.0f} s")
    print(f"picked trial {picked.number}: lambda_energy={picked.params['lambda_energy']:.3g} "
          f"embedding={picked.params['embedding']} -> valid_accuracy {picked.values[0]:.4f}, "
          f"novelty_auroc {picked.values[1]:.4f}")
    print(f"wrote {BEST_PARAMS_FILE}, {TRIALS_FILE}, {PARETO_FIGURE}")
    print("train with it: dvc exp run " + " ".join(set_param_args(
        best_params_overrides(picked.params))))
    return 0
