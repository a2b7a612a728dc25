"""Grasp the box and lift it: the box and bin of the flip-up, a gripper with a jaw.

Observation (12 on the gripper), by name: ``box_x, box_z, box_theta``, the robot's joint
positions (``gripper_x, gripper_z, jaw``), ``box_vx, box_vz, box_omega``, the robot's joint
velocities (``gripper_vx, gripper_vz, jaw_v``) [m, rad, m/s, rad/s].

Success (read at the end of the episode): the box's lowest point is at least ``lift.height``
above the floor and its speed ``|(vx, vz)|`` is below ``lift.speed``. The lowest point is
computed for the largest box the randomization can draw (``box.length`` and ``box.thickness``
times ``box.size_scale[1]``), so it never overstates the height: a tracker reports the pose, not
the size.

Reward per step (dense, so PPO learns from it alone; each term in [0, 1]):

- ``reach = 1 - tanh(10 d)``, ``d`` the distance [m] from the grasp point (gripper x, z) to
  the box centre: come to the box;
- ``open = jaw / jaw_open``: keep the jaw open on the way (weight 0.25, so that closing it at
  the box pays); without it the first policies, whose mean action half-closes the jaw, park
  their pads on the box's top face;
- ``grip = near * clip((jaw_open - jaw) / 0.03, 0, 1) * clip((jaw - target_jaw) / 0.03, 0, 1)``,
  ``near`` when the grasp point is within 2 cm (x) and 3 cm (z) of the box centre, ``jaw_open``
  the fully open jaw: close the jaw there (the pads stop on the box's ends, so a closed jaw
  around the box reads ~L/2) and command it 3 cm further in (``target_jaw``), so the drive
  squeezes (kp x 3 cm = 60 N): touching alone holds too weakly to lift the small, heavy,
  slippery boxes;
- ``raise = grip * clip((target_z - z_low) / 0.1, 0, 1)``: while gripping, command the grasp
  point up (``target_z`` the commanded z, ``z_low`` the workspace's lowest). It pays in the step
  the command is given, before the slow lift shows in the state: without it PPO, whose z action
  saturates below the floor once it has learnt to come down, rarely explores a lift that lasts
  (observed: the first run plateaued at reach + grip for 20 k steps);
- ``lift = clip(h / lift.reward_height, 0, 1)``, ``h`` the lowest point's height [m]: raise it;
- ``hold = 1`` while the success condition holds: keep it up and still.

``reward = 1 reach + 0.25 open + 1 grip + 1 raise + 2 lift + 1 hold`` (at most ~6.2 per step:
the jaw around the box reads about 0.7 of open).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fingergym.scenario import ScenarioError, param
from fingergym.tasks.box_flipup import scene

WEIGHTS = {"reach": 1.0, "open": 0.25, "grip": 1.0, "raise": 1.0, "lift": 2.0, "hold": 1.0}
REACH_SCALE = 10.0  # [1/m] in reach = 1 - tanh(REACH_SCALE d)
NEAR = (0.02, 0.03)  # [m] |dx|, |dz| of the grasp point from the box centre that count as near
GRIP_SPAN = 0.03  # [m] of jaw travel from fully open over which `grip` rises to 1
EASY_GAP = 0.005  # [m] between a pad and the box's end at the curriculum's easiest start
RAISE_SPAN = 0.1  # [m] of commanded z above the workspace's lowest over which `raise` rises to 1
# What the task reads of the robot (names of Robot.state_sources): the grasp point and the jaw.
ROBOT_NAMES = ("gripper_x", "gripper_z", "jaw")


@dataclass
class LiftParams:
    height: float = param(0.05, 0.0, 1.0, lo_open=True,
                          doc="success: the box's lowest point at least this high [m]")
    speed: float = param(0.05, 0.0, 10.0, lo_open=True,
                         doc="success: box speed below this at the end [m/s]")
    reward_height: float = param(0.08, 0.0, 1.0, lo_open=True,
                                 doc="the lift reward saturates at this height [m]")


class GripperLift(scene.BoxInBinTask):
    name = "gripper_lift"
    sections = {**scene.SECTIONS, "lift": LiftParams}

    def __init__(self, scenario: Any, robot: Any):
        super().__init__(scenario, robot)
        sources = robot.state_sources()
        missing = [n for n in ROBOT_NAMES if n not in sources]
        if missing:
            raise ScenarioError(f"{scenario.source}: robot: task {self.name!r} needs a gripper "
                                f"whose state names {list(ROBOT_NAMES)}; {robot.name!r} lacks "
                                f"{missing}")
        lay = self._spec.layout
        self._box_x, self._box_z = lay.index("box_x"), lay.index("box_z")
        self._theta = lay.index("box_theta")
        self._box_v = lay.indices(["box_vx", "box_vz"])
        self._gx, self._gz, self._jaw = (lay.index(n) for n in ROBOT_NAMES)
        b = scenario.box
        self._box_len = b.length * b.size_scale[1]
        self._box_thk = b.thickness * b.size_scale[1]
        low, high = robot.workspace(self.reach_region())
        jaw_joint = sources["jaw"].name
        self._jaw_open = float(high[robot.command_layout.index(jaw_joint)])
        self._target_x = robot.command_layout.index(sources["gripper_x"].name)
        self._target_z = robot.command_layout.index(sources["gripper_z"].name)
        self._target_jaw = robot.command_layout.index(jaw_joint)
        self._z_low = float(low[self._target_z])

    # ------------------------------------------------------------------ scene
    def reset_scene(self, plant: Any, plant_context: Any, params: Mapping[str, float],
                    rng: np.random.Generator) -> str:
        """Put the box back flat if the gripper's pads are above it (else ``RuntimeError``)."""
        instance = plant.GetModelInstanceByName(self.robot.model.name)
        z = plant.GetJointByName("gripper_z", instance).GetOnePosition(plant_context)
        return scene.reset_box(plant, plant_context, self.scenario, params, rng,
                               z - self.robot.pad.reach_below)

    def easy_starts(self) -> dict[str, Any]:
        """The smallest box under the gripper, the pads 5 mm outside its ends at its height."""
        b, s = self.scenario.box, self.scenario
        home_section = next(name for name, cls in self.robot.sections.items()
                            if "home" in {f.name for f in fields(cls)})
        home = list(self.robot.home())
        centre = 0.5 * (b.x_range[0] + b.x_range[1])
        home[self._target_x] = centre
        home[self._target_z] = max(s.bin.floor_z + 0.5 * b.thickness * b.size_scale[0],
                                   self._z_low)
        home[self._target_jaw] = 0.5 * b.length * b.size_scale[0] + EASY_GAP
        return {f"{home_section}.home": [float(v) for v in home],
                "box.x_range": [centre, centre],
                "box.size_scale": [b.size_scale[0], b.size_scale[0]]}

    # ------------------------------------------------------------------ reward, success
    def lowest_point(self, state: np.ndarray) -> np.ndarray | float:
        """Height [m] above the floor of the lowest point of the largest drawable box."""
        theta = state[..., self._theta]
        half = 0.5 * (self._box_len * np.abs(np.sin(theta))
                      + self._box_thk * np.abs(np.cos(theta)))
        return state[..., self._box_z] - half - self.scenario.bin.floor_z

    def terms(self, state: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray | float]:
        """The reward's terms (see the module docstring), each in [0, 1]; ``target`` is the
        command (n_cmd,) or (N, n_cmd)."""
        state = np.asarray(state, dtype=float)
        target = np.asarray(target, dtype=float)
        dx = state[..., self._gx] - state[..., self._box_x]
        dz = state[..., self._gz] - state[..., self._box_z]
        near = (np.abs(dx) < NEAR[0]) & (np.abs(dz) < NEAR[1])
        closing = np.clip((self._jaw_open - state[..., self._jaw]) / GRIP_SPAN, 0.0, 1.0)
        h = self.lowest_point(state)
        squeeze = np.clip((state[..., self._jaw] - target[..., self._target_jaw]) / GRIP_SPAN,
                          0.0, 1.0)
        grip = near * closing * squeeze
        up = np.clip((target[..., self._target_z] - self._z_low) / RAISE_SPAN, 0.0, 1.0)
        return {"reach": 1.0 - np.tanh(REACH_SCALE * np.hypot(dx, dz)),
                "open": np.clip(state[..., self._jaw] / self._jaw_open, 0.0, 1.0),
                "grip": grip,
                "raise": grip * up,
                "lift": np.clip(h / self.scenario.lift.reward_height, 0.0, 1.0),
                "hold": self._holding(state).astype(float)}

    def _holding(self, state: np.ndarray) -> np.ndarray:
        speed = np.linalg.norm(state[..., self._box_v], axis=-1)
        lift = self.scenario.lift
        return (self.lowest_point(state) >= lift.height) & (speed < lift.speed)

    def reward(self, state: np.ndarray, target: np.ndarray) -> np.ndarray | float:
        terms = self.terms(state, target)
        total = sum(WEIGHTS[k] * terms[k] for k in WEIGHTS)
        return float(total) if np.ndim(total) == 0 else total

    def is_success(self, state: np.ndarray) -> bool:
        return bool(self._holding(np.asarray(state, dtype=float)))

    def info(self, state: np.ndarray) -> dict[str, float]:
        state = np.asarray(state, dtype=float)
        return {"box_height": float(self.lowest_point(state)),
                "box_speed": float(np.linalg.norm(state[self._box_v]))}
