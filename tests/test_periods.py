"""The period search (varnet.prepare.periods): synthetic light curves of each kind, bad input,
and a slice of the real catalogs of ../shared/data (skipped when absent)."""

from __future__ import annotations

import platform

import numpy as np
import pandas as pd
import pytest

from varnet.core.errors import VarnetError
from varnet.prepare.periods import (
    _chi2,
    _keep_freed_memory,
    _phasors,
    _time_step,
    lomb_scargle_period,
)


def survey_times(n: int, nights: float, seed: int) -> np.ndarray:
    """Ground-based sampling: random nights, a few hours into each (daily aliases included)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, int(nights), n) + rng.uniform(0.1, 0.4, n))


def noisy(t: np.ndarray, model: np.ndarray, sigma: float, seed: int):
    rng = np.random.default_rng(seed)
    return t, 15.0 + model + rng.normal(0, sigma, t.size), np.full(t.size, sigma)


def eclipses(phase: np.ndarray, depths: tuple[float, float], width: float) -> np.ndarray:
    """Magnitudes of two Gaussian eclipses at phases 0 and 0.5 of the orbit."""
    dist = [np.minimum(np.abs(phase - c), 1 - np.abs(phase - c)) for c in (0.0, 0.5)]
    return sum(d * np.exp(-0.5 * (x / width) ** 2) for d, x in zip(depths, dist, strict=True))


def test_short_sinusoid_at_the_cuts_lower_end():
    t = survey_times(400, 600, seed=1)
    found = lomb_scargle_period(*noisy(t, 0.1 * np.sin(2 * np.pi * t / 0.02), 0.02, seed=2))
    assert found == pytest.approx(0.02, rel=1e-4)


def test_rr_lyrae_sawtooth_is_not_taken_for_its_daily_alias():
    t = survey_times(250, 900, seed=3)
    phase = (t / 0.5712) % 1.0
    # RRab: a rise to maximum light in 15% of the cycle, a slow decline in the rest
    model = np.where(phase < 0.15, 0.9 * (1 - phase / 0.15), 0.9 * (phase - 0.15) / 0.85)
    assert lomb_scargle_period(*noisy(t, model, 0.05, seed=4)) == pytest.approx(0.5712, rel=1e-3)


def test_eclipsing_binary_with_unequal_minima_comes_back_at_the_orbital_period():
    t = survey_times(400, 900, seed=5)
    model = eclipses((t / 1.37) % 1.0, (0.6, 0.3), 0.04)
    assert lomb_scargle_period(*noisy(t, model, 0.03, seed=6)) == pytest.approx(1.37, rel=1e-3)


def test_contact_binary_with_equal_minima_comes_back_at_the_orbital_period():
    t = survey_times(400, 900, seed=7)
    x = 4 * np.pi * t / 0.3712            # two identical minima per orbit, sharper than maxima
    model = -0.25 * np.cos(x) + 0.05 * np.cos(2 * x)
    found = lomb_scargle_period(*noisy(t, model, 0.03, seed=8))
    assert found == pytest.approx(0.3712, rel=1e-3)


def test_pulsating_sinusoid_is_not_doubled():
    t = survey_times(400, 900, seed=9)
    found = lomb_scargle_period(*noisy(t, 0.3 * np.sin(2 * np.pi * t / 0.3712), 0.03, seed=10))
    assert found == pytest.approx(0.3712, rel=1e-3)


def test_two_bands_with_their_own_offsets_and_amplitudes_are_searched_together():
    t = survey_times(90, 3000, seed=11)   # Stripe 82-like: sparse, a long baseline
    band = np.where(np.arange(t.size) % 2 == 0, "g", "r")
    phase = (t / 0.6123) % 1.0
    shape = np.where(phase < 0.15, 1 - phase / 0.15, (phase - 0.15) / 0.85)
    model = np.where(band == "g", 0.9 * shape, 0.6 * shape + 0.4)
    t, mag, err = noisy(t, model, 0.03, seed=12)
    assert lomb_scargle_period(t, mag, err, band) == pytest.approx(0.6123, rel=1e-3)


def test_times_printed_to_a_round_step_bound_the_search():
    # EROS-1 prints times to 0.01 d: frequencies f and 100 - f are then the same fit, so the
    # search stops at 50 cycles/day instead of returning a mirror near 0.0103 d
    t = survey_times(250, 900, seed=13)
    assert _time_step(t) == 0.0
    t = np.round(t, 2)
    assert _time_step(t) == 0.01
    found = lomb_scargle_period(*noisy(t, 0.3 * np.sin(2 * np.pi * t / 0.3364), 0.05, seed=14))
    assert found == pytest.approx(0.3364, rel=1e-3)


def test_harmonic_fits_from_power_sums_match_an_explicit_least_squares_fit():
    """The zoom's chi² (normal equations from sums of powers of exp(2 pi i f t), phasors by
    recurrence) is the chi² of an explicit weighted fit of an offset + K harmonics."""
    rng = np.random.default_rng(7)
    t = survey_times(300, 1000, seed=8)
    err = rng.uniform(0.01, 0.05, t.size)
    mag = 0.3 * np.sin(2 * np.pi * t / 0.61) + rng.normal(0, err)
    centres, step = np.array([1 / 0.61, 2.3]), 1e-4
    phasors = _phasors(t, centres, step, 4)
    freqs = (centres[:, None] + step * np.arange(-4, 5)).ravel()
    for harmonics in (0, 1, 4):
        explicit = []
        for f in freqs:
            x = 2 * np.pi * f * t[:, None] * np.arange(1, harmonics + 1)
            design = np.concatenate([np.ones((t.size, 1)), np.cos(x), np.sin(x)], axis=1)
            coef, *_ = np.linalg.lstsq(design / err[:, None], mag / err, rcond=None)
            explicit.append(np.sum(((mag - design @ coef) / err) ** 2))
        np.testing.assert_allclose(_chi2([(t, mag, err)], [phasors], harmonics), explicit,
                                   rtol=1e-8)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t, m, e: (t[:5], m[:5], e[:5]), "from 5 points"),
    (lambda t, m, e: (t, np.where(np.arange(t.size) == 3, np.nan, m), e), "NaN or inf"),
    (lambda t, m, e: (t, m, np.where(np.arange(t.size) == 3, 0.0, e)), "zero or negative"),
    (lambda t, m, e: (np.full(t.size, 7.0), m, e), "no time baseline"),
    (lambda t, m, e: (t, np.full(t.size, 13.0), e), "constant magnitudes"),
    (lambda t, m, e: (t, m[:-1], e), "1-D of one length"),
])
def test_light_curves_that_cannot_give_a_period_are_refused(change, message):
    t = np.arange(50.0)
    mag = 13 + 0.2 * np.sin(t)
    with pytest.raises(VarnetError, match=message):
        lomb_scargle_period(*change(t, mag, np.full(50, 0.05)))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_search_keeps_freed_memory_for_the_next_star():
    """glibc takes the thresholds (mallopt returns 0 for a value it refuses)."""
    assert _keep_freed_memory()


def test_band_labels_must_match_the_points():
    t = np.arange(50.0)
    with pytest.raises(VarnetError, match="one label per point"):
        lomb_scargle_period(t, np.sin(t), np.full(50, 0.1), np.array(["g"] * 49))


def test_real_catalog_periods_are_recovered(shared_data):
    """Stripe 82 RR Lyrae (ugriz) and Gaia DR3 stars with a catalog period: 40 of each."""
    s82 = shared_data / "sdss-s82-rrlyrae"
    points = pd.read_csv(s82 / "lightcurves.csv.gz")
    points = points[(points["mag"] < 90) & (points["mag_err"] < 9)]
    catalog = pd.read_csv(s82 / "catalog.csv.gz").head(40)
    found = [lomb_scargle_period(*(g[c].to_numpy() for c in ("time", "mag", "mag_err", "band")))
             for _, g in points[points["star_id"].isin(catalog["star_id"])].groupby(
                 "star_id", sort=False)]
    wanted = catalog.set_index("star_id").loc[
        points.loc[points["star_id"].isin(catalog["star_id"]), "star_id"].unique(), "period"]
    assert np.mean(np.abs(np.array(found) / wanted.to_numpy() - 1) < 0.01) >= 0.9

    gaia = shared_data / "gaia-dr3-cbm"
    catalog = pd.read_csv(gaia / "catalog.csv.gz").dropna(subset=["period"]).head(40)
    points = pd.read_csv(gaia / "lightcurves.csv.gz")
    groups = dict(tuple(points[points["source_id"].isin(catalog["source_id"])].groupby(
        "source_id")))
    found = np.array([lomb_scargle_period(*(groups[s][c].to_numpy() for c in (
        "time", "mag", "mag_err"))) for s in catalog["source_id"]])
    assert np.mean(np.abs(found / catalog["period"].to_numpy() - 1) < 0.01) >= 0.9


def test_injection_keeps_each_stars_epochs_shape_and_noise():
    """benchmarks.period_injection: the fit at the catalog period is the star's shape, each
    simulation keeps its times and bands, and 'own residuals' only reorders each band's."""
    from benchmarks import period_injection as injection

    period = 0.61
    t = survey_times(240, 900, seed=3)
    phase = 2 * np.pi * t / period
    band = np.where(np.arange(t.size) % 2, "R", "B")
    shape = 0.4 * np.sin(phase) + 0.15 * np.sin(2 * phase + 1) + 0.05 * np.cos(3 * phase)
    t, mag, err = noisy(t, shape + np.where(band == "R", -0.5, 0.0), 0.05, seed=4)
    star = ("S1", "RR", period, t, mag, err, band)

    model = injection.fitted_magnitudes(star, period)
    assert np.std(mag - model) < 0.06   # the noise, not the signal (amplitude 0.4)
    sims = injection.simulations(star, np.random.default_rng(0))
    assert set(sims) == set(injection.NOISE_MODELS)
    for name in injection.NOISE_MODELS:
        assert len(sims[name]) == injection.SIMULATIONS
        for sim_t, _, sim_err, sim_band in sims[name]:
            assert np.array_equal(sim_t, t) and np.array_equal(sim_err, err)
            assert np.array_equal(sim_band, band)
    for sim in sims["own residuals"]:
        for label in ("B", "R"):
            keep = band == label
            assert np.allclose(np.sort(sim[1][keep] - model[keep]),
                               np.sort(mag[keep] - model[keep]))
    assert abs(lomb_scargle_period(*sims["stated errors"][0]) / period - 1) < 0.01
