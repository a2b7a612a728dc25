"""Toy objectives from the paper's public code (hjsuh94/alpha_gradient), vectorised.

* :func:`ball_with_wall` - launch angle -> minus squared landing distance, with a wall.
* :func:`heaviside` - ``1[x >= 0]``; gradient zero almost everywhere.
* :func:`stiff_ramp` - ``clip(2 x / nu, -1, 1)``; a continuous but stiff Heaviside.
* :func:`pivot_cliff` - ``-sin^2(theta)`` for ``|theta| <= pi/4``, else 0: a cliff.

All are 1-D :class:`~fingergym.gradients.estimators.Objective` s with exact
gradients and their discontinuities listed in ``breakpoints`` (for quadrature).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .estimators import Array, Objective


@dataclass(frozen=True)
class BallParams:
    """Ball thrown at angle theta with speed ``v0``; wall of height ``h`` at distance ``d``."""

    v0: float = 1.0
    g: float = 9.81
    d: float = 0.06
    h: float = 0.02


def ball_final_x(theta: Array, p: BallParams = BallParams()) -> tuple[Array, Array]:
    """Landing distance and its derivative: ``(N,) -> (N,), (N,)``.

    ``x_t = 2 v0^2 sin cos / g``; if ``x_t <= d`` the ball lands at ``x_t``; otherwise if its
    height at the wall ``d tan(theta) - g d^2 / (2 v0^2 cos^2)`` is ``<= h`` it stops at the
    wall (``x = d``, zero derivative); else it lands at ``x_t``.
    """
    th = np.asarray(theta, dtype=np.float64)
    s, c = np.sin(th), np.cos(th)
    xt = 2.0 * p.v0**2 * s * c / p.g
    dxt = 2.0 * p.v0**2 * np.cos(2.0 * th) / p.g
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        height = p.d * s / c - p.g * p.d**2 / (2.0 * p.v0**2 * c**2)
    stopped = (xt > p.d) & (height <= p.h)
    x = np.where(stopped, p.d, xt)
    dx = np.where(stopped, 0.0, dxt)
    return x, dx


def ball_breakpoints(p: BallParams = BallParams(), periods: int = 2) -> tuple[float, ...]:
    """Angles where the ball objective has a kink or a jump, over ``+-periods`` copies of pi."""
    base = []
    r = p.d * p.g / p.v0**2  # x_t = d  <=>  sin(2 theta) = r
    if r <= 1.0:
        a = 0.5 * math.asin(r)
        base += [a, math.pi / 2 - a]
    # height(theta) = h with t = tan(theta): (g d^2 / 2v0^2) t^2 - d t + (g d^2 / 2v0^2 + h) = 0
    k = p.g * p.d**2 / (2.0 * p.v0**2)
    disc = p.d**2 - 4.0 * k * (k + p.h)
    if disc >= 0:
        base += [math.atan((p.d - math.sqrt(disc)) / (2 * k)),
                 math.atan((p.d + math.sqrt(disc)) / (2 * k))]
    base += [math.pi / 2]
    pts = sorted({b + j * math.pi for b in base for j in range(-periods, periods + 1)})
    return tuple(pts)


def ball_with_wall(p: BallParams = BallParams()) -> Objective:
    """Ball-with-wall: ``f(theta) = -x_final(theta)^2``, analytic gradient (zero on the wall)."""

    def value(x: Array) -> Array:
        return -ball_final_x(x[:, 0], p)[0] ** 2

    def grad(x: Array) -> Array:
        xf, dx = ball_final_x(x[:, 0], p)
        return (-2.0 * xf * dx)[:, None]

    return Objective("ball_with_wall", 1, value, grad, ball_breakpoints(p))


def ball_wall_edge(p: BallParams = BallParams()) -> float:
    """The smallest positive angle at which the ball clears the wall (~0.6932 by default)."""
    k = p.g * p.d**2 / (2.0 * p.v0**2)
    return math.atan((p.d - math.sqrt(p.d**2 - 4.0 * k * (k + p.h))) / (2 * k))


def heaviside() -> Objective:
    """``f(x) = 1[x >= 0]``; the pathwise gradient is 0 everywhere it exists."""
    return Objective("heaviside", 1,
                     lambda x: (x[:, 0] >= 0.0).astype(np.float64),
                     lambda x: np.zeros_like(x), (0.0,))


def stiff_ramp(nu: float) -> Objective:
    """``f(x) = clip(2 x / nu, -1, 1)``: gradient ``2/nu`` on ``|x| < nu/2``, else 0."""
    if nu <= 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    return Objective(f"stiff_ramp(nu={nu:g})", 1,
                     lambda x: np.clip(2.0 * x[:, 0] / nu, -1.0, 1.0),
                     lambda x: np.where(np.abs(x) < nu / 2, 2.0 / nu, 0.0),
                     (-nu / 2, nu / 2))


def pivot_cliff(edge: float = math.pi / 4) -> Objective:
    """``f = -sin^2(theta)`` for ``|theta| <= edge`` else 0 (a pivot that falls off a cliff)."""

    def value(x: Array) -> Array:
        th = x[:, 0]
        return np.where(np.abs(th) <= edge, -np.sin(th) ** 2, 0.0)

    def grad(x: Array) -> Array:
        th = x[:, 0]
        return np.where(np.abs(th) <= edge, -np.sin(2.0 * th), 0.0)[:, None]

    return Objective("pivot_cliff", 1, value, grad, (-edge, edge))
