"""Smoothed iLQR on the barrier quasi-dynamic model: trust region, annealed kappa.

State ``q`` (5,) [box x, z, theta, finger x, z], input ``u`` (2,) the commanded finger
position [m], kept inside the env's reachable workspace (:class:`fingergym.scaling.ActionScaling`).
The dynamics are :meth:`QuasiDynamicModel.step_barrier` with ``(A, B)`` from the
implicit-function theorem; the smoothing ``1/kappa`` is annealed from wide (forces at a
distance pull the finger towards contacts that help) to narrow (close to the exact model).
Each iteration: a Gauss-Newton backward pass, then a forward pass whose change of every
``u_t`` is clipped to a trust radius that grows or shrinks with the ratio of actual to
predicted cost decrease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .model import NQ, QuasiDynamicModel

NU = 2


@dataclass
class Cost:
    """Quadratic tracking cost ``sum_t (q_t - goal)^T W (q_t - goal) + effort |u_t - q_a,t|^2``
    plus a terminal weight ``W_final`` (diagonal weights, per coordinate of ``q``)."""

    goal: np.ndarray                 # (5,)
    W: np.ndarray                    # (5,) running
    W_final: np.ndarray              # (5,) terminal
    effort: float = 1.0              # [1/m^2] on the commanded offset u - q_a

    def running(self, q: np.ndarray, u: np.ndarray) -> float:
        e = q - self.goal
        d = u - q[3:5]
        return float(e @ (self.W * e) + self.effort * d @ d)

    def final(self, q: np.ndarray) -> float:
        e = q - self.goal
        return float(e @ (self.W_final * e))

    def total(self, qs: np.ndarray, us: np.ndarray) -> float:
        return sum(self.running(q, u) for q, u in zip(qs[:-1], us)) + self.final(qs[-1])


@dataclass
class PlanConfig:
    horizon: int = 20                      # plan steps (each model.h seconds)
    kappas: tuple[float, ...] = (30.0, 100.0, 300.0, 1000.0)
    iterations: int = 8                    # per kappa
    trust_radius: float = 0.05             # [m] initial max |du_t| per iteration
    min_radius: float = 1e-4
    max_radius: float = 0.2
    regularization: float = 1e-6
    curvature: bool = False                # exact A (10 more kinematics queries per step)
    feedback: bool = True                  # use the K gains in the forward pass


@dataclass
class Plan:
    """A planned trajectory: ``qs`` (T+1, 5), ``us`` (T, 2), its cost (under the last kappa)
    per iteration, and the planning wall time [s]."""

    qs: np.ndarray
    us: np.ndarray
    costs: list[float] = field(default_factory=list)
    seconds: float = 0.0
    kappa: float = 0.0


class SmoothedILQR:
    """iLQR on :class:`QuasiDynamicModel` with its barrier smoothing."""

    def __init__(self, model: QuasiDynamicModel, cost: Cost, config: PlanConfig | None = None):
        self.model = model
        self.cost = cost
        self.cfg = config or PlanConfig()
        self.low, self.high = model.scaling.low, model.scaling.high

    def rollout(self, q0: np.ndarray, us: np.ndarray, kappa: float,
                linearize: bool = False) -> tuple[np.ndarray, list, list]:
        qs = [np.asarray(q0, dtype=float)]
        As, Bs = [], []
        for u in us:
            if linearize:
                q, A, B = self.model.linearize(qs[-1], u, kappa, curvature=self.cfg.curvature)
                As.append(A)
                Bs.append(B)
            else:
                q = self.model.step_barrier(qs[-1], u, kappa).q_next
            qs.append(q)
        return np.asarray(qs), As, Bs

    def _backward(self, qs: np.ndarray, us: np.ndarray, As: list, Bs: list,
                  reg: float) -> tuple[np.ndarray, np.ndarray, float]:
        c = self.cost
        T = len(us)
        Vx = 2 * c.W_final * (qs[-1] - c.goal)
        Vxx = np.diag(2 * c.W_final)
        ks = np.zeros((T, NU))
        Ks = np.zeros((T, NU, NQ))
        expected = 0.0
        # effort |u - q_a|^2: d/du = 2 e d, d/dq_a = -2 e d
        Sa = np.zeros((NU, NQ))
        Sa[:, 3:5] = np.eye(NU)
        for t in range(T - 1, -1, -1):
            q, u, A, B = qs[t], us[t], As[t], Bs[t]
            d = u - q[3:5]
            lx = 2 * c.W * (q - c.goal) - 2 * c.effort * Sa.T @ d
            lu = 2 * c.effort * d
            lxx = np.diag(2 * c.W) + 2 * c.effort * Sa.T @ Sa
            luu = 2 * c.effort * np.eye(NU)
            lux = -2 * c.effort * Sa
            Qx = lx + A.T @ Vx
            Qu = lu + B.T @ Vx
            Qxx = lxx + A.T @ Vxx @ A
            Quu = luu + B.T @ Vxx @ B + reg * np.eye(NU)
            Qux = lux + B.T @ Vxx @ A
            k = -np.linalg.solve(Quu, Qu)
            K = -np.linalg.solve(Quu, Qux)
            ks[t], Ks[t] = k, K
            expected += float(Qu @ k + 0.5 * k @ Quu @ k)
            Vx = Qx + K.T @ Quu @ k + K.T @ Qu + Qux.T @ k
            Vxx = Qxx + K.T @ Quu @ K + K.T @ Qux + Qux.T @ K
            Vxx = 0.5 * (Vxx + Vxx.T)
        return ks, Ks, expected

    def _forward(self, qs: np.ndarray, us: np.ndarray, ks: np.ndarray, Ks: np.ndarray,
                 radius: float, kappa: float) -> tuple[np.ndarray, np.ndarray]:
        q = qs[0]
        new_q, new_u = [q], []
        # Scale (not clip) the feed-forward into the trust region: keeps the descent direction.
        alpha = min(1.0, radius / max(float(np.max(np.abs(ks))), 1e-12))
        for t in range(len(us)):
            du = alpha * ks[t] + (Ks[t] @ (q - qs[t]) if self.cfg.feedback else 0.0)
            du = np.clip(du, -radius, radius)
            u = np.clip(us[t] + du, self.low, self.high)
            q = self.model.step_barrier(q, u, kappa).q_next
            new_q.append(q)
            new_u.append(u)
        return np.asarray(new_q), np.asarray(new_u)

    def plan(self, q0: np.ndarray, us0: np.ndarray, *, kappas: tuple[float, ...] | None = None,
             iterations: int | None = None,
             progress: Callable[[int, float], None] | None = None) -> Plan:
        """Optimize ``us0`` (T, 2) from ``q0``; returns the best plan under the last kappa."""
        cfg = self.cfg
        t0 = time.perf_counter()
        us = np.clip(np.asarray(us0, dtype=float), self.low, self.high)
        costs = []
        kappas = kappas or cfg.kappas
        iterations = cfg.iterations if iterations is None else iterations
        qs = None
        for kappa in kappas:
            radius = cfg.trust_radius
            qs, As, Bs = self.rollout(q0, us, kappa, linearize=True)
            J = self.cost.total(qs, us)
            for _ in range(iterations):
                ks, Ks, expected = self._backward(qs, us, As, Bs, cfg.regularization)
                new_q, new_u = self._forward(qs, us, ks, Ks, radius, kappa)
                J_new = self.cost.total(new_q, new_u)
                ratio = (J - J_new) / max(-expected, 1e-12)
                if J_new < J:
                    us, J = new_u, J_new
                    qs, As, Bs = self.rollout(q0, us, kappa, linearize=True)
                    if ratio > 0.5:
                        radius = min(2 * radius, cfg.max_radius)
                else:
                    radius *= 0.5
                    if radius < cfg.min_radius:
                        break
                costs.append(J)
                if progress is not None:
                    progress(len(costs), J)
        return Plan(qs, us, costs, time.perf_counter() - t0, kappas[-1])
