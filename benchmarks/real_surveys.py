"""Real surveys: star-grouped 5-fold classification and leave-one-class-out novelty.

One command per survey, each reading ../shared/data in place (never copied) and working in a
scratch project under $VARNET_BENCH_DIR (default /tmp/varnet-bench/<survey>):

    .venv/bin/python -m benchmarks.real_surveys eros1-lmc
    .venv/bin/python -m benchmarks.real_surveys sdss-s82
    .venv/bin/python -m benchmarks.real_surveys gaia-dr3                 # catalog periods only
    .venv/bin/python -m benchmarks.real_surveys gaia-dr3 --ls-periods --ls-per-class 60

Pipeline, in process: the survey overlay configs/surveys/<survey>.yaml over params.yaml, with
the class mapping below (SURVEYS); `load_survey` (the snapshot), `apply_cuts`,
`build_sequences`, `split_indices`, then `varnet.training.train.train_variant("joint", ...)` per run
(MLflow run in the scratch project, nothing registered), read back from predictions.npz.

Classification: `split.by: star`, 5 folds; run f tests on fold f, calibrates on fold f+1 and
trains on the other 3/5 of the stars, so every star is tested once and nothing reported is read
from a set that chose anything. Reported: accuracy per fold (mean +- std), per-class recall
pooled over the folds, per sequence and per star (a star's class is the argmax of its
sequences' mean gamma, `varnet.scoring.metrics.star_means`), and the conformal false-alarm
rate of the test stars (all of a known class) at alpha = 0.01, 0.05, 0.1, pooled over folds;
the median test reconstruction R^2 (`recon_r2` of predictions.npz, the weighted R^2 of
`varnet.scoring.metrics.reconstruction_r2`) pooled, per fold and per class, and which classes
each class's test sequences are predicted as.

Novelty (the leave-one-class-out protocol of multi-class Deep SVDD, Perez-Carrasco et al.
2023): for each class c, relabel c as novel (VAR), train on fold 0's training stars of the
other classes, and score the novel_test half of c's stars against the test stars of the known
classes by the GMM energy: AUROC (threshold-free), per sequence and per star (mean energy),
and the conformal flag's false-alarm rate and recall at alpha = 0.05 (per star).

Recipe: params.yaml's model and train sections as they are (each table states them), with each
survey's "budget" over them (--epochs overrides): Stripe 82 50 epochs (~750 training sequences
of 50 points, 12 steps an epoch), Gaia 60 epochs of batch 32 (~350 of 40 points), EROS-1 60
epochs (~4,200 of 100 points; 40 leave its eclipsing binaries at recall 0.78, and the folds'
validation sequences also prefer 60), so that each table takes minutes on 2 free cores (EROS-1
with its novelty runs: about an hour), not the paper's 2,000 epochs.

Writes benchmarks/results/real-<survey>.json and .md, prints the markdown, and replaces the
survey's section of docs/results.md (between its BEGIN/END markers) unless --no-docs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from varnet.core import files

SURVEYS: dict[str, dict[str, Any]] = {
    "eros1-lmc": {
        "overlay": "configs/surveys/eros1-lmc.yaml",
        "labels": {"CEPHEID": "CEPH", "EB": "ECL", "MIRA": "M", "RRLYR": "RRAB"},
        "names": {"RRAB": "RR (ab/c unsplit)"},
        "note": "EROS-1 LMC, photographic B and R, one 100-point sequence per band and star; "
                "RRLYR mapped to RRAB (RR, ab/c unsplit); supersmoother cut off (overlay).",
        "budget": {"train": {"epochs": 60}},
    },
    "sdss-s82": {
        "overlay": "configs/surveys/sdss-s82.yaml",
        "labels": None,
        "names": {},
        "note": "SDSS Stripe 82 RR Lyrae (Sesar et al. 2010), g r i, one 50-point sequence per "
                "band and star; ab -> RRAB, c -> RRCD.",
        "budget": {"train": {"epochs": 50}},
    },
    "gaia-dr3": {
        "overlay": "configs/surveys/gaia-dr3.yaml",
        "labels": {"CEP": "CEPH", "ECL": "ECL", "DSCT|GDOR|SXPHE": "DSCT", "RR": "RRAB",
                   "LPV": "M"},
        "names": {"RRAB": "RR (ab/c unsplit)", "M": "LPV (M+SR unsplit)",
                  "DSCT": "DSCT (+GDOR, SXPHE)"},
        "note": "Gaia DR3 G band, 40-point sequences; RR mapped to RRAB (ab/c unsplit) and LPV "
                "to M (Miras and semi-regulars unsplit) so that the five periodic classes of "
                "Perez-Carrasco et al. are present.",
        "budget": {"train": {"epochs": 60, "batch_size": 32}},
    },
}
N_FOLDS = 5
MIN_STARS = 2 * N_FOLDS
"""A class with fewer stars after the cuts is left out (too few for a 5-fold split by star)."""
ALPHAS = [0.01, 0.05, 0.1]
PEREZ_CARRASCO_AUROC = {"CEPH": 0.858, "DSCT": 0.819, "ECL": 0.945, "RRAB": 0.953, "M": 0.953}
"""Multi-class Deep SVDD leave-one-class-out AUROCs (CEP, DSCT, ECL, RRL, LPV)."""
DOCS = common.ROOT / "docs" / "results.md"


# --- data ---------------------------------------------------------------------------------------

def survey_params(survey: str, budget: dict | None = None) -> dict[str, Any]:
    """params.yaml + the survey overlay + the class mapping + the run budget (default: the
    survey's)."""
    spec = SURVEYS[survey]
    params = common.root_params(spec["overlay"])
    if spec["labels"] is not None:
        params["survey"]["table"]["labels"] = spec["labels"]
    for section, values in (SURVEYS[survey]["budget"] if budget is None else budget).items():
        params[section] = {**params.get(section, {}), **values}
    params["split"] = {**params["split"], "by": "star", "n_splits": N_FOLDS}
    return params


def lomb_scargle_periods(catalog, lightcurves, cache: Path, sentinel_mag: float,
                         per_class: int | None = None):
    """Periods for the stars without one, from varnet.prepare.periods (cached: one search per star).

    ``per_class`` limits the search to the first that many such stars of each class, in catalog
    order (a deterministic subsample); the others keep no period and the period cut drops them.
    """
    import pandas as pd

    from varnet.core.errors import VarnetError
    from varnet.prepare.periods import lomb_scargle_period

    found = (pd.read_csv(cache, dtype={"id": str}).set_index("id")["period"]
             if cache.is_file() else pd.Series(dtype=float))
    without = catalog[catalog["period"].isna()]
    if per_class is not None:
        without = without.groupby(without["superclass"].fillna(""), sort=False).head(per_class)
    missing = without["id"]
    todo = [s for s in missing if s not in found.index]
    if todo:
        good = lightcurves[(lightcurves["mag"] < sentinel_mag) & lightcurves["id"].isin(todo)]
        rows = []
        started = time.perf_counter()
        for i, (star, points) in enumerate(good.groupby("id", sort=False)):
            try:
                period = lomb_scargle_period(*(points[c].to_numpy() for c in (
                    "time", "mag", "err", "band") if c in points))
            except VarnetError:
                period = float("nan")
            rows.append((star, period))
            if (i + 1) % 100 == 0:
                print(f"  Lomb-Scargle: {i + 1} of {len(todo)} stars, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
                _append(cache, rows)
                rows = []
        _append(cache, rows)
        found = pd.read_csv(cache, dtype={"id": str}).set_index("id")["period"]
    catalog = catalog.copy()
    filled = catalog["period"].isna() & catalog["id"].isin(missing)
    catalog.loc[filled, "period"] = catalog.loc[filled, "id"].map(found).to_numpy()
    return catalog, int(filled.sum())


def _append(cache: Path, rows: list[tuple[str, float]]) -> None:
    if not rows:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    new = not cache.is_file()
    with cache.open("a") as handle:
        if new:
            handle.write("id,period\n")
        handle.writelines(f"{star},{period!r}\n" for star, period in rows)


def prepare(survey: str, params: dict, workdir: Path, ls_periods: bool,
            ls_per_class: int | None = None) -> dict[str, Any]:
    """Snapshot, cuts and sequences of ``survey`` in process; sequences.npz under workdir."""
    from varnet.core import schema
    from varnet.core.config import CutsParams, SequencesParams, SurveyParams, section
    from varnet.prepare.cuts import apply_cuts
    from varnet.prepare.sequences import build_sequences
    from varnet.surveys.snapshot import load_survey

    started = time.perf_counter()
    with contextlib.chdir(common.ROOT):  # the overlays' paths are relative to the repo root
        catalog, lightcurves, _ = load_survey(section(SurveyParams, params))
    cuts = section(CutsParams, params)
    n_ls = 0
    if ls_periods:
        catalog, n_ls = lomb_scargle_periods(catalog, lightcurves,
                                             workdir / "lomb_scargle_periods.csv",
                                             cuts.sentinel_mag, ls_per_class)
    result = apply_cuts(catalog, lightcurves, cuts, progress=False)
    seq = section(SequencesParams, params)
    arrays, _ = build_sequences(result.catalog, result.lightcurves, seq.length, seq.bands)
    files.write_npz(workdir / schema.SEQUENCES_FILE, **arrays)
    flow = result.flow.metrics()
    return {"stars": len(catalog), "stars_kept": len(result.catalog),
            "sequences": int(arrays["label"].size), "sequence_length": seq.length,
            "lomb_scargle_periods": n_ls, "cutflow": flow,
            "prepare_s": round(time.perf_counter() - started, 1)}


def _usable(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Known-class sequences of the classes with >= MIN_STARS stars; the dropped classes' star
    counts (the mappings leave no VAR; a survey's own VAR would be off-protocol here)."""
    from varnet.core.taxonomy import CLASSES

    dropped = {}
    keep = arrays["label"] >= 0
    for k, name in enumerate(CLASSES):
        stars = np.unique(arrays["star_id"][arrays["label"] == k]).size
        if 0 < stars < MIN_STARS:
            dropped[name] = int(stars)
            keep &= arrays["label"] != k
    return {k: v[keep] if v.shape[:1] == keep.shape else v for k, v in arrays.items()}, dropped


# --- runs -------------------------------------------------------------------------------------

def train_run(params: dict, workdir: Path, arrays: dict[str, np.ndarray], label: np.ndarray,
              fold: int, name: str) -> dict[str, Any]:
    """Sequences with these labels (-1 = novel), one split (test fold ``fold``), one joint
    training; the reported rows (test, novel_test) of predictions.npz with their conformal
    p-values per level, from the model's own calibration.npz."""
    from varnet.core import schema
    from varnet.core.schema import LEVELS, REPORTED
    from varnet.prepare.split import split_indices
    from varnet.scoring import calibration
    from varnet.training.train import train_variant

    arrays = {**arrays, "label": label}
    files.write_npz(workdir / schema.SEQUENCES_FILE, **arrays)
    indices = split_indices(arrays["label"], arrays["star_id"], by="star", n_splits=N_FOLDS,
                            fold=fold, seed=params["split"]["seed"])
    files.write_npz(workdir / schema.SPLIT_FILE, **indices)
    started = time.perf_counter()
    with common.project_dir(workdir):
        train_variant("joint", params, workdir / "models" / name, register=False, restart=True)
    folder = schema.ModelFolder(workdir / "models" / name)
    predictions = files.read_npz(folder.predictions)
    keep = np.isin(predictions["subset"], REPORTED)
    out: dict[str, Any] = {k: v[keep] for k, v in predictions.items()}
    fitted = calibration.Calibration.load(folder.calibration)
    levels = calibration.per_level(out["star_id"], label=out["label"], gamma=out["gamma"],
                                   energy=out["energy"], class_energy=out["class_energy"])
    out["levels"] = {level: {**levels[level], **fitted[level].apply(
        levels[level]["gamma"], levels[level]["energy"], levels[level]["class_energy"])}
        for level in LEVELS}
    out["seconds"] = time.perf_counter() - started
    print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return out


def classification(params: dict, workdir: Path, arrays: dict) -> dict[str, Any]:
    from varnet.core.taxonomy import CLASSES
    from varnet.scoring import metrics

    folds, labels, gammas, stars, r2s, seconds = [], [], [], [], [], []
    p_novel: dict[str, list[np.ndarray]] = {"sequence": [], "star": []}
    for fold in range(N_FOLDS):
        out = train_run(params, workdir, arrays, arrays["label"], fold, f"fold{fold}")
        test = out["subset"] == "test"
        label, gamma, star = out["label"][test], out["gamma"][test], out["star_id"][test]
        ids, means = metrics.star_means(star, gamma=gamma, label=label)
        folds.append({"fold": fold, "sequences": int(test.sum()), "stars": len(ids),
                      "accuracy": metrics.accuracy(label, gamma.argmax(1)),
                      "star_accuracy": metrics.accuracy(np.round(means["label"]),
                                                        means["gamma"].argmax(1)),
                      "recon_r2": float(np.nanmedian(out["recon_r2"][test]))})
        labels.append(label)
        gammas.append(gamma)
        stars.append(star)
        r2s.append(out["recon_r2"][test])
        seconds.append(out["seconds"])
        for level, rows in out["levels"].items():
            p_novel[level].append(rows["p_novel"])
    label, gamma, star, r2 = (np.concatenate(x) for x in (labels, gammas, stars, r2s))
    ids, means = metrics.star_means(star, gamma=gamma, label=label)
    star_label = np.round(means["label"]).astype(int)
    present = [k for k in range(len(CLASSES)) if (label == k).any()]
    predicted = gamma.argmax(1)
    recall = metrics.per_class_recall(label, predicted)
    star_recall = metrics.per_class_recall(star_label, means["gamma"].argmax(1))
    acc = np.array([f["accuracy"] for f in folds])
    star_acc = np.array([f["star_accuracy"] for f in folds])
    conformal = {level: metrics.conformal_scores(np.concatenate(p), np.zeros(
        sum(map(len, p)), bool), ALPHAS) for level, p in p_novel.items()}
    return {"folds": folds,
            "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)),
            "star_accuracy_mean": float(star_acc.mean()),
            "star_accuracy_std": float(star_acc.std(ddof=1)),
            "recon_r2": float(np.nanmedian(r2)),
            "recall": {CLASSES[k]: recall[CLASSES[k]] for k in present},
            "star_recall": {CLASSES[k]: star_recall[CLASSES[k]] for k in present},
            "class_recon_r2": {CLASSES[k]: float(np.nanmedian(r2[label == k])) for k in present},
            "confusion": {CLASSES[k]: {CLASSES[j]: int(((label == k) & (predicted == j)).sum())
                                       for j in range(len(CLASSES))
                                       if ((label == k) & (predicted == j)).any()}
                          for k in present},
            "support": {CLASSES[k]: int((label == k).sum()) for k in present},
            "star_support": {CLASSES[k]: int((star_label == k).sum()) for k in present},
            "conformal": conformal,
            "train_s": [round(s, 1) for s in seconds]}


def leave_one_class_out(params: dict, workdir: Path, arrays: dict) -> dict[str, Any]:
    from varnet.core.taxonomy import CLASSES
    from varnet.scoring import metrics

    results = {}
    for k, name in enumerate(CLASSES):
        if not (arrays["label"] == k).any():
            continue
        label = arrays["label"].copy()
        label[label == k] = -1
        out = train_run(params, workdir, arrays, label, 0, f"without-{name}")
        novel = out["subset"] == "novel_test"
        scores = metrics.novelty_scores(out["energy"], novel, {})
        star = out["levels"]["star"]
        star_scores = metrics.novelty_scores(star["energy"], star["label"] < 0, {})
        conformal = metrics.conformal_scores(star["p_novel"], star["label"] < 0, [0.05])
        results[name] = {"auroc": scores["auroc"], "auprc": scores["auprc"],
                         "star_auroc": star_scores["auroc"], "n_known": scores["n_known"],
                         "n_novel": scores["n_novel"],
                         "star_false_alarm_rate": conformal["alpha0.05_false_alarm_rate"],
                         "star_recall": conformal["alpha0.05_recall"],
                         "train_s": round(out["seconds"], 1)}
    return results


# --- report -----------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    survey, spec = result["survey"], SURVEYS[result["survey"]]
    names = spec["names"]
    cls, loco = result["classification"], result["novelty"]
    lines = [
        f"### {survey}" + (" (with Lomb-Scargle periods)" if result["ls_periods"] else ""),
        "",
        f"`{result['command']}` — {result['machine']['date']}, {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores (load {result['machine']['load_average'][0]}), "
        f"{result['total_s'] / 60:.0f} min.",
        "",
        f"{spec['note']} {result['data']['stars_kept']} of {result['data']['stars']} stars kept "
        f"by the cuts, {result['data']['sequences']} sequences of "
        f"{result['data']['sequence_length']} points"
        + (f"; {result['data']['lomb_scargle_periods']} periods from Lomb-Scargle"
           if result["ls_periods"] else "")
        + "".join(f"; {n} left out ({c} stars, too few for {N_FOLDS} folds)"
                  for n, c in result["data"].get("dropped_classes", {}).items())
        + f". Recipe: {recipe_text(result['recipe'])}.",
        "",
        f"Star-grouped {N_FOLDS}-fold accuracy: **{cls['accuracy_mean']:.1%} ± "
        f"{cls['accuracy_std']:.1%}** per sequence, {cls['star_accuracy_mean']:.1%} ± "
        f"{cls['star_accuracy_std']:.1%} per star; median test reconstruction R² "
        f"**{cls['recon_r2']:.3f}** (per fold " + ", ".join(
            f"{f['recon_r2']:.3f}" for f in cls["folds"]) + ").",
        "",
        "Conformal novelty flag on the test stars (all of known classes, pooled over the "
        "folds): false-alarm rate " + ", ".join(
            f"{cls['conformal']['star'][f'alpha{a:g}_false_alarm_rate']:.3f} at α = {a:g} "
            f"(± {cls['conformal']['star'][f'alpha{a:g}_false_alarm_se']:.3f})"
            for a in ALPHAS) + " per star; " + ", ".join(
            f"{cls['conformal']['sequence'][f'alpha{a:g}_false_alarm_rate']:.3f}"
            for a in ALPHAS) + " per sequence.",
        "",
        "| class | sequences | recall | stars | star recall | R² | predicted as (sequences) | "
        "left-out AUROC | star AUROC | star FAR / recall at α = 0.05 | Deep SVDD AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, recall in cls["recall"].items():
        novelty = loco.get(name, {})
        paper = PEREZ_CARRASCO_AUROC.get(name) if survey != "sdss-s82" else None
        lines.append(
            f"| {names.get(name, name)} | {cls['support'][name]} | {recall:.3f} | "
            f"{cls['star_support'][name]} | {cls['star_recall'][name]:.3f} | "
            f"{cls['class_recon_r2'][name]:.3f} | "
            + ", ".join(f"{names.get(p, p)} {n}" for p, n in sorted(
                cls["confusion"][name].items(), key=lambda item: -item[1])) + " | "
            f"{_num(novelty.get('auroc'))} | {_num(novelty.get('star_auroc'))} | "
            f"{_num(novelty.get('star_false_alarm_rate'))} / {_num(novelty.get('star_recall'))} "
            f"| {_num(paper)} |")
    lines += ["", "Per fold (sequence accuracy): "
              + ", ".join(f"{f['accuracy']:.3f}" for f in cls["folds"]) + "."]
    return "\n".join(lines) + "\n"


def recipe_text(recipe: dict) -> str:
    model, train = recipe["model"], recipe["train"]
    decoder = ("phase" + (f" + {model['decoder_harmonics']} harmonics"
                          if model["decoder_harmonics"] else "")
               if model["decoder_phase"] else "dt only")
    text = (f"GRU {model['gru_units']} x {model['gru_layers']}, m = {model['embedding']}, "
            f"{train['epochs']} joint epochs of batch {train['batch_size']}, lr "
            f"{train['learning_rate']:g} ({train['lr_schedule']}"
            + (f", {train['warmup_epochs']} warm-up" if train.get("warmup_epochs") else "")
            + f"), encoder sees log10 P: {'yes' if model['encoder_period'] else 'no'}")
    if model.get("reconstruct_period"):
        text += f" and reads it back (weight {train['lambda_period']:g})"
    text += f", decoder: {decoder}"
    if train.get("joint_estimation_epochs"):
        text += f"; then {train['joint_estimation_epochs']} epochs of the estimation network alone"
    if train.get("class_weight"):
        text += f"; class weights {train['class_weight']}"
    return text


def _num(value) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


def update_docs(survey: str, text: str, path: Path = DOCS) -> None:
    """Replace the survey's section of docs/results.md between its markers (append if none)."""
    begin, end = f"<!-- BEGIN real-surveys {survey} -->", f"<!-- END real-surveys {survey} -->"
    block = f"{begin}\n{text}{end}"
    current = path.read_text() if path.is_file() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(current)


def run(survey: str, ls_periods: bool = False, epochs: int | None = None,
        novelty: bool = True, quick: bool = False, ls_per_class: int | None = None
        ) -> dict[str, Any]:
    from varnet.core import schema

    budget = json.loads(json.dumps(SURVEYS[survey]["budget"]))
    if quick or epochs:
        budget["train"] = {**budget.get("train", {}), "epochs": 1 if quick else epochs}
    params = survey_params(survey, budget)
    workdir = common.WORK_DIR / (survey + ("-ls" if ls_periods else ""))
    started = time.perf_counter()
    machine = common.machine()
    data = prepare(survey, params, workdir, ls_periods, ls_per_class)
    arrays = files.read_npz(workdir / schema.SEQUENCES_FILE)
    arrays, data["dropped_classes"] = _usable(arrays)
    recipe = {"model": params["model"],
              "train": {k: v for k, v in params["train"].items() if k != "variants"}}
    result = {"benchmark": "real_surveys", "survey": survey, "ls_periods": ls_periods,
              "machine": machine, "budget": budget, "recipe": recipe, "data": data,
              "classification": classification(params, workdir, arrays),
              "novelty": leave_one_class_out(params, workdir, arrays) if novelty else {}}
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["command"] = ("python -m benchmarks.real_surveys " + survey
                         + (" --ls-periods" if ls_periods else "")
                         + (f" --ls-per-class {ls_per_class}" if ls_per_class else "")
                         + (f" --epochs {epochs}" if epochs else "")
                         + ("" if novelty else " --no-novelty"))
    result["load_after"] = common.load()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("survey", choices=sorted(SURVEYS))
    parser.add_argument("--ls-periods", action="store_true",
                        help="fill missing catalog periods with varnet.prepare.periods "
                        "(Lomb-Scargle)")
    parser.add_argument("--ls-per-class", type=int, default=None, metavar="N",
                        help="with --ls-periods: search only the first N stars without a "
                             "period of each class (catalog order)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run (default: the survey's budget, else params.yaml)")
    parser.add_argument("--no-novelty", action="store_true",
                        help="skip the leave-one-class-out runs")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/results.md")
    parser.add_argument("--quick", action="store_true", help="1 epoch per run (a smoke test)")
    args = parser.parse_args(argv)
    result = run(args.survey, args.ls_periods, args.epochs, not args.no_novelty, args.quick,
                 args.ls_per_class)
    result["peak_rss_mib"] = round(common.peak_rss_mib(), 1)
    stem = (f"real-{args.survey}" + ("-ls" if args.ls_periods else "")
            + ("-quick" if args.quick else f"-epochs{args.epochs}" if args.epochs else ""))
    # another budget never overwrites the budget's own table
    files.write_json(result, common.RESULTS_DIR / f"{stem}.json")
    text = markdown(result)
    (common.RESULTS_DIR / f"{stem}.md").write_text(text)
    if not (args.no_docs or args.quick):
        update_docs(stem.removeprefix("real-"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
