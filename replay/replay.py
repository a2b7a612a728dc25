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
from dataclasses import dataclass
from typing import Any

import numpy as np

from fingergym.scenario import Scenario
from fingergym.task import BOX_Q, FINGER_Q, OBS_NAMES, is_success

from .reader import BagError, Episode, scenario_mismatch


@dataclass
class SimReplay:
    """States ``(N+1, 10)`` s_0..s_N of the replay (s_k before logged action k), its rewards, and
    the divergence from the log ``error = replayed - logged`` on the steps both have."""

    state: np.ndarray
    reward: np.ndarray
    error: np.ndarray      # (M, 10), M = N, or N + 1 when the log holds the final state
    success: bool
    params: dict[str, Any]
    reference: str         # "noise-free state" or "observation"

    @property
    def time(self) -> np.ndarray:
        return np.arange(len(self.state)) * self._step

    _step: float = 0.1

    def divergence(self) -> dict[str, np.ndarray]:
        """Per-step divergence: box position [m], box angle [rad], finger position [m]."""
        e = self.error
        return {"box_pos": np.linalg.norm(e[:, BOX_Q][:, :2], axis=1),
                "box_theta": np.abs(e[:, BOX_Q][:, 2]),
                "finger_pos": np.linalg.norm(e[:, FINGER_Q], axis=1)}


def episode_params_for(ep: Episode, scenario: Scenario, overrides: dict[str, float] | None = None):
    """The physics to replay with: the logged draw (sim bags) or nominal (robot bags), noise off,
    then ``overrides`` (EpisodeParams field -> value)."""
    from fingergym.sim.params import EpisodeParams, nominal_params

    s0 = ep.true_state[0] if ep.steps else np.zeros(len(OBS_NAMES))
    if ep.episode_params:
        fields = {f.name for f in dataclasses.fields(EpisodeParams)}
        params = EpisodeParams(**{k: v for k, v in ep.episode_params.items() if k in fields})
    else:
        params = nominal_params(scenario, box_x=float(s0[0]), box_theta=float(s0[2]))
    params = dataclasses.replace(params, obs_noise_position=0.0, obs_noise_velocity=0.0)
    if overrides:
        from fingergym.sim.params import validate_overrides

        overrides = validate_overrides(overrides, scenario)
        params = dataclasses.replace(params, **overrides)
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
    else:
        mismatch = scenario_mismatch(ep.scenario, scenario)
        if mismatch:
            raise BagError(f"{ep.path}: recorded on a different robot/workspace than "
                           f"{scenario.source}: " + "; ".join(mismatch))
    if ep.steps == 0:
        raise BagError(f"{ep.path}: the bag holds no step to replay")
    return scenario


def replay_in_sim(ep: Episode, *, scenario: Scenario | None = None,
                  overrides: dict[str, float] | None = None) -> SimReplay:
    """Re-simulate ``ep``'s actions open-loop from its first logged state."""
    scenario = replay_scenario(ep, scenario)
    params = episode_params_for(ep, scenario, overrides)
    env = replay_env(scenario, params)
    env.reset(seed=0)
    ctx = env.simulator.get_mutable_context()
    s0 = ep.true_state[0]
    env.station.set_state(ctx, s0)
    hold = env.scaling.clamp_target(s0[FINGER_Q])
    env.station.hold_setpoint(ctx, hold)
    env.action_port.FixValue(ctx, env.scaling.to_action(hold))
    env.simulator.Initialize()
    states, rewards = [np.array(env.true_state())], []
    for a in ep.action:
        _, r, *_ = env.step(a)
        states.append(np.array(env.true_state()))
        rewards.append(r)
    env.close()
    states = np.array(states)
    ref = ep.true_state
    if ep.final_state is not None:
        ref = np.vstack([ref, ep.final_state])
    error = states[: len(ref)] - ref
    reference = "noise-free state" if ep.state is not None else "observation"
    out = SimReplay(states, np.array(rewards), error, is_success(states[-1], scenario),
                    dataclasses.asdict(params), reference)
    out._step = scenario.episode.step
    return out


def format_sim_report(ep: Episode, rep: SimReplay, every: int = 10) -> str:
    """Per-step (every ``every`` steps) and final divergence, and both outcomes, as text."""
    d = rep.divergence()
    step = rep._step
    lines = [f"replayed {ep.steps} logged actions open-loop in sim "
             f"(compared with the logged {rep.reference})",
             f"{'step':>5} {'t [s]':>6} {'box pos [mm]':>13} {'box angle [deg]':>16} "
             f"{'finger [mm]':>12}"]
    n = len(rep.error)
    for k in range(n):
        if k % every == 0 or k == n - 1:
            lines.append(f"{k:>5} {k * step:>6.2f} {1e3 * d['box_pos'][k]:>13.3f} "
                         f"{np.degrees(d['box_theta'][k]):>16.3f} "
                         f"{1e3 * d['finger_pos'][k]:>12.3f}")
    lines.append(f"final divergence: box {1e3 * d['box_pos'][-1]:.3f} mm, "
                 f"{np.degrees(d['box_theta'][-1]):.3f} deg; "
                 f"finger {1e3 * d['finger_pos'][-1]:.3f} mm "
                 f"(max over the episode: box {1e3 * d['box_pos'].max():.3f} mm, "
                 f"{np.degrees(d['box_theta'].max()):.3f} deg)")
    logged = {True: "succeeded", False: "failed", None: "unknown (not closed)"}[ep.success]
    lines.append(f"logged episode {logged} ({ep.end_reason}); replayed episode "
                 f"{'succeeded' if rep.success else 'failed'}")
    return "\n".join(lines)
