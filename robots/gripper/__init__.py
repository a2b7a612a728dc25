"""A planar parallel-jaw gripper: prismatic x and z, and one jaw drive that moves two pads.

Described once by ``gripper.urdf`` (Drake parses it for the sim and the virtual robot; joint
names, limits and the ros2_control block are read from it) with its ros2_control
``controllers.yaml``. Command and action layout ``[gripper_x, gripper_z, left_jaw]`` [m]: the
grasp point (midway between the pads, at their mid-height) and the jaw position, which is half
the opening between the pads' inner faces (``right_jaw`` mimics ``left_jaw``). The agent's third
action therefore sets the opening, from closed (-1) to fully open (+1).

Controller: Drake's PD-controlled joint actuators (implicit in the discrete SAP solver, so stiff
gains are stable at the plant step) with the gains of the scenario's ``gripper:`` section, plus
a constant gravity feed-forward on the z drive. The URDF's effort limits clamp every drive: the
jaw's bounds the grip force (each pad pushes with at most half of it through the mimic
coupling). The mimic coupling and PD actuators need a SAP-family contact approximation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fingergym.interfaces import Region, Robot, Source
from fingergym.scenario import ScenarioError, param

HERE = Path(__file__).resolve().parent
SAP_FAMILY = ("sap", "similar", "lagged")


@dataclass
class GripperParams:
    """The scenario's ``gripper:`` section: what is not in the model file."""

    home: list[float] = param([0.0, 0.15, 0.14], point=True,
                              doc="home command (gripper_x, gripper_z, left_jaw) [m]")
    kp: list[float] = param([1500.0, 2000.0, 2000.0], point=True,
                            doc="PD stiffness of the x, z and jaw drives [N/m]")
    kd: list[float] = param([300.0, 300.0, 300.0], point=True,
                            doc="PD damping of the x, z and jaw drives [N s/m]; with the effort "
                                "limits it bounds their speed (effort / kd)")
    max_squeeze: float = param(0.04, 0.0, 0.14, lo_open=True,
                               doc="safety: the jaw command may lie at most this far inside the "
                                   "measured jaw position [m] (bounds the commanded grip)")


@dataclass(frozen=True)
class PadGeometry:
    """Pad sizes read from the model file [m]."""

    thickness: float  # along x, outward from the inner face
    reach_below: float  # lowest collision point below the grasp point

    @staticmethod
    def read(model_file: Path) -> PadGeometry:
        root = ET.parse(model_file).getroot()
        pad = root.find("link[@name='left_pad']")
        size = [float(v) for v in pad.find("visual/geometry/box").get("size").split()]
        below = 0.0
        for c in pad.findall("collision"):
            z = float(c.find("origin").get("xyz").split()[2])
            r = float(c.find("geometry/sphere").get("radius"))
            below = max(below, r - z)
        return PadGeometry(size[0], below)


class Gripper(Robot):
    """Command and action layout ``[gripper_x, gripper_z, left_jaw]`` [m]."""

    name = "gripper"
    model_file = HERE / "gripper.urdf"
    controllers_file = HERE / "controllers.yaml"
    sections = {"gripper": GripperParams}

    def __init__(self, scenario: Any):
        super().__init__(scenario)
        self.pad = PadGeometry.read(self.model_file)
        g = scenario.gripper
        for key in ("home", "kp", "kd"):
            if len(getattr(g, key)) != self.command_layout.size:
                raise ScenarioError(f"{scenario.source}: gripper.{key}: expected "
                                    f"{self.command_layout.size} values "
                                    f"{list(self.command_layout.names)}")
        if min(g.kp) <= 0 or min(g.kd) < 0:
            raise ScenarioError(f"{scenario.source}: gripper.kp/kd: gains must be positive")
        if scenario.contact.approximation not in SAP_FAMILY:
            raise ScenarioError(f"{scenario.source}: contact.approximation: the gripper's mimic "
                                f"jaw and PD drives need one of {list(SAP_FAMILY)}, got "
                                f"{scenario.contact.approximation!r}")

    def state_sources(self) -> dict[str, Source]:
        """``gripper_x, gripper_z, jaw`` [m] then ``gripper_vx, gripper_vz, jaw_v`` [m/s]."""
        return {"gripper_x": Source("joint_position", "gripper_x"),
                "gripper_z": Source("joint_position", "gripper_z"),
                "jaw": Source("joint_position", "left_jaw"),
                "gripper_vx": Source("joint_velocity", "gripper_x"),
                "gripper_vz": Source("joint_velocity", "gripper_z"),
                "jaw_v": Source("joint_velocity", "left_jaw")}

    def home(self) -> np.ndarray:
        return np.asarray(self.scenario.gripper.home, dtype=float)

    def max_lead(self) -> np.ndarray:
        """The jaw command stays within ``gripper.max_squeeze`` of the measured jaw, which
        bounds the commanded grip to ``kp_jaw * max_squeeze`` (x and z: unbounded)."""
        lead = np.full(self.command_layout.size, np.inf)
        lead[self.command_layout.index("left_jaw")] = self.scenario.gripper.max_squeeze
        return lead

    def workspace(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """Joint limits intersected with the region: x keeps the fully open pads inside the
        walls, z keeps the pads above the floor, the jaw spans its joint limits."""
        lim, pad = self.limits, self.pad
        outer = lim.upper[2] + pad.thickness  # grasp point to a fully open pad's outer face
        low = np.array([max(lim.lower[0], region.x[0] + outer),
                        max(lim.lower[1], region.floor + pad.reach_below), lim.lower[2]])
        high = np.array([min(lim.upper[0], region.x[1] - outer),
                         min(lim.upper[1], region.ceiling), lim.upper[2]])
        return low, high

    # ------------------------------------------------------------------ sim
    def add_to_plant(self, plant: Any, scene_graph: Any, contact: Any) -> Any:
        """Parse the URDF (the ``<mimic>`` becomes a coupler constraint), start at home and
        declare the drives PD-controlled with the nominal gains."""
        from pydrake.multibody.tree import PdControllerGains

        from fingergym.robot_model import add_model

        home = self.home()
        instance = add_model(plant, scene_graph, self.model, contact(True), home)
        jaw = self.command_layout.index("left_jaw")
        plant.GetJointByName("right_jaw", instance).set_default_positions([float(home[jaw])])
        g = self.scenario.gripper
        for actuator, kp, kd in zip(self._actuators(plant, instance), g.kp, g.kd):
            actuator.set_controller_gains(PdControllerGains(p=kp, d=kd))
        return instance

    def _actuators(self, plant: Any, instance: Any) -> list[Any]:
        """The drives in command order (works before and after ``Finalize``)."""
        from pydrake.multibody.tree import JointActuatorIndex

        mine = [plant.get_joint_actuator(JointActuatorIndex(i))
                for i in range(plant.num_actuators())]
        mine = [a for a in mine if a.model_instance() == instance]
        # The plant's per-instance actuation and desired-state ports are in actuator order.
        names = [a.joint().name() for a in mine]
        if names != list(self.command_layout.names):
            raise RuntimeError(f"{self.model_file}: transmissions {names} must be declared in "
                               f"command order {list(self.command_layout.names)}")
        return mine

    def add_controller(self, builder: Any, plant: Any, instance: Any, params: Any) -> Any:
        """The episode's PD gains (``gain_scale`` of the draw: kp times it, kd times its square
        root) on the plant's drives, a gravity feed-forward, and the command input (3,)."""
        from pydrake.multibody.tree import PdControllerGains
        from pydrake.systems.primitives import ConstantVectorSource, Multiplexer

        c, g = self.scenario.controller, self.scenario.gripper
        gain = params.kp / c.kp
        damping = params.kd / c.kd if c.kd > 0 else float(np.sqrt(gain))
        actuators = self._actuators(plant, instance)
        for actuator, kp, kd in zip(actuators, g.kp, g.kd):
            actuator.set_controller_gains(PdControllerGains(p=kp * gain, d=kd * damping))
        # Gravity on prismatic drives does not depend on the configuration: hold it with a
        # constant feed-forward (the plant adds the actuation input to the PD output).
        context = plant.CreateDefaultContext()
        tau_g = plant.CalcGravityGeneralizedForces(context)
        u_ff = np.array([-tau_g[a.joint().velocity_start()] for a in actuators])
        feed_forward = builder.AddSystem(ConstantVectorSource(u_ff))
        feed_forward.set_name("gripper_gravity_feed_forward")
        builder.Connect(feed_forward.get_output_port(), plant.get_actuation_input_port(instance))
        n = len(actuators)
        desired = builder.AddSystem(Multiplexer([n, n]))
        desired.set_name("gripper_desired_state")
        zero_velocity = builder.AddSystem(ConstantVectorSource(np.zeros(n)))
        builder.Connect(zero_velocity.get_output_port(), desired.get_input_port(1))
        builder.Connect(desired.get_output_port(), plant.get_desired_state_input_port(instance))
        return desired.get_input_port(0)

ROBOT = Gripper  # what fingergym.registry.discover() registers as "gripper"
