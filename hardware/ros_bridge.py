"""The rclpy side of the hardware station: one node, its executor thread, the latest state.

:class:`RosBridge` owns an rclpy context (so it never disturbs the caller's), publishes commands
(``std_msgs/Float64MultiArray`` on the forward position controller's ``commands``, one value per
command joint), subscribes to ``sensor_msgs/JointState``, one ``geometry_msgs/PoseStamped`` per
tracked object and the e-stop ``std_msgs/Bool``, and keeps the newest state with its arrival
time (monotonic) and stamp. The observation is assembled by name (the task's
:class:`~fingergym.interfaces.ObservationSpec`): joints from JointState, objects from poses.
Callbacks run in a background executor thread; :meth:`snapshot` reads a consistent copy.

``raw_hook(topic, msgtype, msg, stamp_ns)`` sees every incoming state message and every
outgoing command (for the episode recorder). Only rclpy and standard messages are imported,
so any ROS 2 distribution works.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from fingergym.hardware.config import HardwareConfig, QosSpec, Topics
from fingergym.hardware.estop import EStopLatch
from fingergym.hardware.pacing import use_realtime_priority
from fingergym.hardware.validity import StateValidator
from fingergym.observation import PoseVelocityEstimator, planar_angle, window_velocity

RawHook = Callable[[str, str, object, int], None]


class HardwareError(RuntimeError):
    """The robot did not answer as expected (no messages, homing timed out, ...)."""


class EStopEngaged(HardwareError):
    """The e-stop is engaged (homing refused)."""


class ControlConflict(HardwareError):
    """Another node publishes on our command topic (a rogue commander, another deploy)."""


class StateFault(HardwareError):
    """The robot's state is invalid (see :mod:`fingergym.hardware.validity`)."""


def _estop_profiles(spec: QosSpec) -> list[QosSpec]:
    """The configured e-stop QoS and, unless it is already that, reliable/volatile (which
    matches volatile publishers; see :mod:`fingergym.hardware.estop`)."""
    volatile = QosSpec("reliable", "volatile", spec.depth)
    return [spec] if spec == volatile else [spec, volatile]


def qos_profile(spec: QosSpec) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=spec.depth,
        reliability=(ReliabilityPolicy.RELIABLE if spec.reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE))


def _fifo_priority() -> int:
    """SCHED_FIFO priority of the calling thread (0 if it is not real-time)."""
    try:
        policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
        return os.sched_getparam(0).sched_priority if policy == os.SCHED_FIFO else 0
    except (AttributeError, OSError):
        return 0


def stamp_to_sec(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def domain_hint(domain_id: int | None = None) -> str:
    domain = os.environ.get("ROS_DOMAIN_ID", "0 (unset)") if domain_id is None else domain_id
    scope = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "unset")
    return f"ROS_DOMAIN_ID={domain}, ROS_AUTOMATIC_DISCOVERY_RANGE={scope}"


@dataclass(frozen=True)
class Snapshot:
    """The newest state, in the observation layout, and how old it is."""

    obs: np.ndarray          # (n,) NaN where nothing arrived yet
    command: np.ndarray      # (m,) measured positions of the command joints
    command_velocity: np.ndarray  # (m,)
    joint_arrival: float     # monotonic s of the newest JointState (-inf: none)
    pose_arrival: float      # monotonic s of the oldest object's newest pose (-inf: none)
    joint_latency: float     # wall now - header stamp [s] (clock sync dependent)
    pose_latency: float
    estop: bool
    taken: float             # monotonic s of this snapshot

    @property
    def joint_age(self) -> float:
        return self.taken - self.joint_arrival

    @property
    def pose_age(self) -> float:
        return self.taken - self.pose_arrival


class RosBridge:
    """A robot's ROS 2 interfaces for one task, spun in a background thread.

    Args:
        config: the hardware config (QoS, node name).
        topics: every topic name (:func:`fingergym.hardware.config.topics`).
        spec: the task's observation (:class:`~fingergym.interfaces.ObservationSpec`).
        joints: the robot's JointState names; ``command_joints``: its command joints (order).
        velocity_window: seconds of poses (and of joint positions without velocities) fitted.
    """

    def __init__(self, config: HardwareConfig, topics: Topics, spec, joints: tuple[str, ...],
                 command_joints: tuple[str, ...], velocity_window: float, *,
                 domain_id: int | None = None, node_name: str | None = None,
                 validity: StateValidator | None = None):
        self.config = config
        self.topics = topics
        self.domain_id = domain_id
        self.raw_hook: RawHook | None = None
        self.validity = validity  # checks every state message first (None: accept all)
        self.estop = EStopLatch()
        self.estop_messages = 0
        self.abort = ""  # set by a supervisor (e.g. "the virtual robot exited"): waits give up
        self.last_foreign_joint_names: list[str] = []
        self._lock = threading.Lock()
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        qos = config.qos
        self.node = Node(node_name or config.ros.node_name, context=self.context)
        self._cmd_pub = self.node.create_publisher(Float64MultiArray, topics.commands,
                                                   qos_profile(qos.commands))
        self._js_sub = self.node.create_subscription(JointState, topics.joint_states,
                                                     self._on_joint_state,
                                                     qos_profile(qos.joint_states))
        self._pose_subs = {
            obj: self.node.create_subscription(
                PoseStamped, topic, lambda msg, obj=obj: self._on_pose(obj, msg),
                qos_profile(qos.object_pose))
            for obj, topic in topics.objects.items()}
        self._estop_subs = [self.node.create_subscription(Bool, topics.estop, self._on_estop,
                                                          qos_profile(q))
                            for q in _estop_profiles(qos.estop)]
        self._reset_client = None
        self._names = list(joints)
        self._window = float(velocity_window)
        self._q = np.full(len(joints), np.nan)
        self._v = np.full(len(joints), np.nan)
        self._joint_hist: list[np.ndarray] = []  # [stamp, q...] when JointState has no v
        self._joint_arrival = -np.inf
        self._joint_stamp = np.nan
        self._objects = {o: PoseVelocityEstimator(velocity_window) for o in topics.objects}
        self._pose_arrival = {o: -np.inf for o in topics.objects}
        self._pose_stamp = {o: np.nan for o in topics.objects}
        self._estop = False
        self.counts = {"joint_states": 0, "object_poses": 0, "commands": 0,
                       "bad_joint_states": 0}
        # the observation, assembled by name: (kind, joint index or object, axis) per element
        index = {n: i for i, n in enumerate(self._names)}
        missing = [s.name for s in spec.sources.values()
                   if s.kind.startswith("joint") and s.name not in index]
        if missing:
            raise ValueError(f"the observation reads joints {missing} the robot does not "
                             f"report (JointState names: {self._names})")
        self._plan = [(s.kind, index.get(s.name, s.name), s.axis) for s in spec.sources.values()]
        self._cmd_idx = np.array([index[n] for n in command_joints], dtype=int)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        # A real-time caller (see pacing.use_realtime_priority) gets its callbacks served one
        # priority below it: a preempted callback thread holding the lock or the GIL would
        # otherwise stall the control thread.
        self._priority = _fifo_priority()
        self._thread = threading.Thread(target=self._spin, name="ros-bridge", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ executor thread
    def _spin(self) -> None:
        if self._priority > 1:
            use_realtime_priority(self._priority - 1)
        try:
            while self.context.ok():
                self._executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass
        except Exception:  # noqa: BLE001 - a dying bridge must not take the process down
            if self.context.ok():
                raise

    def _raw(self, topic: str, msgtype: str, msg: object) -> None:
        hook = self.raw_hook
        if hook is not None:
            hook(topic, msgtype, msg, time.time_ns())

    def _on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        try:
            names = list(msg.name)
            idx = [names.index(n) for n in self._names]
            q = np.array([msg.position[i] for i in idx], dtype=float)
        except (ValueError, IndexError):
            self.counts["bad_joint_states"] += 1
            self.last_foreign_joint_names = list(msg.name)[:8]
            return
        stamp = stamp_to_sec(msg.header.stamp)
        has_v = len(msg.velocity) == len(msg.name)
        if self.validity is not None and self.validity.joint_state(
                self.topics.joint_states, stamp, time.time(), q,
                np.array([msg.velocity[i] for i in idx], dtype=float) if has_v else None):
            self._raw(self.topics.joint_states, "sensor_msgs/msg/JointState", msg)
            return  # rejected (counted): the state and its arrival time stay as they were
        with self._lock:
            if has_v:
                v = np.array([msg.velocity[i] for i in idx], dtype=float)
            else:  # no velocities: difference positions over the velocity window
                self._joint_hist = [h for h in self._joint_hist
                                    if stamp - h[0] <= self._window][-8:]
                self._joint_hist.append(np.r_[stamp, q])
                h = np.array(self._joint_hist)
                v = window_velocity(h[:, 0], h[:, 1:])
            self._q, self._v = q, v
            self._joint_arrival, self._joint_stamp = now, stamp
            self.counts["joint_states"] += 1
        self._raw(self.topics.joint_states, "sensor_msgs/msg/JointState", msg)

    def _on_pose(self, obj: str, msg: PoseStamped) -> None:
        now = time.monotonic()
        p, o = msg.pose.position, msg.pose.orientation
        stamp = stamp_to_sec(msg.header.stamp)
        if self.validity is not None and self.validity.pose(
                self.topics.objects[obj], stamp, time.time(), np.array([p.x, p.y, p.z]),
                np.array([o.w, o.x, o.y, o.z])):
            self._raw(self.topics.objects[obj], "geometry_msgs/msg/PoseStamped", msg)
            return  # rejected (counted)
        with self._lock:
            self._objects[obj].add(stamp, p.x, p.z, planar_angle(o.w, o.x, o.y, o.z))
            self._pose_arrival[obj], self._pose_stamp[obj] = now, stamp
            self.counts["object_poses"] += 1
        self._raw(self.topics.objects[obj], "geometry_msgs/msg/PoseStamped", msg)

    def _on_estop(self, msg: Bool) -> None:
        self.estop_messages += 1
        self.estop.update(bool(msg.data))
        with self._lock:
            self._estop = self.estop.engaged
        self._raw(self.topics.estop, "std_msgs/msg/Bool", msg)

    # ------------------------------------------------------------------ caller side
    def snapshot(self) -> Snapshot:
        with self._lock:
            poses = {o: e.pose() for o, e in self._objects.items()}
            vels = {o: e.velocity() for o, e in self._objects.items()}
            obs = np.empty(len(self._plan))
            for i, (kind, key, axis) in enumerate(self._plan):
                if kind == "joint_position":
                    obs[i] = self._q[key]
                elif kind == "joint_velocity":
                    obs[i] = self._v[key]
                elif kind == "object_pose":
                    obs[i] = poses[key][axis]
                else:
                    obs[i] = vels[key][axis]
            # the oldest object's pose decides (no tracked object: always fresh)
            oldest = min(self._pose_arrival, key=self._pose_arrival.get, default=None)
            wall, now = time.time(), time.monotonic()
            pose_arrival = np.inf if oldest is None else self._pose_arrival[oldest]
            pose_stamp = np.nan if oldest is None else self._pose_stamp[oldest]
            return Snapshot(obs, self._q[self._cmd_idx].copy(), self._v[self._cmd_idx].copy(),
                            self._joint_arrival, pose_arrival, wall - self._joint_stamp,
                            wall - pose_stamp, self._estop, now)

    def reset_pose_estimators(self) -> None:
        """Forget past object poses (the scene was reset); the next pose re-anchors theta."""
        with self._lock:
            for e in self._objects.values():
                e.reset()

    @property
    def pose_count(self) -> int:
        """Poses since the last reset, of the object with the fewest (no object: a large number)."""
        with self._lock:
            return min((e.count for e in self._objects.values()), default=1 << 30)

    def publish_command(self, target: np.ndarray) -> None:
        """Publish one command (already through the safety layer)."""
        msg = Float64MultiArray()
        msg.data = [float(v) for v in target]
        self._cmd_pub.publish(msg)
        self.counts["commands"] += 1
        self._raw(self.topics.commands, "std_msgs/msg/Float64MultiArray", msg)

    def matched(self) -> dict[str, bool]:
        return {
            self.topics.commands: self._cmd_pub.get_subscription_count() > 0,
            self.topics.joint_states: self._js_sub.get_publisher_count() > 0,
            **{self.topics.objects[o]: sub.get_publisher_count() > 0
               for o, sub in self._pose_subs.items()},
        }

    def other_commanders(self) -> list[str]:
        """Other nodes publishing on our command topic (``ns/name``); a second node with our
        own name (another deploy) is listed too."""
        ours = self.node.get_namespace().rstrip("/") + "/" + self.node.get_name()
        names = [i.node_namespace.rstrip("/") + "/" + i.node_name
                 if "_UNKNOWN_" not in i.node_name else "an unidentified node"
                 for i in self.node.get_publishers_info_by_topic(self.topics.commands)]
        others = [n for n in names if n != ours]
        if names.count(ours) > 1:
            others.append(f"{ours} (a second node of our name: another deploy?)")
        return others

    def wait_for_estop(self, required_within: float, latch_wait: float) -> None:
        """Before the first command: if an e-stop publisher with our (transient_local) QoS is
        matched, give its latched value up to ``latch_wait`` s to arrive (it is sent right after
        matching), so a ``true`` published before we started is seen. ``required_within > 0``:
        wait that long for such a publisher, and raise :class:`HardwareError` without one."""
        deadline = time.monotonic() + required_within
        while not self._estop_subs[0].get_publisher_count():
            if time.monotonic() >= deadline:
                if required_within > 0:
                    raise HardwareError(f"no e-stop publisher on {self.topics.estop} within "
                                        f"{required_within:.1f} s (ros.estop_timeout): refusing "
                                        f"to command the robot without one "
                                        f"({domain_hint(self.domain_id)})")
                return
            self.check_abort()
            time.sleep(0.01)
        deadline = time.monotonic() + latch_wait
        while self.estop_messages == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def check_abort(self) -> None:
        """Raise :class:`HardwareError` if a supervisor set :attr:`abort`."""
        if self.abort:
            raise HardwareError(self.abort)

    def wait_for_matching(self, timeout: float) -> None:
        """Block until the command topic has a subscriber and the state topics publishers.

        Fast DDS drops what is published before discovery matches the endpoints.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_abort()
            matched = self.matched()
            if all(matched.values()):
                return
            if time.monotonic() > deadline:
                missing = [t for t, ok in matched.items() if not ok]
                raise HardwareError(
                    f"set_home: no ROS 2 peer on {', '.join(missing)} after {timeout:.1f} s: "
                    f"is the robot "
                    f"driver (or `fingergym-virtual-robot`) running on the same domain? "
                    f"({domain_hint(self.domain_id)})")
            time.sleep(0.02)

    def call_reset(self, timeout: float = 5.0) -> str:
        """Call the scene reset service (std_srvs/Trigger); returns its message or raises."""
        service = self.topics.reset_service
        if self._reset_client is None:
            self._reset_client = self.node.create_client(Trigger, service)
        if not self._reset_client.wait_for_service(timeout_sec=timeout):
            raise HardwareError(f"service {service} not available "
                                f"after {timeout:.1f} s ({domain_hint(self.domain_id)})")
        future = self._reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise HardwareError(f"{service}: no answer in {timeout:.1f} s")
            time.sleep(0.01)
        response = future.result()
        if not response.success:
            raise HardwareError(f"{service} failed: {response.message}")
        return response.message

    def _parameter_client(self, node: str, timeout: float):
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(self.node, node)
        deadline = time.monotonic() + timeout
        while not client.wait_for_services(timeout_sec=0.1):
            self.check_abort()  # e.g. the virtual robot exited: say that, not a timeout
            if time.monotonic() > deadline:
                raise HardwareError(f"node {node}: parameter services not available after "
                                    f"{timeout:.1f} s ({domain_hint(self.domain_id)})")
        return client

    def _request(self, send, what: str, timeout: float, attempt: float = 1.0):
        """``send()`` -> future, re-sent every ``attempt`` s until answered (an idempotent
        request only). Upstream (ros2/ros2#1253, rmw_fastrtps): a service drops its response
        when the client's response reader is not matched yet ("failed to send response
        (timeout): client will not receive response"), so a client's first call after
        creation can go unanswered however long it waits."""
        deadline = time.monotonic() + timeout
        while True:
            future = send()
            resend = min(time.monotonic() + attempt, deadline)
            while not future.done():
                self.check_abort()
                if time.monotonic() > deadline:
                    raise HardwareError(f"{what}: no answer in {timeout:.1f} s")
                if time.monotonic() > resend:
                    break
                time.sleep(0.01)
            if future.done():
                return future.result()

    def get_remote_parameters(self, node: str, names: list[str],
                              timeout: float = 10.0) -> dict[str, object]:
        """Another node's parameters by name (rcl_interfaces/GetParameters); unset ones are
        ``None``."""
        from rclpy.parameter import parameter_value_to_python

        client = self._parameter_client(node, timeout)
        result = self._request(lambda: client.get_parameters(names), f"{node}/get_parameters",
                               timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, result.values,
                                                                 strict=True)}

    def set_remote_parameters(self, node: str, values: dict[str, object],
                              timeout: float = 10.0) -> None:
        """Set another node's parameters (rcl_interfaces/SetParameters); raises if refused."""
        from rclpy.parameter import Parameter

        client = self._parameter_client(node, timeout)
        params = [Parameter(k, value=v) for k, v in values.items()]
        result = self._request(lambda: client.set_parameters(params), f"{node}/set_parameters",
                               timeout)
        refused = [f"{k}: {r.reason}" for k, r in zip(values, result.results, strict=True)
                   if not r.successful]
        if refused:
            raise HardwareError(f"{node} refused parameter(s): {'; '.join(refused)}")

    def close(self) -> None:
        if self.context.ok():
            self.context.try_shutdown()
        self._thread.join(timeout=2.0)
        try:
            self._executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass

