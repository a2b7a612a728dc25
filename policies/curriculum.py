"""Reset curriculum: the task's reset distribution moved from near success to its own.

A *difficulty* ``d`` in ``[0, 1]`` interpolates named scenario keys (``curriculum.keys`` in
the training config: dotted key -> its easiest value) between that easy value (``d = 0``) and
the training scenario's own value (``d = 1``), element-wise for ranges. Nothing here knows the
task: the task's scenario says what a reset draws, the config says which of those draws start
near success. The difficulty rises by ``step`` each time the success rate of the last
``window`` training episodes at the current difficulty reaches ``promote_at``; a share
``replay`` of the episodes restarts at an easier difficulty (uniform in ``[0, d]``) so the
earlier starts are not forgotten. Evaluation never sees any of this (it uses the unmodified
scenario).

Two parts: :class:`CurriculumEnv` (in each env worker: picks each episode's difficulty and
hands the env its scenario before the reset) and :class:`CurriculumCallback` (in the learner:
counts successes, raises the difficulty, logs ``curriculum/difficulty``, writes
``curriculum.json`` in the run directory).
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from fingergym.scenario import Scenario

LEVEL_KEY = "curriculum_level"  # info key: the difficulty the current episode was drawn at


def scenario_value(scenario: Scenario, key: str) -> Any:
    """The value of a dotted scenario key, e.g. ``box.tilt_range``."""
    node: Any = scenario
    for part in key.split("."):
        node = getattr(node, part)
    return node


def interpolate(easy: Any, full: Any, d: float) -> Any:
    """``easy + d (full - easy)`` for a number or element-wise for a list (ints rounded)."""
    if isinstance(full, (list, tuple)):
        return [interpolate(e, f, d) for e, f in zip(easy, full, strict=True)]
    value = easy + d * (full - easy)
    return int(round(value)) if isinstance(full, int) and not isinstance(full, bool) else value


def scenario_at(base: Scenario, easy: dict[str, Any], d: float) -> Scenario:
    """``base`` with every key of ``easy`` interpolated to difficulty ``d`` (validated)."""
    if not easy:
        return base
    return base.replace(**{k: interpolate(v, scenario_value(base, k), d) for k, v in easy.items()})


class CurriculumEnv(gym.Wrapper):
    """Before each reset, set the env's scenario to an episode difficulty: the current one, or
    with probability ``replay`` an easier one; ``info[LEVEL_KEY]`` reports it at every step.

    The wrapped env must offer ``set_scenario(scenario)``.
    """

    def __init__(self, env: gym.Env, base: Scenario, easy: dict[str, Any], *,
                 difficulty: float = 0.0, replay: float = 0.0):
        super().__init__(env)
        self.base, self.easy, self.replay = base, dict(easy), replay
        self.difficulty = float(difficulty)
        self.level = self.difficulty
        self._rng = np.random.default_rng()

    def set_difficulty(self, d: float) -> None:
        """Used from the next reset on (called through ``VecEnv.env_method``)."""
        self.difficulty = float(d)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x6375])
        d = self.difficulty
        if d < 1.0 and self._rng.uniform() < self.replay:
            d = float(self._rng.uniform(0.0, d))
        self.level = d
        self.env.unwrapped.set_scenario(scenario_at(self.base, self.easy, d))
        obs, info = self.env.reset(seed=seed, options=options)
        info[LEVEL_KEY] = d
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[LEVEL_KEY] = self.level
        return obs, reward, terminated, truncated, info


class CurriculumCallback(BaseCallback):
    """Raise the difficulty by ``step`` once ``window`` training episodes drawn at the current
    difficulty succeed at a rate >= ``promote_at``; push it to every env worker.

    Appends ``{timesteps, wall_s, difficulty, success_rate}`` rows to ``run_dir/curriculum.json``
    (a resumed run continues from the last row).
    """

    def __init__(self, run_dir: Path, *, start: float, step: float, promote_at: float,
                 window: int, t_start: float | None = None, log=None):
        super().__init__()
        self.log = log
        self.path = Path(run_dir) / "curriculum.json"
        self.rows: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []
        self.difficulty = self.rows[-1]["difficulty"] if self.rows else float(start)
        self.step_size, self.promote_at = step, promote_at
        self.recent: deque[bool] = deque(maxlen=window)
        self.t_start = time.perf_counter() if t_start is None else t_start

    def _push(self) -> None:
        self.training_env.env_method("set_difficulty", self.difficulty)

    def _on_training_start(self) -> None:
        self._push()
        if not self.rows:
            self._record(None)

    def _record(self, rate: float | None) -> None:
        self.rows.append({"timesteps": int(self.num_timesteps),
                          "wall_s": round(time.perf_counter() - self.t_start, 1),
                          "difficulty": round(self.difficulty, 6), "success_rate": rate})
        self.path.write_text(json.dumps(self.rows, indent=1))

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and abs(info.get(LEVEL_KEY, -1.0) - self.difficulty) < 1e-9:
                self.recent.append(bool(info.get("is_success", False)))
        full = len(self.recent) == self.recent.maxlen
        if self.difficulty < 1.0 and full and np.mean(self.recent) >= self.promote_at:
            rate = float(np.mean(self.recent))
            self.difficulty = min(1.0, round(self.difficulty + self.step_size, 6))
            self.recent.clear()
            self._push()
            self._record(rate)
            if self.log is not None:
                self.log(f"curriculum @ {self.num_timesteps} steps: difficulty "
                         f"{self.difficulty:.2f} (success {rate:.0%} at the previous one)")
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("curriculum/difficulty", self.difficulty)
        if self.recent:
            self.logger.record("curriculum/success_rate", float(np.mean(self.recent)))
