"""The Gaussian mixture of the estimation network (DAGMM, Zong et al. 2018), in float64.

Component k is class k. The parameters are fitted from the features ``z`` and the soft
memberships ``gamma`` (docs/method.md §4):

    phi_k = mean_i gamma_ik
    mu_k  = sum_i gamma_ik z_i / sum_i gamma_ik
    Sigma_k = sum_i gamma_ik (z_i - mu_k)(z_i - mu_k)^T / sum_i gamma_ik + jitter * I

and the sample energy is E_i = -log sum_k phi_k N(z_i | mu_k, Sigma_k) with the true
multivariate normaliser (2 pi)^l |Sigma_k| of the paper's eq. 5. The original code used
sqrt(2 pi |Sigma|) instead, so its energies are ours minus (l - 1)/2 ln(2 pi) (18.38 at l = 21);
gradients and percentile thresholds are unaffected.

Numerics: everything is cast to float64; log-determinants come from the Cholesky factor,
Mahalanobis distances from a triangular solve, and the mixture sum is a logsumexp, so no
determinant of ~1e-45 is ever formed (docs/method.md §4, "float64 is essential").

Missing features: ``observed`` (N, l) marks the entries that were measured (1) or imputed (0).
Imputed entries get a zero residual in every component, i.e. they sit at the component mean:
the fit ignores them for mu and shrinks their variance by the missing fraction, and their
energy is the observed entries' Mahalanobis term with the full l-dimensional normaliser,
so stars with and without a measurement stay on one energy scale (docs/model.md).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

_EPS = 1e-12
"""Keeps the class-weight denominators finite when a class is absent from a batch."""


def fit(z, gamma, observed=None, jitter: float = 1e-4):
    """GMM parameters (phi (K,), mu (K,l), sigma (K,l,l)), float64, from z (N,l) and gamma (N,K)."""
    z = tf.cast(z, tf.float64)
    gamma = tf.cast(gamma, tf.float64)
    class_weight = tf.reduce_sum(gamma, axis=0)  # (K,)
    phi = class_weight / tf.cast(tf.shape(z)[0], tf.float64)
    if observed is None:
        mu = tf.matmul(gamma, z, transpose_a=True) / (class_weight[:, None] + _EPS)
        resid = z[None, :, :] - mu[:, None, :]  # (K, N, l)
    else:
        obs = tf.cast(observed, tf.float64)
        mu = (tf.matmul(gamma, z * obs, transpose_a=True)
              / (tf.matmul(gamma, obs, transpose_a=True) + _EPS))
        resid = (z[None, :, :] - mu[:, None, :]) * obs[None, :, :]
    weighted = resid * tf.transpose(gamma)[:, :, None]
    sigma = tf.matmul(weighted, resid, transpose_a=True) / (class_weight[:, None, None] + _EPS)
    dim = tf.shape(z)[1]
    sigma = sigma + jitter * tf.eye(dim, dtype=tf.float64)[None, :, :]
    return phi, mu, sigma


def energy(z, phi, mu, sigma, observed=None):
    """(energy (N,), class_energy (N,K)) in float64; class_energy_k = -log(phi_k N(z|k))."""
    z = tf.cast(z, tf.float64)
    phi = tf.cast(phi, tf.float64)
    mu = tf.cast(mu, tf.float64)
    sigma = tf.cast(sigma, tf.float64)
    resid = z[None, :, :] - mu[:, None, :]  # (K, N, l)
    if observed is not None:
        resid = resid * tf.cast(observed, tf.float64)[None, :, :]
    chol = tf.linalg.cholesky(sigma)
    solved = tf.linalg.triangular_solve(chol, tf.transpose(resid, [0, 2, 1]), lower=True)
    mahalanobis = tf.reduce_sum(tf.square(solved), axis=1)  # (K, N)
    log_det = 2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1)  # (K,)
    dim = tf.cast(tf.shape(z)[1], tf.float64)
    log_density = -0.5 * (mahalanobis + log_det[:, None] + dim * math.log(2.0 * math.pi))
    # phi_k > 0 for any softmax gamma; the floor only guards a hand-made phi with zeros.
    log_joint = tf.math.log(tf.maximum(phi, 1e-300))[:, None] + log_density
    return -tf.reduce_logsumexp(log_joint, axis=0), -tf.transpose(log_joint)


def fit_energy(z, gamma, observed=None, jitter: float = 1e-4):
    """Energy of each sample under the GMM fitted on the same batch (the training loss term)."""
    phi, mu, sigma = fit(z, gamma, observed, jitter)
    return energy(z, phi, mu, sigma, observed)[0]


def fit_numpy(z: np.ndarray, gamma: np.ndarray, observed: np.ndarray | None = None,
              jitter: float = 1e-4) -> dict[str, np.ndarray]:
    """:func:`fit` on whole arrays, returned as the float64 arrays of gmm.npz."""
    obs = None if observed is None else tf.constant(observed)
    phi, mu, sigma = fit(tf.constant(z), tf.constant(gamma), obs, jitter)
    return {"phi": phi.numpy(), "mu": mu.numpy(), "sigma": sigma.numpy()}


def energy_numpy(z: np.ndarray, gmm: dict[str, np.ndarray], observed: np.ndarray | None = None,
                 batch_size: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """:func:`energy` with fixed parameters (gmm.npz), in batches to bound the (K,N,l) memory."""
    energies, class_energies = [], []
    for start in range(0, len(z), batch_size):
        stop = start + batch_size
        obs = None if observed is None else tf.constant(observed[start:stop])
        e, ce = energy(tf.constant(z[start:stop]), gmm["phi"], gmm["mu"], gmm["sigma"], obs)
        energies.append(e.numpy())
        class_energies.append(ce.numpy())
    if not energies:
        k = len(gmm["phi"])
        return np.zeros(0), np.zeros((0, k))
    return np.concatenate(energies), np.concatenate(class_energies)
