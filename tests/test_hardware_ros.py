"""The hardware env over real rclpy: a mock robot in a separate process, a unique domain each.

Each test: its own ROS_DOMAIN_ID (loopback only), processes in their own groups, killed in a
finally; the env's ROS node is closed at the end.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from fingergym.hardware.config import load_hardware_config  # noqa: E402
from fingergym.hardware.ros_bridge import HardwareError  # noqa: E402
from fingergym.hardware.testing import Processes, unique_domain_id  # noqa: E402


@pytest.fixture
def domain(request) -> int:
    return unique_domain_id(request.node.nodeid)


@pytest.fixture
def procs(domain):
    with Processes(domain) as p:
        yield p


def make_hw_env(domain: int, **config_changes):
    import dataclasses

    from fingergym.env import make_env
    from fingergym.hardware.config import hardware_config_from_dict

    data = dataclasses.asdict(load_hardware_config())
    data.pop("source")
    for key, value in config_changes.items():
        section, leaf = key.split(".")
        data[section][leaf] = value
    return make_env(mode="hardware", config=hardware_config_from_dict(data, "test"),
                    domain_id=domain)


class Spy:
    """Records every finger command on the topic, and publishes the e-stop."""

    def __init__(self, domain: int):
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Bool, Float64MultiArray

        from fingergym.hardware.config import topics
        from fingergym.scenario import load_scenario

        task, robot = load_scenario().plugins()
        t = topics(load_hardware_config(), robot, task.observation().objects)
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("spy", context=self.context)
        self.commands: list[tuple[float, list[float]]] = []
        self.node.create_subscription(Float64MultiArray, t.commands,
                                      lambda m: self.commands.append((time.monotonic(),
                                                                      list(m.data))), 100)
        self.estop_pub = self.node.create_publisher(Bool, t.estop, 10)
        self._Bool = Bool
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown
                return

    def estop(self, engaged: bool) -> None:
        self.estop_pub.publish(self._Bool(data=engaged))

    def since(self, t: float) -> np.ndarray:
        return np.array([d for s, d in list(self.commands) if s >= t])

    def close(self):
        self.context.try_shutdown()
        self.thread.join(2.0)


def test_set_home_times_out_with_a_clear_error_when_no_robot_answers(domain):
    env = make_hw_env(domain, **{"ros.discovery_timeout": 1.0})
    try:
        t0 = time.monotonic()
        with pytest.raises(HardwareError, match=r"set_home: .*/joint_states.*fingergym-virtual"
                                                r"-robot.*ROS_DOMAIN_ID="):
            env.reset()
        assert time.monotonic() - t0 < 5.0
    finally:
        env.close()


def test_estop_ends_the_episode_holds_the_command_and_refuses_homing(domain, procs):
    procs.python("fingergym.hardware.virtual_robot", "--mock", "--quiet")
    spy = Spy(domain)
    env = make_hw_env(domain, **{"ros.discovery_timeout": 30.0})
    max_step = env.station.safety.max_step  # per joint
    try:
        obs, info = env.reset()
        assert obs[3:5] == pytest.approx(env.scenario.finger.home, abs=0.005)
        scaling = env.scaling
        for _ in range(3):  # move right
            obs, *_ = env.step(scaling.to_action([0.1, 0.15]))
        assert obs[3] > 0.05
        deadline = time.monotonic() + 5
        while spy.estop_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        n_before = len(spy.commands)
        spy.estop(True)
        truncated, steps = False, 0
        while not truncated and steps < 20:  # the policy keeps asking to move left
            obs, _, _, truncated, info = env.step(scaling.to_action([-0.15, 0.1]))
            steps += 1
        assert truncated and info["end_reason"].startswith("estop: engaged"), info
        assert info["estop"] and obs[3] > 0.05  # the finger stayed where it was
        time.sleep(0.1)
        after = np.array([d for _, d in spy.commands[n_before:]])
        # held: once the engage is seen, every command repeats the last one (no jump)
        assert np.all(np.abs(np.diff(after, axis=0)) <= max_step + 1e-9)
        assert np.ptp(after[-3:], axis=0) == pytest.approx([0.0, 0.0], abs=1e-12)
        # a NaN action is refused before anything is sent
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array([np.nan, 0.0], dtype=np.float32))
        # homing under the e-stop is refused with the reason, at once
        from fingergym.hardware.ros_bridge import EStopEngaged

        with pytest.raises(EStopEngaged, match="e-stop is engaged"):
            env.reset()
        spy.estop(False)  # an explicit release ...
        deadline = time.monotonic() + 5
        while env.station.bridge.estop.engaged and time.monotonic() < deadline:
            time.sleep(0.01)
        obs, info = env.reset()  # ... lets the next homing start
        assert not info["estop"]
        obs, _, _, truncated, info = env.step(scaling.to_action([-0.15, 0.1]))
        assert not truncated
        every = np.array([d for _, d in spy.commands])
        assert np.all(np.isfinite(every))  # NaN never reached the topic
        # no command step beyond max_step anywhere: engage, release, homing, soft start
        assert np.all(np.abs(np.diff(every, axis=0)) <= max_step + 1e-9)
    finally:
        env.close()
        spy.close()


def test_same_spaces_ports_and_reward_as_sim(domain, procs):
    procs.python("fingergym.hardware.virtual_robot", "--mock", "--quiet")
    from fingergym.env import make_env
    sim = make_env(randomize=False)
    reward = sim.task.reward
    env = make_hw_env(domain, **{"ros.discovery_timeout": 30.0})
    try:
        assert env.hardware and env.action_space == sim.action_space
        assert env.observation_space == sim.observation_space
        for port in ("observations", "reward", "state", "target"):
            env.simulator.get_system().GetOutputPort(port)
        env.simulator.get_system().GetInputPort("actions")
        obs, info = env.reset()
        t0 = time.monotonic()
        obs, r, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
        assert 0.09 < time.monotonic() - t0 < 0.2  # a step is 0.1 s of wall time
        assert r == pytest.approx(reward(obs, info["target"]))
        assert not (terminated or truncated)
        assert 0 <= info["joint_state_age"] < 0.1 and 0 <= info["object_pose_age"] < 0.1
    finally:
        env.close()
