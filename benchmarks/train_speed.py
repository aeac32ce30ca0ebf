"""Training throughput of the joint network on this CPU, against the matmul ceiling, at both sizes.

Two networks: params.yaml's `model` (the default, `make run`'s) and the released run's size
(2 x GRU(96) encoder and decoder, m = 16; params.yaml `model` otherwise), on 200-point sequences
of the default survey's training set, trained by `varnet.model.DualTrainer` in joint mode
(L_AE + L_CE + lambda L_GMM, Adam), as `varnet train joint` does. Two figures per batch size:

  pipeline  `fit` on `varnet train`'s own input pipeline (varnet.training.data.training_batches:
            a stateless shuffle per epoch, gather, two batches prefetched), PIPELINE_STEPS steps
  compute   the compiled train step on one batch already in memory (no input pipeline)

sequences/s is converted to GFLOP/s with the GRU FLOP count of benchmarks.common, read from
each built network (training = 3 x forward; forward = sum over GRU layers of
T * 3 * (in*u + u^2) * 2) and divided by the float32 matmul ceiling measured in the same
process just before and after.

    .venv/bin/python -m benchmarks.train_speed            # default: params' batch and 256;
                                                         # paper size: 256 and 500
    .venv/bin/python -m benchmarks.train_speed --quick
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks import common

PAPER_BATCH_SIZES = (256, 500)
TIMED_STEPS = 3
"""compute: the fastest of 3 steps."""
PIPELINE_STEPS = 12
"""pipeline: the mean of 12 steps of one `fit`, so that starting the epoch (callbacks, the
iterator, the first prefetch) weighs as little as in a real epoch (until 2026-12-04: 3 steps of
a tf.data pipeline with an autotuned prefetch, which `varnet train` does not use)."""


def _train_arrays(survey_dir) -> dict[str, np.ndarray]:
    from varnet.core import files, schema

    arrays = files.read_npz(survey_dir / schema.SEQUENCES_FILE)
    train = files.read_npz(survey_dir / schema.SPLIT_FILE)["train"]
    return {"X": arrays["X"][train].astype(np.float32),
            "aux": arrays["aux"][train].astype(np.float32),
            "label": arrays["label"][train].astype(np.int32),
            "weight": arrays["weight"][train].astype(np.float32)}


def _repeat_to(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """At least ``n`` rows (the default survey's training set is ~2,100 sequences)."""
    reps = -(-n // len(arrays["label"]))
    return {k: np.concatenate([v] * reps)[:max(n, len(v))] for k, v in arrays.items()}


def measure(batch_size: int, steps: int, pipeline_steps: int, data: dict[str, np.ndarray],
            model_params: dict, learning_rate: float, lambda_energy: float) -> dict:
    """pipeline and compute sequences/s of the joint train step at one batch size, and the
    network's GRU FLOP per training sequence."""
    import keras
    import tensorflow as tf

    from varnet.core import taxonomy
    from varnet.core.config import ModelParams
    from varnet.model import DualTrainer, build_network
    from varnet.training.data import Subset, training_batches

    keras.utils.set_random_seed(0)
    cfg = ModelParams(**model_params)
    data = _repeat_to(data, batch_size * (max(steps, pipeline_steps) + 1))
    network = build_network(cfg, n_classes=len(taxonomy.CLASSES), n_steps=data["X"].shape[1],
                            aux_train=data["aux"])
    trainer = DualTrainer(network, "joint", lambda_energy, cfg.gmm_jitter)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
    inputs = {"X": data["X"], "aux": data["aux"]}
    targets = {"label": data["label"], "weight": data["weight"]}
    n_rows = len(data["label"])
    train = Subset(np.arange(n_rows), inputs, data["label"], data["weight"],
                   np.arange(n_rows).astype(str))
    started = time.perf_counter()
    trainer.fit(training_batches(inputs, train, batch_size, seed=(0, 0), epochs=range(1)),
                epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)  # trace, step 1
    first_step_s = time.perf_counter() - started
    batches = training_batches(inputs, train, batch_size, seed=(0, 1), epochs=range(1))
    started = time.perf_counter()
    trainer.fit(batches, epochs=1, steps_per_epoch=pipeline_steps, shuffle=False, verbose=0)
    pipeline_s = (time.perf_counter() - started) / pipeline_steps

    batch = ({k: tf.constant(v[:batch_size]) for k, v in inputs.items()},
             {k: tf.constant(v[:batch_size]) for k, v in targets.items()})
    step = trainer.make_train_function()
    iterator = iter([batch] * (steps + 1))
    step(iterator)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        logs = step(iterator)
        float(logs["loss"])
        times.append(time.perf_counter() - started)
    return {"batch_size": batch_size, "first_step_s": round(first_step_s, 2),
            "pipeline_sequences_per_s": round(batch_size / pipeline_s, 1),
            "compute_sequences_per_s": round(batch_size / min(times), 1),
            "parameters": int(network.count_params()),
            "flop_per_sequence": common.gru_flop_per_sequence(network, data["X"].shape[1],
                                                              training=True),
            "gru_inputs": common.gru_layer_inputs(network)}


def run(quick: bool = False) -> dict:
    params = common.root_params()
    survey = common.default_survey()
    machine = common.machine()
    data = _train_arrays(common.WORK_DIR / "default")
    batch = params["train"]["batch_size"]
    networks = {"default": ({}, (batch, 256)), "paper": (common.PAPER_MODEL, PAPER_BATCH_SIZES)}
    ceiling_before = common.matmul_ceiling()
    rows = []
    for name, (size, batch_sizes) in networks.items():
        model_params = {**params["model"], **size}
        for batch_size in ((64,) if quick else batch_sizes):
            row = measure(batch_size, 1 if quick else TIMED_STEPS,
                          2 if quick else PIPELINE_STEPS, data, model_params,
                          params["train"]["learning_rate"], params["train"]["lambda_energy"])
            rows.append({"network": name, **{k: model_params[k] for k in (
                "gru_units", "gru_layers", "embedding")}, **row, "load": common.load()})
    ceiling_after = common.matmul_ceiling()
    ceiling = (ceiling_before["ceiling_gflops"] + ceiling_after["ceiling_gflops"]) / 2
    for row in rows:
        for kind in ("pipeline", "compute"):
            gflops = row[f"{kind}_sequences_per_s"] * row["flop_per_sequence"] / 1e9
            row[f"{kind}_gflops"] = round(gflops, 2)
            row[f"{kind}_fraction_of_ceiling"] = round(gflops / ceiling, 4)
    return {"benchmark": "train_speed", "machine": machine,
            "command": "python -m benchmarks.train_speed" + (" --quick" if quick else ""),
            "sequence_length": int(data["X"].shape[1]),
            "train_sequences": survey["train_sequences"],
            "flop_formula": "3 x sum_layers T*3*(in*u+u^2)*2",
            "ceiling_before": ceiling_before, "ceiling_after": ceiling_after,
            "ceiling_gflops": round(ceiling, 1), "batches": rows,
            "load_after": common.load()}


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__.split("\n\n")[0]))
