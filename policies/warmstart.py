"""Warm start for PPO: behaviour cloning of the task's scripted expert (actor and critic).

The expert (:meth:`fingergym.interfaces.Task.expert`) acts on the TRUE state
(``env.true_state()``); the student learns from the noisy observations it will see in
deployment, so the result is an ordinary observation-feedback policy. The critic is fitted to
the discounted returns of the same rollouts, so the first PPO updates start from a sensible
baseline instead of undoing the clone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from fingergym.policies.bounded import action_mean, mean_targets
from fingergym.scenario import Scenario, ScenarioError


@dataclass
class Rollouts:
    """Expert rollouts: obs (N, n) raw, expert actions (N, m), rewards (one (T, E) array per
    batch of E envs), success (one per episode), episode (N,): each row's index into
    ``success``."""

    obs: np.ndarray
    expert: np.ndarray
    rewards: list[np.ndarray]
    success: list[bool]
    episode: np.ndarray

    def successful_rows(self) -> np.ndarray:
        """Boolean mask (N,): the rows of episodes the expert succeeded in."""
        return np.asarray(self.success, dtype=bool)[self.episode]

    def successful_episodes(self) -> Rollouts:
        """:meth:`subset` of the episodes the expert succeeded in."""
        return self.subset([i for i, ok in enumerate(self.success) if ok])

    def subset(self, episodes: list[int]) -> Rollouts:
        """These episodes (ascending indices), renumbered from 0; for one-env rollouts (one
        reward array per episode, as the planner's)."""
        new = np.full(len(self.success), -1)
        new[episodes] = np.arange(len(episodes))
        rows = new[self.episode] >= 0
        return Rollouts(self.obs[rows], self.expert[rows], [self.rewards[i] for i in episodes],
                        [self.success[i] for i in episodes], new[self.episode[rows]])

    def __add__(self, other: Rollouts) -> Rollouts:
        """Both sets of episodes, ``other``'s renumbered after these."""
        return Rollouts(np.concatenate([self.obs, other.obs]),
                        np.concatenate([self.expert, other.expert]),
                        self.rewards + other.rewards, self.success + other.success,
                        np.concatenate([self.episode, other.episode + len(self.success)]))


def collect(venv: VecEnv, expert: Callable[[np.ndarray], np.ndarray], episodes: int,
            seed: int) -> Rollouts:
    """Run the expert for ``episodes`` episodes (rounded up to whole batches of
    ``venv.num_envs``, seeds ``seed, seed+1, ...``); label each observation with its action."""
    n = venv.num_envs
    obs_l, exp_l, rew_l, succ, ep_l = [], [], [], [], []
    for b in range(int(np.ceil(episodes / n))):
        venv.seed(seed + b * n)
        obs = venv.reset()
        rewards, done = [], False
        while not done:
            states = venv.env_method("true_state")
            labels = np.stack([expert(s) for s in states]).astype(np.float32)
            obs_l.append(obs.copy())
            exp_l.append(labels)
            ep_l.append(b * n + np.arange(n))
            obs, rew, dones, infos = venv.step(labels)
            rewards.append(rew)
            done = bool(dones.all())
        rew_l.append(np.asarray(rewards))
        succ += [bool(i.get("is_success", False)) for i in infos]
    return Rollouts(np.concatenate(obs_l), np.concatenate(exp_l), rew_l, succ,
                    np.concatenate(ep_l))


def _value_targets(rewards: list[np.ndarray], vecnorm: VecNormalize | None,
                   gamma: float) -> np.ndarray:
    """Discounted return-to-go of each step, in VecNormalize's reward scale; the tail beyond the
    time limit is bootstrapped as if the last reward continued (PPO bootstraps truncations)."""
    out = []
    for r in rewards:  # (T, E)
        if vecnorm is not None and vecnorm.norm_reward:
            ret = np.zeros(r.shape[1])
            for t in range(len(r)):  # the same running statistics VecNormalize keeps
                ret = ret * gamma + r[t]
                vecnorm.ret_rms.update(ret)
            r = np.clip(r / np.sqrt(vecnorm.ret_rms.var + vecnorm.epsilon),
                        -vecnorm.clip_reward, vecnorm.clip_reward)
        g = r[-1] / (1.0 - gamma)
        rtg = np.zeros_like(r)
        for t in range(len(r) - 1, -1, -1):
            g = r[t] + gamma * g
            rtg[t] = g
        out.append(rtg.reshape(-1))  # step-major, env inner: the order of Rollouts.obs
    return np.concatenate(out).astype(np.float32)


def fit(model: PPO, obs: np.ndarray, actions: np.ndarray, values: np.ndarray | None, *,
        epochs: int, batch_size: int, lr: float, seed: int,
        actor_rows: np.ndarray | None = None) -> float:
    """Regress the actor mean onto ``actions`` (and the critic onto ``values``); returns the
    actor's MSE. ``actor_rows`` (N,) bool: the actor learns from these rows only, the critic
    from all."""
    policy = model.policy
    opt = th.optim.Adam(policy.parameters(), lr=lr)
    x = th.as_tensor(obs, dtype=th.float32)
    y = mean_targets(policy, th.as_tensor(actions, dtype=th.float32))
    v = None if values is None else th.as_tensor(values, dtype=th.float32)
    w = th.ones(len(x)) if actor_rows is None else th.as_tensor(actor_rows, dtype=th.float32)
    gen = th.Generator().manual_seed(seed)
    loss_a = th.tensor(0.0)
    for _ in range(epochs):
        perm = th.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            features = policy.extract_features(x[idx], policy.pi_features_extractor)
            latent_pi, latent_vf = policy.mlp_extractor(features)
            err = ((action_mean(policy, latent_pi) - y[idx]) ** 2).mean(-1)
            loss_a = (err * w[idx]).sum() / w[idx].sum().clamp(min=1.0)
            loss = loss_a
            if v is not None:
                loss = loss + 0.5 * th.mean((policy.value_net(latent_vf).squeeze(-1) - v[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return float(loss_a.detach())


def warm_start(model: PPO, vecnorm: VecNormalize | None, scenario: Scenario, *, episodes: int,
               epochs: int, batch_size: int, lr: float, log_std: float, seed: int,
               expert: str = "task", successful_only: bool = False, log=print,
               workers: int = 1, cache: bool = False, dagger_rounds: int = 0,
               dagger_episodes: int = 50,
               progress: Callable[[int, bool], None] | None = None) -> dict:
    """Clone the expert into ``model`` (actor and critic); returns a summary.

    ``expert="task"`` runs the task's scripted expert in the training VecEnv; ``"planner"``
    collects closed-loop planner episodes, ``workers`` at a time, calling
    ``progress(env_steps, success)`` after each
    (:func:`fingergym.planning.demos.collect_demonstrations`; no hand-written expert;
    ``cache``: reused from, or stored in, :func:`fingergym.planning.demo_cache.default_dir`).
    ``successful_only`` fits the actor on the episodes the expert succeeded in only (a
    demonstrator's failures are often erratic and pull the clone's mean towards keeping
    still); the critic still learns the returns of all of them.
    ``dagger_rounds`` (planner only) then runs :func:`dagger` that many times.
    Also feeds the expert observations into ``vecnorm``'s statistics, so PPO starts with the
    normalization the clone was fitted under.
    """
    venv = vecnorm.venv if vecnorm is not None else model.get_env()
    t0 = time.perf_counter()
    if expert == "planner":
        from fingergym.planning.demo_cache import default_dir
        from fingergym.planning.demos import collect_demonstrations

        data = collect_demonstrations(scenario, episodes, seed, workers=workers,
                                      progress=progress, log=log,
                                      cache_dir=default_dir() if cache else None)
    else:
        task, robot = scenario.plugins()
        scripted = task.expert()
        if scripted is None:
            from fingergym.planning.demos import cannot_plan

            planner = ("" if cannot_plan(scenario)
                       else " or warm_start.expert: planner (the planner plans this task)")
            raise ScenarioError(f"task {task.name!r} on robot {robot.name!r} has no scripted "
                                f"expert to warm-start from: set warm_start.episodes: 0{planner}")
        data = collect(venv, scripted, episodes, seed)
    summary = {"episodes": len(data.success), "expert_success": float(np.mean(data.success))}
    log(f"warm start: expert success {summary['expert_success']:.0%} on {len(data.success)} "
        f"episodes ({time.perf_counter() - t0:.0f} s)")
    fit_args = dict(epochs=epochs, batch_size=batch_size, lr=lr, log_std=log_std, seed=seed)
    summary.update(clone(model, vecnorm, data, successful_only=successful_only, **fit_args))
    log(f"warm start: cloned, action mse {summary['action_mse']:.4f} "
        f"({time.perf_counter() - t0:.0f} s)")
    if dagger_rounds:
        demos = data.successful_episodes() if successful_only else data
        summary["dagger"] = dagger(model, vecnorm, scenario, demos,
                                   rounds=dagger_rounds, episodes=dagger_episodes,
                                   workers=workers, progress=progress, log=log, **fit_args)
    summary["seconds"] = time.perf_counter() - t0
    return summary


DAGGER_SEEDS = 1_000_000  # DAgger's episodes: seed + this + ... (after the demonstrations')


def dagger(model: PPO, vecnorm: VecNormalize | None, scenario: Scenario, demos: Rollouts, *,
           rounds: int, episodes: int, epochs: int, batch_size: int, lr: float,
           log_std: float, seed: int, workers: int = 1,
           progress: Callable[[int, bool], None] | None = None,
           on_round: Callable[[dict], None] | None = None, log=print) -> list[dict]:
    """DAgger (Ross, Gordon and Bagnell 2011) with the closed-loop planner as the labeller:
    each round the current clone drives ``episodes`` episodes (seeds ``seed + DAGGER_SEEDS``
    ...), the planner labels every observation with its own action there
    (:func:`fingergym.planning.demos.label_policy_episodes`), and the clone is refitted on
    ``demos`` plus every labelled episode so far (the normalization stays the first fit's).
    Returns per round the clone's success while driving (also handed to ``on_round`` after
    each refit)."""
    from fingergym.planning.demos import label_policy_episodes
    from fingergym.policies.export import live_policy

    labelled, out = None, []
    for r in range(rounds):
        t0 = time.perf_counter()
        policy = live_policy(model, vecnorm, scenario)
        new = label_policy_episodes(scenario, policy, episodes,
                                    seed + DAGGER_SEEDS + r * episodes, workers=workers,
                                    progress=progress)
        labelled = new if labelled is None else labelled + new
        fit = clone(model, vecnorm, demos + labelled, update_stats=False, epochs=epochs,
                    batch_size=batch_size, lr=lr, log_std=log_std, seed=seed + r + 1)
        out.append({"round": r + 1, "driving_success": float(np.mean(new.success)),
                    "labelled_episodes": len(labelled.success), **fit})
        log(f"warm start: DAgger round {r + 1}: the clone drove {episodes} episodes "
            f"({out[-1]['driving_success']:.0%} success), refitted on "
            f"{len(demos.success)} + {len(labelled.success)} "
            f"({time.perf_counter() - t0:.0f} s)")
        if on_round is not None:
            on_round(out[-1])
    return out


def clone(model: PPO, vecnorm: VecNormalize | None, data: Rollouts, *, epochs: int,
          batch_size: int, lr: float, log_std: float, seed: int,
          successful_only: bool = False, update_stats: bool = True) -> dict:
    """Fit ``model``'s actor to ``data``'s expert actions and its critic to their returns,
    then set the policy's log std; returns ``cloned_episodes`` and ``action_mse``.
    ``update_stats`` first feeds the observations into ``vecnorm``'s statistics (False keeps
    the normalization an earlier fit used, e.g. when refitting on more data)."""
    obs = data.obs
    if vecnorm is not None and vecnorm.norm_obs:
        if update_stats:
            vecnorm.obs_rms.update(obs)
        obs = vecnorm.normalize_obs(obs)
    values = _value_targets(data.rewards, vecnorm, model.gamma)
    cloned = None
    if successful_only:
        cloned = data.successful_rows()
        if not cloned.any():
            raise ScenarioError(f"warm_start.successful_only: the expert succeeded in none of "
                                f"its {len(data.success)} episodes; nothing to clone")
    summary = {"cloned_episodes": int(np.sum(data.success)) if successful_only
               else len(data.success)}
    summary["action_mse"] = fit(model, obs, data.expert, values, epochs=epochs,
                                batch_size=batch_size, lr=lr, seed=seed, actor_rows=cloned)
    with th.no_grad():
        model.policy.log_std.fill_(log_std)
    return summary
