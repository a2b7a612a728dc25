"""``fingergym-virtual-robot``: the scenario's robot and task scene as a ROS 2 robot, at real time.

The same physics as sim (:func:`fingergym.sim.plant.add_world` and the robot's position
controller), behind the robot's ROS 2 interfaces: it takes commands on the forward position
controller's ``commands`` topic, publishes ``/joint_states`` (the robot's joints, from its model
file) and each tracked object's pose like a tracker, and offers a ``std_srvs/Trigger`` service
that resets the scene (the task's ``reset_scene``: the person who resets a real robot's scene).
Latency, jitter, pose noise, message drops and physical-parameter offsets model the sim-to-real
gap (``virtual_robot:`` in the hardware config, or flags). ``--mock`` instead mirrors commands
into joint states with a static scene (like ros2_control's mock_components), for tests that
need no physics.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import heapq
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from fingergym.cli import optional_path
from fingergym.hardware.config import (
    VIRTUAL_ROBOT_NODE,
    HardwareConfig,
    VirtualRobotParams,
    as_hardware_config,
    topics,
)
from fingergym.hardware.pacing import Pacer, use_realtime_priority
from fingergym.observation import planar_quaternion
from fingergym.scenario import Scenario, as_scenario


def robot_params(scenario: Scenario, vr: VirtualRobotParams):
    """Nominal episode parameters shifted by the virtual robot's sim-to-real offsets."""
    from fingergym.sim.params import nominal_params

    p = nominal_params(scenario)
    unknown = sorted(set(vr.param_scale) - set(p.task))
    if unknown:
        raise ValueError(f"virtual_robot.param_scale: unknown task parameter(s) {unknown}; "
                         f"known: {sorted(p.task)}")
    task = {k: v * vr.param_scale.get(k, 1.0) for k, v in p.task.items()}
    return dataclasses.replace(p, friction=p.friction * vr.friction_scale,
                               kp=p.kp * vr.gain_scale, kd=p.kd * math.sqrt(vr.gain_scale),
                               task=task)


def _joint_q(plant, context, joint) -> np.ndarray:
    """All positions of one joint (a planar joint: x, z, theta)."""
    start = joint.position_start()
    return np.array(plant.GetPositions(context)[start:start + joint.num_positions()])


@dataclass
class RobotState:
    """What the robot's sensors see at time ``t`` [s]: joints (JointState order) and the
    planar poses (x, z, theta) of the tracked objects."""

    t: float
    position: np.ndarray
    velocity: np.ndarray
    objects: dict[str, np.ndarray]


class Physics:
    """The sim's plant and controller; ``advance(t)`` to a sim time, ``set_target``, ``reset``."""

    def __init__(self, scenario: Scenario, vr: VirtualRobotParams, rng: np.random.Generator):
        from pydrake.systems.analysis import Simulator
        from pydrake.systems.framework import DiagramBuilder

        from fingergym.sim.plant import add_controller, add_world

        self.scenario, self.rng = scenario, rng
        self.task, self.robot = scenario.plugins()
        self.params = robot_params(scenario, vr)
        builder = DiagramBuilder()
        handles = add_world(builder, scenario, self.params)
        builder.ExportInput(add_controller(builder, scenario, self.params, handles), "command")
        self.plant = handles.plant
        self.diagram = builder.Build()
        self.simulator = Simulator(self.diagram)
        self.context = self.simulator.get_mutable_context()
        self.plant_context = self.plant.GetMyMutableContextFromRoot(self.context)
        self.command = self.diagram.GetInputPort("command")
        lim = self.robot.limits
        self.lo, self.hi = lim.lower, lim.upper
        self.joints = [self.plant.GetJointByName(j) for j in self.robot.joint_names]
        self.objects = {o: self.plant.GetJointByName(j)
                        for o, j in self.task.tracked_objects.items()}
        self.set_target(self.robot.home())
        self.simulator.Initialize()
        self.h = scenario.plant.time_step

    def set_target(self, target: np.ndarray) -> None:
        """The position controller's set point, within the joint limits."""
        self.command.FixValue(self.context, np.clip(target, self.lo, self.hi))

    def advance(self, t: float) -> None:
        if t > self.context.get_time():
            self.simulator.AdvanceTo(t)

    def state(self) -> RobotState:
        """The newest plant step's joints and object poses."""
        t = math.floor(self.context.get_time() / self.h + 1e-9) * self.h
        c = self.plant_context
        return RobotState(t, np.array([j.GetOnePosition(c) for j in self.joints]),
                          np.array([j.GetOneVelocity(c) for j in self.joints]),
                          {o: _joint_q(self.plant, c, j) for o, j in self.objects.items()})

    def reset(self) -> str:
        """Put the scene back (the task's :meth:`~fingergym.interfaces.Task.reset_scene`)."""
        return self.task.reset_scene(self.plant, self.plant_context, self.params.task, self.rng)

    def reset_to(self, poses: dict[str, list[float]]) -> str:
        """Put each tracked object at its planar pose ``[x, z, theta]``, at rest (a logged
        episode's start). The task's reset runs first, so its checks (the robot clear of the
        scene) hold; ``RuntimeError`` for an unknown object."""
        unknown = sorted(set(poses) - set(self.objects))
        if unknown:
            raise RuntimeError(f"reset_pose: unknown object(s) {unknown}; tracked: "
                               f"{sorted(self.objects)}")
        self.reset()
        q, v = self.plant.GetPositions(self.plant_context), self.plant.GetVelocities(
            self.plant_context)
        for obj, pose in poses.items():
            joint = self.objects[obj]
            q[joint.position_start():joint.position_start() + 3] = pose
            v[joint.velocity_start():joint.velocity_start() + 3] = 0.0
        self.plant.SetPositions(self.plant_context, q)
        self.plant.SetVelocities(self.plant_context, v)
        return ", ".join(f"{o} at x={p[0]:+.3f} m, z={p[1]:+.3f} m, theta={p[2]:.2f} rad"
                         for o, p in poses.items())


class MockPhysics:
    """mock_components-style: joints are wherever they were commanded; objects never move."""

    def __init__(self, scenario: Scenario, vr: VirtualRobotParams, rng: np.random.Generator):
        from pydrake.systems.framework import DiagramBuilder

        from fingergym.sim.params import nominal_params
        from fingergym.sim.plant import add_world

        self.scenario = scenario
        self.t = 0.0
        task, robot = scenario.plugins()
        builder = DiagramBuilder()
        plant = add_world(builder, scenario, nominal_params(scenario)).plant
        context = plant.CreateDefaultContext()
        self._cmd = [robot.joint_names.index(j) for j in robot.command_layout.names]
        self.position = np.array([plant.GetJointByName(j).GetOnePosition(context)
                                  for j in robot.joint_names])
        self.position[self._cmd] = robot.home()
        self.objects = {o: _joint_q(plant, context, plant.GetJointByName(j))
                        for o, j in task.tracked_objects.items()}

    def set_target(self, target: np.ndarray) -> None:
        self.position[self._cmd] = target

    def advance(self, t: float) -> None:
        self.t = t

    def state(self) -> RobotState:
        return RobotState(self.t, self.position.copy(), np.zeros_like(self.position),
                          {o: p.copy() for o, p in self.objects.items()})

    def reset(self) -> str:
        return "mock: the scene did not move"

    def reset_to(self, poses: dict[str, list[float]]) -> str:
        for obj, pose in poses.items():
            self.objects[obj] = np.asarray(pose, dtype=float)
        return f"mock: objects put at {poses}"


class VirtualRobot:
    """The ROS 2 node around :class:`Physics` (or :class:`MockPhysics`), run by :meth:`run`."""

    def __init__(self, scenario: Scenario, config: HardwareConfig, *, mock: bool = False,
                 domain_id: int | None = None, verbose: bool = True):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray
        from std_srvs.srv import Trigger

        from fingergym.hardware.ros_bridge import qos_profile

        self.scenario, self.config, self.vr = scenario, config, config.virtual_robot
        self.verbose = verbose
        self.rng = np.random.default_rng(self.vr.seed)  # noise, drops, jitter
        # scene resets draw from their own stream: the same sequence whatever the timing did
        self.physics = (MockPhysics if mock else Physics)(
            scenario, self.vr, np.random.default_rng([self.vr.seed, 1]))
        if not mock:
            self.physics.reset()
        task, robot = scenario.plugins()
        self.topics = topics(config, robot, task.observation().objects)
        self.joint_names = list(robot.joint_names)
        self.n_cmd = robot.command_layout.size
        # a real controller's limits: every command is clamped into the task's workspace
        self.workspace = tuple(np.asarray(b, dtype=float)
                               for b in robot.workspace(task.reach_region()))
        self._JointState, self._PoseStamped = JointState, PoseStamped
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        qos = config.qos
        self.node = Node(VIRTUAL_ROBOT_NODE, context=self.context)
        # The robot side publishes reliably (what ros2_control's broadcaster does); the
        # command subscription takes the configured profile.
        state_qos = dataclasses.replace(qos.joint_states, reliability="reliable")
        pose_qos = dataclasses.replace(qos.object_pose, reliability="reliable")
        self.js_pub = self.node.create_publisher(JointState, self.topics.joint_states,
                                                 qos_profile(state_qos))
        self.pose_pubs = {o: self.node.create_publisher(PoseStamped, t, qos_profile(pose_qos))
                          for o, t in self.topics.objects.items()}
        self.node.create_subscription(Float64MultiArray, self.topics.commands, self._on_command,
                                      qos_profile(dataclasses.replace(qos.commands, depth=10)))
        self.node.create_service(Trigger, self.topics.reset_service, self._on_reset)
        from rcl_interfaces.msg import ParameterDescriptor

        self.node.declare_parameter(
            "ground_truth", json.dumps(self.ground_truth()),
            ParameterDescriptor(read_only=True, description="the sim-to-real offsets (JSON)"))
        self.node.declare_parameter("reset_pose", "", ParameterDescriptor(
            description='JSON {object: [x, z, theta]}: the next reset puts the objects there'))
        self._lock = threading.Lock()     # physics
        self._wake = threading.Condition()
        self._commands: list[tuple[float, int, np.ndarray]] = []  # (apply at, seq, target)
        self._seq = 0
        self.counts = {"commands": 0, "joint_states": 0, "object_poses": 0, "dropped": 0,
                       "refused": 0, "clamped": 0}
        self.parent_pid: int | None = None  # exit when this process is no longer our parent
        self._stop = threading.Event()
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[virtual robot] {text}", flush=True)

    def _spin(self) -> None:
        try:
            while self.context.ok() and not self._stop.is_set():
                self._executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutting down
            pass

    def _delay(self, latency: float) -> float:
        return latency + (self.rng.uniform(0.0, self.vr.jitter) if self.vr.jitter > 0 else 0.0)

    def _on_command(self, msg) -> None:
        """Take a command like ros2_control's forward controller: a command of the wrong size
        or with a non-finite value is refused (counted), the rest clamped to the workspace."""
        now = time.monotonic()
        data = list(msg.data)
        if len(data) != self.n_cmd or not all(math.isfinite(v) for v in data):
            self.counts["refused"] += 1
            if self.counts["refused"] <= 3:
                self.log(f"refused a malformed command {data[:8]}")
            return
        target = np.clip(np.array(data, dtype=float), *self.workspace)
        if not np.array_equal(target, data):
            self.counts["clamped"] += 1
        with self._wake:
            self._seq += 1
            heapq.heappush(self._commands, (now + self._delay(self.vr.command_latency),
                                            self._seq, target))
            self.counts["commands"] += 1
            self._wake.notify()

    def ground_truth(self) -> dict:
        """What this robot's physics differ by from the scenario (its virtual_robot: values)."""
        return {k: v for k, v in dataclasses.asdict(self.vr).items()
                if k not in ("realtime_priority",)}

    def _on_reset(self, request, response):
        """The task's reset, or (``reset_pose`` set) the objects at the given poses; the
        parameter is cleared either way (it applies to one reset)."""
        from rclpy.parameter import Parameter

        try:
            raw = self.node.get_parameter("reset_pose").value
            self.node.set_parameters([Parameter("reset_pose", value="")])
            with self._lock:
                response.message = (self.physics.reset_to(_poses(raw)) if raw
                                    else self.physics.reset())
            response.success = True
            self.log(f"reset: {response.message}")
        except RuntimeError as e:
            response.success, response.message = False, str(e)
            self.log(f"reset refused: {e}")
        return response

    def _joint_state(self, t_wall: float, state: RobotState):
        msg = self._JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = _stamp(t_wall)
        msg.name = self.joint_names
        msg.position = [float(v) for v in state.position]
        msg.velocity = [float(v) for v in state.velocity]
        msg.effort = []
        return msg

    def _pose(self, t_wall: float, pose: np.ndarray):
        msg = self._PoseStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = _stamp(t_wall)
        msg.header.frame_id = "world"
        vr = self.vr
        n = self.rng.normal(size=3) * [vr.pose_noise_position, vr.pose_noise_position,
                                       vr.pose_noise_angle]
        msg.pose.position.x = float(pose[0] + n[0])
        msg.pose.position.y = 0.0
        msg.pose.position.z = float(pose[1] + n[1])
        w, x, y, z = planar_quaternion(float(pose[2] + n[2]))
        o = msg.pose.orientation
        o.w, o.x, o.y, o.z = w, x, y, z
        return msg

    def stop(self, *_args) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()

    def run(self, duration: float | None = None) -> int:
        """Run at real time until :meth:`stop` (or ``duration`` s); returns an exit code."""
        self._spin_thread.start()
        vr = self.vr
        self.log(use_realtime_priority(vr.realtime_priority))
        t0, wall0 = time.monotonic(), time.time()
        js_pacer = Pacer(1.0 / vr.joint_state_rate)
        pose_pacer = Pacer(1.0 / vr.object_pose_rate)
        next_js, next_pose = t0, t0
        outgoing: list[tuple[float, int, object, object]] = []  # (publish at, seq, pub, msg)
        last_due: dict[object, float] = {}     # a link delivers one topic in order
        last_sample: dict[object, float] = {}  # plant time of each topic's last message
        next_parent_check = t0
        seq = 0
        self.log(f"running: commands on {self.topics.commands}, joint states at "
                 f"{vr.joint_state_rate:g} Hz, object poses ({', '.join(self.topics.objects)}) "
                 f"at {vr.object_pose_rate:g} Hz, reset service {self.topics.reset_service}")
        end = math.inf if duration is None else t0 + duration
        h = self.scenario.plant.time_step
        while not self._stop.is_set() and self.context.ok():
            now = time.monotonic()
            if now >= end:
                break
            if self.parent_pid is not None and now >= next_parent_check:
                next_parent_check = now + 0.2
                if os.getppid() != self.parent_pid:
                    self.log(f"parent process {self.parent_pid} is gone: stopping")
                    break
            with self._wake:
                while self._commands and self._commands[0][0] <= now:
                    _, _, target = heapq.heappop(self._commands)
                    with self._lock:
                        self.physics.set_target(target)
            with self._lock:
                self.physics.advance(now - t0)
                state = self.physics.state()
            t_meas = wall0 + state.t
            due = []  # (publisher, message, latency), each may be dropped
            if now >= next_js:
                next_js = max(next_js + js_pacer.period, now)
                due.append((self.js_pub, functools.partial(self._joint_state, t_meas, state),
                            vr.joint_state_latency))
            if now >= next_pose:
                next_pose = max(next_pose + pose_pacer.period, now)
                for obj, pub in self.pose_pubs.items():
                    due.append((pub, functools.partial(self._pose, t_meas, state.objects[obj]),
                                vr.object_pose_latency))
            for pub, make, latency in due:
                if state.t <= last_sample.get(pub, -math.inf):
                    continue  # no new plant step since this topic's last message
                last_sample[pub] = state.t
                if vr.drop_rate > 0 and self.rng.uniform() < vr.drop_rate:
                    self.counts["dropped"] += 1
                    continue
                msg = make()
                seq += 1
                # jitter never reorders a topic (a link delivers it in order)
                at = last_due[pub] = max(now + self._delay(latency), last_due.get(pub, -math.inf))
                heapq.heappush(outgoing, (at, seq, pub, msg))
            while outgoing and outgoing[0][0] <= now:
                _, _, pub, msg = heapq.heappop(outgoing)
                pub.publish(msg)
                self.counts["joint_states" if pub is self.js_pub else "object_poses"] += 1
            wake = min(next_js, next_pose, end,
                       outgoing[0][0] if outgoing else math.inf,
                       t0 + (math.floor((now - t0) / h) + 1) * h)
            with self._wake:
                if self._commands:
                    wake = min(wake, self._commands[0][0])
                timeout = wake - time.monotonic()
                if timeout > 0:
                    self._wake.wait(timeout)
        self.log(f"stopped: {self.counts}")
        self.close()
        return 0

    def close(self) -> None:
        self._stop.set()
        if self.context.ok():
            self.context.try_shutdown()
        if self._spin_thread.is_alive():
            self._spin_thread.join(timeout=2.0)


def _poses(text: str) -> dict[str, list[float]]:
    """``reset_pose`` JSON -> {object: [x, z, theta]}; ``RuntimeError`` if malformed."""
    try:
        poses = json.loads(text)
        out = {str(k): [float(x) for x in v] for k, v in poses.items()}
    except (ValueError, TypeError, AttributeError) as e:
        raise RuntimeError(f"reset_pose: expected JSON {{object: [x, z, theta]}}, got "
                           f"{text[:80]!r}") from e
    if not all(len(p) == 3 and all(math.isfinite(x) for x in p) for p in out.values()):
        raise RuntimeError(f"reset_pose: every pose is 3 finite numbers, got {text[:80]!r}")
    return out


def _stamp(t: float) -> tuple[int, int]:
    sec = int(t)
    return sec, int(round((t - sec) * 1e9)) % 1_000_000_000


_FLAGS = [  # (flag, VirtualRobotParams field, help)
    ("--joint-state-rate", "joint_state_rate", "JointState rate [Hz]"),
    ("--object-pose-rate", "object_pose_rate", "object PoseStamped rate [Hz]"),
    ("--command-latency", "command_latency", "command arrival -> controller [s]"),
    ("--joint-state-latency", "joint_state_latency", "measurement -> JointState published [s]"),
    ("--object-pose-latency", "object_pose_latency", "measurement -> object pose published [s]"),
    ("--jitter", "jitter", "uniform [0, jitter] added to every latency [s]"),
    ("--pose-noise-position", "pose_noise_position", "object position noise std [m]"),
    ("--pose-noise-angle", "pose_noise_angle", "object angle noise std [rad]"),
    ("--drop-rate", "drop_rate", "probability each state message is lost"),
    ("--seed", "seed", "seed of noise, drops and scene reset poses"),
    ("--realtime-priority", "realtime_priority", "SCHED_FIFO priority of the loop (0: off)"),
    ("--friction-scale", "friction_scale", "friction relative to the scenario"),
    ("--gain-scale", "gain_scale", "controller kp relative to the scenario (kd: sqrt)"),
]


def _scale(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=FACTOR, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fingergym-virtual-robot",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog="Topics, QoS and defaults come from the hardware config (--config); flags "
               "override its virtual_robot: section. Example: fingergym-virtual-robot "
               "--object-pose-latency 0.02 --drop-rate 0.05 --friction-scale 0.8")
    p.add_argument("--config", type=optional_path, default=None,
                   help="hardware config YAML (default: the shipped configs/hardware.yaml)")
    p.add_argument("--scenario", type=optional_path, default=None,
                   help="scenario YAML (default: the shipped configs/scenario.yaml)")
    p.add_argument("--mock", action="store_true",
                   help="no physics: joint states mirror the commands, objects stay put")
    p.add_argument("--duration", type=float, default=None,
                   help="exit after this many seconds (default: run until Ctrl-C / SIGTERM)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS domain (default: $ROS_DOMAIN_ID)")
    p.add_argument("--quiet", action="store_true", help="no status lines")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process (e.g. the deploy that started us) is gone")
    g = p.add_argument_group("sim-to-real gap (default: the config's virtual_robot: values)")
    for flag, name, text in _FLAGS:
        kind = int if name in ("seed", "realtime_priority") else float
        g.add_argument(flag, dest=name, type=kind, default=None, help=text)
    g.add_argument("--param-scale", type=_scale, action="append", default=[],
                   metavar="NAME=FACTOR", help="scale one of the task's episode parameters, "
                   "e.g. box_mass=1.2 (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fingergym.scenario import ScenarioError

    try:
        scenario = as_scenario(args.scenario)
        config = as_hardware_config(args.config)
        overrides = {name: getattr(args, name) for _, name, _ in _FLAGS
                     if getattr(args, name) is not None}
        if args.param_scale:
            overrides["param_scale"] = {**config.virtual_robot.param_scale,
                                        **dict(args.param_scale)}
        if overrides:
            from fingergym.hardware.config import hardware_config_from_dict

            data = dataclasses.asdict(config)
            data.pop("source")
            data["virtual_robot"].update(overrides)
            config = hardware_config_from_dict(data, source=f"{config.source} + flags")
    except (ScenarioError, ValueError) as e:
        print(f"fingergym-virtual-robot: {e}", file=sys.stderr)
        return 2
    try:
        robot = VirtualRobot(scenario, config, mock=args.mock, domain_id=args.domain_id,
                             verbose=not args.quiet)
    except ModuleNotFoundError as e:
        from fingergym.cli import ros_hint

        if ros_hint(e) is None:
            raise
        print(f"fingergym-virtual-robot: {ros_hint(e)}", file=sys.stderr)
        return 2
    robot.parent_pid = args.parent_pid
    signal.signal(signal.SIGTERM, robot.stop)
    signal.signal(signal.SIGINT, robot.stop)
    return robot.run(args.duration)


if __name__ == "__main__":
    sys.exit(main())
