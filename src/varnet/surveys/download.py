"""Optional download of ASAS-SN data through the field's own clients (`varnet snapshot --download`).

- The catalog: VizieR II/366 (the ASAS-SN catalog of variable stars) through astroquery's
  Vizier, one query per requested type, written as CSV to `survey.asassn.catalog`.
- The light curves: for each catalog star, a Sky Patrol cone search through the `skypatrol`
  client (pyasassn); the nearest Sky Patrol target's light curve is written, in the client's own
  Sky Patrol CSV format, to `survey.asassn.lightcurves/<star id>.csv`.

The snapshot then reads these files like any local ASAS-SN files, so a download and a local
copy give the same snapshot. Both clients are an optional extra (`pip install 'varnet[download]'`)
imported only here, only when asked: tests and `make run` never touch the network. Stars with
no Sky Patrol target within the radius are counted and reported, not silently skipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from varnet.core import files
from varnet.core.config import DownloadParams
from varnet.core.errors import VarnetError
from varnet.surveys.asassn import VIZIER_COLUMNS, safe_name

INSTALL_HINT = "pip install 'varnet[download]'  (astroquery and skypatrol)"


def download_asassn(catalog_path: str | Path, lightcurve_dir: str | Path,
                    params: DownloadParams) -> dict[str, int]:
    """Fetch the catalog and light curves into the given paths; returns counts for the log."""
    vizier_cls, client_cls = _clients()
    catalog = _query_vizier(vizier_cls, params)
    for ours in ("id", "ra", "dec"):
        if VIZIER_COLUMNS[ours] not in catalog.columns:
            raise VarnetError(f"VizieR {params.vizier_catalog}: no column "
                              f"{VIZIER_COLUMNS[ours]!r} in the answer ({list(catalog.columns)})")
    with files.atomic_path(catalog_path) as tmp:
        catalog.to_csv(tmp, index=False)

    lightcurve_dir = Path(lightcurve_dir)
    lightcurve_dir.mkdir(parents=True, exist_ok=True)
    try:
        client = client_cls(verbose=False)
    except Exception as exc:  # the client raises whatever requests raises
        raise VarnetError(f"ASAS-SN Sky Patrol: cannot connect ({exc})") from exc
    counts = {"catalog_stars": len(catalog), "lightcurves_written": 0,
              "stars_without_skypatrol_target": 0}
    rows = catalog[[VIZIER_COLUMNS["id"], VIZIER_COLUMNS["ra"], VIZIER_COLUMNS["dec"]]]
    for star_id, ra, dec in tqdm(rows.itertuples(index=False), total=len(rows),
                                 desc="Sky Patrol", unit="star", disable=None):
        try:
            collection = client.cone_search(float(ra), float(dec), radius=params.radius_arcsec,
                                            units="arcsec", download=True)
        except Exception as exc:
            raise VarnetError(f"ASAS-SN Sky Patrol: cone search for {star_id} failed ({exc})"
                              ) from exc
        target = _nearest_target(collection, float(ra), float(dec))
        if target is None:
            counts["stars_without_skypatrol_target"] += 1
            continue
        with files.atomic_path(lightcurve_dir / f"{safe_name(star_id)}.csv") as tmp:
            collection[target].save(str(tmp), file_format="csv")
        counts["lightcurves_written"] += 1
    return counts


def _clients():
    try:
        from astroquery.vizier import Vizier
        from pyasassn.client import SkyPatrolClient
    except ImportError as exc:
        raise VarnetError(f"the ASAS-SN download needs the optional clients: {INSTALL_HINT} "
                          f"({exc})") from exc
    return Vizier, SkyPatrolClient


def _query_vizier(vizier_cls, params: DownloadParams) -> pd.DataFrame:
    vizier = vizier_cls(columns=["**"], row_limit=params.max_stars)
    constraints = [{}] if params.types is None else [{"Type": f"={t}"} for t in params.types]
    frames = []
    for constraint in constraints:
        try:
            tables = vizier.query_constraints(catalog=params.vizier_catalog, cache=False,
                                              **constraint)
        except Exception as exc:
            raise VarnetError(f"VizieR {params.vizier_catalog} {constraint}: query failed ({exc})"
                              ) from exc
        frames += [table.to_pandas() for table in tables]
    if not frames or sum(len(f) for f in frames) == 0:
        raise VarnetError(f"VizieR {params.vizier_catalog}: no rows for types {params.types} "
                          "(empty survey)")
    return pd.concat(frames, ignore_index=True)


def _nearest_target(collection, ra: float, dec: float):
    """asas_sn_id of the Sky Patrol target closest to (ra, dec), None if the cone was empty."""
    if collection is None or len(collection) == 0:
        return None
    index = collection.catalog_info
    d_ra = (index["ra_deg"] - ra) * math.cos(math.radians(dec))
    d_dec = index["dec_deg"] - dec
    nearest = (d_ra ** 2 + d_dec ** 2).to_numpy().argmin()
    return index[collection.id_col].iloc[nearest]
