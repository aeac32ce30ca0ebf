"""evaluate and baseline on small fake model directories (the predictions.npz contract)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from varnet.core import files, provenance
from varnet.core.errors import VarnetError
from varnet.core.schema import ModelFolder
from varnet.core.taxonomy import CLASSES
from varnet.evaluation import baseline, evaluate
from varnet.scoring import calibration
from varnet.scoring.calibration import Calibration

K = len(CLASSES)
VARIANTS = {"joint": {"mode": "joint", "photometric": False},
            "sequential": {"mode": "sequential", "photometric": False},
            "joint-phot": {"mode": "joint", "photometric": True}}


def fake_model_dir(root: Path, name: str, seed: int, n_stars: int = 72, per_star: int = 3,
                   n_var_stars: int = 20) -> Path:
    """A trained variant's files with separable classes and high VAR energies.

    Every class has train, valid and test stars (blocks of K stars in turn); each star has
    ``per_star`` sequences; the VAR stars alternate between novel_valid and novel_test; the
    embedding is noise and the aux features (fake_sequences) carry the class.
    """
    rng = np.random.default_rng(seed)
    star_label = np.arange(n_stars) % K
    star_subset = np.array(["train", "valid", "test"])[np.arange(n_stars) // K % 3]
    label = np.repeat(np.r_[star_label, -np.ones(n_var_stars, int)], per_star)
    novel = np.array(["novel_valid", "novel_test"])[np.arange(n_var_stars) % 2]
    subset = np.repeat(np.r_[star_subset, novel], per_star)
    star_id = np.repeat([f"S{i:03d}" for i in range(n_stars + n_var_stars)], per_star)
    n = label.size
    logits = rng.normal(size=(n, K))
    logits[label >= 0, label[label >= 0]] += 3.0
    gamma = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    energy = rng.normal(size=n) + np.where(label < 0, 3.0, 0.0)
    class_energy = rng.normal(size=(n, K))
    model_dir = root / name
    model_dir.mkdir(parents=True)
    files.write_npz(model_dir / "predictions.npz", index=np.arange(n), subset=subset,
                 label=label, star_id=star_id, gamma=gamma, energy=energy,
                 class_energy=class_energy, embedding=rng.normal(size=(n, 4)),
                 features=rng.normal(size=(n, 6)), reconstruction=rng.normal(size=(n, 5)),
                 recon_r2=rng.uniform(0.2, 0.9, size=n))
    train, valid = subset == "train", subset == "valid"
    files.write_json(calibration.novelty_thresholds(star_id[train], energy[train], [80, 95]),
                     model_dir / "thresholds.json")
    Calibration.fit(star_id[valid], label[valid], gamma[valid], energy[valid],
                    class_energy[valid]).save(model_dir / "calibration.npz")
    files.write_json({**VARIANTS[name], "model": {"embedding": 4}}, model_dir / "variant.json")
    pd.DataFrame({"epoch": np.arange(5), "val_ae_loss": np.linspace(2, 1, 5),
                  "val_accuracy": np.linspace(0.2, 0.9, 5)}).to_csv(model_dir / "history.csv",
                                                                    index=False)
    return model_dir


def fake_sequences(n: int, label: np.ndarray) -> dict[str, np.ndarray]:
    aux = np.column_stack([13.0 + label, 0.1 * np.ones(n), 0.5 * label]).astype(np.float32)
    lag = np.r_[np.full(4, 0.2), 0.0]
    X = np.stack([np.tile(lag, (n, 1)), np.sin(np.arange(5) + label[:, None])], axis=-1)
    return {"aux": aux, "phot": np.full((n, 3), np.nan, np.float32), "X": X.astype(np.float32),
            "period": np.ones(n)}


def record_training_data(model_dir: Path, data: dict[str, str] | None) -> None:
    """What `varnet train` records in variant.json: the data fingerprint it trained on."""
    variant = files.read_json(model_dir / "variant.json")
    variant.pop("data", None)
    files.write_json(variant if data is None else {**variant, "data": data},
                     model_dir / "variant.json")


def evaluate_args(root: Path, models: Path, reports: Path, no_mlflow: bool = True
                  ) -> argparse.Namespace:
    return argparse.Namespace(models=models, reports=reports, no_mlflow=no_mlflow,
                              sequences=root / "sequences.npz", split=root / "split.npz")


@pytest.fixture()
def workspace(tmp_path):
    models = tmp_path / "models"
    for seed, name in enumerate(("joint", "sequential")):
        fake_model_dir(models, name, seed)
    label = files.read_npz(models / "joint" / "predictions.npz")["label"]
    files.write_npz(tmp_path / "sequences.npz", **fake_sequences(len(label), label))
    files.write_npz(tmp_path / "split.npz", train=np.flatnonzero(label >= 0))
    data = provenance.data_fingerprint(tmp_path / "sequences.npz", tmp_path / "split.npz")
    for name in ("joint", "sequential"):
        record_training_data(models / name, data)
    params = {"train": {"variants": VARIANTS}, "split": {"by": "star"},
              "evaluate": {"percentiles": [80, 95]}}
    return tmp_path, models, params


def test_evaluate_writes_metrics_table_figures_and_dvc_plots(workspace, capsys):
    root, models, params = workspace
    reports = root / "reports"
    assert evaluate.run(evaluate_args(root, models, reports), params) == 0

    result = json.loads((reports / "metrics.json").read_text())
    assert set(result) == {"joint", "sequential"}          # joint-phot is not trained: skipped
    assert result["joint"]["provenance"] == {
        "data": provenance.data_fingerprint(root / "sequences.npz", root / "split.npz"),
        "model": {"predictions.npz": hashlib.md5(
            (models / "joint" / "predictions.npz").read_bytes()).hexdigest()}}
    headline = json.loads((reports / "headline.json").read_text())
    star = result["joint"]["star"]
    assert headline["joint"] == {
        "accuracy": result["joint"]["sequence"]["accuracy"],
        "star_accuracy": star["accuracy"],
        "novelty_auroc": result["joint"]["sequence"]["novelty"]["auroc"],
        "median_reconstruction_r2": result["joint"]["sequence"]["median_reconstruction_r2"],
        "star_false_alarm_rate_alpha0.05": star["conformal"]["alpha0.05_false_alarm_rate"],
        "star_ece_calibrated": star["calibration"]["ece_calibrated"]}
    assert "joint-phot: not trained" in capsys.readouterr().out
    for level in ("sequence", "star"):
        m = result["joint"][level]
        assert 0.5 < m["accuracy"] <= 1 and set(m["recall"]) == set(CLASSES)
        assert {"p80_f1", "p95_precision", "auroc", "auprc"} <= set(m["novelty"])
        assert m["novelty"]["auroc"] > 0.9
    # everything reported is read from test + novel_test only
    assert result["joint"]["sequence"]["n_known"] == 24 * 3
    assert result["joint"]["star"]["n_known"] == 24
    assert result["joint"]["star"]["novelty"]["n_novel"] == 10
    assert result["joint"]["star"]["novelty"]["n_known"] == 24
    for level in ("sequence", "star"):
        conformal = result["joint"][level]["conformal"]
        assert {"alpha0.01_false_alarm_rate", "alpha0.05_recall", "alpha0.1_false_alarm_se"
                } <= set(conformal)
        assert conformal["alpha0.1_recall"] > 0.5   # VAR energies are 3 sigma higher
        assert result["joint"][level]["calibration"]["temperature"] > 0

    table = (reports / "table2.md").read_text()
    assert "## Per sequence" in table and "## Per star" in table
    assert "98.8% (99.1%)" in table and "0.885 (0.898)" in table   # the paper's numbers
    assert "RF accuracy, embedding + aux" in table
    assert "Reconstruction R² (median)" in table
    assert "Conformal α = 0.05: false-alarm rate" in table and "ECE, calibrated" in table
    assert "Every number is read from the test set" in table
    assert 0.2 < result["joint"]["sequence"]["median_reconstruction_r2"] < 0.9
    for name in ("confusion_joint.png", "energy_sequential.png", "ae_loss.png",
                 "reconstruction_joint.png", "reliability_joint.png"):
        assert (reports / "figures" / "evaluation" / name).stat().st_size > 1000
    confusion = pd.read_csv(reports / "plots" / "confusion" / "joint.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 72
    assert set(confusion["actual"]) <= set(CLASSES)
    assert list(pd.read_csv(reports / "plots" / "ae_loss" / "joint.csv").columns) == [
        "epoch", "val_ae_loss"]


def test_star_level_averages_gamma_and_energy_within_a_subset(tmp_path):
    predictions = files.read_npz(fake_model_dir(tmp_path, "joint", 3) / "predictions.npz")
    stars = evaluate.star_level(predictions, ("test", "novel_test"))
    rows = predictions["star_id"] == "S017"
    assert stars["star_id"][1] == "S017" and stars["subset"][1] == "test"
    np.testing.assert_allclose(stars["gamma"][1], predictions["gamma"][rows].mean(axis=0))
    np.testing.assert_allclose(stars["class_energy"][1],
                               predictions["class_energy"][rows].mean(axis=0))
    assert stars["energy"][1] == pytest.approx(predictions["energy"][rows].mean())
    assert stars["label"][1] == 1
    assert (stars["label"][stars["subset"] == "novel_test"] == -1).all()


def test_missing_threshold_for_a_requested_percentile_is_a_clear_error(workspace):
    root, models, params = workspace
    params = {**params, "evaluate": {"percentiles": [90]}}
    with pytest.raises(VarnetError, match="thresholds.json.*90"):
        evaluate.run(evaluate_args(root, models, root / "r"), params)


def test_no_trained_variant_is_a_clear_error(tmp_path):
    args = argparse.Namespace(models=tmp_path / "none", reports=tmp_path / "r", no_mlflow=True)
    with pytest.raises(VarnetError, match="no trained variant"):
        evaluate.run(args, {"train": {"variants": VARIANTS}})


def test_successive_halving_keeps_a_third_on_three_times_the_sequences_grouped_by_star():
    """The default search: 9 combinations, the best 3 on 3x the rows, the best on 9x (nearly
    all); its folds keep each star's sequences on one side, as the full grid's do."""
    from varnet.core.config import BaselineParams

    rng = np.random.default_rng(0)
    star = np.repeat(np.arange(150), 2)
    label = star % 5
    x = np.column_stack([label + rng.normal(0, 0.3, star.size), rng.normal(size=(star.size, 3))])
    cfg = BaselineParams(n_estimators=[20], criterion=["gini"], max_features=[0.25, 0.5, 1.0],
                         min_samples_leaf=[1, 2, 4], cv=3, n_jobs=1)
    forest, search = baseline.fit_forest(x, label, star, cfg)
    rounds = baseline.search_rounds(search, star.size)
    assert [c for c, _ in rounds] == [9, 3, 1]
    assert rounds[2][1] == 3 * rounds[1][1] == 9 * rounds[0][1] > 0.9 * star.size
    for train, test in search.cv.split(x, label, groups=star):
        assert not set(star[train]) & set(star[test])
    assert (forest.predict(x) == label).mean() > 0.95


def test_baseline_reports_both_feature_sets_and_feeds_table2(workspace):
    root, models, params = workspace
    params = {**params, "baseline": {"n_estimators": [50], "criterion": ["gini"],
                                     "max_features": [0.2, 0.3, 0.5], "min_samples_leaf": [1],
                                     "cv": 2, "n_jobs": 1, "search": "grid"}}
    reports = root / "reports"
    args = argparse.Namespace(models=models, sequences=root / "sequences.npz",
                              split=root / "split.npz", reports=reports)
    assert baseline.run(args, params) == 0
    result = json.loads((reports / "baseline.json").read_text())
    joint = result["joint"]
    assert joint["provenance"] == {
        "data": provenance.data_fingerprint(root / "sequences.npz", root / "split.npz"),
        "model": provenance.model_fingerprint(ModelFolder(models / "joint"))}
    # the random embedding carries no class; the aux features carry it perfectly
    assert joint["embedding_aux"]["sequence"]["test_accuracy"] == 1.0
    assert joint["embedding_aux"]["star"]["test_accuracy"] == 1.0
    assert joint["embedding"]["sequence"]["test_accuracy"] < 0.5
    assert joint["embedding_aux"]["n_features"] == 4 + 3
    n_train = int((files.read_npz(models / "joint" / "predictions.npz")["subset"]
                   == "train").sum())
    assert joint["embedding_aux"]["search_rounds"] == [[3, n_train]]  # every one on all
    assert set(joint["embedding"]["best_params"]) == {"n_estimators", "criterion",
                                                      "max_features", "min_samples_leaf"}
    assert "| joint | embedding_aux | 100.0% |" in (reports / "baseline.md").read_text()

    evaluate.run(evaluate_args(root, models, reports), params)
    assert rf_cells(reports) == ("100.0%", "100.0%")


def rf_cells(reports: Path) -> tuple[str, str]:
    """Table 2's per-sequence "RF accuracy, embedding + aux" of joint and sequential."""
    row = next(line for line in (reports / "table2.md").read_text().splitlines()
               if line.startswith("| RF accuracy, embedding + aux"))
    cells = [cell.strip() for cell in row.split("|")]
    return cells[2], cells[4]


def rf_entry(accuracy: float, inputs: dict | None) -> dict:
    """A baseline.json entry of one variant; ``inputs`` its provenance (None: not recorded)."""
    levels = {"sequence": {"test_accuracy": accuracy}, "star": {"test_accuracy": accuracy}}
    entry = {"embedding": levels, "embedding_aux": levels}
    return entry if inputs is None else {**entry, "provenance": inputs}


def test_a_baseline_of_other_inputs_is_left_out_of_table2(workspace, capsys):
    """Issue 12, item 11: another survey's or a stale reports/baseline.json never reaches
    Table 2; what is left out is printed and noted under the table, naming the file."""
    root, models, params = workspace
    reports = root / "reports"
    data = provenance.data_fingerprint(root / "sequences.npz", root / "split.npz")
    joint = {"data": data, "model": provenance.model_fingerprint(ModelFolder(models / "joint"))}

    # as the committed file was: no record of its inputs
    files.write_json({"joint": rf_entry(0.5, None), "sequential": rf_entry(0.7, None)},
                     reports / "baseline.json")
    evaluate.run(evaluate_args(root, models, reports), params)
    assert rf_cells(reports) == ("—", "—")
    out = capsys.readouterr().out
    assert f"{reports / 'baseline.json'}: RF rows of `joint` left out" in out
    assert "no fingerprint recorded" in out

    # joint's entry is current; sequential's came from another survey's sequences.npz
    other_survey = {**data, "sequences.npz": "0" * 32}
    files.write_json({"joint": rf_entry(0.5, joint),
                      "sequential": rf_entry(0.7, {"data": other_survey, "model": joint})},
                     reports / "baseline.json")
    evaluate.run(evaluate_args(root, models, reports), params)
    assert rf_cells(reports) == ("50.0%", "—")
    note = (f"{reports / 'baseline.json'}: RF rows of `sequential` left out, not computed from "
            f"the data and training evaluated here (sequences.npz recorded 00000000, now "
            f"{data['sequences.npz'][:8]}")
    assert note in capsys.readouterr().out and note in (reports / "table2.md").read_text()

    # joint retrained since the baseline ran: its predictions.npz is not the one the RF read
    fake_model_dir(root / "retrained", "joint", seed=7)
    (root / "retrained" / "joint" / "predictions.npz").replace(models / "joint" / "predictions.npz")
    evaluate.run(evaluate_args(root, models, reports), params)
    assert rf_cells(reports) == ("—", "—")
    assert "RF rows of `joint` left out" in capsys.readouterr().out


def test_a_variant_trained_on_other_data_is_left_out(workspace, capsys):
    root, models, params = workspace
    reports = root / "reports"
    data = provenance.data_fingerprint(root / "sequences.npz", root / "split.npz")
    record_training_data(models / "sequential", {**data, "split.npz": "f" * 32})
    evaluate.run(evaluate_args(root, models, reports), params)
    assert set(json.loads((reports / "metrics.json").read_text())) == {"joint"}
    note = (f"`sequential` left out: {models / 'sequential' / 'variant.json'} does not match the "
            f"data: split.npz recorded ffffffff, now {data['split.npz'][:8]}")
    assert note in capsys.readouterr().out and note in (reports / "table2.md").read_text()

    record_training_data(models / "joint", None)   # trained before provenance was recorded
    with pytest.raises(VarnetError, match="no variant under .* was trained on .*"
                                          "joint.*no fingerprint recorded.*sequential"):
        evaluate.run(evaluate_args(root, models, reports), params)


def test_baseline_rejects_unknown_variants(workspace):
    root, models, params = workspace
    params = {**params, "baseline": {"variants": ["jiont"]}}
    args = argparse.Namespace(models=models, sequences=root / "s.npz", reports=root / "r")
    with pytest.raises(VarnetError, match="jiont"):
        baseline.run(args, params)


def _exp(rev: str, name: str | None, embedding: int, metrics: dict | None) -> dict:
    """One state of `dvc exp show --json` (DVC 3 layout)."""
    return {"rev": rev, "name": name, "error": None, "experiments": None,
            "data": {"rev": rev, "params": {"params.yaml": {"data": {
                "model": {"embedding": embedding}}}},
                "metrics": {} if metrics is None else {"reports/headline.json": {"data": metrics}},
                "deps": {}, "outs": {}, "meta": {}}}


def _metrics(accuracy: float) -> dict:
    """reports/headline.json of one experiment (the DVC metrics file, evaluate.headline)."""
    return {"joint": {"accuracy": accuracy, "star_accuracy": 0.75, "novelty_auroc": 0.9,
                      "median_reconstruction_r2": 0.7, "star_ece_calibrated": 0.05}}


def test_sweep_tabulates_finished_experiments_by_embedding(tmp_path, capsys):
    from varnet.evaluation import sweep

    baseline = _exp("a" * 40, "main", 16, _metrics(0.96))
    other_split = _exp("e" * 40, "by-sequence", 16, _metrics(0.99))
    other_split["data"]["params"]["params.yaml"]["data"]["split"] = {"by": "sequence"}
    baseline["experiments"] = [
        {"revs": [_exp("b" * 40, "exp-64", 64, _metrics(0.95))], "executor": None,
         "name": "exp-64"},
        {"revs": [_exp("c" * 40, "exp-8", 8, _metrics(0.93))], "executor": None,
         "name": "exp-8"},
        {"revs": [_exp("d" * 40, "exp-32", 32, None)], "name": "exp-32",
         "executor": {"state": "queued", "name": "dvc-task", "local": None}},
        {"revs": [other_split], "executor": None, "name": "by-sequence"},
    ]
    exp_json = tmp_path / "exps.json"
    exp_json.write_text(json.dumps([_exp("workspace", None, 16, _metrics(0.96)), baseline]))
    out = tmp_path / "sweep.md"
    args = argparse.Namespace(param="model.embedding", exp_json=exp_json, out=out)
    assert sweep.run(args, {}) == 0
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| exp-", "| main"))]
    assert rows == ["| exp-8 | 8 | 0.930 / 0.750 / 0.900 / 0.700 |",
                    "| main | 16 | 0.960 / 0.750 / 0.900 / 0.700 |",
                    "| exp-64 | 64 | 0.950 / 0.750 / 0.900 / 0.700 |"]
    assert "- exp-32: queued (model.embedding = 32)" in table
    assert "- by-sequence: also changes split.by" in table  # not a row: it is another sweep
    assert "exp-8" in capsys.readouterr().out


def test_evaluation_is_logged_into_the_variants_mlflow_run(workspace, monkeypatch):
    import mlflow

    from varnet.core import tracking

    root, models, params = workspace
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    params = {**params, "mlflow": {"experiment": "test-evaluate"}}
    tracking.configure(params)
    with mlflow.start_run() as run:
        pass
    files.write_json({"run_id": run.info.run_id}, models / "joint" / "run.json")
    assert evaluate.run(evaluate_args(root, models, root / "reports", no_mlflow=False),
                        params) == 0
    logged = mlflow.MlflowClient().get_run(run.info.run_id)
    metrics = json.loads((root / "reports" / "metrics.json").read_text())["joint"]
    assert logged.data.metrics["eval/sequence/accuracy"] == metrics["sequence"]["accuracy"]
    assert logged.data.metrics["eval/star/novelty/p95_f1"] == metrics["star"]["novelty"]["p95_f1"]
    assert logged.info.status == "FINISHED"
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_joint.png", "evaluation/table2.md"} <= names
