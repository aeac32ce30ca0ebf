"""Split the sequences by star into train, valid and test; the VAR stars into two halves.

Reads   data/processed/sequences.npz (from `varnet sequences`).
Writes  data/processed/split.npz: int64 indices into sequences.npz (schema.SPLIT_ARRAYS):
        `train`, `valid`, `test` (known classes) and `novel_valid`, `novel_test` (VAR: never
        trained on, the positive class of novelty detection); reports/split.json: sequences and
        stars per class in each set.

Three sets, because choosing and reporting must not read the same stars: `valid` (with
`novel_valid`) is what early stopping, the Optuna objectives, the promotion gate, the
calibration and every threshold read; `test` (with `novel_test`) is only ever reported
(Table 2, the README, the benchmarks). Of `n_splits` stratified folds, fold `fold` is test,
the next one valid and the rest train (3/1/1 with the default 5). The VAR stars are halved at
random (seeded) by star.

Two ways to assign the known sequences, chosen by `split.by`:
  star      (default, honest) StratifiedGroupKFold grouped by star id: no sequence of a valid or
            test star is seen in training. Each class present needs >= n_splits stars; classes
            absent from the survey are allowed (real surveys lack some).
  sequence  (the paper's, for comparison) StratifiedKFold on sequences: sequences of one star
            land in several sets, which leaks the star's period, mean and label and inflates
            the scores.

params.yaml:
  split:
    by: star        # star | sequence
    n_splits: 5     # >= 3: test, valid and at least one training fold
    fold: 0         # the test fold; valid is the next one
    seed: 0

Example:
  varnet split                            # the DVC stage
  dvc exp run -S split.by=sequence        # the paper's leaky assignment
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from varnet.core import files, schema, taxonomy
from varnet.core.config import SplitParams, section
from varnet.core.errors import VarnetError

REPORT_FILE = schema.REPORTS_DIR / "split.json"
def split_indices(label: np.ndarray, star_id: np.ndarray, by: str = "star", n_splits: int = 5,
                  fold: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of the schema.SPLIT_ARRAYS sets.

    ``label`` is the class index per sequence (-1 = VAR); ``star_id`` groups sequences by star
    when ``by == "star"``. Raises VarnetError naming a class that is too small for the split.
    """
    label = np.asarray(label)
    star_id = np.asarray(star_id)
    n_classes = len(taxonomy.CLASSES)
    if label.size and (label.min() < -1 or label.max() >= n_classes):
        raise VarnetError(f"labels must be in [-1, {n_classes}), found {label.min()}..."
                          f"{label.max()}")
    if n_splits < 3:
        raise VarnetError(f"split.n_splits is {n_splits}: a test, a valid and a training fold "
                          "need at least 3")
    known = np.flatnonzero(label >= 0)
    y = label[known]
    for k, name in enumerate(taxonomy.CLASSES):
        if by == "star":
            count, unit = np.unique(star_id[known][y == k]).size, "stars with sequences"
            hint = "lower split.n_splits, use split.by: sequence"
        else:
            count, unit = int((y == k).sum()), "sequences"
            hint = "lower split.n_splits"
        if 0 < count < n_splits:  # absent classes are allowed: real surveys lack some
            raise VarnetError(f"class {name} has {count} {unit}, too few for a {n_splits}-fold "
                              f"split by {by} (each fold needs one): {hint}, or add {name} stars")
    dummy = np.zeros((known.size, 1))
    if by == "star":
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = [held for _, held in splitter.split(dummy, y, groups=star_id[known])]
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = [held for _, held in splitter.split(dummy, y)]
    test, valid = folds[fold], folds[(fold + 1) % n_splits]
    train = np.setdiff1d(np.arange(known.size), np.r_[test, valid])
    missing = [name for k, name in enumerate(taxonomy.CLASSES)
               if (y == k).any() and not (y[train] == k).any()]
    if missing:
        raise VarnetError(f"fold {fold} leaves class(es) {missing} without training sequences; "
                          f"try another split.seed or fewer split.n_splits")
    novel_valid, novel_test = _halve_by_star(np.flatnonzero(label < 0), star_id, seed)
    return {"train": np.sort(known[train]).astype(np.int64),
            "valid": np.sort(known[valid]).astype(np.int64),
            "test": np.sort(known[test]).astype(np.int64),
            "novel_valid": novel_valid, "novel_test": novel_test}


def _halve_by_star(novel: np.ndarray, star_id: np.ndarray, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The novel sequences of a random half of their stars, and of the other half."""
    stars = np.unique(star_id[novel])
    chosen = np.random.default_rng(seed).permutation(stars)[: (stars.size + 1) // 2]
    in_valid = np.isin(star_id[novel], chosen)
    return (np.sort(novel[in_valid]).astype(np.int64),
            np.sort(novel[~in_valid]).astype(np.int64))


def summarize(label: np.ndarray, star_id: np.ndarray, split: dict[str, np.ndarray],
              cfg: SplitParams) -> dict:
    """Sequences and stars per class in each set, and the stars that two sets share."""
    def counts(index: np.ndarray, k: int) -> dict[str, int]:
        mask = label[index] == k
        return {"sequences": int(mask.sum()), "stars": int(np.unique(star_id[index][mask]).size)}

    known_sets = ("train", "valid", "test")
    per_class = {subset: {name: counts(split[subset], k)
                          for k, name in enumerate(taxonomy.CLASSES)}
                 for subset in known_sets}
    shared = {f"{a}_{b}": int(np.intersect1d(star_id[split[a]], star_id[split[b]]).size)
              for a, b in itertools.combinations(schema.SPLIT_ARRAYS, 2)}
    n_known = sum(split[s].size for s in known_sets)
    return {
        "by": cfg.by, "n_splits": cfg.n_splits, "fold": cfg.fold, "seed": cfg.seed,
        **{f"{subset}_sequences": int(split[subset].size) for subset in schema.SPLIT_ARRAYS},
        **{f"{subset}_fraction": split[subset].size / n_known if n_known else 0.0
           for subset in known_sets},
        "stars_shared": shared,
        "per_class": per_class,
        "novel": {subset: counts(split[subset], -1) for subset in schema.NOVEL_SUBSETS},
    }


def format_summary(summary: dict) -> str:
    per_class = summary["per_class"]
    sets = tuple(per_class)
    lines = [
        f"split by {summary['by']} (test fold {summary['fold']} of {summary['n_splits']}, seed "
        f"{summary['seed']}): " + ", ".join(
            f"{s} {summary[f'{s}_sequences']} ({summary[f'{s}_fraction']:.0%})" for s in sets)
        + " sequences",
        f"  {'class':6} " + " ".join(f"{s + ' seq':>10} {'stars':>6}" for s in sets),
    ]
    for name in per_class["train"]:
        lines.append(f"  {name:6} " + " ".join(
            f"{per_class[s][name]['sequences']:10d} {per_class[s][name]['stars']:6d}"
            for s in sets))
    for subset, novel in summary["novel"].items():
        lines.append(f"  {taxonomy.NOVEL:6} {subset}: {novel['sequences']} sequences of "
                     f"{novel['stars']} stars")
    shared = {pair: n for pair, n in summary["stars_shared"].items() if n}
    lines.append("  stars in two sets: " + (", ".join(f"{pair} {n}" for pair, n in
                                                       shared.items()) or "none"))
    lines += [f"  warning: no {name} sequence in {s}" for s in sets[1:]
              for name, c in per_class[s].items() if not c["sequences"]
              and per_class["train"][name]["sequences"]]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequences", type=Path, default=schema.SEQUENCES_FILE,
                        help="sequence arrays to split (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=schema.SPLIT_FILE,
                        help="split indices to write (default: %(default)s)")
    parser.add_argument("--report", type=Path, default=REPORT_FILE,
                        help="counts per class and set, JSON (default: %(default)s)")


def run(args: argparse.Namespace, params: dict) -> int:
    cfg = section(SplitParams, params)
    arrays = files.read_npz(args.sequences)
    missing = [k for k in ("label", "star_id", "classes") if k not in arrays]
    if missing:
        raise VarnetError(f"{args.sequences}: missing array(s) {missing}; rerun `varnet sequences`")
    if tuple(arrays["classes"].tolist()) != taxonomy.CLASSES:
        raise VarnetError(f"{args.sequences}: classes {arrays['classes'].tolist()} differ from "
                          f"{list(taxonomy.CLASSES)}; rerun `varnet sequences`")
    label, star_id = arrays["label"], arrays["star_id"]
    split = split_indices(label, star_id, by=cfg.by, n_splits=cfg.n_splits, fold=cfg.fold,
                          seed=cfg.seed)
    summary = summarize(label, star_id, split, cfg)
    print(format_summary(summary))
    files.write_npz(args.out, **split)
    files.write_json(summary, args.report)
    print(f"wrote {args.out} and {args.report}")
    return 0
