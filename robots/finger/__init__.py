"""The point finger: a sphere on two prismatic joints (world x, then z), position-controlled.

Described once by ``finger.urdf`` (Drake parses it; joint names, limits and the ros2_control
block are read from it) with its ros2_control ``controllers.yaml``. The scenario's ``finger:``
section holds what is not in the model file: the home position.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingergym.interfaces import Region, Robot, Source
from fingergym.scenario import param

HERE = Path(__file__).resolve().parent


@dataclass
class FingerParams:
    home: list[float] = param([0.0, 0.15], point=True, doc="home (x, z) [m], in the workspace")


def tip_radius(model_file: Path = HERE / "finger.urdf") -> float:
    """Radius [m] of the finger's collision sphere, read from the model file."""
    sphere = ET.parse(model_file).getroot().find("link[@name='finger']/collision/geometry/sphere")
    return float(sphere.get("radius"))


class Finger(Robot):
    """Command and action layout ``[finger_x, finger_z]`` (m): the sphere centre's target."""

    name = "finger"
    model_file = HERE / "finger.urdf"
    controllers_file = HERE / "controllers.yaml"
    sections = {"finger": FingerParams}
    # scenario keys of the first release, now in finger.urdf
    legacy_keys = {"finger.radius": None, "finger.mass": None, "finger.x_limits": None,
                   "finger.z_limits": None}

    def __init__(self, scenario):
        super().__init__(scenario)
        self.radius = tip_radius(self.model_file)

    def state_sources(self) -> dict[str, Source]:
        """``finger_x, finger_z`` (m) then ``finger_vx, finger_vz`` (m/s)."""
        return {"finger_x": Source("joint_position", "finger_x"),
                "finger_z": Source("joint_position", "finger_z"),
                "finger_vx": Source("joint_velocity", "finger_x"),
                "finger_vz": Source("joint_velocity", "finger_z")}

    def home(self) -> np.ndarray:
        return np.asarray(self.scenario.finger.home, dtype=float)

    def workspace(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """Joint limits intersected with the region shrunk by the sphere's radius (walls and
        floor); the ceiling bounds the centre itself."""
        lim, r = self.limits, self.radius
        low = np.array([max(lim.lower[0], region.x[0] + r), max(lim.lower[1], region.floor + r)])
        high = np.array([min(lim.upper[0], region.x[1] - r), min(lim.upper[1], region.ceiling)])
        return low, high

ROBOT = Finger  # what fingergym.registry.discover() registers as "finger"
