"""Split the sequences into train and validation sets; every VAR sequence goes to `novel`.

Reads   data/processed/sequences.npz (from `varnet sequences`).
Writes  data/processed/split.npz: int64 indices into sequences.npz, `train` and `valid` (known
        classes only) and `novel` (all VAR sequences: never trained on, the positive class of
        novelty detection); reports/split.json: sequences and stars per class in each set.

Two ways to split, chosen by `split.by`:
  star      (default, honest) StratifiedGroupKFold grouped by star id: no sequence of a
            validation star is seen in training. Each class present needs >= n_splits stars;
            classes absent from the survey are allowed (real surveys lack some).
  sequence  (the paper) StratifiedKFold on sequences: sequences of one star land on both
            sides, which leaks the star's period, mean and label and inflates the scores.
Both shuffle with `seed`, stratify by class and keep fold `fold` of `n_splits` as validation;
the defaults (5 folds, fold 0, seed 0) are the paper's 80/20 split.

params.yaml:
  split:
    by: star        # star | sequence
    n_splits: 5
    fold: 0
    seed: 0

Example:
  varnet split                            # the DVC stage
  dvc exp run -S split.by=sequence        # reproduce the paper's leaky split
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
    """Indices of the train, valid and novel sequences (schema.SPLIT_ARRAYS).

    ``label`` is the class index per sequence (-1 = VAR); ``star_id`` groups sequences by star
    when ``by == "star"``. Raises VarnetError naming a class that is too small for the split.
    """
    label = np.asarray(label)
    star_id = np.asarray(star_id)
    n_classes = len(taxonomy.CLASSES)
    if label.size and (label.min() < -1 or label.max() >= n_classes):
        raise VarnetError(f"labels must be in [-1, {n_classes}), found {label.min()}..."
                          f"{label.max()}")
    known = np.flatnonzero(label >= 0)
    novel = np.flatnonzero(label < 0)
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
        folds = splitter.split(dummy, y, groups=star_id[known])
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = splitter.split(dummy, y)
    train, valid = next(itertools.islice(folds, fold, None))
    missing = [name for k, name in enumerate(taxonomy.CLASSES)
               if (y == k).any() and not (y[train] == k).any()]
    if missing:
        raise VarnetError(f"fold {fold} leaves class(es) {missing} without training sequences; "
                          f"try another split.seed or fewer split.n_splits")
    return {"train": np.sort(known[train]).astype(np.int64),
            "valid": np.sort(known[valid]).astype(np.int64),
            "novel": novel.astype(np.int64)}


def summarize(label: np.ndarray, star_id: np.ndarray, split: dict[str, np.ndarray],
              cfg: SplitParams) -> dict:
    """Sequences and stars per class in each set, and the stars shared by train and valid."""
    def counts(index: np.ndarray, k: int) -> dict[str, int]:
        mask = label[index] == k
        return {"sequences": int(mask.sum()), "stars": int(np.unique(star_id[index][mask]).size)}

    per_class = {subset: {name: counts(split[subset], k)
                          for k, name in enumerate(taxonomy.CLASSES)}
                 for subset in ("train", "valid")}
    shared = np.intersect1d(star_id[split["train"]], star_id[split["valid"]]).size
    n_known = split["train"].size + split["valid"].size
    return {
        "by": cfg.by, "n_splits": cfg.n_splits, "fold": cfg.fold, "seed": cfg.seed,
        "train_sequences": int(split["train"].size),
        "valid_sequences": int(split["valid"].size),
        "novel_sequences": int(split["novel"].size),
        "valid_fraction": split["valid"].size / n_known if n_known else 0.0,
        "stars_in_train_and_valid": int(shared),
        "per_class": per_class,
        "novel": counts(split["novel"], -1),
    }


def format_summary(summary: dict) -> str:
    per_class = summary["per_class"]
    lines = [
        f"split by {summary['by']} (fold {summary['fold']} of {summary['n_splits']}, seed "
        f"{summary['seed']}): train {summary['train_sequences']}, valid "
        f"{summary['valid_sequences']} ({summary['valid_fraction']:.1%}), novel "
        f"{summary['novel_sequences']} sequences",
        f"  {'class':6} {'train seq':>10} {'stars':>6} {'valid seq':>10} {'stars':>6}",
    ]
    for name, train in per_class["train"].items():
        valid = per_class["valid"][name]
        lines.append(f"  {name:6} {train['sequences']:10d} {train['stars']:6d} "
                     f"{valid['sequences']:10d} {valid['stars']:6d}")
    novel = summary["novel"]
    lines.append(f"  {taxonomy.NOVEL:6} novel: {novel['sequences']} sequences of "
                 f"{novel['stars']} stars")
    lines.append(f"  stars with sequences in both train and valid: "
                 f"{summary['stars_in_train_and_valid']}")
    lines += [f"  warning: no {name} sequence in validation"
              for name, valid in per_class["valid"].items() if not valid["sequences"]]
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
