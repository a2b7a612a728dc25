"""The body of a Ray env worker (:class:`EnvWorker`): envs stepped together, one call per batch.

Kept apart from :mod:`fingergym.policies.ray_vec_env` so that a worker process imports only
the env (no stable-baselines3, no torch): it starts in a fraction of the time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class EnvWorker:
    """Ray actor body: ``len(env_fns)`` envs stepped together (SubprocVecEnv's ``_worker``)."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]):
        self.envs = [fn() for fn in env_fns]

    def where(self) -> dict:
        """Node id, host name and process id of this worker."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(),
                "host": socket.gethostname(), "pid": os.getpid()}

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs[0].observation_space, self.envs[0].action_space

    def reset(self, seeds: Sequence[int | None], options: Sequence[dict]) -> list[tuple]:
        out = []
        for env, seed, opts in zip(self.envs, seeds, options, strict=True):
            out.append(env.reset(seed=seed, **({"options": opts} if opts else {})))
        return out

    def step(self, actions: np.ndarray) -> list[tuple]:
        """actions (n_envs_of_worker, *action_shape) -> [(obs, reward, done, info, reset_info)]."""
        out = []
        for env, action in zip(self.envs, actions, strict=True):
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info: dict = {}
            if done:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            out.append((obs, reward, done, info, reset_info))
        return out

    def get_attr(self, name: str, local: Sequence[int]) -> list:
        return [self.envs[i].get_wrapper_attr(name) for i in local]

    def has_attr(self, name: str) -> bool:
        try:
            self.envs[0].get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def set_attr(self, name: str, value: Any, local: Sequence[int]) -> None:
        for i in local:
            setattr(self.envs[i], name, value)

    def env_method(self, name: str, args: tuple, kwargs: dict, local: Sequence[int]) -> list:
        return [self.envs[i].get_wrapper_attr(name)(*args, **kwargs) for i in local]

    def is_wrapped(self, wrapper: str, local: Sequence[int]) -> list[bool]:
        """Whether each env is wrapped by the class named ``wrapper`` (``module.QualName``;
        a name, so the worker need not import the wrapper's package, e.g. SB3's Monitor)."""
        def wrapped(env: gym.Env) -> bool:
            while isinstance(env, gym.Wrapper):
                if any(f"{c.__module__}.{c.__qualname__}" == wrapper for c in type(env).__mro__):
                    return True
                env = env.env
            return False

        return [wrapped(self.envs[i]) for i in local]

    def render(self) -> list:
        return [env.render() for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            env.close()
