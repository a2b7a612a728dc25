"""A stable-baselines3 ``VecEnv`` whose envs live in Ray actors, on any node of a Ray cluster.

Each *worker* is one Ray actor holding ``envs_per_worker`` envs; one ``step`` call steps all of
them (one round trip serves several envs). The worker semantics are those of
``SubprocVecEnv``'s (auto-reset on ``done`` with ``terminal_observation`` in ``info``,
``TimeLimit.truncated``, per-env seeds from :meth:`VecEnv.seed` used by the next ``reset``),
so a run with the same seeds collects the same rollouts on either backend.

A worker that dies (its process killed, its node lost) raises :class:`EnvWorkerLost` naming
the worker, its envs and its node; the trainer then stops with its last snapshot saved
(``fingergym train --resume`` continues it). A lost worker is not replaced: its envs' episodes
are gone mid-rollout and a replacement would silently change the seeding.

Only the training side uses this module; Ray (the optional ``fingergym[ray]`` extra) is imported
when a :class:`RayVecEnv` is made, so :class:`EnvWorkerLost` can be caught without Ray.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from fingergym.policies.ray_env_worker import EnvWorker

# A local Ray started by this module: small object store (the envs exchange a few kB per step)
# and no dashboard.
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20


class EnvWorkerLost(RuntimeError):
    """An env worker (Ray actor) died; the VecEnv cannot continue."""


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to the Ray cluster at ``address`` ("auto": the one this machine belongs to), or
    start a local Ray when ``address`` is empty. Returns True when this call started Ray (the
    caller then shuts it down). Already connected (a Tune trial, a test): nothing to do."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=True)
    else:
        # Ray's services (GCS, raylet) run in this process group: started with SIGINT and
        # SIGTERM ignored (inherited), a Ctrl-C or `timeout` reaches the trainer, which stops
        # cleanly, instead of killing the cluster under it.
        main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)
                    } if main else {}
        try:
            ray.init(num_cpus=num_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     include_dashboard=False, logging_level="WARNING", log_to_driver=True)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    return True


class RayVecEnv(VecEnv):
    """``len(env_fns)`` envs in Ray actors, ``envs_per_worker`` per actor.

    :param env_fns: env factories, pickled (cloudpickle) to the actors: top-level functions or
        ``functools.partial`` of them with picklable arguments.
    :param envs_per_worker: envs held (and stepped per call) by one actor.
    :param num_cpus: CPUs each actor reserves (its scheduling weight).
    :param address: Ray cluster to connect to when Ray is not initialized yet; empty: start a
        local Ray with one CPU per env worker (at least the machine's cores).
    :param strategy: Ray scheduling strategy of the actors ("SPREAD": across nodes).
    :param start_timeout: seconds to wait for every worker to be placed and to build its envs.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, envs_per_worker: int = 1,
                 num_cpus: float = 1.0, address: str | None = None, strategy: str = "SPREAD",
                 start_timeout: float = 600.0):
        if envs_per_worker < 1:
            raise ValueError(f"envs_per_worker must be >= 1, got {envs_per_worker}")
        import ray

        n_envs = len(env_fns)
        n_workers = -(-n_envs // envs_per_worker)
        self._owns_ray = init_ray(address, num_cpus=max(os.cpu_count() or 1,
                                                        int(np.ceil(n_workers * num_cpus))))
        # env index -> (worker, index inside the worker); slices of consecutive envs
        self._slices = [slice(w * envs_per_worker, min(n_envs, (w + 1) * envs_per_worker))
                        for w in range(n_workers)]
        actor_cls = ray.remote(EnvWorker).options(num_cpus=num_cpus, max_restarts=0,
                                                  scheduling_strategy=strategy)
        self.workers = [actor_cls.remote(list(env_fns[s])) for s in self._slices]
        self.closed = False
        self._pending: list | None = None
        refs = [w.where.remote() for w in self.workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=start_timeout)
        if len(ready) < len(refs):
            free = ray.available_resources().get("CPU", 0)
            self.close()
            raise RuntimeError(
                f"RayVecEnv: {len(refs) - len(ready)} of {n_workers} env workers "
                f"({num_cpus} CPU each) not started in {start_timeout:.0f} s; the cluster has "
                f"{free:g} of {ray.cluster_resources().get('CPU', 0):g} CPUs free")
        self.locations: list[dict] = self._get(refs)
        observation_space, action_space = self._get(self.workers[0].spaces.remote())
        super().__init__(n_envs, observation_space, action_space)

    # ------------------------------------------------------------------ Ray calls
    def _describe(self, w: int) -> str:
        s = self._slices[w]
        where = self.locations[w] if w < len(getattr(self, "locations", [])) else {}
        node = f"host {where['host']} node {where['node_id'][:12]} pid {where['pid']}" \
            if where else "not started"
        return f"env worker {w} (envs {s.start}..{s.stop - 1}; {node})"

    def _get(self, refs):
        """``ray.get`` that turns a dead actor into :class:`EnvWorkerLost`."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        try:
            return ray.get(refs)
        except (RayActorError, ActorUnavailableError) as e:
            refs_list = refs if isinstance(refs, list) else [refs]
            dead = []
            for w, worker in enumerate(self.workers):
                try:
                    ray.get(worker.where.remote(), timeout=5)
                except Exception:  # noqa: BLE001 - any failure to answer marks it dead
                    dead.append(w)
            names = "; ".join(self._describe(w) for w in dead) or f"{len(refs_list)} call(s)"
            raise EnvWorkerLost(f"Ray env worker lost: {names}: "
                                f"{type(e).__name__}: {str(e).splitlines()[0]}") from e

    def _local(self, indices: VecEnvIndices) -> dict[int, list[int]]:
        """env indices -> {worker: [index inside the worker]} (in order)."""
        out: dict[int, list[int]] = {}
        for i in self._get_indices(indices):
            for w, s in enumerate(self._slices):
                if s.start <= i < s.stop:
                    out.setdefault(w, []).append(i - s.start)
        return out

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        refs = [worker.reset.remote(self._seeds[s], self._options[s])
                for worker, s in zip(self.workers, self._slices, strict=True)]
        results = [r for batch in self._get(refs) for r in batch]
        obs, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(obs, self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [worker.step.remote(actions[s])
                         for worker, s in zip(self.workers, self._slices, strict=True)]

    def step_wait(self) -> VecEnvStepReturn:
        refs, self._pending = self._pending, None
        results = [r for batch in self._get(refs) for r in batch]
        obs, rews, dones, infos, self.reset_infos = zip(*results, strict=True)  # type: ignore
        return (_stack_obs(obs, self.observation_space), np.stack(rews), np.stack(dones),
                list(infos))

    def close(self) -> None:
        """Close every env, end the actors (and the local Ray this VecEnv started)."""
        import ray

        if self.closed:
            return
        self.closed = True
        try:
            ray.wait([w.close.remote() for w in self.workers], num_returns=len(self.workers),
                     timeout=30)
        finally:
            for worker in self.workers:
                ray.kill(worker)
            if self._owns_ray:
                ray.shutdown()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [img for batch in self._get([w.render.remote() for w in self.workers])
                for img in batch]

    def has_attr(self, attr_name: str) -> bool:
        return all(self._get([w.has_attr.remote(attr_name) for w in self.workers]))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        local = self._local(indices)
        return [v for batch in self._get([self.workers[w].get_attr.remote(attr_name, ix)
                                          for w, ix in local.items()]) for v in batch]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._get([self.workers[w].set_attr.remote(attr_name, value, ix)
                   for w, ix in self._local(indices).items()])

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None,
                   **method_kwargs) -> list[Any]:
        local = self._local(indices)
        return [v for batch in self._get([
            self.workers[w].env_method.remote(method_name, method_args, method_kwargs, ix)
            for w, ix in local.items()]) for v in batch]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        local = self._local(indices)
        name = f"{wrapper_class.__module__}.{wrapper_class.__qualname__}"
        return [v for batch in self._get([self.workers[w].is_wrapped.remote(name, ix)
                                          for w, ix in local.items()]) for v in batch]
