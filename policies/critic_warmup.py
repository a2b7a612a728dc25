"""Critic warm-up: PPO's first updates after a warm start train the critic only.

A cloned actor is only as good as the advantages PPO computes for it, and those come from a
critic fitted to the demonstrator's returns, not the clone's. Until the critic has seen the
clone's own rollouts, its advantages are mostly noise, and PPO's first updates move a good clone
in random directions (measured: a clone at 65% success fell to 20-35% within 40 k steps in 3 of
4 seeds; docs/training.md, fifth round). Holding the actor still for a few updates (its parameters
receive no gradient; Adam skips them) lets the critic catch up first.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.callbacks import BaseCallback


def actor_parameters(policy) -> list[th.nn.Parameter]:
    """The parameters that only the actor uses: its MLP, the action head and the log std."""
    params = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    if isinstance(getattr(policy, "log_std", None), th.nn.Parameter):
        params.append(policy.log_std)
    return params


class CriticWarmupCallback(BaseCallback):
    """The first ``updates`` PPO updates of this ``learn`` call leave the actor unchanged."""

    def __init__(self, updates: int, log=print):
        super().__init__()
        self.updates = updates
        self.rollouts = 0
        self.log = log

    def _set_actor_trainable(self, trainable: bool) -> None:
        for p in actor_parameters(self.model.policy):
            p.requires_grad_(trainable)

    def _on_training_start(self) -> None:
        if self.updates > 0:
            self._set_actor_trainable(False)
            self.log(f"critic warm-up: the first {self.updates} PPO updates train the critic "
                     f"only")

    def _on_rollout_end(self) -> None:
        # called after each rollout, before the update that uses it
        self.rollouts += 1
        if self.rollouts == self.updates + 1:
            self._set_actor_trainable(True)

    def _on_training_end(self) -> None:
        self._set_actor_trainable(True)

    def _on_step(self) -> bool:
        return True
