"""Promote a registered model version to the `champion` alias if it is at least as good.

Everything downstream loads the model as `models:/<name>@champion` (`varnet score`, `mlflow models
serve`), so moving that alias is how a new model goes live, and moving it back is a rollback.

The gate compares the candidate's metrics with the champion's, both read from the MLflow runs
that produced the versions (train logs valid_accuracy and novelty_auroc, both read from the
valid and novel_valid stars only; evaluate adds eval.*, the test numbers, which must not be
gated on: params `promote.metrics` lists the valid ones).
Rule (params `promote.metrics`, metric -> tolerance, higher is better): the candidate passes when
every listed metric is >= the champion's value minus its tolerance. The comparison is only
meaningful on the same evaluation data, so the runs' data-version tags (`promote.data_tag_prefix`,
the md5s of the input files that train records) must be equal, else the gate refuses. With no
champion yet, the first candidate passes.

Aliases:
  champion    the version in use. Moves only when the gate passes or with --force.
  challenger  the last candidate the gate refused: kept addressable (models:/varnet@challenger)
              to compare or serve beside the champion; cleared when it is promoted.
Each decision is recorded as tags on the candidate version: promoted_at, promoted_from (the
previous champion's version or "none"), promotion_reason, promotion_forced, promotion_gate (the
comparison as JSON); a refusal sets refused_at and promotion_gate. The previous champion gets
demoted_at and demoted_by.

Exit status: 0 promoted (or already champion, or --dry-run), 1 refused by the gate.

Examples:
  varnet promote                           # the latest version of params mlflow.registered_model
  varnet promote --version 7 --dry-run     # show the comparison only
  varnet promote --version 5 --force --reason "roll back: v7 misclassifies bright Miras"
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from varnet.core.config import PromoteParams, section
from varnet.core.errors import VarnetError

CHAMPION = "champion"
CHALLENGER = "challenger"


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """The URI that loads a registered model by alias, e.g. ``models:/varnet@champion``."""
    return f"models:/{name}@{alias}"


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]
    comparison: dict[str, dict[str, float | None]]

    def summary(self) -> str:
        return "; ".join(self.reasons)


# --- pure rules ------------------------------------------------------------------------------

def data_version(tags: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith(prefix)}


def compare(candidate: dict[str, float], champion: dict[str, float] | None,
            rule: dict[str, float], candidate_data: dict[str, str] | None = None,
            champion_data: dict[str, str] | None = None) -> GateResult:
    """Apply the promotion rule (module docstring) to two runs' metrics and data versions."""
    comparison = {m: {"candidate": candidate.get(m),
                      "champion": None if champion is None else champion.get(m),
                      "tolerance": tol} for m, tol in rule.items()}
    missing = [m for m in rule if not _finite(candidate.get(m))]
    if missing:
        return GateResult(False, [f"candidate lacks metric(s) {missing} (run varnet evaluate, or "
                                  "change params promote.metrics)"], comparison)
    if champion is None:
        return GateResult(True, ["no champion yet: the first candidate is promoted"], comparison)
    if not candidate_data or candidate_data != champion_data:
        differing = sorted(k for k in set(candidate_data or {}) | set(champion_data or {})
                           if (candidate_data or {}).get(k) != (champion_data or {}).get(k))
        why = (f"data tags differ: {differing}" if candidate_data and champion_data
               else "a run has no data-version tags")
        return GateResult(False, [f"not evaluated on the same data as the champion ({why}); "
                                  "retrain both on one snapshot or use --force"], comparison)
    reasons, passed = [], True
    for metric, tol in rule.items():
        cand, champ = candidate[metric], champion.get(metric)
        if not _finite(champ):
            reasons.append(f"{metric}: champion has no value, not compared")
            continue
        ok = cand >= champ - tol
        passed &= ok
        reasons.append(f"{metric} {cand:.4f} {'>=' if ok else '<'} {champ:.4f} - {tol:g}")
    return GateResult(passed, reasons, comparison)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# --- registry access -------------------------------------------------------------------------

def get_alias(client: mlflow.MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def resolve_version(client: mlflow.MlflowClient, name: str, version: str | None) -> ModelVersion:
    """A version by number, by alias, or (None) the latest one."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        raise VarnetError(f"no registered model {name!r} in {mlflow.get_tracking_uri()} "
                          "(train one first: varnet train joint)") from exc
    if version is None:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise VarnetError(f"registered model {name!r} has no versions")
        return max(versions, key=lambda v: int(v.version))
    version = str(version)
    if version.isdigit():
        try:
            return client.get_model_version(name, version)
        except MlflowException as exc:
            raise VarnetError(f"model {name!r} has no version {version}") from exc
    found = get_alias(client, name, version)
    if found is None:
        raise VarnetError(f"model {name!r} has no version {version!r} (neither a number nor "
                          "an alias that is set)")
    return found


def run_record(client: mlflow.MlflowClient, mv: ModelVersion, prefix: str
               ) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, data-version tags) of the run that produced a model version."""
    if not mv.run_id:
        raise VarnetError(f"version {mv.version} of {mv.name!r} has no source run: its metrics "
                          "cannot be compared")
    try:
        run = client.get_run(mv.run_id)
    except MlflowException as exc:
        raise VarnetError(f"version {mv.version}: run {mv.run_id} not found ({exc})") from exc
    return dict(run.data.metrics), data_version(run.data.tags, prefix)


def promote(client: mlflow.MlflowClient, name: str, version: str | None, cfg: PromoteParams,
            *, force: bool = False, reason: str | None = None, dry_run: bool = False
            ) -> tuple[str, ModelVersion, ModelVersion | None, GateResult]:
    """Run the gate and move the aliases. Returns (outcome, candidate, champion, gate) where
    outcome is promoted | forced | refused | already-champion | dry-run."""
    if force and not (reason and reason.strip()):
        raise VarnetError("--force needs --reason: a forced promotion must say why")
    candidate = resolve_version(client, name, version)
    champion = get_alias(client, name, CHAMPION)
    cand_metrics, cand_data = run_record(client, candidate, cfg.data_tag_prefix)
    champ_metrics, champ_data = (run_record(client, champion, cfg.data_tag_prefix)
                                 if champion is not None else (None, None))
    gate = compare(cand_metrics, champ_metrics, cfg.metrics, cand_data, champ_data)
    if champion is not None and champion.version == candidate.version:
        return "already-champion", candidate, champion, gate
    if dry_run:
        return "dry-run", candidate, champion, gate
    now = datetime.now(UTC).isoformat(timespec="seconds")
    gate_json = json.dumps({"passed": gate.passed, "reasons": gate.reasons,
                            "metrics": gate.comparison})
    if not (gate.passed or force):
        client.set_registered_model_alias(name, CHALLENGER, candidate.version)
        _set_tags(client, candidate, {"refused_at": now, "promotion_gate": gate_json})
        return "refused", candidate, champion, gate
    client.set_registered_model_alias(name, CHAMPION, candidate.version)
    challenger = get_alias(client, name, CHALLENGER)
    if challenger is not None and challenger.version == candidate.version:
        client.delete_registered_model_alias(name, CHALLENGER)
    _set_tags(client, candidate, {
        "promoted_at": now,
        "promoted_from": str(champion.version) if champion is not None else "none",
        "promotion_reason": reason or gate.summary(),
        "promotion_forced": str(bool(force and not gate.passed)).lower(),
        "promotion_gate": gate_json,
    })
    if champion is not None:
        _set_tags(client, champion, {"demoted_at": now, "demoted_by": str(candidate.version)})
    return ("forced" if not gate.passed else "promoted"), candidate, champion, gate


def _set_tags(client: mlflow.MlflowClient, mv: ModelVersion, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(mv.name, str(mv.version), key, value)


# --- command ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", help="version number or alias to promote (default: latest)")
    parser.add_argument("--model", help="registered model name "
                        "(default: params mlflow.registered_model)")
    parser.add_argument("--force", action="store_true",
                        help="promote even if the gate refuses (needs --reason)")
    parser.add_argument("--reason", help="why; recorded on the version (required with --force)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the comparison, move nothing")


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from varnet.core import tracking

    cfg = section(PromoteParams, params)
    name = args.model or tracking.configure(params).registered_model
    client = mlflow.MlflowClient()
    outcome, candidate, champion, gate = promote(
        client, name, args.version, cfg, force=args.force, reason=args.reason,
        dry_run=args.dry_run)
    against = f"champion v{champion.version}" if champion is not None else "no champion"
    print(f"{name} v{candidate.version} vs {against}:")
    for line in gate.reasons:
        print(f"  {line}")
    messages = {
        "promoted": f"promoted: {model_uri(name)} -> v{candidate.version}",
        "forced": f"forced: {model_uri(name)} -> v{candidate.version} despite the gate "
                  f"({args.reason})",
        "refused": f"refused: {model_uri(name)} stays at v{champion.version if champion else '-'}"
                   f"; {model_uri(name, CHALLENGER)} -> v{candidate.version}",
        "already-champion": f"v{candidate.version} already holds {CHAMPION}: nothing to do",
        "dry-run": f"dry run: the gate would {'pass' if gate.passed else 'refuse'}",
    }
    print(messages[outcome])
    return 1 if outcome == "refused" else 0
