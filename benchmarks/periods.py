"""Period search for stars sent without a period: catalog periods recovered, and stars/s.

`varnet.prepare.periods.lomb_scargle_period` (nifty-ls periodogram of all bands, harmonic-fit
choice among its peaks, P/2P test; docs/periods.md) against the path it replaced (astropy's
LombScargle, highest peak over 0.05-1000 d, 5 grid points per peak, on the fullest band), on the
real sets of ../shared/data (or $VARNET_SHARED_DATA) that carry catalog periods:

  sdss-s82    Stripe 82 RR Lyrae (Sesar et al. 2010), ugriz, ~56 epochs per band over ~8 years
  eros1-lmc   EROS-1 LMC, photographic B and R, ~120 epochs per band over 2.5 years; reference
              `period_true` (= period / div_period, PROVENANCE.md), but the raw `period` for
              Miras, which fold better on it (configs/surveys/eros1-lmc.yaml)
  gaia-dr3    the 364 Gaia DR3 G-band light curves with a period (20-153 epochs)

Every light curve is cleaned as `varnet score` cleans it (`clean_lightcurves`; S82's
99.999 errors mark bad points). A period is "P" within 1% of the catalog's, "P/2" or "2P"
within 1% of half or twice it, "daily alias" within 1% of 1 / (1/P ± k / sidereal day),
k = 1, 2 (the aliases of nightly sampling from one site), else "other"; for the daily
aliases, whether the search's own harmonic fit prefers the alias to the catalog period.
Eclipsing binaries: both EROS-1 and Gaia DR3 give the orbital period (their light curves folded
at half of it show two unequal minima), so "P" is right for them too. The new path runs on
every star, the astropy path on a deterministic subset (every k-th star; it takes ~1 s a star),
both in one process per core; the new path is also reported on that subset. ZTF-like:
synthetic light curves of ~1,000 epochs over 3 years (nightly, seasonal gaps), sinusoids,
RR Lyrae sawtooths, detached and contact binaries with log-uniform periods, one band (r) and
two (g, r).

    .venv/bin/python -m benchmarks.periods --json benchmarks/results/periods.json
    .venv/bin/python -m benchmarks.periods --quick
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import common

SHARED_DATA = Path(os.environ.get("VARNET_SHARED_DATA", common.ROOT.parent / "shared" / "data"))
ASTROPY_STARS = 100
"""Stars per set for the astropy path (QUICK: 10)."""
QUICK_STARS = 60
ZTF_STARS = 200
TOLERANCE = 0.01
RR_LYRAE = ("RR", "RRAB", "RRCD")
"""The classes pooled into the RR Lyrae target."""
SIDEREAL_DAY = 0.99727
"""days: a target is observed at about the same sidereal time each night."""


# --- the real sets ----------------------------------------------------------------------------

def _clean(points: pd.DataFrame) -> pd.DataFrame:
    from varnet.prepare.cuts import clean_lightcurves

    return clean_lightcurves(points, sentinel_mag=90.0)[0]


def load_sets(limit: int | None) -> dict[str, list[tuple]]:
    """Set -> [(id, class, reference period, t, mag, err, band)]; absent sets are left out."""
    readers = {"sdss-s82": _s82, "eros1-lmc": _eros, "gaia-dr3": _gaia}
    sets = {}
    for name, read in readers.items():
        catalog, points = read()
        if catalog is None:
            continue
        if limit is not None:
            catalog = catalog.iloc[np.linspace(0, len(catalog) - 1, limit).astype(int)]
        points = _clean(points[points["id"].isin(catalog["id"])])
        groups = dict(tuple(points.groupby("id", sort=False)))
        sets[name] = [(row.id, row.cls, row.period,
                       *(groups[row.id][c].to_numpy() for c in ("time", "mag", "err", "band")))
                      for row in catalog.itertuples() if row.id in groups]
    return sets


def _s82():
    folder = SHARED_DATA / "sdss-s82-rrlyrae"
    if not folder.is_dir():
        return None, None
    catalog = pd.read_csv(folder / "catalog.csv.gz").rename(
        columns={"star_id": "id", "superclass": "cls"})
    points = pd.read_csv(folder / "lightcurves.csv.gz").rename(
        columns={"star_id": "id", "mag_err": "err"})
    points = points[points["err"] < 9]   # 99.999: a bad point (PROVENANCE.md)
    return catalog[["id", "cls", "period"]], points


def _eros():
    folder = SHARED_DATA / "eros1-lmc"
    if not folder.is_dir():
        return None, None
    catalog = pd.read_csv(folder / "catalog.csv.gz")
    catalog = pd.DataFrame({
        "id": catalog["star_id"], "cls": catalog["superclass"],
        "period": catalog["period_true"].where(catalog["superclass"] != "M", catalog["period"])})
    points = pd.read_csv(folder / "lightcurves.csv.gz", usecols=[
        "star_id", "band", "time", "mag", "mag_err"]).rename(
        columns={"star_id": "id", "mag_err": "err"})
    return catalog, points


def _gaia():
    folder = SHARED_DATA / "gaia-dr3-cbm"
    if not folder.is_dir():
        return None, None
    catalog = pd.read_csv(folder / "catalog.csv.gz").dropna(subset=["period"])
    catalog = pd.DataFrame({"id": catalog["source_id"].astype(str),
                            "cls": catalog["best_class_name"].replace({"DSCT|GDOR|SXPHE": "DSCT"}),
                            "period": catalog["period"]})
    points = pd.read_csv(folder / "lightcurves.csv.gz").rename(
        columns={"source_id": "id", "mag_err": "err"})
    points["id"] = points["id"].astype(str)
    points["band"] = "G"
    return catalog, points


# --- the two paths ----------------------------------------------------------------------------

def astropy_period(t, mag, err, band) -> float:
    """The replaced path: astropy LombScargle's highest peak, 0.05-1000 d, fullest band."""
    from astropy.timeseries import LombScargle

    labels, counts = np.unique(band, return_counts=True)
    keep = band == labels[np.argmax(counts)]
    t, mag, err = t[keep], mag[keep], err[keep]
    baseline = float(np.ptp(t))
    f_min, f_max = 1 / 1000.0, 1 / 0.05
    n = int(min(np.ceil((f_max - f_min) * 5 * baseline) + 1, 1_000_000))
    frequency = np.linspace(f_min, f_max, n)
    power = LombScargle(t, mag, err).power(frequency, method="fast",
                                           assume_regular_frequency=True)
    return float(1 / frequency[int(np.nanargmax(power))])


def _new(star: tuple) -> float:
    from varnet.core.errors import VarnetError
    from varnet.prepare.periods import lomb_scargle_period

    try:
        return lomb_scargle_period(*star)
    except VarnetError:
        return float("nan")


def _old(star: tuple) -> float:
    return astropy_period(*star)


def _warm(ready=None) -> None:
    """One BLAS thread in this process, then imports and first calls (scipy.stats, nifty-ls,
    astropy) before anything is timed.

    One process per core, each with OpenBLAS's thread per core, oversubscribes the cores: the
    threads of the small fits wait on each other (docs/periods.md). nifty-ls is given one
    thread by the search itself; Dask workers get OMP_NUM_THREADS=1 (varnet.serving.distributed).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    star = ztf_like(1, ("r",), seed=99)[0][3:]
    _new(star)
    _old(star)
    if ready is not None:
        ready.wait()


def timed_map(function, stars: list[tuple], processes: int) -> tuple[np.ndarray, float]:
    """Periods of ``stars`` with ``processes`` warm worker processes (1: in this one); wall s."""
    if processes == 1:
        _warm()
        started = time.perf_counter()
        out = [function(s) for s in stars]
        return np.asarray(out, dtype=float), time.perf_counter() - started
    context = get_context("fork")
    ready = context.Barrier(processes + 1)
    with context.Pool(processes, initializer=_warm, initargs=(ready,)) as pool:
        ready.wait()   # every worker is warm
        started = time.perf_counter()
        out = pool.map(function, stars, chunksize=max(1, len(stars) // (8 * processes)))
        return np.asarray(out, dtype=float), time.perf_counter() - started


def verdict(found: float, reference: float) -> str:
    if not np.isfinite(found):
        return "failed"
    for name, factor in (("P", 1.0), ("P/2", 0.5), ("2P", 2.0)):
        if abs(found / (factor * reference) - 1) < TOLERANCE:
            return name
    for cycles in (1, -1, 2, -2):
        alias = 1 / reference + cycles / SIDEREAL_DAY
        if alias > 0 and abs(found * alias - 1) < TOLERANCE:
            return "daily alias"
    return "other"


def table(classes: list[str], found: np.ndarray, reference: np.ndarray) -> dict:
    """Per class (and "all"): stars and counts of P, P/2, 2P, daily alias, other, failed;
    recovered = P."""
    rows: dict[str, Counter] = {}
    for cls, f, ref in zip(classes, found, reference, strict=True):
        for key in (cls, "all"):
            rows.setdefault(key, Counter())[verdict(f, ref)] += 1
    return {key: {"stars": sum(c.values()), **{k: c[k] for k in ("P", "P/2", "2P", "daily alias",
                                                                  "other", "failed")},
                  "recovered": round(c["P"] / sum(c.values()), 4)}
            for key, c in sorted(rows.items(), key=lambda kc: (kc[0] == "all", kc[0]))}


def zoomed_fit(star: tuple, period: float) -> tuple[float, float]:
    """(frequency, chi²) of the fit the search chooses by (an offset per band + HARMONICS
    Fourier terms) at ``period``, moved onto its own chi² minimum within one grid step."""
    from varnet.prepare.periods import OVERSAMPLING, _bands, _checked, _zoom

    t, mag, err, band = _checked(*star[3:])
    bands = _bands(t - t.min(), mag, err, band)
    step = 1.0 / (OVERSAMPLING * np.ptp(t))
    freqs, chi2 = _zoom(bands, np.array([1.0 / period]), step, (1e-12, np.inf))
    return float(freqs[0]), float(chi2[0])


def alias_margin(star: tuple, found: float) -> float:
    """chi² at the catalog period minus chi² at the returned one (`zoomed_fit`): > 0 when the
    light curve itself prefers what was returned."""
    return zoomed_fit(star, star[2])[1] - zoomed_fit(star, found)[1]


def alias_table(stars: list[tuple], found: np.ndarray) -> dict:
    """Per class (and "all") over the stars returned at a daily alias: how many fit better
    there than at the catalog period, and the median chi² margin."""
    margins: dict[str, list[float]] = {}
    for star, f in zip(stars, found, strict=True):
        if verdict(f, star[2]) == "daily alias":
            margin = alias_margin(star, f)
            for key in (star[1], "all"):
                margins.setdefault(key, []).append(margin)
    return {key: {"stars": len(m), "alias_fits_better": int(np.sum(np.asarray(m) > 0)),
                  "median_margin": round(float(np.median(m)), 1)}
            for key, m in sorted(margins.items(), key=lambda km: (km[0] == "all", km[0]))}


def measure_set(stars: list[tuple], processes: int, astropy_stars: int) -> dict:
    arrays = [s[3:] for s in stars]
    classes = [s[1] for s in stars]
    reference = np.array([s[2] for s in stars])
    found, seconds = timed_map(_new, arrays, processes)
    subset = np.unique(np.linspace(0, len(stars) - 1, min(astropy_stars, len(stars)))
                       .astype(int))
    old, old_seconds = timed_map(_old, [arrays[i] for i in subset], processes)
    new_sub, new_sub_seconds = timed_map(_new, [arrays[i] for i in subset], processes)
    sub_classes = [classes[i] for i in subset]
    return {
        "stars": len(stars), "epochs_median": int(np.median([s[3].size for s in stars])),
        "bands_median": int(np.median([np.unique(s[6]).size for s in stars])),
        "new": {"seconds": round(seconds, 2), "stars_per_s": round(len(stars) / seconds, 1),
                "classes": table(classes, found, reference),
                "daily_aliases": alias_table(stars, found)},
        "subset": {"stars": int(subset.size),
                   "astropy": {"seconds": round(old_seconds, 2),
                               "stars_per_s": round(subset.size / old_seconds, 2),
                               "classes": table(sub_classes, old, reference[subset])},
                   "new": {"seconds": round(new_sub_seconds, 2),
                           "stars_per_s": round(subset.size / new_sub_seconds, 1),
                           "classes": table(sub_classes, new_sub, reference[subset])}},
        "load_after": common.load()}


# --- ZTF-like synthetic light curves ----------------------------------------------------------

def ztf_like(n_stars: int, bands: tuple[str, ...], seed: int = 0) -> list[tuple]:
    """(id, class, period, t, mag, err, band): 1,000 epochs over 3 years, nightly in season."""
    rng = np.random.default_rng(seed)
    kinds = {"sinusoid": (0.02, 100.0), "RR": (0.25, 0.9), "EA": (0.5, 20.0), "EW": (0.22, 0.6)}
    nights = np.arange(3 * 365)
    nights = nights[np.cos(2 * np.pi * nights / 365.25) > -0.5]   # 8 months a year
    stars = []
    for i in range(n_stars):
        kind = list(kinds)[i % len(kinds)]
        low, high = kinds[kind]
        period = float(10 ** rng.uniform(np.log10(low), np.log10(high)))
        t = np.sort(rng.choice(nights, 1000) + rng.uniform(0.1, 0.4, 1000))
        band = rng.choice(np.asarray(bands), t.size)
        phase = (t / period) % 1.0
        if kind == "sinusoid":
            shape = np.sin(2 * np.pi * phase)
        elif kind == "RR":
            shape = np.where(phase < 0.15, 1 - phase / 0.15, (phase - 0.15) / 0.85)
        elif kind == "EA":
            dist = [np.minimum(np.abs(phase - c), 1 - np.abs(phase - c)) for c in (0, 0.5)]
            shape = np.exp(-0.5 * (dist[0] / 0.03) ** 2) + 0.4 * np.exp(
                -0.5 * (dist[1] / 0.03) ** 2)
        else:   # contact binary: equal minima, sharper than the maxima
            shape = -0.5 * np.cos(4 * np.pi * phase) + 0.1 * np.cos(8 * np.pi * phase)
        amplitude = rng.uniform(0.1, 0.8)
        err = rng.uniform(0.01, 0.05, t.size)
        mag = (15 + amplitude * shape * np.where(band == "g", 1.3, 1.0)
               + np.where(band == "g", 0.4, 0.0) + rng.normal(0, err))
        stars.append((f"Z{i}", kind, period, t, mag, err, band))
    return stars


def measure_ztf(n_stars: int, processes: int) -> dict:
    out = {}
    for bands in (("r",), ("g", "r")):
        stars = ztf_like(n_stars, bands)
        arrays = [s[3:] for s in stars]
        found, seconds = timed_map(_new, arrays, processes)
        _, serial_seconds = timed_map(_new, arrays[: max(1, n_stars // 4)], 1)
        out["+".join(bands)] = {
            "stars": n_stars, "epochs": 1000, "baseline_days": 3 * 365,
            "stars_per_s": round(n_stars / seconds, 1), "processes": processes,
            "stars_per_s_one_process": round(max(1, n_stars // 4) / serial_seconds, 1),
            "classes": table([s[1] for s in stars], found, np.array([s[2] for s in stars])),
            "load_after": common.load()}
    return out


def run(quick: bool = False) -> dict:
    machine = common.machine()
    processes = len(os.sched_getaffinity(0))
    sets = load_sets(QUICK_STARS if quick else None)
    results = {name: measure_set(stars, processes, 10 if quick else ASTROPY_STARS)
               for name, stars in sets.items()}
    # the targets' two figures: every RR Lyrae, every star, over the sets
    rr = [r["new"]["classes"][c] for r in results.values() for c in r["new"]["classes"]
          if c in RR_LYRAE]
    everything = [r["new"]["classes"]["all"] for r in results.values()]
    return {"benchmark": "periods", "machine": machine,
            "command": "python -m benchmarks.periods" + (" --quick" if quick else ""),
            "data": str(SHARED_DATA), "processes": processes, "tolerance": TOLERANCE,
            "sets": results,
            "pooled": {"rr_lyrae": pool(rr), "all": pool(everything)},
            "ztf_like": measure_ztf(20 if quick else ZTF_STARS, processes),
            "load_after": common.load()}


def pool(rows: list[dict]) -> dict:
    """Stars and recovered (P) summed over class rows, with the pooled fraction."""
    stars = sum(r["stars"] for r in rows)
    found = sum(r["P"] for r in rows)
    return {"stars": stars, "P": found, "recovered": round(found / stars, 4) if stars else None}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
