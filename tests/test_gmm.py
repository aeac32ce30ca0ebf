"""The GMM of the estimation network against a float64 NumPy/SciPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from varnet.model import gmm

K, L, N = 3, 5, 64


def reference_fit(z, gamma, jitter):
    """DAGMM's eq. 5 written out with NumPy loops."""
    phi = gamma.mean(axis=0)
    mu = np.stack([(gamma[:, k, None] * z).sum(0) / gamma[:, k].sum() for k in range(K)])
    sigma = np.stack([
        sum(gamma[i, k] * np.outer(z[i] - mu[k], z[i] - mu[k]) for i in range(len(z)))
        / gamma[:, k].sum() + jitter * np.eye(z.shape[1]) for k in range(K)])
    return phi, mu, sigma


def reference_energy(z, phi, mu, sigma):
    log_joint = np.stack([np.log(phi[k]) + multivariate_normal(mu[k], sigma[k]).logpdf(z)
                          for k in range(len(phi))], axis=1)
    return -logsumexp(log_joint, axis=1), -log_joint


@pytest.fixture
def sample():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(N, L)) * np.array([1.0, 0.1, 10.0, 1.0, 0.01])
    logits = rng.normal(size=(N, K)) * 2
    gamma = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return z, gamma


def test_fit_matches_reference(sample):
    z, gamma = sample
    ours = gmm.fit_numpy(z, gamma, jitter=1e-4)
    for got, want in zip((ours["phi"], ours["mu"], ours["sigma"]),
                         reference_fit(z, gamma, 1e-4), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        assert got.dtype == np.float64


def test_energy_matches_scipy(sample):
    z, gamma = sample
    params = gmm.fit_numpy(z, gamma, jitter=1e-4)
    energy, class_energy = gmm.energy_numpy(z, params)
    want, want_class = reference_energy(z, params["phi"], params["mu"], params["sigma"])
    np.testing.assert_allclose(energy, want, rtol=1e-6)
    np.testing.assert_allclose(class_energy, want_class, rtol=1e-6)


def test_energy_near_singular_covariance():
    """det(Sigma) ~ 1e-45, far below float32: Cholesky + logsumexp in float64 stay exact."""
    rng = np.random.default_rng(2)
    dim = 21
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    sigma = np.stack([basis @ np.diag(np.r_[1.0, np.full(dim - 1, 1e-4 + 1e-7 * k)]) @ basis.T
                      for k in range(K)])
    sigma = 0.5 * (sigma + sigma.transpose(0, 2, 1))
    assert np.all(np.linalg.slogdet(sigma)[1] < -100)
    mu = rng.normal(size=(K, dim)) * 0.01
    phi = np.array([0.7, 0.2, 0.1])
    z = mu[rng.integers(0, K, 50)] + rng.normal(size=(50, dim)) * 0.005
    energy, class_energy = gmm.energy(z, phi, mu, sigma)
    want, want_class = reference_energy(z, phi, mu, sigma)
    np.testing.assert_allclose(energy.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(class_energy.numpy(), want_class, rtol=1e-6)


def test_true_normaliser_differs_from_the_released_code_by_a_constant(sample):
    """The original code's sqrt(2 pi |Sigma|) shifts every energy by -(l - 1)/2 ln 2 pi."""
    z, gamma = sample
    params = gmm.fit_numpy(z, gamma)
    ours = gmm.energy_numpy(z, params)[0]
    inv = np.linalg.inv(params["sigma"])
    resid = z[None] - params["mu"][:, None]
    maha = np.einsum("kni,kij,knj->kn", resid, inv, resid)
    density = np.exp(-0.5 * maha) / np.sqrt(2 * np.pi * np.linalg.det(params["sigma"]))[:, None]
    code = -np.log((params["phi"][:, None] * density).sum(0))
    np.testing.assert_allclose(ours - code, (L - 1) / 2 * math.log(2 * math.pi), rtol=1e-8)


def test_gradients_are_finite_even_for_an_empty_class(sample):
    z, _ = sample
    logits = np.zeros((N, K))
    logits[:, 2] = -60.0  # class 2 absent from the batch: gamma ~ 1e-26
    z_var = tf.Variable(z)
    logit_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        gamma = tf.nn.softmax(logit_var)
        loss = tf.reduce_mean(gmm.fit_energy(z_var, gamma, jitter=1e-4))
    grads = tape.gradient(loss, [z_var, logit_var])
    assert np.isfinite(loss.numpy())
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy()))
        assert np.any(grad.numpy() != 0)


def test_float32_inputs_are_computed_in_float64(sample):
    z, gamma = sample
    params64 = gmm.fit_numpy(z, gamma)
    params32 = gmm.fit_numpy(z.astype(np.float32), gamma.astype(np.float32))
    assert params32["sigma"].dtype == np.float64
    e64 = gmm.energy_numpy(z, params64)[0]
    e32 = gmm.energy_numpy(z.astype(np.float32), params32)[0]
    np.testing.assert_allclose(e32, e64, rtol=1e-3, atol=1e-3)


def test_missing_entries_are_ignored_by_fit_and_energy(sample):
    z, gamma = sample
    observed = np.ones_like(z)
    observed[::4, -1] = 0.0  # a quarter of the last feature is missing
    imputed_a, imputed_b = z.copy(), z.copy()
    imputed_a[::4, -1] = 0.0
    imputed_b[::4, -1] = 123.0
    fit_a = gmm.fit_numpy(imputed_a, gamma, observed)
    fit_b = gmm.fit_numpy(imputed_b, gamma, observed)
    for key in ("phi", "mu", "sigma"):
        np.testing.assert_allclose(fit_a[key], fit_b[key], rtol=1e-12)
    # mu of the partly missing feature uses the observed rows only
    rows = observed[:, -1] == 1
    want = (gamma[rows] * z[rows, -1:]).sum(0) / gamma[rows].sum(0)
    np.testing.assert_allclose(fit_a["mu"][:, -1], want, rtol=1e-10)
    energy_a = gmm.energy_numpy(imputed_a, fit_a, observed)[0]
    energy_b = gmm.energy_numpy(imputed_b, fit_a, observed)[0]
    np.testing.assert_allclose(energy_a, energy_b, rtol=1e-12)
    # an observed sample scores exactly as without a mask
    full = gmm.energy_numpy(z, fit_a)[0]
    np.testing.assert_allclose(energy_a[rows], full[rows], rtol=1e-12)


def test_energy_with_missing_entries_is_the_marginal_likelihood(sample):
    """Issue 10: a missing entry is integrated out, N(z_o | mu_o, Sigma_oo), not set to the mean."""
    z, gamma = sample
    params = gmm.fit_numpy(z, gamma, jitter=1e-4)
    observed = np.ones_like(z)
    observed[::3, -2:] = 0.0   # two entries missing together, as Gaia's three do
    observed[1::5, 0] = 0.0    # and another pattern
    energy, class_energy = gmm.energy_numpy(np.where(observed > 0, z, 0.0), params, observed)
    for i in range(N):
        o = observed[i] > 0
        log_joint = [np.log(params["phi"][k]) + multivariate_normal(
            params["mu"][k][o], params["sigma"][k][np.ix_(o, o)]).logpdf(z[i, o])
            for k in range(K)]
        assert energy[i] == pytest.approx(-logsumexp(log_joint), rel=1e-8, abs=1e-8)
        np.testing.assert_allclose(class_energy[i], -np.asarray(log_joint), rtol=1e-8)
