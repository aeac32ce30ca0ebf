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


@pytest.mark.parametrize(("values", "message"), [
    ({"epochs": "ten"}, r"train\.epochs: must be an integer, got 'ten'"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"learning_rate": -1}, "learning_rate must be > 0"),
    ({"epochs": -3}, "epochs must be >= 1"),
    ({"deterministic": "yes"}, "must be true or false"),
    ({"class_weight": "inverse"}, "class_weight must be one of"),
])
def test_bad_train_values_are_rejected_where_they_are_parsed(values, message):
    with pytest.raises(VarnetError, match=message):
        from_dict(TrainParams, values)


def test_an_optional_number_may_be_null_and_an_integer_may_stand_for_a_float():
    assert from_dict(TuneParams, {"timeout_s": None}).timeout_s is None
    assert from_dict(TrainParams, {"learning_rate": 1}).learning_rate == 1
