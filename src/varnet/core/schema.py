"""The data contracts between stages: file locations and the columns/arrays each one holds.

raw snapshot  data/raw/<survey>/catalog.parquet      one row per star, CATALOG_COLUMNS
              data/raw/<survey>/lightcurves.parquet  one row per epoch, LIGHTCURVE_COLUMNS
              (raw: may hold sentinels, NaN, duplicates; `validate` cleans and counts them)
after cuts    data/interim/catalog.parquet           kept stars: CATALOG_COLUMNS + CUT_COLUMNS
              data/interim/lightcurves.parquet       their clean epochs, sorted by (id, band, time)
sequences     data/processed/sequences.npz           SEQUENCE_ARRAYS (no pickle)
split         data/processed/split.npz               SPLIT_ARRAYS: indices into sequences.npz
a variant     models/<variant>/                      ModelFolder: MODEL_FILES, PREDICTION_ARRAYS
"""

from __future__ import annotations

from dataclasses import dataclass
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

SENTINEL_MAG = 99.99
"""The magnitude a raw snapshot gives a flagged point (ASAS-SN's convention; `cuts.sentinel_mag`
drops everything at or above its threshold)."""

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
PHOT_COLUMNS: dict[str, str] = {"phot_g_abs": "M_G", "bp_rp": "BP_RP", "w_rp": "W_RP"}
"""The Gaia photometry of the photometric variants: catalog column -> GMM feature name."""

LIGHTCURVE_COLUMNS: dict[str, str] = {
    "id": "str: star id (catalog.id)",
    "band": "str: photometric band, e.g. V, g, B, R",
    "time": "float64: HJD/BJD/MJD in days",
    "mag": "float64: magnitude",
    "err": "float64: magnitude error (1 sigma)",
}

SEQUENCE_ARRAYS: dict[str, str] = {
    "X": "float32 (N, n, 2): [dt, normalised mag]; dt = lag of the folded times in days, "
    "the last step 0 (docs/method.md §1)",
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
    "valid": "int64: known-class sequences that choose: early stopping, tuning, promotion, "
             "calibration, thresholds",
    "test": "int64: known-class sequences that only report (Table 2, README, benchmarks)",
    "novel_valid": "int64: VAR sequences of half the VAR stars: the novelty objective of tuning "
                   "and promotion",
    "novel_test": "int64: VAR sequences of the other VAR stars: reported novelty recall",
}
"""Every sequence is in exactly one set, every star in exactly one (split.by: star)."""
NOVEL_SUBSETS = ("novel_valid", "novel_test")
REPORTED = ("test", "novel_test")
"""What evaluation reads; selection reads train, "valid" and "novel_valid" only."""

LEVELS = ("sequence", "star")
"""The two levels every result is given at: per sequence (the paper's) and per star."""

MODEL_FILES: dict[str, str] = {
    "model.keras": "the network (Keras 3 format); the input standardisation is inside it",
    "gmm.npz": "phi (K,), mu (K, l), sigma (K, l, l): the GMM refitted once on the training set "
               "with dropout off",
    "thresholds.json": "{level: {percentile: energy}}: evaluate.percentiles of the training "
                       "energies per sequence and per star (a star's energy: its mean)",
    "calibration.npz": "validation energies per level and class and the temperatures: "
                       "conformal p-values and calibrated probabilities (scoring.calibration)",
    "predictions.npz": "PREDICTION_ARRAYS of every sequence of every split subset",
    "history.csv": "one row per epoch: phase, losses, accuracy, their val_ twins, time_s",
    "variant.json": "the resolved config: mode, photometric, model, train, features, "
                    "sequence_length, sequences, cuts, epochs_trained, trained_bands, data: "
                    "the md5 of the sequences.npz and split.npz it was trained on, code: the "
                    "md5 of varnet's sources (core.provenance), and autoencoder_from: the "
                    "model folder whose autoencoder it took, if any",
    "run.json": "run_id, experiment_id, registered_model, version of the training's MLflow run",
}
"""What `varnet train` writes to models/<variant>/, each file replaced atomically."""
SERVED_FILES = ("model.keras", "gmm.npz", "thresholds.json", "calibration.npz", "variant.json")
"""The part of a model folder that scoring needs (and the MLflow model carries)."""

PREDICTION_ARRAYS: dict[str, str] = {
    "index": "int64 (N,): row in sequences.npz",
    "subset": "str (N,): a key of SPLIT_ARRAYS",
    "label": "int16 (N,): class index, -1 for VAR",
    "star_id": "str (N,)",
    "gamma": "float32 (N, K): class probabilities",
    "energy": "float64 (N,): GMM energy (novelty score)",
    "class_energy": "float64 (N, K): energy under each class's component",
    "embedding": "float32 (N, m)",
    "features": "float32 (N, l): the GMM input z",
    "reconstruction": "float32 (N, T): the autoencoder's x_hat of the normalised mags",
    "recon_r2": "float64 (N,): weighted R² of the reconstruction (metrics.reconstruction_r2)",
}


@dataclass(frozen=True)
class ModelFolder:
    """The files of one trained variant, ``models/<variant>/`` (MODEL_FILES)."""

    root: Path

    @classmethod
    def of(cls, variant: str, models_dir: Path = MODELS_DIR) -> ModelFolder:
        return cls(Path(models_dir) / variant)

    def file(self, name: str) -> Path:
        if name not in MODEL_FILES:
            raise KeyError(f"{name!r} is not a file of a model folder: {sorted(MODEL_FILES)}")
        return self.root / name

    model = property(lambda self: self.file("model.keras"))
    gmm = property(lambda self: self.file("gmm.npz"))
    thresholds = property(lambda self: self.file("thresholds.json"))
    calibration = property(lambda self: self.file("calibration.npz"))
    predictions = property(lambda self: self.file("predictions.npz"))
    history = property(lambda self: self.file("history.csv"))
    variant = property(lambda self: self.file("variant.json"))
    run = property(lambda self: self.file("run.json"))
    checkpoint = property(lambda self: self.root / "checkpoint")
    """Per-epoch training state while a training is unfinished (training.checkpoint)."""

    def missing(self, names=SERVED_FILES) -> list[Path]:
        """The files of ``names`` that are not there."""
        return [self.file(n) for n in names if not self.file(n).is_file()]
