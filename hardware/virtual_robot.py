"""``fingergym-virtual-robot``: the Drake finger and box as a ROS 2 robot, at real time.

The same physics as sim (:func:`fingergym.sim.plant.add_box_flipup_plant` and its position
controller), behind the robot's ROS 2 interfaces: it takes finger targets on the forward
position controller's ``commands`` topic, publishes ``/joint_states`` and the box pose like a
tracker, and offers a ``std_srvs/Trigger`` service that puts the box back flat in the bin (the
person who resets the scene on a real robot). Latency, jitter, pose noise, message drops and
physical-parameter offsets model the sim-to-real gap (``virtual_robot:`` in the hardware config,
or flags). ``--mock`` instead mirrors commands into joint states with a static box (like
ros2_control's mock_components), for tests that need no physics.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from fingergym.cli import optional_path
from fingergym.hardware.config import HardwareConfig, VirtualRobotParams, as_hardware_config
from fingergym.hardware.pacing import Pacer, use_realtime_priority
from fingergym.observation import planar_quaternion
from fingergym.scenario import Scenario, as_scenario, workspace_bounds


def robot_params(scenario: Scenario, vr: VirtualRobotParams, box_x: float | None = None,
                 box_theta: float = 0.0):
    """Nominal episode parameters shifted by the virtual robot's sim-to-real offsets."""
    from fingergym.sim.params import nominal_params

    p = nominal_params(scenario, box_x=box_x, box_theta=box_theta)
    return dataclasses.replace(
        p, box_mass=p.box_mass * vr.box_mass_scale, friction=p.friction * vr.friction_scale,
        kp=p.kp * vr.gain_scale, kd=p.kd * math.sqrt(vr.gain_scale),
        box_length=p.box_length * vr.box_size_scale,
        box_thickness=p.box_thickness * vr.box_size_scale)


class Physics:
    """The Drake plant + controller; ``advance(t)`` to a sim time, ``set_target``, ``reset_box``."""

    def __init__(self, scenario: Scenario, vr: VirtualRobotParams, rng: np.random.Generator):
        from pydrake.systems.analysis import Simulator
        from pydrake.systems.framework import DiagramBuilder

        from fingergym.sim.plant import add_box_flipup_plant, add_finger_controller

        self.scenario, self.rng = scenario, rng
        self.params = robot_params(scenario, vr)
        builder = DiagramBuilder()
        handles = add_box_flipup_plant(builder, scenario, self.params)
        controller = add_finger_controller(builder, scenario, self.params, handles)
        builder.ExportInput(controller.get_input_port_desired_state(), "desired_state")
        self.plant, self.handles = handles.plant, handles
        self.diagram = builder.Build()
        self.simulator = Simulator(self.diagram)
        self.context = self.simulator.get_mutable_context()
        self.plant_context = self.plant.GetMyMutableContextFromRoot(self.context)
        self.desired = self.diagram.GetInputPort("desired_state")
        self.set_target(np.asarray(scenario.finger.home, dtype=float))
        self.simulator.Initialize()
        self.h = scenario.plant.time_step

    def set_target(self, target: np.ndarray) -> None:
        """The position controller's set point [m] (already clamped to the workspace)."""
        self.desired.FixValue(self.context, np.r_[target, 0.0, 0.0])

    def advance(self, t: float) -> None:
        if t > self.context.get_time():
            self.simulator.AdvanceTo(t)

    def state(self) -> tuple[float, np.ndarray]:
        """(time of the newest plant step [s], state (10,) in the observation layout)."""
        x = self.plant.GetPositionsAndVelocities(self.plant_context)
        t = math.floor(self.context.get_time() / self.h + 1e-9) * self.h
        return t, self.handles.state_permutation @ x

    def reset_box(self) -> str:
        """Put the box flat at a random x (the scenario's range) if the finger is clear."""
        s, p = self.scenario, self.params
        _, state = self.state()
        fx, fz = state[3:5]
        top = s.bin.floor_z + p.box_thickness + s.finger.radius + 0.01
        if fz < top:
            raise RuntimeError(f"finger at z={fz:.3f} m is too low to put the box back "
                               f"(needs z > {top:.3f}); home it first")
        r = s.randomization
        x = float(self.rng.uniform(*r.box_x))
        theta = math.pi if self.rng.uniform() < r.flip_probability else 0.0
        box = self.plant.GetModelInstanceByName("box")
        self.plant.SetPositions(self.plant_context, box,
                                [x, s.bin.floor_z + 0.5 * p.box_thickness, theta])
        self.plant.SetVelocities(self.plant_context, box, np.zeros(3))
        return f"box at x={x:+.3f} m, theta={theta:.2f} rad"


class MockPhysics:
    """mock_components-style: the finger is wherever it was commanded; the box never moves."""

    def __init__(self, scenario: Scenario, vr: VirtualRobotParams, rng: np.random.Generator):
        self.scenario = scenario
        self.t = 0.0
        c = 0.5 * (scenario.randomization.box_x[0] + scenario.randomization.box_x[1])
        self.x = np.zeros(10)
        self.x[0:2] = [c, scenario.bin.floor_z + 0.5 * scenario.box.thickness]
        self.x[3:5] = scenario.finger.home

    def set_target(self, target: np.ndarray) -> None:
        self.x[3:5] = target

    def advance(self, t: float) -> None:
        self.t = t

    def state(self) -> tuple[float, np.ndarray]:
        return self.t, self.x.copy()

    def reset_box(self) -> str:
        return "mock: the box did not move"


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
        # box starts from their own stream: the same sequence whatever the timing did
        self.physics = (MockPhysics if mock else Physics)(
            scenario, self.vr, np.random.default_rng([self.vr.seed, 1]))
        if not mock:
            self.physics.reset_box()
        self._JointState, self._PoseStamped = JointState, PoseStamped
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        ros, qos = config.ros, config.qos
        self.node = Node("fingergym_virtual_robot", context=self.context)
        # The robot side publishes reliably (what ros2_control's broadcaster does); the
        # command subscription takes the configured profile.
        state_qos = dataclasses.replace(qos.joint_states, reliability="reliable")
        pose_qos = dataclasses.replace(qos.box_pose, reliability="reliable")
        self.js_pub = self.node.create_publisher(JointState, ros.joint_states_topic,
                                                 qos_profile(state_qos))
        self.pose_pub = self.node.create_publisher(PoseStamped, ros.box_pose_topic,
                                                   qos_profile(pose_qos))
        self.node.create_subscription(Float64MultiArray, ros.commands_topic, self._on_command,
                                      qos_profile(dataclasses.replace(qos.commands, depth=10)))
        self.node.create_service(Trigger, ros.reset_box_service, self._on_reset)
        self._lock = threading.Lock()     # physics
        self._wake = threading.Condition()
        self._commands: list[tuple[float, int, np.ndarray]] = []  # (apply at, seq, target)
        self._seq = 0
        # a real controller's limits: every command is clamped into the scenario's workspace
        lo, hi = workspace_bounds(scenario)
        self.workspace = (np.array(lo), np.array(hi))
        self.counts = {"commands": 0, "joint_states": 0, "box_poses": 0, "dropped": 0,
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
        if len(data) != 2 or not all(math.isfinite(v) for v in data):
            self.counts["refused"] += 1
            if self.counts["refused"] <= 3:
                self.log(f"refused a malformed command {data[:4]}")
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

    def _on_reset(self, request, response):
        try:
            with self._lock:
                response.message = self.physics.reset_box()
            response.success = True
            self.log(f"reset: {response.message}")
        except RuntimeError as e:
            response.success, response.message = False, str(e)
            self.log(f"reset refused: {e}")
        return response

    def _joint_state(self, t_wall: float, state: np.ndarray):
        msg = self._JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = _stamp(t_wall)
        msg.name = list(self.config.ros.joint_names)
        msg.position = [float(state[3]), float(state[4])]
        msg.velocity = [float(state[8]), float(state[9])]
        msg.effort = []
        return msg

    def _box_pose(self, t_wall: float, state: np.ndarray):
        msg = self._PoseStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = _stamp(t_wall)
        msg.header.frame_id = "world"
        vr = self.vr
        n = self.rng.normal(size=3) * [vr.pose_noise_position, vr.pose_noise_position,
                                       vr.pose_noise_angle]
        msg.pose.position.x = float(state[0] + n[0])
        msg.pose.position.y = 0.0
        msg.pose.position.z = float(state[1] + n[1])
        w, x, y, z = planar_quaternion(float(state[2] + n[2]))
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
        js_pacer, pose_pacer = Pacer(1.0 / vr.joint_state_rate), Pacer(1.0 / vr.box_pose_rate)
        next_js, next_pose = t0, t0
        outgoing: list[tuple[float, int, object, object]] = []  # (publish at, seq, pub, msg)
        last_due = {"js": -math.inf, "pose": -math.inf}
        last_sample = {"js": -math.inf, "pose": -math.inf}  # plant time of the last message
        seq = 0
        self.log(f"running: commands on {self.config.ros.commands_topic}, joint states at "
                 f"{vr.joint_state_rate:g} Hz, box pose at {vr.box_pose_rate:g} Hz, reset "
                 f"service {self.config.ros.reset_box_service}")
        end = math.inf if duration is None else t0 + duration
        h = self.scenario.plant.time_step
        next_parent_check = t0
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
                t_state, state = self.physics.state()
            for kind, due, pacer, latency in (("js", next_js, js_pacer, vr.joint_state_latency),
                                              ("pose", next_pose, pose_pacer,
                                               vr.box_pose_latency)):
                if now < due:
                    continue
                if kind == "js":
                    next_js = max(due + pacer.period, now)
                else:
                    next_pose = max(due + pacer.period, now)
                if vr.drop_rate > 0 and self.rng.uniform() < vr.drop_rate:
                    self.counts["dropped"] += 1
                    continue
                if t_state <= last_sample[kind]:
                    continue  # no new plant step since the last message: nothing to send
                last_sample[kind] = t_state
                t_meas = wall0 + t_state
                msg = (self._joint_state(t_meas, state) if kind == "js"
                       else self._box_pose(t_meas, state))
                seq += 1
                # a link delivers one topic in order: jitter never reorders a stream
                due_at = last_due[kind] = max(now + self._delay(latency), last_due[kind])
                heapq.heappush(outgoing, (due_at, seq,
                                          self.js_pub if kind == "js" else self.pose_pub, msg))
            while outgoing and outgoing[0][0] <= now:
                _, _, pub, msg = heapq.heappop(outgoing)
                pub.publish(msg)
                self.counts["joint_states" if pub is self.js_pub else "box_poses"] += 1
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


def _stamp(t: float) -> tuple[int, int]:
    sec = int(t)
    return sec, int(round((t - sec) * 1e9)) % 1_000_000_000


_FLAGS = [  # (flag, VirtualRobotParams field, help)
    ("--joint-state-rate", "joint_state_rate", "JointState rate [Hz]"),
    ("--box-pose-rate", "box_pose_rate", "box PoseStamped rate [Hz]"),
    ("--command-latency", "command_latency", "command arrival -> controller [s]"),
    ("--joint-state-latency", "joint_state_latency", "measurement -> JointState published [s]"),
    ("--box-pose-latency", "box_pose_latency", "measurement -> box pose published [s]"),
    ("--jitter", "jitter", "uniform [0, jitter] added to every latency [s]"),
    ("--pose-noise-position", "pose_noise_position", "box position noise std [m]"),
    ("--pose-noise-angle", "pose_noise_angle", "box angle noise std [rad]"),
    ("--drop-rate", "drop_rate", "probability each state message is lost"),
    ("--seed", "seed", "seed of noise, drops and box reset poses"),
    ("--realtime-priority", "realtime_priority", "SCHED_FIFO priority of the loop (0: off)"),
    ("--box-mass-scale", "box_mass_scale", "box mass relative to the scenario"),
    ("--friction-scale", "friction_scale", "friction relative to the scenario"),
    ("--gain-scale", "gain_scale", "controller kp relative to the scenario (kd: sqrt)"),
    ("--box-size-scale", "box_size_scale", "box length and thickness relative to the scenario"),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fingergym-virtual-robot",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog="Topics, QoS and defaults come from the hardware config (--config); flags "
               "override its virtual_robot: section. Example: fingergym-virtual-robot "
               "--box-pose-latency 0.02 --drop-rate 0.05 --friction-scale 0.8")
    p.add_argument("--config", type=optional_path, default=None,
                   help="hardware config YAML (default: the shipped configs/hardware.yaml)")
    p.add_argument("--scenario", type=optional_path, default=None,
                   help="scenario YAML (default: the shipped configs/scenario.yaml)")
    p.add_argument("--mock", action="store_true",
                   help="no physics: joint states mirror the commands, the box stays put")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fingergym.scenario import ScenarioError

    try:
        scenario = as_scenario(args.scenario)
        config = as_hardware_config(args.config)
        overrides = {name: getattr(args, name) for _, name, _ in _FLAGS
                     if getattr(args, name) is not None}
        if overrides:
            from fingergym.hardware.config import hardware_config_from_dict
            from fingergym.scenario import to_dict

            data = to_dict(config)
            data["virtual_robot"].update(overrides)
            config = hardware_config_from_dict(data, source=f"{config.source} + flags")
    except ScenarioError as e:
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
