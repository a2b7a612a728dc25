"""A PPO actor whose Gaussian mean stays inside the action bounds: ``mean = tanh(action_net(h))``.

SB3's PPO samples ``N(mean, std)`` with an unbounded mean and the env clips the sample to
[-1, 1]. A mean that drifts past a bound then makes every sample the same clipped action: the
advantage of moving back is never seen and exploration along that dimension dies (observed on
the gripper lift: the z mean saturates below the floor and the policy never lifts). Squashing
only the mean keeps the Gaussian's log-probability exact (no change-of-variables term), samples
still reach the bounds, and the gradient back from a bound is never zero. The exported policy's
last layer carries ``"activation": "tanh"`` (:mod:`fingergym.policies.runner`).
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

MAX_TARGET = 0.95  # |mean| regression targets are clipped here (tanh never reaches 1)


class BoundedMeanPolicy(ActorCriticPolicy):
    """``ActorCriticPolicy`` (MlpPolicy) with ``tanh`` on the Gaussian's mean."""

    def action_mean(self, latent_pi: th.Tensor) -> th.Tensor:
        return th.tanh(self.action_net(latent_pi))

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor):
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise TypeError("policy.bounded_mean needs a diagonal Gaussian (no gSDE)")
        return self.action_dist.proba_distribution(self.action_mean(latent_pi), self.log_std)


def action_mean(policy: ActorCriticPolicy, latent_pi: th.Tensor) -> th.Tensor:
    """The actor's mean action for ``latent_pi``, bounded or not."""
    fn = getattr(policy, "action_mean", None)
    return fn(latent_pi) if fn is not None else policy.action_net(latent_pi)


def mean_targets(policy: ActorCriticPolicy, actions: th.Tensor) -> th.Tensor:
    """Regression targets for the mean: clipped inside tanh's range for a bounded actor."""
    if isinstance(policy, BoundedMeanPolicy):
        return actions.clamp(-MAX_TARGET, MAX_TARGET)
    return actions
