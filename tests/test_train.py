"""`varnet train`: artefacts, MLflow run, resume after an interruption, CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from varnet import cli
from varnet.core import files, schema, taxonomy
from varnet.core.schema import MODEL_FILES, ModelFolder
from varnet.prepare.split import split_indices
from varnet.scoring.calibration import Calibration
from varnet.scoring.inference import Scorer
from varnet.training.train import load_data, train_variant

T = 20
CLASSES_USED = (2, 5, 7)  # ECL, RRAB, SR: enough for a split, quick to learn


def tiny_sequences(seed: int = 0, per_class: int = 24, n_novel: int = 12):
    """SEQUENCE_ARRAYS for three shapes (sine, sawtooth, double sine) plus random-walk novels."""
    rng = np.random.default_rng(seed)
    shapes = {2: lambda p: np.sin(2 * np.pi * p), 5: lambda p: 2 * p - 1,
              7: lambda p: np.cos(4 * np.pi * p)}
    log_periods = {2: -0.3, 5: -0.2, 7: 1.8}
    rows = []
    for k in CLASSES_USED:
        for i in range(per_class):
            phase = np.sort(rng.uniform(0, 1, T))
            rows.append((shapes[k](phase) + rng.normal(0, 0.1, T), phase, k, f"{k}-{i // 2}",
                         log_periods[k] + rng.normal(0, 0.05)))
    for i in range(n_novel):
        phase = np.sort(rng.uniform(0, 1, T))
        rows.append((np.cumsum(rng.normal(size=T)), phase, -1, f"var-{i}", rng.uniform(-1, 2)))
    mags, phases, labels, stars, log_p = map(np.asarray, zip(*rows, strict=True))
    lag = np.diff(phases, axis=1, append=phases[:, -1:]) * 10 ** log_p[:, None]
    norm = (mags - mags.mean(1, keepdims=True)) / mags.std(1, keepdims=True)
    n = len(labels)
    phot = np.c_[labels + rng.normal(0, 0.1, n), rng.normal(size=n), rng.normal(size=n)]
    phot[::6, 0] = np.nan
    return {"X": np.stack([lag, norm], -1).astype(np.float32),
            "weight": rng.uniform(0.5, 2.0, (n, T)).astype(np.float32),
            "aux": np.c_[rng.normal(13, 1, n), rng.uniform(0.1, 1, n), log_p].astype(np.float32),
            "phot": phot.astype(np.float32), "label": labels.astype(np.int16),
            "star_id": stars.astype(str), "band": np.full(n, "V"), "period": 10 ** log_p,
            "classes": np.asarray(taxonomy.CLASSES)}


@pytest.fixture
def project(tmp_path, monkeypatch) -> dict:
    """A project directory with tiny sequences and a split, MLflow redirected into it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    arrays = tiny_sequences()
    files.write_npz(schema.SEQUENCES_FILE, **arrays)
    files.write_npz(schema.SPLIT_FILE, **split_indices(arrays["label"], arrays["star_id"],
                                                       n_splits=4))
    params = {
        "model": {"embedding": 4, "gru_units": 4},
        "train": {"epochs": 3, "estimation_epochs": 2, "batch_size": 16, "learning_rate": 1e-2,
                  "variants": {"joint": {"mode": "joint"},
                               "sequential-phot": {"mode": "sequential", "photometric": True}}},
        "evaluate": {"percentiles": [80, 95]},
        "mlflow": {"experiment": "varnet-test", "registered_model": "varnet-test"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return params


class Interrupt(keras.callbacks.Callback):
    """Stands in for a kill: raises after a given (global) epoch has been checkpointed."""

    def __init__(self, after_epochs: int):
        super().__init__()
        self.after_epochs = after_epochs
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        if self.seen == self.after_epochs:
            raise KeyboardInterrupt("simulated interruption")


def run_info(run_id: str):
    return mlflow.MlflowClient().get_run(run_id)


def test_joint_writes_its_artefacts_and_a_registered_run(project):
    register = importlib.util.find_spec("varnet.scoring.pyfunc") is not None
    out = Path("models/joint")
    result = train_variant("joint", project, out, register=register)

    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.keras", "gmm.npz", "thresholds.json", "calibration.npz", "predictions.npz",
         "history.csv", "variant.json", "run.json"])  # no checkpoint or staging left behind
    pred = files.read_npz(out / "predictions.npz")
    split = files.read_npz(schema.SPLIT_FILE)
    assert sorted(np.unique(pred["subset"])) == sorted(schema.SPLIT_ARRAYS)
    np.testing.assert_array_equal(np.sort(pred["index"]),
                                  np.sort(np.concatenate([split[s] for s in split])))
    assert pred["gamma"].shape == (len(pred["index"]), len(taxonomy.CLASSES))
    assert pred["features"].shape[1] == 4 + 5 and pred["embedding"].shape[1] == 4
    assert pred["energy"].dtype == np.float64 and np.isfinite(pred["energy"]).all()
    np.testing.assert_array_equal(pred["label"][np.isin(pred["subset"], schema.NOVEL_SUBSETS)],
                                  -1)

    assert files.read_json(out / "variant.json")["trained_bands"] == ["V"]  # scoring names others
    gmm = files.read_npz(out / "gmm.npz")
    assert gmm["sigma"].shape == (8, 9, 9) and gmm["sigma"].dtype == np.float64
    thresholds = files.read_json(out / "thresholds.json")
    train = pred["subset"] == "train"
    assert thresholds["sequence"]["80"] == pytest.approx(np.percentile(pred["energy"][train], 80))
    star_energy = pd.Series(pred["energy"][train]).groupby(pred["star_id"][train]).mean()
    assert thresholds["star"]["80"] == pytest.approx(np.percentile(star_energy, 80))
    assert thresholds["sequence"]["80"] < thresholds["sequence"]["95"]
    # the conformal calibration is the validation set's, never test's
    calibration = Calibration.load(out / "calibration.npz")
    valid = pred["subset"] == "valid"
    np.testing.assert_allclose(calibration["sequence"].energy, pred["energy"][valid])
    assert calibration["star"].energy.size == np.unique(pred["star_id"][valid]).size

    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]
    assert {"ae_loss", "ce_loss", "energy_loss", "val_accuracy", "time_s"} <= set(history)

    # the saved model + frozen GMM reproduce the stored predictions
    scorer = Scorer.load(out)
    arrays = files.read_npz(schema.SEQUENCES_FILE)
    rows = pred["subset"] == "valid"
    scored = scorer.predict(arrays["X"][pred["index"][rows]], arrays["aux"][pred["index"][rows]])
    np.testing.assert_allclose(scored["energy"], pred["energy"][rows], rtol=1e-5)
    empty = scorer.predict(arrays["X"][:0], arrays["aux"][:0])
    assert empty["gamma"].shape == (0, len(taxonomy.CLASSES)) and empty["energy"].shape == (0,)

    run = run_info(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.embedding"] == "4"
    assert run.data.params["variant"] == "joint"
    assert "valid_accuracy" in run.data.metrics and "novelty_auroc" in run.data.metrics
    assert run.data.metrics["threshold_star_p95"] == pytest.approx(thresholds["star"]["95"])
    assert run.data.metrics["temperature_sequence"] == pytest.approx(
        calibration["sequence"].temperature)
    assert sum(run.data.metrics[f"phi_{c}"] for c in taxonomy.CLASSES) == pytest.approx(1.0)
    assert run.data.tags["data.data/processed/sequences.npz"]
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")) == 3
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"gmm.npz", "thresholds.json", "history.csv", "figures"} <= artifacts
    run_json = files.read_json(out / "run.json")
    assert run_json["run_id"] == result["run_id"]
    if register:
        assert run_json["version"] == "1"
        assert mlflow.MlflowClient().get_model_version("varnet-test", "1").run_id == \
            result["run_id"]


def test_interrupted_sequential_training_resumes_in_the_same_run(project):
    out = Path("models/sequential-phot")
    with pytest.raises(KeyboardInterrupt):  # stop after the first estimation-phase epoch
        train_variant("sequential-phot", project, out, callbacks=[Interrupt(4)], register=False)
    state = files.read_json(out / "checkpoint" / "state.json")
    assert state["epoch"] == 3 and state["phase"] == 1
    first_run = state["run_id"]
    assert run_info(first_run).info.status != "RUNNING"

    counter = Interrupt(after_epochs=-1)
    result = train_variant("sequential-phot", project, out, callbacks=[counter], register=False)
    assert counter.seen == 1  # only the one missing estimation epoch was trained
    assert result["run_id"] == first_run
    assert run_info(first_run).info.status == "FINISHED"
    assert not (out / "checkpoint").exists()
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2, 3, 4]
    assert list(history["phase"]) == ["autoencoder"] * 3 + ["estimation"] * 2
    assert history["ae_loss"].iloc[:3].notna().all() and history["ae_loss"].iloc[3:].isna().all()
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(first_run, "loss")]
    assert sorted(steps) == [0, 1, 2, 3, 4]
    pred = files.read_npz(out / "predictions.npz")
    assert pred["features"].shape[1] == 4 + 5 + 3


def test_changed_params_start_over_and_close_the_old_run(project):
    out = Path("models/joint")
    with pytest.raises(KeyboardInterrupt):
        train_variant("joint", project, out, callbacks=[Interrupt(1)], register=False)
    old_run = files.read_json(out / "checkpoint" / "state.json")["run_id"]
    mlflow.MlflowClient().update_run(old_run, status="RUNNING")  # as after a SIGKILL
    project["train"]["lambda_energy"] = 0.01
    project["train"]["epochs"] = 1
    result = train_variant("joint", project, out, register=False)
    assert result["run_id"] != old_run
    assert run_info(old_run).info.status == "FAILED"
    assert run_info(result["run_id"]).info.status == "FINISHED"


def test_a_survey_without_novel_sequences_trains(project, tmp_path):
    """Real surveys mapped onto known classes only (benchmarks/real_surveys.py) have no VAR."""
    split = files.read_npz(schema.SPLIT_FILE)
    files.write_npz(schema.SPLIT_FILE, **{**split, "novel_valid": np.zeros(0, np.int64),
                                          "novel_test": np.zeros(0, np.int64)})
    data = load_data(photometric=True)
    assert len(data["novel_test"].index) == 0
    assert data["novel_test"].inputs["X"].shape[1:] == (T, 2)
    train_variant("joint", project, tmp_path / "models" / "joint", register=False)
    pred = files.read_npz(tmp_path / "models" / "joint" / "predictions.npz")
    assert set(pred["subset"]) == {"train", "valid", "test"}
    assert np.isfinite(pred["energy"]).all()


def test_cli_help_and_unknown_variant(project, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for phrase in ("sequential", "joint-phot", "checkpoint", "configs/paper-gpu.yaml",
                   "dvc exp run"):
        assert phrase in help_text
    assert cli.main(["train", "nope"]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err


def test_varnet_train_without_a_variant_trains_every_one_two_at_a_time(project, capsys):
    """The DVC stage: worker processes, train.jobs at once; `taken` waits for the autoencoder
    it takes; a finished variant is not trained again; a failing one fails the command."""
    variants = {"joint": {"mode": "joint"}, "sequential": {"mode": "sequential"},
                "taken": {"mode": "sequential", "photometric": True,
                          "autoencoder_from": "sequential"}}
    params = {**project, "train": {**project["train"], "variants": variants, "jobs": 2}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["train", "--no-register"]) == 0
    out = capsys.readouterr().out
    for name in variants:
        assert not ModelFolder(Path("models") / name).missing(MODEL_FILES)
        assert f"[{name}] varnet train {name}: valid accuracy" in out
    assert out.index("sequential done") < out.index("starting taken")
    assert files.read_json("models/taken/variant.json")["autoencoder_from"] == "models/sequential"
    assert cli.main(["train", "--no-register"]) == 0  # after an interrupted stage: the rest
    assert capsys.readouterr().out.count("is up to date") == 3

    arrays = files.read_npz(schema.SEQUENCES_FILE)  # every worker now fails on its input
    arrays["X"][files.read_npz(schema.SPLIT_FILE)["train"][0], 0, 1] = np.nan
    files.write_npz(schema.SEQUENCES_FILE, **arrays)
    assert cli.main(["train", "joint", "sequential", "--no-register", "--jobs", "2"]) == 2
    captured = capsys.readouterr()
    assert "training failed for joint, sequential" in captured.err
    assert "[joint] varnet train: error: " in captured.out and "non-finite X" in captured.out


def network_weights(folder: Path) -> list[np.ndarray]:
    return keras.models.load_model(folder / "model.keras", compile=False).get_weights()


@pytest.mark.parametrize(("variant", "stop_after"), [("joint", 1), ("sequential-phot", 4)])
def test_a_resumed_training_is_bit_identical_to_an_uninterrupted_one(project, variant,
                                                                     stop_after):
    """Weights, optimizer moments, dropout seeds and the data order are all restored; the joint
    case stops mid-phase, the sequential one inside the estimation phase."""
    straight = Path("models/straight")
    train_variant(variant, project, straight, register=False)
    resumed = Path("models/resumed")
    with pytest.raises(KeyboardInterrupt):
        train_variant(variant, project, resumed, callbacks=[Interrupt(stop_after)],
                      register=False)
    train_variant(variant, project, resumed, register=False)
    for a, b in zip(network_weights(straight), network_weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    history = [pd.read_csv(f / "history.csv").drop(columns="time_s") for f in (straight, resumed)]
    pd.testing.assert_frame_equal(*history, check_exact=True)


def test_sequential_phot_takes_the_sequential_autoencoder_and_ends_bit_identical(project):
    """`autoencoder_from` skips the autoencoder phase and changes nothing in the result:
    weights, predictions and history equal those of a variant that trained its own."""
    variants = {"sequential": {"mode": "sequential"},
                "own": {"mode": "sequential", "photometric": True},
                "taken": {"mode": "sequential", "photometric": True,
                          "autoencoder_from": "sequential"}}
    params = {**project, "train": {**project["train"], "variants": variants}}
    result = train_variant("taken", params, Path("models/taken"), register=False)
    assert "autoencoder_from" not in files.read_json("models/taken/variant.json")  # none yet
    train_variant("sequential", params, Path("models/sequential"), register=False)
    train_variant("own", params, Path("models/own"), register=False)
    result = train_variant("taken", params, Path("models/taken"), register=False)

    own, taken = Path("models/own"), Path("models/taken")
    for a, b in zip(network_weights(own), network_weights(taken), strict=True):
        np.testing.assert_array_equal(a, b)
    for key, array in files.read_npz(own / "predictions.npz").items():
        np.testing.assert_array_equal(array, files.read_npz(taken / "predictions.npz")[key])
    history = [pd.read_csv(f / "history.csv").drop(columns="time_s") for f in (own, taken)]
    pd.testing.assert_frame_equal(*history, check_exact=True)
    assert files.read_json(taken / "variant.json")["autoencoder_from"] == "models/sequential"
    run = run_info(result["run_id"])
    assert run.data.tags["varnet.autoencoder_from"].startswith("models/sequential (MLflow run ")
    ae_epochs = mlflow.MlflowClient().get_metric_history(result["run_id"], "ae_loss")
    assert [m.step for m in ae_epochs] == list(range(project["train"]["epochs"]))

    changed = {**params, "model": {**params["model"], "dropout": 0.1}}
    train_variant("taken", changed, taken, register=False)
    assert "autoencoder_from" not in files.read_json(taken / "variant.json")


def test_joint_estimation_epochs_train_the_estimation_network_alone_after_the_joint_phase(
        project):
    """The autoencoder leaves the joint phase as a joint-only run leaves it (the estimation
    phase neither trains nor runs it in training mode); only the estimation network moves on,
    and the history shows both phases. Interrupted in the estimation phase, it resumes to the
    same weights."""
    only = Path("models/joint-only")
    train_variant("joint", project, only, register=False)
    params = {**project, "train": {**project["train"], "joint_estimation_epochs": 2}}
    refined = Path("models/joint-refined")
    with pytest.raises(KeyboardInterrupt):
        train_variant("joint", params, refined, callbacks=[Interrupt(4)], register=False)
    train_variant("joint", params, refined, register=False)

    history = pd.read_csv(refined / "history.csv")
    assert list(history["phase"]) == ["joint"] * 3 + ["estimation"] * 2
    networks = [keras.models.load_model(f / "model.keras", compile=False) for f in (only, refined)]
    for layer in networks[0].layers:
        a, b = layer.get_weights(), networks[1].get_layer(layer.name).get_weights()
        same = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert same == (layer.name != "estimation"), layer.name
    predictions = [files.read_npz(f / "predictions.npz") for f in (only, refined)]
    np.testing.assert_array_equal(*(p["reconstruction"] for p in predictions))
    np.testing.assert_array_equal(*(p["embedding"] for p in predictions))
    straight = Path("models/joint-straight")
    train_variant("joint", params, straight, register=False)
    for a, b in zip(network_weights(straight), network_weights(refined), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("variants", "message"), [
    ({"a": {"mode": "joint", "autoencoder_from": "b"}, "b": {"mode": "sequential"}},
     "needs mode sequential"),
    ({"a": {"mode": "sequential", "autoencoder_from": "c"}}, "must name another sequential"),
    ({"a": {"mode": "sequential", "autoencoder_from": "a"}}, "must name another sequential"),
    ({"a": {"mode": "sequential", "autoencoder_from": "b"}, "b": {"mode": "joint"}},
     "must name another sequential")])
def test_a_bad_autoencoder_from_is_a_params_error(variants, message):
    from varnet.core.config import TrainParams, section
    from varnet.core.errors import VarnetError

    with pytest.raises(VarnetError, match=message):
        section(TrainParams, {"train": {"variants": variants}})
