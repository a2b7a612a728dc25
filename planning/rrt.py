"""RRT over the box's configuration with the smoothed-linearization distance (seed 003, stretch).

The tree holds full configurations ``q`` (5,) but grows in the box's ``q_u = (x, z, theta)``
only. Each node ``qbar`` caches the barrier model's local linearization with the finger held
where it is (``u = qbar_a``): ``mu = c(qbar)`` (box part of the smoothed step) and ``B_u`` (box
rows of ``d q+/d u``, 3 x 2). The distance from a node to a sample is the seed's

    d(q_u; qbar) = (q_u - mu)^T (B_u B_u^T + gamma I)^{-1} (q_u - mu),

small where the finger at that node can push the box towards the sample. Extend: the
least-squares command ``u = qbar_a + B_u^+ (q_u - mu)`` (at most ``max_push`` from the finger),
held for ``steps`` barrier steps. With probability ``regrasp`` a node is instead copied with the
finger moved to a random point beside the box (contact sampling). ``metric="euclidean"`` is the
baseline (``|q_u - qbar_u|`` with theta scaled by ``angle_scale``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fingergym.tasks.box_flipup import angle_from_vertical

from .model import QuasiDynamicModel


@dataclass
class RRTConfig:
    kappa: float = 200.0
    gamma: float = 1e-4          # [m^2] regularization of Sigma
    max_push: float = 0.12       # [m] max |u - q_a| of an extend
    steps: int = 3               # barrier steps per extend
    regrasp: float = 0.3         # probability of a contact-sampling move
    goal_bias: float = 0.2
    max_nodes: int = 300
    metric: str = "smoothed"     # smoothed | euclidean
    angle_scale: float = 0.1     # [m/rad] theta's weight in the euclidean metric
    success_angle: float = 0.15  # [rad] |angle from vertical| that counts as standing


@dataclass
class RRTResult:
    success: bool
    nodes: int
    seconds: float
    path: list[np.ndarray] = field(default_factory=list)
    best_angle: float = np.inf


class BoxRRT:
    """Grow a tree from ``q0`` until the box stands (``|angle from vertical| < success_angle``)."""

    def __init__(self, model: QuasiDynamicModel, config: RRTConfig | None = None,
                 seed: int = 0):
        self.model = model
        self.cfg = config or RRTConfig()
        self.rng = np.random.default_rng(seed)
        s = model.scenario
        self.x_range = (s.bin.wall_x[0] + 0.5 * s.box.thickness,
                        s.bin.wall_x[1] - 0.5 * s.box.thickness)
        self.z_range = (s.bin.floor_z + 0.5 * s.box.thickness,
                        s.bin.floor_z + 0.5 * s.box.length)

    def _linearization(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qn, _, B = self.model.linearize(q, q[3:5], self.cfg.kappa)
        Bu = B[:3]
        S = Bu @ Bu.T + self.cfg.gamma * np.eye(3)
        return qn[:3], np.linalg.inv(S)

    def _sample(self, goal_theta: float) -> np.ndarray:
        if self.rng.uniform() < self.cfg.goal_bias:
            x = self.rng.uniform(*self.x_range)
            return np.array([x, self.z_range[1], goal_theta])
        return np.array([self.rng.uniform(*self.x_range), self.rng.uniform(*self.z_range),
                         self.rng.uniform(goal_theta - np.pi, goal_theta + np.pi / 2)])

    def _regrasp(self, q: np.ndarray) -> np.ndarray:
        """The finger to a random point at a random side of the box, just off its surface."""
        s = self.model.scenario
        r = s.plugins()[1].radius
        c, sn = np.cos(q[2]), np.sin(q[2])
        half = np.array([0.5 * s.box.length, 0.5 * s.box.thickness])
        side = self.rng.integers(4)
        axis, sign = side // 2, 1 - 2 * (side % 2)
        p = self.rng.uniform(-1, 1, 2) * half
        p[axis] = sign * (half[axis] + r + 0.003)
        world = q[:2] + np.array([c * p[0] - sn * p[1], sn * p[0] + c * p[1]])
        out = q.copy()
        out[3:5] = self.model.scaling.clamp_target(world)
        return self.model.project(out)

    def plan(self, q0: np.ndarray, goal_theta: float) -> RRTResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        nodes = [self.model.project(np.asarray(q0, dtype=float))]
        parents = [-1]
        mus, Sinvs = [], []
        mu, Si = self._linearization(nodes[0])
        mus.append(mu)
        Sinvs.append(Si)
        best = abs(float(angle_from_vertical(nodes[0][2])))
        while len(nodes) < cfg.max_nodes:
            target = self._sample(goal_theta)
            Q = np.asarray(nodes)
            if cfg.metric == "smoothed":
                d = np.array([(target - m) @ S @ (target - m) for m, S in zip(mus, Sinvs)])
            else:
                diff = Q[:, :3] - target
                diff[:, 2] *= cfg.angle_scale
                d = np.sum(diff**2, axis=1)
            i = int(np.argmin(d))
            q = nodes[i]
            if self.rng.uniform() < cfg.regrasp:
                new = self._regrasp(q)
            else:
                _, _, B = self.model.linearize(q, q[3:5], cfg.kappa)
                du = np.linalg.lstsq(B[:3], target - mus[i], rcond=None)[0]
                n = np.linalg.norm(du)
                if n > cfg.max_push:
                    du *= cfg.max_push / n
                u = self.model.scaling.clamp_target(q[3:5] + du)
                new = q
                for _ in range(cfg.steps):
                    new = self.model.step_barrier(new, u, cfg.kappa).q_next
            nodes.append(new)
            parents.append(i)
            m, S = self._linearization(new)
            mus.append(m)
            Sinvs.append(S)
            a = abs(float(angle_from_vertical(new[2])))
            best = min(best, a)
            if a < cfg.success_angle:
                path, j = [], len(nodes) - 1
                while j >= 0:
                    path.append(nodes[j])
                    j = parents[j]
                return RRTResult(True, len(nodes), time.perf_counter() - t0, path[::-1], a)
        return RRTResult(False, len(nodes), time.perf_counter() - t0, [], best)
