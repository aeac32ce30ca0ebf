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
The fit ignores imputed entries for mu (their residual is zero in Sigma, which shrinks their
variance by the missing fraction). The energy of a sample with missing entries is its
**marginal** likelihood: the marginal of a Gaussian over the observed entries o is
N(z_o | mu_o, Sigma_oo), its sub-vector and sub-matrix, with the (2 pi)^|o| normaliser. It is
computed without gathering per-sample sub-matrices: the missing rows and columns of Sigma are
replaced by the identity and the missing residuals by zero, which leaves the Mahalanobis term and
the log-determinant of exactly Sigma_oo (tests/test_gmm.py checks it against SciPy).
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
    """(energy (N,), class_energy (N,K)) in float64; class_energy_k = -log(phi_k N(z|k)).

    With ``observed``, each sample's density is the marginal over its observed entries; when
    every entry is observed that is the plain density, computed the cheap way.
    """
    z = tf.cast(z, tf.float64)
    phi = tf.cast(phi, tf.float64)
    mu = tf.cast(mu, tf.float64)
    sigma = tf.cast(sigma, tf.float64)
    resid = z[None, :, :] - mu[:, None, :]  # (K, N, l)
    if observed is None:
        log_density = _log_density(resid, sigma)
    else:
        obs = tf.cast(observed, tf.float64)
        log_density = tf.cond(tf.reduce_all(obs > 0.5), lambda: _log_density(resid, sigma),
                              lambda: _marginal_log_density(resid, sigma, obs))
    # phi_k > 0 for any softmax gamma; the floor only guards a hand-made phi with zeros.
    log_joint = tf.math.log(tf.maximum(phi, 1e-300))[:, None] + log_density
    return -tf.reduce_logsumexp(log_joint, axis=0), -tf.transpose(log_joint)


def _log_density(resid, sigma):
    """log N(resid | 0, Sigma_k), (K, N), from the Cholesky factor of each Sigma_k."""
    chol = tf.linalg.cholesky(sigma)
    solved = tf.linalg.triangular_solve(chol, tf.transpose(resid, [0, 2, 1]), lower=True)
    mahalanobis = tf.reduce_sum(tf.square(solved), axis=1)  # (K, N)
    log_det = 2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1)  # (K,)
    dim = tf.cast(tf.shape(resid)[-1], tf.float64)
    return -0.5 * (mahalanobis + log_det[:, None] + dim * math.log(2.0 * math.pi))


def _marginal_log_density(resid, sigma, obs):
    """log N(resid_o | 0, Sigma_k,oo) per sample, (K, N): Sigma with the sample's missing rows
    and columns set to the identity and its missing residuals to zero (module docstring)."""
    both = obs[:, :, None] * obs[:, None, :]  # (N, l, l)
    eye = tf.eye(tf.shape(obs)[1], dtype=tf.float64)
    per_sample = (sigma[:, None, :, :] * both[None]
                  + (eye * (1.0 - obs)[:, :, None])[None])  # (K, N, l, l)
    chol = tf.linalg.cholesky(per_sample)
    masked = (resid * obs[None])[..., None]  # (K, N, l, 1)
    solved = tf.linalg.triangular_solve(chol, masked, lower=True)
    mahalanobis = tf.reduce_sum(tf.square(solved), axis=[2, 3])  # (K, N)
    log_det = 2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1)  # (K, N)
    dim = tf.reduce_sum(obs, axis=1)  # (N,) observed entries
    return -0.5 * (mahalanobis + log_det + dim[None, :] * math.log(2.0 * math.pi))


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
                 batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """:func:`energy` with fixed parameters (gmm.npz), in batches to bound the memory (the
    marginal path holds (K, N, l, l))."""
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
