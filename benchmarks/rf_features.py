"""What the embedding lacks: a random forest on it alone and with each auxiliary input added.

A fixed forest (250 entropy trees, max_features 0.3, the released run's best) is fitted on a
trained variant's training embeddings and scored on its test sequences, per class, for the
embedding alone, the embedding plus each of mean mag, std and log10 P, and plus all three.
The column whose addition lifts the accuracy most is what the embedding drops (docs/results.md,
fourth round).

    .venv/bin/python -m benchmarks.rf_features                  # models/joint of `make run`
    .venv/bin/python -m benchmarks.rf_features --variant sequential
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from varnet.core import files, schema
from varnet.core.taxonomy import CLASSES
from varnet.model.network import AUX_NAMES
from varnet.scoring import metrics


def accuracies(x: np.ndarray, label: np.ndarray, train: np.ndarray, test: np.ndarray
               ) -> tuple[float, dict[str, float]]:
    """(test accuracy, test recall per class) of the fixed forest."""
    forest = RandomForestClassifier(250, criterion="entropy", max_features=0.3, random_state=0,
                                    n_jobs=2).fit(x[train], label[train])
    predicted = forest.predict(x[test])
    return (metrics.accuracy(label[test], predicted),
            metrics.per_class_recall(label[test], predicted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="joint")
    parser.add_argument("--models", type=Path, default=schema.MODELS_DIR)
    parser.add_argument("--sequences", type=Path, default=schema.SEQUENCES_FILE)
    args = parser.parse_args(argv)
    predictions = files.read_npz(schema.ModelFolder.of(args.variant, args.models).predictions)
    aux = files.read_npz(args.sequences)["aux"][predictions["index"]]
    embedding, label = predictions["embedding"], predictions["label"].astype(np.int64)
    train, test = predictions["subset"] == "train", predictions["subset"] == "test"
    feature_sets = {"embedding": embedding,
                    **{f"embedding + {name}": np.hstack([embedding, aux[:, [j]]])
                       for j, name in enumerate(AUX_NAMES)},
                    "embedding + aux": np.hstack([embedding, aux])}
    print(f"| {args.variant} | test acc | " + " | ".join(CLASSES) + " |")
    print("|---" * (len(CLASSES) + 2) + "|")
    for name, x in feature_sets.items():
        accuracy, recall = accuracies(x, label, train, test)
        print(f"| {name} | {100 * accuracy:.1f}% | "
              + " | ".join(f"{recall[name]:.2f}" for name in CLASSES) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
