"""The dual network: architecture, standardisation, missing photometry, save/load, trainer modes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from varnet.core.config import ModelParams
from varnet.model import DualTrainer, build_network, feature_names
from varnet.model.autoencoder import (
    FoldedPhase,
    LagTransform,
    PhaseHarmonics,
    ReconstructionFeatures,
)
from varnet.model.estimation import Standardize
from varnet.prepare.sequences import folded_phase

N, T, K = 24, 20, 8


def arrays(photometric: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    phase = np.sort(rng.uniform(0, 1, (N, T)), axis=1)
    log_p = rng.uniform(-1, 2, N)
    lag = np.diff(phase, axis=1, append=phase[:, -1:]) * 10 ** log_p[:, None]
    mag = np.sin(2 * np.pi * phase * rng.integers(1, 3, (N, 1)))
    out = {"X": np.stack([lag, (mag - mag.mean(1, keepdims=True)) / mag.std(1, keepdims=True)],
                         -1).astype(np.float32),
           "aux": np.c_[rng.normal(13, 1, N), rng.uniform(0.1, 1, N), log_p].astype(np.float32)}
    if photometric:
        phot = rng.normal(size=(N, 3)).astype(np.float32)
        phot[::5, 0] = np.nan
        phot[::7] = np.nan
        out["phot"] = phot
    return out


def small_network(photometric=False, **overrides) -> keras.Model:
    keras.utils.set_random_seed(0)
    cfg = ModelParams(**{"embedding": 4, "gru_units": 8, **overrides})
    data = arrays(photometric)
    return build_network(cfg, n_classes=K, n_steps=T, aux_train=data["aux"],
                         phot_train=data.get("phot"))


def test_parameter_counts_at_paper_size_and_cpu_default():
    aux = arrays()["aux"]
    paper = build_network(ModelParams(embedding=16, gru_units=96, decoder_phase=False,
                                      encoder_period=False, reconstruct_period=False),
                          n_classes=K, n_steps=200, aux_train=aux)
    # GRU(96) with reset_after=True (Keras 3) has 3*96 more biases than the Keras 2 cell
    expected = {"encoder": 28_800 + 55_872 + 1_552, "decoder": 33_120 + 55_872 + 97,
                "estimation": 21 * 16 + 16 + 16 * 8 + 8}
    for name, count in expected.items():
        assert paper.get_layer(name).count_params() == count
    assert paper.count_params() == sum(expected.values()) == 175_801
    assert paper.get_layer("features").output.shape[-1] == 21  # l = m + 5
    cpu = build_network(ModelParams(), n_classes=K, n_steps=200, aux_train=aux)
    assert cpu.count_params() == 26_089 + 33  # GRU 32, m 32, phase + 4 harmonics, period in and
    # out (the period decoder: 32 + 1): params.yaml


def test_outputs_and_shapes():
    network = small_network()
    out = network(arrays(), training=False)
    assert out["embedding"].shape == (N, 4)
    assert out["reconstruction"].shape == (N, T)
    assert out["features"].shape == (N, 4 + 5)
    assert out["gamma"].shape == (N, K)
    np.testing.assert_allclose(out["gamma"].numpy().sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["observed"].numpy(), 1.0)
    assert feature_names(4, False)[-3:] == ["mean_mag", "std_mag", "log10_period"]


def test_sequence_length_is_free():
    """The same weights score sequences of another length (dt is the only time input)."""
    network = small_network()
    data = arrays()
    short = {"X": data["X"][:, :12], "aux": data["aux"]}
    assert network(short, training=False)["reconstruction"].shape == (N, 12)


def test_aux_standardised_with_training_statistics():
    data = arrays()
    network = small_network()
    features = network(data, training=False)["features"].numpy()[:, -3:]
    np.testing.assert_allclose(features.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(features.std(0), 1.0, rtol=1e-4)
    raw = small_network(standardize_aux=False)(data, training=False)["features"].numpy()[:, -3:]
    np.testing.assert_allclose(raw, data["aux"], rtol=1e-6)


def test_missing_photometry_is_imputed_and_masked():
    data = arrays(photometric=True)
    network = small_network(photometric=True)
    out = network(data, training=False)
    features, observed = out["features"].numpy()[:, -3:], out["observed"].numpy()
    missing = np.isnan(data["phot"])
    np.testing.assert_array_equal(observed[:, -3:], (~missing).astype(np.float32))
    np.testing.assert_array_equal(observed[:, :-3], 1.0)
    np.testing.assert_array_equal(features[missing], 0.0)  # the training mean
    assert np.all(np.isfinite(out["gamma"].numpy()))
    assert network.get_layer("estimation").input[0].shape[-1] == 4 + 5 + 3
    # the classifier sees one missing-value flag per photometric feature
    assert network.get_layer("estimation").get_layer("estimation_hidden").kernel.shape[0] == 15


def test_paper_fill_value_for_missing_photometry():
    data = arrays(photometric=True)
    network = small_network(photometric=True, phot_missing="fill99", standardize_aux=False)
    out = network(data, training=False)
    features = out["features"].numpy()[:, -3:]
    np.testing.assert_array_equal(features[np.isnan(data["phot"])], 99.0)
    np.testing.assert_array_equal(out["observed"].numpy(), 1.0)


def test_standardize_statistics_ignore_missing_values():
    x = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    mean, std = Standardize.statistics(x, standardize=True)
    np.testing.assert_allclose(mean, [2.0, 0.0])
    np.testing.assert_allclose(std, [1.0, 1.0])


def test_lag_transform_phase_divides_by_the_period():
    data = arrays()
    out = LagTransform("phase", scale=T)(tf.constant(data["X"]), tf.constant(data["aux"]))
    period = 10 ** data["aux"][:, 2]
    np.testing.assert_allclose(out.numpy()[:, :, 0], data["X"][:, :, 0] / period[:, None] * T,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(out.numpy()[:, :, 1], data["X"][:, :, 1])
    same = LagTransform("days")(tf.constant(data["X"]), tf.constant(data["aux"]))
    np.testing.assert_array_equal(same.numpy(), data["X"])


def test_folded_phase_is_the_running_sum_of_the_lags_over_the_period():
    rng = np.random.default_rng(1)
    phase = np.sort(rng.uniform(0, 1, (N, T)), axis=1)
    data = arrays()
    period = 10 ** data["aux"][:, 2]
    lag = np.diff(phase, axis=1, append=phase[:, -1:]) * period[:, None]
    X = np.stack([lag, data["X"][:, :, 1]], axis=-1).astype(np.float32)
    got = FoldedPhase()(tf.constant(X), tf.constant(data["aux"])).numpy()[:, :, 0]
    np.testing.assert_allclose(got, phase - phase[:, :1], atol=1e-5)
    np.testing.assert_allclose(folded_phase(lag, period), phase - phase[:, :1], atol=1e-9)


def test_the_decoder_sees_the_phase_only_when_asked():
    with_phase = small_network(decoder_phase=True, decoder_harmonics=0)
    without = small_network(decoder_phase=False)
    assert with_phase.get_layer("decoder").input[1].shape[-1] == 2
    assert without.get_layer("decoder").input[1].shape[-1] == 1
    assert "folded_phase" not in [layer.name for layer in without.layers]
    harmonics = small_network(decoder_phase=True, decoder_harmonics=3)
    assert harmonics.get_layer("decoder").input[1].shape[-1] == 2 + 6
    phase = tf.constant([[[0.0], [0.25]]])
    np.testing.assert_allclose(PhaseHarmonics(1)(phase).numpy()[0], [[0, 1], [1, 0]], atol=1e-6)


def test_the_encoder_sees_the_standardised_period_at_every_step_only_when_asked(tmp_path):
    with_period = small_network(encoder_period=True)
    assert with_period.get_layer("encoder").input.shape[-1] == 3
    assert small_network(encoder_period=False).get_layer("encoder").input.shape[-1] == 2
    data = arrays()
    standardize = with_period.get_layer("aux_standardize")
    expected = (data["aux"][:, 2] - standardize.mean[2]) / standardize.std[2]
    seen = keras.Model(with_period.inputs, with_period.get_layer("with_period").output)(data)
    np.testing.assert_allclose(seen[:, :, 2], np.repeat(expected[:, None], T, 1), rtol=1e-5)
    path = tmp_path / "model.keras"
    with_period.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(data)["embedding"],
                               with_period(data)["embedding"], rtol=1e-6)


def test_the_embedding_reads_the_standardised_period_back_only_when_asked(tmp_path):
    network = small_network(reconstruct_period=True)
    data = arrays()
    out = network(data, training=False)
    assert out["period_reconstruction"].shape == (N,)
    head = network.get_layer("period_decoder")
    np.testing.assert_allclose(out["period_reconstruction"],
                               out["embedding"].numpy() @ head.kernel.numpy()[:, 0]
                               + head.bias.numpy()[0], rtol=1e-5, atol=1e-6)
    path = tmp_path / "model.keras"
    network.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(data)["period_reconstruction"],
                               out["period_reconstruction"], rtol=1e-6)
    paper = small_network(reconstruct_period=False)
    assert "period_reconstruction" not in paper(data)
    assert set(_fit_one_epoch(paper, "autoencoder", None)) == {"loss", "ae_loss"}


def test_period_loss_is_the_squared_error_of_the_standardised_log_period():
    from varnet.model.network import period_mse

    network = small_network()
    data = arrays()
    standardize = network.get_layer("aux_standardize")
    target = (data["aux"][:, 2] - standardize.mean[2]) / standardize.std[2]
    values, _ = standardize(tf.constant(data["aux"]))
    assert float(period_mse(values, tf.constant(target))) == pytest.approx(0.0, abs=1e-10)
    assert float(period_mse(values, tf.constant(target + 0.5))) == pytest.approx(0.25, rel=1e-5)


def test_reconstruction_features_match_numpy():
    rng = np.random.default_rng(3)
    x, x_hat = rng.normal(size=(5, T)), rng.normal(size=(5, T))
    got = ReconstructionFeatures()(tf.constant(x), tf.constant(x_hat)).numpy()
    nx, nh = np.linalg.norm(x, axis=1), np.linalg.norm(x_hat, axis=1)
    rel = np.linalg.norm(x - x_hat, axis=1) / (nx + 1e-3)
    cos = 0.5 * (1 - (x * x_hat).sum(1) / (nx * nh + 1e-3))
    np.testing.assert_allclose(got, np.c_[rel, cos], rtol=1e-6)


def test_save_and_load_give_identical_outputs(tmp_path):
    network = small_network(photometric=True)
    data = arrays(photometric=True)
    path = tmp_path / "model.keras"
    network.save(path)
    loaded = keras.models.load_model(path)
    before, after = network(data, training=False), loaded(data, training=False)
    for key in before:
        np.testing.assert_allclose(after[key].numpy(), before[key].numpy(), rtol=1e-6)


def _fit_one_epoch(network, mode, inputs):
    data = arrays()
    label = np.arange(N) % K
    targets = {"label": label.astype(np.int32), "weight": np.ones((N, T), np.float32)}
    trainer = DualTrainer(network, mode, lambda_energy=1e-3, jitter=1e-4)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = trainer.fit(inputs if inputs is not None else data, targets, batch_size=12,
                          epochs=1, verbose=0, shuffle=False)
    return {k: v[-1] for k, v in history.history.items()}


@pytest.mark.parametrize("mode, metrics, frozen", [
    ("joint", {"loss", "ae_loss", "period_loss", "ce_loss", "energy_loss", "accuracy"}, ()),
    ("autoencoder", {"loss", "ae_loss", "period_loss"}, ("estimation",)),
    ("estimation", {"loss", "ce_loss", "energy_loss", "accuracy"},
     ("encoder", "decoder", "period_decoder")),
])
def test_trainer_modes_report_their_losses_and_train_only_their_part(mode, metrics, frozen):
    network = small_network()
    inputs = None
    if mode == "estimation":
        out = network(arrays(), training=False)
        inputs = {"features": out["features"].numpy(), "observed": out["observed"].numpy()}
    before = {name: [w.numpy().copy() for w in network.get_layer(name).weights]
              for name in ("encoder", "decoder", "period_decoder", "estimation")}
    logs = _fit_one_epoch(network, mode, inputs)
    assert set(logs) == metrics
    assert all(np.isfinite(v) for v in logs.values())
    if "ae_loss" in logs and "ce_loss" in logs:
        assert logs["loss"] == pytest.approx(logs["ae_loss"] + logs["period_loss"]
                                             + logs["ce_loss"] + 1e-3 * logs["energy_loss"],
                                             rel=1e-4)
    for name, weights in before.items():
        changed = any(not np.array_equal(w.numpy(), old)
                      for w, old in zip(network.get_layer(name).weights, weights, strict=True))
        assert changed == (name not in frozen), name


def test_balanced_class_weights_make_every_class_weigh_the_same():
    from varnet.model.network import cross_entropy
    from varnet.training.loop import balanced_class_weight

    label = np.array([0, 0, 0, 0, 0, 0, 3, 3], np.int32)  # 6 of class 0, 2 of class 3
    weight = balanced_class_weight(label)
    assert weight[0] == pytest.approx(8 / (2 * 6)) and weight[3] == pytest.approx(8 / (2 * 2))
    assert (np.delete(weight, [0, 3]) == 0).all()  # classes absent from training
    per_class = weight[label]
    assert per_class[label == 0].sum() == pytest.approx(per_class[label == 3].sum())

    gamma = tf.nn.softmax(tf.random.stateless_normal((8, len(weight)), seed=(1, 2)))
    ce = keras.losses.sparse_categorical_crossentropy(label, gamma).numpy()
    expected = (ce[:6].mean() + ce[6:].mean()) / 2  # each class's mean, the classes alike
    assert float(cross_entropy(label, gamma, weight)) == pytest.approx(expected, rel=1e-5)
    assert float(cross_entropy(label, gamma)) == pytest.approx(ce.mean(), rel=1e-5)
