"""Cut clean light curves into folded, normalised n-point sequences (the network's input).

Reads   data/interim/catalog.parquet and data/interim/lightcurves.parquet (written by
        `varnet validate`: kept stars and their clean epochs).
Writes  data/processed/sequences.npz (the arrays of varnet.core.schema.SEQUENCE_ARRAYS, loadable
        with numpy.load(..., allow_pickle=False)) and reports/sequences.json (counts).

For every star and band, the epochs are taken in time order and cut into consecutive,
non-overlapping chunks of exactly `sequences.length` points (the remainder is dropped). Each
chunk is folded on the catalog period (t mod P, in days), sorted by phase (stable), turned into
lags dt[j] = phase[j+1] - phase[j] with the last dt = 0, and its magnitudes are standardised by
the chunk's own mean and (population) standard deviation s. Errors are divided by s and the
per-point weight is s/err. The raw [mean, s, log10 P] are kept as auxiliary features, the Gaia
[M_G, BP-RP, W_RP] as photometric features (NaN where missing).

Nothing is lost silently: stars with fewer than n points in every band, stars without a period
and chunks that cannot be normalised (constant magnitudes, non-positive errors) are counted in
the printed summary and in reports/sequences.json. docs/preprocessing.md lists each place where
this follows the original code rather than the paper.

params.yaml:
  sequences:
    length: 200     # n points per sequence
    bands: null     # e.g. [V]; null = every band (each band is chunked on its own)

Example:
  varnet sequences                      # the DVC stage
  dvc exp run -S sequences.length=100   # shorter sequences
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from varnet.core import files, schema, taxonomy
from varnet.core.config import SequencesParams, section
from varnet.core.errors import VarnetError
from varnet.core.schema import PHOT_COLUMNS

REPORT_FILE = schema.REPORTS_DIR / "sequences.json"

_MIN_RELATIVE_STD = 1e-9
"""A chunk whose std is below this fraction of its mean magnitude is constant: its tiny std is
floating-point rounding, and dividing by it would turn rounding into a fake light curve."""

DROP_REASONS: dict[str, str] = {
    "stars_without_period": "stars without a positive, finite catalog period (cannot be folded)",
    "stars_too_few_epochs": "stars with fewer than {n} points in every band",
    "short_lightcurves": "(star, band) light curves with fewer than {n} points",
    "remainder_points": "points left over after the last full chunk of a light curve",
    "points_other_bands": "points in bands not selected by sequences.bands",
    "stars_not_in_catalog": "light-curve ids missing from the catalog",
    "sequences_non_finite": "chunks with a non-finite time or magnitude",
    "sequences_bad_error": "chunks with a non-positive or non-finite error (no weight s/err)",
    "sequences_constant_mag": "chunks with zero magnitude std (cannot be standardised)",
}


def folded_phase(lag: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Each point's phase from the lags of its sequence(s), (N, T) or (T,): the running sum of
    the lags before it over the period (the first point at 0). The model's twin is
    `varnet.model.autoencoder.FoldedPhase`."""
    lag = np.asarray(lag, dtype=np.float64)
    period = np.asarray(period, dtype=np.float64)
    return (np.cumsum(lag, axis=-1) - lag) / period[..., None]


def build_sequences(catalog: pd.DataFrame, lightcurves: pd.DataFrame, length: int,
                    bands: list[str] | None = None
                    ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Sequences of ``length`` points and the counts of what was dropped (keys DROP_REASONS).

    ``catalog`` needs ``id`` and ``period`` (days); ``superclass`` (a taxonomy class, VAR or
    null; absent = all null) gives the label, -1 for VAR and null; the PHOT_COLUMNS are NaN
    when absent. ``lightcurves`` has id, band, time, mag, err; it need not be sorted. The
    output is ordered by (star id, band, time of the chunk).
    """
    _require_columns(catalog, ("id", "period"), "catalog")
    _require_columns(lightcurves, ("id", "band", "time", "mag", "err"), "light curves")
    catalog = catalog.sort_values("id", kind="stable")
    star_ids = catalog["id"].astype(str).to_numpy(dtype=str)
    duplicated = star_ids[1:][star_ids[1:] == star_ids[:-1]]
    if duplicated.size:
        raise VarnetError(f"catalog: star id {duplicated[0]!r} appears more than once")
    period = catalog["period"].to_numpy(dtype=np.float64)
    has_period = np.isfinite(period) & (period > 0)
    labels = _labels(catalog)
    phot = np.column_stack([
        catalog[c].to_numpy(dtype=np.float64) if c in catalog else np.full(len(catalog), np.nan)
        for c in PHOT_COLUMNS
    ])
    drops = dict.fromkeys(DROP_REASONS, 0)
    drops["stars_without_period"] = int((~has_period).sum())

    # Rows -> (star, band) codes; keep rows of catalog stars with a period, in selected bands.
    # (Factorising first: matching 10k unique ids is far cheaper than matching 4 M rows.)
    row_code, lc_ids = pd.factorize(lightcurves["id"], use_na_sentinel=False)
    star_of_id = pd.Index(star_ids).get_indexer(np.asarray(lc_ids, dtype=str))
    drops["stars_not_in_catalog"] = int((star_of_id < 0).sum())
    row_star = star_of_id[row_code]
    missing = row_star < 0
    row_band, band_names = pd.factorize(lightcurves["band"], sort=True, use_na_sentinel=False)
    band_names = np.asarray(band_names, dtype=str)
    keep = ~missing
    if bands is not None:
        in_bands = np.isin(band_names, np.asarray(bands, dtype=str))[row_band]
        drops["points_other_bands"] = int((keep & ~in_bands).sum())
        keep &= in_bands
    keep[keep] = has_period[row_star[keep]]
    star = row_star[keep]
    band = row_band[keep]
    time = lightcurves["time"].to_numpy(dtype=np.float64)[keep]
    mag = lightcurves["mag"].to_numpy(dtype=np.float64)[keep]
    err = lightcurves["err"].to_numpy(dtype=np.float64)[keep]

    # Chunk each (star, band) light curve in time order into full chunks of `length` points.
    key = star.astype(np.int64) * max(len(band_names), 1) + band
    order = _stable_time_order(key, time)
    key, star, band, time, mag, err = (a[order] for a in (key, star, band, time, mag, err))
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else key[:0]
    sizes = np.diff(np.r_[starts, key.size])
    n_chunks = sizes // length
    position = np.arange(key.size) - np.repeat(starts, sizes)
    in_chunk = position < np.repeat(n_chunks * length, sizes)
    drops["remainder_points"] = int((~in_chunk).sum())
    drops["short_lightcurves"] = int((n_chunks == 0).sum())
    stars_with_chunks = np.unique(star[starts][n_chunks > 0])
    drops["stars_too_few_epochs"] = int(has_period.sum() - stars_with_chunks.size)

    seq_star = np.repeat(star[starts], n_chunks)
    seq_band = np.repeat(band[starts], n_chunks)
    time, mag, err = (a[in_chunk].reshape(-1, length) for a in (time, mag, err))

    # Fold on the catalog period (phase in days, as the code does) and sort by phase, stably
    # so that points of equal phase stay in time order.
    seq_period = period[seq_star]
    phase = np.mod(time, seq_period[:, None])
    by_phase = np.argsort(phase, axis=1, kind="stable")
    phase, mag, err = (np.take_along_axis(a, by_phase, axis=1) for a in (phase, mag, err))
    lag = np.zeros_like(phase)
    lag[:, :-1] = np.diff(phase, axis=1)

    mean = mag.mean(axis=1)
    std = mag.std(axis=1)
    non_finite = ~(np.isfinite(time).all(axis=1) & np.isfinite(mag).all(axis=1))
    bad_error = ~non_finite & ~(np.isfinite(err) & (err > 0)).all(axis=1)
    constant = ~non_finite & ~bad_error & (std <= _MIN_RELATIVE_STD * np.abs(mean))
    drops["sequences_non_finite"] = int(non_finite.sum())
    drops["sequences_bad_error"] = int(bad_error.sum())
    drops["sequences_constant_mag"] = int(constant.sum())
    ok = ~(non_finite | bad_error | constant)
    lag, mag, err, mean, std = lag[ok], mag[ok], err[ok], mean[ok], std[ok]
    seq_star, seq_band, seq_period = seq_star[ok], seq_band[ok], seq_period[ok]

    normalised = (mag - mean[:, None]) / std[:, None]
    arrays = {
        "X": np.stack([lag, normalised], axis=-1).astype(np.float32),
        "weight": (std[:, None] / err).astype(np.float32),
        "aux": np.column_stack([mean, std, np.log10(seq_period)]).astype(np.float32),
        "phot": phot[seq_star].astype(np.float32),
        "label": labels[seq_star].astype(np.int16),
        "star_id": star_ids[seq_star],
        "band": band_names[seq_band],
        "period": seq_period.astype(np.float64),
        "classes": np.asarray(taxonomy.CLASSES, dtype=str),
    }
    return arrays, drops


def _stable_time_order(key: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Order rows by (key, time), stably: rows with equal key and time keep their input order.

    A stable sort of the integer keys alone is enough when times already increase within each
    key (the usual, sorted input) and is far faster than a lexsort of 4 M rows.
    """
    order = np.argsort(key, kind="stable")
    same_key = key[order][1:] == key[order][:-1]
    if (np.diff(time[order]) < 0)[same_key].any():
        order = np.lexsort((time, key))
    return order


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise VarnetError(f"{what}: missing column(s) {missing}; found {list(frame.columns)}")


def _labels(catalog: pd.DataFrame) -> np.ndarray:
    """Class index per star; -1 for VAR and for stars without a superclass (unlabeled)."""
    labels = np.full(len(catalog), -1, dtype=np.int16)
    if "superclass" not in catalog:
        return labels
    superclass = catalog["superclass"]
    known = superclass.isin((*taxonomy.CLASSES, taxonomy.NOVEL)) | superclass.isna()
    if not known.all():
        bad = catalog.loc[~known, ["id", "superclass"]].head(3).to_dict("records")
        raise VarnetError(f"catalog: superclass must be one of {taxonomy.CLASSES}, "
                          f"{taxonomy.NOVEL!r} or null; found e.g. {bad}")
    for k, name in enumerate(taxonomy.CLASSES):
        labels[(superclass == name).to_numpy(dtype=bool, na_value=False)] = k
    return labels


def summarize(catalog: pd.DataFrame, arrays: dict[str, np.ndarray], drops: dict[str, int],
              length: int) -> dict:
    """Counts per class (stars in the catalog, stars kept, sequences) and the drops."""
    names = (*taxonomy.CLASSES, taxonomy.NOVEL)
    label_names = np.asarray(names, dtype=str)[arrays["label"]]  # -1 indexes NOVEL
    kept = pd.DataFrame({"star": arrays["star_id"], "label": label_names})
    in_catalog = catalog["superclass"].value_counts() if "superclass" in catalog else pd.Series()
    per_class = {
        name: {
            "stars_in": int(in_catalog.get(name, 0)),
            "stars_kept": int(kept.loc[kept["label"] == name, "star"].nunique()),
            "sequences": int((kept["label"] == name).sum()),
        }
        for name in names
    }
    return {
        "length": length,
        "bands": sorted(set(arrays["band"].tolist())),
        "sequences": int(arrays["label"].size),
        "stars": int(kept["star"].nunique()),
        "per_class": per_class,
        "drops": drops,
    }


def format_summary(summary: dict) -> str:
    lines = [
        f"sequences: {summary['stars']} stars -> {summary['sequences']} sequences of "
        f"{summary['length']} points (bands: {', '.join(summary['bands']) or 'none'})",
        f"  {'class':6} {'stars in':>9} {'stars kept':>11} {'sequences':>10}",
    ]
    for name, row in summary["per_class"].items():
        lines.append(f"  {name:6} {row['stars_in']:9d} {row['stars_kept']:11d} "
                     f"{row['sequences']:10d}")
    dropped = [f"  {count} {DROP_REASONS[reason].format(n=summary['length'])}"
               for reason, count in summary["drops"].items() if count]
    lines += ["dropped (counted, not errors):", *dropped] if dropped else ["dropped: nothing"]
    empty = [name for name in taxonomy.CLASSES if not summary["per_class"][name]["sequences"]]
    if empty:
        lines.append(f"warning: no sequences of class(es) {', '.join(empty)}; "
                     f"`varnet split` needs every class")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, default=schema.INTERIM_CATALOG,
                        help="kept stars, one row each (default: %(default)s)")
    parser.add_argument("--lightcurves", type=Path, default=schema.INTERIM_LIGHTCURVES,
                        help="their clean epochs (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=schema.SEQUENCES_FILE,
                        help="sequence arrays to write (default: %(default)s)")
    parser.add_argument("--report", type=Path, default=REPORT_FILE,
                        help="counts per class and drops, JSON (default: %(default)s)")


def run(args: argparse.Namespace, params: dict) -> int:
    cfg = section(SequencesParams, params)
    catalog = files.read_parquet(args.catalog)
    lightcurves = files.read_parquet(args.lightcurves)
    if "superclass" in catalog:
        unlabeled = catalog.loc[catalog["superclass"].isna(), "id"]
        if len(unlabeled):
            raise VarnetError(f"{args.catalog}: {len(unlabeled)} star(s) without a superclass "
                              f"(e.g. {unlabeled.iloc[0]!r}); `varnet validate` keeps only "
                              f"known classes and {taxonomy.NOVEL}")
    arrays, drops = build_sequences(catalog, lightcurves, cfg.length, cfg.bands)
    summary = summarize(catalog, arrays, drops, cfg.length)
    print(format_summary(summary))
    if not arrays["label"].size:
        raise VarnetError(f"{args.lightcurves}: no sequences of {cfg.length} points "
                          f"(see the drops above; lower sequences.length?)")
    files.write_npz(args.out, **arrays)
    files.write_json(summary, args.report)
    print(f"wrote {args.out} and {args.report}")
    return 0
