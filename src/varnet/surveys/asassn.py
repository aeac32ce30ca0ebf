"""ASAS-SN: the variable-star catalog and per-star light-curve files, read into the raw schema.

Catalog (one file; the format is recognised from its header):
  database  the ASAS-SN Variable Stars Database CSV export: id, asassn_name, raj2000, dej2000,
            mean_vmag, amplitude, period, variable_type, class_probability and the Gaia columns
            phot_g_mean_mag, phot_rp_mean_mag, bp_rp, parallax (M_G and W_RP are derived).
  vizier    VizieR II/366 (catv2021): ASASSN-V, RAJ2000, DEJ2000, Vmag, Amp, Per, Type, Prob
            (and Gmag, RPmag, BP-RP, plx when present).
  The subtype -> superclass map is taxonomy.SUBTYPES (docs/method.md §1): EW/EA/EB -> ECL, ... ;
  VAR is the novel class; uncertain or other types ("EW:", "YSO") are unknown (null). The
  class-probability cut itself is `cuts.min_class_probability`, applied by `varnet validate`;
  `class_probabilities` joins an external table (asassn_id, class_probability) such as the
  paper's, replacing the catalog's value for the ids it lists.

Light curves (a folder or glob, one file per star; comment lines '#' are skipped):
  database  hjd,camera,mag,mag_err,flux,flux_err      (the database's per-star files)
  older     HJD,UT Date,Camera,FWHM,Limit,mag,mag_err,flux(mJy),flux_err[,Filter]
  Sky Patrol  jd,flux,flux_err,mag,mag_err,limit,fwhm,cam|camera,...[,phot_filter]
            (skypatrol client CSV, after a '# {json}' line) or the web export
            JD,Flux,Flux Error,Mag,Mag Error,Limit,FWHM,Filter,Quality
  A file belongs to the catalog star whose id equals its name: `lc<id>.dat` (the database id,
  as in the original code) or `<id>.csv`, with spaces in ids written as '_'. Files without a
  catalog row join the catalog as unknown types (counted).
  Upper limits (mag '>14.8' or mag_err 99.99: non-detections) get the sentinel mag 99.99 so that
  validate counts them as flagged. The band is the Filter/phot_filter column, else the camera
  (ba-bh are V, the others g), else V. Times stay as given (HJD or JD, days).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from varnet.core.config import AsassnParams
from varnet.core.errors import VarnetError
from varnet.core.schema import SENTINEL_MAG
from varnet.surveys import readers

DATABASE_COLUMNS = {
    "id": "id", "ra": "raj2000", "dec": "dej2000", "mean_vmag": "mean_vmag",
    "amplitude": "amplitude", "period": "period", "variable_type": "variable_type",
    "class_probability": "class_probability", "phot_g_mean_mag": "phot_g_mean_mag",
    "phot_rp_mean_mag": "phot_rp_mean_mag", "bp_rp": "bp_rp", "parallax": "parallax",
}
VIZIER_COLUMNS = {
    "id": "ASASSN-V", "ra": "RAJ2000", "dec": "DEJ2000", "mean_vmag": "Vmag", "amplitude": "Amp",
    "period": "Per", "variable_type": "Type", "class_probability": "Prob",
    "phot_g_mean_mag": "Gmag", "phot_rp_mean_mag": "RPmag", "bp_rp": "BP-RP", "parallax": "plx",
}
REQUIRED = ("id", "variable_type", "period")
V_CAMERAS = frozenset({"ba", "bb", "bc", "bd", "be", "bf", "bg", "bh"})
"""ASAS-SN cameras with V filters; every other camera observes in g (asas-sn.osu.edu)."""
UPPER_LIMIT_ERR = 99.0
"""mag_err of a non-detection is 99.99 in every ASAS-SN format."""

_TIME = ("hjd", "jd", "bjd")
_ERR = ("mag_err", "mag error")
_FILTER = ("filter", "phot_filter")
_CAMERA = ("camera", "cam")
_SAFE = re.compile(r"[^0-9A-Za-z.+_-]+")
_DATABASE_FILE = re.compile(r"lc(\d+)")


def safe_name(star_id: str) -> str:
    """A star id as a file name: runs of characters other than letters, digits and . + _ -
    become '_' ("ASASSN-V J055244.39+184814.5" -> "ASASSN-V_J055244.39+184814.5")."""
    return _SAFE.sub("_", str(star_id).strip())


def file_key(path: str | Path) -> str:
    """The star id a light-curve file names: `lc123.dat` -> '123', `x y.csv` -> 'x_y'."""
    stem = readers.file_star_id(path)
    match = _DATABASE_FILE.fullmatch(stem)
    return match.group(1) if match else safe_name(stem)


def read_asassn_catalog(path: str | Path) -> pd.DataFrame:
    """The catalog as CATALOG_COLUMNS (superclass from taxonomy), database or VizieR format."""
    header = readers.read_header(path)
    if "ASASSN-V" in header:
        columns, kind = VIZIER_COLUMNS, "VizieR II/366"
    elif {"raj2000", "variable_type"} & set(header):
        columns, kind = DATABASE_COLUMNS, "ASAS-SN database"
    else:
        raise VarnetError(
            f"{path}: not an ASAS-SN catalog: expected the database's columns "
            f"{list(DATABASE_COLUMNS.values())[:7]} or VizieR II/366's "
            f"{list(VIZIER_COLUMNS.values())[:7]}; the file has {header}")
    missing = [columns[name] for name in REQUIRED if columns[name] not in header]
    if missing:
        raise VarnetError(f"{path}: {kind} catalog without column(s) {missing}; "
                          f"the file has {header}")
    present = {ours: theirs for ours, theirs in columns.items() if theirs in header}
    raw = readers.read_table(path, dtype={columns["id"]: str, columns["variable_type"]: str})
    if raw.empty:
        raise VarnetError(f"{path}: the catalog has no rows (empty survey)")
    catalog = readers.mapped_catalog(raw, present, path, f"{kind} catalog")
    catalog["superclass"] = readers.map_labels(catalog["variable_type"], None, "survey.asassn")
    return catalog


def join_class_probabilities(catalog: pd.DataFrame, path: str | Path
                             ) -> tuple[pd.DataFrame, int]:
    """Replace class_probability by the table's value (asassn_id -> class_probability) where the
    catalog id is listed; returns the catalog and how many stars were matched."""
    wanted = {"asassn_id": "asassn_id", "class_probability": "class_probability"}
    readers.require_columns(readers.read_header(path), wanted, path, "class_probabilities")
    probs = readers.read_table(path, dtype={"asassn_id": str})
    ids = probs["asassn_id"].astype(str).str.strip()
    if ids.duplicated().any():
        raise VarnetError(f"{path}: asassn_id {ids[ids.duplicated()].iloc[0]!r} is listed twice")
    values = pd.Series(readers.to_float(probs["class_probability"], path, "class_probability"),
                       index=ids.to_numpy())
    joined = catalog["id"].map(values)
    catalog = catalog.assign(
        class_probability=joined.fillna(catalog["class_probability"]).astype(np.float64))
    return catalog, int(joined.notna().sum())


def read_asassn_lightcurve(path: str | Path) -> pd.DataFrame:
    """One ASAS-SN light-curve file (any of the formats above) as time, mag, err, band."""
    raw = readers.read_table(path, comment="#", dtype=str)
    names = {str(c).strip().lower(): c for c in raw.columns}

    def column(candidates: tuple[str, ...], what: str, required: bool = True):
        for name in candidates:
            if name in names:
                return names[name]
        if required:
            raise VarnetError(f"{path}: no {what} column (expected one of {list(candidates)}); "
                              f"the file has {list(raw.columns)}")
        return None

    time_col, mag_col, err_col = (column(_TIME, "time"), column(("mag",), "magnitude"),
                                  column(_ERR, "magnitude error"))
    mag_text = raw[mag_col].str.strip()
    limit_text = mag_text.str.startswith(">", na=False).to_numpy()
    mag = readers.to_float(mag_text.where(~limit_text), path, mag_col).copy()
    err = readers.to_float(raw[err_col], path, err_col)
    mag[limit_text | (err >= UPPER_LIMIT_ERR)] = SENTINEL_MAG
    filter_col, camera_col = column(_FILTER, "", False), column(_CAMERA, "", False)
    if filter_col is not None:
        band = raw[filter_col].str.strip().to_numpy()
    elif camera_col is not None:
        band = np.where(raw[camera_col].str.strip().isin(V_CAMERAS), "V", "g")
    else:
        band = "V"
    return pd.DataFrame({"time": readers.to_float(raw[time_col], path, time_col), "mag": mag,
                         "err": err, "band": band})


def read_asassn_survey(params: AsassnParams, where: str = "survey.asassn"
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(catalog, lightcurves, counts): the catalog joined with its stars' light-curve files."""
    if not params.lightcurves:
        raise VarnetError(f"params {where}.lightcurves: no light-curve folder or glob given")
    counts: dict[str, int] = {}
    if params.catalog:
        catalog = read_asassn_catalog(params.catalog)
    else:
        catalog = pd.DataFrame({"id": pd.Series([], dtype=str)})
    if params.class_probabilities:
        catalog, counts["stars_with_joined_class_probability"] = join_class_probabilities(
            catalog, params.class_probabilities)
    id_of_key = dict(zip(catalog["id"].map(safe_name), catalog["id"], strict=True))
    frames = []
    for path in tqdm(readers.expand_files(params.lightcurves), desc="light curves", unit="file",
                     disable=None):
        frame = read_asassn_lightcurve(path)
        key = file_key(path)
        frame.insert(0, "id", id_of_key.get(key, key))
        frames.append(frame)
    lightcurves = pd.concat(frames, ignore_index=True)
    counts["points_read"] = len(lightcurves)
    counts["upper_limits_flagged"] = int((lightcurves["mag"] == SENTINEL_MAG).sum())
    lightcurves, counts["points_other_bands"] = readers.select_bands(
        lightcurves, params.bands, params.lightcurves, f"{where}.bands")
    catalog, lightcurves, more = readers.finish(catalog, lightcurves, str(params.lightcurves))
    return catalog, lightcurves, {**counts, **more}
