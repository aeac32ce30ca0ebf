"""The embedded synthetic survey: deterministic, schema-exact, realistic enough to meet the cuts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import survey_compare as compare
from varnet.core import schema, taxonomy
from varnet.core.config import SyntheticParams
from varnet.surveys.synthetic import SENTINEL_MAG, class_counts, noise_sigma, simulate_survey


@pytest.fixture(scope="module")
def survey() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_survey(SyntheticParams(seed=3, n_stars=200))


@pytest.fixture(scope="module")
def good_epochs(survey) -> pd.DataFrame:
    _, lightcurves = survey
    return lightcurves[lightcurves["mag"] < SENTINEL_MAG]


def test_same_seed_same_frames_other_seed_other_frames():
    first = simulate_survey(SyntheticParams(seed=5, n_stars=30))
    again = simulate_survey(SyntheticParams(seed=5, n_stars=30))
    other = simulate_survey(SyntheticParams(seed=6, n_stars=30))
    for frame, same in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(frame, same)
    assert not first[0]["period"].equals(other[0]["period"])
    assert len(first[1]) != len(other[1]) or not first[1]["mag"].equals(other[1]["mag"])


def test_schema_columns_and_dtypes(survey):
    catalog, lightcurves = survey
    assert list(catalog.columns) == list(schema.CATALOG_COLUMNS)
    assert list(lightcurves.columns) == list(schema.LIGHTCURVE_COLUMNS)
    for column in ("id", "variable_type", "superclass"):
        assert catalog[column].dtype == "str"
    for column in ("ra", "dec", "mean_vmag", "amplitude", "period", "class_probability",
                   "phot_g_abs", "bp_rp", "w_rp"):
        assert catalog[column].dtype == np.float64, column
    assert lightcurves["id"].dtype == "str" and set(lightcurves["band"]) == {"V"}
    for column in ("time", "mag", "err"):
        assert lightcurves[column].dtype == np.float64
    assert catalog["id"].is_unique and catalog["id"].str.fullmatch(r"SYN\d{6}").all()
    assert set(lightcurves["id"]) == set(catalog["id"])
    assert catalog["ra"].between(0, 360).all() and catalog["dec"].between(-90, 90).all()


def test_every_class_and_var_present_with_consistent_labels(survey):
    catalog, _ = survey
    assert set(catalog["superclass"]) == set(taxonomy.CLASSES) | {taxonomy.NOVEL}
    assert (catalog["variable_type"].map(taxonomy.superclass_of) == catalog["superclass"]).all()
    var = catalog["superclass"] == taxonomy.NOVEL
    assert (catalog.loc[var, "variable_type"] == "VAR").all()
    assert catalog.loc[var, "class_probability"].isna().all()
    known_probability = catalog.loc[~var, "class_probability"]
    assert known_probability.between(0.2, 1.0).all()
    assert 0.7 < (known_probability >= 0.9).mean() < 0.97  # a real tail for the cut to remove
    assert catalog["period"].gt(0).all() and np.isfinite(catalog["period"]).all()


def test_class_counts_follow_table1_with_floor():
    counts = class_counts(SyntheticParams())
    assert sum(counts.values()) == 2400 and counts[taxonomy.NOVEL] == 240
    assert min(counts[c] for c in taxonomy.CLASSES) >= 60
    assert max(counts, key=counts.get) == "ECL" and counts["SR"] > counts["RRCD"]
    small = class_counts(SyntheticParams(n_stars=100))
    assert sum(small.values()) == 100 and min(small.values()) >= 10


def test_config_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="n_stars"):
        SyntheticParams(n_stars=5)
    with pytest.raises(ValueError, match="var_fraction"):
        SyntheticParams(var_fraction=1.0)


def test_seasonal_cadence_and_epoch_counts(good_epochs):
    n = good_epochs.groupby("id").size()
    assert 300 <= n.median() <= 500
    assert (n < 200).any() and n.max() <= 1500  # the epoch cut has something to remove
    per_star = good_epochs.groupby("id")["time"]
    baseline_years = per_star.apply(np.ptp) / 365.25
    assert baseline_years.between(3.5, 6.1).all()
    longest_gap = per_star.apply(lambda t: np.diff(np.sort(t.to_numpy())).max())
    assert (longest_gap > 60).mean() > 0.9  # seasons: the star is behind the Sun each year


def test_errors_grow_with_magnitude(good_epochs):
    bins = pd.cut(good_epochs["mag"], [11, 12.5, 14, 15, 16, 17])
    median_err = good_epochs.groupby(bins, observed=True)["err"].median()
    assert median_err.is_monotonic_increasing
    assert 0.012 < median_err.iloc[0] < 0.035 and 0.1 < median_err.iloc[-1] < 0.3
    assert noise_sigma(12.0) == pytest.approx(0.02, abs=0.005)
    assert noise_sigma(16.5) == pytest.approx(0.15, abs=0.02)


def test_raw_photometry_has_sentinels_outliers_and_duplicates(survey):
    _, lightcurves = survey
    flagged = lightcurves["mag"] == SENTINEL_MAG
    assert flagged.any() and (lightcurves.loc[flagged, "err"] == SENTINEL_MAG).all()
    assert flagged.mean() < 0.05
    assert lightcurves.duplicated(["id", "time"]).any()
    assert (lightcurves.loc[~flagged, "err"] > 0).all()


def test_mean_magnitudes_straddle_the_paper_range(survey):
    catalog, _ = survey
    vmag = catalog["mean_vmag"]
    assert vmag.between(9.0, 18.5).all()
    assert (vmag < 11).any() and 0.6 < vmag.between(11, 17).mean() < 0.98


def test_gaia_photometry_plausible_per_class_with_gaps(survey):
    catalog, _ = survey
    missing = catalog[["phot_g_abs", "bp_rp", "w_rp"]].isna().any(axis=1).mean()
    assert 0.0 < missing < 0.15
    median = catalog.groupby("superclass")[["phot_g_abs", "bp_rp"]].median()
    assert median.loc["M", "bp_rp"] > 2.5 and median.loc["M", "phot_g_abs"] < 1.0
    assert 0.2 < median.loc["RRAB", "phot_g_abs"] < 1.3
    assert median.loc["CEPH", "phot_g_abs"] < -1.0
    assert median.loc["DSCT", "bp_rp"] < 0.8 < median.loc["SR", "bp_rp"]


def test_per_class_periods_and_amplitudes(survey):
    catalog, _ = survey

    def of_type(name: str) -> pd.DataFrame:
        return catalog[catalog["variable_type"] == name]

    # ~1% label noise may put a confusable star in a class, hence "nearly all"
    assert of_type("RRAB")["period"].between(0.44, 0.91).mean() > 0.95
    assert of_type("M")["amplitude"].gt(2.0).mean() > 0.95
    assert of_type("M")["period"].between(100, 600).all()
    assert catalog.loc[catalog["superclass"] == "DSCT", "period"].lt(0.26).all()
    assert of_type("EW")["period"].between(0.2, 0.85).all()
    assert of_type("RRC")["period"].between(0.2, 0.46).all()
    var = catalog[catalog["superclass"] == taxonomy.NOVEL]
    assert var["period"].between(0.2, 1200).all()  # highest Lomb-Scargle peak


def test_compare_writes_figures_and_doc_without_real_data(tmp_path, capsys):
    doc = tmp_path / "survey.md"
    doc.write_text("# Hand-written intro\n\nkept\n")
    code = compare.main(["--n-stars", "120", "--data-dir", str(tmp_path / "absent"),
                         "--figures", str(tmp_path / "fig"), "--doc", str(doc)])
    assert code == 0
    assert (tmp_path / "fig" / "synthetic_examples.png").stat().st_size > 10_000
    assert (tmp_path / "fig" / "period_amplitude.png").stat().st_size > 10_000
    assert "not found" in capsys.readouterr().out
    text = doc.read_text()
    assert text.startswith("# Hand-written intro\n\nkept\n")
    assert compare.BEGIN in text and "Real data were not found" in text
    table = compare.summary_table(compare.simulator_values(simulate_survey(
        SyntheticParams(n_stars=60))[0]))
    compare.write_findings(doc, table, SyntheticParams(n_stars=60), None)
    rewritten = doc.read_text()  # rerunning replaces the block, keeps the prose
    assert rewritten.count(compare.BEGIN) == 1 and "n_stars=60" in rewritten
    assert rewritten.startswith("# Hand-written intro\n\nkept\n")


def test_reference_sets_load_by_class(shared_data):
    values = compare.load_reference(shared_data)
    groups = values.groupby(["source", "superclass"]).size()
    assert groups[("SDSS S82", "RRAB")] == 379 and groups[("SDSS S82", "RRCD")] == 104
    assert groups[("EROS-1 LMC", compare.RR_BOTH)] == 2231
    assert groups[("Gaia DR3", "CEPH")] == 265
    s82 = values[values["source"] == "SDSS S82"]
    assert s82["amplitude"].notna().all()
    assert s82.groupby("superclass")["amplitude"].median()["RRAB"] > 0.5
    table = compare.summary_table(pd.concat([compare.simulator_values(
        simulate_survey(SyntheticParams(seed=0, n_stars=200))[0]), values]))
    rrab = table[(table["superclass"] == "RRAB") & (table["source"] == "SDSS S82")]
    assert abs(rrab["dlogP_sim_minus_real"].item()) < 0.1
