"""Typed params: every section of params.yaml is a dataclass here, read through ``section``.

One accessor for every read, a stage's own section and another's alike:
``section(TrainParams, params).epochs``, ``section(EvaluateParams, params).percentiles``. The
classes live here, not beside the code that uses them, so that a module can read another
wing's section without importing that wing.

Unknown keys are an error (a typo in params.yaml must not be silently ignored), at the top level
too; missing keys take the dataclass defaults. Nested sections (``survey.table``,
``train.variants.<name>``, ``tune.pruning``) are dataclasses too, optional ones included.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from varnet.core.errors import VarnetError
from varnet.core.schema import LEVELS
from varnet.core.taxonomy import CLASSES

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


# --- survey -----------------------------------------------------------------------------------

SOURCES = ("synthetic", "asassn", "table")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_list(name: str, value) -> None:
    """Params that must be a YAML list or null (a bare `bands: g` is a typo for [g])."""
    if value is not None and not isinstance(value, list):
        raise ValueError(f"{name} must be a list or null, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class SyntheticParams:
    """``survey.synthetic``: size and seed of the simulated survey."""

    seed: int = 0
    n_stars: int = 2400
    min_stars_per_class: int = 60
    var_fraction: float = 0.10

    def __post_init__(self) -> None:
        if self.n_stars < len(CLASSES) + 1:
            raise ValueError(f"n_stars={self.n_stars}: need at least one star per class and VAR")
        if not 0.0 <= self.var_fraction < 1.0:
            raise ValueError(f"var_fraction={self.var_fraction}: must be in [0, 1)")
        if self.min_stars_per_class < 0:
            raise ValueError(f"min_stars_per_class={self.min_stars_per_class}: must be >= 0")


@dataclass
class DownloadParams:
    """``survey.asassn.download`` (varnet.surveys.download)."""

    vizier_catalog: str = "II/366/catv2021"
    types: list[str] | None = None
    """ASAS-SN types to fetch, e.g. [EW, RRAB, DCEP, VAR]; null fetches every type."""
    max_stars: int = 100
    """Row limit of each VizieR query (per type); -1 for no limit (the catalog has ~690k rows)."""
    radius_arcsec: float = 10.0
    """Sky Patrol cone radius around each catalog position (ASAS-SN pixels are 8")."""

    def __post_init__(self) -> None:
        _check_list("types", self.types)


@dataclass
class AsassnParams:
    """``survey.asassn``."""

    catalog: str | None = None
    """Database CSV export or VizieR II/366 table (csv, csv.gz, tsv, parquet)."""
    lightcurves: str | None = None
    """Folder or glob of per-star light-curve files (database, older or Sky Patrol CSV)."""
    class_probabilities: str | None = None
    """Optional table asassn_id,class_probability joined on the catalog id."""
    bands: list[str] | None = None
    """Keep only these bands, e.g. [V] as in the paper; null keeps all."""
    download: DownloadParams = field(default_factory=DownloadParams)

    def __post_init__(self) -> None:
        _check_list("bands", self.bands)


@dataclass
class TableParams:
    """``survey.table``: where the tables are and how their columns/labels map."""

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
        _check_list("bands", self.bands)
        _check_list("lightcurve_names", self.lightcurve_names)


@dataclass
class SurveyParams:
    """``survey``: which snapshot to write (``data/raw/<name>/``) and from which source."""

    name: str = "synthetic"
    source: str = "synthetic"
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    asassn: AsassnParams = field(default_factory=AsassnParams)
    table: TableParams = field(default_factory=TableParams)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {list(SOURCES)}")
        if not _NAME.fullmatch(str(self.name)):
            raise ValueError(f"name {self.name!r} must be a plain folder name (letters, digits, "
                             "'.', '_', '-')")


# --- preparation ------------------------------------------------------------------------------

@dataclass
class CutsParams:
    """``cuts``; null disables the cut (sentinel_mag is always applied)."""

    min_class_probability: float | None = 0.9
    min_epochs: int | None = 200
    mag_range: tuple[float, float] | None = (11.0, 17.0)
    max_ss_resid: float | None = 0.7
    sentinel_mag: float = 90.0
    period_range: tuple[float, float] | None = (0.01, 2000.0)

    def __post_init__(self) -> None:
        for name in ("mag_range", "period_range"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 2 or not all(_is_number(v) for v in value) or value[0] >= value[1]:
                raise ValueError(f"{name} must be [low, high] with low < high, got {value!r}")
            setattr(self, name, (float(value[0]), float(value[1])))
        for name in ("min_class_probability", "min_epochs", "max_ss_resid", "sentinel_mag"):
            value = getattr(self, name)
            if value is not None and not _is_number(value):
                raise ValueError(f"{name} must be a number or null, got {value!r}")
        if self.sentinel_mag is None:
            raise ValueError("sentinel_mag cannot be null (flagged 99.99 epochs must be dropped)")


@dataclass(frozen=True)
class SequencesParams:
    """``sequences``: n points per sequence and the bands to cut."""

    length: int = 200
    bands: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 2:
            raise ValueError(f"length must be an integer >= 2, got {self.length!r}")
        if self.bands is not None and (not self.bands or not isinstance(self.bands, list)):
            raise ValueError(f"bands must be null or a non-empty list, got {self.bands!r}")


SPLIT_BY = ("star", "sequence")


@dataclass(frozen=True)
class SplitParams:
    """``split``: train/valid/test grouped by star (honest) or by sequence (the paper's)."""

    by: str = "star"
    n_splits: int = 5
    fold: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.by not in SPLIT_BY:
            raise ValueError(f"by must be one of {SPLIT_BY}, got {self.by!r}")
        if not isinstance(self.n_splits, int) or self.n_splits < 3:
            raise ValueError(f"n_splits must be an integer >= 3 (test, valid and a training "
                             f"fold), got {self.n_splits!r}")
        if not isinstance(self.fold, int) or not 0 <= self.fold < self.n_splits:
            raise ValueError(f"fold (the test fold) must be an integer in [0, n_splits), got "
                             f"{self.fold!r}")


# --- model and training -----------------------------------------------------------------------

LAG_TRANSFORMS = ("days", "phase")
PHOT_MISSING = ("mask", "fill99")


@dataclass
class ModelParams:
    """``model``: the architecture (docs/model.md)."""

    embedding: int = 32
    gru_units: int = 32
    gru_layers: int = 2
    dropout: float = 0.25
    estimation_dropout: float = 0.5
    standardize_aux: bool = True
    lag_transform: str = "phase"
    phot_missing: str = "mask"
    gmm_jitter: float = 1.0e-4
    decoder_phase: bool = True
    """The decoder sees each step's folded phase beside dt (false: dt alone, the paper's)."""
    decoder_harmonics: int = 4
    """With decoder_phase: also sin/cos(2 pi k phase), k = 1..n, so that the decoder starts
    from the Fourier basis that a folded curve is smooth in (0: the phase alone)."""
    encoder_period: bool = True
    """The encoder sees the (standardised) log10 P at every step beside dt and mag, so the
    embedding can carry the period; the original's lags in days carry it implicitly."""
    reconstruct_period: bool = True
    """The autoencoder also reconstructs the standardised log10 P from the embedding (a linear
    head, its squared error added to L_AE): with lags in phase units the decoder never needs
    the period, so without this the embedding keeps the shape and drops the time scale that
    tells a DSCT from an RRc (docs/model.md). false: the paper's autoencoder."""

    def __post_init__(self):
        if self.lag_transform not in LAG_TRANSFORMS:
            raise ValueError(f"lag_transform must be one of {LAG_TRANSFORMS}")
        if self.phot_missing not in PHOT_MISSING:
            raise ValueError(f"phot_missing must be one of {PHOT_MISSING}")
        if self.decoder_harmonics < 0:
            raise ValueError("decoder_harmonics must be 0 or more")
        if self.embedding < 1 or self.gru_units < 1 or self.gru_layers < 1:
            raise ValueError("embedding, gru_units and gru_layers must be positive")


MODES = ("joint", "sequential")
LR_SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = (None, "balanced")


@dataclass
class VariantParams:
    """One entry of ``train.variants``: a column of Table 2."""

    mode: str
    photometric: bool = False
    autoencoder_from: str | None = None
    """Sequential only: another sequential variant whose trained autoencoder this one takes
    instead of training the same one again, when that training read the same data, params and
    code (else it trains its own). The photometric inputs reach the estimation network only, so
    sequential and sequential-phot have one autoencoder."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.autoencoder_from is not None and self.mode != "sequential":
            raise ValueError("autoencoder_from needs mode sequential (a joint variant trains "
                             "its autoencoder with the estimation network)")


@dataclass
class TrainParams:
    """``train``: the optimisation and the variants to train."""

    lambda_energy: float = 1.0e-3
    lambda_period: float = 1.0
    """Weight of the period term beside L_AE (with model.reconstruct_period)."""
    learning_rate: float = 1.0e-2
    batch_size: int = 64
    epochs: int = 25
    estimation_epochs: int = 60
    joint_estimation_epochs: int = 0
    """Joint variants: after the joint phase, this many epochs of the estimation network alone
    on the frozen features, as sequential's second phase (0: joint only, the paper). At CPU
    budgets the joint phase ends before the estimation network has converged; this gives both
    modes the same classifier budget, so they differ only in how the autoencoder learnt."""
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    """Epochs of linear warm-up from lr/10 to lr at the start of each phase (0: none)."""
    clipnorm: float | None = None
    """Clip each gradient to this L2 norm (null: no clipping)."""
    class_weight: str | None = None
    """null: every training sequence weighs the same in L_CE (the paper); balanced: each class
    by N / (K n_k) of the training set, so that a rare class (EROS-1's eclipsing binaries,
    12 % of the sequences beside 61 % RR Lyrae) is not traded for the majority."""
    early_stopping_patience: int = 0
    seed: int = 0
    deterministic: bool = True
    jobs: int = 1
    """Variants trained at once by `varnet train` of several (each in its own process with
    cores / jobs threads, training.parallel)."""
    variants: dict[str, VariantParams] = field(default_factory=dict)

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}")
        for name in ("epochs", "batch_size", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("estimation_epochs", "joint_estimation_epochs", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lambda_period < 0:
            raise ValueError(f"lambda_period must be >= 0, got {self.lambda_period!r}")
        if not self.learning_rate > 0 or self.lambda_energy < 0:
            raise ValueError(f"learning_rate must be > 0 and lambda_energy >= 0, got "
                             f"{self.learning_rate!r} and {self.lambda_energy!r}")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got "
                             f"{self.class_weight!r}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"clipnorm must be > 0 or null, got {self.clipnorm!r}")
        for name, variant in self.variants.items():
            source = self.variants.get(variant.autoencoder_from)
            if variant.autoencoder_from is not None and (
                    source is None or source.mode != "sequential"
                    or source.autoencoder_from is not None or variant.autoencoder_from == name):
                raise ValueError(f"variants.{name}.autoencoder_from must name another "
                                 "sequential variant that trains its own autoencoder, got "
                                 f"{variant.autoencoder_from!r}")

    def variant(self, name: str) -> VariantParams:
        if name not in self.variants:
            raise VarnetError(f"unknown variant {name!r}; params train.variants has "
                              f"{sorted(self.variants)}")
        return self.variants[name]


# --- evaluation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``: the novelty thresholds and the figures."""

    percentiles: list[float] = field(default_factory=lambda: [80, 95])
    """The paper's novelty thresholds: percentiles of the training energies (written by train)."""
    alphas: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1])
    """False-alarm rates at which the conformal novelty flag (p_novel <= alpha) is reported."""
    histogram_clip_percentile: float = 99.0
    """Energy histograms show up to this percentile of all energies; higher ones pile up in
    the last bin (VAR energies have a tail far beyond the known classes')."""

    def __post_init__(self) -> None:
        if not self.alphas or not all(_is_number(a) and 0 < a < 1 for a in self.alphas):
            raise ValueError(f"alphas must be a non-empty list of numbers in (0, 1), got "
                             f"{self.alphas!r}")


SEARCHES = ("halving", "grid")


@dataclass(frozen=True)
class BaselineParams:
    """``baseline``: the random forest's grid search (the paper's 72 combinations)."""

    n_estimators: list[int] = field(default_factory=lambda: [50, 100, 250])
    criterion: list[str] = field(default_factory=lambda: ["gini", "entropy"])
    max_features: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3])
    min_samples_leaf: list[int] = field(default_factory=lambda: [1, 2, 3])
    cv: int = 3
    seed: int = 0
    search: str = "halving"
    """halving: successive halving over the grid (factor 3, each round the best third of the
    candidates on three times the sequences, the last on up to all of them); grid: every
    combination on every training sequence (the paper)."""
    n_jobs: int = 2
    variants: list[str] | None = None
    """Variants to fit (null = every trained variant of train.variants)."""

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {self.search!r}")

    @property
    def grid(self) -> dict[str, list]:
        return {"n_estimators": list(self.n_estimators), "criterion": list(self.criterion),
                "max_features": list(self.max_features),
                "min_samples_leaf": list(self.min_samples_leaf)}


# --- tracking, tuning, serving ----------------------------------------------------------------

@dataclass
class MlflowParams:
    """``mlflow``: the tracking store and the registered model's name."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str = "mlruns/artifacts"
    experiment: str = "varnet"
    registered_model: str = "varnet"


@dataclass
class PruningParams:
    """``tune.pruning``: Optuna's PercentilePruner rule, applied by hand (multi-objective)."""

    percentile: float = 50.0       # 50 = median rule
    n_startup_trials: int = 3      # completed trials before anything is pruned
    n_warmup_epochs: int = 2       # epochs a trial always gets


@dataclass
class TuneParams:
    """``tune``: the Optuna study (docs/tuning.md)."""

    study: str = "varnet-tune"
    storage: str = "sqlite:///optuna/varnet.db"
    variant: str = "joint"
    n_trials: int = 20
    timeout_s: float | None = None
    epochs: int | None = None                  # epochs per trial; null keeps train.epochs
    lambda_range: tuple[float, float] = (1.0e-5, 1.0e-1)
    embedding_choices: tuple[int, ...] = (8, 16, 32, 64)
    learning_rate_range: tuple[float, float] | None = None   # null keeps train.learning_rate
    pruning: PruningParams | None = field(default_factory=PruningParams)
    pick_accuracy_tolerance: float = 0.005
    heartbeat_interval: int = 60               # s; SQL storages only; 0 disables
    retry_failed: int = 1                      # re-queue a killed trial's params this often
    seed: int = 0

    def __post_init__(self) -> None:
        self.lambda_range = _positive_range(self.lambda_range, "lambda_range")
        if self.learning_rate_range is not None:
            self.learning_rate_range = _positive_range(self.learning_rate_range,
                                                       "learning_rate_range")
        self.embedding_choices = tuple(int(m) for m in self.embedding_choices)
        if not self.embedding_choices or min(self.embedding_choices) < 1:
            raise ValueError("embedding_choices must be positive integers")
        if self.n_trials < 1:
            raise ValueError("n_trials must be >= 1")


def _positive_range(values, name: str) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not 0 < low < high:
        raise ValueError(f"{name} must be [low, high] with 0 < low < high, got {list(values)}")
    return low, high


@dataclass
class PromoteParams:
    """``promote``: the gate that moves the champion alias."""

    metrics: dict[str, float] = field(
        default_factory=lambda: {"valid_accuracy": 0.0, "novelty_auroc": 0.0})
    """metric -> tolerance: pass if every candidate metric >= champion's - tolerance."""
    data_tag_prefix: str = "data."
    """Run tags starting with this name the evaluation data; they must match to compare."""

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("metrics must name at least one metric")
        for name, tol in self.metrics.items():
            if not isinstance(tol, int | float) or tol < 0:
                raise ValueError(f"metrics.{name}: tolerance must be a number >= 0, got {tol!r}")


@dataclass
class ScoreParams:
    """``score``: the model `varnet score` loads and how it reads its input."""

    model: str = "models:/varnet@champion"
    chunk_rows: int = 200_000
    level: str = "star"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if int(self.chunk_rows) < 1:
            raise ValueError("chunk_rows must be >= 1")


SECTIONS: dict[str, type] = {
    "survey": SurveyParams, "cuts": CutsParams, "sequences": SequencesParams,
    "split": SplitParams, "model": ModelParams, "train": TrainParams,
    "evaluate": EvaluateParams, "baseline": BaselineParams, "mlflow": MlflowParams,
    "tune": TuneParams, "promote": PromoteParams, "score": ScoreParams,
}
"""The top-level sections of params.yaml and their classes."""
_NAME_OF = {cls: name for name, cls in SECTIONS.items()}


# --- reading ----------------------------------------------------------------------------------

def load_params(paths: str | os.PathLike | list[str | os.PathLike] = DEFAULT_PARAMS
                ) -> dict[str, Any]:
    """Read params.yaml, or several files merged in order: a later file's keys override.

    The overlays in configs/ (a real survey, the paper-scale GPU profile) hold only the keys
    they change, so ``--params params.yaml --params configs/surveys/eros1-lmc.yaml`` runs the
    pipeline on EROS-1 without editing params.yaml.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, _read_one(Path(path)))
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_one(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise VarnetError(f"{path}: params file not found "
                          "(run from the project root or pass --params)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VarnetError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(params, dict):
        raise VarnetError(f"{path}: expected a mapping of sections at the top level")
    if unknown := sorted(set(params) - set(SECTIONS)):
        raise VarnetError(f"{path}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    return params


def section(cls: type[T], params: dict[str, Any]) -> T:
    """The typed section ``cls`` (one of ``SECTIONS``) of a params mapping."""
    name = _NAME_OF[cls]
    return from_dict(cls, params.get(name) or {}, where=name)


def from_dict(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Recursively build a dataclass from a mapping, rejecting unknown keys.

    ``where`` names the mapping in messages (default: the class's section of params.yaml)."""
    where = where or _NAME_OF.get(cls, cls.__name__)
    if not isinstance(values, dict):
        raise VarnetError(f"params {where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise VarnetError(f"params {where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _typed(hints[key], value, f"{where}.{key}") for key, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise VarnetError(f"params {where}: {exc}") from exc


_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _typed(hint: Any, value: Any, where: str) -> Any:
    """A mapping given for a dataclass field (``X``, ``X | None``, ``dict[str, X]``) built; a
    scalar checked against its type (``epochs: "ten"`` is an error, not a TypeError later)."""
    if not isinstance(value, dict):
        _check_scalar(hint, value, where)
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        classes = [a for a in args if dataclasses.is_dataclass(a)]
        return from_dict(classes[0], value, where) if len(classes) == 1 else value
    if typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return {key: _typed(args[1], item, f"{where}.{key}") for key, item in value.items()}
    return value


def _check_scalar(hint: Any, value: Any, where: str) -> None:
    args = typing.get_args(hint)
    optional = (isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union) \
        and type(None) in args
    base = next((a for a in args if a is not type(None)), None) if optional else hint
    if base not in _SCALARS or (optional and value is None):
        return
    ok = (isinstance(value, bool) if base is bool else
          isinstance(value, base) and not isinstance(value, bool) if base is not float else
          isinstance(value, int | float) and not isinstance(value, bool))
    if not ok:
        raise VarnetError(f"params {where}: must be {_SCALARS[base]}"
                          f"{' or null' if optional else ''}, got {value!r}")


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for logging params to MLflow)."""
    return dataclasses.asdict(obj)
