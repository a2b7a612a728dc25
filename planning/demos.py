"""Planner demonstrations for the warm start: no hand-written expert needed.

- :class:`PlannerExpert` is a ``Task.expert``-style callable (true state (10,) -> action in
  ``[-1, 1]^2``) backed by the closed-loop :class:`~fingergym.planning.flipup.FlipUpPlanner`,
  for ONE env at a time (it keeps the plan between calls and starts over when the state jumps,
  i.e. at a reset).
- :func:`collect_demonstrations` runs it in the env and returns the warm start's own
  :class:`~fingergym.policies.warmstart.Rollouts` (observations as the student sees them,
  the actions sent, rewards, success), ready for :func:`~fingergym.policies.warmstart.fit`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fingergym.scaling import ActionScaling
from fingergym.scenario import Scenario

from .flipup import FlipUpConfig, FlipUpPlanner, run_episode

JUMP = 0.05  # [m or rad] a change of the configuration between two calls that means a reset


def cannot_plan(scenario: Scenario) -> str:
    """Why the planner cannot demonstrate this scenario's task ("" if it can): it states one
    problem, the box flip-up with a point tool ([x, z] command; :mod:`.flipup`)."""
    task, robot = scenario.plugins()
    if task.name == "box_flipup" and robot.command_layout.size == 2:
        return ""
    return (f"fingergym.planning plans the box flip-up with a point finger, not task "
            f"{task.name!r} on robot {robot.name!r}")


class PlannerExpert:
    """``expert(state) -> action``: the closed-loop planner as a state-feedback expert."""

    def __init__(self, scenario: Scenario, config: FlipUpConfig | None = None):
        self.planner = FlipUpPlanner(scenario, config or FlipUpConfig())
        self.scaling = ActionScaling.from_scenario(scenario)  # the task's action scaling
        self._last: np.ndarray | None = None

    def target(self, state: np.ndarray) -> np.ndarray:
        q = np.asarray(state, dtype=float)[:5]
        if self._last is None or np.max(np.abs(q - self._last)) > JUMP:
            self.planner.reset(q)
        self._last = q
        return self.planner.target(q)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.scaling.to_action(self.target(state)).astype(np.float32)


def collect_demonstrations(scenario: Scenario, episodes: int, seed: int, *,
                           config: FlipUpConfig | None = None, randomize: bool = True,
                           progress: Callable[[int, bool], None] | None = None):
    """Closed-loop planner episodes (seeds ``seed, seed+1, ...``) in ``fingergym.make_env``
    as :class:`~fingergym.policies.warmstart.Rollouts`: obs (N, 10) as the env returned them,
    expert actions (N, 2) as sent, one reward array (T, 1) per episode, success per episode."""
    from fingergym.env import make_env
    from fingergym.policies.warmstart import Rollouts

    env = make_env(scenario, randomize=randomize)
    planner = FlipUpPlanner(scenario, config or FlipUpConfig())
    obs, acts, rewards, success = [], [], [], []
    try:
        for i in range(episodes):
            r = run_episode(env, planner, seed + i, closed_loop=True)
            obs.append(r.observations[:-1])
            acts.append(r.actions)
            rewards.append(np.asarray(r.rewards)[:, None])
            success.append(r.success)
            if progress is not None:
                progress(i, r.success)
    finally:
        env.close()
    return Rollouts(np.concatenate(obs).astype(np.float32), np.concatenate(acts), rewards,
                    success)
