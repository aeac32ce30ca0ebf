"""The paper's cuts: point cleaning, star cuts in order, supersmoother residual, cut flow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from supersmoother import SuperSmoother

from varnet.core.config import CutsParams, from_dict
from varnet.core.errors import VarnetError
from varnet.core.schema import CATALOG_COLUMNS, CUT_COLUMNS, LIGHTCURVE_COLUMNS
from varnet.core.taxonomy import CLASSES, NOVEL
from varnet.prepare.cuts import CUTS, GROUPS, apply_cuts, clean_lightcurves, supersmoother_residual


def star(star_id: str, superclass: str | None = "ECL", *, n: int = 250, period: float = 0.7,
         amplitude: float = 0.5, noise: float = 0.02, seed: int = 0,
         **catalog) -> tuple[dict, pd.DataFrame]:
    """A catalog row that passes every default cut and its n-epoch sinusoidal V light curve
    (``catalog`` overrides catalog columns, e.g. class_probability)."""
    rng = np.random.default_rng(seed)
    time = np.sort(rng.uniform(2_457_000.0, 2_458_800.0, n))
    mag = 13.0 + amplitude * np.sin(2 * np.pi * time / period) + rng.normal(0, noise, n)
    row = {"id": star_id, "ra": 10.0, "dec": -5.0, "mean_vmag": 13.0, "amplitude": 2 * amplitude,
           "period": period, "variable_type": superclass or "EW:", "superclass": superclass,
           "class_probability": np.nan if superclass == NOVEL else 0.95, "phot_g_abs": 1.0,
           "bp_rp": 0.5, "w_rp": 0.2}
    row.update(catalog)
    lc = pd.DataFrame({"id": star_id, "band": "V", "time": time, "mag": mag,
                       "err": np.full(n, noise)})
    return row, lc


def survey(*stars: tuple[dict, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    catalog = pd.DataFrame([row for row, _ in stars], columns=list(CATALOG_COLUMNS))
    lightcurves = pd.concat([lc for _, lc in stars], ignore_index=True)
    return catalog, lightcurves[list(LIGHTCURVE_COLUMNS)]


def one_per_class(n: int = 250) -> list[tuple[dict, pd.DataFrame]]:
    return [star(f"{cls.lower()}-1", cls, n=n, seed=i) for i, cls in enumerate((*CLASSES, NOVEL))]


def removed_by(result, cut: str) -> dict[str, int]:
    return {group: n for group, n in result.flow.removed[cut].items() if n}


# --- supersmoother residual ------------------------------------------------------------------

def test_supersmoother_residual_is_the_direct_computation():
    _, lc = star("s", noise=0.1, seed=3)
    t, mag, err = lc["time"].to_numpy(), lc["mag"].to_numpy(), lc["err"].to_numpy()
    model = SuperSmoother(period=0.7).fit(t, mag, err)
    direct = np.sqrt(np.mean((model.predict(t) - mag) ** 2)) / np.std(mag)
    assert supersmoother_residual(t, mag, err, 0.7) == pytest.approx(direct, rel=1e-12)
    assert 0.1 < direct < 0.5  # a clean sinusoid: small residual against its std


def test_supersmoother_residual_of_noise_is_near_one_and_failures_are_inf():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 1000, 300))
    noise = rng.normal(14, 0.1, 300)
    assert supersmoother_residual(t, noise, np.full(300, 0.1), 0.7) > 0.9
    same_time = np.zeros(10)  # the smoother raises ValueError (zero denominator)
    assert supersmoother_residual(same_time, np.arange(10.0), np.ones(10), 1.0) == math.inf
    flat = np.full(300, 14.0)  # 0 / 0: must fail the cut, not pass it as NaN
    assert supersmoother_residual(t, flat, np.full(300, 0.1), 0.7) == math.inf
    assert supersmoother_residual(t[:0], flat[:0], flat[:0], 0.7) == math.inf


# --- point cleaning (bad epochs are counted drops, never silent) ---------------------------

def _epochs(**columns) -> pd.DataFrame:
    n = len(columns["time"])
    base = {"id": ["a"] * n, "band": ["V"] * n, "mag": [12.0] * n, "err": [0.02] * n}
    return pd.DataFrame({**base, **columns})


def test_sentinel_magnitudes_are_counted_drops():
    lc = _epochs(time=[1.0, 2.0, 3.0], mag=[12.0, 99.99, 12.1], err=[0.02, 99.99, 0.02])
    clean, counts = clean_lightcurves(lc, sentinel_mag=90.0)
    assert clean["time"].tolist() == [1.0, 3.0]
    assert counts["sentinel_mag"] == 1 and sum(counts.values()) == 1


def test_nonfinite_times_mags_and_errors_are_counted_drops():
    lc = _epochs(time=[1.0, np.nan, 3.0, 4.0, 5.0, np.inf],
                 mag=[12.0, 12.0, np.nan, -np.inf, 12.0, 12.0],
                 err=[0.02, 0.02, 0.02, 0.02, np.nan, 0.02])
    clean, counts = clean_lightcurves(lc, sentinel_mag=90.0)
    assert clean["time"].tolist() == [1.0]
    assert counts == {"sentinel_mag": 0, "nonfinite_time": 2, "nonfinite_mag": 2,
                      "unphysical_mag": 0, "nonfinite_err": 1, "nonpositive_err": 0,
                      "duplicate_time": 0}


def test_a_magnitude_brighter_than_any_star_is_a_counted_drop():
    lc = star("a")[1]
    lc.loc[lc.index[:2], "mag"] = [-1e30, -3.0]
    clean, counts = clean_lightcurves(lc, 90.0)
    assert counts["unphysical_mag"] == 2 and len(clean) == len(lc) - 2


def test_zero_and_negative_errors_are_counted_drops():
    lc = _epochs(time=[1.0, 2.0, 3.0], err=[0.0, -0.01, 0.02])
    clean, counts = clean_lightcurves(lc, sentinel_mag=90.0)
    assert clean["time"].tolist() == [3.0] and counts["nonpositive_err"] == 2


def test_unsorted_times_are_sorted_and_duplicates_keep_the_first():
    lc = _epochs(time=[3.0, 1.0, 2.0, 1.0], mag=[12.3, 12.1, 12.2, 19.0])
    clean, counts = clean_lightcurves(lc, sentinel_mag=90.0)
    assert clean["time"].tolist() == [1.0, 2.0, 3.0]  # sorting is not a drop
    assert clean["mag"].tolist() == [12.1, 12.2, 12.3]  # the first stored epoch at t=1 is kept
    assert counts["duplicate_time"] == 1 and sum(counts.values()) == 1


def test_same_time_in_two_bands_is_not_a_duplicate():
    lc = pd.concat([_epochs(time=[1.0, 2.0]), _epochs(time=[2.0, 1.0]).assign(band="B")])
    clean, counts = clean_lightcurves(lc, sentinel_mag=90.0)
    assert clean[["band", "time"]].values.tolist() == [["B", 1.0], ["B", 2.0], ["V", 1.0],
                                                        ["V", 2.0]]
    assert counts["duplicate_time"] == 0


def test_non_numeric_epoch_column_is_a_clear_error():
    lc = _epochs(time=[1.0, 2.0]).assign(mag=["12.0", "bad"])
    with pytest.raises(VarnetError, match="'mag' is not numeric"):
        clean_lightcurves(lc, sentinel_mag=90.0)


# --- star cuts (one counted row per rule) -----------------------------------------------------

def test_every_default_star_passes_and_outputs_follow_the_schema():
    result = apply_cuts(*survey(*one_per_class()), CutsParams(), progress=False)
    assert list(result.catalog.columns) == [*CATALOG_COLUMNS, *CUT_COLUMNS]
    assert len(result.catalog) == 9
    assert all(n == 0 for removed in result.flow.removed.values() for n in removed.values())
    assert (result.catalog["n_epochs"] == 250).all() and (result.catalog["ss_resid"] < 0.2).all()
    assert list(result.lightcurves.columns) == list(LIGHTCURVE_COLUMNS)
    assert len(result.lightcurves) == 9 * 250 == result.flow.points_kept


def test_unknown_variable_types_are_a_counted_cut():
    result = apply_cuts(*survey(star("ok"), star("odd", None), star("odd2", None)), CutsParams(),
                        progress=False)
    assert removed_by(result, "unknown type") == {"unknown": 2}
    assert result.catalog["id"].tolist() == ["ok"]


@pytest.mark.parametrize("period, cut", [(np.nan, "period missing"), (0.0, "period invalid"),
                                         (-1.0, "period invalid"), (1e6, "period invalid"),
                                         (1e-4, "period invalid")])
def test_missing_zero_negative_and_absurd_periods_are_counted_cuts(period, cut):
    bad_period = star("bad", "RRAB")
    bad_period[0]["period"] = period
    result = apply_cuts(*survey(star("ok"), bad_period), CutsParams(), progress=False)
    assert removed_by(result, cut) == {"RRAB": 1}
    assert result.catalog["id"].tolist() == ["ok"]


def test_var_without_period_is_dropped_as_period_missing():
    no_period = star("v", NOVEL)
    no_period[0]["period"] = np.nan
    result = apply_cuts(*survey(star("ok"), no_period), CutsParams(), progress=False)
    assert removed_by(result, "period missing") == {NOVEL: 1}


def test_class_probability_cut_skips_var_stars_and_the_magnitude_cut_does_not():
    stars = [star("ok"), star("low-p", "SR", class_probability=0.89),
             star("no-p", "SR", class_probability=np.nan), star("bright", "M", mean_vmag=11.0),
             star("faint", "ROT", mean_vmag=17.5),
             star("var", NOVEL, class_probability=np.nan, mean_vmag=14.0),
             star("faint-var", NOVEL, class_probability=np.nan, mean_vmag=19.0)]
    result = apply_cuts(*survey(*stars), CutsParams(), progress=False)
    assert removed_by(result, "class prob.") == {"SR": 2}
    assert removed_by(result, "magnitude") == {"M": 1, "ROT": 1, NOVEL: 1}  # 11 < V < 17, open
    assert sorted(result.catalog["id"]) == ["ok", "var"]


def test_fewer_than_min_epochs_is_a_counted_cut_for_var_too():
    stars = [star("ok"), star("short", "ECL", n=199), star("short-var", NOVEL, n=150),
             star("no-lc", "RRAB", n=0)]
    result = apply_cuts(*survey(*stars), CutsParams(), progress=False)
    assert removed_by(result, "epochs") == {"ECL": 1, NOVEL: 1, "RRAB": 1}


def test_epochs_count_after_cleaning_on_the_most_populated_band():
    row, lc = star("s", n=260)
    lc.loc[:70, "mag"] = 99.99  # 71 flagged epochs leave 189 good V epochs
    second_band = star("s", n=120, seed=5)[1].assign(band="B")
    result = apply_cuts(*survey((row, pd.concat([lc, second_band]))), CutsParams(),
                        progress=False)
    assert removed_by(result, "epochs") == {"ECL": 1}  # 189 V + 120 B do not make 200 in a band
    assert result.flow.points_dropped["sentinel_mag"] == 71


def test_supersmoother_residual_cut_skips_var_stars():
    stars = [star("ok"), star("noisy", "ROT", amplitude=0.0, noise=0.1),
             star("noisy-var", NOVEL, amplitude=0.0, noise=0.1)]
    result = apply_cuts(*survey(*stars), CutsParams(), progress=False)
    assert removed_by(result, "ss residual") == {"ROT": 1}
    kept = result.catalog.set_index("id")["ss_resid"]
    assert kept["noisy-var"] > 0.7 and kept["ok"] < 0.2


def test_a_star_is_counted_under_the_first_cut_it_fails_only():
    bad = star("bad", "SR", class_probability=0.5, mean_vmag=20.0, n=100)
    result = apply_cuts(*survey(star("ok"), bad), CutsParams(), progress=False)
    assert {cut: sum(n.values()) for cut, n in result.flow.removed.items()} == {
        cut: int(cut == "class prob.") for cut in CUTS}


def test_every_dropped_star_is_listed_with_its_first_cut_and_rule():
    bad = star("bad", "SR", class_probability=0.5, mean_vmag=20.0, n=100)
    result = apply_cuts(*survey(star("ok"), bad, star("odd", None)), CutsParams(), progress=False)
    dropped = result.dropped.set_index("id")
    assert sorted(dropped.index) == ["bad", "odd"]
    assert dropped.loc["bad", "cut"] == "class prob." and dropped.loc["bad", "group"] == "SR"
    assert dropped.loc["bad", "rule"] == "class_probability < 0.9 (not VAR)"
    assert dropped.loc["odd", "cut"] == "unknown type" and dropped.loc["odd", "group"] == "unknown"


def test_null_disables_a_cut_but_it_stays_in_the_table():
    stars = [star("ok"), star("low-p", "SR", class_probability=np.nan, mean_vmag=np.nan)]
    cfg = from_dict(CutsParams, {"min_class_probability": None, "mag_range": None})
    result = apply_cuts(*survey(*stars), cfg, progress=False)
    assert len(result.catalog) == 2
    assert "disabled" in result.flow.rules["class prob."]
    assert "- class prob." in result.flow.table().index


def test_a_disabled_residual_cut_fits_no_supersmoother(monkeypatch):
    """Sparse surveys (EROS-1) switch the cut off; the fits would be most of the stage's time."""
    import varnet.prepare.cuts

    def no_fit(*args):
        raise AssertionError("supersmoother fitted with the cut off")

    monkeypatch.setattr(varnet.prepare.cuts, "supersmoother_residual", no_fit)
    noisy = star("noisy", "ROT", amplitude=0.0, noise=0.1)
    result = apply_cuts(*survey(star("ok"), noisy), from_dict(CutsParams, {"max_ss_resid": None}),
                        progress=False)
    assert len(result.catalog) == 2 and result.catalog["ss_resid"].isna().all()


def test_epochs_of_ids_missing_from_the_catalog_are_counted():
    catalog, lightcurves = survey(star("ok"))
    stray = star("stray", n=30)[1]
    result = apply_cuts(catalog, pd.concat([lightcurves, stray]), CutsParams(), progress=False)
    assert result.flow.points_dropped["unknown_star"] == 30
    assert set(result.lightcurves["id"]) == {"ok"}


def test_bad_cut_params_are_rejected_with_the_key():
    with pytest.raises(VarnetError, match="mag_range"):
        from_dict(CutsParams, {"mag_range": [17, 11]}, where="cuts")
    with pytest.raises(VarnetError, match="sentinel_mag"):
        from_dict(CutsParams, {"sentinel_mag": None}, where="cuts")


# --- cut-flow table ---------------------------------------------------------------------------

def test_cut_flow_table_adds_up_per_class():
    stars = [*one_per_class(), star("low-p", "SR", class_probability=0.2),
             star("short", NOVEL, n=50), star("odd", None)]
    result = apply_cuts(*survey(*stars), CutsParams(), progress=False)
    table = result.flow.table()
    assert list(table.columns) == [*GROUPS, "total"]
    assert table.loc["stars in", "total"] == 12 and table.loc["stars kept", "total"] == 9
    removed = table.drop(index=["stars in", "stars kept"]).sum()
    assert (table.loc["stars in"] - removed == table.loc["stars kept"]).all()
    tidy = result.flow.tidy()
    assert list(tidy.columns) == ["cut", "class", "removed"] and tidy["removed"].sum() == 3
    metrics = result.flow.metrics()
    assert metrics["stars_in"] == 12 and metrics["kept"]["SR"] == 1
    markdown = result.flow.to_markdown()
    assert "| stars kept |" in markdown and "class_probability < 0.9" in markdown
