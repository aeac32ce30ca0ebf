"""Apply the paper's cuts to the raw snapshot and validate every step with Great Expectations.

Reads   data/raw/<survey.name>/catalog.parquet, lightcurves.parquet   (`varnet snapshot`)
Writes  data/interim/catalog.parquet        the kept stars: catalog columns + n_epochs, ss_resid
        data/interim/lightcurves.parquet    their clean epochs, sorted by (id, band, time)
        reports/cutflow.md                  stars removed by each cut per class (also printed)
        reports/cutflow.csv                 the same, tidy (cut, class, removed) for `dvc plots`
        reports/cutflow.json                stars in/kept, points dropped per reason
        reports/dropped_stars.csv           every removed star: id, group, first cut failed, rule
        gx/                                 Great Expectations suites and checkpoints; Data Docs
                                            in gx/uncommitted/data_docs/local_site/index.html

Steps: check the raw catalog and light curves (suites raw_catalog, raw_lightcurves); drop bad
epochs (99.99 flags, NaN/inf, err <= 0, repeated times) and count them; run the star cuts of
params `cuts` in order (unknown type, period, class probability >= 0.9, 11 < V < 17,
>= 200 good epochs, supersmoother residual <= 0.7; VAR stars take the period, magnitude and
epoch cuts, and one without a period is dropped; null disables a cut); check the result (suites
lightcurves, post_cut). The cut-flow table counts every star under the first cut it fails.

A failed check exits with status 2 and a message naming the suite, the expectation and the
unexpected counts with example star ids; nothing is written to data/interim then (outputs of
an earlier run are removed first). A class present in the raw catalog that loses all its stars
is such a failure.

Examples:
  varnet validate                      # the configured survey
  dvc repro validate                   # the same, as a DVC stage
  dvc exp run -S cuts.max_ss_resid=0.5 # a stricter residual cut
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from varnet.core import files, schema
from varnet.core.config import CutsParams, SurveyParams, section
from varnet.core.taxonomy import CLASSES, NOVEL
from varnet.prepare import expectations
from varnet.prepare.cuts import CutFlow, CutResult, apply_cuts

CUTFLOW_MD = schema.REPORTS_DIR / "cutflow.md"
CUTFLOW_CSV = schema.REPORTS_DIR / "cutflow.csv"
CUTFLOW_JSON = schema.REPORTS_DIR / "cutflow.json"
DROPPED_CSV = schema.REPORTS_DIR / "dropped_stars.csv"
OUTPUTS = (schema.INTERIM_CATALOG, schema.INTERIM_LIGHTCURVES, CUTFLOW_MD, CUTFLOW_CSV,
           CUTFLOW_JSON, DROPPED_CSV)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the survey and the thresholds come from params.yaml (survey.name, cuts)."""


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    cfg = section(CutsParams, params)
    survey = section(SurveyParams, params).name
    for path in OUTPUTS:  # a failed run must not leave an earlier run's outputs looking current
        path.unlink(missing_ok=True)

    catalog_path, lightcurves_path = schema.raw_paths(survey)
    catalog = files.read_parquet(catalog_path)
    lightcurves = files.read_parquet(lightcurves_path)
    started = time.perf_counter()
    project = expectations.Project(".")
    try:
        result, cut_seconds = _checked_cuts(project, catalog, lightcurves, cfg, catalog_path,
                                            lightcurves_path)
    finally:
        project.build_docs()
    gx_seconds = time.perf_counter() - started - cut_seconds

    files.write_parquet(result.catalog, schema.INTERIM_CATALOG)
    files.write_parquet(result.lightcurves, schema.INTERIM_LIGHTCURVES)
    write_reports(result.flow, result.dropped)
    absent = [c for c in CLASSES if c not in set(catalog["superclass"].dropna())]
    print(f"kept {len(result.catalog)} of {len(catalog)} stars"
          + (f"; classes absent from the survey: {', '.join(absent)}" if absent else "")
          + f"; cuts {cut_seconds:.1f} s, Great Expectations {gx_seconds:.1f} s "
          f"(Data Docs: {expectations.DATA_DOCS})")
    return 0


def _checked_cuts(project: expectations.Project, catalog: pd.DataFrame,
                  lightcurves: pd.DataFrame, cfg: CutsParams, catalog_path: Path,
                  lightcurves_path: Path) -> tuple[CutResult, float]:
    """Raw suites, the cuts (cut flow printed), then the light-curve and post-cut suites."""
    project.check(expectations.raw_catalog_suite(), catalog.reset_index(drop=True),
                  str(catalog_path))
    project.check(expectations.raw_lightcurves_suite(), lightcurves.reset_index(drop=True),
                  str(lightcurves_path))
    started = time.perf_counter()
    result = apply_cuts(catalog, lightcurves, cfg)
    cut_seconds = time.perf_counter() - started
    print(result.flow.to_markdown())
    present = sorted(set(catalog["superclass"].dropna()) & {*CLASSES, NOVEL})
    project.check(expectations.lightcurves_suite(cfg),
                  expectations.lightcurve_frame(result.lightcurves),
                  f"the clean epochs ({schema.INTERIM_LIGHTCURVES} not written)",
                  parameters={expectations.IDS_PARAMETER: result.catalog["id"].tolist()})
    project.check(expectations.post_cut_suite(cfg),
                  expectations.post_cut_frame(result.catalog, result.lightcurves),
                  f"the kept stars ({schema.INTERIM_CATALOG} not written)",
                  parameters={expectations.GROUPS_PARAMETER: present})
    return result, cut_seconds


def write_reports(flow: CutFlow, dropped: pd.DataFrame) -> None:
    files.write_text(flow.to_markdown(), CUTFLOW_MD)
    with files.atomic_path(DROPPED_CSV) as tmp:
        dropped.to_csv(tmp, index=False)
    with files.atomic_path(CUTFLOW_CSV) as tmp:
        flow.tidy().to_csv(tmp, index=False)
    files.write_json(flow.metrics(), CUTFLOW_JSON)
