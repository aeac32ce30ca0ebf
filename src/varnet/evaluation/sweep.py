"""Summarise an embedding-size sweep of DVC experiments into one table (reports/sweep.md).

The paper tried embedding sizes m = 8, 16, 32, 64 and found them "only marginally different".
Each size is one DVC experiment of the whole pipeline (train every variant, baseline, evaluate);
queue them, run them, then summarise:

  dvc exp run --queue -S model.embedding=8
  dvc exp run --queue -S model.embedding=16
  dvc exp run --queue -S model.embedding=32
  dvc exp run --queue -S model.embedding=64
  dvc queue start             # one worker: the experiments run one after another
  dvc queue status            # wait until all four are Success (logs: dvc queue logs <name>)
  varnet sweep                # reads `dvc exp show --json`, writes reports/sweep.md

(DVC's one-line sweep `-S model.embedding=8,16,32,64` needs hydra-core, which varnet does not
install.) The table has one row per experiment that has the DVC metrics of `varnet evaluate`
(reports/headline.json, the only metrics file `dvc exp show` reports) and the swept parameter,
sorted by its value; for every variant its test accuracy per sequence and per star, the novelty
AUROC and the median reconstruction R². Queued, running and failed experiments are listed below
the table. Each experiment's runs are also in MLflow
(`mlflow ui`), where the registered versions can be compared side by side.

Examples:
  varnet sweep
  varnet sweep --param train.lambda_energy          # a sweep over another parameter
  dvc exp show --json > exps.json && varnet sweep --exp-json exps.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from varnet.core import files, schema
from varnet.core.errors import VarnetError

PARAMS_FILE = "params.yaml"
METRICS_FILE = "reports/headline.json"
COLUMNS = ("accuracy", "star_accuracy", "novelty_auroc", "median_reconstruction_r2")
"""The headline numbers of a variant in a table cell, in this order."""


def exp_show_json() -> list[dict]:
    """The output of `dvc exp show --json` in the current repository."""
    try:
        done = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True,
                              check=False)
    except FileNotFoundError as exc:
        raise VarnetError("`dvc` not found on PATH (activate the virtualenv)") from exc
    if done.returncode != 0:
        raise VarnetError(f"`dvc exp show --json` failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def _params(state: dict) -> dict:
    return ((((state.get("data") or {}).get("params") or {}).get(PARAMS_FILE) or {})
            .get("data") or {})


def _states(entries: list[dict], status: str = "success",
            baseline: dict | None = None) -> Iterator[tuple[dict, str, dict]]:
    """Every commit/experiment state in the exp show tree, with its executor state and the
    params of the commit it derives from (a commit's own, for a commit)."""
    for entry in entries or []:
        base = _params(entry) if baseline is None else baseline
        yield entry, status, base
        for exp_range in entry.get("experiments") or []:
            executor = (exp_range.get("executor") or {}).get("state") or "success"
            yield from _states(exp_range.get("revs") or [], executor, base)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return out


def _other_changes(params: dict, baseline: dict, param: str) -> list[str]:
    """Params that differ from the baseline commit's, other than the swept one."""
    mine, base = _flat(params), _flat(baseline)
    return sorted(k for k in mine.keys() | base.keys()
                  if mine.get(k) != base.get(k) and k != param and not k.startswith(param + "."))


def _lookup(tree: dict, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def collect(exp_show: list[dict], param: str) -> tuple[list[dict], list[str]]:
    """(finished experiments with metrics that change only `param`, notes on the others)."""
    rows, notes = [], []
    for state, status, baseline in _states(exp_show):
        if state.get("rev") == "workspace":
            continue
        name = state.get("name") or str(state.get("rev", "?"))[:7]
        params = _params(state)
        value = _lookup(params, param)
        metrics = ((((state.get("data") or {}).get("metrics") or {}).get(METRICS_FILE) or {})
                   .get("data"))
        others = _other_changes(params, baseline, param)
        if status != "success" or state.get("error"):
            notes.append(f"{name}: {status}" + (f" ({param} = {value})" if value is not None
                                                 else ""))
        elif others:
            notes.append(f"{name}: also changes {', '.join(others)}")
        elif metrics and value is not None:
            rows.append({"name": name, "value": value, "metrics": metrics})
    rows.sort(key=lambda r: (_sort_key(r["value"]), r["name"]))
    return rows, notes


def _sort_key(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) else "—"


def sweep_markdown(rows: list[dict], notes: list[str], param: str) -> str:
    variants: list[str] = []
    for row in rows:
        variants += [v for v in row["metrics"] if v not in variants]
    header = ["experiment", f"`{param}`", *variants]
    lines = [f"# Sweep over `{param}`", "",
             "Per variant, from reports/headline.json (every number read from the test set): "
             "accuracy per sequence / accuracy per star / novelty AUROC (VAR positive) / median "
             "reconstruction R².", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["name"], str(row["value"])]
        for variant in variants:
            headline = row["metrics"].get(variant) or {}
            cells.append(" / ".join(_fmt(headline.get(key)) for key in COLUMNS))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if not rows:
        lines += ["No finished experiment with evaluation metrics yet.", ""]
    if notes:
        lines += ["Not in the table:", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", default="model.embedding",
                        help="the swept parameter of params.yaml (default: %(default)s)")
    parser.add_argument("--exp-json", type=Path,
                        help="saved `dvc exp show --json` output (default: run it now)")
    parser.add_argument("--out", type=Path, default=schema.REPORTS_DIR / "sweep.md",
                        help="markdown table to write (default: %(default)s)")


def run(args: argparse.Namespace, params: dict) -> int:
    exp_show = files.read_json(args.exp_json) if args.exp_json else exp_show_json()
    if not isinstance(exp_show, list):
        raise VarnetError("expected the JSON list that `dvc exp show --json` prints")
    rows, notes = collect(exp_show, args.param)
    table = sweep_markdown(rows, notes, args.param)
    files.write_text(table, args.out)
    print(table, end="")
    print(f"wrote {args.out} ({len(rows)} experiments)")
    return 0
