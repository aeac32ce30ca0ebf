"""EROS-1 LMC and SDSS Stripe 82 go through snapshot -> validate -> sequences -> split with
nothing but a params overlay (configs/surveys/*.yaml), read in place from ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from varnet import cli
from varnet.core import files, schema, taxonomy

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "surveys"
ROOT_PARAMS = CONFIGS.parents[1] / "params.yaml"


@pytest.mark.parametrize(("overlay", "length", "classes"), [
    ("eros1-lmc.yaml", 100, {"CEPH", "ECL", "M"}),
    ("sdss-s82.yaml", 50, {"RRAB", "RRCD"}),
])
def test_real_survey_reaches_the_split_with_only_params(overlay, length, classes, shared_data,
                                                        tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT_PARAMS, project / "params.yaml")
    shutil.copy(CONFIGS / overlay, project / "overlay.yaml")
    # the overlays name ../shared/data relative to the project root
    (tmp_path / "shared").symlink_to(shared_data.parent)
    monkeypatch.chdir(project)
    argv = ["--params", "params.yaml", "--params", "overlay.yaml"]
    for stage in ("snapshot", "validate", "sequences", "split"):
        assert cli.main([*argv, stage]) == 0, f"{overlay}: stage {stage} failed"

    sequences = files.read_npz(schema.SEQUENCES_FILE)
    split = files.read_npz(schema.SPLIT_FILE)
    assert sequences["X"].shape[1] == length
    trained = {taxonomy.CLASSES[k] for k in np.unique(sequences["label"][split["train"]])}
    assert trained == classes
    assert not set(sequences["star_id"][split["train"]]) & set(
        sequences["star_id"][split["valid"]])
