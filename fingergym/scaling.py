"""Actions and commands: the affine map between the agent's ``[-1, 1]^n`` and the robot's
command (joint position targets), defined once and used by every station and the safety layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.systems.framework import DiagramBuilder, InputPort, OutputPort
from pydrake.systems.primitives import AffineSystem, Saturation

from fingergym.layout import Layout


@dataclass(frozen=True)
class ActionScaling:
    """Affine map between actions in ``[-1, 1]^n`` and commands inside ``[low, high]``.

    ``low``/``high`` (n,) are the reachable command box (:meth:`fingergym.interfaces.Robot.
    workspace` of the task's region) in ``layout`` order [m or rad].
    """

    low: np.ndarray   # (n,) command at action -1
    high: np.ndarray  # (n,) command at action +1
    layout: Layout | None = None

    @classmethod
    def from_scenario(cls, scenario) -> ActionScaling:
        """The scaling of the scenario's robot on the scenario's task."""
        task, robot = scenario.plugins()
        low, high = robot.workspace(task.reach_region())
        return cls(np.asarray(low, dtype=float), np.asarray(high, dtype=float),
                   robot.command_layout)

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.high + self.low)

    @property
    def half_range(self) -> np.ndarray:
        return 0.5 * (self.high - self.low)

    def to_target(self, action: np.ndarray) -> np.ndarray:
        """Clip to ``[-1, 1]`` and map to a command inside the workspace."""
        return self.center + self.half_range * np.clip(np.asarray(action, dtype=float), -1, 1)

    def to_action(self, target: np.ndarray) -> np.ndarray:
        """Inverse map (clipped): the action that commands ``target``."""
        a = (np.asarray(target, dtype=float) - self.center) / self.half_range
        return np.clip(a, -1.0, 1.0)

    def clamp_target(self, target: np.ndarray) -> np.ndarray:
        """Project a command onto the reachable workspace."""
        return np.clip(np.asarray(target, dtype=float), self.low, self.high)

    def as_dict(self) -> dict:
        """JSON-safe description (policy headers, bags)."""
        return {"names": list(self.layout.names) if self.layout else None,
                "low": self.low.tolist(), "high": self.high.tolist()}


def add_action_scaling(builder: DiagramBuilder,
                       scaling: ActionScaling) -> tuple[InputPort, OutputPort]:
    """:meth:`ActionScaling.to_target` as Drake systems (saturate, then the affine map).

    Returns the ``actions`` input ([-1, 1]^n) to export and the ``target`` output (n,); every
    station uses this, so sim and hardware map actions identically.
    """
    n = scaling.dim
    saturation = builder.AddSystem(Saturation(-np.ones(n), np.ones(n)))
    to_target = builder.AddSystem(AffineSystem(
        A=np.zeros((0, 0)), B=np.zeros((0, n)), f0=np.zeros(0),
        C=np.zeros((n, 0)), D=np.diag(scaling.half_range), y0=scaling.center))
    to_target.set_name("action_to_target")
    builder.Connect(saturation.get_output_port(), to_target.get_input_port())
    return saturation.get_input_port(), to_target.get_output_port()


def check_action(action: object, dim: int) -> np.ndarray:
    """Validate an agent action: shape (dim,), finite. Raises ``ValueError`` otherwise."""
    try:
        a = np.asarray(action, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"action must be numeric with shape ({dim},): {e}") from e
    if a.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return a


def limit_step(last: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """The command after ``last`` (n,) that moves towards ``target`` (n,) by at most
    ``max_step`` (n,) in every dimension (the command rate limit of the safety layer, and of
    the sim's set-point with ``controller.rate_limit``)."""
    delta = target - last
    step = np.clip(delta, -max_step, max_step)
    return np.where(step == delta, target, last + step)  # exactly ``target`` when within reach
