"""The dual network (autoencoder + estimation network + GMM) and the trainer of its losses.

``build_network`` gives one functional Keras model, saved as ``model.keras``:

    inputs  X (N, T, 2) [dt, normalised mag], aux (N, 3) raw [mean mag, std, log10 P],
            phot (N, 3) [M_G, BP-RP, W_RP] with NaN where missing (photometric variant only)
    outputs embedding z_e (N, m), reconstruction x_hat (N, T), [period_reconstruction (N,),
            the standardised log10 P read back from z_e: model.reconstruct_period]
            features z = [z_e, z_r, aux, phot] (N, l) (the GMM input, l = m + 5 [+ 3]),
            observed (N, l) (0 where a feature was imputed), gamma (N, K)

Standardisation of aux/phot is inside the model (training-set statistics frozen in the layer
config), so the saved file is self-contained. ``DualTrainer`` wraps the network for ``fit``:
joint (all losses), autoencoder (weighted MSE only) or estimation (CE + lambda * energy on
frozen features) and reports ae_loss, ce_loss, energy_loss and accuracy per epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from varnet.core.config import ModelParams
from varnet.core.errors import VarnetError
from varnet.core.schema import PHOT_COLUMNS
from varnet.model import gmm
from varnet.model.autoencoder import (
    FoldedPhase,
    LagTransform,
    PhaseHarmonics,
    ReconstructionFeatures,
    TimeChannel,
    WithPeriod,
    build_decoder,
    build_encoder,
)
from varnet.model.estimation import Standardize, build_estimation

AUX_NAMES = ("mean_mag", "std_mag", "log10_period")
PHOT_NAMES = tuple(PHOT_COLUMNS.values())
PHOT_MISSING = ("mask", "fill99")
PAPER_FILL_VALUE = 99.0
RECONSTRUCTED = ("reconstruction", "period_reconstruction")
_PACKAGE = "varnet"


def feature_names(embedding: int, photometric: bool) -> list[str]:
    """Names of the GMM feature columns z, in order."""
    names = [f"z{i}" for i in range(embedding)] + ["rel_euclidean", "cosine_distance"]
    return names + list(AUX_NAMES) + (list(PHOT_NAMES) if photometric else [])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class OnesLike(layers.Layer):
    """All-ones mask for features that are never missing."""

    def call(self, x):
        return tf.ones_like(x)


def build_network(cfg: ModelParams, *, n_classes: int, n_steps: int, aux_train: np.ndarray,
                  phot_train: np.ndarray | None = None) -> keras.Model:
    """The whole network; aux/phot statistics come from the training arrays given here."""
    photometric = phot_train is not None
    sequence = keras.Input((None, 2), name="X")
    aux = keras.Input((3,), name="aux")
    inputs = {"X": sequence, "aux": aux}

    transformed = LagTransform(cfg.lag_transform, scale=n_steps, name="lag_transform")(
        sequence, aux)
    lag = TimeChannel(0, name="lag")(transformed)
    mag = layers.Reshape((-1,), name="magnitudes")(TimeChannel(1, name="mag")(sequence))
    mean, std = Standardize.statistics(aux_train, cfg.standardize_aux)
    aux_values, aux_observed = Standardize(mean, std, name="aux_standardize")(aux)
    encoder = build_encoder(cfg.gru_units, cfg.gru_layers, cfg.dropout, cfg.embedding,
                            channels=3 if cfg.encoder_period else 2)
    time_channels = 1 + (1 + 2 * cfg.decoder_harmonics if cfg.decoder_phase else 0)
    decoder = build_decoder(cfg.gru_units, cfg.gru_layers, cfg.dropout, cfg.embedding,
                            time_channels=time_channels)
    if cfg.encoder_period:
        transformed = WithPeriod(AUX_NAMES.index("log10_period"), name="with_period")(
            transformed, aux_values)
    embedding = encoder(transformed)
    if cfg.decoder_phase:
        phase = FoldedPhase(name="folded_phase")(sequence, aux)
        times = [lag, phase]
        if cfg.decoder_harmonics:
            times.append(PhaseHarmonics(cfg.decoder_harmonics, name="phase_harmonics")(phase))
        lag = layers.Concatenate(name="lag_and_phase")(times)
    reconstruction = decoder([embedding, lag])
    reconstructed = {"reconstruction": reconstruction}
    if cfg.reconstruct_period:
        period = layers.Dense(1, name="period_decoder")(embedding)
        reconstructed["period_reconstruction"] = layers.Reshape(
            (), name="period_reconstruction")(period)
    recon_features = ReconstructionFeatures(name="reconstruction_features")(mag, reconstruction)
    learned = layers.Concatenate(name="learned_features")([embedding, recon_features])

    parts, observed_parts = [learned, aux_values], [OnesLike(name="learned_observed")(learned),
                                                    aux_observed]
    if photometric:
        phot = keras.Input((3,), name="phot")
        inputs["phot"] = phot
        fill = PAPER_FILL_VALUE if cfg.phot_missing == "fill99" else None
        mean, std = Standardize.statistics(phot_train, cfg.standardize_aux, fill)
        phot_values, phot_observed = Standardize(mean, std, fill, name="phot_standardize")(phot)
        parts.append(phot_values)
        observed_parts.append(phot_observed)
    features = layers.Concatenate(name="features")(parts)
    observed = layers.Concatenate(name="observed")(observed_parts)

    n_features = cfg.embedding + 2 + len(AUX_NAMES) + (len(PHOT_NAMES) if photometric else 0)
    indicators = len(PHOT_NAMES) if photometric and cfg.phot_missing == "mask" else 0
    estimation = build_estimation(n_features, cfg.embedding, n_classes, cfg.estimation_dropout,
                                  indicators)
    gamma = estimation([features, observed])
    outputs = {"embedding": embedding, **reconstructed, "features": features,
               "observed": observed, "gamma": gamma}
    return keras.Model(inputs, outputs, name="varnet")


def autoencoder_layers(network: keras.Model) -> list[layers.Layer]:
    """The encoder, the decoder and, with model.reconstruct_period, the period decoder: what
    the autoencoder phase trains and a reused autoencoder copies."""
    return [layer for layer in network.layers
            if layer.name in ("encoder", "decoder", "period_decoder")]


def weighted_mse(x, x_hat, weight):
    """Eq. 1: mean over all N*T entries of w (x - x_hat)^2, w = 1/sigma (docs/method.md §2)."""
    return tf.reduce_mean(weight * tf.square(x - x_hat))


def period_mse(aux_values, period_hat):
    """Squared error of the log10 P read back from the embedding, in standardised units."""
    return tf.reduce_mean(tf.square(aux_values[:, AUX_NAMES.index("log10_period")] - period_hat))


def cross_entropy(label, gamma, class_weight=None):
    """Eq. 3 with Keras' clipping of gamma to [1e-7, 1 - 1e-7]; with ``class_weight`` (K,) the
    mean over the batch weighted by each sequence's class weight."""
    gamma = tf.clip_by_value(gamma, 1e-7, 1.0 - 1e-7)
    loss = keras.losses.sparse_categorical_crossentropy(label, gamma)
    if class_weight is None:
        return tf.reduce_mean(loss)
    weight = tf.gather(class_weight, tf.cast(label, tf.int32))
    return tf.reduce_sum(weight * loss) / tf.reduce_sum(weight)


class DualTrainer(keras.Model):
    """Fits (part of) a network built by :func:`build_network` with the paper's losses.

    ``joint``: L_AE [+ lambda_period * L_P] + L_CE + lambda * L_GMM through the whole
    network, the GMM fitted on each batch from gamma with dropout active (as DAGMM);
    ``autoencoder``: L_AE [+ lambda_period * L_P] on the encoder and decoder (and period
    decoder) only; ``estimation``: L_CE + lambda * L_GMM on the estimation network alone, with
    inputs {"features", "observed"} precomputed by the frozen autoencoder. L_P is the squared
    error of log10 P read back from the embedding (model.reconstruct_period). Batches are
    (inputs, {"label", "weight"}). The trainer is never saved: the network is.
    """

    MODES = ("joint", "autoencoder", "estimation")
    _TERMS = {"joint": ("loss", "ae_loss", "ce_loss", "energy_loss"),
              "autoencoder": ("loss", "ae_loss"),
              "estimation": ("loss", "ce_loss", "energy_loss")}

    def __init__(self, network: keras.Model, mode: str, lambda_energy: float, jitter: float,
                 class_weight: np.ndarray | None = None, lambda_period: float = 1.0):
        super().__init__(name=f"{mode}_trainer")
        self.class_weight = (None if class_weight is None
                             else tf.constant(class_weight, tf.float32))
        if mode not in self.MODES:
            raise VarnetError(f"training mode {mode!r} not in {self.MODES}")
        self.network = network
        self.mode = mode
        self.lambda_energy = float(lambda_energy)
        self.lambda_period = float(lambda_period)
        # model.reconstruct_period: the network has the head; the estimation mode never runs it
        self.reconstructs_period = (mode != "estimation"
                                    and "period_reconstruction" in network.output)
        self.jitter = float(jitter)
        if mode == "autoencoder":  # the encoder and decoder alone: the estimation network's
            # dropout seeds stay untouched, so a sequential variant's autoencoder phase does not
            # depend on its estimation network (train.reused_autoencoder)
            self.autoencoder = keras.Model(
                {name: network.input[name] for name in ("X", "aux")},
                {name: network.output[name] for name in RECONSTRUCTED if name in network.output},
                name="autoencoder")
        terms = self._TERMS[mode] + (("period_loss",) if self.reconstructs_period else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in terms}
        if mode != "autoencoder":
            self.trackers["accuracy"] = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def trained_variables(self) -> list:
        if self.mode == "joint":
            return self.network.trainable_variables
        if self.mode == "estimation":
            return self.network.get_layer("estimation").trainable_variables
        return [v for layer in autoencoder_layers(self.network) for v in layer.trainable_variables]

    def call(self, inputs, training=False):
        if self.mode == "estimation":
            estimation = self.network.get_layer("estimation")
            gamma = estimation([inputs["features"], inputs["observed"]], training=training)
            return {**inputs, "gamma": gamma}
        if self.mode == "autoencoder":
            return self.autoencoder({"X": inputs["X"], "aux": inputs["aux"]}, training=training)
        return self.network(inputs, training=training)

    def _terms(self, inputs, targets, training):
        out = self(inputs, training=training)
        terms = {}
        loss = 0.0
        if self.mode != "estimation":
            terms["ae_loss"] = weighted_mse(inputs["X"][:, :, 1], out["reconstruction"],
                                            targets["weight"])
            loss += terms["ae_loss"]
            if self.reconstructs_period:
                aux_values, _ = self.network.get_layer("aux_standardize")(inputs["aux"])
                terms["period_loss"] = period_mse(aux_values, out["period_reconstruction"])
                loss += self.lambda_period * terms["period_loss"]
        if self.mode != "autoencoder":
            terms["ce_loss"] = cross_entropy(targets["label"], out["gamma"], self.class_weight)
            energy = gmm.fit_energy(out["features"], out["gamma"], out["observed"], self.jitter)
            terms["energy_loss"] = tf.cast(tf.reduce_mean(energy), tf.float32)
            loss += terms["ce_loss"] + self.lambda_energy * terms["energy_loss"]
        terms["loss"] = loss
        return terms, out

    def _record(self, terms, targets, out):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        if "accuracy" in self.trackers:
            self.trackers["accuracy"].update_state(targets["label"], out["gamma"])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        inputs, targets = data
        variables = self.trained_variables()
        with tf.GradientTape() as tape:
            terms, out = self._terms(inputs, targets, training=True)
        gradients = tape.gradient(terms["loss"], variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._record(terms, targets, out)

    def test_step(self, data):
        inputs, targets = data
        terms, out = self._terms(inputs, targets, training=False)
        return self._record(terms, targets, out)
