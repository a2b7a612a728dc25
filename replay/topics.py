"""The episode format: topics, message types and their (de)construction with rosbags' typestore.

A bag holds, once per gym step (same log time for all of them):

- ``/fingergym/observation`` (std_msgs/Float64MultiArray, n): what the policy saw before acting,
  in the task's observation layout (its names are in the metadata and the array's label);
- ``/fingergym/action`` (Float64MultiArray, m): the action actually applied (agent units, after
  safety/clipping); ``/fingergym/target`` (m): the command actually sent;
- ``/fingergym/reward`` (std_msgs/Float64): the reward the step returned;
- ``/fingergym/time`` (Float64MultiArray, 2): ``[sim_time, wall_time]`` [s] at the observation;
- ``/fingergym/state`` (Float64MultiArray, n, sim only): the noise-free state;

``/fingergym/episode`` (std_msgs/String, JSON): the episode metadata at start (with the
observation and action layouts, the task, the robot and the topic names), the outcome at end;
and the robot's raw topics (JointState, each tracked object's pose, the commands; names from the
hardware config, :func:`fingergym.hardware.config.topics`), recorded as received on the robot
and synthesized from the sim state in sim.
"""

from __future__ import annotations

import numpy as np
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

from fingergym.layout import Layout
from fingergym.observation import planar_quaternion  # the object pose convention

FORMAT = "fingergym-episode/2"  # 2: MCAP sequence = step number, chunk CRCs
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

EPISODE = "/fingergym/episode"
OBSERVATION = "/fingergym/observation"
ACTION = "/fingergym/action"
TARGET = "/fingergym/target"
REWARD = "/fingergym/reward"
TIME = "/fingergym/time"
STATE = "/fingergym/state"

ARRAY = "std_msgs/msg/Float64MultiArray"
FLOAT = "std_msgs/msg/Float64"
STRING = "std_msgs/msg/String"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"

STEP_TOPICS: dict[str, str] = {
    OBSERVATION: ARRAY, ACTION: ARRAY, TARGET: ARRAY, REWARD: FLOAT, TIME: ARRAY, STATE: ARRAY,
}
TIME_LABEL = "sim_time,wall_time"

_T = TYPESTORE.types


def array_msg(values: np.ndarray, label: str = ""):
    data = np.asarray(values, dtype=np.float64).ravel()
    dim = _T["std_msgs/msg/MultiArrayDimension"](label=label, size=data.size, stride=data.size)
    return _T[ARRAY](layout=_T["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0),
                     data=data)


def float_msg(value: float):
    return _T[FLOAT](data=float(value))


def string_msg(text: str):
    return _T[STRING](data=text)


def _header(stamp_ns: int, frame_id: str = ""):
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return _T["std_msgs/msg/Header"](stamp=_T["builtin_interfaces/msg/Time"](sec=sec,
                                                                             nanosec=nsec),
                                     frame_id=frame_id)


def joint_state_msg(names: list[str], position: np.ndarray, velocity: np.ndarray, stamp_ns: int):
    return _T[JOINT_STATE](header=_header(stamp_ns), name=list(names),
                           position=np.asarray(position, dtype=np.float64),
                           velocity=np.asarray(velocity, dtype=np.float64),
                           effort=np.zeros(0))


def pose_msg(x: float, z: float, theta: float, stamp_ns: int, frame_id: str = "world"):
    w, qx, qy, qz = planar_quaternion(theta)
    g = "geometry_msgs/msg/"
    pose = _T[g + "Pose"](position=_T[g + "Point"](x=float(x), y=0.0, z=float(z)),
                          orientation=_T[g + "Quaternion"](x=qx, y=qy, z=qz, w=w))
    return _T[POSE_STAMPED](header=_header(stamp_ns, frame_id), pose=pose)


def serialize(msg) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def deserialize(data: bytes, msgtype: str):
    """CDR bytes -> message. Tolerates trailing bytes after the message, which rclpy's
    ``serialize_message`` emits for some types (e.g. 4 after a JointState) and which rosbags'
    strict ``deserialize_cdr`` rejects as a size mismatch."""
    try:
        return TYPESTORE.deserialize_cdr(data, msgtype)
    except SerdeError as e:
        if "size mismatch" not in str(e):
            raise
    msgdef = TYPESTORE.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    return func(memoryview(data)[4:], 0, msgdef.cls, TYPESTORE)[0]


class RawSynth:
    """The robot's raw topics synthesized from a sim observation (by name), so sim and robot
    bags match: JointState of the observed joints, each tracked object's pose, the commands."""

    def __init__(self, spec, topics, command_layout: Layout):
        self.topics = topics
        self.command_label = ",".join(command_layout.names)
        srcs = list(spec.sources.values())
        self.joints = list(spec.joints)
        self._q = [next((i for i, s in enumerate(srcs) if s.kind == "joint_position"
                         and s.name == j), None) for j in self.joints]
        self._v = [next((i for i, s in enumerate(srcs) if s.kind == "joint_velocity"
                         and s.name == j), None) for j in self.joints]
        self._objects = {o: [next((i for i, s in enumerate(srcs) if s.kind == "object_pose"
                                   and s.name == o and s.axis == a), None) for a in range(3)]
                         for o in spec.objects}

    def messages(self, observation: np.ndarray, target: np.ndarray,
                 stamp_ns: int) -> list[tuple[str, str, bytes]]:
        o = np.asarray(observation, dtype=np.float64)

        def pick(idx: list) -> np.ndarray:
            return np.array([o[i] if i is not None else 0.0 for i in idx])

        out = []
        if self.joints:
            out.append((self.topics.joint_states, JOINT_STATE, serialize(joint_state_msg(
                self.joints, pick(self._q), pick(self._v), stamp_ns))))
        for obj, idx in self._objects.items():
            x, z, theta = pick(idx)
            out.append((self.topics.objects[obj], POSE_STAMPED,
                        serialize(pose_msg(x, z, theta, stamp_ns))))
        out.append((self.topics.commands, ARRAY, serialize(array_msg(target, self.command_label))))
        return out
