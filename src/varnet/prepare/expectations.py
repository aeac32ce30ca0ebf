"""Great Expectations (GX Core 1.x) suites and checkpoints of the `validate` stage.

The GX project is file based, in gx/ at the project root. Every run rebuilds the suites from
params.yaml (thresholds are literal values in gx/expectations/*.json, so the committed files
show the contract in force) but writes a file only when its content changed, so gx/ changes in
git only when the cuts do. Validation results and Data Docs go to gx/uncommitted/ (not committed):
open gx/uncommitted/data_docs/local_site/index.html.

Four suites, each with its own dataframe asset, validation definition and Checkpoint (a
Checkpoint's batch parameters, here the dataframe, are shared by all its validation
definitions, so one frame means one checkpoint). Data Docs are built once per run for the
run's results (`Project.build_docs`), not by a checkpoint action: a docs build costs ~1 s of
template compiling, four of them were half the stage's GX time.

raw_catalog      the snapshot's catalog: schema.CATALOG_COLUMNS present, id unique and not null,
                 numeric columns numeric, superclass in the taxonomy (null = unknown type, a
                 counted cut), physical ranges (class_probability in [0, 1], ra, dec)
raw_lightcurves  the snapshot's epochs: columns present, id/band not null, time/mag/err numeric
lightcurves      the clean epochs written to data/interim: finite, err > 0, mag below the
                 sentinel, times strictly increasing within each (id, band), ids of kept stars
post_cut         the kept stars: every enabled cut holds (written from params, not from the
                 cut code, so a bug in cuts.py is caught), epoch counts recounted from the clean
                 light curves, and every group present in the raw catalog still has a star

A failed checkpoint raises VarnetError naming the suite, each failed expectation (type,
column, kwargs, the rule it encodes) and its unexpected count with example star ids.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
from great_expectations.exceptions import DataContextError
from great_expectations.expectations.row_conditions import Column

from varnet.core.config import CutsParams
from varnet.core.errors import VarnetError
from varnet.core.schema import CATALOG_COLUMNS, CUT_COLUMNS, LIGHTCURVE_COLUMNS
from varnet.core.taxonomy import CLASSES, NOVEL
from varnet.prepare.cuts import MIN_MAG

DATASOURCE = "varnet"
DATA_DOCS = Path("gx/uncommitted/data_docs/local_site/index.html")
FINITE = float(np.finfo(np.float64).max)
"""``between(-FINITE, FINITE)`` is how a GX expectation says "finite" (NaN is checked apart)."""
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "int16", "Float64", "Int64", "Int32"]
"""dtype names accepted for numeric columns. Only numeric columns get a type expectation:
on pandas 3 string columns have dtype ``str``, which the type expectations misjudge."""
GROUPS_PARAMETER = "groups_present"
IDS_PARAMETER = "kept_ids"

_NOT_VAR = Column("superclass") != NOVEL


@dataclass
class Suite:
    name: str
    expectations: list[gxe.Expectation]
    key_columns: list[str] = field(default_factory=lambda: ["id"])
    """Columns that identify a row in error messages (e.g. the star id)."""


def _rule(expectation: gxe.Expectation, notes: str) -> gxe.Expectation:
    """Attach the human rule (shown in Data Docs and in error messages)."""
    expectation.notes = notes
    return expectation


def _numeric(column: str) -> gxe.Expectation:
    return _rule(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES),
                 f"{column} is numeric")


def raw_catalog_suite() -> Suite:
    numeric = [c for c, doc in CATALOG_COLUMNS.items() if doc.startswith("float")]
    return Suite("raw_catalog", [
        _rule(gxe.ExpectTableRowCountToBeBetween(min_value=1), "the survey has at least one star"),
        *[_rule(gxe.ExpectColumnToExist(column=c), f"required column {c}: {doc}")
          for c, doc in CATALOG_COLUMNS.items()],
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="id"), "every star has an id"),
        _rule(gxe.ExpectColumnValuesToBeUnique(column="id"), "star ids are unique"),
        *[_numeric(c) for c in numeric],
        _rule(gxe.ExpectColumnValuesToBeInSet(column="superclass", value_set=[*CLASSES, NOVEL]),
              "superclass is one of the 8 classes or VAR (null = unknown type, cut and counted)"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="class_probability", min_value=0.0,
                                                max_value=1.0),
              "class_probability is a probability (NaN allowed)"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="ra", min_value=0.0, max_value=360.0),
              "ra in degrees (NaN allowed)"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="dec", min_value=-90.0, max_value=90.0),
              "dec in degrees (NaN allowed)"),
    ])


def raw_lightcurves_suite() -> Suite:
    return Suite("raw_lightcurves", [
        _rule(gxe.ExpectTableRowCountToBeBetween(min_value=1), "the survey has at least one epoch"),
        *[_rule(gxe.ExpectColumnToExist(column=c), f"required column {c}: {doc}")
          for c, doc in LIGHTCURVE_COLUMNS.items()],
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="id"), "every epoch names its star"),
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="band"), "every epoch names its band"),
        *[_numeric(c) for c in ("time", "mag", "err")],
    ], key_columns=["id", "band", "time"])


def lightcurves_suite(cfg: CutsParams) -> Suite:
    """Sanity of the clean epochs, on `lightcurve_frame` (the epochs plus their time step)."""
    return Suite("lightcurves", [
        _rule(gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*LIGHTCURVE_COLUMNS, "dt"]),
              "schema.LIGHTCURVE_COLUMNS (+ dt, the time step added for this check)"),
        *[_rule(gxe.ExpectColumnValuesToNotBeNull(column=c), f"{c} is never null")
          for c in LIGHTCURVE_COLUMNS],
        _rule(gxe.ExpectColumnValuesToBeBetween(column="time", min_value=-FINITE,
                                                max_value=FINITE), "time is finite"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="mag", min_value=MIN_MAG,
                                                max_value=cfg.sentinel_mag, strict_max=True),
              f"mag is at least {MIN_MAG:g} (no star is brighter) and below the sentinel "
              f"{cfg.sentinel_mag:g} (cuts.sentinel_mag)"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="err", min_value=0.0, strict_min=True,
                                                max_value=FINITE), "err is finite and > 0"),
        _rule(gxe.ExpectColumnValuesToBeBetween(column="dt", min_value=0.0, strict_min=True),
              "times strictly increase within each (id, band): sorted, no duplicates"),
        _rule(gxe.ExpectColumnValuesToBeInSet(column="id",
                                              value_set={"$PARAMETER": IDS_PARAMETER}),
              "every epoch belongs to a kept star"),
    ], key_columns=["id", "band", "time"])


def post_cut_suite(cfg: CutsParams) -> Suite:
    """The contract of the kept stars, on `post_cut_frame`, written from the params alone."""
    expectations = [
        _rule(gxe.ExpectTableRowCountToBeBetween(min_value=1), "some stars survive the cuts"),
        _rule(gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=[*CATALOG_COLUMNS, *CUT_COLUMNS, "lc_epochs"]),
            "schema.CATALOG_COLUMNS + CUT_COLUMNS (+ lc_epochs, recounted for this check)"),
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="id"), "every star has an id"),
        _rule(gxe.ExpectColumnValuesToBeUnique(column="id"), "star ids are unique"),
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="superclass"), "unknown types are cut"),
        _rule(gxe.ExpectColumnValuesToBeInSet(column="superclass", value_set=[*CLASSES, NOVEL]),
              "kept stars are in the 8 classes or VAR"),
        _rule(gxe.ExpectColumnDistinctValuesToContainSet(
            column="superclass", value_set={"$PARAMETER": GROUPS_PARAMETER}),
            "every class (and VAR) present in the raw catalog keeps at least one star"),
        _rule(gxe.ExpectColumnValuesToNotBeNull(column="period"), "every kept star has a period"),
        _rule(gxe.ExpectColumnPairValuesToBeEqual(column_A="n_epochs", column_B="lc_epochs"),
              "n_epochs = epochs of the star's best band in the interim light curves"),
    ]
    if cfg.period_range is None:
        expectations.append(_rule(gxe.ExpectColumnValuesToBeBetween(
            column="period", min_value=0.0, strict_min=True), "period > 0"))
    else:
        low, high = cfg.period_range
        expectations.append(_rule(gxe.ExpectColumnValuesToBeBetween(
            column="period", min_value=low, max_value=high),
            f"period in [{low:g}, {high:g}] d (cuts.period_range)"))
    if cfg.min_epochs is not None:
        expectations.append(_rule(gxe.ExpectColumnValuesToBeBetween(
            column="lc_epochs", min_value=cfg.min_epochs),
            f">= {cfg.min_epochs} good epochs (cuts.min_epochs)"))
    if cfg.min_class_probability is not None:
        expectations += _not_var_between(
            "class_probability", f"class_probability >= {cfg.min_class_probability:g} for "
            "non-VAR stars (cuts.min_class_probability)",
            min_value=cfg.min_class_probability, max_value=1.0)
    if cfg.mag_range is not None:
        low, high = cfg.mag_range
        expectations += [_rule(gxe.ExpectColumnValuesToBeBetween(
            column="mean_vmag", min_value=low, max_value=high, strict_min=True, strict_max=True),
            f"{low:g} < mean_vmag < {high:g} for every star (cuts.mag_range)"),
            _rule(gxe.ExpectColumnValuesToNotBeNull(column="mean_vmag"),
                  "mean_vmag is known for every star (cuts.mag_range)")]
    if cfg.max_ss_resid is not None:
        expectations += _not_var_between(
            "ss_resid", f"ss_resid <= {cfg.max_ss_resid:g} for non-VAR stars (cuts.max_ss_resid)",
            min_value=0.0, max_value=cfg.max_ss_resid)
    return Suite("post_cut", expectations)


def _not_var_between(column: str, notes: str, **bounds: Any) -> list[gxe.Expectation]:
    """NaN passes a GX range check, so a non-null check goes with it."""
    return [
        _rule(gxe.ExpectColumnValuesToNotBeNull(column=column, row_condition=_NOT_VAR), notes),
        _rule(gxe.ExpectColumnValuesToBeBetween(column=column, row_condition=_NOT_VAR, **bounds),
              notes),
    ]


def lightcurve_frame(lightcurves: pd.DataFrame) -> pd.DataFrame:
    """The clean epochs plus ``dt``: time since the previous epoch of the same (id, band)."""
    same = (lightcurves["id"].eq(lightcurves["id"].shift())
            & lightcurves["band"].eq(lightcurves["band"].shift()))
    return lightcurves.assign(dt=lightcurves["time"].diff().where(same)).reset_index(drop=True)


def post_cut_frame(catalog: pd.DataFrame, lightcurves: pd.DataFrame) -> pd.DataFrame:
    """The kept stars plus ``lc_epochs``, recounted from the clean light curves (best band)."""
    per_band = lightcurves.groupby(["id", "band"], sort=False).size()
    best = per_band.groupby(level="id", sort=False).max()
    lc_epochs = catalog["id"].map(best).fillna(0).astype("int64")
    return catalog.assign(lc_epochs=lc_epochs).reset_index(drop=True)


class Project:
    """The file-based GX project in ``<root>/gx``, with the suites kept in sync with params."""

    def __init__(self, root: str | os.PathLike = "."):
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.root = Path(root)
        self.context = gx.get_context(mode="file", project_root_dir=self.root)
        self.results: list[Any] = []
        """Identifiers of this run's validation results and suites, for `build_docs`."""
        variables = self.context.variables  # quiet and offline, saved in great_expectations.yml
        if variables.analytics_enabled is not False:
            self.context.enable_analytics(False)
        if variables.progress_bars is None or variables.progress_bars.get("globally", True):
            variables.progress_bars = ProgressBarsConfig(globally=False)
            variables.save()
        try:
            self.source = self.context.data_sources.get(DATASOURCE)
        except (KeyError, ValueError, DataContextError):
            self.source = self.context.data_sources.add_pandas(DATASOURCE)

    def check(self, suite: Suite, frame: pd.DataFrame, where: str,
              parameters: dict[str, Any] | None = None) -> None:
        """Run the suite's checkpoint on ``frame``; raise VarnetError listing what failed."""
        checkpoint = self.checkpoint(suite)
        result = checkpoint.run(batch_parameters={"dataframe": frame},
                                expectation_parameters=parameters or {})
        self.results += [*result.run_results, ExpectationSuiteIdentifier(name=suite.name)]
        if result.success:
            return
        failed = [r for run in result.run_results.values() for r in run.results if not r.success]
        raise VarnetError(failure_message(suite, failed, frame, where, self.root / DATA_DOCS))

    def build_docs(self) -> Path:
        """Render this run's results into the Data Docs site; return its index page."""
        if self.results:
            self.context.build_data_docs(resource_identifiers=self.results)
        return self.root / DATA_DOCS

    def checkpoint(self, suite: Suite) -> gx.Checkpoint:
        """Get the suite's checkpoint, (re)writing suite and definitions only when changed."""
        name = suite.name
        try:
            asset = self.source.get_asset(name)
        except LookupError:
            asset = self.source.add_dataframe_asset(name)
        try:
            batch = asset.get_batch_definition("whole")
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe("whole")
        wanted = gx.ExpectationSuite(name=name, expectations=suite.expectations)
        stored = self._get(self.context.suites, name)
        if stored is None or _fingerprints(stored) != _fingerprints(wanted):
            if stored is not None:  # unchanged expectations keep their ids: a minimal git diff
                old_ids = dict(zip(_fingerprints(stored), (e.id for e in stored.expectations),
                                   strict=True))
                for expectation, key in zip(wanted.expectations, _fingerprints(wanted),
                                            strict=True):
                    expectation.id = old_ids.get(key)
            stored = self.context.suites.add_or_update(wanted)
        definition = self._get(self.context.validation_definitions, name)
        if definition is None or definition.suite.id != stored.id or definition.data.id != batch.id:
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=name, data=batch, suite=stored))
        checkpoint = self._get(self.context.checkpoints, name)
        if checkpoint is None or [d.id for d in checkpoint.validation_definitions] != [
                definition.id]:
            checkpoint = self.context.checkpoints.add_or_update(gx.Checkpoint(
                name=name, validation_definitions=[definition], actions=[],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
        return checkpoint

    @staticmethod
    def _get(factory: Any, name: str) -> Any:
        try:
            return factory.get(name)
        except DataContextError:
            return None


def _fingerprints(suite: gx.ExpectationSuite) -> list[str]:
    """Each expectation's content as JSON, without its generated id."""
    configs = [e.configuration.to_json_dict() for e in suite.expectations]
    return [json.dumps({k: v for k, v in c.items() if k != "id"}, sort_keys=True, default=str)
            for c in configs]


def failure_message(suite: Suite, failed: list[ExpectationValidationResult], frame: pd.DataFrame,
                    where: str, docs: Path) -> str:
    lines = [f"Great Expectations suite {suite.name!r} failed on {where}, {len(frame)} rows "
             f"({len(failed)} of {len(suite.expectations)} expectations failed):"]
    missing = {r.expectation_config.kwargs.get("column") for r in failed
               if r.expectation_config.type == "expect_column_to_exist"}
    skipped = 0
    for result in failed:
        config = result.expectation_config
        column = config.kwargs.get("column")
        if column in missing and config.type != "expect_column_to_exist":
            skipped += 1
            continue
        lines.append(f"  - {_signature(config.type, config.kwargs)}: "
                     f"{_observed(result, frame, suite.key_columns)}")
        if config.notes:
            lines.append(f"    rule: {config.notes}")
    if skipped:
        lines.append(f"  ({skipped} more expectation(s) on the missing column(s) not evaluated)")
    lines.append(f"Data Docs: {docs}")
    return "\n".join(lines)


def _signature(kind: str, kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        if key == "batch_id" or value is None:
            continue
        if key == "row_condition":
            value = _condition(value)
        text = repr(value)
        parts.append(f"{key}={text if len(text) <= 80 else text[:72] + '...]'}")
    return f"{kind}({', '.join(parts)})"


def _condition(condition: Any) -> str:
    if isinstance(condition, dict) and {"column", "operator", "parameter"} <= condition.keys():
        return f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
    return str(condition)


def _observed(result: ExpectationValidationResult, frame: pd.DataFrame, keys: list[str]) -> str:
    info = result.result or {}
    if "unexpected_count" in info:
        text = f"{info['unexpected_count']} unexpected of {info.get('element_count')} rows"
        examples = _examples(info, frame, keys, result.expectation_config.kwargs)
        return text + (f", e.g. {examples}" if examples else "")
    if info.get("partial_missing_list"):
        return f"missing {info['partial_missing_list']}"
    if info.get("details", {}).get("mismatched"):
        return f"observed {info.get('observed_value')}; mismatched {info['details']['mismatched']}"
    if "observed_value" in info:
        return f"observed {info['observed_value']!r}"
    exception = result.exception_info or {}
    message = exception.get("exception_message") or next(
        (v.get("exception_message") for v in exception.values() if isinstance(v, dict)), None)
    return f"could not be evaluated ({message})" if message else "failed"


def _examples(info: dict, frame: pd.DataFrame, keys: list[str], kwargs: dict[str, Any]) -> str:
    """Up to 5 failing rows as ``key=value ... column=value`` (from the partial index list)."""
    index = [i for i in info.get("partial_unexpected_index_list") or [] if isinstance(i, int)]
    columns = [c for c in keys if c in frame.columns]
    checked = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    columns += [c for c in checked if c in frame.columns and c not in columns]
    if not index or not columns:
        return ", ".join(map(repr, (info.get("partial_unexpected_list") or [])[:5]))
    rows = frame.loc[frame.index.intersection(index[:5]), columns]
    return "; ".join(" ".join(f"{c}={_short(v)}" for c, v in row.items())
                     for _, row in rows.iterrows())


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float | np.floating) else str(value)
