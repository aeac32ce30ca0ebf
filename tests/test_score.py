"""`varnet score`: reading whole stars in chunks, input formats, bad input, and scoring with a
tiny registered model (the Sky Patrol file, raw light curves without periods)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_project

from varnet.cli import main as varnet_main
from varnet.core.errors import VarnetError
from varnet.core.taxonomy import CLASSES
from varnet.prepare import periods
from varnet.serving import score

SKYPATROL = "small-fixtures/asassn-skypatrol-vxmen/vxmen.csv"


def long_table(n_stars: int, n_points: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_stars):
        t = np.sort(rng.uniform(0, 300, n_points))
        period = 0.3 + i
        frames.append(pd.DataFrame({
            "id": f"star{i:03d}", "time": t,
            "mag": 13 + 0.4 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.02, n_points),
            "err": 0.02, "band": "V"}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_hold_whole_stars(tmp_path, suffix):
    lc = long_table(7, 50)
    path = tmp_path / f"lc{suffix}"
    lc.to_csv(path, index=False) if suffix == ".csv" else lc.to_parquet(path, row_group_size=33)
    chunks = list(score.iter_star_chunks(path, chunk_rows=120))
    assert len(chunks) > 2
    ids = [set(c["id"]) for c in chunks]
    assert all(a.isdisjoint(b) for i, a in enumerate(ids) for b in ids[i + 1:])
    merged = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(merged[["id", "time", "mag"]], lc[["id", "time", "mag"]])


def test_ungrouped_stars_are_an_error(tmp_path):
    lc = long_table(3, 20)
    shuffled = pd.concat([lc.iloc[:10], lc.iloc[40:], lc.iloc[10:40]])
    path = tmp_path / "lc.csv"
    shuffled.to_csv(path, index=False)
    with pytest.raises(VarnetError, match="'star000'.*not contiguous"):
        list(score.iter_star_chunks(path, chunk_rows=15))


def test_bad_tables(tmp_path):
    path = tmp_path / "lc.csv"
    long_table(1, 5).drop(columns="err").to_csv(path, index=False)
    with pytest.raises(VarnetError, match=r"missing column\(s\) \['err'\]"):
        list(score.star_chunks(path, "auto", 100, None))
    long_table(1, 5).iloc[:0].to_csv(path, index=False)
    with pytest.raises(VarnetError, match="empty input"):
        list(score.star_chunks(path, "auto", 100, None))
    path.write_text("")
    with pytest.raises(VarnetError, match="empty"):
        list(score.star_chunks(path, "auto", 100, None))
    path.write_text("a,b\n1,2\n")
    with pytest.raises(VarnetError, match="light-curve table needs"):
        list(score.star_chunks(path, "auto", 100, None))
    with pytest.raises(VarnetError, match="not found"):
        list(score.star_chunks(tmp_path / "nope.csv", "auto", 100, None))
    with pytest.raises(VarnetError, match=".csv or .parquet"):
        score.OutputWriter(tmp_path / "out.txt")


def test_periods_join(tmp_path):
    lc = long_table(3, 5)
    lc["period"] = np.where(lc["id"] == "star000", 0.5, np.nan)
    path, periods_path = tmp_path / "lc.csv", tmp_path / "periods.csv"
    lc.to_csv(path, index=False)
    pd.DataFrame({"id": ["star000", "star001"], "period": [9.0, 1.3]}).to_csv(periods_path,
                                                                             index=False)
    periods = score.read_periods(periods_path)
    chunk = pd.concat(score.star_chunks(path, "auto", 100, periods))
    per_star = chunk.groupby("id")["period"].first()
    assert per_star["star000"] == 0.5 and per_star["star001"] == 1.3  # the file's own wins
    assert np.isnan(per_star["star002"])


def test_skypatrol_file_is_one_star(shared_data):
    path = shared_data / SKYPATROL
    assert score.detect_format(path) == "asassn"
    (chunk,) = score.star_chunks(path, "auto", 100, None)
    assert chunk["id"].unique().tolist() == ["vxmen"] and len(chunk) == 1065
    assert {"time", "mag", "err", "band"} <= set(chunk.columns)
    # PROVENANCE.md gives 0.18669 d from a single-harmonic search; the two-harmonic P-vs-2P test
    # of varnet.prepare.periods finds unequal minima (an EW binary), so twice that
    found = periods.lomb_scargle_period(*(chunk[c].to_numpy() for c in ("time", "mag", "err")),
                                        band=chunk["band"].to_numpy())
    assert found == pytest.approx(2 * 0.18669, rel=1e-3)


def test_output_writer_is_atomic_and_streams(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), score.OutputWriter(target) as out:
        out.write(pd.DataFrame({"id": ["a"], "energy": [1.0]}))
        raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    with score.OutputWriter(target) as out:
        out.write(pd.DataFrame({"id": ["a"], "energy": [1.0]}))
        out.write(pd.DataFrame({"id": ["b"], "energy": [2.0]}))
    assert pd.read_parquet(target)["id"].tolist() == ["a", "b"]
    csv = tmp_path / "out.csv"
    with score.OutputWriter(csv) as out:
        out.write(pd.DataFrame({"id": ["a"], "energy": [1.0]}))
        out.write(pd.DataFrame({"id": ["b"], "energy": [2.0]}))
    assert pd.read_csv(csv)["energy"].tolist() == [1.0, 2.0]


# --- with a tiny registered model (shared with test_serve) -----------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_project.registered_project(tmp_path_factory)


def run_cli(root: Path, *argv: str) -> int:
    with tiny_project.inside(root):
        return varnet_main(["score", *argv])


def test_scores_skypatrol_file_and_raw_lightcurves_without_periods(project, shared_data,
                                                                  tmp_path):
    _, lc = tiny_project.survey(stars_per_class=1)
    raw = tmp_path / "raw.parquet"
    lc[["id", "time", "mag", "err", "band"]].to_parquet(raw)   # no period column
    out = tmp_path / "scores.parquet"
    assert run_cli(project, str(shared_data / SKYPATROL), str(raw), "-o", str(out),
                   "--chunk-rows", "200") == 0
    scores = pd.read_parquet(out)
    assert scores["id"].tolist() == ["vxmen", *lc["id"].unique()]
    vxmen, known = scores.iloc[0], scores.iloc[1:]
    # the file is ASAS-SN g band, the model V: named on the row, not scored as if it were V
    assert vxmen["note"].startswith("no points in the trained band(s) V (band(s) g not in")
    assert pd.isna(vxmen["class"]) or vxmen["class"] == ""
    assert (known["period_source"] == "lomb-scargle").all()
    assert known["class"].isin(CLASSES).all() and np.isfinite(known["energy"]).all()
    probs = known[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (known["novel_p80"] | ~known["novel_p95"]).all()  # p95 flag implies p80 flag

    # chunking never changes a result; the sequence level has one row per sequence
    whole = tmp_path / "whole.csv"
    assert run_cli(project, str(raw), "-o", str(whole), "--level", "sequence") == 0
    per_sequence = pd.read_csv(whole)
    assert len(per_sequence) == scores["n_sequences"].iloc[1:].sum()
    energy = per_sequence.groupby("id", sort=False)["energy"].mean()
    np.testing.assert_allclose(energy.to_numpy(), scores["energy"].iloc[1:], rtol=1e-5, atol=1e-4)


def test_bad_model_or_input_is_a_message_not_a_traceback(project, tmp_path, capsys):
    path = tmp_path / "lc.csv"
    long_table(2, 30).to_csv(path, index=False)
    for model, message in (("models:/varnet@nope", "cannot load model models:/varnet@nope"),
                           ("models:/nosuch@champion", "cannot load model models:/nosuch")):
        assert run_cli(project, str(path), "--model", model, "-o", str(tmp_path / "o.csv")) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    long_table(1, 5).drop(columns="mag").to_csv(path, index=False)
    assert run_cli(project, str(path), "-o", str(tmp_path / "o.csv")) == 2
    assert "missing column(s) ['mag']" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("value", ["-5", "0", "many"])
def test_a_bad_chunk_size_is_a_usage_error(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        varnet_main(["score", str(tmp_path / "in.csv"), "--chunk-rows", value])
    assert exit_info.value.code == 2
    assert "--chunk-rows" in capsys.readouterr().err


def test_a_star_given_twice_is_an_error_not_two_rows(project, tmp_path, capsys):
    lc = long_table(2, 30)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    lc.to_csv(first, index=False)
    lc[lc["id"] == "star001"].to_csv(second, index=False)
    out = str(tmp_path / "out.csv")
    assert run_cli(project, str(first), str(first), "-o", out) == 2
    assert "given more than once" in capsys.readouterr().err
    assert run_cli(project, str(first), str(second), "-o", out) == 2
    assert "star 'star001' is also in" in capsys.readouterr().err
    assert not Path(out).exists()


def test_ids_that_pandas_would_call_missing_are_star_names(tmp_path):
    lc = long_table(3, 20)
    lc["id"] = lc["id"].map({"star000": "NA", "star001": "nan", "star002": "null"})
    path = tmp_path / "na.csv"
    lc.to_csv(path, index=False)
    chunks = list(score.iter_star_chunks(path, 25))
    assert [c["id"].unique().tolist() for c in chunks] == [["NA"], ["nan"], ["null"]]
    lc.loc[5, "id"] = ""
    lc.to_csv(path, index=False)
    with pytest.raises(VarnetError, match=r"row 6 has an empty star id"):
        list(score.iter_star_chunks(path, 25))
    periods = tmp_path / "periods.csv"
    periods.write_text("id,period\nNA,0.5\nnan,\n")
    read = score.read_periods(periods)
    assert read.index.tolist() == ["NA", "nan"] and read["NA"] == 0.5 and np.isnan(read["nan"])


@pytest.mark.parametrize(("suffix", "change", "message"), [
    (".csv", lambda lc: lc.assign(time=(100 * lc["time"]).astype(int)), None),
    (".parquet", lambda lc: lc.assign(id=lc["id"].str[-1].astype(int)), None),
    (".csv", lambda lc: lc.assign(mag=lc["mag"].astype(object).where(lc.index != 33, ">15.1")),
     r"lc.csv: column 'mag' holds '>15.1' at data row 34, not a number"),
    (".csv", lambda lc: lc.assign(err=lc.index % 2 == 0),
     r"lc.csv: column 'err' holds booleans \(dtype bool\), not numbers"),
    (".parquet", lambda lc: lc.assign(time=pd.to_datetime(lc["time"], unit="D", origin="unix")),
     r"lc.parquet: column 'time' holds dates or durations .*numbers of days"),
])
def test_typed_columns_of_a_file_are_converted_or_named(project, tmp_path, capsys, suffix,
                                                         change, message):
    """Item 2 of issue 12: integer times (and ids) are converted; text mags, boolean errors and
    datetime times stop with the file, column, type and row, not a cut-off MLflow message."""
    lc = change(long_table(2, 30))
    path, out = tmp_path / f"lc{suffix}", tmp_path / "out.csv"
    lc.to_csv(path, index=False) if suffix == ".csv" else lc.to_parquet(path)
    code = run_cli(project, str(path), "-o", str(out), "--chunk-rows", "25")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Failed to enforce schema" not in err
    if message is None:
        assert code == 0, err
        assert pd.read_csv(out, dtype={"id": str})["id"].tolist() == [str(i) for i in
                                                                      lc["id"].unique()]
    else:
        assert code == 2 and not out.exists()
        assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_the_reason_of_an_mlflow_error_is_kept_whole():
    """A model logged with a typed input schema (before issue 12) refuses in MLflow's words: the
    received table comes first, over many lines, and the reason after its "Error: "."""
    message = ("Failed to enforce schema of data '   id  time\n0  a  1\n1  a  2' with schema "
               "'['id': string]'. Error: Incompatible input types for column time.\n"
               "Can not safely convert int64 to float64.")
    assert score.reason(message) == ("Incompatible input types for column time. Can not safely "
                                     "convert int64 to float64.")
    assert score.reason("no such alias\nmore") == "no such alias"
