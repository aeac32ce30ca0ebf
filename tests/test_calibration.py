"""Conformal novelty p-values and temperature scaling (scoring.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from varnet.core.schema import LEVELS
from varnet.scoring import calibration, metrics
from varnet.scoring.calibration import Calibration


def test_p_values_count_the_calibration_energies_at_or_above():
    cal = np.array([1.0, 2.0, 3.0, 4.0])
    p = calibration.conformal_p_values(cal, np.array([0.0, 2.0, 2.5, 4.0, 9.0, np.inf, np.nan]))
    np.testing.assert_allclose(p[:6], [5 / 5, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 1 / 5])
    assert np.isnan(p[6])
    assert np.isnan(calibration.conformal_p_values(np.zeros(0), np.array([1.0]))).all()


def test_the_false_alarm_rate_is_at_most_alpha_on_exchangeable_stars():
    """The guarantee: on fresh draws of the calibration distribution P(p <= alpha) <= alpha,
    and it is nearly tight (alpha - 1/(n+1) <= rate), here averaged over many draws."""
    rng = np.random.default_rng(0)
    n_cal, n_test, draws = 200, 400, 200
    rates = {alpha: [] for alpha in (0.01, 0.05, 0.1)}
    for _ in range(draws):
        cal, test = rng.gumbel(size=n_cal), rng.gumbel(size=n_test)
        p = calibration.conformal_p_values(cal, test)
        for alpha in rates:
            rates[alpha].append(np.mean(p <= alpha))
    for alpha, values in rates.items():
        mean = np.mean(values)
        assert alpha - 1 / (n_cal + 1) - 0.003 <= mean <= alpha + 0.003, (alpha, mean)


def test_conformal_scores_give_the_rate_its_error_and_the_recall():
    p = np.array([0.01, 0.2, 0.5, 0.9, 0.02, 0.04, 0.3])
    is_novel = np.array([False, False, False, False, True, True, True])
    out = metrics.conformal_scores(p, is_novel, [0.05])
    assert out["alpha0.05_false_alarm_rate"] == pytest.approx(0.25)
    assert out["alpha0.05_false_alarm_se"] == pytest.approx(np.sqrt(0.05 * 0.95 / 4))
    assert out["alpha0.05_recall"] == pytest.approx(2 / 3)
    assert out["alpha0.05_precision"] == pytest.approx(2 / 3)


def overconfident(n: int, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs that are right 70% of the time but claim ~99%."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.7, label, rng.integers(0, k, n))
    logits = rng.normal(0, 0.5, (n, k))
    logits[np.arange(n), predicted] += 6.0
    gamma = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return gamma, label


def test_temperature_scaling_keeps_the_class_and_fixes_overconfidence():
    gamma, label = overconfident(4000)
    temperature = calibration.fit_temperature(gamma, label)
    assert temperature > 1.5  # over-confident: soften
    test_gamma, test_label = overconfident(4000, seed=1)
    scaled = calibration.scale(test_gamma, temperature)
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    np.testing.assert_array_equal(scaled.argmax(axis=1), test_gamma.argmax(axis=1))
    before = calibration.expected_calibration_error(test_gamma, test_label)
    after = calibration.expected_calibration_error(scaled, test_label)
    assert before > 0.2 and after < 0.05, (before, after)


def test_ece_of_a_perfectly_calibrated_predictor_is_small():
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.3, 1.0, 20000)
    label = np.where(rng.random(20000) < confidence, 0, 1)
    prob = np.column_stack([confidence, 1 - confidence])
    assert calibration.expected_calibration_error(prob, label) < 0.02


def test_calibration_round_trips_and_scores_both_levels(tmp_path):
    gamma, label = overconfident(60)
    star_id = np.repeat([f"s{i}" for i in range(20)], 3)
    label = np.repeat(label[::3], 3)
    rng = np.random.default_rng(3)
    energy = rng.normal(size=60)
    class_energy = rng.normal(size=(60, 4))
    fitted = Calibration.fit(star_id, label, gamma, energy, class_energy)
    assert fitted["star"].energy.size == 20 and fitted["sequence"].energy.size == 60
    path = tmp_path / "calibration.npz"
    fitted.save(path)
    loaded = Calibration.load(path)
    for level in LEVELS:
        out = fitted[level].apply(gamma[:5], energy[:5], class_energy[:5])
        again = loaded[level].apply(gamma[:5], energy[:5], class_energy[:5])
        for key in ("prob", "p_novel", "p_class"):
            np.testing.assert_array_equal(out[key], again[key])
        # class k's p-value counts against that class's validation stars only
        members = fitted[level].class_energy[fitted[level].label == 1, 1]
        np.testing.assert_allclose(out["p_class"][:, 1], calibration.conformal_p_values(
            members, class_energy[:5, 1]))


def test_star_thresholds_come_from_star_mean_energies():
    star_id = np.repeat(np.arange(100).astype(str), 4)
    energy = np.random.default_rng(4).normal(size=400)
    thresholds = calibration.novelty_thresholds(star_id, energy, [95])
    means = energy.reshape(100, 4).mean(axis=1)
    assert thresholds["sequence"]["95"] == pytest.approx(np.percentile(energy, 95))
    assert thresholds["star"]["95"] == pytest.approx(np.percentile(means, 95))
    assert np.mean(means >= thresholds["star"]["95"]) == pytest.approx(0.05, abs=0.011)
