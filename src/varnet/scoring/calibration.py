"""Error rates a user can plan with: conformal novelty p-values, temperature-scaled probabilities.

Both are fitted on the **validation** set of known-class stars (never on test, never on the
novel stars) when a variant is trained, saved with the model as calibration.npz, and applied by
one function, :meth:`Calibration.apply`, wherever the model scores (evaluate, `varnet score`,
the HTTP server).

Novelty p-value (split conformal, Vovk et al. 2005; Angelopoulos & Bates 2021). With the energies
E_1..E_n of n validation stars of the known classes, a new star of energy E gets

    p_novel = (1 + #{i : E_i >= E}) / (n + 1).

If the new star is exchangeable with the validation stars (a known-class star of the same survey)
then P(p_novel <= alpha) <= alpha for every alpha: flagging ``p_novel <= alpha`` has a false-alarm
rate of at most alpha, whatever the model. Per class, ``p_<CLASS>`` does the same with the
class-k energy E_k = -log(phi_k N(z | k)) of the validation stars of class k: a small p_k says
"unlike the class-k stars"; a star with every p_k small is unlike all of them. The sequence and
star levels have their own calibration sets (a star's energy is the mean over its sequences).

Temperature scaling (Guo et al. 2017): the estimation network's softmax γ is over-confident after
training on a few thousand sequences; ``softmax(log γ / T)`` with one T fitted by maximum
likelihood on validation keeps every argmax (the class never changes) and makes the confidence
match the accuracy. A star's probabilities are the mean γ of its sequences, scaled with the
star-level T. The expected calibration error (ECE, 15 equal-width confidence bins) measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from varnet.core import files
from varnet.core.schema import LEVELS
from varnet.core.taxonomy import CLASSES
from varnet.scoring.metrics import star_labels, star_means

DEFAULT_ALPHA = 0.05
"""The false-alarm rate of the served novelty flag unless the user asks for another."""
ECE_BINS = 15
_LOG_FLOOR = 1e-30
"""γ is a softmax in float32: exact zeros happen; their log is floored, not -inf."""


def per_level(star_id: np.ndarray, **arrays: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The arrays per sequence and per star (each star's mean over its sequences; a ``label``
    array becomes the star's label): the two levels every score is given at."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    label = arrays.pop("label", None)
    _, star = star_means(star_id, **arrays)
    if label is not None:
        arrays["label"] = label
        star["label"] = star_labels(star_id, label)
    return {"sequence": arrays, "star": star}


def novelty_thresholds(star_id: np.ndarray, energy: np.ndarray, percentiles: list[float]
                       ) -> dict[str, dict[str, float]]:
    """The paper's thresholds, percentiles of the training energies, per level: a star's mean
    energy is compared with percentiles of training stars' mean energies, so "95" flags 5% of
    the training stars (per-sequence percentiles would not: the mean of a few sequences has a
    narrower spread)."""
    levels = per_level(star_id, energy=energy)
    return {level: {f"{p:g}": float(np.percentile(levels[level]["energy"], p))
                    for p in percentiles} for level in LEVELS}


def conformal_p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(1 + #{calibration >= score}) / (n + 1) for each score; NaN where the score is NaN or
    the calibration set is empty. +inf scores get the smallest p-value, 1 / (n + 1)."""
    calibration = np.sort(np.asarray(calibration, dtype=np.float64))
    scores = np.asarray(scores, dtype=np.float64)
    n = calibration.size
    if n == 0:
        return np.full(scores.shape, np.nan)
    at_or_above = n - np.searchsorted(calibration, scores, side="left")
    p = (1.0 + at_or_above) / (n + 1.0)
    return np.where(np.isnan(scores), np.nan, p)


def scale(gamma: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log γ / T): temperature-scaled class probabilities, rows summing to 1."""
    logits = np.log(np.maximum(np.asarray(gamma, dtype=np.float64), _LOG_FLOOR))
    return np.exp(log_softmax(logits / temperature, axis=-1))


def fit_temperature(gamma: np.ndarray, label: np.ndarray) -> float:
    """The T that minimises the mean negative log-likelihood of ``label`` under scale(γ, T)."""
    logits = np.log(np.maximum(np.asarray(gamma, dtype=np.float64), _LOG_FLOOR))
    label = np.asarray(label, dtype=np.int64)
    if label.size == 0:
        return 1.0
    rows = np.arange(label.size)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[rows, label].mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def reliability(prob: np.ndarray, label: np.ndarray, n_bins: int = ECE_BINS
                ) -> dict[str, np.ndarray]:
    """Per confidence bin: count, mean confidence and accuracy (NaN for empty bins)."""
    prob, label = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.int64)
    confidence = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == label).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(bin_of, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bin_of, confidence, n_bins) / count
        accuracy = np.bincount(bin_of, correct, n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, n_bins: int = ECE_BINS
                               ) -> float:
    """Σ_bins (n_b / N) |accuracy_b − confidence_b| over equal-width confidence bins."""
    bins = reliability(prob, label, n_bins)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    filled = bins["count"] > 0
    gap = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(bins["count"][filled] / total * gap))


@dataclass
class LevelCalibration:
    """The validation stars (or sequences) of one level: what their p-values count against."""

    energy: np.ndarray        # (n,) validation energies, known classes only
    class_energy: np.ndarray  # (n, K)
    label: np.ndarray         # (n,) class index
    temperature: float

    @classmethod
    def fit(cls, gamma, energy, class_energy, label) -> LevelCalibration:
        return cls(np.asarray(energy, np.float64), np.asarray(class_energy, np.float64),
                   np.asarray(label, np.int64), fit_temperature(gamma, label))

    def apply(self, gamma, energy, class_energy) -> dict[str, np.ndarray]:
        """prob (N, K) calibrated, p_novel (N,), p_class (N, K) for scored rows."""
        class_energy = np.asarray(class_energy, np.float64)
        p_class = np.column_stack([
            conformal_p_values(self.class_energy[self.label == k, k], class_energy[:, k])
            for k in range(class_energy.shape[1])]) if class_energy.size else \
            np.zeros(class_energy.shape)
        return {"prob": scale(gamma, self.temperature),
                "p_novel": conformal_p_values(self.energy, energy),
                "p_class": p_class}


@dataclass
class Calibration:
    """Both levels' calibration; saved with the model as calibration.npz."""

    levels: dict[str, LevelCalibration]

    @classmethod
    def fit(cls, star_id, label, gamma, energy, class_energy) -> Calibration:
        """From the validation sequences of the known classes (and their stars)."""
        levels = per_level(star_id, label=label, gamma=gamma, energy=energy,
                           class_energy=class_energy)
        return cls({level: LevelCalibration.fit(rows["gamma"], rows["energy"],
                                                rows["class_energy"], rows["label"])
                    for level, rows in levels.items()})

    def __getitem__(self, level: str) -> LevelCalibration:
        return self.levels[level]

    def save(self, path: Path) -> None:
        arrays = {}
        for level, cal in self.levels.items():
            arrays.update({f"{level}_energy": cal.energy,
                           f"{level}_class_energy": cal.class_energy,
                           f"{level}_label": cal.label,
                           f"{level}_temperature": np.float64(cal.temperature)})
        files.write_npz(path, classes=np.asarray(CLASSES), **arrays)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        arrays = files.read_npz(path)
        return cls({level: LevelCalibration(arrays[f"{level}_energy"],
                                            arrays[f"{level}_class_energy"],
                                            arrays[f"{level}_label"],
                                            float(arrays[f"{level}_temperature"]))
                    for level in LEVELS})
