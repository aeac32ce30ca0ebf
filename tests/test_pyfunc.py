"""The pyfunc model: light curves -> class/probabilities/energy/flags, errors, MLflow round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tiny_project

from varnet.core.errors import VarnetError
from varnet.core.taxonomy import CLASSES
from varnet.prepare.split import split_indices
from varnet.scoring import calibration, lightcurves, pyfunc
from varnet.scoring.calibration import Calibration, LevelCalibration

LENGTH = 20


class FakeScorer:
    """Deterministic stand-in for varnet.scoring.inference.Scorer: outputs are functions of aux."""

    thresholds = {"sequence": {"80": 13.5, "95": 14.5}, "star": {"80": 13.4, "95": 14.4}}
    classes = CLASSES

    def __init__(self):
        self.calls = []
        energy = np.linspace(12.0, 15.0, 19)
        cal = LevelCalibration(energy, energy[:, None] + np.arange(len(CLASSES)),
                               np.arange(19) % len(CLASSES), temperature=2.0)
        self.calibration = Calibration({"sequence": cal, "star": cal})

    def predict(self, X, aux, phot=None, batch_size=500):
        self.calls.append((X.shape, phot))
        logits = np.outer(aux[:, 0], np.arange(len(CLASSES)) % 3) / 10.0
        gamma = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        energy = aux[:, 0].astype(np.float64)
        class_energy = energy[:, None] + np.arange(len(CLASSES))
        return {"gamma": gamma, "energy": energy, "class_energy": class_energy,
                "embedding": np.zeros((len(X), 2)), "features": np.zeros((len(X), 7))}


def star(star_id: str, n: int, period: float | None, mean: float, seed: int,
         band: str = "V") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = np.sort(rng.uniform(0, 300, n))
    p = period if period is not None else 2.37
    mag = mean + 0.3 * np.sin(2 * np.pi * time / p) + rng.normal(0, 0.02, n)
    frame = pd.DataFrame({"id": star_id, "time": time, "mag": mag, "err": 0.02, "band": band})
    return frame.assign(period=np.nan if period is None else period)


@pytest.fixture()
def prep():
    return lightcurves.Preprocessing(length=LENGTH)


def test_stars_are_scored_in_input_order_with_per_star_means(prep):
    lc = pd.concat([star("b", 2 * LENGTH + 5, 0.7, 14.0, 1), star("a", LENGTH, 3.1, 15.0, 2)])
    scorer = FakeScorer()
    out = lightcurves.score_lightcurves(scorer, prep, lc)
    assert out["id"].tolist() == ["b", "a"]
    assert out["n_sequences"].tolist() == [2, 1]
    assert out["period_source"].tolist() == ["catalog", "catalog"]
    assert out["period"].tolist() == [0.7, 3.1]
    probs = out[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (out["class"] == np.asarray(CLASSES)[probs.argmax(axis=1)]).all()
    # the paper's flags: energy >= the model's star-level thresholds
    assert (out["novel_p80"] == (out["energy"] >= 13.4)).all()
    assert (out["novel_p95"] == (out["energy"] >= 14.4)).all()
    assert out["note"].isna().all()
    # calibrated probabilities: temperature 2 on the mean γ, same class; the raw γ beside them
    gamma = out[[f"gamma_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs, calibration.scale(gamma, 2.0))
    assert (probs.max(axis=1) < gamma.max(axis=1)).all()
    # p_novel counts the 19 validation energies at or above the star's energy
    cal = scorer.calibration["star"].energy
    want = [(1 + np.sum(cal >= e)) / 20 for e in out["energy"]]
    np.testing.assert_allclose(out["p_novel"], want)
    assert (out["novel"] == (out["p_novel"] <= 0.05)).all()
    strict = lightcurves.score_lightcurves(scorer, prep, lc, alpha=0.5)
    assert (strict["novel"] == (out["p_novel"] <= 0.5)).all()
    with pytest.raises(lightcurves.InputError, match="alpha"):
        lightcurves.score_lightcurves(scorer, prep, lc, alpha=1.5)

    sequences = lightcurves.score_lightcurves(scorer, prep, lc, level="sequence")
    assert sequences["id"].tolist() == ["b", "b", "a"]
    assert sequences["sequence"].tolist() == [0, 1, 0]
    b = sequences[sequences["id"] == "b"]
    assert out.loc[0, "energy"] == pytest.approx(b["energy"].mean())
    np.testing.assert_allclose(out.loc[0, "energy_ECL"], b["energy_ECL"].mean())


def test_bad_points_are_dropped_and_short_stars_get_a_note_not_an_exception(prep):
    good = star("good", LENGTH + 3, 0.9, 13.0, 3)
    good.loc[good.index[:3], "mag"] = [np.nan, 99.99, 13.0]   # NaN and a flag: dropped
    good.loc[good.index[2], "err"] = 0.0                       # non-positive error: dropped
    short = star("short", LENGTH - 1, 1.5, 13.0, 4)
    out = lightcurves.score_lightcurves(FakeScorer(), prep, pd.concat([short, good]))
    assert out["id"].tolist() == ["short", "good"]
    assert out["n_points"].tolist() == [LENGTH - 1, LENGTH]
    failed = out.iloc[0]
    assert "fewer than 20 good points" in failed["note"]
    assert pd.isna(failed["class"]) and np.isnan(failed["energy"])
    assert failed["n_sequences"] == 0 and not failed["novel_p95"]
    assert out.iloc[1]["n_sequences"] == 1 and pd.isna(out.iloc[1]["note"])

    sequences = lightcurves.score_lightcurves(FakeScorer(), prep, pd.concat([short, good]),
                                         level="sequence")
    assert sequences["sequence"].tolist() == [-1, 0]


def test_a_constant_star_is_noted_as_constant_not_as_too_short(prep):
    flat = star("flat", 2 * LENGTH, 0.9, 13.0, 7).assign(mag=13.0)
    out = lightcurves.score_lightcurves(FakeScorer(), prep, flat)
    assert out.loc[0, "note"] == f"constant magnitude ({2 * LENGTH} good points): nothing to " \
                                 "standardise"


def test_missing_periods_come_from_lomb_scargle(prep):
    lc = pd.concat([star("noperiod", 3 * LENGTH, None, 13.0, 5),
                    star("short", 5, None, 13.0, 6)]).drop(columns="period")
    out = lightcurves.score_lightcurves(FakeScorer(), prep, lc)
    assert out.loc[0, "period_source"] == "lomb-scargle"
    assert out.loc[0, "period"] == pytest.approx(2.37, rel=1e-2)
    assert pd.isna(out.loc[1, "period_source"]) and np.isnan(out.loc[1, "period"])
    assert "fewer than" in out.loc[1, "note"]


@pytest.mark.parametrize("period", [0.071, 0.55, 14.2, 310.0])
def test_lomb_scargle_recovers_periods_from_minutes_to_years(period):
    from varnet.prepare.periods import lomb_scargle_period

    rng = np.random.default_rng(1)
    time = np.sort(rng.uniform(0, 1500, 300))
    mag = 13 + 0.4 * np.sin(2 * np.pi * time / period) + rng.normal(0, 0.05, time.size)
    resolution = period / 1500 / 5          # a fifth of the peak width P^2/T, relative
    assert lomb_scargle_period(time, mag, np.full(time.size, 0.05)) == pytest.approx(
        period, rel=max(2e-3, resolution))


def test_lomb_scargle_refuses_light_curves_without_a_period():
    from varnet.prepare.periods import lomb_scargle_period

    t = np.arange(50.0)
    with pytest.raises(VarnetError, match="constant"):
        lomb_scargle_period(t, np.full(50, 13.0), np.full(50, 0.1))
    with pytest.raises(VarnetError, match="from 3 points"):
        lomb_scargle_period(t[:3], t[:3], np.ones(3))


def test_conflicting_periods_and_absurd_periods_are_noted(prep):
    conflicting = star("c", LENGTH, 0.5, 13.0, 6)
    conflicting.loc[conflicting.index[0], "period"] = 0.6
    absurd = star("x", LENGTH, 5000.0, 13.0, 7)
    out = lightcurves.score_lightcurves(FakeScorer(), prep, pd.concat([conflicting, absurd]))
    assert "conflicting period" in out.loc[0, "note"]
    assert "outside the trained range" in out.loc[1, "note"]
    assert (out["n_sequences"] == 0).all()


def test_per_star_photometry_reaches_the_scorer_with_nan_for_missing(prep):
    lc = star("p", LENGTH, 0.5, 13.0, 8).assign(phot_g_abs=1.0, bp_rp=0.5, w_rp=np.nan)
    scorer = FakeScorer()
    lightcurves.score_lightcurves(scorer, prep, lc)
    np.testing.assert_array_equal(scorer.calls[0][1], [[1.0, 0.5, np.nan]])


@pytest.mark.parametrize(("frame", "params", "message"), [
    (pd.DataFrame(columns=["id", "time", "mag", "err"]), "star", "empty input"),
    (pd.DataFrame({"id": ["a"], "time": [1.0], "mag": [13.0]}), "star", r"missing column.*err"),
    (pd.DataFrame({"id": ["a"], "time": ["x"], "mag": [1.0], "err": [0.1]}), "star",
     "column 'time' holds 'x' at data row 1, not a number"),
    (pd.DataFrame({"id": [None], "time": [1.0], "mag": [1.0], "err": [0.1]}), "star",
     "without an id"),
    (pd.DataFrame({"id": ["a"], "time": [1.0], "mag": [1.0], "err": [0.1]}), "galaxy",
     "level must be one of"),
])
def test_malformed_requests_raise_a_clear_input_error(prep, frame, params, message):
    with pytest.raises(lightcurves.InputError, match=message) as info:
        lightcurves.score_lightcurves(FakeScorer(), prep, frame, level=params)
    assert isinstance(info.value, VarnetError)          # clean CLI message
    assert info.value.get_http_status_code() == 400     # HTTP 400 when served


def test_signature_and_input_example_agree(prep):
    sig = pyfunc.signature(list(FakeScorer.thresholds["star"]))
    example = pyfunc.input_example(prep)
    assert sig.inputs is None  # score_lightcurves types the input itself (one rule, CLI = HTTP)
    assert {"id", "time", "mag", "err"} <= set(example.columns)
    assert [p["name"] for p in sig.params.to_dict()] == ["level", "alpha"]
    out = lightcurves.score_lightcurves(FakeScorer(), prep, example)
    assert list(out.columns) == [c for c in sig.outputs.input_names() if c != "sequence"]


# ---------------------------------------------------------------- the real model, round trip

def _survey(rng: np.random.Generator, length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three stars per class and two VAR stars, two sequences each, separable by period."""
    catalog, curves = [], []
    labels = [c for c in CLASSES for _ in range(3)] + ["VAR", "VAR"]
    for i, label in enumerate(labels):
        k = CLASSES.index(label) if label in CLASSES else 9
        period = 0.3 * 1.6 ** k
        catalog.append({"id": f"star{i:02d}", "period": period, "superclass": label})
        curve = star(f"star{i:02d}", 2 * length, period, 12.0 + 0.2 * k, seed=i)
        curves.append(curve.drop(columns="period"))
    return pd.DataFrame(catalog), pd.concat(curves, ignore_index=True)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A tiny joint model trained for one epoch and registered as `varnet` version 1."""
    from varnet.core import files, schema
    from varnet.prepare.sequences import build_sequences
    from varnet.training.train import train_variant

    root = tmp_path_factory.mktemp("pyfunc")
    with tiny_project.inside(root):
        catalog, curves = _survey(np.random.default_rng(0), LENGTH)
        arrays = build_sequences(catalog, curves, LENGTH)[0]
        files.write_npz(schema.SEQUENCES_FILE, **arrays)
        files.write_npz(schema.SPLIT_FILE, **split_indices(arrays["label"], arrays["star_id"],
                                                           n_splits=3))
        params = {
            "model": {"embedding": 3, "gru_units": 4, "gru_layers": 1},
            "train": {"epochs": 1, "estimation_epochs": 1, "batch_size": 32,
                      "variants": {"joint": {"mode": "joint", "photometric": False}}},
            "sequences": {"length": LENGTH},
            "mlflow": {"experiment": "test-pyfunc", "registered_model": "varnet"},
        }
        result = train_variant("joint", params, root / "models" / "joint")
        yield root, params, result, curves


def test_registered_model_predicts_exactly_what_the_in_process_scorer_does(registered):
    import mlflow

    from varnet.scoring.inference import Scorer

    root, params, result, curves = registered
    assert result["version"] == "1"
    model_dir = root / "models" / "joint"
    scorer, prep = Scorer.load(model_dir), lightcurves.preprocessing_for(model_dir)
    # raw light curves: catalog periods for some stars, Lomb-Scargle for one, one too short
    lc = curves[curves["id"].isin(["star00", "star07", "star13", "star24"])].copy()
    lc["period"] = lc["id"].map({"star00": 0.3, "star07": 0.3 * 1.6 ** 2, "star24": 0.3 * 1.6 ** 9})
    lc = pd.concat([lc, star("tiny", 5, 1.0, 13.0, seed=99)], ignore_index=True)

    loaded = mlflow.pyfunc.load_model("models:/varnet/1")
    for level in ("star", "sequence"):
        expected = lightcurves.score_lightcurves(scorer, prep, lc, level)
        got = loaded.predict(lc, params={"level": level})
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    stars = loaded.predict(lc)
    assert stars["id"].tolist() == ["star00", "star07", "star13", "star24", "tiny"]
    assert stars["period_source"].tolist()[2] == "lomb-scargle"
    assert stars["n_sequences"].tolist() == [2, 2, 2, 2, 0]
    assert stars["class"].notna().sum() == 4 and "fewer than" in stars["note"].iloc[4]

    info = mlflow.models.get_model_info("models:/varnet/1")
    assert info.signature.params.to_dict()[0]["name"] == "level"
    assert info.signature.inputs is None
    # item 2 of issue 12: integer times are safe to convert, over the pyfunc as over HTTP
    integer_times = lc.assign(time=lc["time"].round().astype(np.int64)).drop_duplicates(
        ["id", "time"])
    pd.testing.assert_frame_equal(loaded.predict(integer_times),
                                  lightcurves.score_lightcurves(
                                      scorer, prep, integer_times.assign(
                                          time=integer_times["time"].astype(float))))
    with pytest.raises(mlflow.exceptions.MlflowException, match="mag"):
        loaded.predict(lc.drop(columns="mag"))


def test_each_logged_run_registers_a_new_version(registered):
    import mlflow

    from varnet.core import tracking

    root, params, _, _ = registered
    tracking.configure(params)
    with mlflow.start_run():
        version = pyfunc.log_model(root / "models" / "joint", "varnet")
    assert version.version == "2" or int(version.version) == 2
    assert mlflow.MlflowClient().get_registered_model("varnet").name == "varnet"


# ---------------------------------------------------------------- issue 12: types and bands

@pytest.mark.parametrize(("column", "values", "message"), [
    ("time", lambda t: (100 * t).astype(np.int64), None),             # safe: ints -> float
    ("mag", lambda m: m.astype(str), None),                           # numbers written as text
    ("mag", lambda m: m.astype(object).where(m.index != 3, "13.2:"),
     r"column 'mag' holds '13.2:' at data row 4, not a number \(1 such value"),
    ("err", lambda e: e > 0, r"column 'err' holds booleans \(dtype bool\), not numbers"),
    ("time", lambda t: pd.to_datetime(t, unit="D", origin="2020-01-01"),
     r"column 'time' holds dates or durations \(dtype datetime64.*give times as numbers of days"),
    ("time", lambda t: pd.to_datetime(t, unit="D", origin="2020-01-01").astype(str),
     r"column 'time' holds '2020-.*' at data row 1, not a number .*numbers of days"),
    ("err", lambda e: e.astype(object).where(e.index != 2, True),
     r"column 'err' holds a boolean \(True at data row 3\)"),
    ("id", lambda i: np.arange(len(i)) * 0.5, r"column 'id' holds float64 values"),
])
def test_typed_columns_are_converted_when_safe_and_named_when_not(prep, column, values,
                                                                  message):
    lc = star("s", LENGTH, 0.9, 13.0, 11)
    lc[column] = values(lc[column])
    if message is None:
        out = lightcurves.score_lightcurves(FakeScorer(), prep, lc)
        assert out["n_sequences"].tolist() == [1]
        return
    with pytest.raises(lightcurves.InputError, match=message) as info:
        lightcurves.score_lightcurves(FakeScorer(), prep, lc)
    assert info.value.get_http_status_code() == 400
    assert "\n" not in str(info.value.message)          # one line, nothing cut off


def test_integer_ids_are_star_names(prep):
    lc = pd.concat([star(7, LENGTH, 0.9, 13.0, 1), star(12, LENGTH, 1.9, 13.0, 2)])
    out = lightcurves.score_lightcurves(FakeScorer(), prep, lc)
    assert out["id"].tolist() == ["7", "12"]


def test_bands_not_in_training_are_named_not_scored_silently(prep, caplog):
    """Item 14 of issue 12: a V-trained model given V, g and an unknown Q of one star scores the
    V points and says on the row (and in a logged warning) which bands it left out."""
    v_model = lightcurves.Preprocessing(length=LENGTH, bands=["V"])
    lc = pd.concat([star("mixed", LENGTH, 0.9, 13.0, 1, band=b) for b in ("V", "g", "Q")]
                   + [star("g-only", 2 * LENGTH, 0.9, 13.0, 2, band="g"),
                      star("v-only", LENGTH, 0.9, 13.0, 3)])
    with caplog.at_level("WARNING", logger="varnet.scoring.lightcurves"):
        out = lightcurves.score_lightcurves(FakeScorer(), v_model, lc).set_index("id")
    assert out["n_sequences"].to_dict() == {"mixed": 1, "g-only": 0, "v-only": 1}
    assert out.loc["mixed", "note"] == (f"band(s) Q, g not in the trained band(s) V: "
                                        f"{2 * LENGTH} point(s) not used")
    assert out.loc["g-only", "note"] == (f"no points in the trained band(s) V (band(s) g not in "
                                         f"the trained band(s) V: {2 * LENGTH} point(s) not used)")
    assert pd.isna(out.loc["g-only", "class"]) and pd.isna(out.loc["v-only", "note"])
    assert out.loc["mixed", "class"] in CLASSES
    warning, = [r.getMessage() for r in caplog.records]
    assert "2 star(s)" in warning and "Q: 1, g: 2" in warning and "e.g. star 'g-only'" in warning
    # a model whose bands were not recorded scores every band, as before
    assert lightcurves.score_lightcurves(FakeScorer(), prep, lc)["n_sequences"].tolist() == [
        3, 2, 1]


def test_the_trained_bands_come_from_the_variant(tmp_path):
    from varnet.core import files

    variant = {"sequence_length": LENGTH, "sequences": {"bands": None}, "cuts": {}}
    files.write_json({**variant, "trained_bands": ["V"]}, tmp_path / "variant.json")
    assert lightcurves.preprocessing_for(tmp_path).bands == ["V"]
    files.write_json({**variant, "sequences": {"bands": ["g", "r"]}}, tmp_path / "variant.json")
    assert lightcurves.preprocessing_for(tmp_path).bands == ["g", "r"]
    files.write_json(variant, tmp_path / "variant.json")
    assert lightcurves.preprocessing_for(tmp_path).bands is None
