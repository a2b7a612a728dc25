"""Ray env workers against SubprocVecEnv, on this machine, in one run.

    .venv/bin/python bench/ray_speed.py              # 2 workers, 3 interleaved repetitions
    .venv/bin/python bench/ray_speed.py --n-envs 4 --reps 5 --json

samples/s: env steps per wall-clock second of ``PPO.learn`` (rollout + update, the default
training config with ``n_steps`` shortened) with ``SubprocVecEnv`` and with ``RayVecEnv`` at the
same number of workers (one env each), after one warm-up cycle; the backends alternate, and
the medians over repetitions and their ratio are reported.

per-call overhead: wall time of one ``VecEnv.step`` on envs that do nothing (same spaces as the
real env), i.e. what the backend adds to every step: SubprocVecEnv (one pipe round trip per
worker), Ray with one env per worker, and Ray with all envs in one worker (one call steps
them all).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np


class NullEnv(gym.Env):
    """The real env's spaces and nothing else: a step costs (almost) no time."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space
        self._obs = np.zeros(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs, {}

    def step(self, action):
        return self._obs, 0.0, False, False, {}


def _venv(backend: str, fns: list, envs_per_worker: int = 1):
    if backend == "subproc":
        from stable_baselines3.common.vec_env import SubprocVecEnv

        return SubprocVecEnv(fns)
    from fingergym.policies.ray_vec_env import RayVecEnv

    return RayVecEnv(fns, envs_per_worker=envs_per_worker)


def cycle_speed(backend: str, n_envs: int, n_steps: int, cycles: int) -> float:
    """samples/s of PPO rollout+update cycles (after one warm-up cycle)."""
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from fingergym.policies.config import load_train_config
    from fingergym.policies.train import build_model, make_vec_env

    cfg = load_train_config().replace(**{
        "env.backend": backend, "ppo.n_steps": n_steps,
        "ppo.batch_size": min(256, n_steps * n_envs)})
    venv = make_vec_env(cfg, n_envs)
    assert isinstance(venv, VecMonitor)
    venv = VecNormalize(venv, gamma=cfg.ppo.gamma)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(cfg, venv, Path(tmp))
            per_cycle = n_steps * n_envs
            model.learn(per_cycle)  # warm-up
            t0 = time.perf_counter()
            model.learn(per_cycle * cycles, reset_num_timesteps=False)
            return per_cycle * cycles / (time.perf_counter() - t0)
    finally:
        venv.close()


def call_overhead(backend: str, n_envs: int, envs_per_worker: int, calls: int) -> float:
    """Median seconds per ``VecEnv.step`` on :class:`NullEnv` envs."""
    import fingergym

    env = fingergym.make_env()
    fn = functools.partial(NullEnv, env.observation_space, env.action_space)
    env.close()
    venv = _venv(backend, [fn] * n_envs, envs_per_worker)
    try:
        venv.reset()
        actions = np.zeros((n_envs, *venv.action_space.shape), dtype=np.float32)
        for _ in range(20):
            venv.step(actions)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            venv.step(actions)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        venv.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-envs", type=int, default=os.cpu_count() or 1,
                   help="workers of each backend (one env each)")
    p.add_argument("--n-steps", type=int, default=256, help="rollout steps per env per cycle")
    p.add_argument("--cycles", type=int, default=2, help="timed rollout+update cycles")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions per backend")
    p.add_argument("--calls", type=int, default=300, help="timed calls of the overhead test")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch

    from fingergym.policies.ray_vec_env import init_ray

    torch.set_num_threads(1)
    started = init_ray(None, num_cpus=max(os.cpu_count() or 1, args.n_envs))
    try:
        overhead = {
            "subproc": call_overhead("subproc", args.n_envs, 1, args.calls),
            "ray": call_overhead("ray", args.n_envs, 1, args.calls),
            f"ray_{args.n_envs}_envs_per_worker": call_overhead("ray", args.n_envs, args.n_envs,
                                                                args.calls)}
        speed: dict[str, list[float]] = {"subproc": [], "ray": []}
        for _ in range(args.reps):
            for backend in speed:
                speed[backend].append(cycle_speed(backend, args.n_envs, args.n_steps,
                                                  args.cycles))
    finally:
        if started:
            import ray

            ray.shutdown()
    med = {k: statistics.median(v) for k, v in speed.items()}
    out = {"n_envs": args.n_envs, "n_steps": args.n_steps, "cycles": args.cycles,
           "reps": args.reps, "samples_per_s": {k: [round(x, 1) for x in v]
                                                for k, v in speed.items()},
           "median_samples_per_s": {k: round(v, 1) for k, v in med.items()},
           "ray_over_subproc": round(med["ray"] / med["subproc"], 3),
           "step_call_us": {k: round(v * 1e6, 1) for k, v in overhead.items()},
           "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"PPO rollout+update, {args.n_envs} workers x 1 env, n_steps {args.n_steps}, "
          f"median of {args.reps} (load avg {out['load_avg_1min']} on {out['cpus']} CPUs):")
    for k, v in med.items():
        print(f"  {k:>8}: {v:7.0f} samples/s  (runs: {out['samples_per_s'][k]})")
    print(f"  ray / subproc: {out['ray_over_subproc']:.2f}")
    print("per VecEnv.step call on no-op envs (median):")
    for k, v in out["step_call_us"].items():
        print(f"  {k:>24}: {v:8.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
