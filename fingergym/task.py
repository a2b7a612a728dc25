"""The box flip-up task, defined once: observation layout, action scaling, reward, success.

Sim stations, the hardware station, the virtual robot, evaluation and replay all import from
here, so a change to the task is a change in one place.

Observation (10,): ``[box x, z, theta, finger x, z, box vx, vz, omega, finger vx, vz]``
(metres, radians, m/s, rad/s; x right, z up, theta about the out-of-plane axis).
Action (2,): float32 in ``[-1, 1]^2``, mapped affinely onto the finger-centre target inside
the reachable workspace (:func:`fingergym.scenario.workspace_bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.systems.framework import (
    BasicVector,
    Context,
    DiagramBuilder,
    InputPort,
    LeafSystem,
    OutputPort,
)
from pydrake.systems.primitives import AffineSystem, Saturation

from fingergym.scenario import Scenario, workspace_bounds

OBS_NAMES: tuple[str, ...] = (
    "box_x", "box_z", "box_theta", "finger_x", "finger_z",
    "box_vx", "box_vz", "box_omega", "finger_vx", "finger_vz",
)
OBS_DIM = len(OBS_NAMES)
ACTION_DIM = 2
BOX_Q = slice(0, 3)
FINGER_Q = slice(3, 5)
BOX_V = slice(5, 8)
FINGER_V = slice(8, 10)
OMEGA = 7
# Generous finite bounds of the observation space (positions [m, rad], velocities [m/s, rad/s]);
# theta is not wrapped, so its bound allows many turns.
OBS_BOUND = np.array([2.0, 2.0, 1000.0, 2.0, 2.0, 100.0, 100.0, 1000.0, 100.0, 100.0])


def angle_from_vertical(theta: np.ndarray | float) -> np.ndarray | float:
    """The seed's ``(theta mod pi) - pi/2``: 0 when the box stands on its short edge."""
    return np.mod(theta, np.pi) - np.pi / 2


def reward(state: np.ndarray, target: np.ndarray) -> np.ndarray | float:
    """The seed's reward ``10 - cost`` (works on one state (10,) or a batch (N, 10)).

    cost = 2 angle_from_vertical^2 + 0.1 omega^2 + 0.1 |target - finger_pos|^2
           + 0.1 |finger_vel|^2, with ``target`` the commanded finger position [m].
    """
    state = np.asarray(state, dtype=float)
    target = np.asarray(target, dtype=float)
    a = angle_from_vertical(state[..., 2])
    effort = target - state[..., FINGER_Q]
    finger_v = state[..., FINGER_V]
    cost = (2.0 * a**2 + 0.1 * state[..., OMEGA] ** 2
            + 0.1 * np.sum(effort**2, axis=-1) + 0.1 * np.sum(finger_v**2, axis=-1))
    return 10.0 - cost


def reach_potential(obs: np.ndarray) -> float:
    """Shaping potential (training only): minus the finger-to-box-centre distance [m]."""
    return -float(np.linalg.norm(obs[FINGER_Q] - obs[0:2]))


def upright_potential(obs: np.ndarray) -> float:
    """Shaping potential (training only): minus |angle from vertical| [rad]."""
    return -float(abs(angle_from_vertical(obs[2])))


# Potentials a training config may name (``shaping.potential``); see policies/shaping.py.
POTENTIALS = {"reach": reach_potential, "upright": upright_potential}


def is_success(state: np.ndarray, scenario: Scenario) -> bool:
    """The box stands: small angle from vertical and small angular velocity."""
    return bool(abs(angle_from_vertical(state[2])) < scenario.episode.success_angle
                and abs(state[OMEGA]) < scenario.episode.success_omega)


@dataclass(frozen=True)
class ActionScaling:
    """Affine map between the agent's ``[-1, 1]^2`` and finger-centre targets [m]."""

    low: np.ndarray   # (2,) target at action -1
    high: np.ndarray  # (2,) target at action +1

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> ActionScaling:
        lo, hi = workspace_bounds(scenario)
        return cls(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.high + self.low)

    @property
    def half_range(self) -> np.ndarray:
        return 0.5 * (self.high - self.low)

    def to_target(self, action: np.ndarray) -> np.ndarray:
        """Clip to ``[-1, 1]`` and map to a target inside the workspace [m]."""
        return self.center + self.half_range * np.clip(np.asarray(action, dtype=float), -1, 1)

    def to_action(self, target: np.ndarray) -> np.ndarray:
        """Inverse map (clipped): the action that holds the finger at ``target``."""
        a = (np.asarray(target, dtype=float) - self.center) / self.half_range
        return np.clip(a, -1.0, 1.0)

    def clamp_target(self, target: np.ndarray) -> np.ndarray:
        """Project a target [m] onto the reachable workspace."""
        return np.clip(np.asarray(target, dtype=float), self.low, self.high)


def add_action_scaling(builder: DiagramBuilder,
                       scaling: ActionScaling) -> tuple[InputPort, OutputPort]:
    """:meth:`ActionScaling.to_target` as Drake systems (saturate, then the affine map).

    Returns the ``actions`` input ([-1, 1]^2) to export and the ``target`` output [m]; every
    station uses this, so sim and hardware map actions identically.
    """
    saturation = builder.AddSystem(Saturation(-np.ones(ACTION_DIM), np.ones(ACTION_DIM)))
    to_target = builder.AddSystem(AffineSystem(
        A=np.zeros((0, 0)), B=np.zeros((0, ACTION_DIM)), f0=np.zeros(0),
        C=np.zeros((ACTION_DIM, 0)), D=np.diag(scaling.half_range), y0=scaling.center))
    to_target.set_name("action_to_target")
    builder.Connect(saturation.get_output_port(), to_target.get_input_port())
    return saturation.get_input_port(), to_target.get_output_port()


def check_action(action: object) -> np.ndarray:
    """Validate an agent action: shape (2,), finite. Raises ``ValueError`` otherwise."""
    try:
        a = np.asarray(action, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"action must be numeric with shape ({ACTION_DIM},): {e}") from e
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return a


class RewardSystem(LeafSystem):
    """Drake wrapper of :func:`reward` and :func:`is_success`; used by every station.

    Inputs: ``state`` (10, observation layout), ``target`` (2, commanded position [m]).
    Outputs: ``reward`` (1,), ``success`` (1,: 1.0 while the box stands).
    """

    def __init__(self, scenario: Scenario):
        super().__init__()
        self._scenario = scenario
        self._state = self.DeclareVectorInputPort("state", OBS_DIM)
        self._target = self.DeclareVectorInputPort("target", ACTION_DIM)
        self.DeclareVectorOutputPort("reward", 1, self._calc_reward)
        self.DeclareVectorOutputPort("success", 1, self._calc_success)

    def _calc_reward(self, context: Context, output: BasicVector) -> None:
        output.SetAtIndex(0, float(reward(self._state.Eval(context), self._target.Eval(context))))

    def _calc_success(self, context: Context, output: BasicVector) -> None:
        output.SetAtIndex(0, float(is_success(self._state.Eval(context), self._scenario)))
