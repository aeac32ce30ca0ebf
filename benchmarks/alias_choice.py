"""Can the trained model choose a star's period among its daily aliases? EROS-1, one fold.

The period search (`varnet.prepare.periods`) loses EROS-1 stars to daily aliases that fit the
plates better than the catalog period (docs/periods.md). The one lever left to a search for
stars of unknown class is the model: score the star folded at each candidate and keep the most
typical. Measured here, on data that chose nothing:

1. Train the EROS-1 recipe of `benchmarks.real_surveys` (catalog periods) on fold 0's training
   stars (split by star, 5 folds; calibration on fold 1).
2. For each of fold 0's test stars: the search's candidates (its ZOOM_KEEP zoomed peaks) and the
   winner +- 1 and +- 2 cycles per sidereal day, each zoomed onto its own chi² minimum and
   P-or-2P tested; every candidate scored by `score_lightcurves` at its period.
3. Within 1% of the catalog period (`benchmarks.periods.verdict`), per class: the search's
   choice (lowest chi²), the lowest GMM energy among the candidates within a chi² margin of the
   lowest, the highest calibrated probability, the highest conformal p-value, and how often the
   catalog period is among the candidates at all.

    .venv/bin/python -m benchmarks.alias_choice --json benchmarks/results/alias_choice.json

About 6 min on 2 cores (training 5). Needs ../shared/data/eros1-lmc (or $VARNET_SHARED_DATA).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from benchmarks import common, periods, real_surveys
from varnet.core import files, schema

SURVEY = "eros1-lmc"
FOLD = 0
ALIAS_CYCLES = (-2, -1, 1, 2)
CHI2_MARGINS = (0, 5, 25, 100, float("inf"))
"""Energy choice among the candidates whose chi² is within this of the lowest (0: the search)."""


def candidates(star: tuple) -> tuple[float, list[tuple[float, float]]]:
    """(the search's period, [(period, chi²)] of every distinct candidate)."""
    from varnet.prepare import periods as search

    bands, freqs, chi2, df, (f_min, f_max) = search._zoomed_candidates(*star[3:])
    best = freqs[np.argmin(chi2)]
    for cycles in ALIAS_CYCLES:   # zoomed one by one: _zoom keeps only ZOOM_KEEP of a batch
        alias = best + cycles / periods.SIDEREAL_DAY
        if f_min < alias < f_max:
            f, c = search._zoom(bands, np.array([alias]), df, (f_min, f_max))
            freqs, chi2 = np.r_[freqs, f], np.r_[chi2, c]
    found: list[tuple[float, float]] = []
    for f, c in zip(freqs, chi2, strict=True):
        period = search._period_or_double(bands, float(f))
        if all(abs(period / other - 1) > 1e-3 for other, _ in found):
            found.append((period, float(c)))
    return search._period_or_double(bands, float(best)), found


def train(workdir) -> schema.ModelFolder:
    """The fold's model, trained on its training stars (reused when it is there)."""
    params = real_surveys.survey_params(SURVEY)
    folder = schema.ModelFolder(workdir / "models" / f"fold{FOLD}")
    if not folder.model.is_file():
        real_surveys.prepare(SURVEY, params, workdir, ls_periods=False)
        arrays, _ = real_surveys._usable(files.read_npz(workdir / schema.SEQUENCES_FILE))
        real_surveys.train_run(params, workdir, arrays, arrays["label"], FOLD, f"fold{FOLD}")
    return folder


def score_candidates(folder: schema.ModelFolder, stars: list[tuple]) -> pd.DataFrame:
    """One row per (star, candidate): class, period, chi², the model's energy, probabilities."""
    from varnet.scoring.inference import Scorer
    from varnet.scoring.lightcurves import preprocessing_for, score_lightcurves

    rows, tables = [], []
    for star in stars:
        star_id, cls, reference, t, mag, err, band = star
        first, found = candidates(star)
        for j, (period, chi2) in enumerate(found):
            key = f"{star_id}#{j}"
            rows.append({"id": star_id, "key": key, "cls": cls, "reference": reference,
                         "search": first, "period": period, "chi2": chi2})
            tables.append(pd.DataFrame({"id": key, "time": t, "mag": mag, "err": err,
                                        "band": band, "period": period}))
    table = pd.DataFrame(rows)
    scored = score_lightcurves(Scorer.load(folder.root), preprocessing_for(folder.root),
                               pd.concat(tables, ignore_index=True)).set_index("id")
    scored = scored.loc[table["key"]]
    table["energy"] = scored["energy"].to_numpy()
    table["prob"] = scored[[c for c in scored if c.startswith("prob_")]].max(axis=1).to_numpy()
    table["p_novel"] = scored["p_novel"].to_numpy()
    return table


def recovered(table: pd.DataFrame, chosen: pd.Index) -> dict[str, float]:
    """Fraction of stars whose chosen candidate is within 1% of the catalog period, per class."""
    pick = table.loc[chosen].set_index("id")
    right = pick["right"].groupby(pick["cls"]).mean()
    return {"all": round(float(pick["right"].mean()), 4),
            **{cls: round(float(v), 4) for cls, v in right.items()}}


def run(quick: bool = False) -> dict:
    workdir = common.WORK_DIR / "alias-choice"
    machine = common.machine()
    folder = train(workdir)
    predictions = files.read_npz(folder.predictions)
    test = set(np.unique(predictions["star_id"][predictions["subset"] == "test"]).tolist())
    stars = [s for s in periods.load_sets(None)[SURVEY] if s[0] in test]
    if quick:
        stars = stars[:40]
    table = score_candidates(folder, stars)
    table["right"] = [periods.verdict(p, r) == "P" for p, r in zip(
        table["period"], table["reference"], strict=True)]
    margin = table["chi2"] - table.groupby("id")["chi2"].transform("min")
    energy = table["energy"].fillna(np.inf)

    def lowest_energy(limit: float) -> pd.Index:
        return energy.where(margin <= limit, np.inf).groupby(table["id"]).idxmin()

    def highest(column: str) -> pd.Index:
        return table[column].fillna(-1.0).groupby(table["id"]).idxmax()

    stars_table = table.groupby("id")
    classes = stars_table["cls"].first()
    rules = {f"lowest energy, chi2 within {m:g}": recovered(table, lowest_energy(m))
             for m in CHI2_MARGINS}
    rules["highest probability"] = recovered(table, highest("prob"))
    rules["highest conformal p-value"] = recovered(table, highest("p_novel"))
    any_right = stars_table["right"].any()
    first = stars_table[["search", "reference", "cls"]].first()
    right = pd.Series([periods.verdict(p, r) == "P" for p, r in zip(
        first["search"], first["reference"], strict=True)], index=first.index)
    search = {"all": round(float(right.mean()), 4),
              **right.groupby(first["cls"]).mean().round(4).to_dict()}
    both = table[table["cls"] == "RR"].groupby(["id", "right"])["energy"].min().unstack()
    both = both.dropna()
    return {"benchmark": "alias_choice", "machine": machine,
            "command": "python -m benchmarks.alias_choice" + (" --quick" if quick else ""),
            "survey": SURVEY, "fold": FOLD, "stars": {"all": len(classes),
                                                      **classes.value_counts().to_dict()},
            "candidates_per_star": {"median": float(stars_table.size().median()),
                                    "max": int(stars_table.size().max())},
            "test_accuracy": round(float(np.mean(
                predictions["gamma"].argmax(1)[predictions["subset"] == "test"]
                == predictions["label"][predictions["subset"] == "test"])), 4),
            "search": search,
            "rules": rules,
            "among_candidates": {"all": round(float(any_right.mean()), 4),
                                 **any_right.groupby(classes).mean().round(4).to_dict()},
            "rr_right_lower_energy": {"stars": len(both), "fraction": round(float(
                (both[True] < both[False]).mean()), 4)},
            "load_after": common.load()}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
