"""The episode format: topics, message types and their (de)construction with rosbags' typestore.

A bag holds, once per gym step (same log time for all of them):

- ``/fingergym/observation`` (std_msgs/Float64MultiArray, 10): what the policy saw before acting,
  in the :data:`fingergym.task.OBS_NAMES` layout;
- ``/fingergym/action`` (Float64MultiArray, 2): the action actually applied (agent units, after
  safety/clipping); ``/fingergym/target`` (2): the finger target actually commanded [m];
- ``/fingergym/reward`` (std_msgs/Float64): the reward the step returned;
- ``/fingergym/time`` (Float64MultiArray, 2): ``[sim_time, wall_time]`` [s] at the observation;
- ``/fingergym/state`` (Float64MultiArray, 10, sim only): the noise-free state;

``/fingergym/episode`` (std_msgs/String, JSON): the episode metadata at start, the outcome at end;
and the robot's raw topics (``/joint_states``, ``/box/pose``, ``/finger_controller/commands``),
recorded as received on the robot and synthesized from the sim state in sim.
"""

from __future__ import annotations

import numpy as np
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

from fingergym.observation import planar_quaternion  # the /box/pose convention
from fingergym.task import OBS_NAMES

FORMAT = "fingergym-episode/2"  # 2: MCAP sequence = step number, chunk CRCs
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

EPISODE = "/fingergym/episode"
OBSERVATION = "/fingergym/observation"
ACTION = "/fingergym/action"
TARGET = "/fingergym/target"
REWARD = "/fingergym/reward"
TIME = "/fingergym/time"
STATE = "/fingergym/state"
JOINT_STATES = "/joint_states"
BOX_POSE = "/box/pose"
COMMANDS = "/finger_controller/commands"

ARRAY = "std_msgs/msg/Float64MultiArray"
FLOAT = "std_msgs/msg/Float64"
STRING = "std_msgs/msg/String"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"

STEP_TOPICS: dict[str, str] = {
    OBSERVATION: ARRAY, ACTION: ARRAY, TARGET: ARRAY, REWARD: FLOAT, TIME: ARRAY, STATE: ARRAY,
}
RAW_TOPICS: dict[str, str] = {JOINT_STATES: JOINT_STATE, BOX_POSE: POSE_STAMPED,
                              COMMANDS: ARRAY}
FINGER_JOINTS = ("finger_x", "finger_z")
LABELS = {
    OBSERVATION: ",".join(OBS_NAMES), STATE: ",".join(OBS_NAMES), ACTION: "x,z", TARGET: "x,z",
    TIME: "sim_time,wall_time", COMMANDS: "x,z",
}

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


def joint_state_msg(position: np.ndarray, velocity: np.ndarray, stamp_ns: int):
    return _T[JOINT_STATE](header=_header(stamp_ns), name=list(FINGER_JOINTS),
                           position=np.asarray(position, dtype=np.float64),
                           velocity=np.asarray(velocity, dtype=np.float64),
                           effort=np.zeros(0))


def box_pose_msg(x: float, z: float, theta: float, stamp_ns: int, frame_id: str = "world"):
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


def sim_raw_messages(observation: np.ndarray, target: np.ndarray,
                     stamp_ns: int) -> list[tuple[str, str, bytes]]:
    """The robot's raw topics synthesized from a sim observation, so sim and robot bags match."""
    o = np.asarray(observation, dtype=np.float64)
    return [
        (JOINT_STATES, JOINT_STATE, serialize(joint_state_msg(o[3:5], o[8:10], stamp_ns))),
        (BOX_POSE, POSE_STAMPED, serialize(box_pose_msg(o[0], o[1], o[2], stamp_ns))),
        (COMMANDS, ARRAY, serialize(array_msg(target, LABELS[COMMANDS]))),
    ]
