"""The data contracts between stages: file locations and the columns/arrays each one holds.

raw snapshot  data/raw/<survey>/catalog.parquet      one row per star, CATALOG_COLUMNS
              data/raw/<survey>/lightcurves.parquet  one row per epoch, LIGHTCURVE_COLUMNS
              (raw: may hold sentinels, NaN, duplicates; `validate` cleans and counts them)
after cuts    data/interim/catalog.parquet           kept stars: CATALOG_COLUMNS + CUT_COLUMNS
              data/interim/lightcurves.parquet       their clean epochs, sorted by (id, band, time)
sequences     data/processed/sequences.npz           SEQUENCE_ARRAYS (no pickle)
split         data/processed/split.npz               SPLIT_ARRAYS: indices into sequences.npz
"""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
INTERIM_DIR = Path("data/interim")
PROCESSED_DIR = Path("data/processed")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")
FIGURES_DIR = REPORTS_DIR / "figures"

SEQUENCES_FILE = PROCESSED_DIR / "sequences.npz"
SPLIT_FILE = PROCESSED_DIR / "split.npz"


def raw_paths(survey_name: str) -> tuple[Path, Path]:
    """(catalog, lightcurves) parquet paths of a raw snapshot."""
    root = RAW_DIR / survey_name
    return root / "catalog.parquet", root / "lightcurves.parquet"


INTERIM_CATALOG = INTERIM_DIR / "catalog.parquet"
INTERIM_LIGHTCURVES = INTERIM_DIR / "lightcurves.parquet"

CATALOG_COLUMNS: dict[str, str] = {
    "id": "str: star id, unique",
    "ra": "float: degrees (NaN if unknown)",
    "dec": "float: degrees (NaN if unknown)",
    "mean_vmag": "float: mean magnitude (V for ASAS-SN; the survey's band otherwise)",
    "amplitude": "float: catalog amplitude in mag (NaN if unknown)",
    "period": "float: catalog period in days (NaN if none)",
    "variable_type": "str: the catalog's own type (subtype), e.g. EW, RRAB, VAR",
    "superclass": "str or null: one of taxonomy.CLASSES, 'VAR', or null for an unknown type",
    "class_probability": "float: catalog classifier probability (NaN if none, e.g. VAR)",
    "phot_g_abs": "float: Gaia absolute G magnitude M_G (NaN if missing)",
    "bp_rp": "float: Gaia BP-RP colour (NaN if missing)",
    "w_rp": "float: Gaia Wesenheit W_RP (NaN if missing)",
}
CUT_COLUMNS: dict[str, str] = {
    "n_epochs": "int: good epochs after cleaning in the star's most populated band",
    "ss_resid": "float: supersmoother RMS residual / std on that band (inf if the fit failed, "
                "NaN if cuts.max_ss_resid is off)",
}
LIGHTCURVE_COLUMNS: dict[str, str] = {
    "id": "str: star id (catalog.id)",
    "band": "str: photometric band, e.g. V, g, B, R",
    "time": "float64: HJD/BJD/MJD in days",
    "mag": "float64: magnitude",
    "err": "float64: magnitude error (1 sigma)",
}

SEQUENCE_ARRAYS: dict[str, str] = {
    "X": "float32 (N, n, 2): [dt, normalised mag]; dt = lag of the folded times in days, "
    "the last step 0 (method.md §1)",
    "weight": "float32 (N, n): 1/sigma of the normalised mags = s/err",
    "aux": "float32 (N, 3): raw [mean mag, std mag, log10 P]; the model standardises them",
    "phot": "float32 (N, 3): [M_G, BP-RP, W_RP], NaN where missing",
    "label": "int16 (N,): index into classes, -1 for VAR (novel)",
    "star_id": "str (N,): catalog id of the star the sequence comes from",
    "band": "str (N,): band of the sequence",
    "period": "float64 (N,): folding period in days",
    "classes": "str (K,): taxonomy.CLASSES",
}
SPLIT_ARRAYS: dict[str, str] = {
    "train": "int64: sequence indices for training (known classes only)",
    "valid": "int64: sequence indices for validation (known classes only)",
    "novel": "int64: all VAR sequence indices (never trained on)",
}
