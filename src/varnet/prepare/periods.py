"""Periods for light curves that arrive without one: the Lomb–Scargle periodogram (astropy).

The network folds every sequence on its period (docs/method.md §1), so a star scored without a
catalog period needs an estimate. We take the **highest peak** of the generalised (floating-mean,
error-weighted) Lomb–Scargle power on a regular frequency grid covering periods of
``MIN_PERIOD``–``MAX_PERIOD`` days, with astropy's fast O(N log N) method.

Known limits of "highest peak", kept on purpose because they are the usual, documented
behaviour and any fix is class-specific: for eclipsing binaries with equal minima (EW) the peak is
at **half** the true period; for sparsely sampled ground-based surveys the 1-day alias of a short
period can win; long-period variables (M, SR) are only as good as the time baseline allows.
"""

from __future__ import annotations

import numpy as np

from varnet.core.errors import VarnetError

MIN_PERIOD = 0.05
"""Shortest period searched, days (DSCT/HADS are ~0.05-0.2 d)."""
MAX_PERIOD = 1000.0
"""Longest period searched, days (Miras reach ~1000 d)."""
OVERSAMPLING = 5
"""Grid points per peak width 1/T (T = time baseline): the usual 5-10 resolves every peak."""
MAX_FREQUENCIES = 1_000_000
"""Cap on the grid size so a decades-long baseline cannot make one star take minutes."""
MIN_POINTS = 10


def frequency_grid(baseline: float, min_period: float = MIN_PERIOD,
                   max_period: float = MAX_PERIOD) -> np.ndarray:
    """Regular grid (cycles/day) from 1/max_period to 1/min_period with step 1/(OVERSAMPLING·T).

    A regular grid is what astropy's fast method needs; the step resolves peaks of width 1/T.
    """
    f_min, f_max = 1.0 / max_period, 1.0 / min_period
    step = 1.0 / (OVERSAMPLING * baseline)
    n = int(min(np.ceil((f_max - f_min) / step) + 1, MAX_FREQUENCIES))
    return np.linspace(f_min, f_max, n)


def lomb_scargle_period(t: np.ndarray, mag: np.ndarray, err: np.ndarray) -> float:
    """Period in days at the highest Lomb–Scargle peak between MIN_PERIOD and MAX_PERIOD.

    Raises VarnetError when the light curve cannot constrain a period (too few points, no time
    baseline, constant magnitudes, or non-finite values).
    """
    from astropy.timeseries import LombScargle

    t, mag, err = (np.asarray(a, dtype=np.float64) for a in (t, mag, err))
    if not (t.shape == mag.shape == err.shape and t.ndim == 1):
        raise VarnetError(f"lomb_scargle_period: t, mag, err must be 1-D of one length, got "
                          f"{t.shape}, {mag.shape}, {err.shape}")
    if t.size < MIN_POINTS:
        raise VarnetError(f"cannot estimate a period from {t.size} points (need {MIN_POINTS})")
    if not (np.isfinite(t).all() and np.isfinite(mag).all() and np.isfinite(err).all()):
        raise VarnetError("cannot estimate a period: time, mag or err holds NaN or inf")
    if (err <= 0).any():
        raise VarnetError("cannot estimate a period: some errors are zero or negative")
    baseline = float(t.max() - t.min())
    if baseline <= 0 or np.ptp(mag) == 0:
        raise VarnetError("cannot estimate a period: no time baseline or constant magnitudes")
    frequency = frequency_grid(baseline)
    power = LombScargle(t, mag, err).power(frequency, method="fast",
                                           assume_regular_frequency=True)
    return float(1.0 / frequency[int(np.nanargmax(power))])
