"""Randomized-smoothing gradient estimators: zero-order, first-order and alpha-order.

Given an objective ``f`` and Gaussian noise ``w ~ N(0, sigma^2 I)``, all three estimate the
gradient of the *smoothed* objective ``F(theta) = E_w[f(theta + w)]`` from ``n`` samples
(Suh, Simchowitz, Zhang, Tedrake, ICML 2022, "Do Differentiable Simulators Give Better
Policy Gradients?"):

* ZoBG  ``mean_i (f(theta + w_i) - b) w_i / sigma^2``  (score function / REINFORCE);
* FoBG  ``mean_i grad f(theta + w_i)``                  (pathwise / reparameterisation);
* AoBG  ``alpha * FoBG + (1 - alpha) * ZoBG`` with ``alpha`` picked per call by
  inverse-variance weighting, limited by a trust region ``gamma`` on the empirical bias
  ``||FoBG - ZoBG||`` and by a Bernstein confidence bound ``eps`` on the ZoBG error.

Every estimator works on a batch of independent problems: ``theta`` may be ``(d,)`` or
``(B, d)``; the estimate then has the same shape and the diagnostics are scalars or ``(B,)``.
All arithmetic is float64 numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
BatchFn = Callable[[Array], Array]


class FirstOrderUnavailable(RuntimeError):
    """The objective has no gradient oracle, so FoBG/AoBG cannot be computed."""


@dataclass(frozen=True)
class Objective:
    """A batched objective ``f: R^d -> R`` to be minimised.

    ``value(x)``: ``(N, d) -> (N,)``. ``grad(x)``: ``(N, d) -> (N, d)``, or ``None`` when only
    values are available (first-order estimators then raise :class:`FirstOrderUnavailable`).
    ``breakpoints`` lists (for ``d == 1``) where ``f`` or ``f'`` is discontinuous; exact
    quadrature splits its integrals there.
    """

    name: str
    dim: int
    value: BatchFn
    grad: BatchFn | None = None
    breakpoints: tuple[float, ...] = ()

    @property
    def has_grad(self) -> bool:
        return self.grad is not None

    def values(self, x: Array) -> Array:
        """``(N, d) -> (N,)`` float64, checked."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        out = np.asarray(self.value(x), dtype=np.float64).reshape(-1)
        if out.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}.value returned {out.shape}, expected ({x.shape[0]},)")
        return out

    def grads(self, x: Array) -> Array:
        """``(N, d) -> (N, d)`` float64; raises :class:`FirstOrderUnavailable` without a grad."""
        if self.grad is None:
            raise FirstOrderUnavailable(
                f"objective {self.name!r} has no gradient oracle (grad=None): first-order and "
                "alpha-order estimates need one; use the zero-order estimator instead")
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        out = np.asarray(self.grad(x), dtype=np.float64).reshape(x.shape[0], self.dim)
        return out


@dataclass(frozen=True)
class GradientEstimate:
    """An estimate of ``grad F(theta)`` and how it was formed.

    ``grad``: ``(d,)`` or ``(B, d)``. Diagnostics are floats or ``(B,)`` arrays:
    ``alpha`` weight on the first-order part (0 for ZoBG, 1 for FoBG); ``eps`` the
    Bernstein bound on ``||ZoBG - grad F||`` (NaN when not computed); ``var_zero`` /
    ``var_first`` the per-sample variances (trace of the sample covariance, ddof=1) of the
    zero-/first-order summands (NaN when not computed); ``bias_hat`` the empirical bias
    ``||FoBG - ZoBG||`` (AoBG only, else NaN). ``n_samples`` samples per estimator.
    """

    grad: Array
    alpha: Array | float
    eps: Array | float
    var_zero: Array | float
    var_first: Array | float
    bias_hat: Array | float
    n_samples: int


# ---------------------------------------------------------------------------------------------
# helpers


def _as_batch(objective: Objective, theta: Array) -> tuple[Array, bool]:
    """``theta`` as ``(B, d)`` float64, and whether the input was a single ``(d,)`` point."""
    t = np.asarray(theta, dtype=np.float64)
    single = t.ndim <= 1
    if single and t.size != objective.dim or not single and (t.ndim != 2
                                                             or t.shape[1] != objective.dim):
        raise ValueError(f"theta must be ({objective.dim},) or (B, {objective.dim}), "
                         f"got shape {t.shape}")
    return t.reshape(-1, objective.dim), single


def _draw(rng: np.random.Generator, sigma: float, b: int, n: int, d: int) -> Array:
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if n < 2:
        raise ValueError(f"need n >= 2 samples to form variances, got {n}")
    return rng.normal(0.0, sigma, size=(b, n, d))


def _sample_variance(x: Array) -> Array:
    """``(B, N, d) -> (B,)``: trace of the sample covariance over axis 1 (ddof=1)."""
    dev = x - x.mean(axis=1, keepdims=True)
    return np.einsum("bnd,bnd->b", dev, dev) / (x.shape[1] - 1)


def _out(x: Array, single: bool) -> Array | float:
    if single:
        return x[0] if x.ndim > 1 else float(x[0])
    return x


def zero_order_samples(objective: Objective, theta: Array, w: Array,
                       baseline: Literal["value", "zero"] = "value") -> Array:
    """Per-sample ZoBG summands ``(f(theta+w) - b) w / sigma^2`` *without* the ``1/sigma^2``.

    ``theta``: ``(B, d)``, ``w``: ``(B, N, d)`` -> ``(B, N, d)``.
    """
    b, n, d = w.shape
    f = objective.values((theta[:, None, :] + w).reshape(-1, d)).reshape(b, n)
    if baseline == "value":
        f = f - objective.values(theta)[:, None]
    elif baseline != "zero":
        raise ValueError(f"baseline must be 'value' or 'zero', got {baseline!r}")
    return f[:, :, None] * w


def first_order_samples(objective: Objective, theta: Array, w: Array) -> Array:
    """Per-sample FoBG summands ``grad f(theta + w)``: ``(B, d), (B, N, d) -> (B, N, d)``."""
    b, n, d = w.shape
    return objective.grads((theta[:, None, :] + w).reshape(-1, d)).reshape(b, n, d)


def bernstein_eps(var_zero: Array | float, n: int, dim: int, lipschitz: float,
                  confidence: float = 0.95) -> Array:
    """Half-width of the vector-Bernstein confidence ball around the ZoBG mean.

    With probability at least ``confidence`` (if ``lipschitz`` bounds every per-sample ZoBG
    norm), ``||ZoBG - grad F|| <= eps`` where, with ``delta = 1 - confidence``::

        eps = sqrt(2 var_zero log((d+1)/delta) / n) + 2 L log((d+1)/delta) / (3 n)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    log_term = math.log((dim + 1) / (1.0 - confidence))
    var = np.asarray(var_zero, dtype=np.float64)
    return np.sqrt(2.0 * var * log_term / n) + 2.0 * lipschitz * log_term / (3.0 * n)


def choose_alpha(fobg: Array, zobg: Array, var_first: Array, var_zero: Array, eps: Array,
                 gamma: float) -> Array:
    """The AoBG weight: ``(B, d), (B, d), (B,), (B,), (B,) -> (B,)``.

    ``alpha = 0`` if ``eps > gamma``; otherwise the inverse-variance weight
    ``var_zero / (var_zero + var_first)``, shrunk to ``(gamma - eps) / ||fobg - zobg||`` when
    needed so that ``eps + alpha * ||fobg - zobg|| <= gamma``.
    """
    total = var_zero + var_first
    safe_total = np.where(total > 0, total, 1.0)
    alpha_bar = np.where(total > 0, var_zero / safe_total, 1.0)
    bias_hat = np.linalg.norm(fobg - zobg, axis=-1)
    room = gamma - eps
    safe_bias = np.where(bias_hat > 0, bias_hat, 1.0)
    limited = np.where(alpha_bar * bias_hat <= room, alpha_bar, room / safe_bias)
    return np.clip(np.where(eps > gamma, 0.0, limited), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# estimators (functional form)


def zobg(objective: Objective, theta: Array, sigma: float, n: int, rng: np.random.Generator,
         baseline: Literal["value", "zero"] = "value") -> GradientEstimate:
    """Zero-order batched gradient. ``theta``: ``(d,)`` or ``(B, d)``; grad has that shape.

    ``baseline="value"`` subtracts ``f(theta)`` (default), ``"zero"`` uses no baseline.
    """
    t, single = _as_batch(objective, theta)
    w = _draw(rng, sigma, t.shape[0], n, objective.dim)
    s = zero_order_samples(objective, t, w, baseline) / sigma**2
    nan = np.full(t.shape[0], np.nan)
    return GradientEstimate(
        grad=_out(s.mean(axis=1), single), alpha=_out(np.zeros(t.shape[0]), single),
        eps=_out(nan, single), var_zero=_out(_sample_variance(s), single),
        var_first=_out(nan, single), bias_hat=_out(nan, single), n_samples=n)


def fobg(objective: Objective, theta: Array, sigma: float, n: int,
         rng: np.random.Generator) -> GradientEstimate:
    """First-order batched gradient. ``theta``: ``(d,)`` or ``(B, d)``; grad has that shape."""
    if not objective.has_grad:
        objective.grads(np.zeros((0, objective.dim)))  # raises FirstOrderUnavailable
    t, single = _as_batch(objective, theta)
    w = _draw(rng, sigma, t.shape[0], n, objective.dim)
    s = first_order_samples(objective, t, w)
    nan = np.full(t.shape[0], np.nan)
    return GradientEstimate(
        grad=_out(s.mean(axis=1), single), alpha=_out(np.ones(t.shape[0]), single),
        eps=_out(nan, single), var_zero=_out(nan, single),
        var_first=_out(_sample_variance(s), single), bias_hat=_out(nan, single), n_samples=n)


def aobg(objective: Objective, theta: Array, sigma: float, n: int, rng: np.random.Generator,
         gamma: float, lipschitz: float, confidence: float = 0.95,
         baseline: Literal["value", "zero"] = "value",
         shared_samples: bool = False) -> GradientEstimate:
    """Alpha-order batched gradient with automatic ``alpha`` (bias-constrained).

    ``gamma``: tolerated bias of the combined estimate; ``lipschitz``: bound ``L`` on a single
    ZoBG summand's norm (for the confidence bound); ``confidence``: level of that bound.
    FoBG and ZoBG use independent draws of ``n`` samples each unless ``shared_samples``.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if not objective.has_grad:
        objective.grads(np.zeros((0, objective.dim)))  # raises FirstOrderUnavailable
    t, single = _as_batch(objective, theta)
    w1 = _draw(rng, sigma, t.shape[0], n, objective.dim)
    w0 = w1 if shared_samples else _draw(rng, sigma, t.shape[0], n, objective.dim)
    s1 = first_order_samples(objective, t, w1)
    s0 = zero_order_samples(objective, t, w0, baseline) / sigma**2
    g1, g0 = s1.mean(axis=1), s0.mean(axis=1)
    v1, v0 = _sample_variance(s1), _sample_variance(s0)
    eps = bernstein_eps(v0, n, objective.dim, lipschitz, confidence)
    alpha = choose_alpha(g1, g0, v1, v0, eps, gamma)
    g = alpha[:, None] * g1 + (1.0 - alpha[:, None]) * g0
    return GradientEstimate(
        grad=_out(g, single), alpha=_out(alpha, single), eps=_out(eps, single),
        var_zero=_out(v0, single), var_first=_out(v1, single),
        bias_hat=_out(np.linalg.norm(g1 - g0, axis=-1), single), n_samples=n)


# ---------------------------------------------------------------------------------------------
# estimators (configured callables, for the descent driver and the bench)


class Estimator(Protocol):
    """``(objective, theta (B, d), rng) -> GradientEstimate`` with ``(B, d)`` grad."""

    name: str

    def __call__(self, objective: Objective, theta: Array,
                 rng: np.random.Generator) -> GradientEstimate: ...


@dataclass(frozen=True)
class ZeroOrder:
    """ZoBG with fixed ``sigma``, ``n`` and baseline."""

    sigma: float
    n: int
    baseline: Literal["value", "zero"] = "value"
    name: str = "ZoBG"

    def __call__(self, objective: Objective, theta: Array,
                 rng: np.random.Generator) -> GradientEstimate:
        return zobg(objective, theta, self.sigma, self.n, rng, self.baseline)


@dataclass(frozen=True)
class FirstOrder:
    """FoBG with fixed ``sigma`` and ``n``."""

    sigma: float
    n: int
    name: str = "FoBG"

    def __call__(self, objective: Objective, theta: Array,
                 rng: np.random.Generator) -> GradientEstimate:
        return fobg(objective, theta, self.sigma, self.n, rng)


@dataclass(frozen=True)
class AlphaOrder:
    """AoBG with fixed ``sigma``, ``n``, trust region ``gamma``, ``lipschitz``, ``confidence``."""

    sigma: float
    n: int
    gamma: float
    lipschitz: float
    confidence: float = 0.95
    baseline: Literal["value", "zero"] = "value"
    shared_samples: bool = False
    name: str = "AoBG"

    def __call__(self, objective: Objective, theta: Array,
                 rng: np.random.Generator) -> GradientEstimate:
        return aobg(objective, theta, self.sigma, self.n, rng, self.gamma, self.lipschitz,
                    self.confidence, self.baseline, self.shared_samples)
