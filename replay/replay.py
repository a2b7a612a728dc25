"""Replay a logged episode open-loop: in sim (the sim-to-real gap of that episode) or on the robot.

Sim replay rebuilds the station from the logged scenario and, for sim bags, the logged episode
physics (:class:`~fingergym.sim.params.EpisodeParams`; robot bags use the scenario's nominal
physics), sets the logged initial state, and applies the logged actions one gym step each.

Observation noise: the replay runs without it and is compared with the logged **noise-free**
state (``/fingergym/state``, written by sim logging). Noise only enters the observations, never
the dynamics, so a sim bag replayed with its own physics diverges by exactly zero. A robot bag
has no noise-free state: it is compared with the logged observation, whose sensor noise is part
of the gap being measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fingergym.scenario import Scenario

from .reader import BagError, Episode, scenario_mismatch


def divergence(error: np.ndarray, scenario: Scenario) -> dict[str, np.ndarray]:
    """Per-step divergence by name from ``error`` (K, n) in the task's observation layout:
    ``<object>_pos`` [m] and ``<object>_theta`` [rad] per tracked object, ``robot_pos`` (norm
    of the command joints' error) [m or rad]."""
    task, robot = scenario.plugins()
    spec = task.observation()
    srcs = list(spec.sources.values())
    out: dict[str, np.ndarray] = {}
    for obj in spec.objects:
        idx = {s.axis: i for i, s in enumerate(srcs) if s.kind == "object_pose" and s.name == obj}
        xz = [idx[a] for a in (0, 1) if a in idx]
        if xz:
            out[f"{obj}_pos"] = np.linalg.norm(error[:, xz], axis=1)
        if 2 in idx:
            out[f"{obj}_theta"] = np.abs(error[:, idx[2]])
    q = [i for i, s in enumerate(srcs) if s.kind == "joint_position"
         and s.name in robot.command_layout.names]
    out["robot_pos"] = np.linalg.norm(error[:, q], axis=1)
    return out


@dataclass
class SimReplay:
    """States ``(N+1, n)`` s_0..s_N of the replay (s_k before logged action k), its rewards, and
    the divergence from the log ``error = replayed - logged`` on the steps both have."""

    state: np.ndarray
    reward: np.ndarray
    error: np.ndarray      # (M, n), M = N, or N + 1 when the log holds the final state
    success: bool
    params: dict[str, Any]
    reference: str         # "noise-free state" or "observation"
    scenario: Scenario | None = None
    closed_loop: bool = False  # a policy chose the actions (not the logged ones)

    @property
    def time(self) -> np.ndarray:
        return np.arange(len(self.state)) * self._step

    _step: float = 0.1

    def divergence(self) -> dict[str, np.ndarray]:
        """Per-step divergence by name (:func:`divergence`)."""
        return divergence(self.error, self.scenario)


def episode_params_for(ep: Episode, scenario: Scenario, overrides: dict[str, float] | None = None):
    """The physics to replay with: the logged draw (sim bags) or nominal (robot bags), noise off,
    then ``overrides`` (EpisodeParams field -> value)."""
    from fingergym.sim.params import EpisodeParams, nominal_params

    task, _ = scenario.plugins()
    if ep.episode_params:
        params = EpisodeParams.from_dict(ep.episode_params)
    else:
        s0 = ep.true_state[0] if ep.steps else np.zeros(task.observation_layout.size)
        params = nominal_params(scenario, **task.params_from_state(s0))
    params = dataclasses.replace(params, obs_noise_position=0.0, obs_noise_velocity=0.0)
    if overrides:
        from fingergym.sim.params import validate_overrides

        params = params.replace(**validate_overrides(overrides, scenario))
    return params


def replay_env(scenario: Scenario, params):
    """A FingerGymEnv whose every reset builds the station from ``params`` (no randomization)."""
    from pydrake.systems.analysis import Simulator

    from fingergym.env import FingerGymEnv
    from fingergym.sim.station import build_sim_station

    stations: dict[int, Any] = {}

    def make_simulator(generator) -> Simulator:
        station = build_sim_station(scenario, params)
        simulator = Simulator(station.diagram)
        stations.clear()
        stations[id(simulator)] = station
        return simulator

    return FingerGymEnv(make_simulator, scenario=scenario,
                        station_of=lambda sim: stations[id(sim)])


def replay_scenario(ep: Episode, scenario: Scenario | None) -> Scenario:
    """The scenario to replay ``ep`` with: its own, or ``scenario`` if it is the same robot.

    Raises :class:`BagError` for a bag from another robot/workspace or with no step.
    """
    if scenario is None:
        scenario = ep.scenario
        here = scenario.plugins()[0].observation_layout
        if not ep.observation_layout.same_names(here):
            raise BagError(f"{ep.path}: its observation {list(ep.observation_layout.names)} is "
                           f"not what task {scenario.task!r} observes here {list(here.names)}")
    else:
        mismatch = scenario_mismatch(ep.scenario, scenario)
        if mismatch:
            raise BagError(f"{ep.path}: recorded on a different robot/workspace than "
                           f"{scenario.source}: " + "; ".join(mismatch))
    if ep.steps == 0:
        raise BagError(f"{ep.path}: the bag holds no step to replay")
    return scenario


def replay_in_sim(ep: Episode, *, scenario: Scenario | None = None,
                  overrides: dict[str, float] | None = None,
                  policy: Callable[[np.ndarray], np.ndarray] | None = None) -> SimReplay:
    """Re-simulate ``ep``'s actions open-loop from its first logged state; with ``policy``
    (observation (n,) -> action (m,)), run that policy closed-loop from the same state instead
    (would it have succeeded in sim from where the robot started?)."""
    scenario = replay_scenario(ep, scenario)
    params = episode_params_for(ep, scenario, overrides)
    env = replay_env(scenario, params)
    env.reset(seed=0)
    ctx = env.simulator.get_mutable_context()
    s0 = ep.true_state[0]
    env.station.set_state(ctx, s0)
    hold = env.scaling.clamp_target(env.station.measured_command(ctx))
    env.station.hold_setpoint(ctx, hold)
    env.action_port.FixValue(ctx, env.scaling.to_action(hold))
    env.simulator.Initialize()
    obs = np.asarray(env.observation_port.Eval(ctx), dtype=np.float32)  # as reset() gives it
    states, rewards = [np.array(env.true_state())], []
    for a in ep.action:
        obs, r, *_ = env.step(a if policy is None else policy(obs))
        states.append(np.array(env.true_state()))
        rewards.append(r)
    env.close()
    states = np.array(states)
    ref = ep.true_state
    if ep.final_state is not None:
        ref = np.vstack([ref, ep.final_state])
    error = states[: len(ref)] - ref
    reference = "noise-free state" if ep.state is not None else "observation"
    out = SimReplay(states, np.array(rewards), error, env.task.is_success(states[-1]),
                    params.as_dict(), reference, scenario, closed_loop=policy is not None)
    out._step = scenario.episode.step
    return out


def format_sim_report(ep: Episode, rep: SimReplay, every: int = 10) -> str:
    """Per-step (every ``every`` steps) and final divergence, and both outcomes, as text."""
    d = rep.divergence()
    step = rep._step
    what = ("ran the policy closed-loop in sim from the logged start" if rep.closed_loop
            else f"replayed {ep.steps} logged actions open-loop in sim")
    lines = [f"{what} (compared with the logged {rep.reference})",
             f"{'step':>5} {'t [s]':>6} " + " ".join(f"{_head(k):>16}" for k in d)]
    n = len(rep.error)
    for k in range(n):
        if k % every == 0 or k == n - 1:
            lines.append(f"{k:>5} {k * step:>6.2f} "
                         + " ".join(f"{_scaled(name, v[k]):>16.3f}" for name, v in d.items()))
    lines.append("final divergence: " + "; ".join(
        f"{_head(name)} {_scaled(name, v[-1]):.3f}" for name, v in d.items())
        + " (max over the episode: " + "; ".join(
        f"{_head(name)} {_scaled(name, v.max()):.3f}" for name, v in d.items()) + ")")
    logged = {True: "succeeded", False: "failed", None: "unknown (not closed)"}[ep.success]
    lines.append(f"logged episode {logged} ({ep.end_reason}); replayed episode "
                 f"{'succeeded' if rep.success else 'failed'}")
    return "\n".join(lines)


def _head(name: str) -> str:
    return f"{name} [deg]" if name.endswith("_theta") else f"{name} [mm]"


def _scaled(name: str, value: float) -> float:
    return float(np.degrees(value)) if name.endswith("_theta") else 1e3 * float(value)
