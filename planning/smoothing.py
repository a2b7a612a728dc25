"""Smoothed linearizations of the flip-up's quasi-dynamic step, three ways (seed 003).

At ``(q, u)`` the smoothed input Jacobian ``B_rho = d/du E_w[f(q, u + w)]`` of the exact step
``f`` under Gaussian noise ``w ~ N(0, sigma^2 I)`` on the command is estimated by

- zero order: ``1/(N sigma^2) sum_i (f(q, u + w_i) - f(q, u)) w_i^T`` (exact steps only);
- first order: ``1/N sum_i df/du(q, u + w_i)`` (the exact step's KKT sensitivity);
- barrier: ``df_kappa/du(q, u)`` of the log-barrier step, by the implicit-function theorem
  (deterministic: no variance; its bias is the difference between the barrier's smoothing
  and the Gaussian one).

:func:`study` returns bias and spread of each against a reference (first order, many samples;
the exact step is Lipschitz in ``u``, so the first-order estimator is unbiased here) at a few
configurations of the flip-up scene.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import QuasiDynamicModel


def zero_order(model: QuasiDynamicModel, q: np.ndarray, u: np.ndarray, sigma: float,
               w: np.ndarray) -> np.ndarray:
    """Zero-order estimate of ``B_rho`` (5, 2) from noise samples ``w`` (N, 2) [m]."""
    f0 = model.step(q, u).q_next
    diffs = np.stack([model.step(q, u + wi).q_next - f0 for wi in w])
    return diffs.T @ w / (len(w) * sigma**2)


def first_order(model: QuasiDynamicModel, q: np.ndarray, u: np.ndarray,
                w: np.ndarray) -> np.ndarray:
    """First-order estimate of ``B_rho`` (5, 2): the mean exact Jacobian at ``u + w_i``."""
    return np.mean([model.exact_linearize_u(q, u + wi)[1] for wi in w], axis=0)


def barrier(model: QuasiDynamicModel, q: np.ndarray, u: np.ndarray,
            kappa: float) -> np.ndarray:
    """``d q_next / d u`` (5, 2) of the barrier step (implicit-function theorem)."""
    return model.linearize(q, u, kappa)[2]


@dataclass
class Config:
    """A named configuration of the scene and command."""

    name: str
    q: np.ndarray
    u: np.ndarray


def configurations(model: QuasiDynamicModel) -> list[Config]:
    """Three telling configurations: pushing a flat box (stick/slip), 5 mm short of contact,
    and a box pivoting on its corner at the wall."""
    s = model.scenario
    L, r = s.box.length, s.plugins()[1].radius
    low = s.bin.floor_z + r + 0.01
    flat = model.flat_q(0.0, finger=[0.5 * L + r + 1e-4, low])
    gap = model.flat_q(0.0, finger=[0.5 * L + r + 0.005, low])
    # Mid-flip at the right wall, recorded from a closed-loop episode (seed 1000, env step
    # 30): the box pivots on its corner, the finger presses its lower face.
    mid = np.array([0.178, 0.094, 2.306, 0.100, 0.176])
    return [
        Config("push flat box", flat, np.array([0.0, low])),
        Config("5 mm short", gap, np.array([gap[3] - 0.004, low])),
        Config("mid-flip at wall", mid, np.array([0.255, 0.206])),
    ]


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x) / max(np.linalg.norm(ref), 1e-12))


def study(model: QuasiDynamicModel, sigma: float = 0.01, samples: tuple[int, ...] = (10, 100),
          reps: int = 10, ref_samples: int = 1000, kappas: tuple[float, ...] = (100.0, 1e3, 1e4),
          seed: int = 0, tick: Callable[[], None] | None = None) -> list[dict]:
    """Bias and spread (relative Frobenius norms) of the three estimators per configuration.

    Rows: ``config``, ``estimator``, ``N`` (samples; 0 for the barrier), ``bias`` =
    |mean - ref| / |ref|, ``std`` = sqrt(mean |est - mean|^2) / |ref|, ``seconds`` per
    estimate, plus the reference's own zero-order check ``ref_zero_order_gap``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for cfg in configurations(model):
        t0 = time.perf_counter()
        w_ref = sigma * rng.standard_normal((ref_samples, 2))
        ref = first_order(model, cfg.q, cfg.u, w_ref)
        ref_seconds = time.perf_counter() - t0
        zo_ref = zero_order(model, cfg.q, cfg.u, sigma, w_ref)
        gap = _rel(zo_ref - ref, ref)
        exact_B = model.exact_linearize_u(cfg.q, cfg.u)[1]
        base = {"config": cfg.name, "sigma": sigma, "ref_norm": float(np.linalg.norm(ref)),
                "ref_samples": ref_samples, "ref_zero_order_gap": gap,
                "ref_B_box": ref[:3].round(4).tolist()}
        rows.append({**base, "estimator": "exact gradient (no smoothing)", "N": 1,
                     "bias": _rel(exact_B - ref, ref), "std": 0.0,
                     "seconds": ref_seconds / ref_samples})
        for n in samples:
            for name in ("zero-order", "first-order"):
                t = time.perf_counter()
                ests = []
                for _ in range(reps):
                    w = sigma * rng.standard_normal((n, 2))
                    ests.append(zero_order(model, cfg.q, cfg.u, sigma, w) if name == "zero-order"
                                else first_order(model, cfg.q, cfg.u, w))
                ests = np.stack(ests)
                secs = (time.perf_counter() - t) / reps
                mean = ests.mean(axis=0)
                spread = np.sqrt(np.mean(np.sum((ests - mean) ** 2, axis=(1, 2))))
                rows.append({**base, "estimator": name, "N": n, "bias": _rel(mean - ref, ref),
                             "std": float(spread / max(np.linalg.norm(ref), 1e-12)),
                             "seconds": secs})
                if tick:
                    tick()
        for kappa in kappas:
            t = time.perf_counter()
            B = barrier(model, cfg.q, cfg.u, kappa)
            rows.append({**base, "estimator": f"barrier kappa={kappa:g}", "N": 0,
                         "bias": _rel(B - ref, ref), "std": 0.0,
                         "seconds": time.perf_counter() - t})
    return rows
