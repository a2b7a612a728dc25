"""Scripted (hand-written, state-feedback) flip-ups for a point-tool robot ([x, z] command):
the baseline, the demo, the warm start's expert, and a physics check.

Strategy: get to the right of the box, low; push it left against the wall; then push up-left
on its lower-right corner so it pivots about the corner at the wall until it stands, and keep
pressing it into the wall.
"""

from __future__ import annotations

import numpy as np

from fingergym.scaling import ActionScaling

from .task import angle_from_vertical


def _rot(phi: float) -> np.ndarray:
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s], [s, c]])


class ScriptedFlip:
    """``action = ScriptedFlip(scenario)(state)``: true state (observation layout) -> action
    in [-1, 1]^2."""

    def __init__(self, scenario, push: float = 0.15,
                 direction: tuple[float, float] = (-1.0, 0.9)):
        self.s = scenario
        task, robot = scenario.plugins()
        self.scaling = ActionScaling.from_scenario(scenario)
        self.radius = float(getattr(robot, "radius", 0.0))
        lay = task.observation_layout
        self._box = lay["box_q"]
        self._tool = lay["robot_q"]
        self.push = push
        self.direction = direction

    def target(self, state: np.ndarray) -> np.ndarray:
        """Tool target [m] for the current state."""
        s = self.s
        L, T, r = s.box.length, s.box.thickness, self.radius
        floor, wall = s.bin.floor_z, s.bin.wall_x[0]
        bx, bz, theta = state[self._box]
        fx, fz = state[self._tool]
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
        # Push into the right face and up (inside the friction cone so the tool does not slip),
        # in the box frame: the push turns with the box and ends pressing it into the wall.
        return corner + R @ (self.push * np.asarray(self.direction))

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.scaling.to_action(self.target(state)).astype(np.float32)


class StandingExpert(ScriptedFlip):
    """:class:`ScriptedFlip`, plus: once the box stands at the wall, hold a FIXED point against
    its right face instead of a box-relative one.

    The box-relative push of ``ScriptedFlip`` chases the box as it rocks and, with the command
    delay, sustains a limit cycle (|omega| > 0.5 rad/s at the end: a failure). A fixed press
    damps it: 80% vs 58% success on 40 randomized episodes.
    """

    def __init__(self, scenario, stand_angle: float = 0.12, press: float = 0.005,
                 height: float = 0.5):
        super().__init__(scenario)
        self.stand_angle = stand_angle  # [rad] |angle from vertical| that counts as standing
        self.press = press              # [m] target inside the box face
        self.height = height            # press height as a fraction of the box length

    def target(self, state: np.ndarray) -> np.ndarray:
        s = self.s
        bx, _, theta = state[self._box]
        if abs(angle_from_vertical(theta)) < self.stand_angle and bx - s.bin.wall_x[0] < 0.1:
            return np.array([s.bin.wall_x[0] + s.box.thickness + self.radius - self.press,
                             s.bin.floor_z + self.height * s.box.length])
        return super().target(state)
