"""Metrics: the paper's novelty protocol, per-class recall, per-star aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from varnet.scoring import metrics


def test_confusion_matrix_is_normalised_by_true_class_and_nan_for_absent_classes():
    labels = np.array([0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 1, 1, 1])
    matrix = metrics.confusion_matrix(labels, predicted, n_classes=3)
    np.testing.assert_allclose(matrix[0], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(matrix[1], [0, 1, 0])
    assert np.isnan(matrix[2]).all()
    counts = metrics.confusion_matrix(labels, predicted, n_classes=3, normalize=False)
    assert counts.sum() == 5


def test_per_class_recall_and_accuracy():
    labels = np.array([0, 0, 2, 2, 2, 2])
    predicted = np.array([0, 1, 2, 2, 2, 0])
    recall = metrics.per_class_recall(labels, predicted, classes=("A", "B", "C"))
    assert recall["A"] == 0.5 and recall["C"] == 0.75 and np.isnan(recall["B"])
    assert metrics.accuracy(labels, predicted) == pytest.approx(4 / 6)


def test_novelty_scores_flag_energies_at_or_above_the_threshold():
    energy = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 9.0])
    novel = np.array([False, False, False, True, False, True])
    scores = metrics.novelty_scores(energy, novel, {"80": 5.0, "95": 9.0})
    # at 5.0: flagged = {5, 5, 9}: TP 2, FP 1, FN 0
    assert scores["p80_precision"] == pytest.approx(2 / 3)
    assert scores["p80_recall"] == 1.0
    assert scores["p80_f1"] == pytest.approx(0.8)
    # at 9.0: flagged = {9}: TP 1, FP 0, FN 1
    assert (scores["p95_precision"], scores["p95_recall"]) == (1.0, 0.5)
    assert scores["auroc"] == pytest.approx(7.5 / 8)
    assert (scores["n_known"], scores["n_novel"]) == (4, 2)


def test_infinite_energies_rank_highest_and_nan_is_an_error():
    energy = np.array([0.0, 1.0, np.inf, 2.0])
    novel = np.array([False, False, True, True])
    assert metrics.novelty_scores(energy, novel, {"95": 1.5})["auroc"] == 1.0
    with pytest.raises(ValueError, match="NaN"):
        metrics.novelty_scores(np.array([0.0, np.nan]), np.array([False, True]), {})


def test_star_means_keep_first_appearance_order_and_average_rows():
    star = np.array(["b", "a", "b", "c", "a"])
    gamma = np.array([[1.0, 0.0], [0.2, 0.8], [0.0, 1.0], [0.6, 0.4], [0.4, 0.6]])
    energy = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    ids, means = metrics.star_means(star, gamma=gamma, energy=energy)
    assert ids.tolist() == ["b", "a", "c"]
    np.testing.assert_allclose(means["gamma"], [[0.5, 0.5], [0.3, 0.7], [0.6, 0.4]])
    np.testing.assert_allclose(means["energy"], [2.0, 4.0, 4.0])
    assert means["n_sequences"].tolist() == [2, 2, 1]
    assert metrics.star_labels(star, np.array([1, 0, 1, -1, 0])).tolist() == [1, 0, -1]
    with pytest.raises(ValueError, match="different labels"):
        metrics.star_labels(star, np.array([1, 0, 2, -1, 0]))


def test_level_metrics_use_known_rows_for_accuracy_and_known_plus_novel_for_novelty():
    label = np.array([0, 1, 1, -1, -1])
    gamma = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.5, 0.5], [0.5, 0.5]])
    energy = np.array([0.0, 0.1, 0.2, 5.0, 0.05])
    result = metrics.level_metrics(label, gamma, energy, {"95": 1.0},
                                   known=label >= 0, classes=("A", "B"))
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["recall"] == {"A": 1.0, "B": 0.5}
    assert result["novelty"]["p95_recall"] == 0.5 and result["novelty"]["p95_precision"] == 1.0
    assert result["n_known"] == 3


def test_released_run_novelty_scores_are_reproduced(shared_data):
    """docs/method.md §6: the released energies give the published P/R/F1 at both thresholds."""
    path = shared_data / "tsang2019-reference" / "energies.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with np.load(path, allow_pickle=False) as data:
        train, known, unknown = data["energy_train"], data["energy_known"], data["energy_unknown"]
    thresholds = {p: float(np.percentile(train, float(p))) for p in ("80", "95")}
    assert thresholds["80"] == pytest.approx(-38.71, abs=0.01)
    assert thresholds["95"] == pytest.approx(-33.82, abs=0.01)
    energy = np.concatenate([known, unknown])
    novel = np.r_[np.zeros(known.size, bool), np.ones(unknown.size, bool)]
    scores = metrics.novelty_scores(energy, novel, thresholds)
    published = {"p80_precision": 0.702, "p80_recall": 0.895, "p80_f1": 0.787,
                 "p95_precision": 0.890, "p95_recall": 0.734, "p95_f1": 0.805}
    for key, value in published.items():
        assert round(scores[key], 3) == value, key


def test_reconstruction_r2_is_zero_for_predicting_zero_and_one_for_a_copy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50))
    weight = rng.uniform(0.5, 2.0, size=(3, 50))
    assert np.allclose(metrics.reconstruction_r2(x, np.zeros_like(x), weight), 0.0)
    assert np.allclose(metrics.reconstruction_r2(x, x, weight), 1.0)
    half = metrics.reconstruction_r2(x, 0.5 * x, weight)
    assert np.allclose(half, 0.75)                     # 1 - 0.25: residual is a quarter of x²
    heavy = weight.copy()
    heavy[:, :25] *= 100                               # the first half dominates the score
    x_hat = np.concatenate([x[:, :25], np.zeros((3, 25))], axis=1)
    assert (metrics.reconstruction_r2(x, x_hat, heavy) > 0.95).all()
    assert np.isnan(metrics.reconstruction_r2(x, x, np.zeros_like(x))).all()
