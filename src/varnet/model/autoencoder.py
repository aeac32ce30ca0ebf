"""The GRU autoencoder of Naul et al. (2018) as used by Tsang & Schultz (docs/method.md §2).

Input sequences are (N, T, 2) = [dt, normalised mag]. The encoder is GRU layers with dropout
after each one (the last included), then a linear Dense to the m-dimensional embedding. The
decoder repeats the embedding along time, puts the time input first beside it (dt, as in the
paper, or dt and the folded phase: params model.decoder_phase), runs GRU layers with dropout
between them and maps each step to one magnitude. T is left free, so the same weights score
sequences of any length.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

LAG_TRANSFORMS = ("days", "phase")
_PACKAGE = "varnet"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LagTransform(layers.Layer):
    """Rescales the dt channel: ``days`` keeps the original lags; ``phase`` divides by the period.

    Raw lags span ~1e-4 d (DSCT) to days (M, SR), so for short periods the dt channel is
    numerically zero. ``phase`` gives dt / P * scale (scale = sequence length, so a mean step
    is ~1) for every class alike; the period itself reaches the network through log10 P.
    """

    def __init__(self, mode: str = "days", scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if mode not in LAG_TRANSFORMS:
            raise ValueError(f"lag transform {mode!r} not in {LAG_TRANSFORMS}")
        self.mode = mode
        self.scale = float(scale)

    def call(self, sequence, aux):
        if self.mode == "days":
            return sequence
        period = tf.pow(tf.constant(10.0, sequence.dtype), aux[:, 2])
        lag = sequence[:, :, :1] * (self.scale / period)[:, None, None]
        return tf.concat([lag, sequence[:, :, 1:]], axis=-1)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldedPhase(layers.Layer):
    """The phase of each point of a folded sequence, (N, T, 1) in [0, 1), from its lags.

    The lags are differences of the sorted phases (dt_j = P (phi_{j+1} - phi_j), the last 0), so
    phi_j - phi_0 is their running sum before j over the period. phi_0 is the first point's phase,
    below 1/T on average for T points. Given to the decoder beside dt it says where in the cycle
    each output step is, which dt alone makes the decoder integrate (docs/model.md).
    """

    def call(self, sequence, aux):
        lag = sequence[:, :, :1]
        period = tf.pow(tf.constant(10.0, sequence.dtype), aux[:, 2])
        return (tf.cumsum(lag, axis=1, exclusive=True) / period[:, None, None])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PhaseHarmonics(layers.Layer):
    """(N, T, 1) phase -> (N, T, 2n) [sin 2 pi k phase, cos 2 pi k phase], k = 1..n."""

    def __init__(self, harmonics: int, **kwargs):
        super().__init__(**kwargs)
        self.harmonics = int(harmonics)

    def call(self, phase):
        angle = 2.0 * math.pi * phase * tf.range(1, self.harmonics + 1, dtype=phase.dtype)
        return tf.concat([tf.sin(angle), tf.cos(angle)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "harmonics": self.harmonics}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TimeChannel(layers.Layer):
    """One channel of a (N, T, C) sequence, as (N, T, 1)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, sequence):
        return sequence[:, :, self.index:self.index + 1]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RepeatAlongTime(layers.Layer):
    """Repeats a (N, m) vector at every step of a (N, T, C) reference: RepeatVector with free T."""

    def call(self, vector, reference):
        return tf.tile(vector[:, None, :], tf.stack([1, tf.shape(reference)[1], 1]))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WithPeriod(layers.Layer):
    """Appends column ``index`` of a per-star (N, k) vector, the standardised log10 P, to every
    step of a (N, T, C) sequence: the encoder's view of the period (model.encoder_period)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, sequence, per_star):
        value = per_star[:, None, self.index:self.index + 1]
        return tf.concat([sequence, tf.tile(value, tf.stack([1, tf.shape(sequence)[1], 1]))],
                         axis=-1)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReconstructionFeatures(layers.Layer):
    """z_r = [relative Euclidean distance, cosine distance] between x and x_hat (docs/method.md §3).

    As the original code (after tnakae's DAGMM): ||x - x_hat|| / (||x|| + 1e-3) and
    0.5 (1 - x.x_hat / (||x|| ||x_hat|| + 1e-3)), a cosine distance in [0, 1] rather than the
    cosine similarity of the paper's eq. 2 (an affine map of it; the energy shifts by a constant).
    """

    def call(self, x, x_hat):
        norm_x = tf.norm(x, axis=1)
        norm_hat = tf.norm(x_hat, axis=1)
        rel_euclidean = tf.norm(x - x_hat, axis=1) / (norm_x + 1e-3)
        cosine = tf.reduce_sum(x * x_hat, axis=1) / (norm_x * norm_hat + 1e-3)
        return tf.stack([rel_euclidean, 0.5 * (1.0 - cosine)], axis=1)


def build_encoder(units: int, n_layers: int, dropout: float, embedding: int,
                  channels: int = 2) -> keras.Model:
    """(N, T, c) -> embedding (N, m); c = 2 [dt, mag], or 3 with the log period."""
    sequence = keras.Input((None, channels), name="sequence")
    hidden = sequence
    for i in range(n_layers):
        last = i == n_layers - 1
        hidden = layers.GRU(units, return_sequences=not last, name=f"encoder_gru_{i}")(hidden)
        hidden = layers.Dropout(dropout, name=f"encoder_dropout_{i}")(hidden)
    encoding = layers.Dense(embedding, name="encoding")(hidden)
    return keras.Model(sequence, encoding, name="encoder")


def build_decoder(units: int, n_layers: int, dropout: float, embedding: int,
                  time_channels: int = 1) -> keras.Model:
    """[embedding (N, m), time (N, T, c)] -> reconstructed normalised mags (N, T); the time
    input is dt (c = 1, the paper's), or dt, the folded phase and its 2n harmonics."""
    encoding = keras.Input((embedding,), name="encoding")
    lag = keras.Input((None, time_channels), name="lag")
    repeated = RepeatAlongTime(name="repeat_encoding")(encoding, lag)
    hidden = layers.Concatenate(name="lag_and_encoding")([lag, repeated])
    for i in range(n_layers):
        if i > 0:
            hidden = layers.Dropout(dropout, name=f"decoder_dropout_{i}")(hidden)
        hidden = layers.GRU(units, return_sequences=True, name=f"decoder_gru_{i}")(hidden)
    step = layers.Dense(1, name="decoder_output")(hidden)
    reconstruction = layers.Reshape((-1,), name="reconstruction")(step)
    return keras.Model([encoding, lag], reconstruction, name="decoder")
