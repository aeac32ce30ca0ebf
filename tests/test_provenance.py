"""core.provenance: the fingerprints each output records, and a trained variant's record of the
data it read, which evaluation checks (issue 12, item 11)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest
from tiny_project import inside, write_project

from varnet.core import files, provenance, schema
from varnet.core.errors import VarnetError
from varnet.core.schema import ModelFolder


def test_a_fingerprint_is_the_md5_dvc_records_of_each_file(tmp_path):
    (tmp_path / "sequences.npz").write_bytes(b"sequences")
    (tmp_path / "split.npz").write_bytes(b"split")
    assert provenance.data_fingerprint(tmp_path / "sequences.npz", tmp_path / "split.npz") == {
        "sequences.npz": hashlib.md5(b"sequences").hexdigest(),
        "split.npz": hashlib.md5(b"split").hexdigest()}


def test_a_missing_input_is_a_clear_error(tmp_path):
    (tmp_path / "sequences.npz").write_bytes(b"sequences")
    with pytest.raises(VarnetError, match="split.npz: file not found"):
        provenance.data_fingerprint(tmp_path / "sequences.npz", tmp_path / "split.npz")


def test_mismatch_names_each_file_that_differs():
    current = {"sequences.npz": "a" * 32, "split.npz": "b" * 32}
    assert provenance.mismatch(current, current) is None
    assert provenance.mismatch({**current, "split.npz": "c" * 32}, current) == (
        "split.npz recorded cccccccc, now bbbbbbbb")
    assert provenance.mismatch({"sequences.npz": "a" * 32}, current) == "split.npz not recorded"
    assert provenance.mismatch(None, current).startswith("no fingerprint recorded")


def test_training_records_its_data_and_evaluation_refuses_it_on_other_data(tmp_path):
    from varnet.evaluation import evaluate
    from varnet.prepare.split import split_indices
    from varnet.training.train import train_variant

    params = write_project(tmp_path)
    args = argparse.Namespace(models=Path("models"), reports=Path("reports"), no_mlflow=True,
                              sequences=schema.SEQUENCES_FILE, split=schema.SPLIT_FILE)
    with inside(tmp_path):
        train_variant("joint", params, Path("models/joint"), register=False)
        folder = ModelFolder(Path("models/joint"))
        recorded = files.read_json(folder.variant)["data"]
        assert recorded == provenance.data_fingerprint()

        assert evaluate.run(args, params) == 0
        metrics = json.loads(Path("reports/metrics.json").read_text())
        assert metrics["joint"]["provenance"] == {
            "data": recorded, "model": provenance.model_fingerprint(folder)}

        # `varnet split` rerun with another seed: the trained joint no longer fits the data
        sequences = files.read_npz(schema.SEQUENCES_FILE)
        files.write_npz(schema.SPLIT_FILE, **split_indices(
            sequences["label"], sequences["star_id"], by="star", n_splits=3, seed=1))
        with pytest.raises(VarnetError, match=r"models/joint/variant.json does not match the "
                                              r"data: split.npz recorded "):
            evaluate.run(args, params)
