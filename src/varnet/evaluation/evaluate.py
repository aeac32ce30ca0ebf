"""Evaluate the trained variants on the test set: accuracy, novelty, calibration, Table 2, figures.

Reads   models/<variant>/{predictions.npz, thresholds.json, calibration.npz, history.csv,
        variant.json, run.json} and data/processed/sequences.npz (the folded sequences, for the
        reconstruction figures) for every variant in params train.variants that has been
        trained (others are skipped with a note), and reports/baseline.json (random-forest
        accuracies, `varnet baseline`).
Provenance (core.provenance): a variant whose variant.json records other data than the current
        sequences.npz + split.npz is left out, and so are the random-forest rows of a
        baseline.json entry computed from other data or another training of the variant; each
        is printed and noted under Table 2, naming the file and the fingerprint that differs.
Writes  reports/headline.json     DVC metrics (`dvc metrics show`): per variant, test accuracy
                                  per sequence and per star, novelty AUROC, median
                                  reconstruction R², the conformal false-alarm rate at
                                  alpha = 0.05 and the calibrated ECE (per star)
        reports/metrics.json      every metric, nested variant -> sequence|star -> metric, and
                                  per variant the "provenance": data and model fingerprints
        reports/table2.md         the paper's Table 2 layout, our numbers beside the paper's
        reports/figures/evaluation/confusion_<variant>.png, energy_<variant>.png,
        reconstruction_<variant>.png, reliability_<variant>.png, ae_loss.png
        reports/plots/ae_loss/<variant>.csv, reports/plots/confusion/<variant>.csv (DVC plots)
and logs the metrics and figures into each variant's MLflow run (run_id from run.json).

Protocol: nothing reported is read from a set that chose anything. Early stopping, tuning,
promotion, the temperature, the conformal calibration and the thresholds read train and valid
(+ novel_valid) only; every number here reads the **test** stars and the **novel_test** VAR
stars (prepare.split). Classification: accuracy and per-class recall on test. Novelty: VAR
positive, test + novel_test the evaluation set; the paper's flags (energy >= a percentile of
the training energies, thresholds.json, per level) by precision/recall/F1, AUROC and AUPRC;
the conformal flag p_novel <= alpha by its false-alarm rate on the test known stars (which must
be within sampling error of alpha) and its recall of the novel_test stars. Calibration: the
expected calibration error of the raw γ and of the temperature-scaled probabilities, and a
reliability diagram. Per star: mean γ and mean energies over its sequences; the star-level
thresholds and calibration apply.

Examples:
  varnet evaluate                 # the DVC stage (after `varnet train` and `varnet baseline`)
  varnet evaluate --no-mlflow     # write reports only
  dvc plots show                  # AE loss curves and confusion matrices as HTML
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from varnet.core import files, provenance, schema
from varnet.core.config import (
    EvaluateParams,
    SplitParams,
    TrainParams,
    section,
)
from varnet.core.errors import VarnetError
from varnet.core.schema import LEVELS, PREDICTION_ARRAYS, REPORTED, ModelFolder
from varnet.core.taxonomy import CLASSES, NOVEL
from varnet.prepare.sequences import folded_phase
from varnet.scoring import calibration, metrics
from varnet.scoring.calibration import Calibration

matplotlib.use("Agg")  # figures go to files; no display needed

PAPER_TABLE2: dict[tuple[str, bool], dict[str, float]] = {
    ("joint", False): {"nn": .988, "rf": .992, "p95_precision": .885, "p95_recall": .815,
                       "p95_f1": .848, "p80_precision": .686, "p80_recall": .941, "p80_f1": .793},
    ("joint", True): {"nn": .991, "rf": .994, "p95_precision": .898, "p95_recall": .957,
                      "p95_f1": .927, "p80_precision": .700, "p80_recall": .991, "p80_f1": .821},
    ("sequential", False): {"nn": .967, "rf": .992, "p95_precision": .875, "p95_recall": .778,
                            "p95_f1": .824, "p80_precision": .683, "p80_recall": .935,
                            "p80_f1": .789},
    ("sequential", True): {"nn": .966, "rf": .992, "p95_precision": .896, "p95_recall": .933,
                           "p95_f1": .914, "p80_precision": .696, "p80_recall": .986,
                           "p80_f1": .816},
}
"""Tsang & Schultz (2019) Table 2 (emb 16, per sequence; docs/method.md §6)."""
RELEASED_RF_EMBEDDING_ONLY = 0.9105
"""The released run's RF on the 16-d embedding alone (joint, no photometry; docs/method.md §6)."""


@dataclass
class VariantResult:
    name: str
    mode: str
    photometric: bool
    thresholds: dict[str, dict[str, float]]
    metrics: dict
    confusion: dict[str, np.ndarray]
    levels: dict[str, dict[str, np.ndarray]]
    """Per level, the reported rows: label, subset, gamma, energies, prob, p_novel, ..."""
    predictions: dict[str, np.ndarray]
    history: pd.DataFrame | None
    run: dict | None
    provenance: dict[str, dict[str, str] | None]
    """{"data": the data fingerprint variant.json records, "model": the model fingerprint}
    (core.provenance); `run` evaluates only variants whose data is the current data."""


def threshold_key(percentile: float) -> str:
    """thresholds.json key of a percentile: 80 -> "80", 97.5 -> "97.5"."""
    return f"{float(percentile):g}"


def star_level(predictions: dict[str, np.ndarray], subsets: tuple[str, ...]
               ) -> dict[str, np.ndarray]:
    """Per-star label, mean γ, mean energies and subset, for the stars of ``subsets``.

    Stars are aggregated within a subset, so under the paper's sequence-level split a star with
    sequences in train and test counts only its test sequences here.
    """
    parts = []
    for subset in subsets:
        rows = predictions["subset"] == subset
        if not rows.any():
            continue
        ids, means = metrics.star_means(predictions["star_id"][rows],
                                        gamma=predictions["gamma"][rows],
                                        energy=predictions["energy"][rows],
                                        class_energy=predictions["class_energy"][rows],
                                        recon_r2=predictions["recon_r2"][rows])
        parts.append({
            "star_id": ids, **{k: means[k] for k in ("gamma", "energy", "class_energy",
                                                     "recon_r2")},
            "label": metrics.star_labels(predictions["star_id"][rows],
                                         predictions["label"][rows]),
            "subset": np.full(ids.size, subset),
        })
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def evaluate_predictions(predictions: dict[str, np.ndarray],
                         thresholds: dict[str, dict[str, float]], fitted: Calibration,
                         alphas: list[float]) -> tuple[dict, dict, dict]:
    """Metrics of both levels on the reported sets, their normalised confusion matrices, and
    the reported rows with the calibrated probabilities and p-values."""
    reported = np.isin(predictions["subset"], REPORTED)
    levels = {
        "sequence": {key: np.asarray(predictions[key])[reported]
                     for key in ("label", "gamma", "energy", "class_energy", "subset",
                                 "recon_r2")},
        "star": star_level(predictions, REPORTED),
    }
    results, confusion = {}, {}
    for level, rows in levels.items():
        known = rows["subset"] == "test"
        if not known.any():
            raise VarnetError("predictions.npz has no test sequences to evaluate (rerun "
                              "`varnet split` and train)")
        rows.update(fitted[level].apply(rows["gamma"], rows["energy"], rows["class_energy"]))
        label = rows["label"]
        result = metrics.level_metrics(label, rows["gamma"], rows["energy"], thresholds[level],
                                       known)
        result["median_reconstruction_r2"] = float(np.nanmedian(rows["recon_r2"][known]))
        result["conformal"] = metrics.conformal_scores(rows["p_novel"], label < 0, alphas)
        result["calibration"] = {
            "temperature": fitted[level].temperature,
            "ece_raw": calibration.expected_calibration_error(rows["gamma"][known],
                                                              label[known]),
            "ece_calibrated": calibration.expected_calibration_error(rows["prob"][known],
                                                                     label[known]),
        }
        results[level] = result
        confusion[level] = metrics.confusion_matrix(label[known],
                                                    rows["gamma"][known].argmax(axis=1))
    return results, confusion, levels


def evaluate_variant(name: str, folder: ModelFolder, percentiles: list[float],
                     alphas: list[float]) -> VariantResult:
    """Load one trained variant (checked against the predictions contract) and score it."""
    predictions = files.read_npz(folder.predictions)
    if missing := [a for a in PREDICTION_ARRAYS if a not in predictions]:
        raise VarnetError(f"{folder.predictions}: missing arrays {missing}")
    saved = files.read_json(folder.thresholds)
    wanted = [threshold_key(p) for p in percentiles]
    if absent := [f"{level}/{k}" for level in LEVELS for k in wanted
                  if k not in saved.get(level, {})]:
        raise VarnetError(f"{folder.thresholds}: no threshold {absent} for params "
                          f"evaluate.percentiles; retrain (dvc repro)")
    thresholds = {level: {k: float(saved[level][k]) for k in wanted} for level in LEVELS}
    if not folder.calibration.is_file():
        raise VarnetError(f"{folder.calibration}: not found; retrain (dvc repro)")
    variant = files.read_json(folder.variant)
    history, run = folder.history, folder.run
    results, confusion, levels = evaluate_predictions(
        predictions, thresholds, Calibration.load(folder.calibration), alphas)
    return VariantResult(
        name=name, mode=str(variant.get("mode", "")),
        photometric=bool(variant.get("photometric", False)), thresholds=thresholds,
        metrics=results, confusion=confusion, levels=levels, predictions=predictions,
        history=pd.read_csv(history) if history.exists() else None,
        run=files.read_json(run) if run.exists() else None,
        provenance={"data": variant.get("data"), "model": provenance.model_fingerprint(folder)})


def current_baseline(baseline_file: Path, results: list[VariantResult]) -> tuple[dict, list[str]]:
    """The entries of reports/baseline.json computed from the very data and training each
    result was evaluated on, and a note for each one left out (a baseline of another survey,
    of an earlier training, or without a record of its inputs)."""
    if not baseline_file.exists():
        return {}, [f"{baseline_file} not found: RF rows of Table 2 left empty "
                    "(run `varnet baseline`)"]
    recorded = files.read_json(baseline_file)
    current, notes = {}, []
    for result in results:
        if result.name not in recorded:
            continue
        inputs = recorded[result.name].get("provenance") or {}
        reason = (provenance.mismatch(inputs.get("data"), result.provenance["data"])
                  or provenance.mismatch(inputs.get("model"), result.provenance["model"]))
        if reason is None:
            current[result.name] = recorded[result.name]
        else:
            notes.append(f"{baseline_file}: RF rows of `{result.name}` left out, not computed "
                         f"from the data and training evaluated here ({reason}); rerun "
                         "`varnet baseline`")
    return current, notes


def provenance_note(results: list[VariantResult]) -> str:
    """Table 2's record of the inputs its numbers come from (md5 prefixes, as in dvc.lock)."""
    data = results[0].provenance["data"]
    return ("Inputs (md5 prefixes, as in dvc.lock; in full in metrics.json): "
            + ", ".join(f"{name} `{md5[:8]}`" for name, md5 in data.items()) + "; "
            + ", ".join(f"`{r.name}` " + ", ".join(f"{name} `{md5[:8]}`"
                                                     for name, md5 in r.provenance["model"].items())
                        for r in results) + ".")


# ---------------------------------------------------------------- Table 2

def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _score(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _cell(plain: str, phot: str) -> str:
    """"ours (with photometry)", the paper's convention; the parentheses only when there is one."""
    return plain if phot == "—" else f"{plain} ({phot})"


def _table_rows(results: dict[tuple[str, bool], VariantResult], baseline: dict, level: str,
                percentiles: list[str], alphas: list[float]
                ) -> list[tuple[str, dict[tuple[str, bool], float | None]]]:
    """(row label, {(mode, photometric): value}) in Table 2's order."""

    def rf(result: VariantResult, features: str) -> float | None:
        entry = baseline.get(result.name, {}).get(features, {}).get(level, {})
        return entry.get("test_accuracy")

    def novelty(result: VariantResult, key: str) -> float:
        return result.metrics[level]["novelty"][key]

    rows = [
        ("Estimation-network accuracy", {c: r.metrics[level]["accuracy"]
                                         for c, r in results.items()}),
        ("Reconstruction R² (median)", {c: r.metrics[level]["median_reconstruction_r2"]
                                        for c, r in results.items()}),
        ("RF accuracy, embedding", {c: rf(r, "embedding") for c, r in results.items()}),
        ("RF accuracy, embedding + aux", {c: rf(r, "embedding_aux")
                                          for c, r in results.items()}),
    ]
    for p in sorted(percentiles, key=float, reverse=True):
        for score in ("precision", "recall", "f1"):
            label = f"{p}th pct {'F1' if score == 'f1' else score}"
            rows.append((label, {c: novelty(r, f"p{p}_{score}") for c, r in results.items()}))
    rows += [("AUROC", {c: novelty(r, "auroc") for c, r in results.items()}),
             ("AUPRC", {c: novelty(r, "auprc") for c, r in results.items()})]
    for alpha in alphas:
        for metric, label in (("false_alarm_rate", "false-alarm rate"), ("recall", "recall")):
            rows.append((f"Conformal α = {alpha:g}: {label}",
                         {c: r.metrics[level]["conformal"][f"alpha{alpha:g}_{metric}"]
                          for c, r in results.items()}))
    rows += [(f"ECE, {kind}", {c: r.metrics[level]["calibration"][f"ece_{kind}"]
                               for c, r in results.items()}) for kind in ("raw", "calibrated")]
    return rows


_PAPER_KEY = {"Estimation-network accuracy": "nn", "RF accuracy, embedding + aux": "rf",
              "95th pct precision": "p95_precision", "95th pct recall": "p95_recall",
              "95th pct F1": "p95_f1", "80th pct precision": "p80_precision",
              "80th pct recall": "p80_recall", "80th pct F1": "p80_f1"}


def _paper_cell(row: str, mode: str) -> str:
    fmt = _percent if "accuracy" in row else _score
    if row == "RF accuracy, embedding":
        return f"{100 * RELEASED_RF_EMBEDDING_ONLY:.2f}%¹" if mode == "joint" else "—"
    key = _PAPER_KEY.get(row)
    if key is None:
        return "—"
    return _cell(fmt(PAPER_TABLE2[(mode, False)][key]), fmt(PAPER_TABLE2[(mode, True)][key]))


def table2_markdown(results: list[VariantResult], baseline: dict, percentiles: list[str],
                    alphas: list[float], notes: list[str]) -> str:
    """Table 2 per sequence (with the paper's numbers) and per star (the paper has none)."""
    cells: dict[tuple[str, bool], VariantResult] = {}
    for result in results:
        cells.setdefault((result.mode, result.photometric), result)
    modes = ("joint", "sequential")
    rounds = [len(entry["search_rounds"]) for variant in baseline.values()
              for entry in variant.values() if "search_rounds" in entry]
    search = ("searched by successive halving (the last round on the whole training set; "
              "`baseline.search: grid` for the exhaustive search), " if max(rounds, default=1) > 1
              else "searched exhaustively, " if rounds else "")
    lines = ["# Table 2: classification and novelty detection", "",
             "Values in parentheses: the variant with the Gaia photometric features "
             "(M_G, BP−RP, W_RP), as in the paper. **Every number is read from the test set**: "
             "the known-class stars of the test fold and the VAR stars of novel_test "
             "(reports/split.json); nothing that chose anything (early stopping, tuning, "
             "promotion, the thresholds, the temperature, the conformal calibration: train and "
             "valid only) reads them. Accuracy: test stars. Novelty: VAR positive, test + "
             "novel_test the evaluation set; the paper's flags at percentiles of the training "
             "energies (per star: of the training stars' mean energies); the conformal flag "
             "p_novel ≤ α with p_novel from the validation stars' energies, whose false-alarm "
             "rate on the test known stars should be within sampling error of α (binomial "
             "standard errors in metrics.json). ECE: expected calibration error (15 bins) of the "
             "raw softmax γ and of the temperature-scaled probabilities (T fitted on valid). "
             f"RF: random forest over the paper's grid, {search}CV grouped by star on the "
             "training set, "
             "on the network's embedding alone (as the released code) or on the embedding plus "
             "the estimation network's auxiliary inputs (mean mag, std, log10 P, and the "
             "photometry in the photometric variants). Reconstruction R²: the weighted R² of the "
             "autoencoder, 1 − Σw(x − x̂)²/Σwx² with the weights of its loss, median over the "
             "test sequences (per star: of each star's mean); 0 is a model that predicts zero, "
             "1 a perfect copy. The paper's columns come from its own (leaky, two-way) split.",
             ""]
    for level in LEVELS:
        with_paper = level == "sequence"
        header = ["Per " + level]
        for mode in modes:
            header += [mode.capitalize()] + ([f"{mode.capitalize()}, paper"] if with_paper else [])
        lines += [f"## Per {level}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for row, values in _table_rows(cells, baseline, level, percentiles, alphas):
            fmt = _percent if "accuracy" in row or row.startswith("Conformal") else _score
            out = [row]
            for mode in modes:
                out.append(_cell(fmt(values.get((mode, False))), fmt(values.get((mode, True)))))
                if with_paper:
                    out.append(_paper_cell(row, mode))
            lines.append("| " + " | ".join(out) + " |")
        lines.append("")
    # the report cites docs/method.md by its name, as reports/table2.md always has
    lines += ["¹ The released code's RF on the embedding alone (method.md §6); the paper's 99.2% "
              "most likely included the auxiliary features (method.md §5, §7).", "",
              "The paper reports per-sequence numbers only; per star, a star's class is the "
              "argmax of its mean γ and its energy the mean over its sequences.", ""]
    for note in notes:
        lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- figures and DVC plots

def plot_confusion(result: VariantResult, target: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    for ax, level in zip(axes, LEVELS, strict=True):
        matrix = result.confusion[level]
        image = ax.imshow(np.nan_to_num(matrix), vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value) and value >= 0.005:
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 else "black")
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45)
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        acc = result.metrics[level]["accuracy"]
        ax.set_title(f"per {level} (accuracy {100 * acc:.1f}%)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class")
    fig.suptitle(f"{result.name}: normalised confusion matrix (test set)")
    _save(fig, target)


def plot_energies(result: VariantResult, clip_percentile: float, target: Path) -> None:
    pred = result.predictions
    sets = {"train": pred["subset"] == "train", "test": pred["subset"] == "test",
            f"{NOVEL} (novel_test)": pred["subset"] == "novel_test"}
    thresholds = result.thresholds["sequence"]
    energy = np.asarray(pred["energy"], dtype=np.float64)
    finite = energy[np.isfinite(energy)]
    low = float(finite.min())
    high = max(float(np.percentile(finite, clip_percentile)), *thresholds.values())
    bins = np.linspace(low, high, 81)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), constrained_layout=True)
    for name, rows in sets.items():
        if not rows.any():
            continue
        values = np.clip(energy[rows], low, high)   # inf and the far tail pile up in the last bin
        above = int((energy[rows] > high).sum())
        label = f"{name} ({rows.sum()})" + (f", {above} > {high:.3g} in last bin" if above else "")
        ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.5, label=label)
    for (key, threshold), style in zip(thresholds.items(), ("--", ":", "-."), strict=False):
        ax.axvline(threshold, color="k", linestyle=style, label=f"{key}th pct of train "
                                                                f"({threshold:.3g})")
    ax.set_xlabel("energy E (sequence)")
    ax.set_ylabel("density")
    ax.set_title(f"{result.name}: energies of train, test and {NOVEL} sequences")
    ax.legend(fontsize=8)
    _save(fig, target)


def plot_reliability(result: VariantResult, target: Path) -> None:
    """Reliability diagrams of the test set, per level: accuracy against confidence in each
    bin, for the raw γ and the temperature-scaled probabilities (the diagonal is perfect)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    for ax, level in zip(axes, LEVELS, strict=True):
        rows = result.levels[level]
        known = rows["subset"] == "test"
        ece = result.metrics[level]["calibration"]
        for key, style, name, ece_key in (("gamma", "o--", "raw γ", "ece_raw"),
                                          ("prob", "s-", "calibrated", "ece_calibrated")):
            bins = calibration.reliability(rows[key][known], rows["label"][known])
            filled = bins["count"] > 0
            ax.plot(bins["confidence"][filled], bins["accuracy"][filled], style, ms=4,
                    label=f"{name}: ECE {ece[ece_key]:.3f}")
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"per {level} (T = {ece['temperature']:.2f}, {int(known.sum())} test)")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{result.name}: reliability of the class probabilities (test set)")
    _save(fig, target)


def plot_reconstructions(result: VariantResult, sequences: dict[str, np.ndarray],
                         target: Path) -> None:
    """One test sequence per class, folded, with the autoencoder's reconstruction: the
    sequence of median R² among the class's test sequences."""
    pred = result.predictions
    fig, axes = plt.subplots(2, 4, figsize=(14, 6), sharey=True, constrained_layout=True)
    for k, (ax, name) in enumerate(zip(axes.flat, CLASSES, strict=True)):
        rows = np.flatnonzero((pred["subset"] == "test") & (pred["label"] == k)
                              & np.isfinite(pred["recon_r2"]))
        ax.set_title(name)
        if rows.size == 0:
            ax.text(0.5, 0.5, "no test sequence", ha="center", transform=ax.transAxes)
            continue
        row = rows[np.argsort(pred["recon_r2"][rows])[rows.size // 2]]
        index = int(pred["index"][row])
        lag, mag = sequences["X"][index, :, 0], sequences["X"][index, :, 1]
        phase = folded_phase(lag, sequences["period"][index])
        ax.plot(phase, mag, ".", ms=3, color="0.4", label="sequence")
        ax.plot(phase, pred["reconstruction"][row], "-", color="crimson", lw=1.2,
                label="reconstruction")
        ax.set_title(f"{name}: R² {pred['recon_r2'][row]:.2f}, "
                     f"P = {sequences['period'][index]:.3g} d", fontsize=9)
        ax.set_xlabel("phase")
    axes[0, 0].invert_yaxis()  # shared: brighter (smaller magnitude) up in every panel
    axes[0, 0].set_ylabel("normalised magnitude")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{result.name}: test sequences of median reconstruction R² per class")
    _save(fig, target)


def plot_ae_loss(results: list[VariantResult], target: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5), constrained_layout=True)
    for result in results:
        history = result.history
        if history is None or "val_ae_loss" not in history:
            continue
        rows = np.isfinite(history["val_ae_loss"].to_numpy(dtype=np.float64))
        ax.plot(history["epoch"][rows], history["val_ae_loss"][rows], label=result.name)
    if ax.lines and np.ptp(np.log10(np.concatenate([ln.get_ydata() for ln in ax.lines]))) > 1:
        ax.set_yscale("log")   # the paper's curves fall by a decade or more
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation autoencoder loss (weighted MSE)")
    ax.set_title("Autoencoder loss on the validation set during training")
    if ax.lines:
        ax.legend()
    _save(fig, target)


def _save(fig: plt.Figure, target: Path) -> None:
    with files.atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_dvc_plots(result: VariantResult, plots_dir: Path) -> None:
    """CSV data for `dvc plots show`: AE loss per epoch, and (actual, predicted) of test rows."""
    if result.history is not None and "val_ae_loss" in result.history:
        curve = result.history[["epoch", "val_ae_loss"]].dropna()
        with files.atomic_path(plots_dir / "ae_loss" / f"{result.name}.csv") as tmp:
            curve.to_csv(tmp, index=False)
    pred = result.predictions
    test = pred["subset"] == "test"
    names = np.asarray(CLASSES)
    pairs = pd.DataFrame({"actual": names[pred["label"][test]],
                          "predicted": names[np.argmax(pred["gamma"][test], axis=1)]})
    with files.atomic_path(plots_dir / "confusion" / f"{result.name}.csv") as tmp:
        pairs.to_csv(tmp, index=False)


# ---------------------------------------------------------------- MLflow

def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {"a/b/c": value}, keeping finite numbers only (MLflow metric keys)."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, int | float | np.number) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


def log_to_mlflow(params: dict, result: VariantResult, outputs: list[Path]) -> None:
    """Add the evaluation metrics and figures to the variant's own training run."""
    run = result.run
    if not run or not run.get("run_id"):
        print(f"  {result.name}: no run.json with a run_id, metrics not logged to MLflow")
        return
    import mlflow

    from varnet.core import tracking

    tracking.configure(params)
    try:
        with mlflow.start_run(run_id=run["run_id"]):
            mlflow.log_metrics(flatten(result.metrics, "eval"))
            for path in outputs:
                mlflow.log_artifact(str(path), artifact_path="evaluation")
    except mlflow.exceptions.MlflowException as exc:
        print(f"  {result.name}: MLflow run {run['run_id']} not logged ({exc.message})")
        return
    print(f"  {result.name}: logged to MLflow run {run['run_id']}")


# ---------------------------------------------------------------- command

def headline(tree: dict) -> dict[str, float]:
    """The few numbers `dvc metrics show` lists for a variant (metrics.json has the rest)."""
    star = tree["star"]
    return {"accuracy": tree["sequence"]["accuracy"], "star_accuracy": star["accuracy"],
            "novelty_auroc": tree["sequence"]["novelty"]["auroc"],
            "median_reconstruction_r2": tree["sequence"]["median_reconstruction_r2"],
            "star_false_alarm_rate_alpha0.05": star["conformal"].get(
                "alpha0.05_false_alarm_rate", math.nan),
            "star_ece_calibrated": star["calibration"]["ece_calibrated"]}


def summary_line(result: VariantResult, level: str) -> str:
    m = result.metrics[level]
    nov, conformal = m["novelty"], m["conformal"]
    parts = [f"test acc {100 * m['accuracy']:.1f}%"]
    parts += [f"p{k} P/R/F1 {nov[f'p{k}_precision']:.3f}/{nov[f'p{k}_recall']:.3f}/"
              f"{nov[f'p{k}_f1']:.3f}" for k in result.thresholds[level]]
    parts.append(f"AUROC {nov['auroc']:.3f}")
    parts += [f"FAR@{key[5:-17]} {value:.3f}" for key, value in conformal.items()
              if key.endswith("_false_alarm_rate")]
    parts.append(f"ECE {m['calibration']['ece_raw']:.3f}->{m['calibration']['ece_calibrated']:.3f}")
    return f"  {result.name:16s} {level:8s} " + ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, default=schema.MODELS_DIR,
                        help="directory of trained variants (default: %(default)s)")
    parser.add_argument("--reports", type=Path, default=schema.REPORTS_DIR,
                        help="where metrics.json, table2.md, figures/ and plots/ go "
                             "(default: %(default)s)")
    parser.add_argument("--sequences", type=Path, default=schema.SEQUENCES_FILE,
                        help="the sequences the variants were trained on, for the "
                             "reconstruction figures (default: %(default)s)")
    parser.add_argument("--split", type=Path, default=schema.SPLIT_FILE,
                        help="the split the variants were trained on; a variant trained on "
                             "other data is left out (default: %(default)s)")
    parser.add_argument("--no-mlflow", action="store_true",
                        help="do not log the metrics and figures into the MLflow runs")


def run(args: argparse.Namespace, params: dict) -> int:
    cfg = section(EvaluateParams, params)
    variants = list(section(TrainParams, params).variants)
    if not variants:
        raise VarnetError("params train.variants is empty: nothing to evaluate")
    figures, plots = args.reports / "figures" / "evaluation", args.reports / "plots"
    trained: dict[str, ModelFolder] = {}
    for name in variants:
        folder = ModelFolder.of(name, args.models)
        if folder.predictions.exists():
            trained[name] = folder
        else:
            print(f"  {name}: not trained ({folder.predictions} missing), skipped")
    if not trained:
        raise VarnetError(f"no trained variant under {args.models}/ (run `varnet train "
                          f"{variants[0]}` or `dvc repro`)")
    data = provenance.data_fingerprint(args.sequences, args.split)
    results: list[VariantResult] = []
    left_out: list[str] = []
    for name, folder in trained.items():
        if reason := provenance.trained_on_other_data(folder, data):
            left_out.append(f"`{name}` left out: {reason}; retrain it (`varnet train {name}`)")
            print(f"  {left_out[-1]}")
            continue
        results.append(evaluate_variant(name, folder, list(cfg.percentiles), list(cfg.alphas)))
    if not results:
        raise VarnetError(f"no variant under {args.models}/ was trained on {args.sequences} "
                          f"and {args.split}: " + "; ".join(left_out))
    sequences = files.read_npz(args.sequences)
    baseline, stale = current_baseline(args.reports / "baseline.json", results)
    for note in stale:
        print(f"  {note}")

    split_by = section(SplitParams, params).by
    notes = [f"Split: `split.by = {split_by}`"
             + (" (honest: every star in one of train, valid, test)." if split_by == "star" else
                " (the paper's assignment: sequences of one star in several sets)."),
             "Variants: " + ", ".join(f"`{r.name}` ({r.mode}"
                                      f"{', photometric' if r.photometric else ''})"
                                      for r in results) + ".",
             provenance_note(results), *left_out, *stale]
    keys = [threshold_key(p) for p in cfg.percentiles]
    files.write_json({r.name: {**r.metrics, "provenance": r.provenance} for r in results},
                     args.reports / "metrics.json")
    files.write_json({r.name: headline(r.metrics) for r in results},
                     args.reports / "headline.json")
    files.write_text(table2_markdown(results, baseline, keys, list(cfg.alphas), notes),
                     args.reports / "table2.md")
    plot_ae_loss(results, figures / "ae_loss.png")
    for result in results:
        plot_confusion(result, figures / f"confusion_{result.name}.png")
        plot_reconstructions(result, sequences, figures / f"reconstruction_{result.name}.png")
        plot_energies(result, cfg.histogram_clip_percentile, figures / f"energy_{result.name}.png")
        plot_reliability(result, figures / f"reliability_{result.name}.png")
        write_dvc_plots(result, plots)
        for level in LEVELS:
            print(summary_line(result, level))
    print(f"wrote {args.reports / 'headline.json'}, {args.reports / 'metrics.json'}, "
          f"{args.reports / 'table2.md'}, {figures}/, "
          f"{plots}/")
    if not args.no_mlflow:
        for result in results:
            outputs = [figures / f"confusion_{result.name}.png",
                       figures / f"energy_{result.name}.png",
                       figures / f"reconstruction_{result.name}.png",
                       figures / f"reliability_{result.name}.png", figures / "ae_loss.png",
                       args.reports / "table2.md", args.reports / "metrics.json"]
            log_to_mlflow(params, result, outputs)
    return 0

