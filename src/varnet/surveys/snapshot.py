"""Write a survey snapshot: data/raw/<survey.name>/catalog.parquet and lightcurves.parquet.

The snapshot is the raw input of the pipeline, versioned by DVC: one catalog row per star
(varnet.core.schema.CATALOG_COLUMNS: id, period, variable_type, superclass, class_probability, Gaia
photometry, ...) and one light-curve row per epoch (LIGHTCURVE_COLUMNS: id, band, time, mag,
err). Values stay raw (flags, NaN, duplicates): `varnet validate` cleans them and counts every
drop. Both files are written to a temporary folder that replaces the old snapshot in one rename,
so an interrupted or failed snapshot never leaves half a survey behind.

Sources (params `survey.source`, or the optional SOURCE argument, which overrides it):
  synthetic  the embedded ASAS-SN-like simulator (the default; `survey.synthetic`: seed, size)
  asassn     the ASAS-SN catalog (database CSV or VizieR II/366) and per-star light-curve
             files (database, Sky Patrol CSV) (`survey.asassn`; see varnet/surveys/asassn.py)
  table      any survey as long-format tables or per-star files plus a catalog, with column
             and label mappings (`survey.table`; see varnet/surveys/table.py)

--download (asassn only) first fetches the catalog from VizieR (astroquery) and the light
curves from ASAS-SN Sky Patrol (skypatrol) into survey.asassn.catalog / .lightcurves. These
clients are an optional extra: pip install 'varnet[download]'. Without --download nothing
touches the network.

Examples:
  varnet snapshot                          # the DVC stage: synthetic survey by default
  varnet --params configs/surveys/eros1-lmc.yaml snapshot   # a real set, snapshot only
  varnet snapshot asassn --download        # fetch ASAS-SN data, then snapshot it
  dvc exp run -S survey.synthetic.n_stars=600               # a smaller simulated survey

configs/surveys/*.yaml (eros1-lmc, sdss-s82, gaia-dr3, asas-cesium) hold the `survey`, `cuts`
and `sequences` sections for the real sets in ../shared/data. To run the whole pipeline on one,
replace those three sections of params.yaml by the overlay's (they are complete), then
`dvc repro`. The printed summary lists stars per superclass and every count of points read,
flagged or dropped and of stars added from light-curve files without a catalog row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from varnet.core import files, schema, taxonomy
from varnet.core.config import SOURCES, SurveyParams, section
from varnet.core.errors import VarnetError
from varnet.surveys.asassn import read_asassn_survey
from varnet.surveys.download import download_asassn
from varnet.surveys.table import read_table_survey


def load_survey(survey: SurveyParams, source: str | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(catalog, lightcurves, counts) from the chosen source, checked against the schema."""
    source = source or survey.source
    if source == "synthetic":
        from varnet.surveys.synthetic import simulate_survey  # numpy-heavy: only when used

        catalog, lightcurves = simulate_survey(survey.synthetic)
        counts: dict[str, int] = {}
    elif source == "asassn":
        catalog, lightcurves, counts = read_asassn_survey(survey.asassn)
    elif source == "table":
        catalog, lightcurves, counts = read_table_survey(survey.table)
    else:
        raise VarnetError(f"survey source {source!r} is not one of {list(SOURCES)}")
    check_snapshot(catalog, lightcurves, source)
    return catalog, lightcurves, counts


def check_snapshot(catalog: pd.DataFrame, lightcurves: pd.DataFrame, source: str) -> None:
    """The raw-snapshot contract: exact columns, unique ids, known classes, no orphan points."""
    for frame, expected, what in ((catalog, schema.CATALOG_COLUMNS, "catalog"),
                                  (lightcurves, schema.LIGHTCURVE_COLUMNS, "lightcurves")):
        if list(frame.columns) != list(expected):
            raise VarnetError(f"{source} {what}: columns {list(frame.columns)} differ from the "
                              f"schema {list(expected)}")
        if frame.empty:
            raise VarnetError(f"{source} {what}: no rows (empty survey)")
    duplicated = catalog["id"].duplicated()
    if duplicated.any():
        raise VarnetError(f"{source} catalog: star id {catalog['id'][duplicated].iloc[0]!r} "
                          "appears more than once")
    allowed = {*taxonomy.CLASSES, taxonomy.NOVEL}
    unknown = set(catalog["superclass"].dropna()) - allowed
    if unknown:
        raise VarnetError(f"{source} catalog: superclass(es) {sorted(unknown)} are not in "
                          f"{sorted(allowed)}")
    orphans = pd.Index(lightcurves["id"].unique()).difference(pd.Index(catalog["id"]))
    if len(orphans):
        raise VarnetError(f"{source} lightcurves: {len(orphans)} star id(s) have no catalog "
                          f"row, e.g. {orphans[0]!r}")


def write_snapshot(catalog: pd.DataFrame, lightcurves: pd.DataFrame, name: str) -> Path:
    """Write both parquet files into a temporary folder, then swap it in for the old snapshot.

    Readers see the old snapshot or the new one, never a mix; a failure leaves the old one.
    """
    catalog_path, lightcurve_path = schema.raw_paths(name)
    target = catalog_path.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=target.parent))
    retired = None
    try:
        files.write_parquet(catalog, staging / catalog_path.name)
        files.write_parquet(lightcurves, staging / lightcurve_path.name)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=target.parent))
            os.replace(target, retired / name)
        os.replace(staging, target)
    except BaseException:
        if retired is not None and not target.exists():
            os.replace(retired / name, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    return target


def format_summary(name: str, source: str, catalog: pd.DataFrame, lightcurves: pd.DataFrame,
                   counts: dict[str, int], seconds: float) -> str:
    classes = catalog["superclass"].fillna("unknown").value_counts()
    order = [c for c in (*taxonomy.CLASSES, taxonomy.NOVEL, "unknown") if c in classes.index]
    lines = [f"snapshot {name} ({source}): {len(catalog):,} stars, {len(lightcurves):,} points, "
             f"bands {sorted(lightcurves['band'].unique())}, {seconds:.1f} s",
             "  stars per superclass: " + ", ".join(f"{c} {classes[c]:,}" for c in order)]
    lines += [f"  {key.replace('_', ' ')}: {value:,}" for key, value in counts.items()]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", choices=SOURCES,
                        help="override survey.source for this run")
    parser.add_argument("--download", action="store_true",
                        help="asassn only: fetch the catalog (VizieR II/366, astroquery) and "
                             "Sky Patrol light curves (skypatrol) into survey.asassn.catalog and "
                             "survey.asassn.lightcurves first (needs varnet[download])")


def run(args: argparse.Namespace, params: dict) -> int:
    survey = section(SurveyParams, params)
    source = args.source or survey.source
    started = time.perf_counter()
    if args.download:
        if source != "asassn":
            raise VarnetError(f"--download fetches ASAS-SN data; the source is {source!r} "
                              "(run `varnet snapshot asassn --download`)")
        if not survey.asassn.catalog or not survey.asassn.lightcurves:
            raise VarnetError("--download needs survey.asassn.catalog (a file to write) and "
                              "survey.asassn.lightcurves (a folder to fill) in params")
        fetched = download_asassn(survey.asassn.catalog, survey.asassn.lightcurves,
                                  survey.asassn.download)
        print("downloaded: " + ", ".join(f"{k.replace('_', ' ')} {v:,}"
                                         for k, v in fetched.items()))
    catalog, lightcurves, counts = load_survey(survey, source)
    target = write_snapshot(catalog, lightcurves, survey.name)
    print(format_summary(survey.name, source, catalog, lightcurves, counts,
                         time.perf_counter() - started))
    print(f"  written: {target}/")
    return 0
