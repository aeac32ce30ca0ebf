"""`mlflow models serve -m models:/varnet@champion` on a free localhost port answers like
`varnet score`, and malformed requests get a JSON error while the server keeps serving.

The server is a subprocess in its own process group, stopped at the end whatever happens; every
wait has a deadline so the test cannot hang.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import tiny_project

from benchmarks.http_concurrency import free_port, start_server, stop_server
from varnet.cli import main as varnet_main
from varnet.core.taxonomy import CLASSES

pytestmark = pytest.mark.timeout(300)
START_DEADLINE_S = 150


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def request_body(frame: pd.DataFrame, level: str = "star") -> bytes:
    """The documented request: pandas 'split' orientation plus the predict params."""
    split = frame.to_dict(orient="split", index=False)
    return json.dumps({"dataframe_split": split, "params": {"level": level}}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tiny_project.registered_project(tmp_path_factory)
    port = free_port()
    proc = start_server("models:/varnet@champion", port, root / f"serve-{port}.log", cwd=root,
                        tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                        deadline_s=START_DEADLINE_S)
    try:
        yield root, f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def raw_lightcurves() -> pd.DataFrame:
    """Three stars without periods (Lomb–Scargle) and one too short to score."""
    _, lc = tiny_project.survey(stars_per_class=1)
    lc = lc[lc["id"].isin(["rrab0", "m0", "var0"])]
    short = tiny_project.star_lightcurve("short", 0.5, 10, 7)
    return pd.concat([lc, short], ignore_index=True)[["id", "time", "mag", "err", "band"]]


def test_http_answers_equal_varnet_score(server, tmp_path):
    root, url = server
    lc = raw_lightcurves()
    lc.to_csv(tmp_path / "lc.csv", index=False)
    with tiny_project.inside(root):
        assert varnet_main(["score", str(tmp_path / "lc.csv"), "-o",
                            str(tmp_path / "scores.csv")]) == 0
    expected = pd.read_csv(tmp_path / "scores.csv", dtype={"id": str})

    status, answer = post(f"{url}/invocations", request_body(lc))
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"])
    assert served["id"].tolist() == expected["id"].tolist() == ["m0", "rrab0", "var0", "short"]
    assert served["class"].iloc[:3].tolist() == expected["class"].iloc[:3].tolist()
    numeric = [c for c in expected.columns if c.startswith(("prob_", "energy")) or c == "period"]
    # equal up to float32 rounding of the network (batches are composed differently)
    np.testing.assert_allclose(served[numeric].to_numpy(float), expected[numeric].to_numpy(float),
                               rtol=1e-5, atol=1e-4, equal_nan=True)
    for column in ("novel_p80", "novel_p95", "n_sequences", "n_points", "period_source"):
        assert served[column].tolist() == expected[column].tolist(), column
    assert (served["period_source"].iloc[:3] == "lomb-scargle").all()
    assert "fewer than 20 good points" in served["note"].iloc[3]

    status, answer = post(f"{url}/invocations", request_body(lc[lc["id"] == "m0"],
                                                             level="sequence"))
    assert status == 200 and pd.DataFrame(answer["predictions"])["sequence"].tolist() == [0, 1]


def test_one_scoring_path_evaluate_score_and_http_agree(server, tmp_path):
    """Issue 10: the test stars scored by `varnet evaluate` (from the training's predictions),
    by `varnet score` and by the HTTP server get the same class, calibrated probabilities,
    energies and conformal p-values."""
    from varnet.core import files
    from varnet.core.schema import ModelFolder
    from varnet.evaluation import evaluate

    root, url = server
    folder = ModelFolder(root / "models" / "joint")
    result = evaluate.evaluate_variant("joint", folder, [80, 95], [0.05])
    stars = result.levels["star"]
    assert set(stars["subset"]) == {"test", "novel_test"}
    catalog, lc = tiny_project.survey()
    lc = lc[lc["id"].isin(stars["star_id"])].copy()
    lc["period"] = lc["id"].map(catalog.set_index("id")["period"])
    lc.to_csv(tmp_path / "test-stars.csv", index=False)
    with tiny_project.inside(root):
        assert varnet_main(["score", str(tmp_path / "test-stars.csv"), "-o",
                            str(tmp_path / "scores.csv")]) == 0
    scored = pd.read_csv(tmp_path / "scores.csv", dtype={"id": str}).set_index("id")
    status, answer = post(f"{url}/invocations", request_body(lc))
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"]).set_index("id")

    order = list(stars["star_id"])
    expected = pd.DataFrame({"class": np.asarray(CLASSES)[stars["gamma"].argmax(axis=1)],
                             "energy": stars["energy"], "p_novel": stars["p_novel"],
                             **{f"prob_{c}": stars["prob"][:, k] for k, c in enumerate(CLASSES)},
                             **{f"gamma_{c}": stars["gamma"][:, k]
                                for k, c in enumerate(CLASSES)},
                             **{f"p_{c}": stars["p_class"][:, k] for k, c in enumerate(CLASSES)}},
                            index=order)
    numeric = [c for c in expected.columns if c != "class"]
    for name, got in (("varnet score", scored), ("HTTP", served)):
        got = got.loc[order]
        assert got["class"].tolist() == expected["class"].tolist(), name
        np.testing.assert_allclose(got[numeric].to_numpy(float), expected[numeric].to_numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    thresholds = files.read_json(folder.thresholds)["star"]
    assert (served.loc[order, "novel_p95"] == (stars["energy"] >= thresholds["95"])).all()


def test_malformed_requests_get_json_errors_and_the_server_survives(server):
    _, url = server
    lc = raw_lightcurves()
    bad_requests = {
        "missing column": request_body(lc.drop(columns="err")),
        "not JSON": b"{this is not json",
        "no rows": request_body(lc.iloc[:0]),
        "unknown level": request_body(lc, level="galaxy"),
    }
    for what, body in bad_requests.items():
        status, answer = post(f"{url}/invocations", body)
        assert 400 <= status < 500, (what, status, answer)
        assert answer.get("error_code") and answer.get("message"), (what, answer)
    status, answer = post(f"{url}/invocations", request_body(lc.iloc[:3].assign(mag=np.nan)))
    assert status == 200 and "fewer than" in answer["predictions"][0]["note"]  # NaN points
    status, answer = post(f"{url}/invocations", request_body(lc))
    assert status == 200 and len(answer["predictions"]) == 4  # still serving
