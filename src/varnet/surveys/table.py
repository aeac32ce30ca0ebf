"""Any survey as tables: long-format light curves plus a catalog, mapped onto the raw schema.

A survey arrives as one light-curve table (star id, time, mag, err, optional band; one row per
epoch) or as one file per star (the file name is the star id), and a catalog (one row per star).
`TableParams` says which of their columns is which of ours and how their class labels map to the
project's superclasses. The result has exactly schema.CATALOG_COLUMNS / LIGHTCURVE_COLUMNS.

Raw values are kept (sentinels, NaN, duplicates: `varnet validate` cleans and counts them); only
the survey's own encoding of a bad point (an error at or above `flag_err_at`) is turned into the
project's sentinel magnitude, so that it is counted as a flagged point downstream.

The reading helpers here (read_table, to_float, mapped catalogs, Gaia photometry) are shared
with the ASAS-SN reader: every failure is a VarnetError naming the file and column.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from varnet import schema, taxonomy
from varnet.errors import VarnetError

SENTINEL_MAG = 99.99
"""Magnitude written for points the survey flags as bad or as upper limits (validate drops
every magnitude at or above cuts.sentinel_mag and counts it as flagged)."""

PHOTOMETRY_INPUTS = ("phot_g_mean_mag", "phot_rp_mean_mag", "parallax")
"""Catalog inputs from which the absolute Gaia photometry of the schema is derived."""
CATALOG_FIELDS = tuple(c for c in schema.CATALOG_COLUMNS if c != "superclass") + PHOTOMETRY_INPUTS
LIGHTCURVE_FIELDS = ("id", "time", "mag", "err", "band")
_NUMERIC_CATALOG = ("ra", "dec", "mean_vmag", "amplitude", "period", "class_probability",
                    "phot_g_abs", "bp_rp", "w_rp") + PHOTOMETRY_INPUTS
_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")


@dataclass
class TableParams:
    """params.yaml `survey.table`: where the tables are and how their columns/labels map."""

    catalog: str | None = None
    """Catalog file (csv, csv.gz, tsv, parquet); null: every star is of unknown type."""
    lightcurves: str | None = None
    """One long-format table, or a folder / glob of per-star files (star id = file name)."""
    catalog_columns: dict[str, str] = field(default_factory=dict)
    """Our name -> their column: id (default 'id'), variable_type (their label), period, ra, dec,
    mean_vmag, amplitude, class_probability, phot_g_abs, bp_rp, w_rp, or the inputs
    phot_g_mean_mag, phot_rp_mean_mag, parallax (mas) from which M_G and W_RP are derived."""
    lightcurve_columns: dict[str, str] = field(default_factory=dict)
    """Our name -> their column: id, time, mag, err (each defaults to our own name; per-star
    files take the id from the file name) and band (absent: every point is `default_band`)."""
    lightcurve_names: list[str] | None = None
    """Column names for header-less text files, e.g. [time, mag, err]; null: files have a header."""
    separator: str = ","
    """Field separator of text files ('\\t' for tsv, '\\s+' for whitespace)."""
    labels: dict[str, str | None] | None = None
    """Their label -> a superclass, a catalog subtype (EW, RRC, ...), VAR (novel), or null
    (unknown type). Labels not listed are unknown. null: labels are ASAS-SN subtypes already."""
    period_by_label: dict[str, str] = field(default_factory=dict)
    """Their label -> the catalog column holding the period for stars with that label."""
    bands: list[str] | None = None
    """Keep only these bands (e.g. [g, r, i]); null keeps all."""
    default_band: str = "V"
    flag_err_at: float | None = None
    """Errors at or above this are the survey's flag for a bad point (SDSS: 99.999)."""

    def __post_init__(self) -> None:
        for name in ("catalog_columns", "lightcurve_columns", "period_by_label"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, {})
            elif not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping, got {value!r}")
        if self.labels is not None and not isinstance(self.labels, dict):
            raise ValueError(f"labels must be a mapping or null, got {self.labels!r}")
        check_list("bands", self.bands)
        check_list("lightcurve_names", self.lightcurve_names)


def check_list(name: str, value) -> None:
    """Params that must be a YAML list or null (a bare `bands: g` is a typo for [g])."""
    if value is not None and not isinstance(value, list):
        raise ValueError(f"{name} must be a list or null, got {value!r}")


def _separator(path: Path, separator: str) -> str:
    return "\t" if separator == "," and ".tsv" in [s.lower() for s in path.suffixes] else separator


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in _PARQUET_SUFFIXES


def read_table(path: str | Path, *, separator: str = ",", names: list[str] | None = None,
               comment: str | None = None, dtype: dict | type | None = None,
               usecols: list[str] | None = None) -> pd.DataFrame:
    """Read a csv/tsv/text (optionally gzip) or parquet table; any failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    if _is_parquet(path) and names is not None:
        raise VarnetError(f"{path}: lightcurve_names applies to text files, not parquet")
    try:
        if _is_parquet(path):
            frame = pd.read_parquet(path, columns=usecols)
            return frame.astype(dtype) if dtype is not None else frame
        sep = _separator(path, separator)
        return pd.read_csv(path, sep=sep, header=None if names else "infer", names=names,
                           comment=comment, dtype=dtype, usecols=usecols,
                           engine="python" if len(sep) > 1 else "c")
    except pd.errors.EmptyDataError as exc:
        raise VarnetError(f"{path}: the file is empty ({exc})") from exc
    except Exception as exc:  # truncated gzip, bad bytes, ragged rows: many exception types
        raise VarnetError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def read_header(path: str | Path, *, separator: str = ",") -> list[str]:
    """Column names of a table without reading its rows (to name missing columns early)."""
    path = Path(path)
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        sep = _separator(path, separator)
        return list(pd.read_csv(path, sep=sep, nrows=0,
                                engine="python" if len(sep) > 1 else "c").columns)
    except pd.errors.EmptyDataError as exc:
        raise VarnetError(f"{path}: the file is empty ({exc})") from exc
    except Exception as exc:
        raise VarnetError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def require_columns(columns, wanted: dict[str, str], path: str | Path, where: str) -> None:
    """Fail with a message naming the file, the missing column and the params key mapping it."""
    present = set(columns)
    for ours, theirs in wanted.items():
        if theirs not in present:
            raise VarnetError(
                f"{path}: column {theirs!r} not found (mapped as {where}.{ours}); "
                f"the file has columns {sorted(map(str, present))}")


def to_float(values: pd.Series, path: str | Path, column: str) -> np.ndarray:
    """Numbers as float64; empty cells become NaN, but text that is not a number is an error."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce")
    suspect = numbers.isna() & values.notna()
    bad = suspect[suspect].index[values[suspect].astype(str).str.strip() != ""]
    if len(bad):
        row = values.index.get_loc(bad[0])
        raise VarnetError(f"{path}: column {column!r} holds {values.iloc[row]!r} at data row "
                          f"{row + 1}, not a number ({len(bad)} such value(s))")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def expand_files(pattern: str | Path) -> list[Path]:
    """The files of a folder, a glob pattern, or a single file; sorted, so order is stable."""
    text = str(pattern)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    else:
        files = [path]
    if not files:
        raise VarnetError(f"{text}: no light-curve files found (empty survey)")
    return files


def is_per_star(pattern: str | Path) -> bool:
    """A folder or glob means one file per star, named by the star's id."""
    return Path(pattern).is_dir() or glob.has_magic(str(pattern))


def file_star_id(path: str | Path) -> str:
    """Star id from a file name: the name minus its extensions (.csv.gz, .dat, ...)."""
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".xz", ".zip", *_PARQUET_SUFFIXES, *_TEXT_SUFFIXES,
                   ".mjd"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def absolute_photometry(g: np.ndarray, rp: np.ndarray, bp_rp: np.ndarray,
                        parallax_mas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M_G, W_RP) from apparent Gaia G, G_RP, BP-RP and the parallax in mas.

    M = m + 5 log10(parallax / mas) - 10 (distance 1000/parallax pc); W_RP = M_RP - 1.3 (BP-RP),
    the Wesenheit magnitude of Jayasinghe et al. (2018) used by the paper. NaN where the parallax
    is not positive: an inverted negative parallax is no distance.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        modulus = np.where(parallax_mas > 0, 5.0 * np.log10(parallax_mas) - 10.0, np.nan)
    return g + modulus, rp + modulus - 1.3 * bp_rp


def mapped_catalog(raw: pd.DataFrame, columns: dict[str, str], path: str | Path,
                   where: str) -> pd.DataFrame:
    """Catalog fields from their columns (absent ones NaN/null), with derived Gaia photometry.

    Returns CATALOG_COLUMNS without `superclass` (the caller maps labels); `variable_type` is
    their label as text, None where empty.
    """
    unknown = sorted(set(columns) - set(CATALOG_FIELDS))
    if unknown:
        raise VarnetError(f"params {where}: unknown field(s) {unknown}; "
                          f"known: {list(CATALOG_FIELDS)}")
    require_columns(raw.columns, columns, path, where)
    out = pd.DataFrame(index=raw.index)
    out["id"] = raw[columns["id"]].astype(str).str.strip()
    for name in _NUMERIC_CATALOG:
        out[name] = to_float(raw[columns[name]], path, columns[name]) if name in columns else np.nan
    if "variable_type" in columns:
        label = raw[columns["variable_type"]].astype("string").str.strip()
        out["variable_type"] = _or_none(label.where(label != ""))
    else:
        out["variable_type"] = None
    m_g, w_rp = absolute_photometry(out["phot_g_mean_mag"].to_numpy(),
                                    out["phot_rp_mean_mag"].to_numpy(),
                                    out["bp_rp"].to_numpy(), out["parallax"].to_numpy())
    if "phot_g_abs" not in columns:
        out["phot_g_abs"] = m_g
    if "w_rp" not in columns:
        out["w_rp"] = w_rp
    duplicated = out["id"].duplicated()
    if duplicated.any():
        raise VarnetError(f"{path}: star id {out['id'][duplicated].iloc[0]!r} appears more than "
                          f"once in column {columns['id']!r} "
                          f"({int(duplicated.sum())} duplicate(s))")
    return out.drop(columns=list(PHOTOMETRY_INPUTS)).reset_index(drop=True)


def map_labels(labels: pd.Series, mapping: dict[str, str | None] | None,
               where: str) -> pd.Series:
    """Superclass per star: through `mapping` (their label -> class), else the ASAS-SN subtypes."""
    if mapping is None:
        return _or_none(labels.map(taxonomy.superclass_of, na_action="ignore"))
    resolved: dict[str, str | None] = {}
    for theirs, ours in mapping.items():
        superclass = None if ours is None else taxonomy.superclass_of(ours)
        if ours is not None and superclass is None:
            raise VarnetError(
                f"params {where}: label {theirs!r} maps to {ours!r}, which is neither a superclass "
                f"{list(taxonomy.CLASSES)}, a catalog subtype, nor {taxonomy.NOVEL!r}")
        resolved[str(theirs).strip()] = superclass
    return _or_none(labels.map(lambda label: resolved.get(str(label)), na_action="ignore"))


def _or_none(values: pd.Series) -> pd.Series:
    """Text with None (not NaN) for missing, as the schema's nullable string columns hold."""
    return values.astype(object).where(values.notna(), None)


def select_bands(lightcurves: pd.DataFrame, bands: list[str] | None, source: str | Path,
                 where: str) -> tuple[pd.DataFrame, int]:
    """Points of the wanted bands (all when `bands` is None) and how many others were dropped."""
    if bands is None:
        return lightcurves, 0
    keep = lightcurves["band"].isin([str(b) for b in bands]).to_numpy()
    if not keep.any():
        raise VarnetError(f"{source}: no points in bands {bands} (params {where}; the file has "
                          f"bands {sorted(lightcurves['band'].unique())}; empty survey)")
    return lightcurves[keep], int((~keep).sum())


def finish(catalog: pd.DataFrame, lightcurves: pd.DataFrame, source: str
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Frames in schema order and dtypes; stars seen only in the light curves join the catalog
    as unknown types (validate counts them), so nothing disappears here."""
    if lightcurves.empty:
        raise VarnetError(f"{source}: no light-curve points were read (empty survey)")
    lightcurves = lightcurves.astype({"id": str, "band": str})
    extra = pd.Index(lightcurves["id"].unique()).difference(pd.Index(catalog["id"]))
    counts = {"stars_without_catalog_row": int(len(extra))}
    if len(extra):
        unknown = pd.DataFrame({"id": extra.astype(str)})
        catalog = pd.concat([catalog, unknown], ignore_index=True)
    catalog = catalog.reindex(columns=list(schema.CATALOG_COLUMNS))
    for name in schema.CATALOG_COLUMNS:
        if name in ("id", "variable_type", "superclass"):
            continue
        catalog[name] = catalog[name].astype(np.float64)
    catalog["id"] = catalog["id"].astype(str)
    for name in ("variable_type", "superclass"):
        catalog[name] = _or_none(catalog[name])
    lightcurves = lightcurves[list(schema.LIGHTCURVE_COLUMNS)].reset_index(drop=True)
    for name in ("time", "mag", "err"):
        lightcurves[name] = lightcurves[name].astype(np.float64)
    return catalog, lightcurves, counts


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
    catalog, lightcurves, more = finish(catalog, lightcurves, str(params.lightcurves))
    return catalog, lightcurves, {**counts, **more}


def _read_catalog(params: TableParams, where: str) -> pd.DataFrame:
    columns = {"id": "id", **params.catalog_columns}
    label_column = columns.get("variable_type")
    dtype = {columns["id"]: str}
    if label_column:
        dtype[label_column] = str
    raw = read_table(params.catalog, separator=params.separator, dtype=dtype)
    if raw.empty:
        raise VarnetError(f"{params.catalog}: the catalog has no rows (empty survey)")
    catalog = mapped_catalog(raw, columns, params.catalog, f"{where}.catalog_columns")
    if (params.labels is not None or params.period_by_label) and not label_column:
        raise VarnetError(f"params {where}: labels and period_by_label need "
                          "catalog_columns.variable_type (the column with their labels)")
    if params.period_by_label:
        require_columns(raw.columns, params.period_by_label, params.catalog,
                        f"{where}.period_by_label")
        for label, column in params.period_by_label.items():
            rows = (catalog["variable_type"] == str(label)).to_numpy()
            catalog.loc[rows, "period"] = to_float(raw[column], params.catalog, column)[rows]
    catalog["superclass"] = map_labels(catalog["variable_type"], params.labels, f"{where}.labels")
    return catalog


def _read_lightcurves(params: TableParams, where: str) -> tuple[pd.DataFrame, dict[str, int]]:
    mapping = {name: params.lightcurve_columns.get(name, name) for name in ("time", "mag", "err")}
    unknown = sorted(set(params.lightcurve_columns) - set(LIGHTCURVE_FIELDS))
    if unknown:
        raise VarnetError(f"params {where}.lightcurve_columns: unknown field(s) {unknown}; "
                          f"known: {list(LIGHTCURVE_FIELDS)}")
    for name in ("id", "band"):
        if name in params.lightcurve_columns:
            mapping[name] = params.lightcurve_columns[name]
    per_star = is_per_star(params.lightcurves)
    if not per_star:
        mapping.setdefault("id", "id")
    files = expand_files(params.lightcurves)
    frames = []
    for path in tqdm(files, desc="light curves", unit="file", disable=None if per_star else True):
        frame = _read_lightcurve_file(path, mapping, params, where)
        if "id" not in mapping:
            frame.insert(0, "id", file_star_id(path))
        frames.append(frame)
    lightcurves = pd.concat(frames, ignore_index=True)
    counts = {"points_read": int(len(lightcurves))}
    lightcurves, counts["points_other_bands"] = select_bands(
        lightcurves, params.bands, params.lightcurves, f"{where}.bands")
    if params.flag_err_at is not None:
        flagged = (lightcurves["err"] >= params.flag_err_at).to_numpy()
        lightcurves.loc[flagged, "mag"] = SENTINEL_MAG
        counts["points_flagged_by_error"] = int(flagged.sum())
    return lightcurves, counts


def _read_lightcurve_file(path: Path, mapping: dict[str, str], params: TableParams,
                          where: str) -> pd.DataFrame:
    if params.lightcurve_names is None:
        header = read_header(path, separator=params.separator)
        require_columns(header, mapping, path, f"{where}.lightcurve_columns")
    dtype = {mapping[k]: str for k in ("id", "band") if k in mapping}
    usecols = None if params.lightcurve_names else list(dict.fromkeys(mapping.values()))
    raw = read_table(path, separator=params.separator, names=params.lightcurve_names,
                     dtype=dtype or None, usecols=usecols)
    require_columns(raw.columns, mapping, path, f"{where}.lightcurve_columns")
    frame = pd.DataFrame({
        name: to_float(raw[mapping[name]], path, mapping[name]) for name in ("time", "mag", "err")
    })
    if "id" in mapping:
        frame.insert(0, "id", raw[mapping["id"]].astype(str).str.strip().to_numpy())
    band = (raw[mapping["band"]].astype(str).str.strip().to_numpy() if "band" in mapping
            else params.default_band)
    frame["band"] = band
    return frame
