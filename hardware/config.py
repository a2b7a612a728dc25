"""The hardware config (``configs/hardware.yaml``): ROS 2 names, rates, QoS, safety, homing.

Validated like the scenario (same rules, same :class:`~fingergym.scenario.ScenarioError`
naming the file and the dotted key). Physical parameters stay in the scenario file; joint names
and limits in the robot's model file. Every topic name derives from here (:func:`topics`): the
command topic from the forward position controller's name (``/<controller>/commands``), object
poses from ``ros.object_pose_topic``, so the robot side, sim bags and replay all agree.
"""

from __future__ import annotations

import math
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
    controller: str = _f("", doc="forward position controller; '' = the robot's (its "
                                 "controllers.yaml); commands go to /<controller>/commands")
    joint_states_topic: str = _f("/joint_states")
    object_pose_topic: str = _f("/{object}/pose", doc="PoseStamped per tracked object")
    estop_topic: str = _f("/{robot}/estop", doc="std_msgs/Bool; {robot}: the robot's name")
    reset_service: str = _f("/virtual_robot/reset_scene", doc="std_srvs/Trigger")
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
    object_pose: QosSpec = _qos("best_effort", 5)
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
    watchdog_age: float = _f(0.1, 0.0, 10.0, lo_open=True, doc="max state message age [s]")
    # state validity (fingergym.hardware.validity)
    stamp_tolerance: float = _f(0.1, 0.0, 10.0, doc="a stamp may lie this far ahead of our "
                                "clock [s] (clock sync); further: a fault")
    max_stamp_age: float = _f(0.5, 0.0, 60.0, lo_open=True, doc="older stamps on arrival are "
                              "rejected [s]")
    plausibility_margin: float = _f(0.05, 0.0, 1.0, doc="beyond the joint limits and the scene "
                                    "[m or rad]: an implausible state, a fault")
    max_joint_speed: float = _f(10.0, 0.0, 1000.0, lo_open=True, doc="plausible |joint "
                                "velocity| [m/s or rad/s], at least the model's limits")
    quaternion_tolerance: float = _f(0.01, 0.0, 0.5, lo_open=True, doc="| |q| - 1 | allowed")
    on_fault: str = _f("stop", choices=("stop", "continue"), doc="after an episode ended by a "
                       "fault (invalid state, watchdog): deploy stops, or goes on with the next")


@dataclass
class HomeParams:
    tolerance: float = _f(0.005, 0.0, 0.1, lo_open=True)
    timeout: float = _f(10.0, 0.0, 600.0, lo_open=True)
    settle: float = _f(0.1, 0.0, 10.0)


# The virtual robot's node name. Its ROS parameters (rcl_interfaces parameter services):
# ``ground_truth`` (read-only JSON of its virtual_robot: values, the sim-to-real offsets deploy
# records in each bag) and ``reset_pose`` (JSON {object: [x, z, theta]}: where the next scene
# reset puts the tracked objects; "" = the task's own reset).
VIRTUAL_ROBOT_NODE = "fingergym_virtual_robot"


@dataclass
class VirtualRobotParams:
    joint_state_rate: float = _f(200.0, 1.0, 2000.0)
    object_pose_rate: float = _f(60.0, 1.0, 1000.0)
    command_latency: float = _f(0.005, 0.0, 1.0)
    joint_state_latency: float = _f(0.002, 0.0, 1.0)
    object_pose_latency: float = _f(0.010, 0.0, 1.0)
    jitter: float = _f(0.001, 0.0, 1.0)
    pose_noise_position: float = _f(0.001, 0.0, 0.1)
    pose_noise_angle: float = _f(0.005, 0.0, 1.0)
    drop_rate: float = _f(0.01, 0.0, 1.0, doc="probability each state message is lost")
    seed: int = _f(0, 0, 2**31 - 1)
    realtime_priority: int = _f(20, 0, 99, doc="SCHED_FIFO priority of its loop; 0 = off")
    friction_scale: float = _f(1.0, 0.0, 10.0, lo_open=True)
    gain_scale: float = _f(1.0, 0.0, 10.0, lo_open=True)
    param_scale: dict[str, float] = field(default_factory=dict, metadata={
        "doc": "the task's episode parameters scaled by these factors, e.g. {box_mass: 1.2}"})


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


@dataclass(frozen=True)
class Topics:
    """Every ROS name of one robot running one task, derived from the hardware config."""

    commands: str                 # std_msgs/Float64MultiArray, the command joints' targets
    joint_states: str             # sensor_msgs/JointState
    objects: dict[str, str]       # tracked object -> geometry_msgs/PoseStamped topic
    estop: str                    # std_msgs/Bool
    reset_service: str            # std_srvs/Trigger

    @property
    def robot_topics(self) -> list[str]:
        """The robot's raw topics a bag records (states and commands)."""
        return [self.joint_states, *self.objects.values(), self.commands]


def topics(config: HardwareConfig, robot: Any, objects: tuple[str, ...] | list[str]) -> Topics:
    """The topic names for ``robot`` (a :class:`~fingergym.interfaces.Robot`) and the tracked
    ``objects`` of a task."""
    ros = config.ros
    controller = ros.controller or robot.controller_name
    return Topics(commands=f"/{controller.strip('/')}/commands",
                  joint_states=ros.joint_states_topic,
                  objects={o: ros.object_pose_topic.format(object=o) for o in objects},
                  estop=ros.estop_topic.format(robot=robot.name),
                  reset_service=ros.reset_service)


# ROS 2 name rules (rcl's rmw_validate_full_topic_name / rmw_validate_node_name), checked here so
# a bad name is a config error naming the key, not an exception from deep inside rclpy. Names
# with placeholders ({object}, {robot}) are checked with a sample filled in.
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOPIC = re.compile(rf"(/|~/)?{_TOKEN}(/{_TOKEN})*")
_NODE = re.compile(_TOKEN)
_TOPIC_KEYS = ("joint_states_topic", "object_pose_topic", "estop_topic")
_SAMPLE = {"object": "box", "robot": "robot"}


def _check_ros_names(ros: RosParams, source: str) -> None:
    filled: dict[str, str] = {}
    for key in (*_TOPIC_KEYS, "reset_service"):
        raw = getattr(ros, key)
        try:
            name = raw.format(**_SAMPLE)
        except (KeyError, IndexError, ValueError) as e:
            raise ScenarioError(f"{source}: ros.{key}: bad placeholder {show(str(e))} (known: "
                                f"{{object}}, {{robot}})") from None
        if len(name) > 255 or not _TOPIC.fullmatch(name):
            raise ScenarioError(f"{source}: ros.{key}: {show(raw)} is not a valid ROS 2 name "
                                f"(tokens of letters, digits and _, not starting with a digit, "
                                f"separated by single /)")
        filled[key] = name
    if ros.controller and (len(ros.controller) > 255 or not _TOPIC.fullmatch(ros.controller)):
        raise ScenarioError(f"{source}: ros.controller: {show(ros.controller)} is not a valid "
                            f"ROS 2 name")
    if len(ros.node_name) > 255 or not _NODE.fullmatch(ros.node_name):
        raise ScenarioError(f"{source}: ros.node_name: {show(ros.node_name)} is not a valid "
                            f"ROS 2 node name")
    seen: dict[str, str] = {}
    for key in _TOPIC_KEYS:  # one topic, one message type
        name = filled[key].lstrip("/")
        if name in seen:
            raise ScenarioError(f"{source}: ros.{key}: {getattr(ros, key)} is also "
                                f"ros.{seen[name]} (a topic carries one message type)")
        seen[name] = key


def hardware_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> HardwareConfig:
    config = _build(HardwareConfig, data, source, "")
    config.source = source
    _check_ros_names(config.ros, source)
    scale = config.virtual_robot.param_scale
    if not isinstance(scale, dict) or len(scale) > 64 or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v > 0 for k, v in scale.items()):
        raise ScenarioError(f"{source}: virtual_robot.param_scale: expected a mapping of "
                            f"parameter names to positive numbers, got {show(scale)}")
    return config


def load_hardware_config(path: str | Path | None = None) -> HardwareConfig:
    """Load and validate a hardware YAML file (``None``: the shipped ``configs/hardware.yaml``)."""
    path = Path(path) if path is not None else default_hardware_config_path()
    return hardware_config_from_dict(read_yaml(path, "hardware config"), source=str(path))


def as_hardware_config(config: HardwareConfig | str | Path | None) -> HardwareConfig:
    if isinstance(config, HardwareConfig):
        return config
    return load_hardware_config(config)
