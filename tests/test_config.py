"""The one way to read params: typed sections, nested and optional ones included."""

from __future__ import annotations

import pytest
import yaml

from varnet.core.config import (
    SECTIONS,
    EvaluateParams,
    PruningParams,
    TrainParams,
    TuneParams,
    VariantParams,
    from_dict,
    load_params,
    section,
)
from varnet.core.errors import VarnetError


def test_every_section_of_params_yaml_is_typed(project_root):
    params = load_params(project_root / "params.yaml")
    assert set(params) == set(SECTIONS)
    for cls in SECTIONS.values():
        assert isinstance(section(cls, params), cls)


def test_optional_nested_sections_are_built_or_stay_null():
    assert from_dict(TuneParams, {"pruning": {"percentile": 25}}).pruning == PruningParams(25)
    assert from_dict(TuneParams, {"pruning": None}).pruning is None
    with pytest.raises(VarnetError, match=r"tune\.pruning.*unknown key.*percentil\b"):
        from_dict(TuneParams, {"pruning": {"percentil": 25}})


def test_variants_are_typed_and_checked():
    train = from_dict(TrainParams, {"variants": {"j": {"mode": "joint"}}})
    assert train.variant("j") == VariantParams("joint", False)
    with pytest.raises(VarnetError, match=r"train\.variants\.j: mode must be one of"):
        from_dict(TrainParams, {"variants": {"j": {"mode": "both"}}})
    with pytest.raises(VarnetError, match="unknown variant 'x'"):
        train.variant("x")


def test_a_section_reads_another_sections_values_through_the_same_accessor():
    params = {"evaluate": {"percentiles": [90]}}
    assert section(EvaluateParams, params).percentiles == [90]
    assert section(TrainParams, params) == TrainParams()  # an absent section: the defaults


def test_an_unknown_top_level_section_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"trian": {"epochs": 3}}))
    with pytest.raises(VarnetError, match=r"unknown section\(s\) \['trian'\]"):
        load_params(path)
