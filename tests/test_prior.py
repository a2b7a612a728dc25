"""The task-free hold prior: after it, the actor's mean action holds the robot where it is."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import fingergym
from fingergym.policies.callbacks import make_predict
from fingergym.policies.prior import hold_prior


def _hold_error(model, vecnorm, env, seeds) -> float:
    act = make_predict(model, vecnorm)
    errs = []
    rng = np.random.default_rng(1)
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        for _ in range(5):  # move somewhere, then compare with holding there
            obs, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
            errs.append(np.abs(act(obs) - env.hold_action()).max())
    return float(np.max(errs))


def test_hold_prior_makes_the_actor_hold_the_robot():
    venv = VecNormalize(DummyVecEnv([fingergym.make_env] * 2))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, device="cpu", seed=0)
    env = fingergym.make_env()
    before = _hold_error(model, venv, env, [50, 51])
    summary = hold_prior(model, venv, steps=600, epochs=40, batch_size=64, lr=1e-3, seed=7,
                         log=lambda *_: None)
    after = _hold_error(model, venv, env, [50, 51])
    assert summary["steps"] == 600 and summary["action_mse"] < 0.01
    assert before > 0.3 and after < 0.15, (before, after)
    state = env.true_state()  # the hold action maps back onto the finger position
    assert env.scaling.to_target(env.hold_action()) == pytest.approx(
        env.scaling.clamp_target(state[3:5]), abs=1e-5)
