"""Any survey as tables: long-format light curves plus a catalog, mapped onto the raw schema.

A survey arrives as one light-curve table (star id, time, mag, err, optional band; one row per
epoch) or as one file per star (the file name is the star id), and a catalog (one row per star).
`TableParams` says which of their columns is which of ours and how their class labels map to the
project's superclasses. The result has exactly schema.CATALOG_COLUMNS / LIGHTCURVE_COLUMNS.

Raw values are kept (sentinels, NaN, duplicates: `varnet validate` cleans and counts them); only
the survey's own encoding of a bad point (an error at or above `flag_err_at`) is turned into the
project's sentinel magnitude, so that it is counted as a flagged point downstream.

The reading helpers (read_table, to_float, mapped catalogs, Gaia photometry) are in
`varnet.surveys.readers`, shared with the ASAS-SN reader and `varnet score`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from varnet.core.config import TableParams
from varnet.core.errors import VarnetError
from varnet.core.schema import SENTINEL_MAG
from varnet.surveys import readers


def read_table_survey(params: TableParams, where: str = "survey.table"
                      ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(catalog, lightcurves, counts) of a survey given as tables (see the module docstring)."""
    if not params.lightcurves:
        raise VarnetError(f"params {where}.lightcurves: no light-curve file or folder given")
    lightcurves, counts = _read_lightcurves(params, where)
    if params.catalog:
        catalog = _read_catalog(params, where)
    else:
        catalog = pd.DataFrame({"id": pd.Series([], dtype=str), "variable_type": []})
        catalog["superclass"] = None
    catalog, lightcurves, more = readers.finish(catalog, lightcurves, str(params.lightcurves))
    return catalog, lightcurves, {**counts, **more}


def _read_catalog(params: TableParams, where: str) -> pd.DataFrame:
    columns = {"id": "id", **params.catalog_columns}
    label_column = columns.get("variable_type")
    dtype = {columns["id"]: str}
    if label_column:
        dtype[label_column] = str
    raw = readers.read_table(params.catalog, separator=params.separator, dtype=dtype)
    if raw.empty:
        raise VarnetError(f"{params.catalog}: the catalog has no rows (empty survey)")
    catalog = readers.mapped_catalog(raw, columns, params.catalog, f"{where}.catalog_columns")
    if (params.labels is not None or params.period_by_label) and not label_column:
        raise VarnetError(f"params {where}: labels and period_by_label need "
                          "catalog_columns.variable_type (the column with their labels)")
    if params.period_by_label:
        readers.require_columns(raw.columns, params.period_by_label, params.catalog,
                        f"{where}.period_by_label")
        for label, column in params.period_by_label.items():
            rows = (catalog["variable_type"] == str(label)).to_numpy()
            period = readers.to_float(raw[column], params.catalog, column)
            catalog.loc[rows, "period"] = period[rows]
    catalog["superclass"] = readers.map_labels(catalog["variable_type"], params.labels,
                                               f"{where}.labels")
    return catalog


def _read_lightcurves(params: TableParams, where: str) -> tuple[pd.DataFrame, dict[str, int]]:
    mapping = {name: params.lightcurve_columns.get(name, name) for name in ("time", "mag", "err")}
    unknown = sorted(set(params.lightcurve_columns) - set(readers.LIGHTCURVE_FIELDS))
    if unknown:
        raise VarnetError(f"params {where}.lightcurve_columns: unknown field(s) {unknown}; "
                          f"known: {list(readers.LIGHTCURVE_FIELDS)}")
    for name in ("id", "band"):
        if name in params.lightcurve_columns:
            mapping[name] = params.lightcurve_columns[name]
    per_star = readers.is_per_star(params.lightcurves)
    if not per_star:
        mapping.setdefault("id", "id")
    files = readers.expand_files(params.lightcurves)
    frames = []
    for path in tqdm(files, desc="light curves", unit="file", disable=None if per_star else True):
        frame = _read_lightcurve_file(path, mapping, params, where)
        if "id" not in mapping:
            frame.insert(0, "id", readers.file_star_id(path))
        frames.append(frame)
    lightcurves = pd.concat(frames, ignore_index=True)
    counts = {"points_read": int(len(lightcurves))}
    lightcurves, counts["points_other_bands"] = readers.select_bands(
        lightcurves, params.bands, params.lightcurves, f"{where}.bands")
    if params.flag_err_at is not None:
        flagged = (lightcurves["err"] >= params.flag_err_at).to_numpy()
        lightcurves.loc[flagged, "mag"] = SENTINEL_MAG
        counts["points_flagged_by_error"] = int(flagged.sum())
    return lightcurves, counts


def _read_lightcurve_file(path: Path, mapping: dict[str, str], params: TableParams,
                          where: str) -> pd.DataFrame:
    if params.lightcurve_names is None:
        header = readers.read_header(path, separator=params.separator)
        readers.require_columns(header, mapping, path, f"{where}.lightcurve_columns")
    dtype = {mapping[k]: str for k in ("id", "band") if k in mapping}
    usecols = None if params.lightcurve_names else list(dict.fromkeys(mapping.values()))
    raw = readers.read_table(path, separator=params.separator, names=params.lightcurve_names,
                     dtype=dtype or None, usecols=usecols)
    readers.require_columns(raw.columns, mapping, path, f"{where}.lightcurve_columns")
    frame = pd.DataFrame({
        name: readers.to_float(raw[mapping[name]], path, mapping[name])
        for name in ("time", "mag", "err")
    })
    if "id" in mapping:
        frame.insert(0, "id", raw[mapping["id"]].astype(str).str.strip().to_numpy())
    band = (raw[mapping["band"]].astype(str).str.strip().to_numpy() if "band" in mapping
            else params.default_band)
    frame["band"] = band
    return frame
