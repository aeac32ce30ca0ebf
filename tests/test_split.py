"""Split: grouped by star (no star on both sides) or the paper's split by sequence; VAR apart."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from sklearn.model_selection import StratifiedKFold

from varnet import cli
from varnet.core import files, schema, taxonomy
from varnet.core.errors import VarnetError
from varnet.prepare.split import split_indices

K = len(taxonomy.CLASSES)


def survey_labels(stars_per_class: int = 15, var_stars: int = 10, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(label, star_id) per sequence: 1-4 sequences per star, classes then VAR (-1)."""
    rng = np.random.default_rng(seed)
    labels, stars = [], []
    star_labels = np.repeat(np.arange(-1, K), [var_stars] + [stars_per_class] * K)
    for i, label in enumerate(star_labels):
        n_sequences = rng.integers(1, 5)
        labels += [label] * n_sequences
        stars += [f"star{i:04d}"] * n_sequences
    order = rng.permutation(len(labels))  # sequences need not be grouped by star
    return np.array(labels, dtype=np.int16)[order], np.array(stars)[order]


def test_star_split_keeps_every_star_on_one_side_and_stratifies():
    label, star = survey_labels()
    split = split_indices(label, star, by="star", n_splits=5, fold=0, seed=0)
    assert not set(star[split["train"]]) & set(star[split["valid"]])
    known = np.flatnonzero(label >= 0)
    np.testing.assert_array_equal(np.sort(np.r_[split["train"], split["valid"]]), known)
    for k in range(K):
        in_valid = np.unique(star[split["valid"]][label[split["valid"]] == k]).size
        assert 2 <= in_valid <= 4, f"class {k}: {in_valid} of 15 stars in validation"
    assert 0.12 < split["valid"].size / known.size < 0.28
    for name in ("train", "valid", "novel"):
        assert split[name].dtype == np.int64


def test_var_never_enters_train_or_valid_and_all_of_it_is_novel():
    label, star = survey_labels()
    for by in ("star", "sequence"):
        split = split_indices(label, star, by=by)
        assert (label[split["train"]] >= 0).all() and (label[split["valid"]] >= 0).all()
        np.testing.assert_array_equal(split["novel"], np.flatnonzero(label == -1))


def test_sequence_split_is_exactly_the_papers_stratified_kfold():
    label, star = survey_labels()
    split = split_indices(label, star, by="sequence")
    known = np.flatnonzero(label >= 0)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(known, label[known])
    train, valid = next(folds)
    np.testing.assert_array_equal(split["train"], known[train])
    np.testing.assert_array_equal(split["valid"], known[valid])


def test_split_is_deterministic_and_seeded():
    label, star = survey_labels()
    first = split_indices(label, star, by="star", seed=3)
    again = split_indices(label, star, by="star", seed=3)
    other = split_indices(label, star, by="star", seed=4)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["valid"], other["valid"])


def test_a_class_too_small_to_split_is_named():
    label, star = survey_labels()
    ceph_stars = np.unique(star[label == 0])
    label[np.isin(star, ceph_stars[3:])] = -1  # leave CEPH with 3 stars
    with pytest.raises(VarnetError, match=r"class CEPH has 3 stars with sequences.*5-fold"):
        split_indices(label, star, by="star")
    label[np.isin(star, ceph_stars[1:])] = -1  # one CEPH star left: too few sequences too
    with pytest.raises(VarnetError, match=r"class CEPH has \d sequences"):
        split_indices(label, star, by="sequence")


def test_classes_absent_from_the_survey_are_allowed():
    """Real surveys (EROS-1, Stripe 82) hold only some of the 8 classes."""
    label, star = survey_labels()
    sr = taxonomy.CLASSES.index("SR")
    label[label == sr] = -1
    split = split_indices(label, star, by="star")
    assert not (label[split["train"]] == sr).any()
    assert (label[split["train"]] >= 0).all() and split["novel"].size > 0


def test_command_writes_indices_and_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    label, star = survey_labels()
    files.write_npz(schema.SEQUENCES_FILE, label=label, star_id=star,
                 classes=np.asarray(taxonomy.CLASSES, dtype=str))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"by": "star", "seed": 1}}))
    assert cli.main(["split"]) == 0
    assert "stars with sequences in both train and valid: 0" in capsys.readouterr().out
    written = files.read_npz(schema.SPLIT_FILE)
    expected = split_indices(label, star, by="star", seed=1)
    for name in ("train", "valid", "novel"):
        np.testing.assert_array_equal(written[name], expected[name])
    report = json.loads((schema.REPORTS_DIR / "split.json").read_text())
    assert report["train_sequences"] + report["valid_sequences"] == int((label >= 0).sum())
    assert report["novel"]["stars"] == 10
    assert sum(c["stars"] for c in report["per_class"]["valid"].values()) > 0


def test_bad_split_params_are_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"by": "random"}}))
    assert cli.main(["split"]) == 2
    assert "by must be one of" in capsys.readouterr().err
