"""`varnet validate`: cuts + Great Expectations checkpoints on a tiny raw snapshot.

Bad input must end as a readable error naming the file/star/rule (exit 2, no traceback, no
interim output) or as a counted drop in the cut-flow reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_cuts import one_per_class, star, survey

from varnet import cli
from varnet.core import files, schema
from varnet.core.config import CutsParams, section
from varnet.core.schema import CATALOG_COLUMNS, CUT_COLUMNS, LIGHTCURVE_COLUMNS
from varnet.core.taxonomy import NOVEL
from varnet.prepare import validate as validate_module
from varnet.prepare.cuts import apply_cuts, cut_rules

SURVEY = "tiny"
INTERIM = (schema.INTERIM_CATALOG, schema.INTERIM_LIGHTCURVES)


@pytest.fixture
def workdir(tmp_path, monkeypatch, project_root):
    """A fresh project directory with the repo's cut params and survey.name = tiny."""
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"survey": {"name": SURVEY}, "cuts": params["cuts"]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_snapshot(catalog: pd.DataFrame, lightcurves: pd.DataFrame) -> tuple[Path, Path]:
    catalog_path, lightcurves_path = schema.raw_paths(SURVEY)
    files.write_parquet(catalog, catalog_path)
    files.write_parquet(lightcurves, lightcurves_path)
    return catalog_path, lightcurves_path


def validate(capsys) -> tuple[int, str, str]:
    code = cli.main(["validate"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def assert_fails(capsys, *fragments: str) -> str:
    """Run validate, expect exit 2 with every fragment in the message; return stdout."""
    code, out, err = validate(capsys)
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert not any(path.exists() for path in INTERIM), "a failed run must leave no interim output"
    return out


def good_survey() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One star per class and VAR, plus stars that three different cuts remove."""
    return survey(*one_per_class(), star("low-p", "SR", class_probability=0.3),
                  star("short", NOVEL, n=120), star("odd", None))


def committed_gx(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "uncommitted" not in p.parts}


def test_validate_writes_outputs_reports_and_a_stable_gx_project(workdir, capsys):
    write_snapshot(*good_survey())
    code, out, _ = validate(capsys)
    assert code == 0
    assert "| stars kept |" in out and "kept 9 of 12 stars" in out  # the table is printed

    catalog = pd.read_parquet(schema.INTERIM_CATALOG)
    assert list(catalog.columns) == [*CATALOG_COLUMNS, *CUT_COLUMNS] and len(catalog) == 9
    lightcurves = pd.read_parquet(schema.INTERIM_LIGHTCURVES)
    assert list(lightcurves.columns) == list(LIGHTCURVE_COLUMNS) and len(lightcurves) == 9 * 250

    metrics = json.loads(Path("reports/cutflow.json").read_text())
    assert metrics["stars_in"] == 12 and metrics["stars_kept"] == 9
    assert metrics["removed"]["class prob."] == 1 and metrics["removed"]["epochs"] == 1
    tidy = pd.read_csv("reports/cutflow.csv")
    assert list(tidy.columns) == ["cut", "class", "removed"] and tidy["removed"].sum() == 3
    assert "| - unknown type |" in Path("reports/cutflow.md").read_text()
    rules = cut_rules(section(CutsParams, yaml.safe_load(Path("params.yaml").read_text())))
    dropped = pd.read_csv("reports/dropped_stars.csv").set_index("id")  # beside the cut flow
    assert dropped.to_dict("index") == {
        "low-p": {"group": "SR", "cut": "class prob.", "rule": rules["class prob."]},
        "short": {"group": NOVEL, "cut": "epochs", "rule": rules["epochs"]},
        "odd": {"group": "unknown", "cut": "unknown type", "rule": rules["unknown type"]}}

    gx_root = workdir / "gx"
    for suite in ("raw_catalog", "raw_lightcurves", "lightcurves", "post_cut"):
        assert (gx_root / "expectations" / f"{suite}.json").exists()
        assert (gx_root / "checkpoints" / f"{suite}.json").exists()
    assert (gx_root / "uncommitted/data_docs/local_site/index.html").exists()
    suite = json.loads((gx_root / "expectations/post_cut.json").read_text())
    assert {"column": "class_probability", "min_value": 0.9, "max_value": 1.0} in [
        {k: v for k, v in e["kwargs"].items() if k != "row_condition"}
        for e in suite["expectations"]]  # thresholds from params, visible in the committed file

    before = committed_gx(gx_root)
    assert validate(capsys)[0] == 0
    assert committed_gx(gx_root) == before, "an unchanged run must not touch the committed gx/"


def test_corrupted_snapshot_fails_with_the_expectation_named(workdir, capsys):
    catalog, lightcurves = good_survey()
    write_snapshot(catalog, lightcurves)
    assert validate(capsys)[0] == 0 and schema.INTERIM_CATALOG.exists()

    catalog.loc[catalog["id"] == "ecl-1", "class_probability"] = 1.7
    write_snapshot(catalog, lightcurves)
    assert_fails(capsys, "suite 'raw_catalog'", "expect_column_values_to_be_between",
                 "column='class_probability'", "1 unexpected of 12 rows", "id=ecl-1",
                 "class_probability=1.7")


def test_a_cut_bug_is_caught_by_the_post_cut_contract(workdir, capsys, monkeypatch):
    write_snapshot(*good_survey())

    def apply_cuts_skipping_class_probability(catalog, lightcurves, cfg):
        return apply_cuts(catalog, lightcurves, CutsParams(**{**vars(cfg),
                                                              "min_class_probability": None}))

    monkeypatch.setattr(validate_module, "apply_cuts", apply_cuts_skipping_class_probability)
    assert_fails(capsys, "suite 'post_cut'", "expect_column_values_to_be_between",
                 "column='class_probability'", "min_value=0.9", "superclass != 'VAR'",
                 "id=low-p", "cuts.min_class_probability")


def test_a_cleaning_bug_is_caught_by_the_light_curve_suite(workdir, capsys, monkeypatch):
    write_snapshot(*good_survey())

    def apply_cuts_unsorted(catalog, lightcurves, cfg):
        result = apply_cuts(catalog, lightcurves, cfg)
        result.lightcurves = result.lightcurves.iloc[::-1].reset_index(drop=True)
        return result

    monkeypatch.setattr(validate_module, "apply_cuts", apply_cuts_unsorted)
    assert_fails(capsys, "suite 'lightcurves'", "column='dt'", "strictly increase")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_or_truncated_raw_file_names_the_file(workdir, capsys, damage):
    catalog_path, _ = write_snapshot(*good_survey())
    data = catalog_path.read_bytes()
    catalog_path.write_bytes(b"not parquet" if damage == "garbage" else data[:len(data) // 2])
    assert_fails(capsys, str(catalog_path), "cannot read parquet")


@pytest.mark.parametrize("table, old, new", [("catalog", "class_probability", "class_prob"),
                                             ("lightcurves", "mag", "magnitude")])
def test_missing_or_renamed_column_names_the_column(workdir, capsys, table, old, new):
    catalog, lightcurves = good_survey()
    if table == "catalog":
        catalog = catalog.rename(columns={old: new})
    else:
        lightcurves = lightcurves.rename(columns={old: new})
    write_snapshot(catalog, lightcurves)
    assert_fails(capsys, f"suite 'raw_{table}'", f"expect_column_to_exist(column='{old}')",
                 f"required column {old}")


def test_non_numeric_catalog_column_is_an_error(workdir, capsys):
    catalog, lightcurves = good_survey()
    write_snapshot(catalog.assign(period=catalog["period"].astype("str")), lightcurves)
    assert_fails(capsys, "suite 'raw_catalog'", "expect_column_values_to_be_in_type_list",
                 "column='period'", "observed 'str'")


def test_duplicate_star_ids_are_an_error(workdir, capsys):
    catalog, lightcurves = good_survey()
    catalog.loc[1, "id"] = catalog.loc[0, "id"]
    write_snapshot(catalog, lightcurves)
    assert_fails(capsys, "expect_column_values_to_be_unique", "column='id'", "id=ceph-1")


def test_empty_survey_is_an_error(workdir, capsys):
    catalog, lightcurves = good_survey()
    write_snapshot(catalog.iloc[:0], lightcurves.iloc[:0])
    assert_fails(capsys, "suite 'raw_catalog'", "expect_table_row_count_to_be_between",
                 "observed 0", "at least one star")


def test_class_with_no_stars_left_after_the_cuts_names_the_class(workdir, capsys):
    catalog, lightcurves = good_survey()
    catalog.loc[catalog["superclass"] == "DSCT", "class_probability"] = 0.5
    write_snapshot(catalog, lightcurves)
    out = assert_fails(capsys, "suite 'post_cut'", "expect_column_distinct_values_to_contain_set",
                       "missing ['DSCT']", "keeps at least one star")
    assert "| - class prob. | class_probability < 0.9 (not VAR) | 0 | 1 |" in out  # which cut


def test_bad_epochs_are_counted_in_the_reports(workdir, capsys):
    catalog, lightcurves = good_survey()
    first = lightcurves.index[lightcurves["id"] == "ecl-1"][:6]
    lightcurves.loc[first[0], "mag"] = 99.99
    lightcurves.loc[first[1], "time"] = np.nan
    lightcurves.loc[first[2], "err"] = np.inf
    lightcurves.loc[first[3], "err"] = 0.0
    lightcurves.loc[first[5], "time"] = lightcurves.loc[first[4], "time"]
    extra = star("not-in-catalog", n=7)[1]
    write_snapshot(catalog, pd.concat([lightcurves.iloc[::-1], extra], ignore_index=True))
    code, _, err = validate(capsys)
    assert code == 0, err
    dropped = json.loads(Path("reports/cutflow.json").read_text())["points_dropped"]
    assert dropped == {"sentinel_mag": 1, "nonfinite_time": 1, "nonfinite_mag": 0,
                       "unphysical_mag": 0, "nonfinite_err": 1, "nonpositive_err": 1,
                       "duplicate_time": 1, "unknown_star": 7}
    kept = pd.read_parquet(schema.INTERIM_CATALOG).set_index("id")
    assert kept.loc["ecl-1", "n_epochs"] == 245  # 250 - 5 bad epochs (the rest are others')


def test_synthetic_survey_meets_the_raw_contract(workdir):
    synthetic = pytest.importorskip("varnet.surveys.synthetic")
    from varnet.prepare import expectations

    catalog, lightcurves = synthetic.simulate_survey(
        synthetic.SyntheticParams(seed=1, n_stars=40, min_stars_per_class=2))
    project = expectations.Project(".")
    project.check(expectations.raw_catalog_suite(), catalog, "synthetic catalog")
    project.check(expectations.raw_lightcurves_suite(), lightcurves, "synthetic light curves")
    result = apply_cuts(catalog, lightcurves, CutsParams(), progress=False)
    table = result.flow.table()
    assert table.loc["stars in", "total"] == 40
    assert result.flow.points_dropped["sentinel_mag"] > 0  # the simulator writes 99.99 flags
