"""The box flip-up (MIT 6.421): push a flat box in a bin until it stands on its short edge.

Observation (10,), by name: ``box_x, box_z, box_theta``, the robot's joint positions, ``box_vx,
box_vz, box_omega``, the robot's joint velocities (on the finger: ``finger_x, finger_z`` and
``finger_vx, finger_vz``) [m, rad, m/s, rad/s]. Reward (the seed's): ``10 - cost``, ``cost =
2 a^2 + 0.1 omega^2 + 0.1 |target - robot q|^2 + 0.1 |robot v|^2``, ``a = (theta mod pi) -
pi/2``. Success: the box stands (``|a| < success.angle``, ``|omega| < success.omega``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fingergym.scenario import param

from . import scene


@dataclass
class SuccessParams:
    angle: float = param(0.15, 0.0, 1.6, lo_open=True, doc="|angle from vertical| [rad]")
    omega: float = param(0.5, 0.0, 100.0, lo_open=True, doc="|box angular velocity| [rad/s]")


def angle_from_vertical(theta: np.ndarray | float) -> np.ndarray | float:
    """The seed's ``(theta mod pi) - pi/2``: 0 when the box stands on its short edge."""
    return np.mod(theta, np.pi) - np.pi / 2


class BoxFlipUp(scene.BoxInBinTask):
    name = "box_flipup"
    sections = {**scene.SECTIONS, "success": SuccessParams}
    legacy_keys = {**scene.LEGACY_KEYS, "episode.success_angle": "success.angle",
                   "episode.success_omega": "success.omega"}
    param_rules = {"box_x": "box.x_range", "box_mass": "box.mass", "box_length": "box.length",
                   "box_thickness": "box.thickness", "box_tilt": "box.tilt_range"}

    def __init__(self, scenario: Any, robot: Any):
        super().__init__(scenario, robot)
        lay = self._spec.layout
        self._theta = lay.index("box_theta")
        self._omega = lay.index("box_omega")
        self._q = lay["robot_q"]
        self._v = lay["robot_v"]

    # ------------------------------------------------------------------ scene
    def draw_episode(self, rng: np.random.Generator) -> Any:
        # The draw order of the first release (box size, gain, box pose and mass, then the
        # generic terms), so every seed keeps its episode.
        from fingergym.sim.params import draw_generic, uniform

        b = self.scenario.box
        size = uniform(rng, b.size_scale)
        gain = uniform(rng, self.scenario.randomization.gain_scale)
        box = {"box_x": uniform(rng, b.x_range),
               "box_theta": np.pi if rng.uniform() < b.flip_probability else 0.0,
               "box_mass": b.mass * uniform(rng, b.mass_scale),
               "box_length": b.length * size, "box_thickness": b.thickness * size,
               "box_tilt": uniform(rng, b.tilt_range)}  # an empty range draws nothing
        box.update(scene.tool_start(b, rng, box["box_tilt"]))  # draws only in (0, 1)
        return draw_generic(self.scenario, rng, box, gain=gain)

    def add_to_plant(self, plant: Any, params: Mapping[str, float],
                     contact: Callable[[bool], Any]) -> None:
        pose, self._tool_start = scene.start_pose(self.scenario, params,
                                                  getattr(self.robot, "radius", 0.0))
        scene.add_scene(plant, self.scenario, params, contact, pose)

    def finalize_plant(self, plant: Any, scene_graph: Any, robot: Any) -> None:
        super().finalize_plant(plant, scene_graph, robot)
        tool = getattr(self, "_tool_start", None)
        if tool is not None and self.robot.command_layout.size == 2:  # a point tool: q = (x, z)
            for name, value in zip(self.robot.command_layout.names, tool, strict=True):
                plant.GetJointByName(name, robot).set_default_positions([float(value)])

    def view_box(self) -> tuple[float, float, float, float]:
        """The whole bin: walls, floor slab, wall tops."""
        b = self.scenario.bin
        return (b.wall_x[0] - b.wall_thickness, b.wall_x[1] + b.wall_thickness,
                b.floor_z - b.floor_thickness, b.floor_z + b.wall_height)

    def reset_scene(self, plant: Any, plant_context: Any, params: Mapping[str, float],
                    rng: np.random.Generator) -> str:
        # the lowest point of the robot's collision geometry (sphere-sized tools)
        instance = plant.GetModelInstanceByName(self.robot.model.name)
        tool_z = min(plant.EvalBodyPoseInWorld(plant_context, plant.get_body(b)).translation()[2]
                     for b in plant.GetBodyIndices(instance)
                     if plant.GetCollisionGeometriesForBody(plant.get_body(b)))
        return scene.reset_box(plant, plant_context, self.scenario, params, rng,
                               tool_z - getattr(self.robot, "radius", 0.0))

    # ------------------------------------------------------------------ reward, success
    def reward(self, state: np.ndarray, target: np.ndarray) -> np.ndarray | float:
        state = np.asarray(state, dtype=float)
        target = np.asarray(target, dtype=float)
        a = angle_from_vertical(state[..., self._theta])
        effort = target - state[..., self._q]
        robot_v = state[..., self._v]
        cost = (2.0 * a**2 + 0.1 * state[..., self._omega] ** 2
                + 0.1 * np.sum(effort**2, axis=-1) + 0.1 * np.sum(robot_v**2, axis=-1))
        return 10.0 - cost

    def is_success(self, state: np.ndarray) -> bool:
        s = self.scenario.success
        return bool(abs(angle_from_vertical(state[self._theta])) < s.angle
                    and abs(state[self._omega]) < s.omega)

    def info(self, state: np.ndarray) -> dict[str, float]:
        return {"angle_from_vertical": float(angle_from_vertical(state[self._theta])),
                "box_omega": float(state[self._omega])}

    def potentials(self) -> dict[str, Callable[[np.ndarray], float]]:
        """``reach``: minus the tool-to-box-centre distance [m]; ``upright``: minus |angle
        from vertical| [rad]; ``reach_upright``: their sum (1 m of distance weighs as 1 rad)."""
        box = [self._spec.layout.index("box_x"), self._spec.layout.index("box_z")]

        def reach(obs: np.ndarray) -> float:
            return -float(np.linalg.norm(np.asarray(obs)[self._q] - np.asarray(obs)[box]))

        def upright(obs: np.ndarray) -> float:
            return -float(abs(angle_from_vertical(obs[self._theta])))

        def reach_upright(obs: np.ndarray) -> float:
            return reach(obs) + upright(obs)

        return {"reach": reach, "upright": upright, "reach_upright": reach_upright}

    def easy_starts(self) -> dict[str, Any]:
        """The box already tilted against the left wall with the tool under it. Towards the
        task's own start the tool starts at home ever more often: the tilt alone would keep
        it at the box until the very last step, and a policy that never came from home fails
        there (observed: 65% at difficulty 0.9, 0% from home)."""
        b = self.scenario.box
        x = self.scenario.bin.wall_x[0] + 0.5 * b.length * b.size_scale[1] + 0.001
        return {"box.tilt_range": [1.25, 1.45], "box.x_range": [x, x],
                "box.tool_start_probability": 1.0}

    def expert(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """:class:`~.experts.StandingExpert` for a point-tool robot ([x, z] command)."""
        if self.robot.command_layout.size != 2:
            return None
        from .experts import StandingExpert

        return StandingExpert(self.scenario)
