"""The seed's 1-D check: a point pusher (stiffness k) pushes a box (mass m), frictionless.

Coordinates ``q = (box, pusher)`` [m], gap ``phi = box - pusher`` (radii folded in), command
``u``. One quasi-dynamic step (the same :class:`StepProblem` form as the flip-up scene) is

    min 1/2 (m/h) db^2 + 1/2 h k da^2 - h k (u - q_a) da   s.t.  phi + db - da >= 0.

Derivation (``x = u - q_a - phi``, the commanded penetration; ``eps = m/h``, ``c = h k``):

- exact step: ``db = alpha max(x, 0)`` with ``alpha = c / (eps + c) = h^2 k / (m + h^2 k)``;
- barrier step (``-(1/kappa) log s``): stationarity gives ``eps db = 1 / (kappa s)`` and
  ``s = db / alpha - x``, so ``db = alpha/2 (x + sqrt(x^2 + delta))``, ``delta = 4 / (alpha kappa
  eps)``;
- randomized smoothing ``E_w[alpha max(x + w, 0)]`` has second derivative ``alpha rho(-x)``; the
  barrier's is ``alpha/2 delta (x^2 + delta)^{-3/2}``. So the two coincide exactly when

      rho(w) = (delta / 2) (w^2 + delta)^{-3/2},

  a Student-t with 2 degrees of freedom scaled by ``sqrt(delta / 2)``, added to the command
  ``u`` (heavy tails: finite mean, infinite variance). A Gaussian of any width does not match
  (its tails are too light), which :func:`compare` shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Contacts, StepProblem, solve_barrier, solve_exact


@dataclass(frozen=True)
class Pusher1D:
    """Box mass ``m`` [kg], pusher stiffness ``k`` [N/m], step ``h`` [s]."""

    m: float = 1.0
    k: float = 100.0
    h: float = 0.1

    @property
    def alpha(self) -> float:
        """Fraction of the commanded penetration the box moves in contact."""
        return self.h**2 * self.k / (self.m + self.h**2 * self.k)

    def delta(self, kappa: float) -> float:
        """The barrier's smoothing width ``4 / (alpha kappa m / h)`` [m^2]."""
        return 4.0 / (self.alpha * kappa * self.m / self.h)

    def t_scale(self, kappa: float) -> float:
        """Scale [m] of the Student-t (2 dof) noise on ``u`` equivalent to ``kappa``."""
        return float(np.sqrt(self.delta(kappa) / 2.0))

    def problem(self, x: float) -> StepProblem:
        """The step at ``q = (box 0, pusher 0)`` with ``phi = 0`` and command ``u = x``."""
        h, m, k = self.h, self.m, self.k
        Q = np.diag([m / h, h * k])
        b = np.array([0.0, -h * k * x])
        G = np.array([[1.0, -1.0]])
        g0 = np.array([0.0]) + 0.0
        c = Contacts(np.zeros(1), G.copy(), np.zeros((1, 2)), np.zeros(1), ["box|pusher"])
        return StepProblem(Q, b, G, g0, G.copy(), np.array([[0.0], [-h * k]]),
                           np.zeros((2, 2)), c)

    # Closed forms of the box displacement db [m] as a function of x [m].
    def exact(self, x: np.ndarray) -> np.ndarray:
        return self.alpha * np.maximum(x, 0.0)

    def barrier(self, x: np.ndarray, kappa: float) -> np.ndarray:
        return 0.5 * self.alpha * (x + np.sqrt(np.asarray(x) ** 2 + self.delta(kappa)))

    def gaussian_smoothed(self, x: np.ndarray, sigma: float) -> np.ndarray:
        """``E[alpha max(x + w, 0)]``, ``w ~ N(0, sigma^2)`` (closed form)."""
        from math import erf, pi, sqrt

        x = np.atleast_1d(np.asarray(x, dtype=float))
        cdf = 0.5 * (1.0 + np.vectorize(erf)(x / (sigma * sqrt(2.0))))
        pdf = np.exp(-0.5 * (x / sigma) ** 2) / sqrt(2 * pi)
        return self.alpha * (x * cdf + sigma * pdf)


def t2_quadrature(model: Pusher1D, x: float, kappa: float, n: int = 20001) -> float:
    """``E[exact(x + w)]`` for the Student-t(2) noise, by quadrature in ``w = c tan(theta)``
    (the substitution makes the heavy tail a bounded integrand)."""
    c = np.sqrt(model.delta(kappa))
    lo = np.arctan(-x / c)
    th = np.linspace(lo, np.pi / 2, n)[:-1]
    w = c * np.tan(th)
    rho = 0.5 * c**2 * (w**2 + c**2) ** -1.5
    f = model.exact(x + w) * rho * c / np.cos(th) ** 2
    return float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(th)))


def compare(model: Pusher1D = Pusher1D(), kappa: float = 1e4,
            xs: np.ndarray | None = None, samples: int = 200_000,
            solver_samples: int = 200, seed: int = 0) -> dict:
    """Barrier step (Newton) vs randomized smoothing of the exact step (Clarabel) at ``xs``.

    Returns rows with, per ``x``: the barrier step by Newton and in closed form, the t(2)
    smoothed exact step by quadrature and by Monte Carlo (closed-form exact step; the first
    ``solver_samples`` also through Clarabel to check the closed form), and the Gaussian
    smoothing with the same density at 0 (the closest Gaussian near contact).
    """
    rng = np.random.default_rng(seed)
    scale = model.t_scale(kappa)
    if xs is None:
        xs = np.array([-4, -2, -1, -0.5, 0, 0.5, 1, 2, 4]) * scale
    # Same density at 0: t2 scaled by s has rho(0) = 1 / (2 sqrt(2) s).
    sigma = 2.0 * np.sqrt(2.0) * scale / np.sqrt(2.0 * np.pi)
    rows = []
    solver_err = 0.0
    for x in xs:
        dq, _, it = solve_barrier(model.problem(float(x)), kappa)
        w = scale * rng.standard_t(2, size=samples)
        vals = model.exact(x + w)
        for wi in w[:solver_samples]:
            dq_e, _ = solve_exact(model.problem(float(x + wi)))
            solver_err = max(solver_err, abs(dq_e[0] - model.exact(x + wi)))
        rows.append({
            "x": float(x), "barrier_newton": float(dq[0]),
            "barrier_closed": float(model.barrier(x, kappa)),
            "t2_quadrature": t2_quadrature(model, float(x), kappa),
            "t2_monte_carlo": float(np.mean(vals)),
            "t2_mc_stderr": float(np.std(vals) / np.sqrt(samples)),
            "gaussian": float(model.gaussian_smoothed(x, sigma)[0]),
            "exact": float(model.exact(x)), "newton_iterations": it,
        })
    return {"m": model.m, "k": model.k, "h": model.h, "kappa": kappa, "alpha": model.alpha,
            "t_scale": scale, "gaussian_sigma": sigma, "samples": samples,
            "exact_closed_vs_clarabel_max_err": solver_err, "rows": rows}
