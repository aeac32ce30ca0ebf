"""Write a survey's light curves as a HATS catalog (hats-import), for `varnet score` on Dask.

Input: a long light-curve table (one or more CSV/parquet files, one row per epoch: id, time,
mag, err, optional band; the rows of a star contiguous and in one file, as for `varnet score`)
and a catalog of one row per star: id, ra, dec (degrees) and any other columns (period,
phot_g_abs, bp_rp, w_rp, labels, ...), all carried along. Default: the snapshot that
`varnet snapshot` writes for params survey.name, data/raw/<name>/lightcurves.parquet and
catalog.parquet.

Output (default data/processed/hats/<name>; replaced atomically): a HATS catalog of one row per
star, the catalog's columns plus a nested column lc (nested-pandas: the star's time, mag, err,
band), partitioned by sky position (HEALPix) so that no partition holds more than
--stars-per-partition stars. A partition is one task of `varnet score` and bounds a worker's
memory; several partitions per worker balance the load. Checked first, each with the file and
the star: rows of a star not contiguous or in two files, a star without a catalog row or
without a position (HATS places a star by its ra, dec). Catalog stars without light-curve rows
are counted and left out.

hats-import runs on Dask: a new local cluster (--workers N, default one per core) or a running
one (--scheduler ADDRESS).

Examples:
  varnet snapshot && varnet hats-catalog          # the default survey -> data/processed/hats/
  varnet hats-catalog --lightcurves lc-*.parquet --catalog stars.csv -o hats/mysurvey
  varnet score data/processed/hats/synthetic -o scores-hats --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from varnet.core import schema
from varnet.core.config import SurveyParams, section
from varnet.core.errors import VarnetError
from varnet.serving import score
from varnet.serving.distributed import LC, dask_client, replacing_folder  # checks the extra
from varnet.surveys import readers

try:
    import hats
    import nested_pandas as npd
    from distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.catalog.file_readers import InputReader
    from hats_import.pipeline import pipeline_with_client
except ImportError as exc:   # an optional extra
    raise VarnetError(f"{exc.name} is not installed; `varnet hats-catalog` needs "
                      "pip install 'varnet[survey]'") from exc

DEFAULT_DIR = Path("data/processed/hats")
DEFAULT_STARS_PER_PARTITION = 1000
CHUNK_ROWS = 500_000
"""Epochs read at a time from a light-curve file (whole stars: score.iter_star_chunks)."""


class NestedLightCurves(InputReader):
    """hats-import reader: a long light-curve file in, one row per star out (the catalog's
    columns and the nested light curve), in chunks of whole stars."""

    def __init__(self, catalog: pd.DataFrame) -> None:
        self.catalog = catalog.set_index("id")

    def read(self, input_file, read_columns=None):
        for chunk in score.iter_star_chunks(Path(input_file), CHUNK_ROWS):
            curves = npd.NestedFrame.from_flat(chunk, base_columns=[], on="id", name=LC)
            stars = npd.NestedFrame(self.catalog.loc[curves.index].join(curves))
            stars = stars.rename_axis("id").reset_index()
            yield stars[read_columns] if read_columns else stars


def read_catalog(path: Path) -> pd.DataFrame:
    """The star catalog: unique ids, numeric positions (NaN where unknown)."""
    if not path.is_file():
        raise VarnetError(f"{path}: file not found")
    header = readers.read_header(path, comment="#")
    if missing := [c for c in ("id", "ra", "dec") if c not in header]:
        raise VarnetError(f"{path}: missing column(s) {missing}; the star catalog needs id, ra, "
                          f"dec (degrees) + any others to carry along; it has {header}")
    if LC in header:
        raise VarnetError(f"{path}: has a column {LC!r}, the name of the nested light curve")
    catalog = readers.read_table(path, dtype={"id": str})
    catalog["id"] = catalog["id"].astype(str)
    if catalog["id"].duplicated().any():
        raise VarnetError(f"{path}: star {catalog['id'][catalog['id'].duplicated()].iloc[0]!r} "
                          "has two rows")
    for column in ("ra", "dec"):
        catalog[column] = readers.to_float(catalog[column], path, column)
    return catalog


def star_ids(path: Path) -> np.ndarray:
    """The stars of one light-curve file, its rows checked as `varnet score` checks them."""
    return np.concatenate([chunk["id"].unique()
                           for chunk in score.iter_star_chunks(path, CHUNK_ROWS)])


def check_stars(client: Client, lightcurves: list[Path], catalog: pd.DataFrame,
                catalog_path: Path) -> int:
    """Every light-curve star in one file and placed on the sky; returns the number of catalog
    stars without light curves (left out)."""
    if repeated := sorted({str(p) for p in lightcurves if lightcurves.count(p) > 1}):
        raise VarnetError(f"{repeated[0]}: given more than once")
    where: dict[str, Path] = {}
    for path, ids in zip(lightcurves, client.gather(client.map(star_ids, lightcurves)),
                         strict=True):
        for star in ids:
            if where.setdefault(star, path) != path:
                raise VarnetError(f"{path}: star {star!r} is also in {where[star]}; the rows of "
                                  "a star must be in one file")
    stars = pd.Index(list(where))
    if (unknown := stars[~stars.isin(catalog["id"])]).size:
        raise VarnetError(f"{where[unknown[0]]}: star {unknown[0]!r}{_more(unknown)} has no "
                          f"row in {catalog_path}, so no position on the sky")
    positions = catalog.set_index("id")[["ra", "dec"]].loc[stars]
    bad = positions.index[positions.isna().any(axis=1) | ~positions["dec"].abs().le(90)]
    if bad.size:
        raise VarnetError(f"{catalog_path}: star {bad[0]!r}{_more(bad)} has no valid position "
                          f"(ra={positions.loc[bad[0], 'ra']}, "
                          f"dec={positions.loc[bad[0], 'dec']}); HATS places a star by it")
    return int((~catalog["id"].isin(stars)).sum())


def _more(stars: pd.Index) -> str:
    return f" (and {stars.size - 1} more)" if stars.size > 1 else ""


def write_hats_catalog(client: Client, lightcurves: list[Path], catalog_path: Path,
                       output: Path, stars_per_partition: int) -> dict[str, Any]:
    """Check the inputs, then run hats-import into ``output`` (replacing an older catalog)."""
    for path in lightcurves:
        if not path.is_file():
            raise VarnetError(f"{path}: file not found")
    catalog = read_catalog(catalog_path)
    without = check_stars(client, lightcurves, catalog, catalog_path)
    with replacing_folder(output) as tmp:
        arguments = ImportArguments(
            output_path=tmp.parent, output_artifact_name=tmp.name, tmp_dir=tmp.parent / "tmp",
            input_file_list=lightcurves, file_reader=NestedLightCurves(catalog),
            catalog_type="object", ra_column="ra", dec_column="dec", sort_columns="id",
            pixel_threshold=stars_per_partition, resume=False)
        pipeline_with_client(arguments, client)
    info = hats.read_hats(output)
    return {"stars": info.catalog_info.total_rows, "partitions": len(info.get_healpix_pixels()),
            "without_lightcurves": without}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lightcurves", nargs="+", type=Path, metavar="FILE",
                        help="long light-curve tables (default: the snapshot's "
                        "lightcurves.parquet)")
    parser.add_argument("--catalog", type=Path, metavar="FILE",
                        help="one row per star with id, ra, dec (default: the snapshot's "
                        "catalog.parquet)")
    parser.add_argument("-o", "--output", type=Path, metavar="FOLDER",
                        help=f"the HATS catalog to write (default: {DEFAULT_DIR}/<survey.name>)")
    parser.add_argument("--stars-per-partition", type=score.positive_int,
                        default=DEFAULT_STARS_PER_PARTITION, metavar="N",
                        help="most stars in one partition, the unit of work of `varnet score` "
                        "(default: %(default)s)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=score.positive_int, metavar="N",
                         help="run hats-import on a new local Dask cluster of N processes "
                         "(default: one per core)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="run it on a running Dask cluster, e.g. tcp://host:8786")


def run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    name = section(SurveyParams, params).name
    catalog_path, lightcurve_path = schema.raw_paths(name)
    lightcurves = args.lightcurves or [lightcurve_path]
    catalog = args.catalog or catalog_path
    output = args.output or DEFAULT_DIR / name
    with dask_client(args.workers, args.scheduler) as client:
        stats = write_hats_catalog(client, lightcurves, catalog, output,
                                   args.stars_per_partition)
    print(f"wrote {stats['stars']} stars in {stats['partitions']} partitions to {output}"
          + (f"; {stats['without_lightcurves']} catalog stars without light curves left out"
             if stats["without_lightcurves"] else ""))
    return 0
