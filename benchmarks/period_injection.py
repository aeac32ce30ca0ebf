"""What the real sets' sampling and noise allow: catalog periods injected, then searched for.

`benchmarks.periods` measures how many catalog periods the search (`varnet.prepare.periods`)
recovers; on EROS-1's photographic plates it is far short of the other sets. This asks how far
a better search could go on those light curves, with the field's usual instrument, injection
and recovery on each star's own epochs:

1. Fit each star at its catalog period with the search's own model (an offset per band + the
   search's HARMONICS Fourier terms, weights 1/(err² + floor²), the period moved onto its chi²
   minimum within one grid step), on the same cleaned points as `benchmarks.periods`.
2. Make SIMULATIONS light curves per star from that fit at the star's own times and bands, with
   two noise models: **stated errors**, Gaussian noise at each point's catalog error; **own
   residuals**, the star's residuals from the fit, shuffled within each band (their real
   spread, outliers included, and whatever the catalog period leaves unexplained).
3. Search each one as `varnet score` would (`lomb_scargle_period`) and count, per class, the
   periods within 1% of the injected one (`benchmarks.periods.verdict`). Each miss is either
   the search's loss (the injected period has the lower chi², `benchmarks.periods.
   alias_margin`) or the data's: the noise made another period fit better. With Gaussian
   noise and one parameter count for every period, the lowest chi² is the likelihood's choice,
   which no rule without a prior on the periods beats on average; so "recovered" plus the
   search's losses is what these epochs allow such a rule at that noise.

The real light curves get the same count: their "allowed" is what a lowest-chi² choice could
reach against the catalog, since any other miss fits the catalog period worse. If the catalog
periods were all right, the real recovery should match the injected one under the noise model
that fits the data; a real recovery far below both says the catalog period is not what these
light curves show. For EROS-1's Cepheids the catalog itself can tell: the benchmark also gives
the median B magnitude of those recovered, of those returned at a daily alias, and of the
recovered RR Lyrae (the LMC's horizontal branch), and the median period returned for the
aliased ones.

    .venv/bin/python -m benchmarks.period_injection --json benchmarks/results/period_injection.json

About 3 min on 2 cores. Needs ../shared/data (or $VARNET_SHARED_DATA).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks import common, periods

SIMULATIONS = 2
"""Simulated light curves per star and noise model."""
NOISE_MODELS = ("stated errors", "own residuals")
SEED = 2026


def fitted_magnitudes(star: tuple, period: float) -> np.ndarray:
    """The search's model of the star at ``period`` (zoomed onto its chi² minimum), at every
    point; a band too short for the harmonics keeps its weighted mean."""
    from varnet.prepare import periods as search

    freq = periods.zoomed_fit(star, period)[0]
    t, mag, err, band = search._checked(*star[3:])
    t = t - t.min()
    harmonics = np.arange(1, search.HARMONICS + 1)
    model = np.empty_like(mag)
    for label in np.unique(band):
        keep = band == label
        weight = 1.0 / np.hypot(err[keep], search.ERROR_FLOOR)
        columns = [np.ones(keep.sum())]
        if keep.sum() > 2 * search.HARMONICS + 1:
            angle = 2 * np.pi * freq * np.outer(t[keep], harmonics)
            columns += [*np.cos(angle).T, *np.sin(angle).T]
        design = np.stack(columns, axis=1)
        coef = np.linalg.lstsq(design * weight[:, None], mag[keep] * weight, rcond=None)[0]
        model[keep] = design @ coef
    return model


def simulations(star: tuple, rng: np.random.Generator) -> dict[str, list[tuple]]:
    """Noise model -> SIMULATIONS (t, mag, err, band) of the star at its catalog period."""
    t, mag, err, band = (np.asarray(a) for a in star[3:])
    model = fitted_magnitudes(star, star[2])
    residuals = mag - model
    out: dict[str, list[tuple]] = {name: [] for name in NOISE_MODELS}
    for _ in range(SIMULATIONS):
        out["stated errors"].append((t, model + rng.normal(0.0, 1.0, t.size) * err, err, band))
        shuffled = residuals.copy()
        for label in np.unique(band):
            keep = np.flatnonzero(band == label)
            shuffled[keep] = rng.permutation(residuals[keep])
        out["own residuals"].append((t, model + shuffled, err, band))
    return out


def measure_set(name: str, stars: list[tuple], processes: int) -> dict:
    """The search's recovery of the real light curves and of the injected ones under each noise
    model, per class, each with the search's own losses."""
    rng = np.random.default_rng(SEED)
    classes = [s[1] for s in stars]
    reference = np.array([s[2] for s in stars])
    real = [s[3:] for s in stars]
    found, seconds = periods.timed_map(periods._new, real, processes)
    result = {"stars": len(stars), "real": recovery(real, classes, reference, found, seconds)}
    if name == "eros1-lmc":
        result["cepheid_check"] = cepheid_check(stars, found)
    simulated = [simulations(star, rng) for star in stars]
    for name in NOISE_MODELS:
        light_curves = [lc for sims in simulated for lc in sims[name]]
        injected, seconds = periods.timed_map(periods._new, light_curves, processes)
        result[name] = recovery(light_curves, np.repeat(classes, SIMULATIONS).tolist(),
                                np.repeat(reference, SIMULATIONS), injected, seconds)
    return result


def cepheid_check(stars: list[tuple], found: np.ndarray) -> dict:
    """Median catalog B magnitude (and returned period) of EROS-1 Cepheids recovered or returned
    at a daily alias, and of the RR Lyrae recovered."""
    groups = {"CEPH recovered": ("CEPH", {"P"}), "CEPH at a daily alias": ("CEPH", {"daily alias"}),
              "RR recovered": ("RR", {"P"})}
    import pandas as pd

    brightness = pd.read_csv(periods.SHARED_DATA / "eros1-lmc" / "catalog.csv.gz",
                             usecols=["star_id", "magnitude_b"]).set_index("star_id")["magnitude_b"]
    out = {}
    for name, (cls, verdicts) in groups.items():
        chosen = [(star[0], f) for star, f in zip(stars, found, strict=True)
                  if star[1] == cls and periods.verdict(f, star[2]) in verdicts]
        out[name] = {"stars": len(chosen),
                     "median_mag_b": round(float(brightness.loc[
                         [i for i, _ in chosen]].median()), 2) if chosen else None,
                     "median_period_returned": round(float(np.median(
                         [f for _, f in chosen])), 3) if chosen else None}
    return out


def recovery(light_curves: list[tuple], classes: list[str], reference: np.ndarray,
             found: np.ndarray, seconds: float) -> dict:
    """`benchmarks.periods.table` per class, plus the search's losses (misses whose reference
    period fits better than the returned one) and "allowed" = (P + losses) / stars."""
    table = periods.table(classes, found, reference)
    losses: dict[str, int] = {}
    for lc, cls, ref, f in zip(light_curves, classes, reference, found, strict=True):
        if np.isfinite(f) and periods.verdict(f, ref) != "P" and \
                periods.alias_margin((None, cls, ref, *lc), f) < 0:
            for key in (cls, "all"):
                losses[key] = losses.get(key, 0) + 1
    for cls, row in table.items():
        row["search_losses"] = losses.get(cls, 0)
        row["allowed"] = round((row["P"] + row["search_losses"]) / row["stars"], 4)
    return {"seconds": round(seconds, 1), "classes": table}


def run(quick: bool = False) -> dict:
    machine = common.machine()
    processes = len(os.sched_getaffinity(0))
    sets = periods.load_sets(periods.QUICK_STARS if quick else None)
    results = {name: measure_set(name, stars, processes) for name, stars in sets.items()}
    pooled = {}
    for key in ("real", *NOISE_MODELS):
        tables = [r[key]["classes"] for r in results.values()]
        rr = [table[c] for table in tables for c in table if c in periods.RR_LYRAE]
        pooled[key] = {"rr_lyrae": _pool(rr), "all": _pool([table["all"] for table in tables])}
    return {"benchmark": "period_injection", "machine": machine,
            "command": "python -m benchmarks.period_injection" + (" --quick" if quick else ""),
            "data": str(periods.SHARED_DATA), "processes": processes,
            "simulations": SIMULATIONS, "seed": SEED, "tolerance": periods.TOLERANCE,
            "sets": results, "pooled": pooled, "load_after": common.load()}


def _pool(rows: list[dict]) -> dict:
    """`benchmarks.periods.pool`, and the pooled "allowed"."""
    pooled = periods.pool(rows)
    losses = sum(row["search_losses"] for row in rows)
    pooled["allowed"] = round((pooled["P"] + losses) / pooled["stars"], 4) if rows else None
    return pooled


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
