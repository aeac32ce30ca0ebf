"""The embedded default survey: a deterministic ASAS-SN-like variable-star simulator.

No labeled ASAS-SN light curves can be shipped, so `make run` works on this simulated V-band
survey. It is built to meet the paper's cuts and networks with the same difficulties as the real
catalog (docs/synthetic-survey.md): seasonal cadence with weather gaps, magnitude-dependent
errors, saturation, outliers, 99.99 non-detection flags, a catalog classifier probability with
a tail, ~1% label noise between confusable classes, and Gaia-like photometry with gaps.

Every star draws from its own child stream of ``numpy.random.SeedSequence(seed)``, so a star's
light curve depends only on the seed, its index and its class, never on how others were drawn.

    >>> catalog, lightcurves = simulate_survey(SyntheticParams(seed=0, n_stars=200))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from varnet.core import schema, taxonomy
from varnet.core.config import SyntheticParams
from varnet.core.schema import SENTINEL_MAG

CLASS_FRACTIONS: dict[str, float] = {
    "ECL": 0.54, "SR": 0.17, "RRAB": 0.16, "RRCD": 0.06,
    "M": 0.02, "ROT": 0.017, "DSCT": 0.015, "CEPH": 0.011,
}
"""Share of the known stars per superclass: the paper's Table 1."""

SUBTYPE_WEIGHTS: dict[str, dict[str, float]] = {
    "CEPH": {"DCEP": 0.55, "DCEPS": 0.10, "CWA": 0.12, "CWB": 0.13, "RVA": 0.10},
    "DSCT": {"DSCT": 0.6, "HADS": 0.4},
    "ECL": {"EW": 0.62, "EB": 0.13, "EA": 0.25},
    "M": {"M": 1.0},
    "ROT": {"ROT": 1.0},
    "RRAB": {"RRAB": 1.0},
    "RRCD": {"RRC": 0.85, "RRD": 0.15},
    "SR": {"SR": 0.55, "SRA": 0.10, "SRB": 0.25, "SRC": 0.05, "SRD": 0.05},
}

PROBABILITY_TAIL: dict[str, float] = {
    "CEPH": 0.22, "DSCT": 0.12, "ECL": 0.08, "M": 0.05,
    "ROT": 0.16, "RRAB": 0.06, "RRCD": 0.12, "SR": 0.20,
}
"""Fraction of each class whose catalog probability falls below 0.9 (harder classes: more)."""

CONFUSED_WITH: dict[str, str] = {
    "EW": "RRC", "RRC": "EW", "RRAB": "CWB", "CWB": "RRAB",
    "ROT": "SR", "SR": "ROT", "SRA": "ROT", "SRB": "ROT", "SRC": "ROT", "SRD": "ROT",
}
LABEL_NOISE = 0.0135
"""Relabel probability for a confusable subtype: ~1% of all known stars carry a wrong label."""

VAR_KINDS: dict[str, float] = {
    "yso": 0.20, "drw": 0.18, "dwarf_nova": 0.10, "rcb": 0.07,
    "flare": 0.10, "trend": 0.13, "irregular": 0.22,
}
"""The heterogeneous, mostly aperiodic behaviours behind the catalog label VAR."""

JD_2012 = 2455927.5  # 2012-01-01 0h UT: the survey's calendar origin


def simulate_survey(cfg: SyntheticParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate (catalog, lightcurves) with exactly schema.CATALOG_COLUMNS / LIGHTCURVE_COLUMNS.

    The output is raw, as a survey would deliver it: flagged 99.99 epochs, outliers, a few
    duplicated rows, NaN Gaia photometry. Same config, same frames.
    """
    assign_seq, *star_seqs = np.random.SeedSequence(cfg.seed).spawn(cfg.n_stars + 1)
    subtypes = _assign_subtypes(np.random.default_rng(assign_seq), cfg)
    rows, curves = [], []
    for index, (seq, subtype) in enumerate(zip(star_seqs, subtypes, strict=True)):
        star_id = f"SYN{index:06d}"
        row, time, mag, err = _simulate_star(np.random.default_rng(seq), subtype)
        rows.append({"id": star_id, **row})
        curves.append((star_id, time, mag, err))

    catalog = pd.DataFrame(rows, columns=list(schema.CATALOG_COLUMNS))
    for column in ("id", "variable_type", "superclass"):
        catalog[column] = catalog[column].astype("str")
    sizes = [len(time) for _, time, _, _ in curves]
    lightcurves = pd.DataFrame({
        "id": pd.array(np.repeat([c[0] for c in curves], sizes), dtype="str"),
        "band": pd.array(np.full(sum(sizes), "V"), dtype="str"),
        "time": np.concatenate([c[1] for c in curves]),
        "mag": np.concatenate([c[2] for c in curves]),
        "err": np.concatenate([c[3] for c in curves]),
    })
    return catalog, lightcurves[list(schema.LIGHTCURVE_COLUMNS)]


# --- the class mix ---------------------------------------------------------------------------

def class_counts(cfg: SyntheticParams) -> dict[str, int]:
    """Stars per superclass (and VAR): Table 1 shares, every class lifted to the floor."""
    n_var = round(cfg.var_fraction * cfg.n_stars)
    n_known = cfg.n_stars - n_var
    floor = min(cfg.min_stars_per_class, n_known // len(taxonomy.CLASSES))
    counts: dict[str, int] = {}
    free = dict(CLASS_FRACTIONS)
    while True:  # lift classes under the floor, share the rest out among the others
        budget = n_known - sum(counts.values())
        total = sum(free.values())
        lifted = {c for c, f in free.items() if budget * f / total < floor}
        if not lifted:
            break
        counts.update({c: floor for c in lifted})
        free = {c: f for c, f in free.items() if c not in lifted}
    exact = {c: budget * f / total for c, f in free.items()}
    counts.update({c: int(x) for c, x in exact.items()})
    by_remainder = sorted(exact, key=lambda c: exact[c] - int(exact[c]), reverse=True)
    for c in by_remainder[: n_known - sum(counts.values())]:
        counts[c] += 1
    counts = {c: counts[c] for c in taxonomy.CLASSES}
    counts[taxonomy.NOVEL] = n_var
    return counts


def _assign_subtypes(rng: np.random.Generator, cfg: SyntheticParams) -> list[str]:
    """One true subtype per star index, classes shuffled over the indices."""
    subtypes: list[str] = []
    for superclass, count in class_counts(cfg).items():
        if superclass == taxonomy.NOVEL:
            subtypes += [taxonomy.NOVEL] * count
            continue
        names = list(SUBTYPE_WEIGHTS[superclass])
        weights = np.array(list(SUBTYPE_WEIGHTS[superclass].values()))
        subtypes += list(rng.choice(names, size=count, p=weights / weights.sum()))
    return [str(s) for s in rng.permutation(np.array(subtypes))]


# --- one star --------------------------------------------------------------------------------

def _simulate_star(rng: np.random.Generator,
                   subtype: str) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Catalog row (without id) and raw (time, mag, err) of one star of true type ``subtype``."""
    ra = rng.uniform(0.0, 360.0)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0)))
    time = _epochs(rng, ra, dec)
    if subtype == taxonomy.NOVEL:
        kind = str(rng.choice(list(VAR_KINDS), p=list(VAR_KINDS.values())))
        delta, period = _VAR_SHAPES[kind](rng, time), np.nan
        photometry_key = kind
    else:
        delta, period = _SHAPES[subtype](rng, time)
        photometry_key = subtype
    delta = delta - delta.mean()
    amplitude = float(np.ptp(delta))
    superclass = taxonomy.superclass_of(subtype)
    vmag = _mean_magnitude(rng, superclass, amplitude)
    time, mag, err = _observe(rng, time, vmag + delta)

    label = subtype
    if subtype in CONFUSED_WITH and rng.random() < LABEL_NOISE:
        label = CONFUSED_WITH[subtype]
    label_class = taxonomy.superclass_of(label)
    good = mag < SENTINEL_MAG
    if label_class == taxonomy.NOVEL:
        period, probability = _highest_peak_period(time[good], mag[good], err[good]), np.nan
    else:
        span = np.ptp(time)
        period *= 1.0 + rng.normal(0.0, 0.02 * period / span)  # catalog period precision
        probability = _class_probability(rng, label_class)
    m_g, bp_rp, w_rp = _gaia_photometry(rng, photometry_key, period, vmag)
    row = {
        "ra": round(ra, 6), "dec": round(dec, 6),
        "mean_vmag": round(float(mag[good].mean()), 3) if good.any() else np.nan,
        "amplitude": round(amplitude, 3), "period": float(period),
        "variable_type": label, "superclass": label_class,
        "class_probability": probability,
        "phot_g_abs": m_g, "bp_rp": bp_rp, "w_rp": w_rp,
    }
    return row, time, mag, err


def _epochs(rng: np.random.Generator, ra: float, dec: float) -> np.ndarray:
    """Observation times (HJD): yearly seasons around opposition, weather gaps, 2-3 d cadence.

    Stars far from the equator are up longer (circumpolar), so their seasons are longer.
    """
    start = JD_2012 + rng.uniform(0.0, 300.0)
    span = rng.uniform(4.0, 6.0) * 365.25
    nights = start + np.arange(int(span), dtype=float)
    opposition = (79.0 + ((ra + 180.0) % 360.0) / 0.9856) % 365.25
    half_season = rng.uniform(90.0, 120.0) + max(0.0, abs(dec) - 55.0) * 2.0
    from_opposition = np.abs((nights - JD_2012 - opposition + 182.6) % 365.25 - 182.6)
    usable = (from_opposition < half_season) & (rng.random(nights.size) < rng.uniform(0.7, 0.9))
    usable &= ~_weather_gaps(rng, nights, start, span)
    visits = nights[usable]
    second = visits[rng.random(visits.size) < 0.3]
    second = second + rng.uniform(0.05, 0.3, second.size)
    candidates = np.concatenate([visits, second])
    candidates += rng.uniform(-0.25, 0.25, candidates.size)  # any time of the night
    n_target = int(np.clip(np.round(rng.lognormal(np.log(400.0), 0.4)), 60, 1500))
    if candidates.size > n_target:
        candidates = rng.choice(candidates, size=n_target, replace=False)
    return np.sort(candidates)


def _weather_gaps(rng: np.random.Generator, nights: np.ndarray, start: float,
                  span: float) -> np.ndarray:
    """Nights lost to runs of bad weather (days) and to a few instrument downtimes (weeks)."""
    n_weather, n_down = rng.poisson(span / 40.0), rng.integers(0, 3)
    gap_start = rng.uniform(start, start + span, n_weather + n_down)
    gap_length = np.concatenate([rng.exponential(4.0, n_weather) + 1.0,
                                 rng.uniform(15.0, 60.0, n_down)])
    order = np.argsort(gap_start)
    gap_start, gap_end = gap_start[order], np.maximum.accumulate((gap_start + gap_length)[order])
    last = np.searchsorted(gap_start, nights, side="right") - 1
    return (last >= 0) & (nights < gap_end[np.maximum(last, 0)])


def noise_sigma(vmag: np.ndarray | float) -> np.ndarray:
    """Photometric error (mag) at magnitude V: 0.02 at V=12, 0.05 at 14.5, 0.15 at 16.5.

    A floor (flat-fielding), a source-noise term (~flux^-1/2) and a sky-noise term (~flux^-1).
    """
    vmag = np.asarray(vmag, dtype=float)
    return np.sqrt(0.015**2 + (0.055 * 10 ** (0.2 * (vmag - 14.5))) ** 2
                   + (0.1 * 10 ** (0.4 * (vmag - 17.0))) ** 2)


_COUNT_SLOPE = {"M": 0.06, "SR": 0.08, "CEPH": 0.15}
"""Slope of log N(<V) per magnitude: luminous classes are seen further and appear brighter."""


def _mean_magnitude(rng: np.random.Generator, superclass: str, amplitude: float) -> float:
    """Mean V from a star-count law over 9.5-18, kept only where the variability was detectable.

    A catalog lists a star only if its variability stands out of the noise, so low-amplitude
    stars are mostly bright ones; marginal detections are what the residual cut removes.
    """
    slope = _COUNT_SLOPE.get(superclass, 0.18)
    u = rng.random(64)
    candidates = 9.5 + np.log10(1.0 + u * (10 ** (slope * 8.5) - 1.0)) / slope
    snr = amplitude / noise_sigma(candidates)
    # the survey's depth, and saturated photometry that hides the variability of bright stars
    completeness = 1.0 / (1.0 + np.exp((candidates - 17.4) / 0.25))
    completeness /= 1.0 + np.exp((10.3 - candidates) / 0.3)
    detected = rng.random(64) < np.clip((snr - 3.0) / 5.0, 0.0, 1.0) * completeness
    return float(candidates[np.argmax(detected)] if detected.any() else candidates.min())


def _observe(rng: np.random.Generator, time: np.ndarray,
             true_mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noiseless magnitudes -> raw survey photometry (time, mag, err).

    Bright epochs saturate (flattened peaks, extra scatter), errors grow with magnitude and
    track the true scatter within ~20%, ~1-2% of epochs are outliers, epochs fainter than the
    frame's limit and a few bad frames are flagged 99.99, and a few rows come twice.
    """
    n = time.size
    saturation = rng.uniform(10.0, 11.0)
    depth = np.clip(saturation - true_mag, 0.0, None)
    mag = true_mag + 0.65 * depth  # the core saturates: peaks flatten
    error_scale = rng.lognormal(0.0, 0.1)
    sigma = noise_sigma(mag)
    mag = mag + rng.normal(0.0, 1.0, n) * np.hypot(sigma * error_scale, 0.08 * depth)
    err = sigma * rng.lognormal(0.0, 0.08, n)

    # 1-2% outliers on average, fewer on bright stars, more on faint ones (clouds, blends)
    outlier_rate = 0.003 * (true_mag.mean() - 11.0) + rng.uniform(0.002, 0.008)
    outliers = rng.random(n) < np.clip(outlier_rate, 0.002, 0.03)
    sign = np.where(rng.random(n) < 0.7, 1.0, -1.0)  # mostly fainter: clouds, bad subtraction
    offset = np.clip(0.3 + rng.exponential(0.1, n), 0.3, 1.0)
    mag = np.where(outliers, mag + sign * offset, mag)

    limit = rng.normal(17.6, 0.3, n)
    flagged = (mag > limit) | (rng.random(n) < 0.003)
    mag = np.where(flagged, SENTINEL_MAG, np.round(mag, 3))
    err = np.where(flagged, SENTINEL_MAG, np.round(err, 3).clip(0.001))

    if rng.random() < 0.05:  # a few rows delivered twice
        twice = np.sort(rng.choice(n, size=rng.integers(1, 4), replace=False))
        keep = np.sort(np.concatenate([np.arange(n), twice]))
        time, mag, err = time[keep], mag[keep], err[keep]
    return time, mag, err


def _class_probability(rng: np.random.Generator, superclass: str) -> float:
    """Catalog classifier probability: mostly > 0.9, a class-dependent tail down to ~0.2."""
    if rng.random() < PROBABILITY_TAIL[superclass]:
        return round(0.2 + 0.7 * rng.beta(1.3, 1.0), 3)
    return round(1.0 - 0.1 * rng.beta(0.4, 3.0), 3)


def _highest_peak_period(time: np.ndarray, mag: np.ndarray, err: np.ndarray) -> float:
    """Period (d) at the highest Lomb-Scargle peak: what a catalog lists for an aperiodic star.

    A coarse log-spaced grid is dense where red noise puts its peaks; periods up to half the
    baseline, so that at least two cycles were seen.
    """
    from astropy.timeseries import LombScargle

    if time.size < 10:
        return np.nan
    frequency = np.geomspace(2.0 / np.ptp(time), 5.0, 1000)
    power = LombScargle(time, mag, err).power(frequency, method="cython")
    return float(1.0 / frequency[np.argmax(power)])


# --- Gaia-like photometry ----------------------------------------------------------------------

_PERIOD_LUMINOSITY = {
    # subtype: (dM_G/dlogP, M_G at P=1 d, BP-RP at P=1 d, dBP-RP/dlogP, M_G scatter)
    "EW": (-4.44, 3.02, 0.24, -1.6, 0.3),  # Rucinski's contact-binary relation
    "DSCT": (-2.9, -1.2, 0.35, 0.0, 0.3),
    "HADS": (-2.9, -1.2, 0.40, 0.0, 0.3),
    "DCEP": (-2.6, -1.4, 0.60, 0.45, 0.2),
    "DCEPS": (-2.6, -1.9, 0.55, 0.40, 0.2),
    "CWB": (-2.0, -0.4, 0.70, 0.10, 0.3),
    "CWA": (-2.0, -0.4, 0.70, 0.10, 0.3),
    "RVA": (-2.0, 0.2, 1.10, 0.0, 0.3),
}
_DWARF_OR_GIANT = {
    # key: (giant fraction, M_G range of the dwarfs), dwarfs on the main-sequence colour locus
    "EA": (0.25, (0.5, 5.5)), "ROT": (0.30, (3.5, 9.0)), "trend": (0.3, (1.0, 8.0)),
}
_LOCI = {
    # key: (M_G mean, M_G sd, BP-RP mean, BP-RP sd)
    "giant": (1.5, 1.0, 1.1, 0.2), "EB": (2.0, 1.0, 0.5, 0.25),
    "RRAB": (0.6, 0.15, 0.75, 0.08), "RRC": (0.6, 0.15, 0.55, 0.07), "RRD": (0.6, 0.15, 0.55, 0.07),
    "M": (-1.0, 0.8, 3.6, 0.7), "SR": (-0.5, 1.0, 2.6, 0.5), "SRA": (-0.8, 0.8, 3.0, 0.5),
    "SRB": (-0.5, 1.0, 2.6, 0.5), "SRC": (-4.5, 0.8, 2.3, 0.4), "SRD": (-1.5, 0.8, 1.2, 0.2),
    "yso": (5.0, 1.5, 2.0, 0.5), "drw": (-1.0, 1.0, 0.1, 0.2), "dwarf_nova": (7.5, 1.5, 0.4, 0.3),
    "rcb": (-3.5, 0.7, 1.4, 0.3), "flare": (10.5, 0.9, 2.8, 0.3),
    "irregular": (-0.5, 1.0, 2.2, 0.5),
}


def _gaia_photometry(rng: np.random.Generator, key: str, period: float,
                     vmag: float) -> tuple[float, float, float]:
    """(M_G, BP-RP, W_RP) as a Gaia cross-match gives them: class locus or period-luminosity
    relation, reddening, parallax errors that grow with V; ~4% unmatched, ~1.5% without BP-RP."""
    if key in _PERIOD_LUMINOSITY:
        slope, zero, colour0, colour_slope, scatter = _PERIOD_LUMINOSITY[key]
        log_p = np.log10(period)
        m_g = slope * log_p + zero + rng.normal(0.0, scatter)
        colour = colour0 + colour_slope * log_p + rng.normal(0.0, 0.08)
    elif key in _DWARF_OR_GIANT and rng.random() >= _DWARF_OR_GIANT[key][0]:
        m_g = rng.uniform(*_DWARF_OR_GIANT[key][1])
        colour = -0.2 + 0.22 * m_g + rng.normal(0.0, 0.08)
    else:
        m_mean, m_sd, c_mean, c_sd = _LOCI["giant" if key in _DWARF_OR_GIANT else key]
        m_g, colour = rng.normal(m_mean, m_sd), rng.normal(c_mean, c_sd)
    reddening = rng.exponential(0.12)
    colour = float(np.clip(colour, -0.4, 6.0)) + reddening
    m_g += 2.0 * reddening + rng.normal(0.0, np.clip(0.1 + 0.06 * (vmag - 11.0), 0.08, 0.6))
    g_minus_rp = 0.02 + 0.6 * colour - 0.05 * min(colour, 5.0) ** 2
    w_rp = m_g - g_minus_rp - 1.3 * colour  # W_RP = M_RP - 1.3 (BP-RP): nearly reddening-free
    matched = rng.random()
    if matched < 0.04:
        return np.nan, np.nan, np.nan
    if matched < 0.055:
        return round(m_g, 3), np.nan, np.nan
    return round(m_g, 3), round(colour, 3), round(w_rp, 3)


# --- light-curve shapes: (rng, time) -> (noiseless delta mag, period) ----------------------------

_GRID = np.arange(256) / 256.0


def _phase(rng: np.random.Generator, time: np.ndarray, period: float) -> np.ndarray:
    """Phase in [0, 1) with a random epoch."""
    return ((time - time[0]) / period + rng.random()) % 1.0


def _skewed_wave(phase: np.ndarray, rise: float, harmonics: int) -> np.ndarray:
    """A pulsator's cycle in [0, 1] (0 = maximum light): a rise over ``rise`` of the cycle and a
    slow decline, smoothed to ``harmonics`` Fourier terms (sharp maxima need more)."""
    sawtooth = np.where(_GRID < rise, 1.0 - _GRID / rise, (_GRID - rise) / (1.0 - rise))
    spectrum = np.fft.rfft(sawtooth)
    spectrum[harmonics + 1:] = 0.0
    smooth = np.fft.irfft(spectrum, _GRID.size)
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    return np.interp(phase, np.append(_GRID, 1.0), np.append(smooth, smooth[0]))


def _two_minima(phase: np.ndarray, inequality: float, sharpness: float = 1.0) -> np.ndarray:
    """Two minima per cycle (1 = faintest) at phases 0 and 0.5, the second shallower by
    ``inequality``: contact and close binaries, RV Tauri alternation."""
    dips = (0.5 * (1.0 + np.cos(4 * np.pi * phase))) ** sharpness
    return dips * (1.0 - inequality * 0.5 * (1.0 - np.cos(2 * np.pi * phase)))


def _wrapped(phase: np.ndarray) -> np.ndarray:
    """Signed distance in phase to 0, in [-0.5, 0.5)."""
    return (phase + 0.5) % 1.0 - 0.5


def _red_noise(rng: np.random.Generator, time: np.ndarray, tau: float,
               n_freq: int = 48) -> np.ndarray:
    """Unit-variance damped-random-walk noise (Lorentzian spectrum, timescale ``tau`` days),
    synthesised as random-phase sinusoids so irregular sampling needs no loop over epochs."""
    knee = 1.0 / (2 * np.pi * tau)
    freq = np.geomspace(knee / 100.0, knee * 100.0, n_freq)
    weight = np.sqrt(freq / (1.0 + (freq / knee) ** 2) * np.log(freq[1] / freq[0]))
    amplitude = weight * rng.rayleigh(1.0, n_freq)
    angle = 2 * np.pi * (np.outer(time - time[0], freq) + rng.random(n_freq))
    return np.cos(angle) @ amplitude / np.sqrt(np.sum(weight**2))


def _jittered_cycles(rng: np.random.Generator, time: np.ndarray, period: float,
                     jitter: float) -> np.ndarray:
    """Continuous cycle count at each epoch when every cycle's length varies by ``jitter``
    (Miras, RV Tauri): the integer part is the cycle, the fraction the phase."""
    n_cycles = int(np.ptp(time) / period / (1.0 - 4 * jitter)) + 3
    lengths = period * np.clip(1.0 + jitter * rng.standard_normal(n_cycles), 0.5, 1.5)
    starts = time[0] - rng.random() * period + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    cycle = np.searchsorted(starts, time, side="right") - 1
    return cycle + (time - starts[cycle]) / lengths[cycle]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(10 ** rng.uniform(np.log10(low), np.log10(high)))


def _log_normal(rng: np.random.Generator, median: float, dex: float, low: float,
                high: float) -> float:
    """Log-normal around ``median`` (scatter in dex), clipped to the class's range."""
    return float(np.clip(10 ** rng.normal(np.log10(median), dex), low, high))


def _ew(rng, time):
    period = _log_normal(rng, 0.37, 0.13, 0.22, 0.8)
    phase = _phase(rng, time, period)
    shape = _two_minima(phase, rng.uniform(0.0, 0.1), 0.8)
    oconnell = rng.uniform(-0.03, 0.03) * np.sin(2 * np.pi * phase)
    amplitude = _log_normal(rng, 0.35, 0.2, 0.1, 0.8)
    return amplitude * (shape + oconnell), period


def _eb(rng, time):
    period = _log_uniform(rng, 0.4, 5.0)
    shape = _two_minima(_phase(rng, time, period), rng.uniform(0.25, 0.7), 1.3)
    return rng.uniform(0.2, 1.0) * shape, period


def _ea(rng, time):
    """Detached binary: flat outside eclipses whose width shrinks with period (0.03-0.15)."""
    period = _log_uniform(rng, 0.5, 30.0) if rng.random() < 0.9 else _log_uniform(rng, 30, 100)
    width = float(np.clip(0.12 * period**-0.3 * rng.lognormal(0.0, 0.25), 0.03, 0.15))
    phase = _phase(rng, time, period)
    depth = _log_uniform(rng, 0.1, 2.0)
    depth2 = 0.0 if rng.random() < 0.3 else depth * rng.uniform(0.0, 0.6)
    phase2 = 0.5 + (rng.uniform(-0.1, 0.1) if rng.random() < 0.2 else 0.0)  # eccentric orbits
    flux = np.ones_like(time)
    for centre, mag_depth in ((0.0, depth), (phase2, depth2)):
        profile = np.sqrt(np.clip(1.0 - (2 * _wrapped(phase - centre) / width) ** 2, 0.0, None))
        flux -= (1.0 - 10 ** (-0.4 * mag_depth)) * profile
    delta = -2.5 * np.log10(flux)
    if rng.random() < 0.3:  # ellipsoidal / reflection light between eclipses
        delta += rng.uniform(0.01, 0.04) * 0.5 * (1.0 + np.cos(4 * np.pi * phase))
    return delta, period


def _rrab(rng, time):
    """Fundamental-mode RR Lyrae: sawtooth, amplitude falling with period (Bailey diagram);
    a third show Blazhko amplitude and phase modulation."""
    period = float(np.clip(rng.normal(0.57, 0.07), 0.45, 0.9))
    amplitude = float(np.clip(0.95 - 2.0 * (period - 0.55) + rng.normal(0.0, 0.15), 0.45, 1.35))
    phase = _phase(rng, time, period)
    if rng.random() < 0.35:
        blazhko = 2 * np.pi * (time / _log_uniform(rng, 20.0, 200.0) + rng.random())
        phase = (phase + rng.uniform(0.01, 0.05) * np.sin(blazhko)) % 1.0
        amplitude = amplitude * (1.0 - rng.uniform(0.1, 0.4) * 0.5 * (1.0 + np.sin(blazhko)))
    return amplitude * _skewed_wave(phase, rng.uniform(0.12, 0.2), 8), period


def _rrc(rng, time):
    period = float(np.clip(rng.normal(0.32, 0.045), 0.22, 0.45))
    wave = _skewed_wave(_phase(rng, time, period), rng.uniform(0.35, 0.45), 3)
    return rng.uniform(0.25, 0.6) * wave, period


def _rrd(rng, time):
    """Double-mode RR Lyrae: first overtone (the catalog period) beating with the fundamental."""
    period = rng.uniform(0.335, 0.41)
    overtone = _skewed_wave(_phase(rng, time, period), 0.42, 3)
    fundamental = _skewed_wave(_phase(rng, time, period / 0.745), 0.3, 4)
    amplitude = rng.uniform(0.15, 0.4)
    return amplitude * (overtone + rng.uniform(0.25, 0.6) * fundamental), period


def _dsct(rng, time):
    """Low-amplitude delta Scuti: usually several non-commensurate modes."""
    period = _log_normal(rng, 0.08, 0.2, 0.02, 0.25)
    semi = 0.5 * _log_normal(rng, 0.18, 0.25, 0.02, 0.3)
    phase = _phase(rng, time, period)
    delta = semi * (np.sin(2 * np.pi * phase) + 0.1 * np.sin(4 * np.pi * phase + 1.0))
    n_extra = rng.integers(1, 3) if rng.random() < 0.6 else 0
    for _ in range(n_extra):
        ratio = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.4)
        mode_phase = _phase(rng, time, period / ratio)
        delta += semi * rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * mode_phase)
    return delta, period


def _hads(rng, time):
    period = _log_uniform(rng, 0.05, 0.25)
    amplitude = rng.uniform(0.3, 0.9)
    delta = amplitude * _skewed_wave(_phase(rng, time, period), rng.uniform(0.3, 0.4), 5)
    if rng.random() < 0.25:  # double-mode HADS, first overtone at 0.773 P
        delta += amplitude * rng.uniform(0.2, 0.5) * _skewed_wave(
            _phase(rng, time, 0.773 * period), 0.4, 3)
    return delta, period


def _cepheid(rng, time, period, amplitude, rise):
    """Cepheid sawtooth with the Hertzsprung bump (P ~ 6-16 d), moving from the descending
    branch to the rising one as the period grows past 10 d."""
    phase = _phase(rng, time, period)
    wave = _skewed_wave(phase, rise, 6)
    if 6.0 <= period <= 16.0:
        bump_at = (rise + 0.35 - 0.06 * (period - 6.0)) % 1.0
        wave = wave - 0.15 * np.exp(-0.5 * (_wrapped(phase - bump_at) / 0.04) ** 2)
    return amplitude * wave, period


def _dcep(rng, time):
    period = _log_normal(rng, 5.0, 0.3, 1.0, 60.0)
    return _cepheid(rng, time, period, rng.uniform(0.3, 1.2), rng.uniform(0.25, 0.35))


def _dceps(rng, time):
    period = _log_uniform(rng, 1.0, 7.0)
    return _cepheid(rng, time, period, rng.uniform(0.1, 0.5), 0.4)


def _cwb(rng, time):
    period = _log_uniform(rng, 1.0, 4.0)
    return _cepheid(rng, time, period, rng.uniform(0.3, 1.2), rng.uniform(0.15, 0.25))


def _cwa(rng, time):
    period = _log_uniform(rng, 8.0, 20.0)
    return _cepheid(rng, time, period, rng.uniform(0.3, 1.2), rng.uniform(0.25, 0.35))


def _rva(rng, time):
    """RV Tauri: alternating deep and shallow minima (catalog period = deep to deep), the
    alternation and the cycle lengths wandering."""
    period = _log_uniform(rng, 30.0, 150.0)
    cycle = _jittered_cycles(rng, time, period, 0.04)
    inequality = np.clip(rng.uniform(0.2, 0.5) + 0.15 * _red_noise(rng, time, 3 * period), 0, 0.8)
    return rng.uniform(0.3, 1.2) * _two_minima(cycle % 1.0, inequality), period


def _mira(rng, time):
    """Mira: large, slightly asymmetric cycles; length, amplitude and mean level change by a
    few per cent from one cycle to the next."""
    period = _log_normal(rng, 300.0, 0.13, 100.0, 600.0)
    cycle = _jittered_cycles(rng, time, period, 0.05)
    n_cycles = int(cycle.max()) + 2
    centres = np.arange(n_cycles) + 0.5
    amplitude = min(2.5 + rng.exponential(1.8), 8.0)
    amplitudes = np.interp(cycle, centres, amplitude * (1.0 + 0.05 * rng.standard_normal(n_cycles)))
    levels = np.interp(cycle, centres, 0.1 * rng.standard_normal(n_cycles))
    wave = _skewed_wave(cycle % 1.0, rng.uniform(0.35, 0.45), 3)
    return amplitudes * wave + levels, period


_SEMIREGULAR = {
    # subtype: (period range d, amplitude median and range mag, phase drift rms in cycles,
    # most extra modes)
    "SR": ((20.0, 400.0), (0.7, 0.1, 2.5), 0.05, 2),
    "SRA": ((50.0, 400.0), (1.4, 0.8, 2.5), 0.02, 1),
    "SRB": ((20.0, 250.0), (0.5, 0.2, 1.5), 0.08, 2),
    "SRC": ((50.0, 400.0), (0.5, 0.2, 1.0), 0.05, 1),
    "SRD": ((20.0, 150.0), (0.6, 0.3, 1.5), 0.05, 1),
}


def _semiregular(rng, time, subtype):
    """Semi-regular giant: a few modes whose phases and amplitudes drift (red noise), at times
    a long secondary period several times the primary."""
    (p_low, p_high), (a_median, a_low, a_high), drift, max_extra = _SEMIREGULAR[subtype]
    period = _log_uniform(rng, p_low, p_high)
    semi = 0.5 * _log_normal(rng, a_median, 0.25, a_low, a_high)

    def mode(mode_period: float, mode_semi: float, mode_drift: float) -> np.ndarray:
        wander = mode_drift * _red_noise(rng, time, 3 * mode_period)
        strength = np.exp(0.2 * _red_noise(rng, time, 5 * mode_period))
        phase = (_phase(rng, time, mode_period) + wander) % 1.0
        return mode_semi * strength * (2.0 * _skewed_wave(phase, 0.45, 2) - 1.0)

    delta = mode(period, semi, drift)
    for _ in range(rng.integers(0, max_extra + 1)):
        ratio = rng.uniform(0.5, 0.56) if rng.random() < 0.5 else rng.uniform(1.75, 2.0)
        delta += mode(period * ratio, semi * rng.uniform(0.15, 0.5), drift)
    if rng.random() < 0.25:
        delta += mode(period * rng.uniform(6.0, 10.0), semi * rng.uniform(0.2, 0.6), 0.02)
    return delta, period


def _rot(rng, time):
    """Spotted rotator: quasi-sinusoidal, spot groups growing, decaying and migrating over
    months; a second group rotates slightly slower (differential rotation)."""
    period = _log_normal(rng, 5.0, 0.4, 0.5, 40.0)
    amplitude = _log_normal(rng, 0.2, 0.15, 0.02, 0.3)
    lifetime = rng.uniform(50.0, 300.0)
    delta = np.zeros_like(time)
    slower = period * (1 + rng.uniform(0.005, 0.03))
    for group_period, share in ((period, 1.0), (slower, rng.uniform(0.05, 0.25))):
        strength = share * np.exp(0.1 * _red_noise(rng, time, lifetime))
        migration = 0.02 * _red_noise(rng, time, lifetime)
        angle = 2 * np.pi * (_phase(rng, time, group_period) + migration)
        delta += strength * (np.cos(angle) + rng.uniform(0.1, 0.3) * np.cos(2 * angle + 1.0))
    return 0.5 * amplitude * delta, period


_SHAPES: dict[str, Callable[[np.random.Generator, np.ndarray], tuple[np.ndarray, float]]] = {
    "EW": _ew, "EB": _eb, "EA": _ea,
    "RRAB": _rrab, "RRC": _rrc, "RRD": _rrd,
    "DSCT": _dsct, "HADS": _hads,
    "DCEP": _dcep, "DCEPS": _dceps, "CWA": _cwa, "CWB": _cwb, "RVA": _rva,
    "M": _mira, "ROT": _rot,
    **{sub: (lambda rng, time, sub=sub: _semiregular(rng, time, sub)) for sub in _SEMIREGULAR},
}


# --- VAR: aperiodic behaviours -------------------------------------------------------------------

def _yso(rng, time):
    """Young star: stochastic flicker plus either dimming dips (dippers) or bursts."""
    delta = rng.uniform(0.03, 0.1) * _red_noise(rng, time, rng.uniform(2.0, 20.0))
    span = np.ptp(time)
    if rng.random() < 0.6:
        centres = rng.uniform(time[0], time[-1], rng.poisson(span / rng.uniform(20, 80)) + 1)
        widths = rng.uniform(0.5, 5.0, centres.size)
        depths = 10 ** rng.uniform(np.log10(0.2), np.log10(1.5), centres.size)
        delta += depths @ np.exp(-0.5 * ((time - centres[:, None]) / widths[:, None]) ** 2)
    else:
        starts = rng.uniform(time[0] - 50, time[-1], rng.poisson(span / rng.uniform(100, 400)) + 1)
        lengths = rng.uniform(5.0, 60.0, starts.size)
        heights = rng.uniform(0.3, 1.5, starts.size)
        since = (time - starts[:, None]) / lengths[:, None]
        profile = np.exp(np.where(since < 0, 5 * since, -3 * since))  # fast rise, slow decay
        delta -= heights @ profile
    return delta


def _drw(rng, time):
    """Damped random walk (Be-star-like irregular variability)."""
    return rng.uniform(0.05, 0.35) * _red_noise(rng, time, _log_uniform(rng, 10.0, 500.0))


def _dwarf_nova(rng, time):
    """Dwarf nova: 2-5 mag outbursts, fast rise, linear-in-magnitude decline, quasi-regular
    recurrence, flickering in quiescence."""
    recurrence = _log_uniform(rng, 20.0, 200.0)
    n = int(np.ptp(time) / recurrence) + 3
    onsets = time[0] - rng.random() * recurrence + np.cumsum(
        recurrence * rng.lognormal(0.0, 0.3, n))
    heights = rng.uniform(2.0, 5.0) + rng.normal(0.0, 0.3, n)
    duration = rng.uniform(5.0, 15.0)
    since = time - onsets[:, None]
    profile = np.clip(np.where(since < 0, 1 + since / 0.7, 1 - since / duration), 0.0, 1.0)
    return -(heights[:, None] * profile).max(axis=0) + 0.1 * _red_noise(rng, time, 1.0)


def _rcb(rng, time):
    """R CrB star: at maximum a small pulsation, then sudden deep fades with slow recovery."""
    delta = 0.1 * np.sin(2 * np.pi * _phase(rng, time, rng.uniform(40.0, 100.0)))
    n_fades = 1 + rng.poisson(np.ptp(time) / 1500.0)
    starts = rng.uniform(time[0] - 200.0, time[-1] - 100.0, n_fades)
    depths = rng.uniform(2.0, 7.0, n_fades)[:, None]
    decline = rng.uniform(15.0, 40.0, n_fades)[:, None]
    recovery = rng.uniform(100.0, 400.0, n_fades)[:, None]
    since = time - starts[:, None]
    fade = np.where(since < decline, np.clip(since / decline, 0, 1),
                    np.clip(1 - (since - decline) / recovery, 0, 1))
    return delta + (depths * fade).max(axis=0)


def _flare(rng, time):
    """Flare star: flares last hours, so a 2-3 d cadence catches each in a single epoch."""
    delta = 0.02 * _red_noise(rng, time, 5.0)
    flaring = rng.random(time.size) < rng.uniform(0.02, 0.06)
    return delta - np.where(flaring, np.clip(0.2 + rng.exponential(0.6, time.size), 0, 3), 0)


def _trend(rng, time):
    """Slow secular trend over the survey (linear plus curvature) with mild red noise."""
    x = (time - time.mean()) / np.ptp(time)
    slope = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 1.0)
    curvature = rng.uniform(-0.5, 0.5) * abs(slope)
    return slope * x + curvature * x**2 + 0.03 * _red_noise(rng, time, 30.0)


def _irregular(rng, time):
    """Irregular giant: red noise plus an incoherent quasi-period (no stable period)."""
    delta = rng.uniform(0.1, 0.4) * _red_noise(rng, time, _log_uniform(rng, 30.0, 300.0))
    quasi = _log_uniform(rng, 30.0, 300.0)
    phase = _phase(rng, time, quasi) + 0.3 * _red_noise(rng, time, quasi)
    return delta + rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * phase)


_VAR_SHAPES: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "yso": _yso, "drw": _drw, "dwarf_nova": _dwarf_nova, "rcb": _rcb,
    "flare": _flare, "trend": _trend, "irregular": _irregular,
}
