"""Mean-field signal propagation in deep fully connected nets (pure math, numpy only).

Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, "Deep Information Propagation" (ICLR 2017), for
``h^l = W^l phi(h^(l-1)) + b^l`` with ``W_ij ~ N(0, sigma_w^2 / N)`` and ``b_i ~ N(0,
sigma_b^2)``, at infinite width:

* the length map ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2`` has a stable fixed point
  ``q*``;
* ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]`` is the slope of the correlation map at ``c = 1``
  (and the gradients' growth per layer): ``chi_1 < 1`` ordered (nearby inputs converge),
  ``chi_1 > 1`` chaotic (they decorrelate), ``chi_1 = 1`` critical;
* the correlation map ``c -> (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*`` with
  ``u1 = sqrt(q*) z1``, ``u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2)`` has a stable fixed point
  ``c*`` (1 when ordered), where its slope is ``chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]``;
* correlations approach ``c*`` as ``exp(-l / xi_c)``, ``xi_c = -1 / ln(chi_c)``, infinite at
  criticality; a network deeper than about ``6 xi_c`` cannot be trained (the paper's Fig. 5):
  its output no longer tells its inputs apart (or, chaotic, tells them all apart alike).

Gaussian expectations are Gauss-Hermite quadratures (probabilists' weight ``exp(-z^2 / 2)``),
1-D with :data:`POINTS` nodes and a tensor product for the 2-D ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
#: Quadrature nodes per dimension.
POINTS = 121
#: A network deeper than this many depth scales cannot be trained (Schoenholz et al., Fig. 5).
DEPTH_FACTOR = 6.0


def _sigmoid(u: Array) -> Array:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * u)))


_erf = np.vectorize(math.erf, otypes=[np.float64])

#: phi and phi' by name: the saturating activations the theory is usually applied to.
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, lambda u: 1.0 / np.cosh(u) ** 2),
    "sigmoid": (_sigmoid, lambda u: _sigmoid(u) * (1.0 - _sigmoid(u))),
    "erf": (_erf, lambda u: 2.0 / math.sqrt(math.pi) * np.exp(-(u**2))),
}


@cache
def _nodes(points: int) -> tuple[Array, Array]:
    z, w = np.polynomial.hermite_e.hermegauss(points)
    return z, w / math.sqrt(2.0 * math.pi)  # weights of the standard normal: they sum to 1


def gauss(f: Callable[[Array], Array], points: int = POINTS) -> float:
    """``E[f(z)]``, ``z ~ N(0, 1)``."""
    z, w = _nodes(points)
    return float(np.dot(w, f(z)))


def gauss2(f: Callable[[Array, Array], Array], c: float, points: int = POINTS) -> float:
    """``E[f(z1, c z1 + sqrt(1 - c^2) z2)]``, ``z1, z2`` independent standard normals: the
    pair of unit-variance normals with correlation ``c``."""
    z, w = _nodes(points)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    c = min(1.0, max(-1.0, c))
    values = f(z1, c * z1 + math.sqrt(1.0 - c * c) * z2)
    return float(np.einsum("i,ij,j->", w, values, w))


def length_map(q: float, activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """The variance of the next layer's pre-activations, from ``q`` in this one."""
    phi = ACTIVATIONS[activation][0]
    root = math.sqrt(max(q, 0.0))
    return sigma_w2 * gauss(lambda z: phi(root * z) ** 2) + sigma_b2


def _bisect(f: Callable[[float], float], low: float, high: float, steps: int = 200) -> float:
    """A root of ``f`` in [low, high], given ``f(low) > 0 >= f(high)``."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        low, high = (mid, high) if f(mid) > 0 else (low, mid)
    return 0.5 * (low + high)


def q_star(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """The length map's stable fixed point: its largest one (0 when no positive one exists,
    e.g. tanh with ``sigma_b = 0`` and ``sigma_w^2 <= 1``)."""

    def gap(q: float) -> float:
        return length_map(q, activation, sigma_w2, sigma_b2) - q

    top = sigma_w2 + sigma_b2 + 1.0  # the activations are bounded by 1: the map stays below
    grid = [top * 10.0 ** float(-e) for e in np.arange(0.0, 14.0, 0.25)]  # top down, to 1e-14 * top
    for high, low in itertools.pairwise(grid):
        if gap(low) > 0 >= gap(high):
            return float(_bisect(gap, low, high))
    return 0.0


def _correlation_map(
    c: float, activation: str, q: float, sigma_w2: float, sigma_b2: float
) -> float:
    phi = ACTIVATIONS[activation][0]
    root = math.sqrt(q)
    return (sigma_w2 * gauss2(lambda a, b: phi(root * a) * phi(root * b), c) + sigma_b2) / q


def chi(activation: str, q: float, c: float, sigma_w2: float) -> float:
    """``sigma_w^2 E[phi'(u1) phi'(u2)]`` for pre-activations of variance ``q`` and correlation
    ``c``: ``chi_1`` at ``c = 1``, ``chi_c`` at ``c*``."""
    dphi = ACTIVATIONS[activation][1]
    if q <= 0.0:
        return sigma_w2 * float(dphi(np.zeros(1))[0]) ** 2
    root = math.sqrt(q)
    if c >= 1.0:
        return sigma_w2 * gauss(lambda z: dphi(root * z) ** 2)
    return sigma_w2 * gauss2(lambda a, b: dphi(root * a) * dphi(root * b), c)


def c_star(activation: str, q: float, sigma_w2: float, sigma_b2: float, chi_1: float) -> float:
    """The correlation map's stable fixed point: 1 unless chaotic (``chi_1 > 1``), then the
    one below 1 (the map is convex on [0, 1] and ``>= 0`` at 0, so there is exactly one)."""
    if q <= 0.0 or chi_1 <= 1.0 + 1e-12:
        return 1.0

    def gap(c: float) -> float:
        return _correlation_map(c, activation, q, sigma_w2, sigma_b2) - c

    if gap(0.0) <= 1e-12:
        return 0.0
    for exponent in range(1, 13):
        high = 1.0 - 10.0**-exponent
        if gap(high) <= 0:
            return _bisect(gap, 0.0, high)
    return 1.0  # chi_1 so close to 1 that c* cannot be told from 1


def depth_scale(chi_c: float) -> float:
    """``xi_c = -1 / ln(chi_c)``: infinite at ``chi_c = 1`` (criticality)."""
    if chi_c >= 1.0:
        return math.inf
    if chi_c <= 0.0:
        return 0.0
    return -1.0 / math.log(chi_c)


@dataclass(frozen=True)
class MeanField:
    """The mean-field figures of one (activation, sigma_w^2, sigma_b^2)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    c_star: float
    chi_c: float

    @property
    def xi_c(self) -> float:
        return depth_scale(self.chi_c)

    def trainable_depth(self) -> float:
        """The depth beyond which the signal cannot cross the network: ``6 xi_c``."""
        return DEPTH_FACTOR * self.xi_c


def mean_field(activation: str, sigma_w2: float, sigma_b2: float) -> MeanField:
    """Every figure of the theory for one network; ``activation`` one of :data:`ACTIVATIONS`."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"no mean field for {activation!r}; known: {', '.join(ACTIVATIONS)}")
    q = q_star(activation, sigma_w2, sigma_b2)
    chi_1 = chi(activation, q, 1.0, sigma_w2)
    c = c_star(activation, q, sigma_w2, sigma_b2, chi_1)
    chi_c = chi_1 if c >= 1.0 else chi(activation, q, c, sigma_w2)
    return MeanField(activation, sigma_w2, sigma_b2, q, chi_1, c, chi_c)
