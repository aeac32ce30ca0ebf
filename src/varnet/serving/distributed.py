"""`varnet score` on a Dask cluster: a HATS catalog through LSDB, or many light-curve files.

HATS catalog (what `varnet hats-catalog` writes, and how surveys such as ZTF and Rubin serve
their light curves): one row per star with id, ra, dec, optional period / phot_g_abs / bp_rp /
w_rp, and a nested column ``lc`` (time, mag, err, optional band) holding the star's epochs
(nested-pandas). We chose this form over a flat table of epochs: a row is a whole star, so every
HEALPix partition holds whole stars by construction (a flat epoch table only does if every epoch
carries its star's exact position), a partition needs no regrouping, and it is LSDB's own form
for time-domain data. Each partition is one task: flattened to the long table `predict` takes,
scored in chunks of whole stars (``score.chunk_rows`` epochs, so a worker's memory is bounded
by the partition plus one chunk, whatever the survey's size), written as one partition of the
output HATS catalog (id, the model's columns, ra, dec; same pixels). A star that cannot be scored
gets its note row, as in the local path; only a malformed catalog fails the job.

Files (a folder of long-table files, or files with --workers/--scheduler): one task per file,
read in chunks of whole stars exactly as the local path does, rows written to the -o file in
input order; a file is the unit of parallelism.

The model is loaded once per worker process (`worker_model`, cached by tracking and model URI),
never once per task; an alias such as models:/varnet@champion is resolved to its version once,
on the client, so every worker scores with the same version even if the alias moves mid-job.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import mlflow
import numpy as np
import pandas as pd
from tqdm import tqdm

from varnet.core.config import ScoreParams
from varnet.core.errors import VarnetError
from varnet.serving import score

try:
    import hats
    import lsdb
    from distributed import Client, LocalCluster
    from hats.catalog.catalog_collection import CatalogCollection
except ImportError as exc:   # an optional extra: the local path runs without it
    raise VarnetError(f"{exc.name} is not installed; HATS catalogs and Dask clusters need "
                      "pip install 'varnet[survey]'") from exc

LC = "lc"
"""The nested light-curve column of a HATS catalog."""
EPOCH_COLUMNS = ("time", "mag", "err")
FILE_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
"""Files of a folder input that are scored (each a long table of whole stars)."""
SAME_SCORES_RTOL = 1e-5
"""How closely a star's scores agree between a distributed and a local run. The network is
float32 and a star's sequences sit elsewhere in its padded batch when the stars are split into
partitions: the same 8,000 stars scored in reverse order in one process differ by up to 8e-6
of a value (docs/scaling.md), exactly as much as the 2-worker run from the local one."""
SAME_SCORES_ATOL = 1e-6
"""... and in absolute terms, which decides for values near zero."""
WORKER_SATURATION = 1.0
"""Partitions a local worker holds per thread (Dask's default 1.1 rounds up to 2: one scoring,
one queued behind it). A partition scores for seconds, so the queued one only made the other
worker idle at the end: 1.5-2.3 s of a 2-worker job of 18 s (12 partitions, 1,200 stars
without periods), 0.0-0.2 s at 1.0 (docs/scaling.md)."""


# --- the cluster and the model ---------------------------------------------------------------

def default_workers() -> int:
    """One worker per usable core: the preprocessing is pandas (one core per process)."""
    return len(os.sched_getaffinity(0))


@contextmanager
def dask_client(workers: int | None, scheduler: str | None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, else of a new local cluster of ``workers``
    processes with one thread each (TensorFlow too: N workers use N cores, not N x N), each
    given one partition at a time (``WORKER_SATURATION``)."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise VarnetError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    threads = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with dask.config.set({"distributed.scheduler.worker-saturation": WORKER_SATURATION}), \
            LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                         processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                         env=threads) as cluster, Client(cluster) as client:
        print(f"local Dask cluster: {len(cluster.workers)} workers, dashboard "
              f"{client.dashboard_link}")
        yield client


def resolve_model(uri: str) -> str:
    """``models:/name@alias`` as ``models:/name/<version>``; other URIs as they are."""
    match = re.fullmatch(r"models:/([^/@]+)@(.+)", uri)
    if not match:
        return uri
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(match[1], match[2]).version
    except mlflow.exceptions.MlflowException as exc:
        raise VarnetError(f"cannot load model {uri} from {mlflow.get_tracking_uri()}: "
                          f"{exc.message.splitlines()[0]} (list versions with `mlflow ui`; "
                          "set the champion with `varnet promote`)") from exc
    return f"models:/{match[1]}/{version}"


@functools.lru_cache(maxsize=2)
def worker_model(tracking_uri: str, model_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """The model in this process, loaded on its first task and kept for the next ones."""
    mlflow.set_tracking_uri(tracking_uri)
    return score.load_model(model_uri)


# --- a HATS catalog --------------------------------------------------------------------------

def is_hats(path: Path) -> bool:
    return (path / "hats.properties").is_file() or (path / "collection.properties").is_file()


def open_stars(path: Path, columns: dict[str, str]) -> lsdb.Catalog:
    """The catalog's main table with the columns scoring reads (``columns``: ours -> theirs),
    a clear error if a required one is missing. Lazy: only metadata is read here."""
    structure = hats.read_hats(path)
    if isinstance(structure, CatalogCollection):   # score the main table, not its margin
        path = structure.main_catalog_dir
    stars = lsdb.open_catalog(path, columns="all")
    theirs = {ours: columns.get(ours, ours) for ours in ("id", LC, *EPOCH_COLUMNS,
                                                        *score.OPTIONAL)}
    fields = getattr(stars.dtypes.get(theirs[LC]), "column_dtypes", {})
    missing = [theirs[c] for c in ("id", LC) if theirs[c] not in stars.columns]
    missing += [f"{theirs[LC]}.{theirs[c]}" for c in EPOCH_COLUMNS
                if theirs[LC] in stars.columns and theirs[c] not in fields]
    if missing:
        raise VarnetError(f"{path}: missing column(s) {missing}; a HATS catalog to score needs "
                          f"one row per star with id and a nested light-curve column lc "
                          f"(time, mag, err, optional band) as `varnet hats-catalog` writes "
                          f"(other names: --column id=objectid --column lc=lightcurve); it has "
                          f"{list(stars.columns)}")
    info = stars.hc_structure.catalog_info
    keep = [theirs["id"], info.ra_column, info.dec_column, theirs[LC],
            *(theirs[c] for c in score.OPTIONAL if theirs[c] in stars.columns)]
    return lsdb.open_catalog(path, columns=list(dict.fromkeys(keep)))


def lightcurve_table(stars: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The long table `predict` takes, from rows of stars with a nested light curve.

    Per-star values (period, Gaia) are repeated on the star's epochs; an epoch's own value wins
    where it has one (as in `varnet score --periods`). A star without a single epoch keeps one
    empty epoch, so it gets its note row ("0 in all") instead of vanishing from the output.
    """
    ours = {theirs: name for name, theirs in columns.items()}
    stars = stars.reset_index(drop=True)
    epochs = stars[columns.get(LC, LC)].nest.to_flat().rename(columns=ours)
    empty = stars.index[np.asarray(stars[columns.get(LC, LC)].nest.len()) == 0]
    if len(empty):
        blank = pd.DataFrame(np.nan, index=empty, columns=epochs.columns)
        epochs = pd.concat([epochs, blank]).sort_index(kind="stable")
    per_star = stars.rename(columns=ours)[["id", *(c for c in score.OPTIONAL
                                                   if c in stars.rename(columns=ours))]]
    table = epochs.join(per_star, rsuffix="_star")
    for column in per_star.columns.drop("id").intersection(epochs.columns):
        table[column] = table[column].fillna(table.pop(f"{column}_star"))
    return table.reset_index(drop=True)


def score_partition(stars: pd.DataFrame, pixel, *, model: tuple[str, str], level: str,
                    alpha: float, chunk_rows: int, columns: dict[str, str], ra: str, dec: str,
                    empty: pd.DataFrame | None = None) -> pd.DataFrame:
    """One partition of stars scored: the model's rows plus ra, dec, on the stars' spatial
    index (the output catalog keeps the input's pixels). ``empty`` is the output's schema; every
    partition is cast to it, so a partition of unscored stars writes the same parquet types."""
    if stars.empty and empty is not None:
        return empty
    star_id = stars[columns.get("id", "id")].astype(str)
    if star_id.duplicated().any():
        raise VarnetError(f"partition {pixel}: star {star_id[star_id.duplicated()].iloc[0]!r} "
                          "is in two rows; each star is scored once (one row per star)")
    lengths = np.asarray(stars[columns.get(LC, LC)].nest.len())
    group = (np.cumsum(lengths) - lengths) // chunk_rows   # chunks of whole stars
    results = []
    for g in np.unique(group):
        chunk = lightcurve_table(stars[group == g], columns)
        try:
            results.append(score.predict(worker_model(*model), chunk, level, alpha))
        except VarnetError as exc:   # an MlflowException does not travel back to the client
            raise VarnetError(f"partition {pixel}: {exc}") from None
    where = pd.DataFrame({ra: stars[ra].to_numpy(), dec: stars[dec].to_numpy(),
                          "row": np.arange(len(stars))}, index=star_id.to_numpy())
    out = pd.concat(results, ignore_index=True).join(where, on="id")
    # a plain Index: pandas' set_index turns 2 evenly spaced values into a RangeIndex, which
    # pyarrow keeps as metadata only and nested-pandas drops, losing the spatial index column
    out.index = pd.Index(stars.index.to_numpy()[out.pop("row").to_numpy()],
                         name=stars.index.name)
    return out if empty is None else out.astype(empty.dtypes.to_dict())


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """A new folder beside ``target`` that replaces it on success (never half a catalog);
    an existing ``target`` is replaced only if it is a HATS catalog, not any folder."""
    if target.exists() and not (target.is_dir() and (is_hats(target) or not any(
            target.iterdir()))):
        raise VarnetError(f"{target}: exists and is not a HATS catalog; not replacing it "
                          "(choose another -o)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield staging / target.name
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def score_catalog(client: Client, stars: lsdb.Catalog, output: Path, model: tuple[str, str],
                  *, level: str, alpha: float, chunk_rows: int, columns: dict[str, str]
                  ) -> dict[str, Any]:
    """Score a HATS catalog (`open_stars`) into a HATS catalog of one row per star (or
    sequence) at ``output``."""
    start = time.monotonic()
    info = stars.hc_structure.catalog_info
    kwargs = {"model": model, "level": level, "alpha": alpha, "chunk_rows": chunk_rows,
              "columns": columns, "ra": info.ra_column, "dec": info.dec_column}
    # the output's columns and types from the model itself, on a worker (which keeps the model)
    empty = client.submit(score_partition, stars.head(1), "(first star)", **kwargs,
                          pure=False).result().iloc[:0]
    scored = stars.map_partitions(score_partition, include_pixel=True, meta=empty,
                                  empty=empty, **kwargs)
    with replacing_folder(output) as tmp:
        scored.write_catalog(tmp, catalog_name=output.name, as_collection=False,
                             tqdm_kwargs={"desc": "scoring", "unit": "partition"})
    written = hats.read_hats(output)
    # rows with a note, from the parquet footers' statistics: no second pass over the output
    notes = written.per_pixel_statistics(include_columns=["note"],
                                         include_stats=["row_count", "null_count"]).sum()
    return {"stars": info.total_rows, "partitions": stars.npartitions,
            "output_rows": written.catalog_info.total_rows,
            "unscored": int(notes["note: row_count"] - notes["note: null_count"]),
            "seconds": time.monotonic() - start}


# --- light-curve files -----------------------------------------------------------------------

def input_files(inputs: list[Path]) -> list[Path]:
    """The inputs, each folder replaced by its light-curve files (by name)."""
    found: list[Path] = []
    for path in inputs:
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir()
                        if p.is_file() and p.name.lower().endswith(FILE_SUFFIXES))
        if not inside:
            raise VarnetError(f"{path}: a folder that is neither a HATS catalog (no "
                              "hats.properties) nor holds light-curve files "
                              f"({', '.join(FILE_SUFFIXES)})")
        found += inside
    return found


def score_file(path: Path, fmt: str, chunk_rows: int, periods: pd.Series | None,
               model: tuple[str, str], level: str, alpha: float) -> tuple[pd.DataFrame, int]:
    """One input file scored on a worker, in chunks of whole stars: (rows, epochs read)."""
    results, epochs = [], 0
    for chunk in score.star_chunks(path, fmt, chunk_rows, periods):
        results.append(score.predict(worker_model(*model), chunk, level, alpha))
        epochs += len(chunk)
    return pd.concat(results, ignore_index=True), epochs


def score_files(client: Client, inputs: list[Path], output: Path, model: tuple[str, str], *,
                fmt: str, level: str, chunk_rows: int, periods: pd.Series | None,
                alpha: float) -> dict[str, Any]:
    """Score each file on a worker; rows go to ``output`` in input order, as locally."""
    if repeated := sorted({str(p) for p in inputs if inputs.count(p) > 1}):
        raise VarnetError(f"{repeated[0]}: given more than once; each star is scored once")
    start = time.monotonic()
    shared = client.scatter(periods, broadcast=True) if periods is not None else None
    futures = [client.submit(score_file, path, fmt, chunk_rows, shared, model, level, alpha,
                             pure=False) for path in inputs]
    first_file: dict[str, Path] = {}
    n_rows = n_stars = 0
    with score.OutputWriter(output) as out, tqdm(total=len(inputs), unit="file", disable=None,
                                                 desc="scoring") as bar:
        for path, future in zip(inputs, futures, strict=True):
            result, epochs = future.result()
            future.release()
            stars = result["id"].unique()
            for star in stars:
                if first_file.setdefault(star, path) != path:
                    raise VarnetError(f"{path}: star {star!r} is also in {first_file[star]}; "
                                      "each star is scored once (merge its rows into one file)")
            out.write(result)
            n_rows += epochs
            n_stars += len(stars)
            bar.update()
    seconds = time.monotonic() - start
    return {"rows": n_rows, "stars": n_stars, "output_rows": out.rows, "seconds": seconds,
            "rows_per_s": n_rows / seconds if seconds else float("nan")}


# --- command ---------------------------------------------------------------------------------

def renames(pairs: list[str] | None) -> dict[str, str]:
    """The --column ours=theirs pairs as a dict, our names checked."""
    known = ("id", LC, *EPOCH_COLUMNS, *score.OPTIONAL)
    out = {}
    for pair in pairs or []:
        ours, _, theirs = pair.partition("=")
        if ours not in known or not theirs:
            raise VarnetError(f"--column {pair!r}: give ours=theirs with ours one of "
                              f"{list(known)}, e.g. --column id=objectid")
        out[ours] = theirs
    return out


def run(args: argparse.Namespace, cfg: ScoreParams) -> int:
    """`varnet score` on a cluster (score.run dispatches here); MLflow already configured."""
    model = (mlflow.get_tracking_uri(), resolve_model(args.model or cfg.model))
    level, chunk_rows = args.level or cfg.level, args.chunk_rows or cfg.chunk_rows
    columns = renames(args.columns)
    catalogs = [p for p in args.inputs if p.is_dir() and is_hats(p)]
    if catalogs:
        if len(args.inputs) > 1:
            raise VarnetError(f"{catalogs[0]}: score one HATS catalog at a time (it is one "
                              "survey; its partitions are the parallel tasks)")
        if args.periods:
            raise VarnetError(f"--periods: a HATS catalog carries its periods in a period "
                              f"column; `varnet hats-catalog --catalog` joins them "
                              f"({catalogs[0]})")
        if args.output.suffix.lower() in (".csv", ".parquet", ".pq"):
            raise VarnetError(f"{args.output}: a HATS catalog in gives a HATS catalog out, a "
                              "folder; give -o a folder name (e.g. -o scores-hats)")
        stars = open_stars(catalogs[0], columns)
        with dask_client(args.workers, args.scheduler) as client:
            stats = score_catalog(client, stars, args.output, model, level=level,
                                  alpha=args.alpha, chunk_rows=chunk_rows, columns=columns)
        print(f"scored {stats['stars']} stars ({stats['partitions']} partitions) -> "
              f"{stats['output_rows']} rows in {args.output}, {stats['unscored']} without a "
              f"class (see their note); {stats['seconds']:.1f} s, "
              f"{stats['stars'] / stats['seconds']:.1f} stars/s")
        return 0
    if columns:
        raise VarnetError("--column renames the columns of a HATS catalog input; a "
                          "light-curve file needs id, time, mag, err (+ band, period)")
    inputs = input_files(args.inputs)
    periods = score.read_periods(args.periods) if args.periods else None
    with dask_client(args.workers, args.scheduler) as client:
        stats = score_files(client, inputs, args.output, model, fmt=args.fmt, level=level,
                            chunk_rows=chunk_rows, periods=periods, alpha=args.alpha)
    print(f"scored {stats['stars']} stars ({stats['rows']} rows) -> {stats['output_rows']} rows "
          f"in {args.output}; {stats['seconds']:.1f} s, {stats['rows_per_s']:.0f} rows/s")
    return 0
