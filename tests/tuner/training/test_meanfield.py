"""Mean-field signal propagation (Schoenholz et al. 2017) against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from tuner.training import DEPTH_FACTOR, mean_field
from tuner.training._meanfield import length_map


def test_tanh_at_criticality_chi_1_is_1_and_the_depth_scale_infinite() -> None:
    theory = mean_field("tanh", 1.0, 0.0)
    assert theory.q_star == 0.0
    assert theory.chi_1 == pytest.approx(1.0, abs=1e-12)
    assert (theory.c_star, theory.chi_c) == (1.0, theory.chi_1)
    assert math.isinf(theory.xi_c) and math.isinf(theory.trainable_depth())


@pytest.mark.parametrize("sigma_w2", [0.25, 0.5, 0.9])
def test_tanh_ordered_with_q_star_0_has_chi_1_sigma_w2(sigma_w2: float) -> None:
    """tanh'(0) = 1: with q* = 0 (no bias, sigma_w^2 < 1) chi_1 = sigma_w^2, c* = 1 and the
    depth scale is -1 / ln(sigma_w^2)."""
    theory = mean_field("tanh", sigma_w2, 0.0)
    assert theory.q_star == 0.0
    assert theory.chi_1 == pytest.approx(sigma_w2, rel=1e-12)
    assert theory.c_star == 1.0 and theory.chi_c == pytest.approx(sigma_w2, rel=1e-12)
    assert theory.xi_c == pytest.approx(-1.0 / math.log(sigma_w2), rel=1e-12)
    assert theory.trainable_depth() == pytest.approx(DEPTH_FACTOR * theory.xi_c)


def _expect(f: object) -> float:
    """E[f(z)], z ~ N(0, 1), by adaptive integration (not the module's quadrature)."""
    value, _ = integrate.quad(
        lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),  # type: ignore[operator]
        -np.inf,
        np.inf,
        epsabs=1e-13,
        limit=200,
    )
    return float(value)


def test_tanh_chaotic_phase_against_numeric_integration_and_monte_carlo() -> None:
    sigma_w2, sigma_b2 = 2.5, 0.1
    theory = mean_field("tanh", sigma_w2, sigma_b2)
    # q*: iterate the length map computed by adaptive integration until it stops moving
    q = 1.0
    for _ in range(200):
        q = sigma_w2 * _expect(lambda z, q=q: math.tanh(math.sqrt(q) * z) ** 2) + sigma_b2
    assert theory.q_star == pytest.approx(q, rel=1e-8)
    assert length_map(theory.q_star, "tanh", sigma_w2, sigma_b2) == pytest.approx(
        theory.q_star, rel=1e-10
    )
    root = math.sqrt(q)
    chi_1 = sigma_w2 * _expect(lambda z: (1 - math.tanh(root * z) ** 2) ** 2)
    assert theory.chi_1 == pytest.approx(chi_1, rel=1e-8)
    assert theory.chi_1 > 1  # chaotic: nearby inputs decorrelate, c* < 1
    assert 0 < theory.c_star < 1 and 0 < theory.chi_c < 1
    # c* and chi_c by Monte Carlo over a million correlated pairs (std error ~1e-3)
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 1_000_000))
    c = theory.c_star
    u1, u2 = root * z1, root * (c * z1 + math.sqrt(1 - c * c) * z2)
    mapped = (sigma_w2 * np.mean(np.tanh(u1) * np.tanh(u2)) + sigma_b2) / q
    assert mapped == pytest.approx(c, abs=3e-3)  # c* is the correlation map's fixed point
    chi_c = sigma_w2 * np.mean((1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))
    assert theory.chi_c == pytest.approx(chi_c, rel=5e-3)
    assert theory.xi_c == pytest.approx(-1 / math.log(chi_c), rel=0.1)


def test_erf_against_its_closed_forms() -> None:
    """phi = erf has closed-form Gaussian integrals (Williams 1997): E[erf(u1) erf(u2)] =
    2/pi asin(2 q12 / (1 + 2 q)) and E[erf'(u1) erf'(u2)] = 4/pi / sqrt((1+2q)^2 - 4 q12^2)."""
    for sigma_w2, sigma_b2 in ((0.5, 0.05), (2.0, 0.1), (4.0, 0.0)):
        t = mean_field("erf", sigma_w2, sigma_b2)
        q = t.q_star
        assert sigma_w2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sigma_b2 == (
            pytest.approx(q, rel=1e-9)
        )
        assert t.chi_1 == pytest.approx(sigma_w2 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-9)
        q12 = t.c_star * q
        c_map = (sigma_w2 * 2 / math.pi * math.asin(2 * q12 / (1 + 2 * q)) + sigma_b2) / q
        assert c_map == pytest.approx(t.c_star, abs=1e-9)
        exact = sigma_w2 * 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - 4 * q12**2)
        assert t.chi_c == pytest.approx(exact, rel=1e-6)
    assert mean_field("erf", 4.0, 0.0).c_star == 0.0  # odd phi, no bias, chaotic: c* = 0


def test_sigmoid_has_a_positive_q_star_and_unknown_activations_are_refused() -> None:
    theory = mean_field("sigmoid", 4.0, 0.0)
    root = math.sqrt(theory.q_star)

    def sigmoid(u: float) -> float:
        return 0.5 * (1 + math.tanh(u / 2))

    assert theory.q_star > 4.0 * sigmoid(0.0) ** 2 / 2  # phi(0) = 1/2: q never goes to 0
    assert theory.q_star == pytest.approx(4.0 * _expect(lambda z: sigmoid(root * z) ** 2), rel=1e-8)
    d_sigmoid = _expect(lambda z: (sigmoid(root * z) * (1 - sigmoid(root * z))) ** 2)
    assert theory.chi_1 == pytest.approx(4.0 * d_sigmoid, rel=1e-8)
    with pytest.raises(ValueError, match="relu"):
        mean_field("relu", 2.0, 0.0)
