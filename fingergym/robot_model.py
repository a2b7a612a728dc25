"""A robot's model file, read once: joints, limits and ros2_control controllers, plus the Drake
pieces every robot shares (parse into a plant, inverse-dynamics position controller).

The model file (URDF or SDF) is the one description of a robot: Drake parses it for the sim and
the virtual robot, and :class:`RobotModel` reads from it (with the standard library's XML
parser) what the hardware side needs: joint names, position and velocity limits, and, in a
URDF, the ``<ros2_control>`` block's position-commanded joints. ``controllers.yaml`` next to it
names the forward position controller, whose ``/<name>/commands`` topic the hardware station
publishes to (and, for an SDF, which has no ``<ros2_control>`` block, the commanded joints).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fingergym.interfaces import JointLimits

FORWARD_CONTROLLERS = ("forward_command_controller/ForwardCommandController",
                       "position_controllers/JointGroupPositionController")


class RobotModelError(ValueError):
    """The model file or its controllers file is missing or inconsistent (names the file)."""


@dataclass(frozen=True)
class RobotModel:
    """What the generic machinery reads from a robot's model and controllers files."""

    path: Path
    name: str
    command_joints: tuple[str, ...]    # the forward position controller's joints, in order
    state_joints: tuple[str, ...]      # joints with state interfaces (JointState names)
    limits: JointLimits                # of the command joints
    controller_name: str

    @staticmethod
    def load(path: Path | str, controllers: Path | str | None = None) -> RobotModel:
        return _load(Path(path), None if controllers is None else Path(controllers))


@lru_cache(maxsize=32)
def _load(path: Path, controllers: Path | None) -> RobotModel:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise RobotModelError(f"{path}: cannot read the robot model: {e}") from e
    controller, order = _forward_controller(path, controllers)
    if root.tag == "robot":
        name, limits, commanded, stated = _urdf(path, root)
    elif root.tag == "sdf":
        name, limits, commanded, stated = _sdf(path, root, controllers, order)
    else:
        raise RobotModelError(f"{path}: expected a URDF <robot> or an SDF <sdf> element, got "
                              f"<{root.tag}>")
    if order:
        unknown = [n for n in order if n not in commanded]
        if unknown:
            raise RobotModelError(f"{controllers}: {controller}.joints {unknown} have no position "
                                  f"command interface in {path.name}")
        commanded = list(order)
    if not commanded:
        raise RobotModelError(f"{path}: no joint with a position command interface")
    lower, upper, velocity = [], [], []
    for joint in commanded:
        if joint not in limits:
            raise RobotModelError(f"{path}: joint {joint!r} has no <limit>")
        try:
            lo, hi, v = (float(x) for x in limits[joint])
        except (TypeError, ValueError) as e:
            raise RobotModelError(f"{path}: joint {joint!r}: its limit needs numeric lower, "
                                  f"upper and velocity") from e
        lower.append(lo)
        upper.append(hi)
        velocity.append(v)
    state = commanded + [n for n in stated if n not in commanded]
    return RobotModel(path, name, tuple(commanded), tuple(state),
                      JointLimits(np.array(lower), np.array(upper), np.array(velocity)),
                      controller)


Limits = dict[str, tuple[Any, Any, Any]]  # joint -> (lower, upper, velocity) as written


def _urdf(path: Path, root: ET.Element) -> tuple[str, Limits, list[str], list[str]]:
    """Name, limits, and the ``<ros2_control>`` block's position-commanded and stated joints."""
    joints = {j.get("name"): j for j in root.findall("joint")}
    block = root.find("ros2_control")
    if block is None:
        raise RobotModelError(f"{path}: no <ros2_control> block (position command interfaces)")
    commanded, stated = [], []
    for j in block.findall("joint"):
        name = j.get("name")
        if name not in joints:
            raise RobotModelError(f"{path}: <ros2_control> joint {name!r} is not a URDF joint")
        if any(c.get("name") == "position" for c in j.findall("command_interface")):
            commanded.append(name)
        if j.findall("state_interface"):
            stated.append(name)
    limits = {n: (lim.get("lower"), lim.get("upper"), lim.get("velocity"))
              for n, j in joints.items() if (lim := j.find("limit")) is not None}
    return root.get("name", path.stem), limits, commanded, stated


def _sdf(path: Path, root: ET.Element, controllers: Path | None,
         order: list[str]) -> tuple[str, Limits, list[str], list[str]]:
    """Name, limits and joints of an SDF's first ``<model>``. SDF has no ``<ros2_control>``
    block: the commanded joints are the forward controller's ``joints`` in controllers.yaml;
    every moving joint is a state joint."""
    model = root.find("model")
    if model is None:
        raise RobotModelError(f"{path}: the SDF has no <model>")
    if not order:
        raise RobotModelError(f"{path}: an SDF has no <ros2_control> block, so the commanded "
                              f"joints come from controllers.yaml's forward position controller "
                              f"'joints' list; {controllers or 'no controllers file'} gives none")
    joints = [j for j in model.findall("joint") if j.get("type") != "fixed"]
    limits = {}
    for j in joints:
        lim = j.find("axis/limit")
        if lim is not None:
            limits[j.get("name")] = tuple(getattr(lim.find(k), "text", None)
                                          for k in ("lower", "upper", "velocity"))
    names = [j.get("name") for j in joints]
    return model.get("name", path.stem), limits, list(names), names


def _forward_controller(path: Path, controllers: Path | None) -> tuple[str, list[str]]:
    """(name, joints) of the forward position controller in ``controllers.yaml``."""
    if controllers is None:
        return f"{path.stem}_controller", []
    try:
        data = yaml.safe_load(controllers.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RobotModelError(f"{controllers}: cannot read: {e}") from e
    manager = ((data.get("controller_manager") or {}).get("ros__parameters") or {})
    names = [k for k, v in manager.items()
             if isinstance(v, dict) and v.get("type") in FORWARD_CONTROLLERS]
    if len(names) != 1:
        raise RobotModelError(f"{controllers}: expected one forward position controller "
                              f"({' or '.join(FORWARD_CONTROLLERS)}), found {names}")
    params = (data.get(names[0]) or {}).get("ros__parameters") or {}
    return names[0], list(params.get("joints") or [])


# ---------------------------------------------------------------------------- Drake
def add_model(plant: Any, scene_graph: Any, model: RobotModel, proximity: Any,
              home: np.ndarray) -> Any:
    """Parse ``model`` into ``plant``; its collision geometries get ``proximity``; the command
    joints start at ``home``. Returns the model instance."""
    from pydrake.geometry import RoleAssign
    from pydrake.multibody.parsing import Parser

    (instance,) = Parser(plant).AddModels(str(model.path))
    inspector = scene_graph.model_inspector()
    for body_index in plant.GetBodyIndices(instance):
        for gid in plant.GetCollisionGeometriesForBody(plant.get_body(body_index)):
            props = inspector.GetProximityProperties(gid)
            if props is not None:
                scene_graph.AssignRole(plant.get_source_id(), gid, proximity, RoleAssign.kReplace)
    for name, q in zip(model.command_joints, home):
        plant.GetJointByName(name, instance).set_default_positions([float(q)])
    return instance


_CONTROL_MODELS: dict[Path, Any] = {}  # model file -> finalized robot-only plant (read-only)


def add_inverse_dynamics_controller(builder: Any, plant: Any, instance: Any, model: RobotModel,
                                    kp: float, kd: float, ki: float) -> Any:
    """Drake's ``InverseDynamicsController`` on a robot-only plant parsed from the same file;
    returns its command input (n_cmd,) (desired positions; desired velocities are zero)."""
    from pydrake.multibody.parsing import Parser
    from pydrake.multibody.plant import MultibodyPlant
    from pydrake.systems.controllers import InverseDynamicsController
    from pydrake.systems.primitives import ConstantVectorSource, MatrixGain, Multiplexer

    control_model = _CONTROL_MODELS.get(model.path)
    if control_model is None:  # parsed once: every episode's controller reads the same model
        control_model = MultibodyPlant(time_step=0.0)
        Parser(control_model).AddModels(str(model.path))
        control_model.Finalize()
        _CONTROL_MODELS[model.path] = control_model
    n = control_model.num_positions()
    if n != len(model.command_joints):
        raise RobotModelError(f"{model.path}: the default controller needs one command joint "
                              f"per position ({n} positions, {len(model.command_joints)} "
                              f"command joints); override Robot.add_controller")
    controller = builder.AddSystem(InverseDynamicsController(
        control_model, [kp] * n, [ki] * n, [kd] * n, False))
    controller.set_name(f"{model.name}_controller")
    builder.Connect(plant.get_state_output_port(instance),
                    controller.get_input_port_estimated_state())
    builder.Connect(controller.get_output_port_control(), plant.get_actuation_input_port())
    desired = builder.AddSystem(Multiplexer([n, n]))
    zero_velocity = builder.AddSystem(ConstantVectorSource(np.zeros(n)))
    builder.Connect(zero_velocity.get_output_port(), desired.get_input_port(1))
    builder.Connect(desired.get_output_port(), controller.get_input_port_desired_state())
    order = [control_model.GetJointByName(j).position_start() for j in model.command_joints]
    if order == list(range(n)):
        return desired.get_input_port(0)
    # the command's joint order differs from the model's position order: permute
    P = np.zeros((n, n))
    P[order, np.arange(n)] = 1.0
    permute = builder.AddSystem(MatrixGain(P))
    builder.Connect(permute.get_output_port(), desired.get_input_port(0))
    return permute.get_input_port()
