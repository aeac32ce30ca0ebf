"""Sequences: chunking, folding, lags, normalisation and weights, and the counted drops."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from varnet import cli
from varnet.core import files, schema, taxonomy
from varnet.core.errors import VarnetError
from varnet.prepare.sequences import build_sequences

N = 8


def catalog_of(*stars: tuple[str, float, str | None]) -> pd.DataFrame:
    ids, periods, classes = zip(*stars, strict=True)
    return pd.DataFrame({"id": ids, "period": periods, "superclass": classes,
                         "phot_g_abs": 1.5, "bp_rp": 0.7, "w_rp": np.nan})


def light_curve(star: str, n_points: int, band: str = "V", seed: int = 0,
                mean_mag: float = 13.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": star, "band": band,
        "time": 2_458_000 + np.sort(rng.uniform(0, 300, n_points)),
        "mag": mean_mag + rng.normal(0, 0.3, n_points),
        "err": rng.uniform(0.01, 0.05, n_points),
    })


def expected_sequence(chunk: pd.DataFrame, period: float) -> dict[str, np.ndarray]:
    """The method, written out point by point for one chunk (docs/method.md §1)."""
    phase = [t % period for t in chunk["time"]]
    order = sorted(range(len(phase)), key=lambda i: phase[i])
    phase = [phase[i] for i in order]
    mag = chunk["mag"].to_numpy()[order]
    err = chunk["err"].to_numpy()[order]
    lags = [phase[j + 1] - phase[j] for j in range(len(phase) - 1)] + [0.0]
    mean = sum(mag) / len(mag)
    std = (sum((m - mean) ** 2 for m in mag) / len(mag)) ** 0.5
    return {"lag": np.array(lags), "mag": (mag - mean) / std, "weight": std / err,
            "aux": np.array([mean, std, np.log10(period)])}


def test_fold_lags_normalisation_and_weights_match_a_direct_computation():
    period = 0.37
    lc = light_curve("a", 2 * N)
    arrays = build_sequences(catalog_of(("a", period, "RRAB")), lc, N)[0]
    assert arrays["X"].shape == (2, N, 2)
    for i in range(2):
        want = expected_sequence(lc.iloc[i * N:(i + 1) * N], period)
        np.testing.assert_allclose(arrays["X"][i, :, 0], want["lag"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(arrays["X"][i, :, 1], want["mag"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(arrays["weight"][i], want["weight"], rtol=1e-6)
        np.testing.assert_allclose(arrays["aux"][i], want["aux"], rtol=1e-6)
    assert (arrays["X"][:, :-1, 0] >= 0).all() and (arrays["X"][:, -1, 0] == 0).all()
    np.testing.assert_allclose(arrays["X"][:, :, 1].mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(arrays["X"][:, :, 1].std(axis=1), 1, rtol=1e-5)
    assert arrays["label"].tolist() == [taxonomy.CLASSES.index("RRAB")] * 2
    assert arrays["star_id"].tolist() == ["a", "a"] and arrays["band"].tolist() == ["V", "V"]
    assert arrays["period"].tolist() == [period, period]
    np.testing.assert_allclose(arrays["phot"], [[1.5, 0.7, np.nan]] * 2, rtol=1e-6)
    assert arrays["classes"].tolist() == list(taxonomy.CLASSES)
    assert {k: v.dtype.kind for k, v in arrays.items()} == {
        "X": "f", "weight": "f", "aux": "f", "phot": "f", "label": "i", "star_id": "U",
        "band": "U", "period": "f", "classes": "U"}
    assert set(arrays) == set(schema.SEQUENCE_ARRAYS)


def test_remainder_is_dropped_and_counted():
    lc = light_curve("a", 2 * N + 3)
    arrays, drops = build_sequences(catalog_of(("a", 1.0, "ECL")), lc, N)
    assert arrays["X"].shape[0] == 2
    assert drops["remainder_points"] == 3
    # the first chunk is the first N points in time, the remainder is the last 3
    want = expected_sequence(lc.iloc[:N], 1.0)
    np.testing.assert_allclose(arrays["aux"][0], want["aux"], rtol=1e-6)


def test_each_band_is_chunked_on_its_own():
    v = light_curve("a", N + 1, band="V", seed=1, mean_mag=13.0)
    g = light_curve("a", 2 * N, band="g", seed=2, mean_mag=15.0)
    interleaved = pd.concat([v, g]).sort_values("time", kind="stable")
    catalog = catalog_of(("a", 2.5, "SR"))
    arrays, drops = build_sequences(catalog, interleaved, N)
    assert arrays["band"].tolist() == ["V", "g", "g"]
    np.testing.assert_allclose(arrays["aux"][:, 0], [v["mag"][:N].mean(), g["mag"][:N].mean(),
                                                     g["mag"][N:].mean()], rtol=1e-6)
    assert drops["remainder_points"] == 1
    only_g, drops = build_sequences(catalog, interleaved, N, bands=["g"])
    assert only_g["band"].tolist() == ["g", "g"] and drops["points_other_bands"] == N + 1


def test_stars_with_fewer_than_n_epochs_are_counted_not_errors():
    catalog = catalog_of(("short", 1.0, "ECL"), ("none", 1.0, "ECL"), ("ok", 1.0, "M"),
                         ("noperiod", np.nan, "VAR"))
    lc = pd.concat([light_curve("short", N - 1), light_curve("short", N - 1, band="g"),
                    light_curve("ok", N), light_curve("noperiod", N),
                    light_curve("stranger", N)])
    arrays, drops = build_sequences(catalog, lc, N)
    assert arrays["star_id"].tolist() == ["ok"]
    assert drops["stars_too_few_epochs"] == 2  # "short" (both bands) and "none" (no epochs)
    assert drops["short_lightcurves"] == 2
    assert drops["stars_without_period"] == 1
    assert drops["stars_not_in_catalog"] == 1


def test_chunks_that_cannot_be_normalised_are_dropped_and_counted():
    flat = light_curve("flat", N).assign(mag=13.1)  # mean(13.1 x N) != 13.1 by one ulp
    zero_err = light_curve("zero_err", N)
    zero_err.loc[3, "err"] = 0.0
    nan_mag = light_curve("nan_mag", N)
    nan_mag.loc[2, "mag"] = np.nan
    catalog = catalog_of(("flat", 1.0, "ECL"), ("zero_err", 1.0, "ECL"), ("nan_mag", 1.0, "ECL"),
                         ("good", 1.0, "ECL"))
    lc = pd.concat([flat, zero_err, nan_mag, light_curve("good", N)])
    arrays, drops = build_sequences(catalog, lc, N)
    assert arrays["star_id"].tolist() == ["good"]
    assert drops["sequences_constant_mag"] == 1
    assert drops["sequences_bad_error"] == 1
    assert drops["sequences_non_finite"] == 1
    assert np.isfinite(arrays["X"]).all() and np.isfinite(arrays["weight"]).all()


def test_input_order_does_not_matter_and_equal_phases_keep_time_order():
    period = 0.5
    lc = light_curve("a", N)
    lc["time"] = 2_458_000 + np.arange(N) * period  # every point folds to phase 0
    shuffled = lc.sample(frac=1.0, random_state=1)
    catalog = catalog_of(("a", period, "DSCT"))
    arrays = build_sequences(catalog, shuffled, N)[0]
    mag = lc["mag"].to_numpy()
    np.testing.assert_allclose(arrays["X"][0, :, 1], (mag - mag.mean()) / mag.std(), rtol=1e-5)
    assert (arrays["X"][0, :, 0] == 0).all()


def test_labels_var_unlabeled_and_unknown_classes():
    catalog = catalog_of(("a", 1.0, "VAR"), ("b", 1.0, None), ("c", 1.0, "CEPH"))
    lc = pd.concat([light_curve(s, N) for s in "abc"])
    assert build_sequences(catalog, lc, N)[0]["label"].tolist() == [-1, -1, 0]
    bare = catalog[["id", "period"]]  # a scoring-time catalog: no labels, no photometry
    arrays = build_sequences(bare, lc, N)[0]
    assert arrays["label"].tolist() == [-1, -1, -1] and np.isnan(arrays["phot"]).all()
    with pytest.raises(VarnetError, match="superclass"):
        build_sequences(catalog.assign(superclass="EW"), lc, N)[0]
    with pytest.raises(VarnetError, match="more than once"):
        build_sequences(pd.concat([catalog, catalog]), lc, N)[0]


def test_storage_round_trips_without_pickle(tmp_path):
    catalog = catalog_of(("star-1", 0.3, "RRCD"), ("star-22", 30.0, "VAR"))
    lc = pd.concat([light_curve("star-1", 3 * N), light_curve("star-22", N, band="g")])
    arrays = build_sequences(catalog, lc, N)[0]
    path = tmp_path / "sequences.npz"
    files.write_npz(path, **arrays)
    with np.load(path, allow_pickle=False) as loaded:
        assert set(loaded.files) == set(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)
            assert loaded[name].dtype == array.dtype


def write_interim(root, catalog: pd.DataFrame, lc: pd.DataFrame) -> None:
    files.write_parquet(catalog, root / schema.INTERIM_CATALOG)
    files.write_parquet(lc, root / schema.INTERIM_LIGHTCURVES)
    (root / "params.yaml").write_text(yaml.safe_dump({"sequences": {"length": N}}))


def test_command_writes_sequences_and_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    catalog = catalog_of(("a", 0.3, "ECL"), ("b", 40.0, "VAR"), ("c", 1.0, "ECL"))
    write_interim(tmp_path, catalog,
                  pd.concat([light_curve("a", 2 * N), light_curve("b", N), light_curve("c", 3)]))
    assert cli.main(["sequences"]) == 0
    out = capsys.readouterr().out
    assert "1 stars with fewer than 8 points in every band" in out
    arrays = files.read_npz(schema.SEQUENCES_FILE)
    assert arrays["label"].tolist() == [2, 2, -1]
    report = json.loads((schema.REPORTS_DIR / "sequences.json").read_text())
    assert report["per_class"]["ECL"] == {"stars_in": 2, "stars_kept": 1, "sequences": 2}
    assert report["per_class"]["VAR"]["sequences"] == 1
    assert report["drops"]["stars_too_few_epochs"] == 1


def test_command_without_any_sequence_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_interim(tmp_path, catalog_of(("a", 0.3, "ECL")), light_curve("a", N - 1))
    assert cli.main(["sequences"]) == 2
    err = capsys.readouterr().err
    assert "no sequences of 8 points" in err and "Traceback" not in err
    assert not schema.SEQUENCES_FILE.exists()
