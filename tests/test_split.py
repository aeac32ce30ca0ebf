"""Split: train/valid/test grouped by star (each star in one set) or by sequence (the paper's
assignment); the VAR stars halved into novel_valid and novel_test."""

from __future__ import annotations

import itertools
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


def test_star_split_puts_every_star_in_one_set_and_stratifies():
    label, star = survey_labels()
    split = split_indices(label, star, by="star", n_splits=5, fold=0, seed=0)
    assert list(split) == list(schema.SPLIT_ARRAYS)
    stars = {name: set(star[index]) for name, index in split.items()}
    for a, b in itertools.combinations(split, 2):
        assert not stars[a] & stars[b], f"{a} and {b} share stars"
    known = np.flatnonzero(label >= 0)
    np.testing.assert_array_equal(np.sort(np.r_[split["train"], split["valid"], split["test"]]),
                                  known)
    for name in ("valid", "test"):
        for k in range(K):
            held = np.unique(star[split[name]][label[split[name]] == k]).size
            assert 2 <= held <= 4, f"class {k}: {held} of 15 stars in {name}"
        assert 0.12 < split[name].size / known.size < 0.28
    for index in split.values():
        assert index.dtype == np.int64


def test_var_is_never_trained_on_and_is_halved_by_star():
    label, star = survey_labels()
    for by in ("star", "sequence"):
        split = split_indices(label, star, by=by)
        for name in ("train", "valid", "test"):
            assert (label[split[name]] >= 0).all()
        novel = np.sort(np.r_[split["novel_valid"], split["novel_test"]])
        np.testing.assert_array_equal(novel, np.flatnonzero(label == -1))
        assert not set(star[split["novel_valid"]]) & set(star[split["novel_test"]])
        assert np.unique(star[split["novel_valid"]]).size == 5  # of the 10 VAR stars


def test_sequence_split_uses_the_papers_stratified_kfold():
    label, star = survey_labels()
    split = split_indices(label, star, by="sequence")
    known = np.flatnonzero(label >= 0)
    folds = [held for _, held in StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
             .split(known, label[known])]
    np.testing.assert_array_equal(split["test"], np.sort(known[folds[0]]))
    np.testing.assert_array_equal(split["valid"], np.sort(known[folds[1]]))
    np.testing.assert_array_equal(split["train"], np.sort(known[np.r_[tuple(folds[2:])]]))


def test_fewer_than_three_folds_is_refused():
    label, star = survey_labels()
    with pytest.raises(VarnetError, match="at least 3"):
        split_indices(label, star, n_splits=2)


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
    assert (label[split["train"]] >= 0).all() and split["novel_test"].size > 0


def test_command_writes_indices_and_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    label, star = survey_labels()
    files.write_npz(schema.SEQUENCES_FILE, label=label, star_id=star,
                 classes=np.asarray(taxonomy.CLASSES, dtype=str))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"by": "star", "seed": 1}}))
    assert cli.main(["split"]) == 0
    assert "stars in two sets: none" in capsys.readouterr().out
    written = files.read_npz(schema.SPLIT_FILE)
    expected = split_indices(label, star, by="star", seed=1)
    for name in schema.SPLIT_ARRAYS:
        np.testing.assert_array_equal(written[name], expected[name])
    report = json.loads((schema.REPORTS_DIR / "split.json").read_text())
    assert (report["train_sequences"] + report["valid_sequences"] + report["test_sequences"]
            == int((label >= 0).sum()))
    assert report["novel"]["novel_valid"]["stars"] + report["novel"]["novel_test"]["stars"] == 10
    for name in ("valid", "test"):
        assert sum(c["stars"] for c in report["per_class"][name].values()) > 0
    assert not any(report["stars_shared"].values())


def test_bad_split_params_are_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"by": "random"}}))
    assert cli.main(["split"]) == 2
    assert "by must be one of" in capsys.readouterr().err
