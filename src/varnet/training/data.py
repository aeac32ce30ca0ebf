"""The training data: the split subsets of sequences.npz (schema.SPLIT_ARRAYS), checked; tf.data.

Every check names the file and an example star, so a broken input stops training with a
message instead of a NaN loss several epochs later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from varnet.core import files, schema, taxonomy
from varnet.core.errors import VarnetError

SUBSETS = tuple(schema.SPLIT_ARRAYS)


@dataclass
class Subset:
    """One split subset: network inputs, targets and bookkeeping."""

    index: np.ndarray
    inputs: dict[str, np.ndarray]
    label: np.ndarray
    weight: np.ndarray
    star_id: np.ndarray


def load_data(photometric: bool, sequences: Path = schema.SEQUENCES_FILE,
              split: Path = schema.SPLIT_FILE) -> dict[str, Subset]:
    """The split subsets, checked: finite inputs, known labels, the class order."""
    arrays = files.read_npz(sequences)
    indices = files.read_npz(split)
    needed = ["X", "weight", "aux", "label", "star_id"] + (["phot"] if photometric else [])
    if missing := [k for k in needed if k not in arrays]:
        raise VarnetError(f"{sequences}: missing arrays {missing} (rerun `varnet sequences`)")
    if "classes" in arrays and tuple(arrays["classes"].tolist()) != taxonomy.CLASSES:
        raise VarnetError(f"{sequences}: classes {arrays['classes'].tolist()} differ from "
                          f"{list(taxonomy.CLASSES)}")
    if missing := [k for k in SUBSETS if k not in indices]:
        raise VarnetError(f"{split}: missing set(s) {missing} (written by an older `varnet "
                          "split`; rerun it)")
    n = len(arrays["label"])
    subsets = {}
    for name in SUBSETS:
        index = np.asarray(indices[name], dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise VarnetError(f"{split}: {name} indices outside [0, {n}) of {sequences}; "
                              "rerun `varnet split`")
        inputs = {"X": arrays["X"][index].astype(np.float32),
                  "aux": arrays["aux"][index].astype(np.float32)}
        if photometric:
            inputs["phot"] = arrays["phot"][index].astype(np.float32)
        subsets[name] = Subset(index, inputs, arrays["label"][index].astype(np.int32),
                               arrays["weight"][index].astype(np.float32),
                               arrays["star_id"][index].astype(str))
    _check(subsets, sequences)
    return subsets


def _check(subsets: dict[str, Subset], path: Path) -> None:
    train = subsets["train"]
    if len(train.index) == 0:
        raise VarnetError(f"{path}: no training sequences in the split")
    for name, subset in subsets.items():
        for key in ("X", "aux"):
            values = subset.inputs[key]
            bad = ~np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
            if bad.any():
                raise VarnetError(f"{path}: {int(bad.sum())} {name} sequence(s) with non-finite "
                                  f"{key}, e.g. star {subset.star_id[bad][0]}")
        if name in schema.NOVEL_SUBSETS:
            continue
        bad = ~(np.isfinite(subset.weight) & (subset.weight >= 0)).all(axis=1)
        if bad.any():
            raise VarnetError(f"{path}: {int(bad.sum())} {name} sequence(s) with a non-finite or "
                              f"negative weight s/err, e.g. star {subset.star_id[bad][0]}")
        if ((subset.label < 0) | (subset.label >= len(taxonomy.CLASSES))).any():
            raise VarnetError(f"{path}: {name} holds sequences without a known class label")


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Training batches per epoch: a ragged last batch is dropped (a GMM fitted on a handful
    of samples is noise) unless the whole set fits in one."""
    return n_rows // batch_size if n_rows > batch_size else 1


def training_batches(inputs: dict, subset: Subset, batch_size: int, seed: tuple[int, int],
                     epochs: range) -> tf.data.Dataset:
    """The training batches of ``epochs``, one epoch after the other, each exactly
    ``steps_per_epoch`` long. Epoch e's order is a stateless shuffle keyed by (seed, e) alone, so
    a training resumed at epoch e sees the batches an uninterrupted one would have seen."""
    tensors = tf.nest.map_structure(tf.constant, (inputs, targets(subset)))
    n_rows = len(subset.label)
    drop = n_rows > batch_size
    key = tf.constant(seed, tf.int64)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n_rows, dtype=tf.int64), seed=tf.random.experimental.stateless_fold_in(
                key, epoch))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop)

    epoch_numbers = tf.data.Dataset.from_tensor_slices(tf.constant(list(epochs), tf.int64))
    return _prefetched(epoch_numbers.flat_map(epoch_order).map(
        lambda rows: tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors)))


def evaluation_batches(inputs: dict, subset: Subset, batch_size: int) -> tf.data.Dataset:
    """All rows in their stored order, the last batch possibly short."""
    return _prefetched(tf.data.Dataset.from_tensor_slices((inputs, targets(subset)))
                       .batch(batch_size))


def _prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Two batches prepared ahead, without tf.data's autotuner. Its background thread took CPU
    from the two cores' training (epochs 10-20% slower) and, at the end of each phase, blocked
    the iterator's destruction for ~1.5 s per epoch of the phase (54 s after 35 epochs,
    measured with py-spy); a gather of a few batches needs no tuning."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def targets(subset: Subset) -> dict[str, np.ndarray]:
    return {"label": subset.label, "weight": subset.weight}
