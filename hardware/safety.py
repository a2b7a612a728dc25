"""The one safety layer between a policy and the command publisher (deploy and replay).

Every target goes through :meth:`SafetyFilter.filter`, which returns what may actually be sent:

- non-finite targets are rejected: the last safe target is held;
- targets are clamped to the reachable workspace
  (:meth:`fingergym.task.ActionScaling.clamp_target`);
- the change per command is limited to ``max_step`` (m, Euclidean) from the last command sent,
  always: at the first command of an episode (soft start), at e-stop engage and release. Only
  the very first command of a stream ramps from the measured finger position (:meth:`reset`);
- while the e-stop is engaged, the last command sent is held (re-anchoring to the measured
  position would be a jump as large as the finger's lag).

What :meth:`filter` returns is what gets published and logged (LeRobot's ``send_action``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fingergym.scenario import Scenario
from fingergym.task import ActionScaling


@dataclass(frozen=True)
class SafeCommand:
    target: np.ndarray  # (2,) what to send [m]
    clipped: bool       # differs from the requested target
    reason: str         # "" | "workspace" | "rate_limit" | "non_finite" | "estop"


class SafetyFilter:
    """Stateful filter of finger targets [m]; one instance per command stream."""

    def __init__(self, scaling: ActionScaling, max_step: float):
        if not max_step > 0:
            raise ValueError(f"max_step must be > 0, got {max_step}")
        self.scaling = scaling
        self.max_step = float(max_step)
        self.last: np.ndarray | None = None  # last target sent
        self.estop = False
        self.rejected = 0  # non-finite targets seen

    @classmethod
    def from_config(cls, scenario: Scenario, config) -> SafetyFilter:
        return cls(ActionScaling.from_scenario(scenario), config.safety.max_step)

    def reset(self, measured: np.ndarray) -> None:
        """Soft start: the next command ramps from the last command sent on this stream, or,
        before the first one, from the measured finger position [m]."""
        measured = np.asarray(measured, dtype=float)
        if measured.shape != (2,) or not np.all(np.isfinite(measured)):
            raise ValueError(f"measured finger position must be finite (2,), got {measured}")
        if self.last is None:
            self.last = self.scaling.clamp_target(measured)

    def set_estop(self, engaged: bool, measured: np.ndarray | None = None) -> None:
        """Engage: hold the last command sent. Release: go on from it, rate limited.
        (``measured`` is accepted for compatibility and not used: no re-anchoring.)"""
        self.estop = bool(engaged)

    def filter(self, target: np.ndarray) -> SafeCommand:
        """The target that may be sent now, given the requested one [m]."""
        if self.last is None:
            raise RuntimeError("SafetyFilter.reset(measured) must be called before filter()")
        target = np.asarray(target, dtype=float)
        if self.estop:
            return SafeCommand(self.last.copy(), True, "estop")
        if target.shape != (2,) or not np.all(np.isfinite(target)):
            self.rejected += 1
            return SafeCommand(self.last.copy(), True, "non_finite")
        safe = self.scaling.clamp_target(target)
        reason = "" if np.array_equal(safe, target) else "workspace"
        delta = safe - self.last
        dist = float(np.hypot(*delta))
        if dist > self.max_step:
            safe = self.last + delta * (self.max_step / dist)
            reason = reason or "rate_limit"
        self.last = safe
        return SafeCommand(safe.copy(), bool(reason), reason)
