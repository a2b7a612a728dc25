"""The observation pipeline shared by sim and hardware: object velocity from poses, pose convention.

A tracker gives object poses (x, z, theta) at a modest rate with noise; the policy's observation
needs their velocity (vx, vz, omega). :func:`window_velocity` fits a straight line to the
poses of the last ``window`` seconds (least squares, by measurement stamp) and returns its
slope. :class:`PoseVelocityEstimator` runs it on incoming messages (hardware);
:class:`EstimatedObjectVelocity` runs it inside a Drake diagram on the simulated poses sampled at
the tracker rate (sim, ``observation.object_velocity: estimated`` in the scenario), so training
can see the same observation pipeline.

Planar pose convention (``geometry_msgs/PoseStamped`` on ``/<object>/pose``): position x (right)
and z (up) of the object's origin in the world frame [m]; orientation a rotation by ``theta``
about world **-y**, i.e. the object's x axis points along ``(cos theta, sin theta)`` in the
(x, z) plane (for the box: theta = 0 lies flat, +-pi/2 stands). :func:`planar_angle` reads
theta from any quaternion.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pydrake.systems.framework import BasicVector, Context, DiscreteValues, LeafSystem


def window_velocity(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``y`` (n, k) against ``t`` (n,) [units/s]; zeros if n < 2."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.size < 2:
        return np.zeros(y.shape[-1])
    dt = t - t.mean()
    denom = float(dt @ dt)
    if denom <= 0.0:
        return np.zeros(y.shape[-1])
    return dt @ (y - y.mean(axis=0)) / denom


def planar_angle(qw: float, qx: float, qy: float, qz: float) -> float:
    """Theta of a quaternion in the planar convention: angle of the body x axis in (x, z)."""
    # First column of the rotation matrix: the body x axis in world coordinates.
    r00 = 1.0 - 2.0 * (qy * qy + qz * qz)
    r20 = 2.0 * (qx * qz - qw * qy)
    return math.atan2(r20, r00)


def planar_quaternion(theta: float) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation by ``theta`` about world -y (inverse of :func:`planar_angle`)."""
    return math.cos(theta / 2), 0.0, -math.sin(theta / 2), 0.0


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class PoseVelocityEstimator:
    """Box pose and velocity from a stream of stamped planar poses (hardware side).

    theta is unwrapped: the first pose after :meth:`reset` is put in ``[-pi/2, 3pi/2)`` (the
    sim's starting range: 0 flat, pi upside down), later ones follow continuously.
    """

    def __init__(self, window: float):
        self.window = float(window)
        self.reset()

    def reset(self) -> None:
        self._samples: deque[tuple[float, float, float, float]] = deque()
        self._theta: float | None = None

    @property
    def count(self) -> int:
        return len(self._samples)

    def add(self, stamp: float, x: float, z: float, theta: float) -> None:
        """One pose: measurement stamp [s], x, z [m], theta [rad] (wrapped or not)."""
        if self._theta is None:
            theta = _wrap(theta)
            if theta < -math.pi / 2:
                theta += 2 * math.pi
        else:
            theta = self._theta + _wrap(theta - self._theta)
        if self._samples and stamp <= self._samples[-1][0]:
            return  # out of order or duplicate
        self._theta = theta
        self._samples.append((stamp, x, z, theta))
        while len(self._samples) > 2 and stamp - self._samples[0][0] > self.window:
            self._samples.popleft()

    def pose(self) -> np.ndarray:
        """Latest (x, z, theta); NaN before the first pose."""
        if not self._samples:
            return np.full(3, np.nan)
        return np.array(self._samples[-1][1:])

    def velocity(self) -> np.ndarray:
        """(vx, vz, omega) over the window; zeros with fewer than two poses."""
        if len(self._samples) < 2:
            return np.zeros(3)
        s = np.array(self._samples)
        return window_velocity(s[:, 0], s[:, 1:])


def estimated_pairs(spec) -> tuple[np.ndarray, np.ndarray]:
    """Indices (pose, velocity) of every tracked-object pose element of an observation spec
    (:class:`fingergym.interfaces.ObservationSpec`) that has its velocity element too."""
    poses = {(s.name, s.axis): i for i, s in enumerate(spec.sources.values())
             if s.kind == "object_pose"}
    pairs = [(poses[(s.name, s.axis)], i) for i, s in enumerate(spec.sources.values())
             if s.kind == "object_velocity" and (s.name, s.axis) in poses]
    return (np.array([p for p, _ in pairs], dtype=int), np.array([v for _, v in pairs], dtype=int))


class EstimatedObjectVelocity(LeafSystem):
    """Sim: replace tracked objects' velocities in a state by the estimate from sampled poses.

    Input ``state`` (n, observation layout); output ``state`` (n) with the entries ``velocity``
    replaced. The pose entries ``pose`` (k,) are sampled every ``1 / pose_rate`` s into a ring
    buffer (discrete state); the velocity is the :func:`window_velocity` of the samples within
    ``window`` of the newest.
    """

    def __init__(self, pose_rate: float, window: float, n: int, pose: np.ndarray,
                 velocity: np.ndarray):
        super().__init__()
        self._period = 1.0 / pose_rate
        self._window = window
        self._pose, self._vel = np.asarray(pose, dtype=int), np.asarray(velocity, dtype=int)
        self._k = len(self._pose)
        self._n = max(2, int(math.floor(window * pose_rate + 1e-9)) + 1)
        self._in = self.DeclareVectorInputPort("state", n)
        # ring of n samples [t, pose...] (oldest first) + the count of valid samples
        self._ring = self.DeclareDiscreteState((self._k + 1) * self._n + 1)
        self.DeclarePeriodicDiscreteUpdateEvent(self._period, 0.0, self._sample)
        self.DeclareVectorOutputPort("state", n, self._calc,
                                     prerequisites_of_calc={self.all_sources_ticket()})

    def _sample(self, context: Context, discrete: DiscreteValues) -> None:
        z = context.get_discrete_state(self._ring).get_value().copy()
        state = self._in.Eval(context)
        ring = z[:-1].reshape(self._n, self._k + 1)
        ring = np.vstack([ring[1:], np.r_[context.get_time(), state[self._pose]]])
        count = min(self._n, int(z[-1]) + 1)
        discrete.get_mutable_vector(self._ring).SetFromVector(np.r_[ring.ravel(), count])

    def _calc(self, context: Context, output: BasicVector) -> None:
        state = np.array(self._in.Eval(context))
        z = context.get_discrete_state(self._ring).get_value()
        count = int(z[-1])
        ring = z[:-1].reshape(self._n, self._k + 1)[self._n - count:]
        if count >= 2:
            keep = ring[:, 0] >= ring[-1, 0] - self._window - 1e-9
            ring = ring[keep] if keep.sum() >= 2 else ring[-2:]
        state[self._vel] = window_velocity(ring[:, 0], ring[:, 1:])
        output.SetFromVector(state)
