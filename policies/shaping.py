"""Potential-based reward shaping (Ng, Harada and Russell, ICML 1999), training only.

``r' = r + scale * (gamma * Phi(s') - Phi(s))`` with ``Phi`` a potential the task supplies
(:data:`fingergym.task.POTENTIALS`, by name). Such a term changes no optimal policy (it
telescopes along any trajectory); it only changes what the critic sees first. At a true
termination ``Phi(s') = 0``; at a truncation ``s'`` is the last observation, which PPO
bootstraps from, so the sum still telescopes. Evaluation never sees it: the held-out
evaluation and every reported return use the task's reward unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

SHAPING_KEY = "shaping"  # info key: the shaping term added at this step


class PotentialShaping(gym.Wrapper):
    """Adds ``scale * (gamma * Phi(obs') - Phi(obs))`` to every reward; ``info[SHAPING_KEY]``
    holds the term. ``potential``: observation (N,) -> float."""

    def __init__(self, env: gym.Env, potential: Callable[[np.ndarray], float], *,
                 gamma: float, scale: float = 1.0):
        super().__init__(env)
        self.potential, self.gamma, self.scale = potential, gamma, scale
        self._phi = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._phi = float(self.potential(obs))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi = 0.0 if terminated else float(self.potential(obs))
        term = self.scale * (self.gamma * phi - self._phi)
        self._phi = phi
        info[SHAPING_KEY] = term
        return obs, float(reward) + term, terminated, truncated, info
