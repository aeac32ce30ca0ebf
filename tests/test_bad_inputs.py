"""Issue 12 probe: every bad input to `varnet score`, its params and the HTTP server gets a
clear answer. One table of cases; each says where the input goes, how it is built, and either
the one-line reason it must be refused with, or that it is scored.

Checked for every case: no traceback anywhere in the output; a refused input exits 2 (the CLI)
or gets a 4xx JSON error (HTTP) whose reason matches; a scored input gives every star in as a
row out, and a star that could not be scored carries a note that names why (`note` regex).
The tiny registered model and the live server are those of test_score / test_serve.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_project
from test_serve import post, server  # noqa: F401  (the module's live model server)

from varnet.cli import main as varnet_main
from varnet.serving import score

pytestmark = pytest.mark.timeout(300)


def stars(n_stars: int = 3) -> pd.DataFrame:
    """Raw light curves of the first ``n_stars`` classes, 45 V points each, catalog periods
    (so that no case waits for a period search)."""
    catalog, lc = tiny_project.survey(stars_per_class=1)
    lc = lc[lc["id"].isin(catalog["id"].iloc[:n_stars])].copy()
    lc["period"] = lc["id"].map(catalog.set_index("id")["period"])
    return lc[["id", "time", "mag", "err", "band", "period"]].reset_index(drop=True)


def with_values(column: str, make: Callable[[pd.Series], pd.Series]
                ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda lc: lc.assign(**{column: make(lc[column])})


def at_row(row: int, value) -> Callable[[pd.Series], pd.Series]:
    return lambda values: values.astype(object).where(values.index != row, value)


def as_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, unit="D", origin="2020-01-01")


def names_pandas_calls_missing(ids: pd.Series) -> pd.Series:
    return ids.map(dict(zip(ids.unique(), ["NA", "nan", "null"], strict=True)))


def constant_first_star(lc: pd.DataFrame) -> pd.DataFrame:
    return lc.assign(mag=lc["mag"].where(lc["id"] != lc["id"].iloc[0], 13.0))


def sentinel_points(lc: pd.DataFrame) -> pd.DataFrame:
    """Two points of every star are -1e30 (a survey's "no measurement"): dropped, counted."""
    first_two = lc.groupby("id").cumcount() < 2
    return lc.assign(mag=lc["mag"].where(~first_two, -1e30))


def first_star_too_short(lc: pd.DataFrame) -> pd.DataFrame:
    short = lc["id"] == lc["id"].iloc[0]
    return lc[~short | (lc.groupby("id").cumcount() < 5)]


def one_conflicting_period(lc: pd.DataFrame) -> pd.DataFrame:
    return lc.assign(period=lc["period"].where(lc.index != 0, 0.123))


# --- how each case is fed: a file for `varnet score`, a params overlay, an HTTP body --------

@dataclass(frozen=True)
class Case:
    name: str
    target: str
    """"score" (a light-curve file), "params" (an overlay over the project's params.yaml) or
    "http" (a request body)."""
    build: Callable
    refuse: str | None = None
    """Regex of the reason the input is refused with; None: it is scored."""
    note: str | None = None
    """Regex the note of the first star must match (a star not scored says why)."""
    options: tuple[str, ...] = ()
    """Extra `varnet score` arguments; "{dir}" is the case's folder."""
    points: int | None = None
    """The first star's n_points (good points after the bad ones were dropped and counted)."""


def csv(change: Callable[[pd.DataFrame], pd.DataFrame] = lambda lc: lc, name: str = "lc.csv"):
    def build(folder: Path) -> tuple[list[Path], pd.DataFrame]:
        lc = change(stars())
        lc.to_csv(folder / name, index=False)
        return [folder / name], lc
    return build


def parquet(change: Callable[[pd.DataFrame], pd.DataFrame]):
    def build(folder: Path) -> tuple[list[Path], pd.DataFrame]:
        lc = change(stars())
        lc.to_parquet(folder / "lc.parquet")
        return [folder / "lc.parquet"], lc
    return build


def text(content: bytes | str, name: str = "lc.csv"):
    def build(folder: Path) -> tuple[list[Path], None]:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return [path], None
    return build


def two_files(second: Callable[[pd.DataFrame], pd.DataFrame] | None):
    """The same file twice (``second`` None), or a second file with some of its stars."""
    def build(folder: Path) -> tuple[list[Path], None]:
        lc = stars()
        lc.to_csv(folder / "a.csv", index=False)
        if second is None:
            return [folder / "a.csv", folder / "a.csv"], None
        second(lc).to_csv(folder / "b.csv", index=False)
        return [folder / "a.csv", folder / "b.csv"], None
    return build


def overlay(yaml_text: str):
    def build(folder: Path) -> tuple[list[Path], pd.DataFrame]:
        (folder / "bad.yaml").write_text(yaml_text)
        lc = stars()
        lc.to_csv(folder / "lc.csv", index=False)
        return [folder / "lc.csv"], lc
    return build


def body(change: Callable[[pd.DataFrame], pd.DataFrame] = lambda lc: lc, **params):
    def build() -> tuple[bytes, pd.DataFrame]:
        lc = change(stars())
        split = json.loads(lc.to_json(orient="split", index=False, date_format="iso"))
        return json.dumps({"dataframe_split": split, "params": params}).encode(), lc
    return build


def raw_body(content: bytes):
    return lambda: (content, None)


def not_contiguous(lc: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([lc.iloc[:10], lc.iloc[50:], lc.iloc[10:50]])


CASES = [
    # --- varnet score: types of the columns (issue 12 item 2) -------------------------------
    Case("integer times", "score", csv(with_values("time", lambda t: (100 * t).astype(int)))),
    Case("integer ids (parquet)", "score",
         parquet(with_values("id", lambda i: i.factorize()[0] + 100))),
    Case("numbers as text (parquet)", "score",
         parquet(with_values("mag", lambda m: m.astype(str)))),
    Case("text in mag", "score", csv(with_values("mag", at_row(33, ">15.1"))),
         refuse=r"lc.csv: column 'mag' holds '>15.1' at data row 34, not a number"),
    Case("boolean errors", "score", csv(with_values("err", lambda e: e > 0)),
         refuse=r"lc.csv: column 'err' holds booleans \(dtype bool\), not numbers"),
    Case("datetime times (parquet)", "score", parquet(with_values("time", as_dates)),
         refuse=r"column 'time' holds dates or durations .*numbers of days"),
    Case("dates as text", "score", csv(with_values("time", lambda t: as_dates(t).astype(str))),
         refuse=r"column 'time' holds '2020-.*' at data row 1, not a number .*numbers of days"),
    Case("text in period", "score", csv(with_values("period", at_row(3, "about 2 d"))),
         refuse=r"column 'period' holds 'about 2 d' at data row 4"),
    Case("float ids (parquet)", "score", parquet(with_values("id", lambda i: i.factorize()[0] +
                                                              0.5)),
         refuse=r"column 'id' holds float64 values"),
    # --- ids (item 1) -------------------------------------------------------------------------
    Case("ids NA, nan, null", "score",
         csv(with_values("id", names_pandas_calls_missing))),
    Case("an empty id", "score", csv(with_values("id", at_row(7, ""))),
         refuse=r"row 8 has an empty star id"),
    # --- stars given twice (item 4) ----------------------------------------------------------
    Case("the same file twice", "score", two_files(None), refuse=r"given more than once"),
    Case("a star in two files", "score", two_files(lambda lc: lc[lc["id"] == lc["id"].iloc[-1]]),
         refuse=r"star '.*' is also in"),
    Case("a star's rows not contiguous", "score", csv(not_contiguous),
         refuse=r"not contiguous .*sort the file by id first"),
    # --- bad points and unscorable stars: a row with a note (items 5, 6) --------------------
    Case("mag -1e30 points", "score", csv(sentinel_points), points=43),
    Case("a constant star", "score", csv(constant_first_star), note=r"constant magnitude"),
    Case("a star too short", "score", csv(first_star_too_short),
         note=r"fewer than 20 good points in every band \(5 in all\)"),
    Case("all mags NaN", "score", csv(with_values("mag", lambda m: m * np.nan)),
         note=r"fewer than 20 good points"),
    Case("conflicting periods", "score", csv(one_conflicting_period),
         note=r"conflicting period values"),
    Case("a negative period", "score", csv(with_values("period", lambda p: -p)),
         note=r"outside the trained range"),
    # --- files and options ----------------------------------------------------------------
    Case("missing err column", "score", csv(lambda lc: lc.drop(columns="err")),
         refuse=r"missing column\(s\) \['err'\]"),
    Case("an empty file", "score", text(""), refuse=r"empty"),
    Case("a header only", "score", text("id,time,mag,err\n"), refuse=r"no rows \(empty input\)"),
    Case("neither a table nor ASAS-SN", "score", text("a,b\n1,2\n"),
         refuse=r"a light-curve table needs"),
    Case("parquet that is not", "score", text("id,time\n", name="lc.parquet"),
         refuse=r"lc.parquet: cannot read"),
    Case("truncated gzip", "score", text(gzip.compress(b"id,time,mag,err\n" * 50)[:40],
                                         name="lc.csv.gz"), refuse=r"lc.csv.gz: cannot read"),
    Case("no such file", "score", lambda folder: ([folder / "nope.csv"], None),
         refuse=r"nope.csv: file not found"),
    Case("output not csv or parquet", "score", csv(), options=("-o", "{dir}/out.txt"),
         refuse=r"out.txt: output must end in .csv or .parquet"),
    Case("--chunk-rows -5", "score", csv(), options=("--chunk-rows", "-5"),
         refuse=r"--chunk-rows: -5 is not >= 1"),
    Case("--alpha 2", "score", csv(), options=("--alpha", "2"),
         refuse=r"--alpha: 2 is not between 0 and 1"),
    Case("--level galaxy", "score", csv(), options=("--level", "galaxy"),
         refuse=r"--level: invalid choice: 'galaxy'"),
    Case("an unknown model alias", "score", csv(), options=("--model", "models:/varnet@nope"),
         refuse=r"cannot load model models:/varnet@nope"),
    Case("periods table with text", "score", csv(), options=("--periods", "{dir}/p.csv"),
         refuse=r"p.csv: column 'period' holds 'x' at data row 1"),
    Case("periods table with a star twice", "score", csv(),
         options=("--periods", "{dir}/p2.csv"), refuse=r"p2.csv: star 'm0' has two periods"),
    # --- params (varnet.core.config) ----------------------------------------------------------
    Case("score.chunk_rows -5", "params", overlay("score: {chunk_rows: -5}"),
         refuse=r"params score: .*chunk_rows must be >= 1"),
    Case("score.chunk_rows text", "params", overlay("score: {chunk_rows: many}"),
         refuse=r"params score.chunk_rows: must be an integer"),
    Case("score.level galaxy", "params", overlay("score: {level: galaxy}"),
         refuse=r"params score: level must be one of"),
    Case("a misspelt score key", "params", overlay("score: {chunks: 5}"),
         refuse=r"params score: unknown key\(s\) \['chunks'\]"),
    Case("score not a mapping", "params", overlay("score: 5"),
         refuse=r"params score: expected a mapping"),
    Case("an unknown section", "params", overlay("scoring: {level: star}"),
         refuse=r"bad.yaml: unknown section\(s\) \['scoring'\]"),
    Case("params not YAML", "params", overlay("score: [unclosed"),
         refuse=r"bad.yaml: not valid YAML"),
    Case("params a list", "params", overlay("- score\n"),
         refuse=r"bad.yaml: expected a mapping of sections"),
    Case("score.model unknown", "params", overlay("score: {model: 'models:/nosuch@champion'}"),
         refuse=r"cannot load model models:/nosuch@champion"),
    # --- HTTP: the same rules over `mlflow models serve` --------------------------------------
    Case("HTTP integer times", "http", body(with_values("time", lambda t: (100 * t).astype(int)))),
    Case("HTTP integer ids", "http", body(with_values("id", lambda i: i.factorize()[0] + 100))),
    Case("HTTP ids NA and nan", "http",
         body(with_values("id", names_pandas_calls_missing))),
    Case("HTTP text in mag", "http", body(with_values("mag", at_row(33, ">15.1"))),
         refuse=r"column 'mag' holds '>15.1' at data row 34, not a number"),
    Case("HTTP boolean errors", "http", body(with_values("err", lambda e: e > 0)),
         refuse=r"column 'err' holds booleans"),
    Case("HTTP one boolean error", "http", body(with_values("err", at_row(2, True))),
         refuse=r"column 'err' holds a boolean \(True at data row 3\)"),
    Case("HTTP dates as times", "http", body(with_values("time", as_dates)),
         refuse=r"column 'time' holds '2020-.*numbers of days"),
    Case("HTTP an empty id", "http", body(with_values("id", at_row(7, ""))),
         refuse=r"row 8 has an empty star id"),
    Case("HTTP a null id", "http", body(with_values("id", at_row(0, None))),
         refuse=r"row 1 has an empty star id"),
    Case("HTTP missing err", "http", body(lambda lc: lc.drop(columns="err")),
         refuse=r"missing column\(s\) \['err'\]"),
    Case("HTTP no rows", "http", body(lambda lc: lc.iloc[:0]), refuse=r"empty input"),
    Case("HTTP unknown level", "http", body(level="galaxy"), refuse=r"level must be one of"),
    Case("HTTP alpha 2", "http", body(alpha=2.0), refuse=r"alpha .* must be between 0 and 1"),
    Case("HTTP not JSON", "http", raw_body(b"{this is not json"), refuse=r"."),
    Case("HTTP data not a table", "http",
         raw_body(b'{"dataframe_split": {"columns": ["id"], "data": 5}}'), refuse=r"."),
    Case("HTTP mag -1e30 points", "http", body(sentinel_points), points=43),
    Case("HTTP a constant star", "http", body(constant_first_star), note=r"constant magnitude"),
    Case("HTTP a star's rows apart", "http", body(not_contiguous)),
]


# --- running a case -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_project.registered_project(tmp_path_factory)


@pytest.fixture()
def one_model_load(monkeypatch):
    """Load each model URI once for the whole table (a failed load is not cached, so the
    unknown-alias cases still go through the real loader)."""
    monkeypatch.setattr(score, "load_model", _cached_load)


@functools.cache
def _cached_load(uri: str):
    return _real_load(uri)


_real_load = score.load_model


def run_cli(root: Path, argv: list[str], capsys) -> tuple[int, str]:
    with tiny_project.inside(root):
        try:
            code = varnet_main(argv)
        except SystemExit as exit_info:   # argparse: a usage error
            code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def check_scored(out: pd.DataFrame, lc: pd.DataFrame, case: Case) -> None:
    """Every star in is one row out; the first star's note and n_points as the case says."""
    ids_in = [str(i) for i in pd.unique(lc["id"])]
    assert sorted(out["id"].astype(str)) == sorted(ids_in), case.name
    row = out.set_index(out["id"].astype(str)).loc[ids_in[0]]
    if case.note is None:
        assert row["n_sequences"] > 0 and pd.isna(row["note"]), (case.name, row["note"])
    else:
        assert re.search(case.note, str(row["note"])), (case.name, row["note"])
        assert row["n_sequences"] == 0 and pd.isna(row["class"]), case.name
    if case.points is not None:
        assert row["n_points"] == case.points, case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_a_clear_answer(case, project, tmp_path, capsys, one_model_load,
                                       request):
    if case.target == "http":
        _, url = request.getfixturevalue("server")
        content, lc = case.build()
        status, answer = post(f"{url}/invocations", content)
        assert "Traceback" not in json.dumps(answer), answer
        if case.refuse is not None:
            assert 400 <= status < 500, (status, answer)
            assert answer.get("error_code") and re.search(case.refuse, answer["message"]), answer
            return
        assert status == 200, answer
        check_scored(pd.DataFrame(answer["predictions"]), lc, case)
        return

    inputs, lc = case.build(tmp_path)
    pd.DataFrame({"id": ["m0"], "period": ["x"]}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"id": ["m0", "m0"], "period": [1.0, 2.0]}).to_csv(tmp_path / "p2.csv",
                                                                      index=False)
    output = tmp_path / "scores.csv"
    params = (["--params", "params.yaml", "--params", str(tmp_path / "bad.yaml")]
              if case.target == "params" else [])
    options = [option.format(dir=tmp_path) for option in case.options]
    code, printed = run_cli(project, [*params, "score", *map(str, inputs), "-o", str(output),
                                      *options], capsys)
    assert "Traceback" not in printed, printed
    if case.refuse is not None:
        assert code == 2, (code, printed)
        assert re.search(case.refuse, printed), printed
        assert "Failed to enforce schema" not in printed
        assert not output.exists()
        return
    assert code == 0, printed
    check_scored(pd.read_csv(output, dtype={"id": str}, keep_default_na=False,
                             na_values={"class": [""], "note": [""]}), lc, case)
