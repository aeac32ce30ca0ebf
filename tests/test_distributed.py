"""`varnet hats-catalog` and `varnet score` on a real Dask cluster (distributed.LocalCluster, two
worker processes): a tiny default survey (`varnet snapshot`) becomes a HATS catalog with
hats-import, is scored through LSDB, and gives the rows of the single-process `varnet score`;
bad stars get their note rows without failing the job, and bad input is a message."""

from __future__ import annotations

from pathlib import Path

import lsdb
import nested_pandas as npd
import numpy as np
import pandas as pd
import pytest
import tiny_project
import yaml
from distributed import Client, LocalCluster

from varnet.cli import main as varnet_main
from varnet.core.schema import PHOT_COLUMNS
from varnet.core.taxonomy import CLASSES
from varnet.serving import distributed as dist

pytestmark = pytest.mark.timeout(300)
SNAPSHOT = Path("data/raw/synthetic")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_project.registered_project(tmp_path_factory)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each: what `--workers 2` starts, shared by the tests."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local, Client(local) as client:
        yield local.scheduler_address, client


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    """A fresh project with a 30-star snapshot of the default survey, converted with the
    command's defaults (data/raw/synthetic -> data/processed/hats/synthetic) on its own
    `--workers 2` cluster."""
    root = tmp_path_factory.mktemp("survey")
    overlay = root / "small.yaml"
    overlay.write_text(yaml.safe_dump({"survey": {"synthetic": {"n_stars": 30,
                                                                "min_stars_per_class": 2}}}))
    params = ["--params", str(tiny_project.ROOT_PARAMS), "--params", str(overlay)]
    with tiny_project.inside(root):
        assert varnet_main([*params, "snapshot"]) == 0
        assert varnet_main([*params, "hats-catalog", "--workers", "2",
                            "--stars-per-partition", "4"]) == 0
    return root


def long_table(catalog: pd.DataFrame, lightcurves: pd.DataFrame) -> pd.DataFrame:
    """The light curves with each star's catalog period and Gaia values on its rows: what the
    HATS catalog hands the model, as the local path reads it."""
    per_star = catalog[["id", "period", *PHOT_COLUMNS]]
    return lightcurves.merge(per_star, on="id", how="left")


def score_cli(root: Path, *argv: str) -> int:
    with tiny_project.inside(root):
        return varnet_main(["score", *argv])


def same_rows(hats_scores: pd.DataFrame, local: pd.DataFrame) -> None:
    """Every column of every row equal, floats to float32 precision, in star order."""
    ours = hats_scores.reset_index(drop=True).drop(columns=["ra", "dec"])
    ours = ours.sort_values("id", ignore_index=True)
    theirs = local.sort_values("id", ignore_index=True)
    ours = ours.astype(theirs.dtypes.to_dict())   # LSDB reads arrow types: NA, not NaN
    pd.testing.assert_frame_equal(ours, theirs, rtol=dist.SAME_SCORES_RTOL,
                                  atol=dist.SAME_SCORES_ATOL)


def test_a_hats_catalog_on_two_workers_gives_the_local_rows(project, cluster, survey, tmp_path):
    address, client = cluster
    catalog = pd.read_parquet(survey / SNAPSHOT / "catalog.parquet")
    hats_dir = survey / "data/processed/hats/synthetic"
    stars = lsdb.open_catalog(hats_dir)
    assert stars.npartitions > 2 and len(stars.compute()) == len(catalog)

    out = tmp_path / "scores-hats"
    assert score_cli(project, str(hats_dir), "-o", str(out), "--scheduler", address) == 0
    scored = lsdb.open_catalog(out)
    assert scored.get_healpix_pixels() == stars.get_healpix_pixels()  # the input's partitions
    rows = scored.compute()
    positions = catalog.set_index("id").loc[rows["id"], ["ra", "dec"]]
    np.testing.assert_array_equal(rows[["ra", "dec"]].to_numpy(float), positions.to_numpy())

    raw = tmp_path / "long.parquet"
    long_table(catalog, pd.read_parquet(survey / SNAPSHOT / "lightcurves.parquet")
               ).to_parquet(raw)
    local = tmp_path / "local.parquet"
    assert score_cli(project, str(raw), "-o", str(local)) == 0
    local_rows = pd.read_parquet(local)
    same_rows(rows, local_rows)
    assert local_rows["class"].isin(CLASSES).all() and local_rows["note"].isna().all()

    # each worker loaded the model once and scored several partitions with it
    caches = client.run(lambda: dist.worker_model.cache_info())
    assert len(caches) == 2 and all(info.misses == 1 for info in caches.values())
    assert sum(info.hits + info.misses for info in caches.values()) >= stars.npartitions + 1

    # a folder of files on the cluster: one task per file, the local output row for row
    folder = tmp_path / "folder"
    folder.mkdir()
    table = pd.read_parquet(raw)
    first = table["id"].isin(table["id"].unique()[:12])
    table[first].to_parquet(folder / "a.parquet")
    table[~first].to_csv(folder / "b.csv", index=False)
    files_out = tmp_path / "files.parquet"
    assert score_cli(project, str(folder), "-o", str(files_out), "--scheduler", address) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(files_out), local_rows,
                                  rtol=dist.SAME_SCORES_RTOL,
                                  atol=dist.SAME_SCORES_ATOL)


def test_bad_stars_get_their_note_rows_without_failing_the_job(project, cluster, survey,
                                                               tmp_path, capsys):
    address, _ = cluster
    catalog = pd.read_parquet(survey / SNAPSHOT / "catalog.parquet")
    curves = pd.read_parquet(survey / SNAPSHOT / "lightcurves.parquet")
    good = catalog["id"].iloc[:3].tolist()
    curves = curves[curves["id"].isin(good)]
    short = curves[curves["id"] == good[0]].head(5).assign(id="short")
    blank = curves[curves["id"] == good[1]].assign(id="nanmag", mag=np.nan)
    flagged = curves[curves["id"] == good[2]].assign(id="flagged")
    flagged["mag"] = np.where(np.arange(len(flagged)) % 2 == 0, 99.99, flagged["mag"])
    # each bad star sits where a good one does: in the same partition
    twins = catalog.set_index("id").loc[[*good, good[0]]].reset_index()
    twins["id"] = ["short", "nanmag", "flagged", "no-lightcurve"]
    stars = pd.concat([catalog[catalog["id"].isin(good)], twins], ignore_index=True)
    lightcurves = pd.concat([curves, short, blank, flagged], ignore_index=True)
    stars.to_parquet(tmp_path / "stars.parquet")
    lightcurves.to_parquet(tmp_path / "lc.parquet")
    hats_dir = tmp_path / "hats"
    assert varnet_main(["hats-catalog", "--lightcurves", str(tmp_path / "lc.parquet"),
                        "--catalog", str(tmp_path / "stars.parquet"), "-o", str(hats_dir),
                        "--scheduler", address]) == 0
    assert "1 catalog stars without light curves left out" in capsys.readouterr().out

    out = tmp_path / "scores-hats"
    assert score_cli(project, str(hats_dir), "-o", str(out), "--scheduler", address) == 0
    assert "2 without a class" in capsys.readouterr().out   # short, nanmag
    rows = lsdb.open_catalog(out).compute()
    cell = rows.index.to_series().groupby(rows["id"].to_numpy()).first()
    assert cell["short"] == cell[good[0]] and cell["nanmag"] == cell[good[1]]
    local = tmp_path / "local.parquet"
    long_table(stars, lightcurves).to_parquet(tmp_path / "long.parquet")
    assert score_cli(project, str(tmp_path / "long.parquet"), "-o", str(local)) == 0
    same_rows(rows, pd.read_parquet(local))

    by_id = rows.set_index("id")
    assert "fewer than 20 good points" in by_id.loc["short", "note"]
    assert by_id.loc["nanmag", "n_points"] == 0 and "(0 in all)" in by_id.loc["nanmag", "note"]
    assert by_id.loc["flagged", "n_points"] == len(flagged) // 2   # the 99.99s dropped, counted
    assert by_id.loc["flagged", "class"] in CLASSES and pd.isna(by_id.loc["flagged", "note"])
    assert by_id.loc[good, "class"].isin(CLASSES).all()


def test_bad_input_is_a_message_not_a_traceback(project, cluster, survey, tmp_path, capsys):
    address, _ = cluster
    catalog = pd.read_parquet(survey / SNAPSHOT / "catalog.parquet")
    curves = pd.read_parquet(survey / SNAPSHOT / "lightcurves.parquet")
    stray = curves[curves["id"] == catalog["id"].iloc[0]].assign(id="stray")
    pd.concat([curves, stray]).to_parquet(tmp_path / "lc.parquet")
    hats_dir = survey / "data/processed/hats/synthetic"
    empty = tmp_path / "empty"
    empty.mkdir()
    convert = ["hats-catalog", "--catalog", str(survey / SNAPSHOT / "catalog.parquet"),
               "-o", str(tmp_path / "hats"), "--scheduler", address, "--lightcurves"]
    for argv, message in (
            ([*convert, str(tmp_path / "lc.parquet")],
             "star 'stray' has no row in"),
            ([*convert, *[str(survey / SNAPSHOT / "lightcurves.parquet")] * 2],
             "given more than once"),
            (["score", str(hats_dir), "-o", str(tmp_path / "x.csv")],
             "a HATS catalog in gives a HATS catalog out"),
            (["score", str(hats_dir), "-o", str(tmp_path / "o"), "--column", "lc=curves"],
             "missing column(s) ['curves']"),
            (["score", str(empty), "-o", str(tmp_path / "o.csv"), "--scheduler", address],
             "neither a HATS catalog")):
        with tiny_project.inside(project):
            assert varnet_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "hats").exists() and not (tmp_path / "o").exists()

    # rows of a star apart: found by the check on a worker, named as `varnet score` names it
    shuffled = pd.concat([curves.iloc[:10], curves.iloc[500:], curves.iloc[10:500]])
    shuffled.to_parquet(tmp_path / "shuffled.parquet")
    assert varnet_main([*convert, str(tmp_path / "shuffled.parquet")]) == 2
    assert "are not contiguous" in capsys.readouterr().err


def test_a_star_without_epochs_keeps_one_empty_epoch():
    epochs = pd.DataFrame({"id": ["a", "a", "b"], "time": [1.0, 2.0, 3.0],
                           "mag": [12.0, 12.1, 13.0], "err": 0.02,
                           "period": [np.nan, np.nan, 3.0]})
    nested = npd.NestedFrame.from_flat(epochs, base_columns=[], on="id", name=dist.LC)
    stars = pd.DataFrame({"id": ["a", "b", "c"], "period": [0.5, 1.0, 2.0]}).set_index("id")
    stars = npd.NestedFrame(stars.join(nested)).reset_index()
    table = dist.lightcurve_table(stars, {})
    assert table["id"].tolist() == ["a", "a", "b", "c"]
    assert table["period"].tolist() == [0.5, 0.5, 3.0, 2.0]  # an epoch's own value wins
    assert table["time"].iloc[:3].tolist() == [1.0, 2.0, 3.0] and pd.isna(table["time"].iloc[3])

    # a survey's own column names (--column ours=theirs) give the same table
    theirs = npd.NestedFrame.from_flat(epochs.rename(columns={"time": "mjd"}), base_columns=[],
                                       on="id", name="curve")
    stars = pd.DataFrame({"objid": ["a", "b", "c"], "period": [0.5, 1.0, 2.0]})
    stars = npd.NestedFrame(stars.set_index("objid").join(theirs)).reset_index()
    renamed = dist.lightcurve_table(stars, {"id": "objid", "lc": "curve", "time": "mjd"})
    pd.testing.assert_frame_equal(renamed[table.columns], table)


def test_a_local_cluster_gives_each_worker_one_partition_at_a_time():
    """One thread per worker and no partition queued behind a running one (the queued one
    would leave the other worker idle at the end of the job)."""
    with dist.dask_client(2, None) as client:
        threads = client.nthreads()
        saturation = client.run_on_scheduler(lambda dask_scheduler:
                                             dask_scheduler.WORKER_SATURATION)
    assert sorted(threads.values()) == [1, 1]
    assert saturation == dist.WORKER_SATURATION == 1.0
