"""Light curves in; class, class probabilities, energy and novelty flags out: one scoring path.

``score_lightcurves(scorer, prep, table)`` is what the MLflow model (`varnet.scoring.pyfunc`),
`varnet score` and `mlflow models serve` run; ``Preprocessing`` is how raw light curves become
the network's sequences, frozen from training (``preprocessing_for`` reads it from a model
folder's variant.json).

Input: a long table, one row per epoch: id (str), time, mag, err (float, days / mag), optional
band (str, default "V"), optional period (days, constant per star; missing or NaN = estimate it
with a Lomb–Scargle periodogram, `varnet.prepare.periods`), and for a photometric model optional
phot_g_abs, bp_rp, w_rp (constant per star). Integer ids become text and integer numbers
float; booleans, dates, float ids and text that is not a number are refused, naming the column,
its type and the first bad row (`readers.typed_lightcurve`, the same rule for files and HTTP).
A "sequence" is simply a light curve of exactly n points, so both raw light curves (cut into
n-point sequences, the remainder dropped) and single sequences are accepted. Only the bands the
model was trained on are cut into sequences (Preprocessing.bands, when recorded); a star's points
in other bands are left out and its note says which and how many (`_untrained_bands`).

Output (params {"level": "star"} (default) or {"level": "sequence"}, and {"alpha": 0.05}): one
row per star, in input order, or per sequence: id, [sequence], class, prob_<CLASS>... (calibrated
by temperature scaling), gamma_<CLASS>... (the estimation network's raw softmax), energy,
energy_<CLASS>..., p_novel (the conformal p-value of the energy against the validation stars of
the known classes), p_<CLASS>... (the same for each class's energy against that class's
validation stars), novel (p_novel <= alpha: a false-alarm rate of at most alpha on stars like the
known classes), novel_p80, novel_p95 (the paper's flags: energy >= the XXth percentile of the
training energies of that level), period, period_source (catalog | lomb-scargle), n_sequences,
n_points, note. Per star, γ and the energies are the means over the star's sequences, the class
their argmax, and the star-level calibration applies (docs/serving.md; scoring.calibration).

Errors: a malformed request (not a table, no rows, a missing column, a non-numeric time/mag/err,
an empty id, an unknown level) raises `InputError`, an MlflowException (HTTP 400 with the
message from `mlflow models serve`) that is also a VarnetError (a clean CLI message). Bad points
(NaN/inf, flagged 99.99 magnitudes, non-positive errors, repeated times) are dropped as in
training and counted in n_points. A star that cannot be scored (fewer than n good points in
every band, no points in a trained band, conflicting periods, no period found, a period outside
the trained range) still gets a row: class empty, numbers NaN, flags False, n_sequences 0, and
`note` saying why, so one bad star never fails a batch. At the sequence level such a star is one
row with sequence = -1.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from varnet.core.errors import VarnetError
from varnet.core.schema import LEVELS, PHOT_COLUMNS, ModelFolder
from varnet.core.taxonomy import CLASSES
from varnet.prepare.cuts import clean_lightcurves
from varnet.prepare.periods import lomb_scargle_period
from varnet.prepare.sequences import build_sequences
from varnet.scoring.calibration import DEFAULT_ALPHA, per_level
from varnet.surveys import readers

REQUIRED_COLUMNS = ("id", "time", "mag", "err")
logger = logging.getLogger(__name__)
DEFAULT_BAND = "V"


class InputError(MlflowException, VarnetError):
    """A request the model cannot score: HTTP 400 when served, a clean message in the CLI."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


@dataclass(frozen=True)
class Preprocessing:
    """How raw light curves become the network's sequences, frozen from training."""

    length: int
    bands: list[str] | None = None
    """The bands the model was trained on: params sequences.bands, else the bands of its
    training sequences (variant.json trained_bands); None = not recorded, every band is scored."""
    sentinel_mag: float = 90.0
    period_range: list[float] | None = field(default_factory=lambda: [0.01, 2000.0])


def output_columns(percentiles: list[str]) -> list[str]:
    """Output columns after id (and sequence), for the paper's threshold ``percentiles``."""
    return (["class", *(f"prob_{c}" for c in CLASSES), *(f"gamma_{c}" for c in CLASSES),
             "energy", *(f"energy_{c}" for c in CLASSES), "p_novel",
             *(f"p_{c}" for c in CLASSES), "novel", *(f"novel_p{k}" for k in percentiles),
             "period", "period_source", "n_sequences", "n_points", "note"])


def _as_frame(model_input) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input must be a table of light-curve points ({exc})") from exc


def _check_input(lc: pd.DataFrame) -> pd.DataFrame:
    """The columns we use, typed (`readers.typed_lightcurve`); a clear InputError for anything
    malformed."""
    if lc.empty:
        raise InputError("empty input: no light-curve rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in lc.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}: a light-curve table needs "
                         f"{list(REQUIRED_COLUMNS)} (+ optional band, period); "
                         f"got {list(lc.columns)}")
    try:
        return readers.typed_lightcurve(lc, "input", default_band=DEFAULT_BAND)
    except VarnetError as exc:
        raise InputError(str(exc)) from exc


def _per_star_constant(lc: pd.DataFrame, column: str, notes: dict[str, str]) -> pd.Series:
    """One value per star (NaN if none given); conflicting values are noted on the star."""
    if column not in lc:
        return pd.Series(np.nan, index=pd.Index(lc["id"].unique()))
    values = lc.groupby("id", sort=False)[column]
    lo, hi = values.min(), values.max()
    for star in lo.index[~np.isclose(lo, hi, rtol=1e-9, atol=0) & lo.notna()]:
        notes.setdefault(star, f"conflicting {column} values ({lo[star]:g} to {hi[star]:g})")
    return lo


def _find_periods(clean: pd.DataFrame, catalog: pd.Series, prep: Preprocessing,
                  notes: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """(period, source) per star: the given one, else the period search on all its bands.

    Source is "catalog" or "lomb-scargle", missing when the star has no period at all.
    """
    period = catalog.copy()
    source = pd.Series(np.where(period.notna(), "catalog", None), index=period.index,
                       dtype="str")
    for star, points in clean[clean["id"].isin(period.index[period.isna()])].groupby(
            "id", sort=False):
        if star in notes or points.groupby("band").size().max() < prep.length:
            continue   # a conflict, or too short to score anyway: that note is more useful
        try:
            period[star] = lomb_scargle_period(*(points[c].to_numpy() for c in (
                "time", "mag", "err", "band")))
            source[star] = "lomb-scargle"
        except VarnetError as exc:
            notes[star] = f"no period given and none found: {exc}"
    if prep.period_range is not None:
        low, high = prep.period_range
        for star in period.index[(period <= 0) | (period < low) | (period > high)]:
            notes.setdefault(star, f"period {period[star]:g} d outside the trained range "
                                   f"[{low:g}, {high:g}]")
    return period, source


def score_lightcurves(scorer, prep: Preprocessing, model_input, level: str = "star",
                      alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """Everything `predict` does, as a plain function of a Scorer (used in-process too)."""
    if level not in LEVELS:
        raise InputError(f"level must be one of {list(LEVELS)}, got {level!r}")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha (the novelty false-alarm rate) must be between 0 and 1, "
                         f"got {alpha!r}")
    lc = _check_input(_as_frame(model_input))
    star_order = pd.Index(lc["id"].unique())
    notes: dict[str, str] = {}
    catalog_period = _per_star_constant(lc, "period", notes)
    phot = pd.DataFrame({c: _per_star_constant(lc, c, notes) for c in PHOT_COLUMNS})
    clean, _ = clean_lightcurves(lc.drop(columns=["period", *PHOT_COLUMNS], errors="ignore"),
                                 prep.sentinel_mag)
    n_points = clean.groupby("id", sort=False).size().reindex(star_order, fill_value=0)
    other_bands = _untrained_bands(clean, prep.bands, notes)
    period, source = _find_periods(clean, catalog_period, prep, notes)  # on all bands

    trained = clean if prep.bands is None else clean[clean["band"].isin(prep.bands)]
    usable = star_order[~star_order.isin(list(notes))]
    catalog = pd.DataFrame({"id": usable, "period": period[usable].to_numpy(),
                            **{c: phot.loc[usable, c].to_numpy() for c in PHOT_COLUMNS}})
    arrays, _ = build_sequences(catalog, trained[trained["id"].isin(usable)], prep.length)
    scored = set(arrays["star_id"].tolist())
    unscored = usable.difference(pd.Index(list(scored)))
    notes.update(_why_unscored(trained[trained["id"].isin(unscored)], unscored, prep.length,
                               n_points))

    if arrays["star_id"].size:
        out = scorer.predict(arrays["X"], arrays["aux"], arrays["phot"])  # phot: NaN = missing
    else:
        out = {"gamma": np.zeros((0, len(CLASSES))), "energy": np.zeros(0),
               "class_energy": np.zeros((0, len(CLASSES)))}
    scores = per_level(arrays["star_id"], gamma=out["gamma"], energy=out["energy"],
                       class_energy=out["class_energy"])[level]
    if level == "star":
        rows = pd.DataFrame({"id": pd.unique(arrays["star_id"]),
                             "n_sequences": scores["n_sequences"]})
    else:
        rows = pd.DataFrame({"id": arrays["star_id"]})
        rows.insert(1, "sequence", rows.groupby("id", sort=False).cumcount())
        rows["n_sequences"] = rows.groupby("id")["id"].transform("size")
    calibrated = scorer.calibration[level].apply(scores["gamma"], scores["energy"],
                                                 scores["class_energy"])
    failed = pd.DataFrame({"id": [s for s in star_order if s in notes]})
    if level == "sequence":
        failed.insert(1, "sequence", -1)
    for star, unused in other_bands.items():  # scored stars too: the note says what was left out
        notes[star] = f"{notes[star]}; {unused}" if star in notes else unused
    return _assemble(rows, failed, {**scores, **calibrated}, scorer.thresholds[level], alpha,
                     period, source, n_points, notes, star_order)


def _untrained_bands(clean: pd.DataFrame, bands: list[str] | None, notes: dict[str, str]
                     ) -> dict[str, str]:
    """What of each star lies in bands the model was not trained on: those points are not
    scored (another band's zero point, amplitude and cadence are not what the network and the
    calibration saw). A star with no trained band gets that as its note (not scored); the
    others get the returned note beside their scores. One logged warning names stars and bands.
    """
    if bands is None:
        return {}
    other = ~clean["band"].isin(bands).to_numpy()
    if not other.any():
        return {}
    with_trained = set(clean.loc[~other, "id"])
    trained_text = ", ".join(map(str, bands))
    unused = {}
    for star, points in clean[other].groupby("id", sort=False)["band"]:
        names = ", ".join(sorted(points.unique()))
        text = (f"band(s) {names} not in the trained band(s) {trained_text}: "
                f"{len(points)} point(s) not used")
        if star in with_trained:
            unused[star] = text
        else:
            notes.setdefault(star, f"no points in the trained band(s) {trained_text} ({text})")
    stars_per_band = clean[other].groupby("band")["id"].nunique().sort_index()
    logger.warning("%d star(s) have points in bands the model was not trained on (trained: %s; "
                   "stars per band: %s), not used, e.g. star %r; see each star's note",
                   clean.loc[other, "id"].nunique(), trained_text,
                   ", ".join(f"{b}: {n}" for b, n in stars_per_band.items()),
                   clean.loc[other, "id"].iloc[0])
    return unused


def _why_unscored(clean: pd.DataFrame, stars: pd.Index, length: int, n_points: pd.Series
                  ) -> dict[str, str]:
    """The real reason each of ``stars`` gave no sequence: too few points, or chunks that
    cannot be standardised (a constant magnitude)."""
    longest = clean.groupby(["id", "band"]).size().groupby("id").max()
    spread = clean.groupby(["id", "band"])["mag"].agg(np.ptp).groupby("id").max()
    notes = {}
    for star in stars:
        if longest.get(star, 0) < length:
            notes[star] = (f"fewer than {length} good points in every band "
                           f"({int(n_points[star])} in all)")
        elif spread.get(star, 0.0) == 0.0:
            notes[star] = (f"constant magnitude ({int(n_points[star])} good points): nothing "
                           "to standardise")
        else:
            notes[star] = ("no usable sequence: every chunk of n points has a constant "
                           "magnitude")
    return notes


def _assemble(rows, failed, scores, thresholds, alpha, period, source, n_points, notes,
              star_order) -> pd.DataFrame:
    rows["class"] = np.asarray(CLASSES)[np.argmax(scores["gamma"], axis=1)]
    for prefix, key in (("prob", "prob"), ("gamma", "gamma")):
        for k, name in enumerate(CLASSES):
            rows[f"{prefix}_{name}"] = scores[key][:, k]
    rows["energy"] = scores["energy"]
    for k, name in enumerate(CLASSES):
        rows[f"energy_{name}"] = scores["class_energy"][:, k]
    rows["p_novel"] = scores["p_novel"]
    for k, name in enumerate(CLASSES):
        rows[f"p_{name}"] = scores["p_class"][:, k]
    table = pd.concat([rows, failed], ignore_index=True)
    table["n_sequences"] = table["n_sequences"].fillna(0).astype(np.int64)
    if "sequence" in table:
        table["sequence"] = table["sequence"].astype(np.int64)
    table["novel"] = table["p_novel"].to_numpy(np.float64) <= alpha
    for key, threshold in thresholds.items():
        table[f"novel_p{key}"] = table["energy"].to_numpy(np.float64) >= threshold
    table["period"] = table["id"].map(period).astype(np.float64)
    table["period_source"] = table["id"].map(source).astype("str")
    table["n_points"] = table["id"].map(n_points).astype(np.int64)
    table["note"] = table["id"].map(notes).astype("str")
    table["class"] = table["class"].astype("str")
    # input order of the stars (stable: sequences keep their order within a star)
    table = table.iloc[np.argsort(star_order.get_indexer(table["id"]), kind="stable")]
    leading = ["id", "sequence"] if "sequence" in table else ["id"]
    return table[leading + output_columns(list(thresholds))].reset_index(drop=True)


def preprocessing_for(model_dir: Path) -> Preprocessing:
    """The preprocessing a trained variant expects, from its variant.json (written by train)."""
    variant = json.loads((ModelFolder(Path(model_dir)).variant).read_text())
    sequences, cuts = variant.get("sequences") or {}, variant.get("cuts") or {}
    length = variant.get("sequence_length", sequences.get("length"))
    if length is None:
        raise VarnetError(f"{model_dir}/variant.json: no sequence_length")
    defaults = Preprocessing(length=int(length))
    return Preprocessing(
        length=int(length), bands=sequences.get("bands") or variant.get("trained_bands"),
        sentinel_mag=float(cuts.get("sentinel_mag", defaults.sentinel_mag)),
        period_range=cuts.get("period_range", defaults.period_range),
    )
