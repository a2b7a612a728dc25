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

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

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


# One env and one planner per process, built once by the pool's initializer.
_WORKER: tuple | None = None


def _init_worker(scenario: Scenario, config: FlipUpConfig | None, randomize: bool) -> None:
    global _WORKER
    from fingergym.env import make_env

    _WORKER = (make_env(scenario, randomize=randomize),
               FlipUpPlanner(scenario, config or FlipUpConfig()))


def _demonstrate(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One closed-loop planner episode in this process's env: (obs seen before each step,
    actions sent, rewards, success)."""
    env, planner = _WORKER
    r = run_episode(env, planner, seed, closed_loop=True)
    return r.observations[:-1], r.actions, np.asarray(r.rewards)[:, None], r.success


def _label(seed: int, policy: Callable[[np.ndarray], np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One episode in this process's env driven by ``policy`` (observation -> action), the
    closed-loop planner alongside labelling each observation with the action it would send
    there (DAgger): (obs seen before each step, the planner's actions, rewards, the POLICY's
    success)."""
    env, planner = _WORKER
    base = env.unwrapped
    obs, _ = env.reset(seed=seed)
    planner.reset(np.asarray(obs, dtype=float))
    obs_l, labels, rewards, done = [], [], [], False
    while not done:
        labels.append(base.scaling.to_action(planner.target(np.asarray(obs, dtype=float))))
        obs_l.append(np.asarray(obs))
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        rewards.append(float(reward))
        done = terminated or truncated
    return (np.asarray(obs_l), np.asarray(labels, dtype=np.float32),
            np.asarray(rewards)[:, None], bool(base.task.is_success(base.true_state())))


def _episodes(scenario: Scenario, seeds: list[int], config: FlipUpConfig | None,
              randomize: bool, workers: int, policy: Callable | None = None
              ) -> Iterator[tuple[int, tuple]]:
    """(seed, row) as each episode ends, row from :func:`_demonstrate` (or :func:`_label` when
    a ``policy`` is given): here, or on ``workers`` processes. Closing the generator early
    cancels the episodes not started."""
    global _WORKER
    run = _demonstrate if policy is None else functools.partial(_label, policy=policy)
    if workers <= 1:
        _init_worker(scenario, config, randomize)
        try:
            for s in seeds:
                yield s, run(s)
        finally:
            _WORKER[0].close()
            _WORKER = None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(min(workers, len(seeds)), context, initializer=_init_worker,
                               initargs=(scenario, config, randomize))
    try:
        futures = {pool.submit(run, s): s for s in seeds}
        for f in as_completed(futures):
            yield futures[f], f.result()
    except BaseException:  # includes GeneratorExit: the caller stopped early
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def collect_demonstrations(scenario: Scenario, episodes: int, seed: int, *,
                           config: FlipUpConfig | None = None, randomize: bool = True,
                           workers: int = 1,
                           progress: Callable[[int, bool], None] | None = None,
                           cache_dir: Path | None = None, log: Callable[[str], None] = print):
    """Closed-loop planner episodes (seeds ``seed, seed+1, ...``) in ``fingergym.make_env``
    as :class:`~fingergym.policies.warmstart.Rollouts`: obs (N, 10) as the env returned them,
    expert actions (N, 2) as sent, one reward array (T, 1) per episode, success per episode.

    ``workers`` > 1 plans that many episodes at a time in worker processes (started from
    multiprocessing's fork server where there is one, so they ignore the signals the trainer
    ignores). Each episode depends on its seed only, so the result, in seed order, is the same
    for any number of workers. ``progress(env_steps, success)`` is called as each episode ends
    (in completion order); an exception it raises (e.g. a stop request) cancels the rest.
    ``cache_dir``: reuse the same demonstrations from there if an earlier call planned them
    (:mod:`.demo_cache`), else plan them and store them there.
    """
    from . import demo_cache

    config = config or FlipUpConfig()
    seeds = [seed + i for i in range(episodes)]
    rows = None
    cached = None
    if cache_dir is not None:
        key = demo_cache.cache_key(scenario, episodes, seed, config, randomize)
        cached = demo_cache.path_for(cache_dir, key, episodes, seed)
        if cached.exists():
            try:
                rows = demo_cache.load(cached, episodes, scenario.episode.steps + 1,
                                       *_dims(scenario))
            except ValueError as e:
                log(f"{e}; planning them again")
            else:
                log(f"planner demonstrations: reused {cached} (same seeds, scenario, planner "
                    f"and code)")
                for r in rows:
                    if progress is not None:
                        progress(len(r[1]), r[3])
    if rows is None:
        rows = _rows(scenario, seeds, config, randomize, workers, progress)
        if cached is not None:
            try:
                demo_cache.save(cached, rows)
            except OSError as e:  # the run goes on without the cache
                log(f"planner demonstrations: not cached ({cached}: {e.strerror or e})")
    return _rollouts(rows)


def label_policy_episodes(scenario: Scenario, policy: Callable[[np.ndarray], np.ndarray],
                          episodes: int, seed: int, *, config: FlipUpConfig | None = None,
                          randomize: bool = True, workers: int = 1,
                          progress: Callable[[int, bool], None] | None = None):
    """DAgger's data: ``episodes`` episodes (seeds ``seed, seed+1, ...``) driven by
    ``policy`` (picklable, observation -> action, e.g.
    :func:`fingergym.policies.export.live_policy`), each observation labelled with the
    closed-loop planner's action there, as
    :class:`~fingergym.policies.warmstart.Rollouts` (success: the policy's). ``workers``,
    ``progress``: as in :func:`collect_demonstrations`. Not cached: they depend on the
    policy."""
    return _rollouts(_rows(scenario, [seed + i for i in range(episodes)],
                           config or FlipUpConfig(), randomize, workers, progress, policy))


def _rows(scenario: Scenario, seeds: list[int], config: FlipUpConfig, randomize: bool,
          workers: int, progress: Callable[[int, bool], None] | None,
          policy: Callable | None = None) -> list[tuple]:
    """:func:`_episodes`' rows in seed order, calling ``progress`` as each ends."""
    done: dict[int, tuple] = {}
    with contextlib.closing(_episodes(scenario, seeds, config, randomize, workers,
                                      policy)) as finished:
        for s, row in finished:
            done[s] = row
            if progress is not None:
                progress(len(row[1]), row[3])
    return [done[s] for s in seeds]


def _rollouts(rows: list[tuple]):
    """Rows (obs, actions, rewards (T, 1), success), one per episode, as ``Rollouts``."""
    from fingergym.policies.warmstart import Rollouts

    return Rollouts(np.concatenate([r[0] for r in rows]).astype(np.float32),
                    np.concatenate([r[1] for r in rows]), [r[2] for r in rows],
                    [r[3] for r in rows],
                    np.concatenate([np.full(len(r[1]), i) for i, r in enumerate(rows)]))


def _dims(scenario: Scenario) -> tuple[int, int]:
    """(observation size, action size) of the scenario's task and robot."""
    task, robot = scenario.plugins()
    return task.observation_layout.size, robot.command_layout.size
