"""Preprocessing throughput: light curves per second through the cuts and the sequences stage.

A survey-sized raw snapshot is simulated with NumPy alone (sinusoids with ASAS-SN-like epoch
counts, 0.2% 99.99 sentinels, the full raw schema) so that simulating 10k stars takes seconds,
then the stages' own functions are timed on it:

  cuts       `varnet.prepare.cuts.apply_cuts`: clean the epochs, the star cuts, the supersmoother
             residual of every surviving star (params.yaml `cuts`)
  sequences  `varnet.prepare.sequences.build_sequences`: chunk, fold, normalise (params `sequences`)

at 1k and 10k stars; `scaling_exponent` is the slope of log(time) against log(stars) between
the two sizes (1 = linear). The Great Expectations checks of `varnet validate` are not timed.

    .venv/bin/python -m benchmarks.preprocess             # 1k and 10k stars
    .venv/bin/python -m benchmarks.preprocess --quick     # 200 and 1k
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import pandas as pd

from benchmarks import common

SIZES = (1000, 10000)
QUICK_SIZES = (200, 1000)


def simulate_frames(n_stars: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw (catalog, lightcurves) with schema.CATALOG_COLUMNS / LIGHTCURVE_COLUMNS.

    ~400 V-band epochs per star (lognormal, 150-1500), 0.2% sentinels, classes drawn uniformly
    from the 8 superclasses and VAR, every star inside the magnitude and probability cuts so
    that the supersmoother runs on all of them (the worst case for the cut stage).
    """
    from varnet.core import schema, taxonomy

    rng = np.random.default_rng(seed)
    n_epochs = np.clip(rng.lognormal(np.log(400), 0.45, n_stars), 150, 1500).astype(int)
    ids = np.char.add("S", np.arange(n_stars).astype(str))
    period = 10 ** rng.uniform(-1.3, 2.5, n_stars)
    names = np.asarray((*taxonomy.CLASSES, taxonomy.NOVEL))
    superclass = names[rng.integers(0, names.size, n_stars)]
    vmag = rng.uniform(11.5, 16.5, n_stars)
    catalog = pd.DataFrame({
        "id": ids, "ra": rng.uniform(0, 360, n_stars), "dec": rng.uniform(-90, 90, n_stars),
        "mean_vmag": vmag, "amplitude": rng.uniform(0.05, 1.0, n_stars), "period": period,
        "variable_type": superclass, "superclass": superclass,
        "class_probability": rng.uniform(0.9, 1.0, n_stars),
        "phot_g_abs": rng.normal(2, 2, n_stars), "bp_rp": rng.normal(1, 0.5, n_stars),
        "w_rp": rng.normal(1, 2, n_stars),
    })[list(schema.CATALOG_COLUMNS)]
    star = np.repeat(np.arange(n_stars), n_epochs)
    t = 2_457_000 + rng.uniform(0, 2000, star.size)
    t = t[np.lexsort((t, star))]  # star is already sorted: this sorts times within each star
    err = rng.uniform(0.01, 0.1, star.size)
    mag = (vmag[star] + catalog["amplitude"].to_numpy()[star] * np.sin(2 * np.pi * t / period[star])
           + rng.normal(0, err))
    mag[rng.random(star.size) < 0.002] = 99.99
    lightcurves = pd.DataFrame({"id": ids[star], "band": "V", "time": t, "mag": mag, "err": err})
    return catalog, lightcurves[list(schema.LIGHTCURVE_COLUMNS)]


def time_stages(n_stars: int, params: dict) -> dict:
    """Seconds in each stage and light curves per second for one survey size."""
    from varnet.core.config import CutsParams, SequencesParams, section
    from varnet.prepare.cuts import apply_cuts
    from varnet.prepare.sequences import build_sequences

    cuts = section(CutsParams, params)
    seq = section(SequencesParams, params)
    catalog, lightcurves = simulate_frames(n_stars)
    row = {"stars": n_stars, "epochs": len(lightcurves), "load_before": common.load()}
    start = time.perf_counter()
    result = apply_cuts(catalog, lightcurves, cuts, progress=False)
    row["cuts_s"] = time.perf_counter() - start
    start = time.perf_counter()
    arrays, _ = build_sequences(result.catalog, result.lightcurves, seq.length, seq.bands)
    row["sequences_s"] = time.perf_counter() - start
    row["stars_kept"] = len(result.catalog)
    row["sequences"] = int(arrays["label"].size)
    total = row["cuts_s"] + row["sequences_s"]
    row["lightcurves_per_s"] = n_stars / total
    row["cuts_lightcurves_per_s"] = n_stars / row["cuts_s"]
    row["sequences_lightcurves_per_s"] = n_stars / row["sequences_s"]
    row["epochs_per_s"] = row["epochs"] / total
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def run(quick: bool = False) -> dict:
    params = common.root_params()
    sizes = QUICK_SIZES if quick else SIZES
    machine = common.machine()
    rows = [time_stages(n, params) for n in sizes]
    small, large = rows[0], rows[-1]
    ratio = math.log(large["stars"] / small["stars"])
    scaling = {key: round(math.log(large[key] / small[key]) / ratio, 2)
               for key in ("cuts_s", "sequences_s")}
    return {"benchmark": "preprocess", "machine": machine,
            "command": "python -m benchmarks.preprocess" + (" --quick" if quick else ""),
            "sizes": rows, "scaling_exponent": scaling, "load_after": common.load()}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
