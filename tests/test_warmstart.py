"""The warm start's behaviour cloning: ``successful_only`` clones the expert's successful
episodes only, while the critic still learns from every episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO

from fingergym.policies.warmstart import Rollouts, fit


def _model() -> PPO:
    return PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0, device="cpu",
               policy_kwargs={"net_arch": [16]})


def _rollouts() -> Rollouts:
    """Two 50-step episodes on the same observations: the successful one acts +0.5, the
    failed one -0.5."""
    obs = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    return Rollouts(np.r_[obs, obs], np.r_[np.full((50, 1), 0.5), np.full((50, 1), -0.5)],
                    [np.ones((50, 1)), np.zeros((50, 1))], [True, False],
                    np.r_[np.zeros(50, int), np.ones(50, int)])


def _mean_action(model: PPO, obs: np.ndarray) -> float:
    with th.no_grad():
        return float(model.policy.get_distribution(th.as_tensor(obs)).distribution.mean.mean())


def test_successful_rows_pick_the_successful_episode():
    data = _rollouts()
    assert data.successful_rows().tolist() == [True] * 50 + [False] * 50


def test_subset_and_sum_keep_each_row_with_its_episode():
    data = _rollouts()
    failed = data.subset([1])
    assert failed.success == [False] and failed.episode.tolist() == [0] * 50
    np.testing.assert_array_equal(failed.expert, np.full((50, 1), -0.5))
    swapped = failed + data.subset([0])
    assert swapped.success == [False, True]
    assert swapped.episode.tolist() == [0] * 50 + [1] * 50
    np.testing.assert_array_equal(swapped.successful_rows(), ~data.successful_rows())
    np.testing.assert_array_equal(swapped.rewards[1], data.rewards[0])


def test_actor_rows_clone_only_those_rows_and_the_critic_sees_all():
    data = _rollouts()
    values = np.r_[np.full(50, 3.0), np.full(50, -1.0)].astype(np.float32)
    everything, successful = _model(), _model()
    fit(everything, data.obs, data.expert, values, epochs=200, batch_size=20, lr=3e-3, seed=0)
    fit(successful, data.obs, data.expert, values, epochs=200, batch_size=20, lr=3e-3, seed=0,
        actor_rows=data.successful_rows())
    # the same observations with both labels: all rows average them; successful rows do not
    assert abs(_mean_action(everything, data.obs[:50])) < 0.1
    assert abs(_mean_action(successful, data.obs[:50]) - 0.5) < 0.1
    # the critic learns the average of both episodes' values either way
    with th.no_grad():
        v = successful.policy.predict_values(th.as_tensor(data.obs[:50])).mean().item()
    assert abs(v - 1.0) < 0.3


def _params(module) -> list[np.ndarray]:
    return [p.detach().clone().numpy() for p in module.parameters()]


def test_critic_warmup_holds_the_actor_for_its_updates_then_lets_go():
    from fingergym.policies.critic_warmup import CriticWarmupCallback, actor_parameters

    def run(steps: int) -> tuple[bool, bool]:
        model = PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=64, batch_size=32,
                    n_epochs=2, seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
        actor = [p.detach().clone() for p in actor_parameters(model.policy)]
        critic = _params(model.policy.value_net)
        model.learn(steps, callback=CriticWarmupCallback(1, log=lambda _: None))
        assert all(p.requires_grad for p in model.policy.parameters())
        actor_moved = any(not th.equal(a, p) for a, p in
                          zip(actor, actor_parameters(model.policy), strict=True))
        critic_moved = any(not np.array_equal(a, b) for a, b in
                           zip(critic, _params(model.policy.value_net), strict=True))
        return actor_moved, critic_moved

    assert run(64) == (False, True)   # one update: the critic's only
    assert run(128) == (True, True)   # the second moves the actor too
