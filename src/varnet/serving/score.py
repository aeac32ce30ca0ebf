"""Classify light curves and flag novel stars with a registered model (default the champion).

Input (one or more files; the format is recognised, or give --format):
  long table  CSV or parquet, one row per epoch: id, time, mag, err, optional band, optional
              period (days; the catalog period, constant per star), and for a photometric model
              optional phot_g_abs, bp_rp, w_rp (Gaia, constant per star; missing =
              marginalised). Rows of a star must be contiguous (sorted or grouped by id): the
              file is read in chunks of whole stars so memory stays flat for any size; a star
              found again later is an error.
  asassn      one ASAS-SN light-curve file per star (Sky Patrol CSV export, database or older
              format; varnet.surveys.asassn), the star id is the file name (`vxmen.csv` -> vxmen).
  --periods   optional CSV/parquet with id, period: catalog periods for the stars.
  HATS        a HATS catalog folder (`varnet hats-catalog` writes one; surveys such as ZTF and
              Rubin serve theirs): one row per star, id, ra, dec, optional period and Gaia
              columns, a nested column lc (time, mag, err, optional band). It is scored on Dask
              through LSDB, one task per sky partition, and -o names the output HATS catalog
              (a folder: the input's pixels, one row per star + ra, dec). Other column names:
              --column id=objectid --column lc=lightcurve (varnet.serving.distributed).
  folder      a folder of long-table files: scored on Dask, one task per file.
--workers N starts a local Dask cluster of N processes (the default for HATS and folders: one
per core); --scheduler ADDRESS uses a running cluster instead (SLURM, Kubernetes: its workers
must see the inputs, the output folder and the MLflow store; docs/scaling.md). Files scored on
a cluster give the same output file as without.
A star without a period gets one from a Lomb–Scargle periodogram (varnet.prepare.periods), marked
period_source = lomb-scargle in the output.

Output (CSV or parquet by the suffix, written atomically): one row per star (--level star) or per
sequence (--level sequence): id, [sequence], class, prob_<CLASS>..., energy, energy_<CLASS>...,
novel_p80, novel_p95, period, period_source, n_sequences. The numbers are what the model's
`predict` returns, so they equal (up to float32 rounding) the HTTP answers of
`mlflow models serve` on the same model.
Stars that cannot be scored (too few good epochs for one sequence, no period found, no point in
a band the model was trained on) get a row with an empty class and a `note` saying why.
Integer times and ids are converted; a column of the wrong type (text in mag, booleans, dates)
stops the run naming the file, the column and the first bad row (docs/serving.md, "Types").

Examples:
  varnet score lightcurves.parquet -o scores.parquet
  varnet score ../shared/data/small-fixtures/asassn-skypatrol-vxmen/vxmen.csv -o vxmen.csv
  varnet score big.csv --periods catalog.csv --model models:/varnet@challenger -o out.parquet
  varnet hats-catalog && varnet score data/processed/hats/synthetic -o scores-hats --workers 2
  varnet score /shared/survey-hats -o survey-scores --scheduler tcp://scheduler:8786
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from varnet.core import files
from varnet.core.config import ScoreParams, section
from varnet.core.errors import VarnetError
from varnet.core.schema import LEVELS, PHOT_COLUMNS
from varnet.scoring.calibration import DEFAULT_ALPHA
from varnet.surveys import asassn, readers

FORMATS = ("auto", "table", "asassn")
REQUIRED = ("id", "time", "mag", "err")
OPTIONAL = ("band", "period", *PHOT_COLUMNS)
"""Read when present: a photometric model gets the Gaia columns exactly as the HTTP path does."""


# --- reading whole stars in chunks -----------------------------------------------------------

def detect_format(path: Path) -> str:
    """'table' (long format: it has an id column) or 'asassn' (one star per file)."""
    return "table" if "id" in readers.read_header(path, comment="#") else "asassn"


def _raw_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The table's rows in chunks of about ``chunk_rows``, required columns checked first."""
    header = readers.read_header(path, comment="#")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise VarnetError(f"{path}: missing column(s) {missing}; a light-curve table needs "
                          f"{list(REQUIRED)} (+ optional {list(OPTIONAL)}), the file has "
                          f"{header}")
    columns = [c for c in (*REQUIRED, *OPTIONAL) if c in header]
    if readers.is_parquet(path):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
    else:
        # ids are strings as written: "NA", "nan" or "null" name a star, they are not missing
        reader = pd.read_csv(path, usecols=columns, chunksize=chunk_rows, dtype={"id": str},
                             comment="#", keep_default_na=False,
                             na_values={c: readers.NA_STRINGS for c in columns if c != "id"})
        with reader:
            yield from reader


def iter_star_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Chunks of a long table that each hold complete stars (rows grouped by id).

    The last star of a raw chunk may continue in the next one, so it is carried over; a star
    whose rows reappear after another star's is an error, since it would be scored twice.
    """
    seen: set[str] = set()
    carry = pd.DataFrame()
    offset = 0
    for chunk in _raw_chunks(path, chunk_rows):
        if chunk.empty:
            continue
        chunk = readers.typed_lightcurve(chunk, path, first_row=offset + 1)
        frame = pd.concat([carry, chunk], ignore_index=True) if len(carry) else chunk
        ids = frame["id"].to_numpy()
        runs = frame["id"].ne(frame["id"].shift()).cumsum()
        starts = frame.groupby(runs, sort=False)["id"].first()
        repeated = starts[starts.duplicated() | starts.isin(seen)]
        if len(repeated):
            star = repeated.iloc[0]
            row = offset + int((ids == star).argmax())
            raise VarnetError(f"{path}: rows of star {star!r} are not contiguous (it appears "
                              f"again near row {row + 1}); sort the file by id first")
        last = ids[-1]
        done = frame[ids != last]
        carry = frame[ids == last]
        offset += len(chunk)
        if len(done):
            seen.update(starts.iloc[:-1])
            yield done.reset_index(drop=True)
    if len(carry):
        yield carry.reset_index(drop=True)
    elif offset == 0:
        raise VarnetError(f"{path}: no rows (empty input)")


def read_asassn_star(path: Path) -> pd.DataFrame:
    """A one-star ASAS-SN file (id = file name); a file that is neither format says so."""
    try:
        lc = asassn.read_asassn_lightcurve(path)
    except VarnetError as exc:
        raise VarnetError(f"{exc}. (Without an id column the file is read as one ASAS-SN star; "
                          f"a light-curve table needs columns {list(REQUIRED)} + optional "
                          f"{list(OPTIONAL)}.)") from exc
    if lc.empty:
        raise VarnetError(f"{path}: no rows (empty input)")
    return lc.assign(id=asassn.file_key(path))[["id", "time", "mag", "err", "band"]]


def read_periods(path: Path) -> pd.Series:
    """id -> period (days) from a CSV/parquet table with columns id, period."""
    header = readers.read_header(path, comment="#")
    if not {"id", "period"} <= set(header):
        raise VarnetError(f"{path}: a periods table needs columns id and period; it has {header}")
    frame = readers.read_table(path, dtype={"id": str}, na_values={"period": readers.NA_STRINGS})
    ids = frame["id"].astype(str)
    if ids.duplicated().any():
        raise VarnetError(f"{path}: star {ids[ids.duplicated()].iloc[0]!r} has two periods")
    return pd.Series(readers.to_float(frame["period"], path, "period"), index=ids.to_numpy())


def star_chunks(path: Path, fmt: str, chunk_rows: int, periods: pd.Series | None
                ) -> Iterator[pd.DataFrame]:
    """Chunks of whole stars from one input file, with periods joined where given."""
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    fmt = detect_format(path) if fmt == "auto" else fmt
    chunks = iter([read_asassn_star(path)]) if fmt == "asassn" else iter_star_chunks(
        path, chunk_rows)
    for chunk in chunks:
        if periods is not None:
            joined = chunk["id"].map(periods)
            if "period" in chunk:
                joined = chunk["period"].where(chunk["period"].notna(), joined)
            chunk = chunk.assign(period=joined.astype("float64"))
        yield chunk


# --- model and output ------------------------------------------------------------------------

def load_model(uri: str) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc model at ``uri``; a clear error for an unknown name, version or alias."""
    try:
        return mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise VarnetError(f"cannot load model {uri} from {mlflow.get_tracking_uri()}: "
                          f"{exc.message.splitlines()[0]} (list versions with `mlflow ui`; "
                          "set the champion with `varnet promote`)") from exc
    except OSError as exc:
        raise VarnetError(f"cannot load model {uri}: {exc}") from exc


def predict(model: mlflow.pyfunc.PyFuncModel, chunk: pd.DataFrame, level: str,
            alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    try:
        return model.predict(chunk, params={"level": level, "alpha": alpha})
    except mlflow.exceptions.MlflowException as exc:
        raise VarnetError(f"the model rejected the input: {reason(exc.message)}") from exc


def reason(message: str) -> str:
    """The reason in an MLflow error: its text after the last "Error: " (MLflow puts the whole
    received table in front of it, over many lines), else its first line."""
    return " ".join(message.rsplit("Error: ", 1)[-1].split()) if "Error: " in message else (
        message.splitlines()[0] if message else "no reason given")


class OutputWriter:
    """Streams result chunks to a CSV or parquet file that appears only when complete."""

    def __init__(self, target: Path) -> None:
        if target.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise VarnetError(f"{target}: output must end in .csv or .parquet")
        self.target = target
        self.parquet = target.suffix.lower() != ".csv"
        self.rows = 0

    def __enter__(self) -> OutputWriter:
        self._atomic = files.atomic_path(self.target)
        self.tmp = self._atomic.__enter__()
        self._writer: pq.ParquetWriter | None = None
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet:
            if self._writer is None:
                batch = pa.Table.from_pandas(frame, preserve_index=False)
                self._writer = pq.ParquetWriter(self.tmp, batch.schema)
            else:
                batch = pa.Table.from_pandas(frame, schema=self._writer.schema,
                                             preserve_index=False)
            self._writer.write_table(batch)
        else:
            frame.to_csv(self.tmp, mode="w" if self.rows == 0 else "a",
                         header=self.rows == 0, index=False)
        self.rows += len(frame)

    def __exit__(self, *exc: Any) -> None:
        if self._writer is not None:
            self._writer.close()
        self._atomic.__exit__(*exc)


def score_files(model: mlflow.pyfunc.PyFuncModel, inputs: list[Path], output: Path,
                *, fmt: str = "auto", level: str = "star", chunk_rows: int = 200_000,
                periods: pd.Series | None = None, alpha: float = DEFAULT_ALPHA
                ) -> dict[str, float]:
    """Score every input into ``output``; returns counts and throughput. A star found in two
    inputs (or a file given twice) is an error: it would be scored twice."""
    if repeated := sorted({str(p) for p in inputs if inputs.count(p) > 1}):
        raise VarnetError(f"{repeated[0]}: given more than once; each star is scored once")
    start = time.monotonic()
    n_rows = n_stars = 0
    first_file: dict[str, Path] = {}
    total = sum(_row_count(p) or 0 for p in inputs) or None
    with OutputWriter(output) as out, tqdm(total=total, unit="rows", disable=None,
                                           desc="scoring") as bar:
        for path in inputs:
            for chunk in star_chunks(path, fmt, chunk_rows, periods):
                for star in chunk["id"].unique():
                    if first_file.setdefault(star, path) != path:
                        raise VarnetError(f"{path}: star {star!r} is also in {first_file[star]}; "
                                          "each star is scored once (merge its rows into one "
                                          "file)")
                result = predict(model, chunk, level, alpha)
                out.write(result)
                n_rows += len(chunk)
                n_stars += chunk["id"].nunique()
                bar.update(len(chunk))
        if out.rows == 0:
            raise VarnetError("no star could be scored (empty input)")
    seconds = time.monotonic() - start
    return {"rows": n_rows, "stars": n_stars, "output_rows": out.rows, "seconds": seconds,
            "rows_per_s": n_rows / seconds if seconds else float("nan")}


def _row_count(path: Path) -> int | None:
    if readers.is_parquet(path) and path.is_file():
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # damaged: the reader reports it properly
            return None
    return None


# --- command ---------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (so `--chunk-rows -5` is a usage error, not a
    traceback from deep inside pandas)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="light-curve files")
    parser.add_argument("-o", "--output", type=Path, default=Path("scores.csv"),
                        help="output file, .csv or .parquet (default: %(default)s)")
    parser.add_argument("--model", help="model URI (default: params score.model)")
    parser.add_argument("--level", choices=LEVELS, help="one row per star or per sequence "
                        "(default: params score.level)")
    parser.add_argument("--format", choices=FORMATS, default="auto", dest="fmt",
                        help="input format (default: recognised from the columns)")
    parser.add_argument("--periods", type=Path, help="table of id, period (days)")
    parser.add_argument("--chunk-rows", type=positive_int, help="rows per chunk "
                        "(default: params score.chunk_rows)")
    parser.add_argument("--alpha", type=probability, default=DEFAULT_ALPHA,
                        help="false-alarm rate of the novelty flag: a star is flagged novel "
                        "when its conformal p_novel <= alpha (default: %(default)s)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=positive_int, metavar="N",
                         help="score on a new local Dask cluster of N worker processes (default "
                         "for a HATS catalog or a folder: one per core)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="score on a running Dask cluster, e.g. tcp://host:8786 "
                         "(dask-jobqueue, dask-kubernetes, a Gateway: docs/scaling.md)")
    parser.add_argument("--column", action="append", dest="columns", metavar="OURS=THEIRS",
                        help="a HATS input's own name for one of ours, repeatable: id, lc (the "
                        "nested light curve), time, mag, err, band, period, phot_g_abs, bp_rp, "
                        "w_rp; e.g. --column id=objectid --column lc=lightcurve")


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    cfg = section(ScoreParams, params)
    from varnet.core import tracking

    tracking.configure(params)
    if args.workers or args.scheduler or any(path.is_dir() for path in args.inputs):
        from varnet.serving import distributed  # Dask and LSDB: only when used

        return distributed.run(args, cfg)
    periods = read_periods(args.periods) if args.periods else None
    model = load_model(args.model or cfg.model)
    stats = score_files(model, args.inputs, args.output, fmt=args.fmt,
                        level=args.level or cfg.level,
                        chunk_rows=args.chunk_rows or cfg.chunk_rows, periods=periods,
                        alpha=args.alpha)
    print(f"scored {stats['stars']} stars ({stats['rows']} rows) -> {stats['output_rows']} rows "
          f"in {args.output}; {stats['seconds']:.1f} s, {stats['rows_per_s']:.0f} rows/s")
    return 0
