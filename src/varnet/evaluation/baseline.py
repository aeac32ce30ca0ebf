"""Random-forest baseline on the learned embeddings, with the paper's hyper-parameter grid.

Reads   models/<variant>/predictions.npz (train/test embeddings, labels, star ids, the index
        into sequences.npz) and data/processed/sequences.npz (the raw auxiliary features).
Writes  reports/baseline.json (nested variant -> features -> level, and per variant the
        "provenance" it was computed from: the data and model fingerprints of core.provenance,
        which `varnet evaluate` checks before putting the RF rows into Table 2) and
        reports/baseline.md (the same as a table, also printed). A variant whose model folder
        was trained on other data than the current sequences.npz + split.npz is skipped.

For each variant a GridSearchCV(RandomForestClassifier(random_state=seed)) over
n_estimators x criterion x max_features x min_samples_leaf (the paper's 72 combinations,
`cv`-fold cross-validation on the training set, **grouped by star** so that no star's sequences
are on both sides of a fold, which would reward memorising stars) is refit on the whole
training set and scored on the test set (valid is not needed: the CV chooses), for two
feature sets:
  embedding       the network's embedding z_e alone, as the released code does (~91%)
  embedding_aux   z_e plus the estimation network's auxiliary inputs: raw mean mag, std and
                  log10 P (and M_G, BP-RP, W_RP for a photometric variant), as Naul's notebook;
                  most likely what gave the paper's ~99% (docs/method.md §5, §7)
Per star, the forest's class probabilities are averaged over the star's test sequences.

Cost: the full grid is 72 combinations x `cv` folds, ~30k trees per variant and feature set.
The default `search: halving` runs scikit-learn's successive halving over the same grid
(HalvingGridSearchCV, factor 3, the same grouped folds): every combination on a small random
part of the training sequences, the best third on three times as many, and so on, the last
round on up to the whole training set (default survey: 72, 24, 8, 3 combinations on 59, 177,
531, 1,593 of 1,602 sequences). `search: grid` is the paper's exhaustive search. Only the
variants in `variants` (null = every trained variant) are fitted.

Example:
  varnet baseline                                   # the DVC stage
  dvc exp run -S baseline.search=grid               # the exhaustive search, as the paper
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    StratifiedGroupKFold,
)

from varnet.core import files, provenance, schema
from varnet.core.config import BaselineParams, TrainParams, section
from varnet.core.errors import VarnetError
from varnet.core.schema import ModelFolder
from varnet.core.taxonomy import CLASSES
from varnet.scoring import metrics

FEATURE_SETS = ("embedding", "embedding_aux")
SEARCH_NAMES = {"halving": "Successive halving", "grid": "Grid search"}


def feature_matrix(predictions: dict[str, np.ndarray], sequences: dict[str, np.ndarray],
                   features: str, photometric: bool) -> np.ndarray:
    """The RF's inputs for every row of predictions.npz."""
    embedding = np.asarray(predictions["embedding"], dtype=np.float64)
    if features == "embedding":
        return embedding
    index = np.asarray(predictions["index"], dtype=np.int64)
    extra = [sequences["aux"][index]] + ([sequences["phot"][index]] if photometric else [])
    return np.hstack([embedding, *(np.asarray(x, dtype=np.float64) for x in extra)])


def fit_forest(x_train: np.ndarray, y_train: np.ndarray, star_train: np.ndarray,
               cfg: BaselineParams) -> tuple[RandomForestClassifier, GridSearchCV]:
    """(best forest refit on the whole training set, the search). The folds are drawn by star
    (StratifiedGroupKFold); successive halving subsamples the training side of each fold."""
    folds = StratifiedGroupKFold(n_splits=cfg.cv, shuffle=True, random_state=cfg.seed)
    estimator = RandomForestClassifier(random_state=cfg.seed)
    if cfg.search == "halving":
        search = HalvingGridSearchCV(estimator, cfg.grid, factor=3, cv=folds, refit=False,
                                     random_state=cfg.seed, n_jobs=cfg.n_jobs)
    else:
        search = GridSearchCV(estimator, cfg.grid, cv=folds, refit=False, n_jobs=cfg.n_jobs)
    search.fit(x_train, y_train, groups=star_train)
    forest = RandomForestClassifier(random_state=cfg.seed, n_jobs=cfg.n_jobs,
                                    **search.best_params_).fit(x_train, y_train)
    return forest, search


def search_rounds(search: GridSearchCV, n_train: int) -> list[list[int]]:
    """[candidates, training sequences] of each round of the search (one for the full grid)."""
    if isinstance(search, HalvingGridSearchCV):
        return [[int(c), int(r)] for c, r in zip(search.n_candidates_, search.n_resources_,
                                                         strict=True)]
    return [[len(search.cv_results_["params"]), n_train]]


def baseline_variant(predictions: dict[str, np.ndarray], sequences: dict[str, np.ndarray],
                     photometric: bool, cfg: BaselineParams) -> dict[str, dict]:
    """Fit both feature sets for one variant; test accuracies per sequence and per star."""
    subset = predictions["subset"]
    train, test = subset == "train", subset == "test"
    if not train.any() or not test.any():
        raise VarnetError("predictions.npz needs train and test rows for the RF baseline "
                          "(retrain after `varnet split`)")
    label = np.asarray(predictions["label"], dtype=np.int64)
    star_id = np.asarray(predictions["star_id"])
    out = {}
    for features in FEATURE_SETS:
        x = feature_matrix(predictions, sequences, features, photometric)
        start = time.perf_counter()
        forest, search = fit_forest(x[train], label[train], star_id[train], cfg)
        seconds = time.perf_counter() - start
        proba = np.zeros((int(test.sum()), len(CLASSES)))
        proba[:, forest.classes_] = forest.predict_proba(x[test])
        _, means = metrics.star_means(star_id[test], proba=proba)
        star_label = metrics.star_labels(star_id[test], label[test])
        out[features] = {
            "sequence": {
                "train_accuracy": metrics.accuracy(label[train], forest.predict(x[train])),
                "test_accuracy": metrics.accuracy(label[test], proba.argmax(axis=1)),
            },
            "star": {"test_accuracy": metrics.accuracy(star_label,
                                                       means["proba"].argmax(axis=1))},
            "cv_accuracy": float(search.best_score_),
            "search_rounds": search_rounds(search, int(train.sum())),
            "best_params": dict(search.best_params_),
            "n_features": int(x.shape[1]),
            "fit_seconds": round(seconds, 1),
        }
    return out


def baseline_markdown(results: dict[str, dict], cfg: BaselineParams) -> str:
    lines = ["# Random-forest baseline", "",
             f"{SEARCH_NAMES[cfg.search]} over the paper's grid ({_grid_size(cfg)} "
             f"combinations, {cfg.cv}-fold CV grouped by star on the training set; `search` "
             "gives each round's candidates x training sequences); the best parameters refit "
             "on the whole training set and scored on the test set.",
             "", "| variant | features | test acc (sequence) | test acc (star) | CV acc "
             "| train acc | search | best parameters | fit s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, by_features in results.items():
        for features in FEATURE_SETS:
            r = by_features[features]
            best = ", ".join(f"{k}={v}" for k, v in r["best_params"].items())
            lines.append(
                f"| {variant} | {features} | {100 * r['sequence']['test_accuracy']:.1f}% "
                f"| {100 * r['star']['test_accuracy']:.1f}% | {100 * r['cv_accuracy']:.1f}% "
                f"| {100 * r['sequence']['train_accuracy']:.1f}% "
                f"| {', '.join(f'{c}x{n}' for c, n in r['search_rounds'])} | {best} "
                f"| {r['fit_seconds']} |")
    return "\n".join(lines) + "\n"


def _grid_size(cfg: BaselineParams) -> int:
    return int(np.prod([len(v) for v in cfg.grid.values()]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, default=schema.MODELS_DIR,
                        help="directory of trained variants (default: %(default)s)")
    parser.add_argument("--sequences", type=Path, default=schema.SEQUENCES_FILE,
                        help="sequence arrays with the raw aux features (default: %(default)s)")
    parser.add_argument("--split", type=Path, default=schema.SPLIT_FILE,
                        help="the split the variants were trained on; a variant trained on "
                             "other data is skipped (default: %(default)s)")
    parser.add_argument("--reports", type=Path, default=schema.REPORTS_DIR,
                        help="where baseline.json and baseline.md go (default: %(default)s)")


def run(args: argparse.Namespace, params: dict) -> int:
    cfg = section(BaselineParams, params)
    trained = list(section(TrainParams, params).variants)
    variants = trained if cfg.variants is None else list(cfg.variants)
    if unknown := sorted(set(variants) - set(trained)):
        raise VarnetError(f"params baseline.variants: {unknown} not in train.variants {trained}")
    sequences = files.read_npz(args.sequences)
    data = provenance.data_fingerprint(args.sequences, args.split)
    results: dict[str, dict] = {}
    for name in variants:
        folder = ModelFolder.of(name, args.models)
        if not folder.predictions.exists():
            print(f"  {name}: not trained ({folder.predictions} missing), skipped")
            continue
        if reason := provenance.trained_on_other_data(folder, data):
            print(f"  {name}: skipped, {reason}; retrain it (`varnet train {name}`)")
            continue
        predictions = files.read_npz(folder.predictions)
        photometric = bool(files.read_json(folder.variant).get("photometric", False))
        print(f"  {name}: {SEARCH_NAMES[cfg.search].lower()}, {_grid_size(cfg)} combinations "
              f"x {cfg.cv} folds "
              f"x {len(FEATURE_SETS)} feature sets ...", flush=True)
        results[name] = {**baseline_variant(predictions, sequences, photometric, cfg),
                         "provenance": {"data": data,
                                        "model": provenance.model_fingerprint(folder)}}
    if not results:
        raise VarnetError(f"no variant under {args.models}/ trained on {args.sequences} and "
                          f"{args.split} for the RF baseline")
    table = baseline_markdown(results, cfg)
    files.write_json(results, args.reports / "baseline.json")
    files.write_text(table, args.reports / "baseline.md")
    print(table, end="")
    print(f"wrote {args.reports / 'baseline.json'} and {args.reports / 'baseline.md'}")
    return 0
