"""Where a training step's time goes: the joint step taken apart, on one in-memory batch.

Times, interleaved over a few repeats (best of each, so that a shared machine's load drifts
alike for all), the compiled pieces of `varnet.model.DualTrainer` on the default survey's
sequences:

  joint_step        L_AE + L_CE + lambda L_GMM, forward + backward + Adam (what training runs)
  autoencoder_step  L_AE alone (the difference to joint_step = estimation net + GMM, backward)
  forward           the whole network, dropout off (what scoring runs)
  encoder_forward   the two encoder GRUs and the embedding alone
  gmm_forward_backward  the batch GMM fit + float64 energy + its gradient, on fixed features

    .venv/bin/python -m benchmarks.profile_step                   # paper size: GRU 96, batch 500
    .venv/bin/python -m benchmarks.profile_step --units 32 --batch 256   # params.yaml's size
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks import common
from benchmarks.train_speed import _repeat_to, _train_arrays


def profile(units: int, batch_size: int, repeats: int = 3) -> dict:
    import keras
    import tensorflow as tf

    from varnet.core import taxonomy
    from varnet.core.config import ModelParams
    from varnet.model import DualTrainer, build_network, gmm

    params = common.root_params()
    common.default_survey()
    data = _repeat_to(_train_arrays(common.WORK_DIR / "default"), batch_size)
    data = {k: v[:batch_size] for k, v in data.items()}
    cfg = ModelParams(**{**params["model"], **common.PAPER_MODEL, "gru_units": units})
    keras.utils.set_random_seed(0)
    network = build_network(cfg, n_classes=len(taxonomy.CLASSES), n_steps=data["X"].shape[1],
                            aux_train=data["aux"])
    inputs = {"X": tf.constant(data["X"]), "aux": tf.constant(data["aux"])}
    targets = {"label": tf.constant(data["label"]), "weight": tf.constant(data["weight"])}
    steps = {}
    for mode in ("joint", "autoencoder"):
        trainer = DualTrainer(network, mode, params["train"]["lambda_energy"], cfg.gmm_jitter)
        trainer.compile(optimizer=keras.optimizers.Adam(2e-4), jit_compile=False)
        trainer.optimizer.build(trainer.trained_variables())
        steps[mode] = tf.function(lambda batch, trainer=trainer: trainer.train_step(batch))

    @tf.function
    def forward(x):
        return network(x, training=False)

    @tf.function
    def encoder_forward(x):
        return network.get_layer("encoder")(x, training=False)

    @tf.function
    def gmm_forward_backward(z, gamma, observed):
        with tf.GradientTape() as tape:
            tape.watch([z, gamma])
            energy = tf.reduce_mean(gmm.fit_energy(z, gamma, observed, cfg.gmm_jitter))
        return tape.gradient(energy, [z, gamma])

    out = forward(inputs)
    pieces = {
        "joint_step": lambda: steps["joint"]((inputs, targets)),
        "autoencoder_step": lambda: steps["autoencoder"]((inputs, targets)),
        "forward": lambda: forward(inputs),
        "encoder_forward": lambda: encoder_forward(inputs["X"]),
        "gmm_forward_backward": lambda: gmm_forward_backward(out["features"], out["gamma"],
                                                             out["observed"]),
    }
    for piece in pieces.values():  # trace
        tf.nest.map_structure(lambda t: t.numpy(), piece())
    best = dict.fromkeys(pieces, float("inf"))
    for _ in range(repeats):
        for name, piece in pieces.items():
            started = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), piece())
            best[name] = min(best[name], time.perf_counter() - started)
    joint = best["joint_step"]
    return {"benchmark": "profile_step", "machine": common.machine(), "gru_units": units,
            "batch_size": batch_size,
            "command": f"python -m benchmarks.profile_step --units {units} --batch {batch_size}",
            "seconds": {k: round(v, 4) for k, v in best.items()},
            "share_of_joint_step": {k: round(v / joint, 4) for k, v in best.items()},
            "backward_over_forward": round((joint - best["forward"]) / best["forward"], 2),
            "load_after": common.load()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=common.PAPER_MODEL["gru_units"])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(profile(args.units, args.batch, args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
