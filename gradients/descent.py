"""A gradient-descent driver that runs any estimator on any objective, many trials at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .estimators import Array, Estimator, Objective


@dataclass(frozen=True)
class Trajectory:
    """Recorded descent. ``T`` trials, ``K`` iterations, dimension ``d``.

    ``theta``: ``(K+1, T, d)`` iterates (row 0 is the start); ``cost``: ``(K+1, T)`` the
    *unsmoothed* objective ``f(theta_k)``; ``alpha``: ``(K, T)`` the estimator's alpha at each
    step (0 for ZoBG, 1 for FoBG); ``grad``: ``(K, T, d)`` the gradient estimates used.
    """

    estimator: str
    theta: Array
    cost: Array
    alpha: Array
    grad: Array

    @property
    def final_theta(self) -> Array:
        """``(T, d)``."""
        return self.theta[-1]

    @property
    def final_cost(self) -> Array:
        """``(T,)``."""
        return self.cost[-1]


def gradient_descent(objective: Objective, estimator: Estimator, theta0: Array, step: float,
                     iterations: int, trials: int = 1, rng: np.random.Generator | None = None,
                     progress: Callable[[int], None] | None = None) -> Trajectory:
    """Run ``theta <- theta - step * estimate`` for ``iterations`` steps on ``trials`` copies.

    ``theta0``: ``(d,)`` (shared start) or ``(trials, d)``. All trials advance together, so one
    estimator call per iteration evaluates ``trials * n`` samples. ``progress(k)`` is called
    after each iteration (e.g. a tqdm ``update``).
    """
    rng = np.random.default_rng() if rng is None else rng
    t0 = np.asarray(theta0, dtype=np.float64)
    theta = np.broadcast_to(t0.reshape(-1, objective.dim), (trials, objective.dim)).copy()
    thetas = np.empty((iterations + 1, trials, objective.dim))
    costs = np.empty((iterations + 1, trials))
    alphas = np.empty((iterations, trials))
    grads = np.empty((iterations, trials, objective.dim))
    thetas[0], costs[0] = theta, objective.values(theta)
    for k in range(iterations):
        est = estimator(objective, theta, rng)
        g = np.asarray(est.grad).reshape(trials, objective.dim)
        theta = theta - step * g
        thetas[k + 1], costs[k + 1] = theta, objective.values(theta)
        alphas[k] = np.broadcast_to(np.asarray(est.alpha, dtype=np.float64), (trials,))
        grads[k] = g
        if progress is not None:
            progress(k)
    return Trajectory(getattr(estimator, "name", type(estimator).__name__), thetas, costs,
                      alphas, grads)
