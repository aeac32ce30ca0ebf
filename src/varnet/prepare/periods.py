"""Periods for light curves that arrive without one: nifty-ls Lomb–Scargle, then harmonic fits.

The network folds every sequence on its period (docs/method.md §1), so a star scored without a
catalog period needs an estimate, and the wrong multiple folds it into a shape the network never
saw. ``lomb_scargle_period`` (measured in docs/periods.md, ``benchmarks/periods.py``):

1. **Grid.** Frequencies from 1/min(``MAX_PERIOD``, T) to 1/``MIN_PERIOD`` (T = time baseline,
   the cuts' 0.01-2000 d), step 1/(``OVERSAMPLING`` T), at most ``MAX_FREQUENCIES``. Times that
   are all multiples of a round step q (EROS-1 prints 0.01 d) make frequency f and 1/q - f
   indistinguishable, so the grid then stops at 1/(2q).
2. **Candidates.** One float64 Lomb–Scargle periodogram with nifty-ls (a non-uniform FFT: ~15
   ms for the 160,000 frequencies of a 3-year baseline; float32 is faster but recovers 84% of
   the Gaia periods instead of 98%) of all bands pooled, each band centred on its weighted
   mean, at a NUFFT tolerance of 1e-5 (the same periods as 1e-6 for all 4,888 benchmark stars,
   and a cheaper kernel); its ``CANDIDATES`` highest peaks within ``CANDIDATE_POWER`` of the top
   one.
3. **Choice.** Each candidate is zoomed onto the minimum chi² of a ``HARMONICS``-term Fourier
   series with one offset per band (one least-squares fit per band, batched over trial
   frequencies, its normal equations from sums of powers of exp(2 pi i f t)), and the lowest
   chi² wins. The single sinusoid of Lomb–Scargle often prefers a 1-day alias of a
   non-sinusoidal RR Lyrae (Stripe 82 within 1%: 68% by astropy's highest peak, 95% by this
   choice). Errors get ``ERROR_FLOOR`` in quadrature so that a few points with underestimated
   errors do not decide.
4. **P or 2P.** Eclipsing binaries put their strongest peak at half the orbital period, the
   period catalogs give (EROS-1, Gaia DR3). 2P is taken when (a) a 2P series with 2K harmonics
   beats the K-harmonic series at P by an F-test (``F_ALPHA``) and the odd half-harmonics carry
   more than ``ODD_FRACTION`` of the variability: unequal minima or maxima; or (b) the light
   curve at P is time-symmetric with the faint extreme sharper than the bright one (Fourier
   phase difference phi21 = phi2 - 2 phi1 within ``PHI21_MAX`` of 0, 2nd harmonic significant at
   ``SYMMETRY_ALPHA``, amplitude ratio A2/A1 in ``A21_RANGE``): equal minima (EW), which no
   chi² can tell from P because the odd harmonics vanish. Pulsators are asymmetric (RRab,
   Cepheids, delta Scuti) or have sharper maxima.

Limits (measured, docs/periods.md): sparse, noisy light curves still lose to daily aliases (EROS-1
photographic plates: 79% of RR Lyrae within 1%); periods comparable to the baseline are only as
good as the baseline (Miras); an Algol whose secondary eclipse is invisible is returned at its
orbital period, one with two equal narrow eclipses at half of it (indistinguishable light curves).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from varnet.core.errors import VarnetError

MIN_PERIOD = 0.01
"""Shortest period searched, days: the cuts' lower bound (params.yaml cuts.period_range)."""
MAX_PERIOD = 2000.0
"""Longest period searched, days (the cuts' upper bound), and never beyond the baseline."""
OVERSAMPLING = 1.5
"""Grid points per peak width 1/T; the zoom of step 3 finds the exact peak. 1.5 recovers as many
catalog periods as 2 in 3/4 of the time, 1 loses some (docs/periods.md)."""
MAX_FREQUENCIES = 2_000_000
"""Cap on the grid (~0.3 s per star) so that a decades-long baseline cannot take minutes."""
CANDIDATES = 10
CANDIDATE_POWER = 0.5
"""Peaks below this fraction of the highest are not candidates (the true one was >= 0.59 of it
in 99% of EROS-1 stars, the noisiest set here)."""
HARMONICS = 4
ERROR_FLOOR = 0.02
"""Magnitudes, added in quadrature to every error before the fits (docs/periods.md)."""
TIME_STEPS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
"""Round time steps tested, days, coarsest first (see step 1)."""
ZOOM_POINTS = 9
ZOOM_LEVELS = 3
"""Each level evaluates ZOOM_POINTS frequencies over the previous step: final step df/64."""
ZOOM_KEEP = 3
"""Candidates kept after the first zoom level (the others only cost time)."""
DOUBLE_HARMONICS = 2
F_ALPHA = 1e-3
ODD_FRACTION = 0.1
SYMMETRY_ALPHA = 1e-10
PHI21_MAX = 0.3
A21_RANGE = (0.05, 0.5)
"""Symmetric test (4b); above 0.5 (narrow eclipses) an invisible secondary is as likely as an
equal one, and EROS-1's Algols are mostly the former."""
MIN_POINTS = 10
HEAP_KEEP_BYTES = (32 << 20, 128 << 20)
"""glibc's mmap and trim thresholds while searching (``_keep_freed_memory``): blocks up to 32
MiB (the fine grid of MAX_FREQUENCIES) come from the heap, and up to 128 MiB of freed heap
stays with the process."""


def lomb_scargle_period(t: np.ndarray, mag: np.ndarray, err: np.ndarray,
                        band: np.ndarray | None = None) -> float:
    """Period in days of one star (all its bands; ``band`` = one label per point, None = one).

    Raises VarnetError when the light curve cannot constrain a period (too few points, no time
    baseline, constant magnitudes, non-finite values, non-positive errors).
    """
    bands, freqs, chi2, _, _ = _zoomed_candidates(t, mag, err, band)
    return _period_or_double(bands, float(freqs[np.argmin(chi2)]))


def _zoomed_candidates(t, mag, err, band):
    """Steps 1-3 short of the choice: (bands, candidate freqs, their chi², grid step, the
    searched range); `benchmarks.alias_choice` scores these candidates with a model."""
    import nifty_ls

    _keep_freed_memory()
    t, mag, err, band = _checked(t, mag, err, band)
    baseline = float(t.max() - t.min())
    f_max = 1.0 / MIN_PERIOD
    step = _time_step(t)
    if step:
        f_max = min(f_max, 0.5 / step)
    f_min = 1.0 / min(MAX_PERIOD, baseline)
    n_freq = int(min(np.ceil((f_max - f_min) * OVERSAMPLING * baseline) + 1, MAX_FREQUENCIES))
    df = (f_max - f_min) / (n_freq - 1)
    bands = _bands(t - t.min(), mag, err, band)
    pooled = [np.concatenate(a) for a in zip(*bands, strict=True)]
    order = np.argsort(pooled[0], kind="stable")
    # each band is centred already: the floating mean would only cost a third transform
    power = nifty_ls.lombscargle(*(a[order] for a in pooled), fmin=f_min, fmax=f_max,
                                 Nf=n_freq, fit_mean=False, nthreads=1,
                                 finufft_kwargs={"eps": 1e-5}).power
    power[~((power >= 0) & (power <= 1))] = 0.0   # degenerate sampling at that frequency
    freqs, chi2 = _zoom(bands, f_min + df * _candidates(power), df, (f_min, f_max))
    return bands, freqs, chi2, df, (f_min, f_max)


def _candidates(power: np.ndarray) -> np.ndarray:
    """Grid indices of the CANDIDATES highest local maxima within CANDIDATE_POWER of the
    highest one.

    When the highest interior point is itself a peak (nearly always), only the points above
    CANDIDATE_POWER of it are tested for being peaks: a 160,000-point grid costs 0.3 ms
    instead of 0.9 (the same indices).
    """
    inner = power[1:-1]
    top = int(np.argmax(inner)) + 1 if inner.size else 0
    if top and power[top] > power[top - 1] and power[top] >= power[top + 1]:
        peaks = np.flatnonzero(inner >= CANDIDATE_POWER * power[top]) + 1
    else:
        peaks = np.arange(1, power.size - 1)
    peaks = peaks[(power[peaks] > power[peaks - 1]) & (power[peaks] >= power[peaks + 1])]
    if peaks.size == 0:
        raise VarnetError("cannot estimate a period: the periodogram has no peak")
    if peaks.size > CANDIDATES:
        peaks = peaks[np.argpartition(power[peaks], -CANDIDATES)[-CANDIDATES:]]
    return peaks[power[peaks] >= CANDIDATE_POWER * power[peaks].max()]


@functools.cache
def _keep_freed_memory() -> bool:
    """Have glibc keep freed multi-MB blocks for reuse (once per process; False where the C
    library has no ``mallopt``).

    Each periodogram allocates and frees a few MB (FINUFFT's fine grid, 3.3 MB for a 3-year
    baseline, and the power arrays). By default glibc maps such blocks afresh and returns them
    on free (Dask workers even trim at 64 kB), so every star faults its pages in again:
    ~3,500 page faults a ZTF-like star, a third of the periodogram's time (docs/periods.md).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mmap_threshold, trim_threshold = HEAP_KEEP_BYTES
    return bool(mallopt(-3, mmap_threshold) and mallopt(-1, trim_threshold))   # M_MMAP_, M_TRIM_


def _checked(t, mag, err, band):
    t, mag, err = (np.asarray(a, dtype=np.float64) for a in (t, mag, err))
    if not (t.shape == mag.shape == err.shape and t.ndim == 1):
        raise VarnetError(f"lomb_scargle_period: t, mag, err must be 1-D of one length, got "
                          f"{t.shape}, {mag.shape}, {err.shape}")
    band = np.zeros(t.size, dtype=np.int64) if band is None else np.asarray(band)
    if band.shape != t.shape:
        raise VarnetError(f"lomb_scargle_period: band must have one label per point, got "
                          f"{band.shape} for {t.size} points")
    if t.size < MIN_POINTS:
        raise VarnetError(f"cannot estimate a period from {t.size} points (need {MIN_POINTS})")
    if not (np.isfinite(t).all() and np.isfinite(mag).all() and np.isfinite(err).all()):
        raise VarnetError("cannot estimate a period: time, mag or err holds NaN or inf")
    if (err <= 0).any():
        raise VarnetError("cannot estimate a period: some errors are zero or negative")
    if np.ptp(t) <= 0 or np.ptp(mag) == 0:
        raise VarnetError("cannot estimate a period: no time baseline or constant magnitudes")
    return t, mag, err, band


def _time_step(t: np.ndarray) -> float:
    """The coarsest of TIME_STEPS that every time is a multiple of (0: none)."""
    for step in TIME_STEPS:
        if np.all(np.abs(t / step - np.round(t / step)) < 0.01):
            return step
    return 0.0


def _bands(t, mag, err, band) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(t, mag - weighted mean, err with the floor) per band that can carry the fits."""
    out = []
    for label in np.unique(band):
        keep = band == label
        if keep.sum() <= 2 * HARMONICS + 1 or np.ptp(mag[keep]) == 0:
            continue
        e = np.hypot(err[keep], ERROR_FLOOR)
        m = mag[keep]
        w = e**-2
        out.append((t[keep], m - np.sum(w * m) / np.sum(w), e))
    if not out:
        raise VarnetError(f"cannot estimate a period: no band has more than "
                          f"{2 * HARMONICS + 1} points with varying magnitudes")
    return out


def _phasors(t: np.ndarray, centres: np.ndarray, step: float, side: int) -> np.ndarray:
    """exp(2 pi i f t) at f = centre + k step, k = -side..side, for each centre in turn:
    (centres x (2 side + 1), t.size).

    Multiplied out of exp(2 pi i centre t) and powers of exp(2 pi i step t): two exponentials
    per centre instead of 2 side + 1 (complex exponentials were most of the fits' time).
    """
    powers = np.empty((2 * side + 1, t.size), dtype=np.complex128)
    powers[side] = 1.0
    shift = np.exp(2j * np.pi * step * t)
    for k in range(1, side + 1):
        powers[side + k] = powers[side + k - 1] * shift
        powers[side - k] = powers[side + k].conj()
    centred = np.exp(2j * np.pi * np.asarray(centres, dtype=np.float64)[:, None] * t)
    return (centred[:, None, :] * powers).reshape(-1, t.size)


def _normal_equations(band, z: np.ndarray, harmonics: int
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Gram matrices (F, 2K+1, 2K+1), right-hand sides (F, 2K+1) and sum of squares of the
    weighted fit of an offset + K = ``harmonics`` Fourier terms, one fit per row of phasors z
    (F, points); columns: offset, cos(k x), sin(k x) for k = 1..K.

    Built from the power sums S_m = sum w^2 z^m (m <= 2K) and R_k = sum w^2 mag z^k (k <= K):
    a product of two harmonics is a sum of the harmonics j + k and |j - k|, so the (2K+1)^2
    entries need 2K + 1 sums instead of a product over every point.
    """
    t, mag, err = band
    w2 = err**-2.0
    weights = np.stack([w2, w2 * mag], axis=1).astype(np.complex128)
    sums = np.empty((z.shape[0], 2 * harmonics + 1), dtype=np.complex128)
    data = np.empty((z.shape[0], harmonics + 1), dtype=np.complex128)
    sums[:, 0], data[:, 0] = w2.sum(), (w2 * mag).sum()
    zm = z.copy()
    for m in range(1, 2 * harmonics + 1):
        if m > 1:
            zm *= z
        if m <= harmonics:
            sums[:, m], data[:, m] = (zm @ weights).T
        else:
            sums[:, m] = zm @ weights[:, 0]
    k = np.arange(1, harmonics + 1)
    plus, minus = sums[:, k[:, None] + k], sums[:, np.abs(k[:, None] - k)]
    sign = np.sign(k[:, None] - k)
    cos, sin = slice(1, harmonics + 1), slice(harmonics + 1, None)
    gram = np.empty((z.shape[0], 2 * harmonics + 1, 2 * harmonics + 1))
    gram[:, 0, 0] = sums[:, 0].real
    gram[:, 0, cos] = gram[:, cos, 0] = sums[:, k].real
    gram[:, 0, sin] = gram[:, sin, 0] = sums[:, k].imag
    gram[:, cos, cos] = 0.5 * (minus.real + plus.real)
    gram[:, sin, sin] = 0.5 * (minus.real - plus.real)
    gram[:, cos, sin] = 0.5 * (plus.imag - sign * minus.imag)      # cos(j x) sin(k x)
    gram[:, sin, cos] = gram[:, cos, sin].transpose(0, 2, 1)
    rhs = np.concatenate([data[:, :1].real, data[:, 1:].real, data[:, 1:].imag], axis=1)
    return gram, rhs, float(np.sum(w2 * mag**2))


def _solve(gram: np.ndarray, rhs: np.ndarray, sum_squares: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """(chi^2, coefficients) of each fit (a tiny ridge keeps degenerate sampling solvable)."""
    gram = gram + 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(
        gram.shape[1])
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return sum_squares - np.einsum("ep,ep->e", rhs, coef), coef


def _chi2(bands, phasors: list[np.ndarray], harmonics: int) -> np.ndarray:
    """chi^2 of one offset per band + a ``harmonics``-term Fourier series, at each row of
    the bands' phasors (all trial frequencies at once)."""
    return sum(_solve(*_normal_equations(band, z, harmonics))[0]
               for band, z in zip(bands, phasors, strict=True))


def _zoom(bands, freqs: np.ndarray, df: float, bounds: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate moved onto its chi² minimum within one grid step, inside the searched
    range; (freqs, chi²).

    Needed before comparing candidates: over a 3,000-day baseline a period off by 1e-5 of
    itself drifts by 0.1 cycle, enough to make the true period lose to an alias.
    """
    side = ZOOM_POINTS // 2
    step = df / side
    for level in range(ZOOM_LEVELS):
        grid = freqs[:, None] + step * np.arange(-side, side + 1)
        outside = ((grid < bounds[0]) | (grid > bounds[1])).ravel()
        grid = np.clip(grid, *bounds)
        phasors = [_phasors(t, freqs, step, side) for t, _, _ in bands]
        for (t, _, _), z in zip(bands, phasors, strict=True):   # beyond the range: its bound
            z[outside] = np.exp(2j * np.pi * grid.ravel()[outside, None] * t)
        chi2 = _chi2(bands, phasors, HARMONICS).reshape(grid.shape)
        best = np.argmin(chi2, axis=1)
        freqs, chi2 = grid[np.arange(grid.shape[0]), best], chi2.min(axis=1)
        if level == 0:
            keep = np.argsort(chi2)[:ZOOM_KEEP]
            freqs, chi2 = freqs[keep], chi2[keep]
        step /= side
    return freqs, chi2


def _period_or_double(bands, freq: float) -> float:
    """1/freq, or 2/freq for an eclipsing binary found at half its orbital period (step 4)."""
    from scipy.stats import f as f_dist

    if 2.0 / freq > MAX_PERIOD:
        return 1.0 / freq
    n = sum(t.size for t, _, _ in bands)
    nb = len(bands)
    k = DOUBLE_HARMONICS
    # the fits with 0, 1 and k harmonics at P are nested: sub-blocks of one set of equations
    at_p = [_normal_equations(band, np.exp(2j * np.pi * freq * band[0])[None], k)
            for band in bands]
    nested = [np.r_[0, 1:h + 1, k + 1:k + 1 + h] for h in (0, 1, k)]
    fits = [[_solve(gram[:, cols][:, :, cols], rhs[:, cols], sum_squares)
             for gram, rhs, sum_squares in at_p] for cols in nested]
    chi_mean, chi_1, chi_p = (sum(float(chi2[0]) for chi2, _ in fit) for fit in fits)
    chi_2p = float(_chi2(bands, [np.exp(1j * np.pi * freq * t)[None] for t, _, _ in bands],
                         2 * k)[0])
    extra, dof = 2 * k * nb, n - nb * (1 + 4 * k)
    if dof > 0 and chi_2p > 0:
        p_value = f_dist.sf((chi_p - chi_2p) / extra / (chi_2p / dof), extra, dof)
        odd = (chi_p - chi_2p) / max(chi_mean - chi_2p, 1e-300)
        if p_value < F_ALPHA and odd > ODD_FRACTION:
            return 2.0 / freq
    extra, dof = 2 * nb, n - nb * 5
    if dof <= 0 or chi_p <= 0 or f_dist.sf(
            (chi_1 - chi_p) / extra / (chi_p / dof), extra, dof) > SYMMETRY_ALPHA:
        return 1.0 / freq
    phi21, log_a21, weight = 0j, 0.0, 0
    for (t, _, _), (_, coef) in zip(bands, fits[-1], strict=True):
        cos, sin = coef[0, 1:3], coef[0, k + 1:k + 3]   # the first two harmonics at P
        amp = np.hypot(cos, sin)
        phase = np.arctan2(-sin, cos)   # mag = sum A_k cos(k x + phase_k)
        phi21 += t.size * amp[1] * np.exp(1j * (phase[1] - 2 * phase[0]))
        log_a21 += t.size * np.log(max(amp[1], 1e-300) / max(amp[0], 1e-300))
        weight += t.size
    a21 = np.exp(log_a21 / weight)
    if abs(np.angle(phi21)) < PHI21_MAX and A21_RANGE[0] < a21 < A21_RANGE[1]:
        return 2.0 / freq
    return 1.0 / freq
