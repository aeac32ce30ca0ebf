"""The estimation network and the standardisation of its catalogue inputs (docs/method.md §3).

The estimation network is Dense(hidden, tanh) -> Dropout -> Dense(K, softmax); its output gamma
is both the class probability and the GMM membership. Its inputs are the GMM features z plus,
for the photometric variant, one missing-value indicator per photometric feature: the indicator
tells the classifier that an imputed value carries no information, while the GMM itself handles
missing entries through the ``observed`` mask (gmm.py).
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import layers

_PACKAGE = "varnet"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Standardize(layers.Layer):
    """(x - mean) / std with frozen training-set statistics; returns (values, observed).

    Missing (non-finite) inputs become ``fill_value`` before standardising when one is given
    (the paper's 99), otherwise they are imputed as the training mean, i.e. 0 after
    standardising, and flagged 0 in ``observed``. The statistics live in the layer config, so a
    saved model carries them.
    """

    def __init__(self, mean, std, fill_value: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.fill_value = None if fill_value is None else float(fill_value)

    def call(self, x):
        finite = tf.math.is_finite(x)
        if self.fill_value is not None:
            x = tf.where(finite, x, tf.cast(self.fill_value, x.dtype))
            finite = tf.ones_like(finite)
        values = (x - tf.constant(self.mean, x.dtype)) / tf.constant(self.std, x.dtype)
        values = tf.where(finite, values, tf.zeros_like(values))
        return values, tf.cast(finite, x.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std,
                "fill_value": self.fill_value}

    @staticmethod
    def statistics(x: np.ndarray, standardize: bool,
                   fill_value: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training-set (mean, std) per column ignoring missing values; identity if not
        ``standardize``."""
        n_columns = x.shape[1]
        if not standardize:
            return np.zeros(n_columns), np.ones(n_columns)
        x = np.asarray(x, dtype=np.float64)
        if fill_value is not None:
            x = np.where(np.isfinite(x), x, fill_value)
        x = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings():  # an all-missing column: no statistics, identity
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return mean, std


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MissingIndicator(layers.Layer):
    """1 - observed for the last ``n`` features: the classifier's missing-value flags."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)

    def call(self, observed):
        return 1.0 - observed[:, -self.n:]

    def get_config(self):
        return {**super().get_config(), "n": self.n}


def build_estimation(n_features: int, hidden: int, n_classes: int, dropout: float,
                     n_indicators: int = 0) -> keras.Model:
    """[features z (N, l), observed (N, l)] -> gamma (N, K)."""
    features = keras.Input((n_features,), name="features")
    observed = keras.Input((n_features,), name="observed")
    inputs = features
    if n_indicators:
        indicators = MissingIndicator(n_indicators, name="missing_indicator")(observed)
        inputs = layers.Concatenate(name="features_and_indicators")([features, indicators])
    hidden_layer = layers.Dense(hidden, activation="tanh", name="estimation_hidden")(inputs)
    hidden_layer = layers.Dropout(dropout, name="estimation_dropout")(hidden_layer)
    gamma = layers.Dense(n_classes, activation="softmax", name="gamma")(hidden_layer)
    return keras.Model([features, observed], gamma, name="estimation")

