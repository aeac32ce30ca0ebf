"""`varnet promote`: the gate's rule, alias moves and the tags that record each decision."""

from __future__ import annotations

import json

import mlflow
import pytest
import tiny_project
import yaml

from varnet.core.config import PromoteParams
from varnet.core.errors import VarnetError
from varnet.serving.promote import CHALLENGER, CHAMPION, compare, get_alias, model_uri, promote

RULE = {"valid_accuracy": 0.0, "novelty_auroc": 0.01}
DATA = {"data.sequences": "aa11", "data.split": "bb22"}


def test_model_uri():
    assert model_uri("varnet") == "models:/varnet@champion"
    assert model_uri("x", "challenger") == "models:/x@challenger"


def test_first_candidate_passes_without_champion():
    gate = compare({"valid_accuracy": 0.9, "novelty_auroc": 0.8}, None, RULE, DATA, None)
    assert gate.passed and "first" in gate.summary()


@pytest.mark.parametrize(("candidate", "passed"), [
    ({"valid_accuracy": 0.95, "novelty_auroc": 0.85}, True),   # better on both
    ({"valid_accuracy": 0.90, "novelty_auroc": 0.791}, True),  # equal, AUROC within tolerance
    ({"valid_accuracy": 0.899, "novelty_auroc": 0.99}, False), # accuracy worse, no tolerance
    ({"valid_accuracy": 0.99, "novelty_auroc": 0.78}, False),  # AUROC beyond tolerance
])
def test_rule_every_metric_within_tolerance(candidate, passed):
    champion = {"valid_accuracy": 0.90, "novelty_auroc": 0.80}
    assert compare(candidate, champion, RULE, DATA, dict(DATA)).passed is passed


def test_refuses_other_data_and_missing_metrics():
    champion = {"valid_accuracy": 0.5, "novelty_auroc": 0.5}
    better = {"valid_accuracy": 0.9, "novelty_auroc": 0.9}
    gate = compare(better, champion, RULE, DATA, {**DATA, "data.split": "cc33"})
    assert not gate.passed and "data.split" in gate.summary()
    assert not compare(better, champion, RULE, {}, {}).passed
    gate = compare({"valid_accuracy": 0.9}, champion, RULE, DATA, DATA)
    assert not gate.passed and "novelty_auroc" in gate.summary()


def test_config_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        PromoteParams(metrics={"valid_accuracy": -0.1})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tracking store for the module (creating one costs seconds); tests use own names."""
    root = tmp_path_factory.mktemp("registry")
    tiny_project.forget_mlflow_state()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    yield mlflow.MlflowClient()
    tiny_project.forget_mlflow_state()


@pytest.fixture
def client(store):
    return store


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own in the shared store."""
    return "varnet-" + "".join(c if c.isalnum() else "-" for c in request.node.name)


def register(client: mlflow.MlflowClient, metrics: dict[str, float], name: str,
             data=DATA) -> str:
    """A registered version whose run carries ``metrics`` and data tags (no model needed)."""
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        mlflow.set_tags(data)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model",
                                           run.info.run_id).version)


def test_promotion_accepted_then_refused_then_forced(client, name):
    cfg = PromoteParams(metrics=RULE)
    v1 = register(client, {"valid_accuracy": 0.90, "novelty_auroc": 0.80}, name)
    outcome, *_ = promote(client, name, None, cfg)
    assert outcome == "promoted" and str(get_alias(client, name, CHAMPION).version) == v1
    assert client.get_model_version(name, v1).tags["promoted_from"] == "none"

    v2 = register(client, {"valid_accuracy": 0.85, "novelty_auroc": 0.90}, name)
    outcome, *_ = promote(client, name, None, cfg)
    assert outcome == "refused"
    assert str(get_alias(client, name, CHAMPION).version) == v1
    assert str(get_alias(client, name, CHALLENGER).version) == v2
    tags = client.get_model_version(name, v2).tags
    assert "refused_at" in tags and json.loads(tags["promotion_gate"])["passed"] is False

    with pytest.raises(VarnetError, match="--reason"):
        promote(client, name, v2, cfg, force=True)
    outcome, *_ = promote(client, name, v2, cfg, force=True, reason="better novelty")
    assert outcome == "forced" and str(get_alias(client, name, CHAMPION).version) == v2
    assert get_alias(client, name, CHALLENGER) is None
    tags = client.get_model_version(name, v2).tags
    assert tags["promotion_forced"] == "true" and tags["promotion_reason"] == "better novelty"
    assert tags["promoted_from"] == v1
    assert client.get_model_version(name, v1).tags["demoted_by"] == v2

    v3 = register(client, {"valid_accuracy": 0.91, "novelty_auroc": 0.90}, name)
    outcome, *_ = promote(client, name, "3", cfg, dry_run=True)
    assert outcome == "dry-run" and str(get_alias(client, name, CHAMPION).version) == v2
    outcome, *_ = promote(client, name, v3, cfg)
    assert outcome == "promoted" and str(get_alias(client, name, CHAMPION).version) == v3
    assert client.get_model_version(name, v3).tags["promotion_forced"] == "false"
    outcome, *_ = promote(client, name, CHAMPION, cfg)
    assert outcome == "already-champion"


def test_refused_on_other_data(client, name):
    cfg = PromoteParams(metrics=RULE)
    register(client, {"valid_accuracy": 0.5, "novelty_auroc": 0.5}, name)
    promote(client, name, None, cfg)
    register(client, {"valid_accuracy": 0.99, "novelty_auroc": 0.99}, name,
             data={**DATA, "data.sequences": "other"})
    outcome, _, _, gate = promote(client, name, None, cfg)
    assert outcome == "refused" and "same data" in gate.summary()


def test_unknown_model_version_or_alias(client, name):
    cfg = PromoteParams()
    with pytest.raises(VarnetError, match="no registered model"):
        promote(client, "nope", None, cfg)
    register(client, {"valid_accuracy": 0.5, "novelty_auroc": 0.5}, name)
    with pytest.raises(VarnetError, match="no version 9"):
        promote(client, name, "9", cfg)
    with pytest.raises(VarnetError, match="'staging'"):
        promote(client, name, "staging", cfg)


def test_command_exit_codes_and_messages(tmp_path, capsys):
    """`varnet promote` as users run it: 0 promoted, 1 refused, 2 bad input, no traceback."""
    from varnet.cli import main as varnet_main

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_project.tiny_params(tmp_path)))
    with tiny_project.inside(tmp_path):
        from varnet.core import tracking

        tracking.configure(tiny_project.tiny_params(tmp_path))
        client = mlflow.MlflowClient()
        register(client, {"valid_accuracy": 0.9, "novelty_auroc": 0.8}, "varnet")
        assert varnet_main(["promote"]) == 0
        assert "promoted: models:/varnet@champion -> v1" in capsys.readouterr().out
        register(client, {"valid_accuracy": 0.8, "novelty_auroc": 0.9}, "varnet")
        assert varnet_main(["promote", "--dry-run"]) == 0
        assert "would refuse" in capsys.readouterr().out
        assert varnet_main(["promote"]) == 1
        out = capsys.readouterr().out
        assert "valid_accuracy 0.8000 < 0.9000 - 0" in out and "@challenger -> v2" in out
        for argv, message in ((["--model", "nope"], "no registered model 'nope'"),
                              (["--version", "7"], "no version 7"),
                              (["--force"], "--force needs --reason")):
            assert varnet_main(["promote", *argv]) == 2
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err
