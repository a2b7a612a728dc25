"""State validity: every incoming state message is checked before it can reach an observation.

One place for every robot and task: :class:`StateValidator` checks joint states (positions and
velocities of the robot's joints) and tracked-object poses (position, quaternion) against
:class:`ValidityLimits`, and their header stamps against the local wall clock and against the
topic's previous stamp. It has no ROS dependency; the ROS bridge calls it from its callbacks.

Freshness is measured by arrival **and** stamp: a message only refreshes the state (and so the
watchdog, which measures the time since the last *accepted* message) if it passes these checks.

=================  ==============================================  ========================
reason             what                                            reaction
=================  ==============================================  ========================
``non_finite``     NaN/inf in a position, velocity or quaternion   reject, count, **fault**
``joint_limits``   a joint position/velocity outside what the      reject, count, **fault**
                   robot can physically reach (limits + margin)
``workspace``      an object position outside the scene (+margin)  reject, count, **fault**
``quaternion``     a quaternion whose norm is not 1 (tolerance)    reject, count, **fault**
``stamp_future``   a stamp ahead of our clock (> tolerance)        reject, count, **fault**
``stamp_order``    a stamp older than the topic's last one         reject, count
``stamp_repeat``   the topic's last stamp again (a re-sent sample) reject, count
``stamp_stale``    a stamp older than ``max_stamp_age`` on arrival reject, count
=================  ==============================================  ========================

A **fault** ends the episode (truncated, ``end_reason`` names it) while the command sender
holds the last safe command. Rejections without a fault are a stream that stopped being valid:
if no valid message follows, the watchdog ends the episode (its reason lists the rejections).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

FAULT_REASONS = ("non_finite", "joint_limits", "workspace", "quaternion", "stamp_future")
REJECT_REASONS = ("stamp_order", "stamp_repeat", "stamp_stale")


@dataclass(frozen=True)
class ValidityLimits:
    """What a plausible state is (SI units)."""

    joint_lower: np.ndarray        # (n,) bounds of the JointState joints [m or rad], margin in
    joint_upper: np.ndarray        # (n,)
    joint_speed: np.ndarray        # (n,) largest plausible |velocity| [m/s or rad/s]
    object_lower: np.ndarray       # (2,) x, z bounds of a tracked object's position [m]
    object_upper: np.ndarray       # (2,)
    quaternion_tolerance: float = 0.01  # | |q| - 1 | allowed
    stamp_tolerance: float = 0.1   # s a stamp may lie ahead of our clock (clock sync)
    max_stamp_age: float = 0.5     # s a stamp may lie behind our clock on arrival

    @classmethod
    def from_plugins(cls, task, robot, safety) -> ValidityLimits:
        """A robot's joints (its model file's limits for the command joints; others are only
        checked for finiteness) and a task's tracked objects (its reach region), widened by the
        hardware config's ``safety`` margins."""
        m = safety.plausibility_margin
        names = list(robot.joint_names)
        lo, hi = np.full(len(names), -np.inf), np.full(len(names), np.inf)
        speed = np.full(len(names), float(safety.max_joint_speed))
        lim = robot.limits
        for k, joint in enumerate(robot.command_layout.names):
            i = names.index(joint)
            lo[i], hi[i] = lim.lower[k] - m, lim.upper[k] + m
            speed[i] = max(speed[i], 2.0 * float(lim.velocity[k]))
        region = task.reach_region()
        return cls(joint_lower=lo, joint_upper=hi, joint_speed=speed,
                   object_lower=np.array([region.x[0] - m, region.floor - m]),
                   object_upper=np.array([region.x[1] + m, region.ceiling + m]),
                   quaternion_tolerance=safety.quaternion_tolerance,
                   stamp_tolerance=safety.stamp_tolerance,
                   max_stamp_age=safety.max_stamp_age)


class StateValidator:
    """Checks state messages; counts rejections by reason; remembers the first fault.

    Thread-safe (called from the ROS executor thread, read from the control thread).
    """

    def __init__(self, limits: ValidityLimits):
        self.limits = limits
        self._lock = threading.Lock()
        self._last_stamp: dict[str, float] = {}
        self.rejected: dict[str, int] = {}
        self.first: dict[str, str] = {}  # reason -> "topic (detail)" of its first rejection
        self.fault = ""
        self._since = -math.inf

    def new_episode(self, since: float = -math.inf) -> None:
        """Clear the counts and the fault (stamps stay: they must keep increasing). An invalid
        message measured before ``since`` (wall s; e.g. the start of homing) is still rejected
        and counted, but is no fault of the new episode: it belongs to the previous one."""
        with self._lock:
            self.rejected = {}
            self.first = {}
            self.fault = ""
            self._since = since

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.rejected)

    def _reject(self, topic: str, reason: str, detail: str, stamp: float = math.inf) -> str:
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.first.setdefault(reason, f"{topic} ({detail})")
            current = not stamp < self._since  # NaN stamps count as current
            if reason in FAULT_REASONS and current and not self.fault:
                self.fault = f"invalid state: {reason} on {topic} ({detail})"
        return reason

    def _stamp(self, topic: str, stamp: float, now_wall: float) -> str:
        lim = self.limits
        if not math.isfinite(stamp):
            return self._reject(topic, "non_finite", "stamp")
        if stamp > now_wall + lim.stamp_tolerance:
            return self._reject(topic, "stamp_future",
                                f"stamp {stamp - now_wall:+.3f} s ahead of this clock")
        if now_wall - stamp > lim.max_stamp_age:
            return self._reject(topic, "stamp_stale", f"{now_wall - stamp:.3f} s old")
        with self._lock:
            last = self._last_stamp.get(topic, -math.inf)
        if stamp == last:
            return self._reject(topic, "stamp_repeat", "the previous sample again")
        if stamp < last:
            return self._reject(topic, "stamp_order", f"stamp {stamp - last:+.6f} s after the "
                                                      f"previous one")
        return ""

    def _accept(self, topic: str, stamp: float) -> str:
        with self._lock:
            self._last_stamp[topic] = stamp
        return ""

    def joint_state(self, topic: str, stamp: float, now_wall: float, position: np.ndarray,
                    velocity: np.ndarray | None) -> str:
        """'' if the joint state (our joints' positions (n,), velocities (n,) or None) may be
        used, else the reason it was rejected."""
        lim = self.limits
        q = np.asarray(position, dtype=float)
        v = None if velocity is None else np.asarray(velocity, dtype=float)
        if not np.all(np.isfinite(q)) or (v is not None and not np.all(np.isfinite(v))):
            return self._reject(topic, "non_finite", f"position {_short(q)}, velocity "
                                                     f"{_short(v)}", stamp)
        if np.any(q < lim.joint_lower) or np.any(q > lim.joint_upper):
            return self._reject(topic, "joint_limits", f"position {_short(q)} outside "
                                                       f"{_short(lim.joint_lower)}.."
                                                       f"{_short(lim.joint_upper)}", stamp)
        if v is not None and np.any(np.abs(v) > lim.joint_speed):
            return self._reject(topic, "joint_limits", f"velocity {_short(v)} beyond "
                                                       f"{_short(lim.joint_speed)}", stamp)
        return self._stamp(topic, stamp, now_wall) or self._accept(topic, stamp)

    def pose(self, topic: str, stamp: float, now_wall: float, position: np.ndarray,
             quaternion: np.ndarray) -> str:
        """'' if the object pose (position (3,) [m], quaternion (w, x, y, z)) may be used, else
        the reason it was rejected."""
        lim = self.limits
        p = np.asarray(position, dtype=float)
        q = np.asarray(quaternion, dtype=float)
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            return self._reject(topic, "non_finite", f"position {_short(p)}, quaternion "
                                                     f"{_short(q)}", stamp)
        norm = float(np.linalg.norm(q))
        if abs(norm - 1.0) > lim.quaternion_tolerance:
            return self._reject(topic, "quaternion", f"norm {norm:.4g}", stamp)
        xz = p[[0, 2]]
        if np.any(xz < lim.object_lower) or np.any(xz > lim.object_upper):
            return self._reject(topic, "workspace", f"(x, z) {_short(xz)} outside "
                                                    f"{_short(lim.object_lower)}.."
                                                    f"{_short(lim.object_upper)}", stamp)
        return self._stamp(topic, stamp, now_wall) or self._accept(topic, stamp)


def _short(a: np.ndarray | None) -> str:
    if a is None:
        return "-"
    return "[" + ", ".join(f"{x:.4g}" for x in np.asarray(a, dtype=float).ravel()[:6]) + "]"
