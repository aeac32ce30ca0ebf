"""Scoring throughput, end to end from raw light curves, against the matmul ceiling.

What `varnet score` and the served MLflow model do per request:
`varnet.scoring.lightcurves.score_lightcurves` on a long table of raw epochs (id, band, time, mag,
err, period): clean the epochs, cut and fold the sequences, run the network (dropout off), GMM
energies under the frozen mixture, per-star means, calibrated probabilities, conformal p-values,
novelty flags. The scorer is a real model folder (schema.SERVED_FILES) loaded with
`varnet.scoring.inference.Scorer.load`, written by the functions `varnet train` finishes a
variant with: its weights are untrained (throughput does not depend on them), its GMM is refitted
on the default survey's training sequences, its thresholds and calibration come from the training
and validation sequences. Two sizes: params.yaml's model (the CPU default) and the paper's
(GRU 96).

Reported per model: sequences/s and stars/s end to end, the time split between preprocessing
and the network, the first call (graph tracing, once per process) apart, and the network's
forward GFLOP/s as a fraction of the matmul ceiling measured in the same process. Stars without
a catalog period get a Lomb-Scargle period (varnet.prepare.periods); that rate is measured apart.

    .venv/bin/python -m benchmarks.score_speed          # 2,000 stars (~3,400 sequences)
    .venv/bin/python -m benchmarks.score_speed --quick
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks import common
from benchmarks.preprocess import simulate_frames

STARS = 2000
LOMB_SCARGLE_STARS = 10
REPEATS = 2


def request(n_stars: int, seed: int = 1, with_period: bool = True) -> pd.DataFrame:
    """A scoring request: raw epochs of ``n_stars`` stars, the catalog period on every row."""
    catalog, lightcurves = simulate_frames(n_stars, seed)
    frame = lightcurves.copy()
    if with_period:
        frame["period"] = frame["id"].map(catalog.set_index("id")["period"])
    return frame


def make_model_dir(model_params: dict, params: dict, target: Path) -> Path:
    """A scorable variant folder of untrained weights, written as `varnet train` finishes a
    variant (training.train): the GMM refitted on the training sequences, the novelty thresholds
    of their energies, the calibration on the validation sequences; only the epochs are left
    out."""
    import keras

    from varnet.core import files, provenance, schema, taxonomy
    from varnet.core.config import (
        CutsParams,
        EvaluateParams,
        ModelParams,
        SequencesParams,
        as_dict,
        section,
    )
    from varnet.model import build_network, feature_names
    from varnet.scoring.calibration import Calibration, novelty_thresholds
    from varnet.training.data import load_data
    from varnet.training.train import score_subsets, trained_bands

    keras.utils.set_random_seed(0)
    survey = common.WORK_DIR / "default"
    sequences, split = survey / schema.SEQUENCES_FILE, survey / schema.SPLIT_FILE
    data = load_data(photometric=False, sequences=sequences, split=split)
    train, valid = data["train"], data["valid"]
    cfg = ModelParams(**model_params)
    network = build_network(cfg, n_classes=len(taxonomy.CLASSES),
                            n_steps=train.inputs["X"].shape[1], aux_train=train.inputs["aux"])
    gmm_params, outputs = score_subsets(network, data, cfg.gmm_jitter)
    percentiles = [float(p) for p in section(EvaluateParams, params).percentiles]
    thresholds = novelty_thresholds(train.star_id, outputs["train"]["energy"], percentiles)
    fitted = Calibration.fit(valid.star_id, valid.label, outputs["valid"]["gamma"],
                             outputs["valid"]["energy"], outputs["valid"]["class_energy"])

    folder = schema.ModelFolder(target)
    folder.root.mkdir(parents=True, exist_ok=True)
    network.save(folder.model)
    files.write_npz(folder.gmm, **gmm_params)
    files.write_json(thresholds, folder.thresholds)
    fitted.save(folder.calibration)
    files.write_json({"name": "joint", "mode": "joint", "photometric": False,
                      "model": as_dict(cfg), "classes": list(taxonomy.CLASSES),
                      "features": feature_names(cfg.embedding, False),
                      "sequence_length": int(train.inputs["X"].shape[1]),
                      "sequences": as_dict(section(SequencesParams, params)),
                      "cuts": as_dict(section(CutsParams, params)),
                      "trained_bands": trained_bands(train, sequences), "epochs_trained": 0,
                      "data": provenance.data_fingerprint(sequences, split)}, folder.variant)
    return folder.root


def measure(model_dir: Path, frame: pd.DataFrame, ceiling: float, repeats: int) -> dict:
    from varnet.prepare.cuts import clean_lightcurves
    from varnet.prepare.sequences import build_sequences
    from varnet.scoring.inference import Scorer
    from varnet.scoring.lightcurves import preprocessing_for, score_lightcurves

    started = time.perf_counter()
    scorer = Scorer.load(model_dir)
    prep = preprocessing_for(model_dir)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    score_lightcurves(scorer, prep, frame)  # traces the network for these batch shapes
    first_call_s = time.perf_counter() - started

    totals = []
    for _ in range(repeats):
        started = time.perf_counter()
        table = score_lightcurves(scorer, prep, frame)
        totals.append(time.perf_counter() - started)
    total = min(totals)
    n_sequences = int(table["n_sequences"].sum())
    n_stars = int(frame["id"].nunique())

    # the same request in parts: preprocessing, network + GMM
    started = time.perf_counter()
    clean, _ = clean_lightcurves(frame.drop(columns=["period"]), prep.sentinel_mag)
    catalog = frame.groupby("id", sort=False)["period"].first().rename_axis("id").reset_index()
    arrays, _ = build_sequences(catalog, clean, prep.length, prep.bands)
    preprocess_s = time.perf_counter() - started
    started = time.perf_counter()
    scorer.predict(arrays["X"], arrays["aux"])
    network_s = time.perf_counter() - started

    variant = json.loads((model_dir / "variant.json").read_text())["model"]
    flop = common.gru_flop_per_sequence(scorer.network, prep.length, training=False)
    end_to_end = n_sequences / total
    network_rate = len(arrays["X"]) / network_s
    return {"gru_units": variant["gru_units"], "stars": n_stars, "sequences": n_sequences,
            "load_model_s": round(load_s, 2), "first_call_s": round(first_call_s, 2),
            "total_s": round(total, 2), "sequences_per_s": round(end_to_end, 1),
            "stars_per_s": round(n_stars / total, 1),
            "preprocess_s": round(preprocess_s, 2), "network_s": round(network_s, 2),
            "network_sequences_per_s": round(network_rate, 1),
            "flop_per_sequence": flop,
            "end_to_end_fraction_of_ceiling": round(end_to_end * flop / 1e9 / ceiling, 4),
            "network_fraction_of_ceiling": round(network_rate * flop / 1e9 / ceiling, 4),
            "load": common.load()}


def lomb_scargle_rate(n_stars: int) -> dict:
    """Stars per second of the period search alone, on stars sent without a period."""
    from varnet.prepare.periods import lomb_scargle_period

    frame = request(n_stars, seed=2, with_period=False)
    groups = [g for _, g in frame[frame["mag"] < 90].groupby("id", sort=False)]
    started = time.perf_counter()
    for g in groups:
        lomb_scargle_period(*(g[c].to_numpy() for c in ("time", "mag", "err", "band")))
    elapsed = time.perf_counter() - started
    return {"stars": len(groups), "stars_per_s": round(len(groups) / elapsed, 1)}


def run(quick: bool = False) -> dict:
    params = common.root_params()
    common.default_survey()
    machine = common.machine()
    n_stars = 200 if quick else STARS
    frame = request(n_stars)
    ceiling_before = common.matmul_ceiling()
    rows = []
    for name, model in (("default", {}), ("paper", common.PAPER_MODEL)):
        model_params = {**params["model"], **model}
        folder = f"{name}-gru{model_params['gru_units']}"
        model_dir = make_model_dir(model_params, params, common.WORK_DIR / "score" / folder)
        rows.append({"model": name, **measure(model_dir, frame, ceiling_before["ceiling_gflops"],
                                              1 if quick else REPEATS)})
    ceiling_after = common.matmul_ceiling()
    ceiling = (ceiling_before["ceiling_gflops"] + ceiling_after["ceiling_gflops"]) / 2
    for row in rows:  # rescale to the mean of the two ceilings
        for key in ("end_to_end_fraction_of_ceiling", "network_fraction_of_ceiling"):
            row[key] = round(row[key] * ceiling_before["ceiling_gflops"] / ceiling, 4)
    return {"benchmark": "score_speed", "machine": machine,
            "command": "python -m benchmarks.score_speed" + (" --quick" if quick else ""),
            "ceiling_before": ceiling_before, "ceiling_after": ceiling_after,
            "ceiling_gflops": round(ceiling, 1), "models": rows,
            "lomb_scargle": lomb_scargle_rate(10 if quick else LOMB_SCARGLE_STARS),
            "load_after": common.load()}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
