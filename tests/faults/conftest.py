"""Fault injection against the virtual robot: real processes, real rclpy publishers.

Each test runs ``fingergym deploy`` (and usually ``fingergym-virtual-robot --mock``) in its own
ROS domain (``FINGERGYM_ROS_DOMAINS``, loopback only), injects faults from this process with a
:class:`Bus` node, and asserts on what happened — what reached the command topic, what deploy's
summary and exit code say, what the bag says — never on tight timings. Every process started is
killed on the way out (:class:`fingergym.hardware.testing.Processes`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from fingergym.hardware.config import load_hardware_config  # noqa: E402
from fingergym.hardware.testing import LineReader, Processes, unique_domain_id  # noqa: E402

DEPLOY = [sys.executable, "-m", "fingergym.cli", "deploy"]
TIME_LIMIT = 1.5  # s per episode: enough steps to inject into, short enough to be cheap


@pytest.fixture
def domain(request) -> int:
    return unique_domain_id(request.node.nodeid)


@pytest.fixture
def procs(domain):
    with Processes(domain) as p:
        yield p


@pytest.fixture
def files(tmp_path):
    """Scenario and hardware config files for a short, patient (loaded machine) run."""
    return Files(tmp_path)


class Files:
    def __init__(self, root: Path):
        self.root = root
        self.scenario = root / "scenario.yaml"
        self.scenario.write_text(yaml.safe_dump({"episode": {"time_limit": TIME_LIMIT}}))
        self.logs = root / "logs"

    def config(self, name: str = "hardware.yaml", **sections) -> Path:
        # Patient timeouts: these tests are about faults, not timing, and must hold on a loaded
        # machine (a 0.1 s watchdog can trip there; the killed-robot tests exercise the watchdog).
        data = {"ros": {"discovery_timeout": 60.0}, "home": {"timeout": 20.0},
                "safety": {"watchdog_age": 1.0},
                "command": {"realtime_priority": 0}, "virtual_robot": {"realtime_priority": 0}}
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        path = self.root / name
        path.write_text(yaml.safe_dump(data))
        return path


class Bus:
    """The test's own rclpy node: records the command topic (with each message's publisher),
    and publishes joint states, box poses, the e-stop and (from a node named ``rogue``)
    commands."""

    def __init__(self, domain: int):
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray

        from fingergym.hardware.config import topics
        from fingergym.scenario import load_scenario

        self.msg = {"js": JointState, "pose": PoseStamped, "bool": Bool,
                    "array": Float64MultiArray}
        task, robot = load_scenario().plugins()
        self.joint_names = list(robot.joint_names)
        t = self.topics = topics(load_hardware_config(), robot, task.observation().objects)
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("fault_injector", context=self.context)
        self.commands: list[tuple[float, list[float], bytes]] = []
        self._lock = threading.Lock()
        self.node.create_subscription(Float64MultiArray, t.commands, self._on_command, 100)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.js_pub = self.node.create_publisher(JointState, t.joint_states, reliable)
        self.pose_pub = self.node.create_publisher(PoseStamped, t.objects["box"], reliable)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.estop_pub = self.node.create_publisher(Bool, t.estop, latched)
        self.rogue = rclpy.create_node("rogue", context=self.context)
        self.rogue_pub = None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.rogue)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown
                return

    def _on_command(self, msg, info) -> None:
        gid = bytes(info["publisher_gid"]["data"]) if info.get("publisher_gid") else b""
        with self._lock:
            self.commands.append((time.monotonic(), list(msg.data), gid))

    def command_log(self, exclude_rogue: bool = True) -> np.ndarray:
        """(N, 2) commands seen so far (without the rogue's)."""
        rogue = self.rogue_gids() if exclude_rogue else set()
        with self._lock:
            rows = [d for _, d, g in self.commands if g not in rogue]
        return np.array(rows, dtype=float).reshape(-1, 2) if rows else np.zeros((0, 2))

    def raw_commands(self) -> list[list[float]]:
        """Everything seen on the command topic, anyone's, any size."""
        with self._lock:
            return [d for _, d, _ in self.commands]

    def rogue_gids(self) -> set[bytes]:
        infos = self.node.get_publishers_info_by_topic(self.topics.commands)
        return {bytes(i.endpoint_gid) for i in infos if i.node_name == "rogue"}

    # ------------------------------------------------------------------ injection
    def _stamp(self, msg, stamp: float | None) -> None:
        t = time.time() if stamp is None else stamp
        msg.header.stamp.sec = int(t // 1)
        msg.header.stamp.nanosec = int(round((t % 1) * 1e9)) % 1_000_000_000

    def wait_subscribed(self, pub, n: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while pub.get_subscription_count() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody subscribed to {pub.topic_name}")
            time.sleep(0.01)

    def _burst(self, pub, make, repeat: int) -> None:
        """Publish ``repeat`` messages 5 ms apart."""
        self.wait_subscribed(pub)
        for i in range(repeat):
            pub.publish(make())
            if i + 1 < repeat:
                time.sleep(0.005)

    def joint_state(self, position, velocity=(0.0, 0.0), stamp: float | None = None,
                    repeat: int = 1) -> None:
        def make():
            msg = self.msg["js"]()
            self._stamp(msg, stamp)
            msg.name = list(self.joint_names)
            msg.position = [float(v) for v in position]
            msg.velocity = [float(v) for v in velocity]
            return msg

        self._burst(self.js_pub, make, repeat)

    def pose(self, x: float, z: float, quaternion=(1.0, 0.0, 0.0, 0.0),
             stamp: float | None = None, repeat: int = 1) -> None:
        def make():
            msg = self.msg["pose"]()
            self._stamp(msg, stamp)
            msg.header.frame_id = "world"
            msg.pose.position.x, msg.pose.position.z = float(x), float(z)
            o = msg.pose.orientation
            o.w, o.x, o.y, o.z = (float(v) for v in quaternion)
            return msg

        self._burst(self.pose_pub, make, repeat)

    def relay_poses(self, source: str, stamp_of) -> None:
        """Republish the poses of ``source`` on the box pose topic, stamped ``stamp_of(stamp)``
        (a tracker whose clock misbehaves)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        def relay(msg) -> None:
            self._stamp(msg, stamp_of(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec))
            self.pose_pub.publish(msg)

        self.node.create_subscription(self.msg["pose"], source, relay, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def relay_joint_states(self, source: str, names: list[str]) -> None:
        """Republish the joint states of ``source`` with other joint names (a robot whose
        driver names its joints differently)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        def relay(msg) -> None:
            msg.name = list(names)
            self.js_pub.publish(msg)

        self.node.create_subscription(self.msg["js"], source, relay, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def estop(self, engaged: bool) -> None:
        self.estop_pub.publish(self.msg["bool"](data=engaged))

    def rogue_command(self, data) -> None:
        if self.rogue_pub is None:
            self.rogue_pub = self.rogue.create_publisher(self.msg["array"], self.topics.commands,
                                                         10)
        self.wait_subscribed(self.rogue_pub, n=2)  # our spy and the robot
        self.rogue_pub.publish(self.msg["array"](data=[float(v) for v in data]))

    def close(self) -> None:
        self.context.try_shutdown()
        self.thread.join(2.0)


@pytest.fixture
def bus(domain):
    b = Bus(domain)
    yield b
    b.close()


class Run:
    """A started ``fingergym deploy`` with its stdout (JSON lines) and stderr collected."""

    def __init__(self, proc: subprocess.Popen, requested: int):
        self.proc = proc
        self.requested = requested
        self.out = LineReader(proc.stdout)
        self.err = LineReader(proc.stderr)

    def wait(self, timeout: float = 120.0) -> int:
        code = self.proc.wait(timeout)
        self.out._thread.join(5.0)
        self.err._thread.join(5.0)
        return code

    def lines(self) -> list[dict]:
        return [json.loads(ln) for ln in self.out.text().splitlines() if ln.startswith("{")]

    def inject_until_ended(self, episode: int, inject, timeout: float = 60.0) -> None:
        """Call ``inject()`` every 20 ms from the start of episode ``episode`` (1-based) until
        deploy reports its end: state topics are best effort, and a loaded subscriber may drop
        a few samples; a fault needs one to arrive."""
        self.err.wait_for(f"episode {episode}/{self.requested}: started", timeout=120)
        end = f"episode {episode}/{self.requested}: success="
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(ln.startswith(end) for ln in list(self.err.lines)):
                return
            if self.proc.poll() is not None:
                # After the last episode deploy exits at once; its end line may still be in
                # the reader thread (a loaded machine) while we inject into nobody.
                self.err._thread.join(5.0)
                if any(ln.startswith(end) for ln in list(self.err.lines)):
                    return
                raise RuntimeError(f"deploy exited ({self.proc.returncode}) before episode "
                                   f"{episode} ended: {self.err.text()[-2000:]}")
            try:
                inject()
            except TimeoutError:  # nobody subscribed: fine only if deploy has exited
                if self.proc.poll() is None:
                    raise
            time.sleep(0.02)
        raise TimeoutError(f"episode {episode} did not end within {timeout} s")

    @property
    def episodes(self) -> list[dict]:
        return [ln for ln in self.lines() if "summary" not in ln]

    @property
    def summary(self) -> dict:
        return next(ln["summary"] for ln in self.lines() if "summary" in ln)


def start_deploy(procs: Processes, files: Files, *args: str, config: Path | None = None,
                 episodes: int = 1, virtual: bool = False, reset_wait: float = 0.0) -> Run:
    """Deploy the shipped policy; with ``virtual`` on its own (mock) virtual robot, else on a
    robot the test started (the box reset is then a wait of ``reset_wait`` s)."""
    cmd = [*DEPLOY, "--episodes", str(episodes), "--json", "--log-dir", str(files.logs),
           "--scenario", str(files.scenario), "--config", str(config or files.config())]
    cmd += (["--virtual-robot", "--robot-arg=--mock"] if virtual
            else ["--reset", "wait", "--reset-wait", str(reset_wait)])
    proc = procs.start([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    return Run(proc, episodes)


def start_robot(procs: Processes, files: Files, config: Path | None = None) -> LineReader:
    """``fingergym-virtual-robot --mock`` (its status lines, with its counts at exit)."""
    proc = procs.python("fingergym.hardware.virtual_robot", "--mock", "--config",
                        str(config or files.config()), "--scenario", str(files.scenario),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = LineReader(proc.stdout)
    reader.proc = proc
    return reader


def robot_counts(robot: LineReader, procs: Processes) -> dict:
    """Stop the robot (SIGTERM) and return the counts it prints."""
    import signal

    procs.kill(robot.proc, signal.SIGTERM)
    robot.proc.wait(15)
    line = robot.wait_for("stopped: ", timeout=10)
    return yaml.safe_load(line.split("stopped: ", 1)[1])


def max_step_of(bus_commands: np.ndarray) -> np.ndarray:
    """The largest change between consecutive commands, per joint (n,)."""
    if len(bus_commands) < 2:
        return np.zeros(bus_commands.shape[1] if bus_commands.ndim == 2 else 0)
    return np.max(np.abs(np.diff(bus_commands, axis=0)), axis=0)
