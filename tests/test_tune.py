"""`varnet tune`: the pruning and picking rules, studies on sqlite and journal storage, resume
after a SIGKILL, and a real tiny study through train_variant.

The storage/pruning/resume tests use a stand-in trainer (same signature as
varnet.training.train.train_variant: per-epoch Keras callback calls, a nested MLflow run) whose
accuracy is a known function of the parameters, so which trial is pruned is deterministic.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import keras
import mlflow
import optuna
import pytest
import tiny_project
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from varnet.core.config import PruningParams, TuneParams, from_dict
from varnet.core.errors import VarnetError
from varnet.training import tune

PARAMS = {"train": {"lambda_energy": 1e-3, "learning_rate": 2e-3, "epochs": 30,
                    "variants": {"joint": {"mode": "joint", "photometric": False}}},
          "model": {"embedding": 16}}


# --- pure rules ------------------------------------------------------------------------------

def test_should_prune_follows_percentile_rule():
    rule = PruningParams(percentile=50, n_startup_trials=2, n_warmup_epochs=1)
    done = [[0.5, 0.7, 0.8], [0.4, 0.6, 0.9], [0.3, 0.5, 0.6]]
    assert not tune.should_prune([0.1], done, rule)             # warm-up epoch
    assert not tune.should_prune([0.1, 0.2], done[:1], rule)    # too few completed trials
    assert tune.should_prune([0.1, 0.2], done, rule)            # 0.2 < median 0.6
    assert not tune.should_prune([0.7, 0.2], done, rule)        # best so far 0.7 >= 0.6
    assert not tune.should_prune([0.1, 0.2, 0.3, 0.4], done, rule)  # no trial got this far


def _complete(number: int, acc: float, auroc: float, m: int) -> optuna.trial.FrozenTrial:
    trial = create_trial(values=[acc, auroc], params={"embedding": m, "lambda_energy": 1e-3},
                         distributions={"embedding": CategoricalDistribution([8, 16, 32, 64]),
                                        "lambda_energy": FloatDistribution(1e-5, 0.1, log=True)})
    trial.number = number
    return trial


def test_pick_trial_rule():
    front = [_complete(0, 0.95, 0.70, 16), _complete(1, 0.948, 0.80, 32),
             _complete(2, 0.90, 0.95, 8), _complete(3, 0.948, 0.80, 16)]
    # within 0.005 of the best accuracy: trials 0, 1, 3; best AUROC 0.80, tie -> smaller m
    assert tune.pick_trial(front, 0.005).number == 3
    assert tune.pick_trial(front, 0.0).number == 0
    assert tune.pick_trial(front, 0.1).number == 2
    with pytest.raises(tune.VarnetError, match="no completed trial"):
        tune.pick_trial([], 0.005)


def test_params_overrides_and_dvc_args():
    values = {"lambda_energy": 0.00123, "embedding": 32}
    params = tune.trial_params(PARAMS, values, epochs=3)
    assert params["train"]["lambda_energy"] == 0.00123 and params["model"]["embedding"] == 32
    assert params["train"]["epochs"] == 3 and PARAMS["train"]["epochs"] == 30  # a copy
    overrides = tune.best_params_overrides(values)
    assert overrides == {"model": {"embedding": 32}, "train": {"lambda_energy": 0.00123}}
    assert tune.set_param_args(overrides) == ["-S", "model.embedding=32",
                                              "-S", "train.lambda_energy=0.00123"]


def test_storage_urls_and_config(tmp_path):
    assert tune.display_url("postgresql://me:secret@db/optuna") == "postgresql://me:***@db/optuna"
    assert isinstance(tune.open_storage(str(tmp_path / "j" / "study.log"), 60, 1),
                      optuna.storages.JournalStorage)
    with pytest.raises(tune.VarnetError, match="directory"):
        tune.open_storage(str(tmp_path), 60, 1)
    with pytest.raises(tune.VarnetError, match="cannot open"):
        tune.open_storage("nosuchdialect://x/y", 60, 1)
    cfg = from_dict(TuneParams, {"pruning": {"percentile": 25}, "lambda_range": [1e-4, 1e-2]})
    assert cfg.pruning.percentile == 25 and cfg.lambda_range == (1e-4, 1e-2)
    with pytest.raises(ValueError, match="lambda_range"):
        TuneParams(lambda_range=[0.1, 0.01])


# --- studies with a stand-in trainer ---------------------------------------------------------

def fake_train(name, params, out_dir, *, callbacks=(), nested=False, register=True):
    """Accuracy grows with the embedding size, AUROC peaks at λ = 1e-3; 3 epochs."""
    m, lam = params["model"]["embedding"], params["train"]["lambda_energy"]
    accuracy = 0.5 + 0.1 * math.log2(m / 8)
    auroc = 0.9 - 0.05 * abs(math.log10(lam) + 3)
    with mlflow.start_run(nested=nested, run_name=f"fake-{m}") as run:
        for cb in callbacks:
            cb.on_train_begin()
        for epoch in range(3):
            mlflow.log_metric("val_accuracy", accuracy * (epoch + 1) / 3, step=epoch)
            for cb in callbacks:
                cb.on_epoch_end(epoch, {"val_accuracy": accuracy * (epoch + 1) / 3})
        if os.environ.get("FAKE_TRAIN_HANG") and m == 64 and not Path(
                os.environ["FAKE_TRAIN_HANG"]).exists():
            Path(os.environ["FAKE_TRAIN_HANG"]).write_text(str(os.getpid()))
            time.sleep(600)  # killed here by the test
    return {"valid_accuracy": accuracy, "novelty_auroc": auroc, "run_id": run.info.run_id}


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_project.forget_mlflow_state()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    tiny_project.forget_mlflow_state()


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Path:
    """The system temporary directory, pointed at an empty folder (for subprocesses too)."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # gettempdir() caches its answer
    return folder


def left_in(folder: Path) -> list[str]:
    """What a study left in ``folder``, less TensorFlow autograph's generated sources, which
    TensorFlow itself deletes at interpreter exit."""
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith("__autograph_generated_file"))


def enqueue(cfg: TuneParams, embeddings: list[int]) -> None:
    study = optuna.create_study(study_name=cfg.study, directions=["maximize", "maximize"],
                                storage=tune.open_storage(cfg.storage, 0, 0),
                                load_if_exists=True)
    for m in embeddings:
        study.enqueue_trial({"embedding": m, "lambda_energy": 1e-3})


@pytest.mark.parametrize("storage", ["sqlite:///optuna/study.db", "optuna/study.log"])
def test_study_prunes_resumes_and_reports(tracking, tmp_path, storage):
    cfg = TuneParams(storage=storage, n_trials=4,
                     pruning=PruningParams(percentile=50, n_startup_trials=2, n_warmup_epochs=0))
    enqueue(cfg, [32, 64, 8, 64])   # trial 2 (m = 8) is below the median at epoch 0
    lines: list[str] = []
    study = tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lines.append)
    assert lines[-1].startswith("trial 3 COMPLETE [4/4]") and "embedding=64" in lines[-1]
    assert any(line.startswith("trial 2 PRUNED [3/4]") for line in lines)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                               TrialState.PRUNED, TrialState.COMPLETE]
    assert len(study.trials[2].user_attrs[tune.CURVE_ATTR]) == 1  # stopped after one epoch

    # every trial is a nested MLflow run of the one study run, tagged with its state
    parent = study.user_attrs[tune.RUN_ATTR]
    runs = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent}'",
                              output_format="list")
    assert sorted(r.data.tags["optuna.trial"] for r in runs) == ["0", "1", "2", "3"]
    pruned = next(r for r in runs if r.data.tags["optuna.trial"] == "2")
    assert pruned.data.tags["optuna.state"] == "PRUNED" and pruned.info.status == "KILLED"

    # a second invocation with a larger n_trials resumes the same study and MLflow run
    cfg.n_trials = 5
    study = tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lambda _: None)
    assert tune.finished_count(study) == 5 and study.user_attrs[tune.RUN_ATTR] == parent
    assert tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lambda _: None
                          ).trials[-1].number == 4  # done: nothing more runs

    picked = tune.write_reports(study, cfg, best_params=tmp_path / "best.yaml",
                                trials_file=tmp_path / "trials.csv",
                                figure=tmp_path / "pareto.png")
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["model"]["embedding"] == picked.params["embedding"] == 64
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert "PRUNED" in (tmp_path / "trials.csv").read_text()


def test_a_continued_study_does_not_repeat_its_first_trial(tracking, tmp_path):
    cfg = TuneParams(storage="optuna/study.log", n_trials=1, pruning=None)
    first = tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lambda _: None).trials[0]
    cfg.n_trials = 2
    second = tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lambda _: None).trials[1]
    assert second.params != first.params


HANG_SCRIPT = textwrap.dedent("""
    import sys, mlflow
    sys.path.insert(0, sys.argv[3])
    from test_tune import PARAMS, fake_train
    from varnet.training import tune
    mlflow.set_tracking_uri(sys.argv[1])
    cfg = tune.TuneParams(storage=sys.argv[2], n_trials=3, pruning=None)
    tune.run_study(cfg, PARAMS, train_fn=fake_train)
""")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("storage", ["sqlite:///optuna/study.db", "optuna/study.log"])
def test_killed_trial_is_failed_and_study_resumes(tracking, tmp_path, temp_dir, storage):
    cfg = TuneParams(storage=storage, n_trials=3, pruning=None)
    enqueue(cfg, [16, 64, 32])
    marker = tmp_path / "hanging"
    env = {**os.environ, "FAKE_TRAIN_HANG": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", HANG_SCRIPT, tracking, storage,
                             str(Path(__file__).parent)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the worker never reached trial 1"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    storage_obj = tune.open_storage(storage, 0, 0)
    killed = optuna.load_study(study_name=cfg.study, storage=storage_obj).trials[1]
    assert killed.state == TrialState.RUNNING  # what a SIGKILL leaves behind
    assert left_in(temp_dir) == [Path(killed.user_attrs[tune.DIR_ATTR]).name]

    study = tune.run_study(cfg, PARAMS, train_fn=fake_train, log=lambda _: None)
    states = {t.number: t.state for t in study.trials}
    assert states[1] == TrialState.FAIL
    assert "died" in study.trials[1].user_attrs["fail_reason"]
    assert tune.finished_count(study) == 3
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].params == killed.params
    assert retried[0].state == TrialState.COMPLETE
    run = mlflow.get_run(killed.user_attrs[tune.RUN_ATTR])
    assert run.info.status == "FAILED" and run.data.tags["optuna.state"] == "FAIL"
    assert left_in(temp_dir) == []  # the dead worker's trial folder went with its trial


@pytest.mark.timeout(300)
def test_varnet_tune_trains_real_trials_on_a_journal_file(tmp_path, capsys):
    """The command end to end: train_variant trials, nested MLflow runs, the three reports."""
    from varnet.cli import main as varnet_main

    params = tiny_project.write_project(tmp_path)
    params["tune"]["pruning"] = {"percentile": 50, "n_startup_trials": 1, "n_warmup_epochs": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with tiny_project.inside(tmp_path):
        assert varnet_main(["tune", "--storage", "optuna/tiny.log", "--n-trials", "2"]) == 0
        study = optuna.load_study(study_name="varnet-tune",
                                  storage=tune.open_storage("optuna/tiny.log", 0, 0))
        runs = mlflow.search_runs(experiment_names=["varnet"], output_format="list")
    assert tune.finished_count(study) == 2
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].values[1] > 0
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")
                == study.user_attrs[tune.RUN_ATTR]]
    assert len(children) == 2 and all("data.data/processed/sequences.npz" in r.data.tags
                                      for r in children)
    best = yaml.safe_load((tmp_path / tune.BEST_PARAMS_FILE).read_text())
    assert best["model"]["embedding"] in (8, 16, 32, 64)
    assert (tmp_path / tune.PARETO_FIGURE).is_file()
    assert "dvc exp run -S model.embedding=" in capsys.readouterr().out


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Ends a real trial after one epoch with ``error``: a pruning or a failure mid-training."""

    def __init__(self, error: BaseException):
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch, logs=None):
        raise self.error


@pytest.mark.timeout(300)
def test_no_trial_folder_is_left_in_the_temporary_directory(tmp_path, temp_dir):
    """A complete, a failed and a pruned trial of real training: each trial's folder (the model,
    its checkpoint) is removed, and nothing else is left in the system temporary directory."""
    from varnet.training.train import train_variant

    endings = {1: VarnetError("simulated failure"), 2: optuna.TrialPruned("simulated pruning")}

    def train_fn(name, params, out_dir, *, callbacks=(), **kwargs):
        number = callbacks[0].trial.number
        assert out_dir.parent == temp_dir and out_dir.name.startswith(f"varnet-trial-{number}-")
        extra = [StopAfterFirstEpoch(endings[number])] if number in endings else []
        return train_variant(name, params, out_dir, callbacks=[*callbacks, *extra], **kwargs)

    params = tiny_project.write_project(tmp_path)
    cfg = TuneParams(storage="optuna/study.log", n_trials=3, pruning=None, epochs=2)
    with tiny_project.inside(tmp_path):
        study = tune.run_study(cfg, params, train_fn=train_fn, log=lambda _: None)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                               TrialState.PRUNED]
    assert left_in(temp_dir) == []
