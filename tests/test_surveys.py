"""Survey readers and `varnet snapshot`: formats, mappings, atomic output, clear errors."""

from __future__ import annotations

import gzip
import http.server
import io as stdio
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pytest
import yaml

from varnet import cli
from varnet.core import schema
from varnet.core.config import AsassnParams, SurveyParams, TableParams, from_dict
from varnet.core.errors import VarnetError
from varnet.core.schema import SENTINEL_MAG
from varnet.surveys import asassn
from varnet.surveys.asassn import read_asassn_survey
from varnet.surveys.snapshot import load_survey
from varnet.surveys.table import read_table_survey

FIXTURES = Path(__file__).parent / "fixtures" / "asassn"
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "surveys"


def _database(**extra) -> AsassnParams:
    return AsassnParams(catalog=str(FIXTURES / "database" / "catalog.csv"),
                        lightcurves=str(FIXTURES / "database" / "lightcurves"), **extra)


def _long_table(tmp_path: Path) -> TableParams:
    """A small survey in someone else's column names: gzip CSV light curves, parquet catalog."""
    rows = []
    for star, band, n in (("s1", "B", 4), ("s1", "R", 3), ("s2", "B", 5), ("s3", "B", 2)):
        for k in range(n):
            rows.append((star, band, 100.0 + k, 15.0 + 0.1 * k, 0.05))
    rows.append(("s2", "B", 200.0, 16.0, 99.999))  # the survey's flag for a bad point
    lc = pd.DataFrame(rows, columns=["obj", "filt", "mjd", "m", "e"])
    with gzip.open(tmp_path / "lc.csv.gz", "wt") as handle:
        lc.to_csv(handle, index=False)
    pd.DataFrame({"obj": ["s1", "s2", "s3", "s4"], "kind": ["EB", "MIRA", "W UMa", "EB"],
                  "P": [1.5, 120.0, 0.3, 2.0], "P_raw": [3.0, 240.0, 0.6, 4.0],
                  "plx": [2.0, -0.1, np.nan, 1.0], "G": [12.0, 11.0, 13.0, 14.0],
                  }).to_parquet(tmp_path / "cat.parquet")
    return TableParams(
        catalog=str(tmp_path / "cat.parquet"), lightcurves=str(tmp_path / "lc.csv.gz"),
        catalog_columns={"id": "obj", "variable_type": "kind", "period": "P",
                         "parallax": "plx", "phot_g_mean_mag": "G", "mean_vmag": "G"},
        lightcurve_columns={"id": "obj", "band": "filt", "time": "mjd", "mag": "m", "err": "e"},
        labels={"EB": "EW", "MIRA": "M"}, period_by_label={"MIRA": "P_raw"},
        flag_err_at=9.0)


# --- ASAS-SN formats ---------------------------------------------------------------------------

def test_database_catalog_maps_subtypes_and_derives_gaia_photometry():
    catalog = asassn.read_asassn_catalog(FIXTURES / "database" / "catalog.csv")
    by_id = catalog.set_index("id")
    assert by_id["superclass"].to_dict() == {
        "101": "ECL", "102": "RRAB", "103": "VAR", "104": None, "105": "SR"}  # "EW:" is unknown
    assert by_id.loc["104", "variable_type"] == "EW:"
    # M_G = G + 5 log10(parallax/mas) - 10; W_RP = M_RP - 1.3 (BP-RP); no distance if plx <= 0
    assert by_id.loc["101", "phot_g_abs"] == pytest.approx(13.05 + 5 * np.log10(1.25) - 10)
    assert by_id.loc["101", "w_rp"] == pytest.approx(12.52 + 5 * np.log10(1.25) - 10 - 1.3 * 0.89)
    assert np.isnan(by_id.loc["103", "phot_g_abs"]) and np.isnan(by_id.loc["103", "period"])
    assert by_id.loc["102", "ra"] == pytest.approx(15.51342)


def test_class_probability_table_replaces_catalog_values_where_listed():
    catalog, _, counts = read_asassn_survey(_database(
        class_probabilities=str(FIXTURES / "database" / "class_probs.csv")))
    prob = catalog.set_index("id")["class_probability"]
    assert prob["101"] == 0.995 and prob["102"] == 0.871 and prob["105"] == 0.912
    assert prob["104"] == 0.61  # not in the table: the catalog's own value stays
    assert np.isnan(prob["103"])  # VAR has none
    assert counts["stars_with_joined_class_probability"] == 3


def test_database_lightcurves_flag_upper_limits_and_map_cameras_to_bands():
    catalog, lc, counts = read_asassn_survey(_database())
    assert list(catalog.columns) == list(schema.CATALOG_COLUMNS)
    assert list(lc.columns) == list(schema.LIGHTCURVE_COLUMNS)
    old_format = lc[lc["id"] == "102"]
    assert (old_format["mag"] == SENTINEL_MAG).sum() == 2  # '>15.914' and mag_err 99.990
    assert counts["upper_limits_flagged"] == 2
    assert lc[lc["id"] == "103"].groupby("band").size().to_dict() == {"V": 2, "g": 2}
    # lc999.dat has no catalog row: it joins as an unknown star, counted, not dropped
    assert counts["stars_without_catalog_row"] == 1
    assert catalog.set_index("id").loc["999", "superclass"] is None
    assert "105" in set(catalog["id"]) and "105" not in set(lc["id"])  # validate counts it


def test_vizier_catalog_with_skypatrol_exports():
    catalog, lc, counts = read_asassn_survey(AsassnParams(
        catalog=str(FIXTURES / "vizier" / "catalog.csv"),
        lightcurves=str(FIXTURES / "vizier" / "lightcurves" / "*.csv")))
    by_id = catalog.set_index("id")
    assert by_id["superclass"].tolist() == ["DSCT", "CEPH", None]  # HADS, DCEP, YSO
    assert by_id["class_probability"].tolist() == [0.97, 0.88, 0.66]
    hads = lc[lc["id"] == "ASASSN-V J051528.12-671233.5"]  # file name: spaces written as '_'
    assert len(hads) == 5 and set(hads["band"]) == {"g"}
    assert (hads["mag"] == SENTINEL_MAG).sum() == 1  # Sky Patrol non-detection
    web = lc[lc["id"] == "ASASSN-V J060102.50+224011.9"]  # web export: comments, Filter column
    assert web["band"].tolist() == ["V", "V", "V", "g"]
    assert counts["stars_without_catalog_row"] == 0


def test_asassn_band_selection_counts_the_points_it_drops():
    _, lc, counts = read_asassn_survey(_database(bands=["V"]))
    assert set(lc["band"]) == {"V"} and counts["points_other_bands"] == 2


# --- table adapter -----------------------------------------------------------------------------

def test_table_adapter_maps_columns_labels_periods_and_flags(tmp_path):
    catalog, lc, counts = read_table_survey(_long_table(tmp_path))
    by_id = catalog.set_index("id")
    assert by_id["superclass"].to_dict() == {"s1": "ECL", "s2": "M", "s3": None, "s4": "ECL"}
    assert by_id["variable_type"].to_dict()["s3"] == "W UMa"  # their label is kept
    assert by_id["period"].to_dict() == {"s1": 1.5, "s2": 240.0, "s3": 0.3, "s4": 2.0}
    assert by_id.loc["s1", "phot_g_abs"] == pytest.approx(12.0 + 5 * np.log10(2.0) - 10)
    assert np.isnan(by_id.loc["s2", "phot_g_abs"])  # negative parallax: no distance
    assert lc.groupby(["id", "band"]).size().to_dict() == {
        ("s1", "B"): 4, ("s1", "R"): 3, ("s2", "B"): 6, ("s3", "B"): 2}
    flagged = lc[lc["err"] > 9]
    assert flagged["mag"].tolist() == [SENTINEL_MAG]
    assert counts["points_flagged_by_error"] == 1


def test_table_adapter_band_filter_and_per_star_headerless_files(tmp_path):
    params = _long_table(tmp_path)
    params.bands = ["R"]
    _, lc, counts = read_table_survey(params)
    assert set(lc["band"]) == {"R"} and counts["points_other_bands"] == 12

    folder = tmp_path / "stars"
    folder.mkdir()
    (folder / "1001.dat").write_text("1.0,12.1,0.02\n2.0,12.3,0.02\n")
    (folder / "1002.dat").write_text("1.5,9.9,0.03\n")
    (folder / "labels.csv").write_text("filename,target\n1001,Mira\n1002,RR_Lyrae_FM\n")
    catalog, lc, _ = read_table_survey(TableParams(
        catalog=str(folder / "labels.csv"), lightcurves=str(folder / "*.dat"),
        lightcurve_names=["time", "mag", "err"], default_band="V",
        catalog_columns={"id": "filename", "variable_type": "target"},
        labels={"Mira": "M"}))
    assert lc.groupby("id").size().to_dict() == {"1001": 2, "1002": 1}
    assert catalog.set_index("id")["superclass"].to_dict() == {"1001": "M", "1002": None}
    assert set(lc["band"]) == {"V"}


def test_label_mapping_to_an_unknown_class_is_rejected(tmp_path):
    params = _long_table(tmp_path)
    params.labels = {"EB": "BINARY"}
    with pytest.raises(VarnetError, match=r"survey\.table\.labels.*'EB'.*BINARY"):
        read_table_survey(params)


def test_params_of_the_wrong_shape_are_rejected():
    with pytest.raises(VarnetError, match=r"survey\.table.*bands must be a list"):
        from_dict(SurveyParams, {"table": {"bands": "g"}}, where="survey")
    with pytest.raises(VarnetError, match=r"source 'vizier' is not one of"):
        from_dict(SurveyParams, {"source": "vizier"}, where="survey")
    with pytest.raises(VarnetError, match="plain folder name"):
        from_dict(SurveyParams, {"name": "../elsewhere"}, where="survey")


def test_unknown_mapping_field_is_rejected(tmp_path):
    params = _long_table(tmp_path)
    params.catalog_columns = {**params.catalog_columns, "perod": "P"}
    with pytest.raises(VarnetError, match="perod"):
        read_table_survey(params)


# --- snapshot command --------------------------------------------------------------------------

def _write_params(root: Path, survey: dict) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"survey": survey}))
    return path


def _table_survey(params: TableParams, name: str = "toy") -> dict:
    return {"name": name, "source": "table", "table": params.__dict__}


def test_snapshot_writes_both_parquet_files_in_the_schema(tmp_path, monkeypatch, capsys):
    survey = _table_survey(_long_table(tmp_path))
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, survey)
    assert cli.main(["snapshot"]) == 0
    catalog_path, lc_path = schema.raw_paths("toy")
    catalog, lc = pd.read_parquet(catalog_path), pd.read_parquet(lc_path)
    assert list(catalog.columns) == list(schema.CATALOG_COLUMNS) and len(catalog) == 4
    assert list(lc.columns) == list(schema.LIGHTCURVE_COLUMNS) and len(lc) == 15
    out = capsys.readouterr().out
    assert "snapshot toy (table): 4 stars, 15 points" in out and "ECL 2, M 1, unknown 1" in out
    assert sorted(p.name for p in schema.RAW_DIR.iterdir()) == ["toy"]  # no temp folders left


def test_failed_snapshot_keeps_the_previous_one_whole(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, _table_survey(params))
    assert cli.main(["snapshot"]) == 0
    before = pd.read_parquet(schema.raw_paths("toy")[1])
    params.lightcurve_columns = {**params.lightcurve_columns, "err": "sigma"}
    _write_params(tmp_path, _table_survey(params))
    assert cli.main(["snapshot"]) == 2
    assert "'sigma'" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(schema.raw_paths("toy")[1]), before)
    assert sorted(p.name for p in schema.RAW_DIR.iterdir()) == ["toy"]


def test_snapshot_source_argument_overrides_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, {"name": "db", "source": "table",
                             "asassn": {"catalog": str(FIXTURES / "database" / "catalog.csv"),
                                        "lightcurves": str(FIXTURES / "database" / "lightcurves")}})
    assert cli.main(["snapshot", "asassn"]) == 0
    assert len(pd.read_parquet(schema.raw_paths("db")[0])) == 6


def test_synthetic_is_the_default_source_and_checks_its_section(tmp_path, monkeypatch):
    pytest.importorskip("varnet.surveys.synthetic")
    survey = from_dict(SurveyParams, {"synthetic": {"n_stars": 12, "min_stars_per_class": 1}})
    assert survey.source == "synthetic"
    catalog, lc, _ = load_survey(survey)
    assert len(catalog) == 12 and set(lc["id"]) <= set(catalog["id"])
    with pytest.raises(VarnetError, match=r"survey\.synthetic.*n_star\b"):
        load_survey(from_dict(SurveyParams, {"synthetic": {"n_star": 12}}))


def test_snapshot_help_teaches_sources_overlays_and_download(capsys):
    with pytest.raises(SystemExit):
        cli.main(["snapshot", "--help"])
    out = capsys.readouterr().out
    for text in ("synthetic", "asassn", "table", "--download", "configs/surveys/eros1-lmc.yaml",
                 "varnet[download]", "data/raw/<survey.name>"):
        assert text in out


def test_download_needs_the_asassn_source(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, {"name": "x"})
    assert cli.main(["snapshot", "--download"]) == 2
    assert "asassn" in capsys.readouterr().err


# --- bad input: a VarnetError naming the file/column, never a traceback or a half snapshot -----

def _fails_cleanly(tmp_path, monkeypatch, capsys, survey: dict, *expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, survey)
    assert cli.main(["snapshot"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert not schema.RAW_DIR.exists() or not any(schema.RAW_DIR.iterdir())


def test_unreadable_file_is_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    (tmp_path / "lc.csv.gz").write_bytes(b"\x00\x01 not gzip at all \xff" * 10)
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz",
                   "cannot read")


def test_truncated_gzip_is_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    data = (tmp_path / "lc.csv.gz").read_bytes()
    (tmp_path / "lc.csv.gz").write_bytes(data[: len(data) // 2])
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz",
                   "cannot read")


def test_truncated_parquet_is_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    data = (tmp_path / "cat.parquet").read_bytes()
    (tmp_path / "cat.parquet").write_bytes(data[: len(data) // 2])
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "cat.parquet",
                   "cannot read")


def test_missing_lightcurve_column_names_column_and_params_key(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    params.lightcurve_columns = {**params.lightcurve_columns, "mag": "magnitude"}
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz",
                   "'magnitude' not found", "survey.table.lightcurve_columns.mag")


def test_renamed_catalog_column_names_column_and_params_key(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    pd.read_parquet(tmp_path / "cat.parquet").rename(columns={"P": "Period"}).to_parquet(
        tmp_path / "cat.parquet")
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "cat.parquet",
                   "'P' not found", "survey.table.catalog_columns.period", "Period")


def test_renamed_asassn_lightcurve_column_is_named(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "lcs"
    folder.mkdir()
    (folder / "lc101.dat").write_text("hjd,camera,magnitude,mag_err\n2457001.8,bc,13.2,0.02\n")
    _fails_cleanly(tmp_path, monkeypatch, capsys,
                   {"name": "x", "source": "asassn", "asassn": {"lightcurves": str(folder)}},
                   "lc101.dat", "no magnitude column", "magnitude")


def test_text_in_a_numeric_column_is_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    lc = pd.read_csv(tmp_path / "lc.csv.gz")
    lc["m"] = lc["m"].astype(str)
    lc.loc[3, "m"] = "15.2x"
    lc.to_csv(tmp_path / "lc.csv.gz", index=False)
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz",
                   "column 'm'", "'15.2x'", "row 4")


def test_not_an_asassn_catalog_is_named(tmp_path, monkeypatch, capsys):
    (tmp_path / "cat.csv").write_text("name,ra,dec\nx,1,2\n")
    _fails_cleanly(tmp_path, monkeypatch, capsys,
                   {"name": "x", "source": "asassn",
                    "asassn": {"catalog": str(tmp_path / "cat.csv"),
                               "lightcurves": str(FIXTURES / "database" / "lightcurves")}},
                   "cat.csv", "not an ASAS-SN catalog")


def test_empty_catalog_is_an_empty_survey(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    pd.read_parquet(tmp_path / "cat.parquet").iloc[:0].to_parquet(tmp_path / "cat.parquet")
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "cat.parquet",
                   "empty survey")


def test_no_lightcurve_files_is_an_empty_survey(tmp_path, monkeypatch, capsys):
    _fails_cleanly(tmp_path, monkeypatch, capsys,
                   {"name": "x", "source": "asassn",
                    "asassn": {"lightcurves": str(tmp_path / "nothing" / "*.dat")}},
                   "nothing", "empty survey")


def test_empty_lightcurve_file_is_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    (tmp_path / "lc.csv.gz").write_bytes(gzip.compress(b""))
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz", "empty")


def test_band_filter_leaving_nothing_is_an_empty_survey(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    params.bands = ["K"]
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "lc.csv.gz",
                   "no points in bands ['K']", "empty survey")


def test_duplicate_catalog_ids_are_named(tmp_path, monkeypatch, capsys):
    params = _long_table(tmp_path)
    cat = pd.read_parquet(tmp_path / "cat.parquet")
    pd.concat([cat, cat.iloc[[1]]]).to_parquet(tmp_path / "cat.parquet")
    _fails_cleanly(tmp_path, monkeypatch, capsys, _table_survey(params), "cat.parquet",
                   "'s2' appears more than once")


# --- optional downloader against a local HTTP server -------------------------------------------

def test_download_without_the_clients_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from varnet.core.config import DownloadParams
    from varnet.surveys.download import download_asassn

    monkeypatch.setitem(sys.modules, "astroquery.vizier", None)
    with pytest.raises(VarnetError, match=r"varnet\[download\]"):
        download_asassn(tmp_path / "cat.csv", tmp_path / "lcs", DownloadParams())


class _FakeServices(http.server.BaseHTTPRequestHandler):
    """VizieR and Sky Patrol as their clients see them, answering from recorded-shape data."""

    votables: dict[str, bytes] = {}
    targets = pd.DataFrame({"asas_sn_id": [661425129485], "ra_deg": [78.86716],
                            "dec_deg": [-67.20931], "catalog_sources": [["aavsovsx"]]})
    photometry = pd.DataFrame({
        "asas_sn_id": [661425129485] * 3, "jd": [2458515.62, 2458516.68, 2458519.60],
        "flux": [10.37, 9.76, 99.99], "flux_err": [0.09, 0.07, 99.99],
        "mag": [13.859, 13.925, 17.011], "mag_err": [0.0094, 0.0081, 99.99],
        "limit": [17.28, 17.49, 17.01], "fwhm": [1.44, 1.37, 2.1],
        "image_id": ["a", "b", "c"], "camera": ["bi", "bi", "bj"], "quality": ["G", "G", "B"]})
    requests: list[str] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, body: bytes, kind: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _parquet(frame: pd.DataFrame) -> bytes:
        buffer = stdio.BytesIO()
        frame.to_parquet(buffer)
        return buffer.getvalue()

    def do_GET(self):
        type(self).requests.append(f"GET {self.path}")
        if self.path.startswith("/get_current_message"):
            self._send(b"test server")
        elif self.path.startswith("/get_schema"):
            cols = list(self.targets.columns)
            self._send(json.dumps({"master_list": {"col_names": cols,
                                                   "dtypes": ["bigint"] * len(cols)}}).encode())
        elif self.path.startswith("/get_counts"):
            self._send(json.dumps({"master_list": 1}).encode())
        elif self.path.startswith("/get_block_servers"):
            self._send(json.dumps(["block.example"]).encode())
        elif self.path.startswith("/get_block/"):
            self._send(self._parquet(self.photometry))
        else:
            self.send_error(404)

    def do_POST(self):
        type(self).requests.append(f"POST {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.path.startswith("/viz-bin/votable"):
            wanted = next(t for t in self.votables if "Type==" + t in body.replace("%3D", "="))
            self._send(self.votables[wanted], "text/xml")
        elif self.path.startswith("/lookup_cone/"):
            near = "ra78.8671" in self.path  # the first star has a Sky Patrol target, not the 2nd
            self._send(self._parquet(self.targets if near else self.targets.iloc[:0]))
        else:
            self.send_error(404)


def _votables() -> dict[str, bytes]:
    """VizieR's VOTable answer to a II/366 query per Type, one star each."""
    from astropy.table import Table

    rows = Table({"ASASSN-V": ["ASASSN-V J051528.12-671233.5", "ASASSN-V J010101.01+010101.0"],
                  "RAJ2000": [78.8671, 15.2542], "DEJ2000": [-67.2093, 1.0169],
                  "Vmag": [13.84, 15.1], "Amp": [0.36, 0.2], "Per": [0.1866912, 1.2],
                  "Type": ["HADS", "EW"], "Prob": [0.97, 0.9]})
    return {str(row["Type"]): _votable(rows[i:i + 1]) for i, row in enumerate(rows)}


def _votable(rows) -> bytes:
    from astropy.io.votable import from_table

    votable = from_table(rows)
    votable.resources[0].name = "II/366/catv2021"
    votable.resources[0].tables[0].name = "II/366/catv2021"
    buffer = stdio.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


def test_download_through_the_clients_against_a_local_server(tmp_path, monkeypatch, capsys):
    """The real astroquery and skypatrol clients, their hosts routed to a 127.0.0.1 server.

    Both clients hard-code their hosts (https://vizier.cds.unistra.fr, and
    http://asassn-lb01.ifa.hawaii.edu:9006 plus the block servers it names), so requests'
    Session.request is wrapped to send every URL to the local server instead.
    """
    pytest.importorskip("astroquery.vizier")
    pytest.importorskip("pyasassn.client")
    import requests

    _FakeServices.votables = _votables()
    _FakeServices.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeServices)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    local = f"127.0.0.1:{server.server_address[1]}"
    original = requests.Session.request

    def to_local(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        return original(self, method, urlunsplit(("http", local, *parts[2:])), *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", to_local)
    monkeypatch.chdir(tmp_path)
    _write_params(tmp_path, {"name": "dl", "source": "asassn", "asassn": {
        "catalog": "ext/catalog.csv", "lightcurves": "ext/lightcurves",
        "download": {"types": ["HADS", "EW"], "max_stars": 5}}})
    try:
        code = cli.main(["snapshot", "--download"])
    finally:
        server.shutdown()
        server.server_close()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "stars without skypatrol target 1" in out and "lightcurves written 1" in out
    assert sum(r.startswith("POST /viz-bin/votable") for r in _FakeServices.requests) == 2
    written = list((tmp_path / "ext" / "lightcurves").iterdir())
    assert [p.name for p in written] == ["ASASSN-V_J051528.12-671233.5.csv"]
    catalog, lc = (pd.read_parquet(p) for p in schema.raw_paths("dl"))
    assert catalog.set_index("id")["superclass"].to_dict() == {
        "ASASSN-V J051528.12-671233.5": "DSCT", "ASASSN-V J010101.01+010101.0": "ECL"}
    assert lc["mag"].tolist() == [13.859, 13.925, SENTINEL_MAG]
    assert set(lc["band"]) == {"g"}


# --- the real sets in ../shared/data -----------------------------------------------------------

OVERLAY_COUNTS = {
    "eros1-lmc": ({"CEPH": 736, "ECL": 439, "M": 235, "VAR": 2231}, 861_339, {"B", "R"}),
    "sdss-s82": ({"RRAB": 379, "RRCD": 104}, 82_231, {"g", "r", "i"}),
    "gaia-dr3": ({"CEPH": 500, "DSCT": 500, "ECL": 500, "VAR": 500, "unknown": 500}, 134_028,
                 {"G"}),
    "asas-cesium": ({"CEPH": 2, "ECL": 2, "M": 3}, 3_881, {"V"}),
}


def overlay_survey(name: str, shared_data: Path) -> SurveyParams:
    """The overlay's survey section with ../shared/data pointing at the fixture's folder."""
    text = (CONFIGS / f"{name}.yaml").read_text().replace("../shared/data", str(shared_data))
    return from_dict(SurveyParams, yaml.safe_load(text)["survey"], where="survey")


@pytest.mark.parametrize("name", sorted(OVERLAY_COUNTS))
def test_real_sets_load_through_their_overlays(name, shared_data):
    expected, n_points, bands = OVERLAY_COUNTS[name]
    started = time.perf_counter()
    catalog, lc, _ = load_survey(overlay_survey(name, shared_data))
    seconds = time.perf_counter() - started
    counts = catalog["superclass"].fillna("unknown").value_counts().to_dict()
    assert counts == expected
    assert len(lc) == n_points and set(lc["band"]) == bands
    assert lc["id"].isin(catalog["id"]).all()
    print(f"{name}: {len(catalog)} stars {counts}, {len(lc)} points, {seconds:.1f} s")


def test_overlays_hold_complete_data_sections_and_known_train_keys():
    reference = yaml.safe_load((CONFIGS.parents[1] / "params.yaml").read_text())
    for path in sorted(CONFIGS.glob("*.yaml")):
        overlay = yaml.safe_load(path.read_text())
        # complete data sections; a train section may set a few keys (EROS-1: class_weight)
        assert set(overlay) - {"train"} == {"survey", "cuts", "sequences"}, path
        assert set(overlay.get("train", {})) <= set(reference["train"]), path
        assert set(overlay["cuts"]) == set(reference["cuts"]), path
        assert set(overlay["sequences"]) == set(reference["sequences"]), path
        assert overlay["cuts"]["min_epochs"] == overlay["sequences"]["length"], path


def test_eros_periods_are_physical_except_for_miras(shared_data):
    catalog, _, _ = load_survey(overlay_survey("eros1-lmc", shared_data))
    raw = pd.read_csv(shared_data / "eros1-lmc" / "catalog.csv.gz", dtype={"star_id": str})
    merged = catalog.merge(raw, left_on="id", right_on="star_id")
    miras = merged["type_name"] == "MIRA"
    assert np.allclose(merged.loc[miras, "period_x"], merged.loc[miras, "period_y"])
    assert np.allclose(merged.loc[~miras, "period_x"], merged.loc[~miras, "period_true"])


def test_skypatrol_export_reads_through_the_asassn_reader(shared_data):
    catalog, lc, counts = read_asassn_survey(AsassnParams(
        lightcurves=str(shared_data / "small-fixtures" / "asassn-skypatrol-vxmen" / "vxmen.csv")))
    assert catalog["id"].tolist() == ["vxmen"] and catalog["superclass"].isna().all()
    assert len(lc) == 1065 and set(lc["band"]) == {"g"}  # cameras bE..bp are g
    assert lc["time"].between(2458029, 2459086).all()
    assert lc["mag"].between(12.85, 13.5).all() and counts["upper_limits_flagged"] == 0


def test_paper_class_probabilities_join_on_database_ids(shared_data, tmp_path):
    probs = pd.read_csv(shared_data / "tsang2019-reference" / "asassn_class_probs.csv.gz",
                        dtype={"asassn_id": str}, nrows=3)
    catalog = pd.read_csv(FIXTURES / "database" / "catalog.csv", dtype={"id": str}).head(3)
    catalog["id"] = probs["asassn_id"].to_numpy()
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    joined, n = asassn.join_class_probabilities(
        asassn.read_asassn_catalog(tmp_path / "catalog.csv"),
        shared_data / "tsang2019-reference" / "asassn_class_probs.csv.gz")
    assert n == 3
    assert joined["class_probability"].tolist() == probs["class_probability"].tolist()
