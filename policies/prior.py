"""A task-free starting point for PPO: the actor begins as "hold the robot where it is".

PPO's Gaussian actor starts with a mean near action 0. With position-target actions that is one
fixed target (the middle of the workspace): every episode starts by dragging the robot there,
away from whatever it touches, and the exploration noise jitters around that point. This prior
regresses the actor mean onto the env's *hold action* (``env.hold_action()``: the target that
keeps the robot where it is) on observations from random-action rollouts, so exploration
starts as a random walk around the robot's own position. It knows nothing of the task (no
reward, no success, no expert); only that actions are position targets.
"""

from __future__ import annotations

import time

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from fingergym.policies.warmstart import fit


def hold_prior(model: PPO, vecnorm: VecNormalize | None, *, steps: int, epochs: int,
               batch_size: int, lr: float, seed: int, log=print) -> dict:
    """Fit the actor mean to the hold action on ``steps`` random-action env steps (all envs
    together); also primes ``vecnorm``'s observation statistics. Returns a summary."""
    venv = vecnorm.venv if vecnorm is not None else model.get_env()
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    venv.seed(seed)
    obs = venv.reset()
    obs_l, hold_l = [], []
    for _ in range(max(1, steps // venv.num_envs)):
        obs_l.append(obs.copy())
        hold_l.append(np.stack(venv.env_method("hold_action")).astype(np.float32))
        shape = (venv.num_envs, *venv.action_space.shape)
        obs, _, _, _ = venv.step(rng.uniform(-1, 1, shape).astype(np.float32))
    x, y = np.concatenate(obs_l), np.concatenate(hold_l)
    if vecnorm is not None and vecnorm.norm_obs:
        vecnorm.obs_rms.update(x)
        x = vecnorm.normalize_obs(x)
    mse = fit(model, x, y, None, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    summary = {"steps": len(x), "action_mse": mse, "seconds": time.perf_counter() - t0}
    log(f"hold prior: actor fitted to the hold action on {len(x)} random-action steps, "
        f"mse {mse:.4f} ({summary['seconds']:.0f} s)")
    return summary
