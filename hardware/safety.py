"""The one safety layer between a policy and the command publisher (deploy and replay).

Every command (the robot's joint position targets, ``Robot.command_layout`` order) goes through
:meth:`SafetyFilter.filter`, which returns what may actually be sent:

- non-finite or wrong-sized commands are rejected: the last safe command is held;
- commands are clamped to the reachable workspace
  (:meth:`fingergym.scaling.ActionScaling.clamp_target`);
- optionally, commands are kept within ``max_lead`` (n,) of the measured position
  (:meth:`fingergym.interfaces.Robot.max_lead`: e.g. a gripper's jaw, so the grip force stays
  bounded);
- the change per command is limited in every dimension to ``max_step`` (n,) (the model file's
  joint velocity limits times the command period) from the last command sent, always: at the
  first command of an episode (soft start), at e-stop engage and release. Only the very first
  command of a stream ramps from the measured position (:meth:`reset`);
- while the e-stop is engaged, the last command sent is held (re-anchoring to the measured
  position would be a jump as large as the robot's lag).

What :meth:`filter` returns is what gets published and logged (LeRobot's ``send_action``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fingergym.scaling import ActionScaling, limit_step


@dataclass(frozen=True)
class SafeCommand:
    target: np.ndarray  # (n,) what to send
    clipped: bool       # differs from the requested command
    reason: str         # "" | "workspace" | "lead" | "rate_limit" | "non_finite" | "estop"


class SafetyFilter:
    """Stateful filter of commands; one instance per command stream."""

    def __init__(self, scaling: ActionScaling, max_step: np.ndarray | float,
                 max_lead: np.ndarray | float | None = None):
        step = np.broadcast_to(np.asarray(max_step, dtype=float), (scaling.dim,)).copy()
        if not np.all(step > 0):
            raise ValueError(f"max_step must be > 0 in every dimension, got {step.tolist()}")
        self.scaling = scaling
        self.max_step = step
        self.max_lead = None
        if max_lead is not None:
            lead = np.broadcast_to(np.asarray(max_lead, dtype=float), (scaling.dim,)).copy()
            if not np.all(lead > 0):
                raise ValueError(f"max_lead must be > 0 in every dimension, got {lead.tolist()}")
            self.max_lead = lead
        self.last: np.ndarray | None = None  # last command sent
        self.estop = False
        self.rejected = 0  # non-finite commands seen

    def _measured(self, measured: np.ndarray) -> np.ndarray:
        measured = np.asarray(measured, dtype=float)
        if measured.shape != (self.scaling.dim,) or not np.all(np.isfinite(measured)):
            raise ValueError(f"measured position must be finite ({self.scaling.dim},), "
                             f"got {measured}")
        return measured

    def reset(self, measured: np.ndarray) -> None:
        """Soft start: the next command ramps from the last command sent on this stream, or,
        before the first one, from the measured position."""
        measured = self._measured(measured)
        if self.last is None:
            self.last = self.scaling.clamp_target(measured)

    def set_estop(self, engaged: bool, measured: np.ndarray | None = None) -> None:
        """Engage: hold the last command sent. Release: go on from it, rate limited.
        (``measured`` is accepted for compatibility and not used: no re-anchoring.)"""
        self.estop = bool(engaged)

    def filter(self, target: np.ndarray, measured: np.ndarray | None = None) -> SafeCommand:
        """The command that may be sent now, given the requested one and (for ``max_lead``)
        the measured position (n,); a missing or non-finite measurement skips the lead bound."""
        if self.last is None:
            raise RuntimeError("SafetyFilter.reset(measured) must be called before filter()")
        target = np.asarray(target, dtype=float)
        if self.estop:
            return SafeCommand(self.last.copy(), True, "estop")
        if target.shape != self.last.shape or not np.all(np.isfinite(target)):
            self.rejected += 1
            return SafeCommand(self.last.copy(), True, "non_finite")
        safe = self.scaling.clamp_target(target)
        reason = "" if np.array_equal(safe, target) else "workspace"
        if self.max_lead is not None and measured is not None:
            m = np.asarray(measured, dtype=float)
            if m.shape == safe.shape and np.all(np.isfinite(m)):
                led = np.clip(safe, m - self.max_lead, m + self.max_lead)
                if not np.array_equal(led, safe):
                    safe, reason = led, reason or "lead"
        limited = limit_step(self.last, safe, self.max_step)
        if not np.array_equal(limited, safe):
            safe = limited
            reason = reason or "rate_limit"
        self.last = safe
        return SafeCommand(safe.copy(), bool(reason), reason)
