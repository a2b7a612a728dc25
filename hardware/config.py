"""The hardware config (``configs/hardware.yaml``): ROS 2 names, rates, QoS, safety, homing.

Validated like the scenario (same rules, same :class:`~fingergym.scenario.ScenarioError`
naming the file and the dotted key). Physical parameters stay in the scenario file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fingergym.scenario import ScenarioError, _build, _f, read_yaml, show

DEFAULT_HARDWARE_CONFIG = "hardware.yaml"


@dataclass
class RosParams:
    node_name: str = _f("fingergym_hardware")
    commands_topic: str = _f("/finger_controller/commands")
    joint_states_topic: str = _f("/joint_states")
    box_pose_topic: str = _f("/box/pose")
    estop_topic: str = _f("/finger/estop")
    reset_box_service: str = _f("/virtual_robot/reset_box")
    joint_names: list[str] = _f(["finger_x", "finger_z"], point=True)
    discovery_timeout: float = _f(10.0, 0.0, 600.0, lo_open=True)
    estop_timeout: float = _f(0.0, 0.0, 600.0, doc="> 0: an e-stop publisher must be on the "
                              "domain within this many seconds of matching the robot, and its "
                              "latched value is awaited before the first command (set it on a "
                              "real robot); 0: use it if already discovered")


@dataclass
class QosSpec:
    reliability: str = _f("reliable", choices=("reliable", "best_effort"))
    durability: str = _f("volatile", choices=("volatile", "transient_local"))
    depth: int = _f(1, 1, 1000)


def _qos(reliability: str, depth: int) -> Any:
    return field(default_factory=lambda: QosSpec(reliability, "volatile", depth))


@dataclass
class QosParams:
    commands: QosSpec = _qos("reliable", 1)
    joint_states: QosSpec = _qos("best_effort", 5)
    box_pose: QosSpec = _qos("best_effort", 5)
    # transient_local: an e-stop `true` published (by a transient_local publisher) before we
    # subscribe is still seen; a volatile publisher is matched by a second, volatile subscription
    estop: QosSpec = field(default_factory=lambda: QosSpec("reliable", "transient_local", 10))


@dataclass
class CommandParams:
    rate: float = _f(100.0, 1.0, 2000.0, doc="command publication rate [Hz]")
    realtime_priority: int = _f(20, 0, 99, doc="SCHED_FIFO priority of the control thread "
                                               "(deploy, bench); 0 = off")
    observation_lead: float = _f(0.003, 0.0, 1.0, doc="the observation is read this long "
                                 "before the command that carries the policy's answer [s]")


@dataclass
class SafetyParams:
    max_step: float = _f(0.03, 0.0, 1.0, lo_open=True, doc="max target change per command [m]")
    watchdog_age: float = _f(0.1, 0.0, 10.0, lo_open=True, doc="max state message age [s]")
    # state validity (fingergym.hardware.validity)
    stamp_tolerance: float = _f(0.1, 0.0, 10.0, doc="a stamp may lie this far ahead of our "
                                "clock [s] (clock sync); further: a fault")
    max_stamp_age: float = _f(0.5, 0.0, 60.0, lo_open=True, doc="older stamps on arrival are "
                              "rejected [s]")
    plausibility_margin: float = _f(0.05, 0.0, 1.0, doc="beyond the joint limits and the scene "
                                    "[m]: an implausible state, a fault")
    max_joint_speed: float = _f(10.0, 0.0, 1000.0, lo_open=True, doc="plausible |joint "
                                "velocity| [m/s]")
    quaternion_tolerance: float = _f(0.01, 0.0, 0.5, lo_open=True, doc="| |q| - 1 | allowed")
    on_fault: str = _f("stop", choices=("stop", "continue"), doc="after an episode ended by a "
                       "fault (invalid state, watchdog): deploy stops, or goes on with the next")


@dataclass
class HomeParams:
    tolerance: float = _f(0.005, 0.0, 0.1, lo_open=True)
    timeout: float = _f(10.0, 0.0, 600.0, lo_open=True)
    settle: float = _f(0.1, 0.0, 10.0)


@dataclass
class VirtualRobotParams:
    joint_state_rate: float = _f(200.0, 1.0, 2000.0)
    box_pose_rate: float = _f(60.0, 1.0, 1000.0)
    command_latency: float = _f(0.005, 0.0, 1.0)
    joint_state_latency: float = _f(0.002, 0.0, 1.0)
    box_pose_latency: float = _f(0.010, 0.0, 1.0)
    jitter: float = _f(0.001, 0.0, 1.0)
    pose_noise_position: float = _f(0.001, 0.0, 0.1)
    pose_noise_angle: float = _f(0.005, 0.0, 1.0)
    drop_rate: float = _f(0.01, 0.0, 1.0, doc="probability each state message is lost")
    seed: int = _f(0, 0, 2**31 - 1)
    realtime_priority: int = _f(20, 0, 99, doc="SCHED_FIFO priority of its loop; 0 = off")
    box_mass_scale: float = _f(1.0, 0.0, 10.0, lo_open=True)
    friction_scale: float = _f(1.0, 0.0, 10.0, lo_open=True)
    gain_scale: float = _f(1.0, 0.0, 10.0, lo_open=True)
    box_size_scale: float = _f(1.0, 0.5, 2.0)


@dataclass
class HardwareConfig:
    ros: RosParams = field(default_factory=RosParams)
    qos: QosParams = field(default_factory=QosParams)
    command: CommandParams = field(default_factory=CommandParams)
    safety: SafetyParams = field(default_factory=SafetyParams)
    home: HomeParams = field(default_factory=HomeParams)
    virtual_robot: VirtualRobotParams = field(default_factory=VirtualRobotParams)
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    @property
    def command_period(self) -> float:
        return 1.0 / self.command.rate


def default_hardware_config_path() -> Path:
    return Path(str(resources.files("fingergym.configs").joinpath(DEFAULT_HARDWARE_CONFIG)))


# ROS 2 name rules (rcl's rmw_validate_full_topic_name / rmw_validate_node_name), checked here so
# a bad name is a config error naming the key, not an exception from deep inside rclpy.
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOPIC = re.compile(rf"(/|~/)?{_TOKEN}(/{_TOKEN})*")
_NODE = re.compile(_TOKEN)
_TOPIC_KEYS = ("commands_topic", "joint_states_topic", "box_pose_topic", "estop_topic")


def _check_ros_names(ros: RosParams, source: str) -> None:
    for key in (*_TOPIC_KEYS, "reset_box_service"):
        name = getattr(ros, key)
        if len(name) > 255 or not _TOPIC.fullmatch(name):
            raise ScenarioError(f"{source}: ros.{key}: {show(name)} is not a valid ROS 2 name "
                                f"(tokens of letters, digits and _, not starting with a digit, "
                                f"separated by single /)")
    if len(ros.node_name) > 255 or not _NODE.fullmatch(ros.node_name):
        raise ScenarioError(f"{source}: ros.node_name: {show(ros.node_name)} is not a valid "
                            f"ROS 2 node name")
    seen: dict[str, str] = {}
    for key in _TOPIC_KEYS:  # one topic, one message type
        name = getattr(ros, key).lstrip("/")
        if name in seen:
            raise ScenarioError(f"{source}: ros.{key}: {getattr(ros, key)} is also "
                                f"ros.{seen[name]} (a topic carries one message type)")
        seen[name] = key
    for name in ros.joint_names:
        if not name or len(name) > 255 or not name.isprintable():
            raise ScenarioError(f"{source}: ros.joint_names: {show(name)} is not a joint name")


def hardware_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> HardwareConfig:
    config = _build(HardwareConfig, data, source, "")
    config.source = source
    if len(set(config.ros.joint_names)) != 2:
        raise ScenarioError(f"{source}: ros.joint_names: need two distinct names")
    _check_ros_names(config.ros, source)
    return config


def load_hardware_config(path: str | Path | None = None) -> HardwareConfig:
    """Load and validate a hardware YAML file (``None``: the shipped ``configs/hardware.yaml``)."""
    path = Path(path) if path is not None else default_hardware_config_path()
    return hardware_config_from_dict(read_yaml(path, "hardware config"), source=str(path))


def as_hardware_config(config: HardwareConfig | str | Path | None) -> HardwareConfig:
    if isinstance(config, HardwareConfig):
        return config
    return load_hardware_config(config)
