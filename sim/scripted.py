"""A scripted (hand-written, state-feedback) flip-up: the baseline, the demo and a physics check.

Strategy: get to the right of the box, low; push it left against the wall; then push up-left
on its lower-right corner so it pivots about the corner at the wall until it stands, and keep
pressing it into the wall.
"""

from __future__ import annotations

import numpy as np

from fingergym.scenario import Scenario
from fingergym.task import ActionScaling


def _rot(phi: float) -> np.ndarray:
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s], [s, c]])


class ScriptedFlip:
    """``action = ScriptedFlip(scenario)(state)`` on the true state (10,) -> action in [-1, 1]^2."""

    def __init__(self, scenario: Scenario, push: float = 0.15,
                 direction: tuple[float, float] = (-1.0, 0.9)):
        self.s = scenario
        self.scaling = ActionScaling.from_scenario(scenario)
        self.push = push
        self.direction = direction

    def target(self, state: np.ndarray) -> np.ndarray:
        """Finger target [m] for the current state."""
        s = self.s
        L, T, r = s.box.length, s.box.thickness, s.finger.radius
        floor, wall = s.bin.floor_z, s.bin.wall_x[0]
        bx, bz, theta, fx, fz = state[:5]
        phi = (theta + np.pi / 2) % np.pi - np.pi / 2  # the box is symmetric: theta mod pi
        low = floor + r + 0.002
        if abs(phi) < 0.05 and bx - 0.5 * L > wall + 0.01:
            # Flat and away from the wall: get behind its right end, low, then push it left.
            behind = bx + 0.5 * L + r + 0.01
            above = bz + 0.5 * T + r + 0.04
            if fx < behind - 0.005:
                if fz < above - 0.01:
                    return np.array([fx, above + 0.02])
                return np.array([behind + 0.02, above])
            if fz > low + 0.01:
                return np.array([behind, low])
            return np.array([wall - 1.0, low])  # clamped to the workspace: a firm push
        # At the wall (or tilted): push up-left on the lower-right corner, in the box frame.
        R = _rot(phi)
        corner = np.array([bx, bz]) + R @ np.array([0.5 * L + r, -0.5 * T])
        # Push into the right face and up (inside the friction cone so the finger does not slip),
        # in the box frame: the push turns with the box and ends pressing it into the wall.
        return corner + R @ (self.push * np.asarray(self.direction))

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.scaling.to_action(self.target(state)).astype(np.float32)
