"""Reading survey files: tables of any format, their columns, per-star files, catalog mapping.

Shared by the survey readers (`table`, `asassn`) and by `varnet score`: every failure is a
VarnetError that names the file and the column, never a pandas traceback.
"""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path

import numpy as np
import pandas as pd

from varnet.core import schema, taxonomy
from varnet.core.errors import VarnetError

PHOTOMETRY_INPUTS = ("phot_g_mean_mag", "phot_rp_mean_mag", "parallax")
"""Catalog inputs from which the absolute Gaia photometry of the schema is derived."""
CATALOG_FIELDS = tuple(c for c in schema.CATALOG_COLUMNS if c != "superclass") + PHOTOMETRY_INPUTS
LIGHTCURVE_FIELDS = ("id", "time", "mag", "err", "band")
_NUMERIC_CATALOG = ("ra", "dec", "mean_vmag", "amplitude", "period", "class_probability",
                    "phot_g_abs", "bp_rp", "w_rp") + PHOTOMETRY_INPUTS
_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")


NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
"""What pandas reads as missing by default: used for numeric columns only, never for ids."""


def _separator(path: Path, separator: str) -> str:
    return "\t" if separator == "," and ".tsv" in [s.lower() for s in path.suffixes] else separator


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in _PARQUET_SUFFIXES


def read_table(path: str | Path, *, separator: str = ",", names: list[str] | None = None,
               comment: str | None = None, dtype: dict | type | None = None,
               usecols: list[str] | None = None, na_values: dict[str, list[str]] | None = None
               ) -> pd.DataFrame:
    """Read a csv/tsv/text (optionally gzip) or parquet table; any failure names the file.

    ``na_values`` (text files): the only cells read as missing, per column (e.g. NA_STRINGS for
    the numeric ones, so that a star named "NA" keeps its name)."""
    path = Path(path)
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    if is_parquet(path) and names is not None:
        raise VarnetError(f"{path}: lightcurve_names applies to text files, not parquet")
    try:
        if is_parquet(path):
            frame = pd.read_parquet(path, columns=usecols)
            return frame.astype(dtype) if dtype is not None else frame
        sep = _separator(path, separator)
        return pd.read_csv(path, sep=sep, header=None if names else "infer", names=names,
                           comment=comment, dtype=dtype, usecols=usecols,
                           keep_default_na=na_values is None, na_values=na_values,
                           engine="python" if len(sep) > 1 else "c")
    except pd.errors.EmptyDataError as exc:
        raise VarnetError(f"{path}: the file is empty ({exc})") from exc
    except Exception as exc:  # truncated gzip, bad bytes, ragged rows: many exception types
        raise VarnetError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def read_header(path: str | Path, *, separator: str = ",", comment: str | None = None
                ) -> list[str]:
    """Column names of a table without reading its rows (to name missing columns early);
    lines starting with ``comment`` before the header are skipped."""
    path = Path(path)
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        sep = _separator(path, separator)
        return list(pd.read_csv(path, sep=sep, nrows=0, comment=comment,
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


def to_float(values: pd.Series, path: str | Path, column: str, first_row: int = 1
             ) -> np.ndarray:
    """Numbers as float64: integers are safe to convert and empty cells become NaN, but
    booleans, dates and text that is not a number are errors naming the column, its type and
    the first bad value (``first_row`` = the file's data row of ``values``' first element)."""
    if not (pd.api.types.is_object_dtype(values.dtype)
            or pd.api.types.is_string_dtype(values.dtype)):
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
                values.dtype):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        raise VarnetError(f"{path}: column {column!r} holds {_kind_of(values.dtype)} "
                          f"(dtype {values.dtype}), not numbers{_hint(column)}")
    if pd.api.types.is_object_dtype(values.dtype):  # mixed cells (JSON, parquet objects)
        kinds = values.map(_unnumeric_kind)
        if kinds.notna().any():
            row = int(kinds.notna().to_numpy().argmax())
            raise VarnetError(f"{path}: column {column!r} holds {kinds.iloc[row]} "
                              f"({values.iloc[row]!r} at data row {first_row + row}), not "
                              f"numbers{_hint(column)}")
    numbers = pd.to_numeric(values, errors="coerce")
    suspect = (numbers.isna() & values.notna()).to_numpy()
    bad = np.flatnonzero(suspect)[(values[suspect].astype(str).str.strip() != "").to_numpy()]
    if len(bad):
        row = int(bad[0])
        looks_like_date = pd.notna(pd.to_datetime(values.iloc[row], errors="coerce"))
        raise VarnetError(f"{path}: column {column!r} holds {values.iloc[row]!r} at data row "
                          f"{first_row + row}, not a number ({len(bad)} such value(s))"
                          f"{_hint(column) if looks_like_date else ''}")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _kind_of(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "booleans"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "dates or durations"
    return f"{dtype} values"


def _unnumeric_kind(value) -> str | None:
    """What a cell of a mixed column is when it is neither a number, text nor missing."""
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, dt.date | dt.timedelta | np.datetime64 | np.timedelta64):
        return "a date"
    if value is None or isinstance(value, str | int | float | np.number) or pd.isna(value):
        return None
    return f"a {type(value).__name__}"


def _hint(column: str) -> str:
    return "; give times as numbers of days (e.g. MJD)" if column == "time" else ""


def typed_lightcurve(points: pd.DataFrame, source: str | Path, first_row: int = 1,
                     default_band: str = "V") -> pd.DataFrame:
    """The light-curve columns present in ``points`` (LIGHTCURVE_FIELDS, period, PHOT_COLUMNS)
    as scoring needs them: id and band text, the rest float64 (to_float's rules).

    The one typing rule of `varnet score` files and HTTP requests. Integer ids become text; a
    float id is refused (1.0 would not match "1", and large catalog ids lose digits), as is an
    empty one (``first_row`` numbers the rows in messages).
    """
    columns = [c for c in (*LIGHTCURVE_FIELDS, "period", *schema.PHOT_COLUMNS) if c in points]
    out = points[columns].copy()
    ids = out["id"]
    if pd.api.types.is_float_dtype(ids.dtype) or pd.api.types.is_bool_dtype(ids.dtype):
        raise VarnetError(f"{source}: column 'id' holds {ids.dtype} values ({ids.iloc[0]!r} at "
                          f"data row {first_row}); star ids must be text or integers")
    empty = (ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        raise VarnetError(f"{source}: row {first_row + int(empty.argmax())} has an empty star id "
                          f"({int(empty.sum())} row(s) without an id; every row needs one)")
    out["id"] = ids.astype(str)
    for column in columns:
        if column not in ("id", "band"):
            out[column] = to_float(out[column], source, column, first_row)
    out["band"] = (out["band"].astype(object).where(out["band"].notna(), default_band)
                   .astype(str) if "band" in out else default_band)
    return out


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
