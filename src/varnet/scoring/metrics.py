"""Classification and novelty metrics, per sequence and per star (docs/method.md §4, §6).

Novelty follows the paper's protocol on the sets that only report: the known-class test
sequences (negatives) plus the VAR sequences of the novel_test stars (positives); a sequence is
flagged novel when its energy is at or above a threshold (a percentile of the *training*
energies), and precision/recall/F1 come from ``precision_recall_fscore_support(average="binary")``.
AUROC and AUPRC (average precision) score the energy itself, free of any threshold; the
conformal flag p_novel <= alpha (scoring.calibration) is scored by ``conformal_scores``.

Per star, a star's class probabilities are the mean of its sequences' γ, its class the argmax of
that mean, and its energy the mean of its sequences' energies, compared with thresholds from
the training stars' mean energies. ``star_means`` is the one aggregation used everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from varnet.core.taxonomy import CLASSES


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of correct class predictions."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(labels == predicted))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray,
                     n_classes: int = len(CLASSES), normalize: bool = True) -> np.ndarray:
    """(K, K) counts with rows = true class, columns = predicted class.

    ``normalize`` divides each row by its total (so the diagonal is the per-class recall, as in
    the paper's Fig. 2); a class absent from ``labels`` gets a row of NaN, not of zeros.
    """
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(counts, (labels, predicted), 1.0)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def per_class_recall(labels: np.ndarray, predicted: np.ndarray,
                     classes: tuple[str, ...] = CLASSES) -> dict[str, float]:
    """Recall of each class (NaN for a class with no true member)."""
    diagonal = np.diag(confusion_matrix(labels, predicted, len(classes)))
    return {name: float(value) for name, value in zip(classes, diagonal, strict=True)}


def _finite_scores(energy: np.ndarray) -> np.ndarray:
    """Energies with +inf mapped to the largest float: ranking is kept, sklearn accepts it."""
    energy = np.asarray(energy, dtype=np.float64)
    if np.isnan(energy).any():
        raise ValueError("energies contain NaN; novelty scores are undefined")
    return np.nan_to_num(energy, posinf=np.finfo(np.float64).max,
                         neginf=np.finfo(np.float64).min)


def novelty_scores(energy: np.ndarray, is_novel: np.ndarray,
                   thresholds: Mapping[str, float]) -> dict[str, float]:
    """Precision, recall, F1 (novel = positive) at each threshold, plus AUROC and AUPRC.

    Keys: ``p<name>_precision``, ``p<name>_recall``, ``p<name>_f1``, ``p<name>_threshold`` for
    each threshold name (e.g. "80", "95"), ``auroc``, ``auprc``, ``n_known``, ``n_novel``.
    """
    scores = _finite_scores(energy)
    truth = np.asarray(is_novel, dtype=bool)
    out: dict[str, float] = {}
    for name, threshold in thresholds.items():
        flagged = np.asarray(energy) >= threshold
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, flagged, average="binary", zero_division=0)
        out.update({f"p{name}_threshold": float(threshold), f"p{name}_precision": float(precision),
                    f"p{name}_recall": float(recall), f"p{name}_f1": float(f1)})
    both_present = truth.any() and (~truth).any()
    out["auroc"] = float(roc_auc_score(truth, scores)) if both_present else float("nan")
    out["auprc"] = float(average_precision_score(truth, scores)) if both_present else float("nan")
    out["n_known"] = int((~truth).sum())
    out["n_novel"] = int(truth.sum())
    return out


def reconstruction_r2(x: np.ndarray, x_hat: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-sequence weighted R² of the autoencoder, 1 - Σ w (x - x̂)² / Σ w x², with the weights of
    L_AE (w = s/err). The sequences are standardised (mean 0), so predicting zero scores 0 and a
    perfect copy 1; a sequence with no weight gets NaN."""
    x, x_hat, weight = (np.asarray(a, dtype=np.float64) for a in (x, x_hat, weight))
    total = np.sum(weight * x ** 2, axis=1)
    residual = np.sum(weight * (x - x_hat) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.nan)


def star_means(star_id: np.ndarray, **arrays: np.ndarray
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Group rows by star (first-appearance order) and average every array over a star's rows.

    Returns (star ids, {name: per-star mean}, plus "n_sequences"). Arrays may be (N,) or (N, K).
    """
    star_id = np.asarray(star_id)
    ids, first, inverse = np.unique(star_id, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")         # unique() sorts; restore input order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[inverse]
    counts = np.bincount(group, minlength=ids.size).astype(np.float64)
    means: dict[str, np.ndarray] = {}
    for name, values in arrays.items():
        values = np.asarray(values, dtype=np.float64)
        sums = np.zeros((ids.size,) + values.shape[1:], dtype=np.float64)
        np.add.at(sums, group, values)
        means[name] = sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))
    means["n_sequences"] = counts.astype(np.int64)
    return ids[order], means


def star_labels(star_id: np.ndarray, label: np.ndarray) -> np.ndarray:
    """One label per star (in ``star_means`` order); a star whose sequences disagree is an error."""
    ids, means = star_means(star_id, label=label)
    per_star = means["label"]
    if not np.allclose(per_star, np.round(per_star)):
        raise ValueError("some stars have sequences with different labels")
    return np.round(per_star).astype(np.int64)


def level_metrics(label: np.ndarray, gamma: np.ndarray, energy: np.ndarray,
                  thresholds: Mapping[str, float], known: np.ndarray,
                  classes: tuple[str, ...] = CLASSES) -> dict:
    """All metrics of one level (sequences or stars).

    ``known`` selects the known-class rows (classification, negatives of novelty); rows with
    label -1 are the novel positives. Classification uses the known rows only.
    """
    label = np.asarray(label)
    known = np.asarray(known, dtype=bool)
    novel = label < 0
    predicted = np.argmax(gamma, axis=1)
    test = known | novel
    return {
        "accuracy": accuracy(label[known], predicted[known]),
        "recall": per_class_recall(label[known], predicted[known], classes),
        "novelty": novelty_scores(np.asarray(energy)[test], novel[test], thresholds),
        "n_known": int(known.sum()),
    }


def conformal_scores(p_novel: np.ndarray, is_novel: np.ndarray, alphas: list[float]
                     ) -> dict[str, float]:
    """The flag p_novel <= alpha at each alpha: the false-alarm rate on the known rows with its
    binomial standard error sqrt(alpha (1 - alpha) / n) (what "within sampling error" means),
    and the recall and precision of the novel rows. Keys ``alpha<a>_<metric>``."""
    p_novel, truth = np.asarray(p_novel, dtype=np.float64), np.asarray(is_novel, dtype=bool)
    out: dict[str, float] = {}
    for alpha in alphas:
        flagged = p_novel <= alpha
        n_known = int((~truth).sum())
        key = f"alpha{alpha:g}"
        out[f"{key}_false_alarm_rate"] = float(flagged[~truth].mean()) if n_known else math.nan
        out[f"{key}_false_alarm_se"] = (math.sqrt(alpha * (1 - alpha) / n_known) if n_known
                                        else math.nan)
        out[f"{key}_recall"] = float(flagged[truth].mean()) if truth.any() else math.nan
        out[f"{key}_precision"] = (float(truth[flagged].mean()) if flagged.any() else math.nan)
    return out
