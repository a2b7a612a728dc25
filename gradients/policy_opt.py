"""Policy optimization on the randomized box flip-up: REINFORCE, FoBG, AoBG and PPO.

Seeds 002 (do differentiable simulators give better policy gradients?) and 004 (REINFORCE,
causality, baselines) on the real task. Every method optimizes the same policy class from the
same initial policy with the same number of episodes, and is scored on the same held-out
seeds. Episodes run on the env's own plant and reward for the env's own randomized draw of
each seed (:class:`fingergym.gradients.boxflip.EpisodePlant`, bit for bit the env's
trajectory; a test checks it); PPO (stable-baselines3) trains on ``fingergym.make_env``
itself.

**Policy class** (:class:`LinearPolicy`): the mean action is linear in features,
``mu = W phi(t, obs)``, ``W`` ``(2, F)``, with Gaussian action noise of fixed std ``sigma``
(action units). ``phi`` = hat functions of time on ``K + 1`` evenly spaced nodes over the
horizon (so ``W``'s time columns are a piecewise-linear *target sequence*, the open-loop
knots of :mod:`.boxflip`), plus linear feedback on the box's x, angle from vertical and
angular velocity (scaled to order one). ``d = 2F = 18`` parameters: small enough for
forward-mode AutoDiffXd (a rollout costs about 4x a float one), and the open-loop part starts
at a known solution of the nominal episode, which the randomization then breaks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import boxflip
from .estimators import Array, bernstein_eps, choose_alpha

TRAIN_SEED0 = 2_000_000     # optimization episodes: TRAIN_SEED0 + 100000 seed + k
TRACK_SEED0 = 10_000        # held-out seeds for the curves along training (float rollouts)
EVAL_SEED0 = 100_000        # held-out seeds for the final evaluation in fingergym.make_env
FEEDBACK_SCALE = {"box_x": 0.1, "angle_from_vertical": math.pi / 2, "box_omega": 5.0}

METHODS = ("reinforce_total", "reinforce_rtg", "reinforce_rtg_const", "reinforce_rtg_value",
           "fobg", "aobg", "ppo")
LABELS = {"reinforce_total": "REINFORCE (total return)",
          "reinforce_rtg": "REINFORCE (return-to-go)",
          "reinforce_rtg_const": "REINFORCE (rtg - constant baseline)",
          "reinforce_rtg_value": "REINFORCE (rtg - learned V(s, t))",
          "fobg": "FoBG (AutoDiffXd, reparameterized)",
          "aobg": "AoBG (alpha rule: REINFORCE-V + FoBG)",
          "ppo": "PPO (stable-baselines3)"}
ZOBG_VARIANTS = ("total", "rtg", "rtg_const", "rtg_value")


# ---------------------------------------------------------------------------------------------
# the policy class


@dataclass(frozen=True)
class LinearPolicy:
    """``mu = W phi(i, obs)``: hat functions of time (``nodes`` over ``horizon`` env steps)
    plus scaled feedback on the box (``FEEDBACK_SCALE``). Works on float and AutoDiffXd."""

    horizon: int          # env steps per episode
    nodes: int = 6        # hat functions (K + 1 nodes at 0, H/K, ..., H)
    sigma: float = 0.05   # action noise std (action units, [-1, 1] spans the workspace)

    @property
    def n_features(self) -> int:
        return self.nodes + len(FEEDBACK_SCALE)

    @property
    def dim(self) -> int:
        return 2 * self.n_features

    def features(self, i: int, obs: Any) -> Array:
        """``phi`` ``(F,)`` at env step ``i`` (observation taken at ``t = i * step``)."""
        s = min(max(i / self.horizon, 0.0), 1.0) * (self.nodes - 1)
        hats = np.maximum(0.0, 1.0 - np.abs(s - np.arange(self.nodes)))
        ix = boxflip.obs_index
        fb = [obs[ix("box_x")] / FEEDBACK_SCALE["box_x"],
              boxflip.angle_from_vertical(obs[ix("box_theta")])
              / FEEDBACK_SCALE["angle_from_vertical"],
              obs[ix("box_omega")] / FEEDBACK_SCALE["box_omega"]]
        return np.concatenate([hats.astype(object if _is_ad(obs) else float), fb])

    def initial(self, scaling: Any, home: Array, horizon_s: float) -> Array:
        """``theta0`` ``(d,)``: the time part follows :data:`boxflip.NOMINAL_KNOTS` (linearly
        interpolated from home, on the nominal 3.5 s schedule clamped to the horizon), no
        feedback."""
        knots = np.vstack([np.asarray(home, dtype=float),
                           np.asarray(boxflip.NOMINAL_KNOTS, dtype=float)])
        t_knots = np.linspace(0.0, boxflip.NOMINAL_HORIZON, len(knots))
        t_nodes = np.linspace(0.0, horizon_s, self.nodes)
        path = np.stack([np.interp(t_nodes, t_knots, knots[:, c]) for c in range(2)], axis=1)
        W = np.zeros((2, self.n_features))
        W[:, :self.nodes] = scaling.to_action(path).T
        return W.ravel()


def _is_ad(x: Any) -> bool:
    return np.asarray(x).dtype == object


# ---------------------------------------------------------------------------------------------
# episodes


@dataclass
class Batch:
    """``N`` episodes of ``H`` steps at one ``theta``."""

    seeds: list[int]
    eps: Array           # (N, H, 2) standard normal action noise
    phi: Array           # (N, H, F) features seen
    rewards: Array       # (N, H)
    success: Array       # (N,) bool
    grad_return: Array | None = None   # (N, d) d return / d theta (AutoDiffXd episodes)
    grad_reward_norm: Array | None = None  # (N, H) |d r_t / d theta|
    contact_events: list[list[tuple[int, str]]] | None = None  # per episode (step, pair)
    seconds: float = 0.0

    @property
    def returns(self) -> Array:
        return self.rewards.sum(axis=1)

    @property
    def rtg(self) -> Array:
        """Return-to-go ``G_t = sum_{t' >= t} r_t'``, ``(N, H)``."""
        return np.flip(np.cumsum(np.flip(self.rewards, 1), 1), 1)


@dataclass
class Task:
    """The randomized box flip-up as the study runs it: scenario, horizon, policy class."""

    horizon: int = 35
    scenario: Any = None
    policy: LinearPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.scenario = self.scenario or boxflip.load_scenario()
        self.step = self.scenario.episode.step
        self.policy = LinearPolicy(self.horizon)
        self._plants: dict[int, Any] = {}

    @property
    def horizon_s(self) -> float:
        return self.horizon * self.step

    def plant(self, seed: int) -> Any:
        """The env's plant for ``make_env().reset(seed=seed)``'s randomized draw (cached)."""
        if seed not in self._plants:
            if len(self._plants) > 256:
                self._plants.clear()
            self._plants[seed] = boxflip.EpisodePlant(
                self.scenario, boxflip.episode_params(self.scenario, seed))
        return self._plants[seed]

    def theta0(self) -> Array:
        plant = self.plant(TRACK_SEED0)
        return self.policy.initial(plant.scaling, plant.home, self.horizon_s)

    def episode(self, theta: Array, seed: int, eps: Array | None,
                autodiff: bool = False) -> tuple[Any, Array]:
        """One episode of the policy ``theta`` on ``seed``; ``eps`` ``(H, 2)`` action noise
        (``None``: the mean action). Observation noise is drawn from ``seed`` with the std
        the env uses for that draw. Returns the episode and the features ``(H, F)``."""
        plant = self.plant(seed)
        pol = self.policy
        std = boxflip.obs_noise_std(self.scenario, plant.params)
        noise = np.random.default_rng(seed).normal(size=(self.horizon, std.size)) * std
        if autodiff:
            from pydrake.autodiffutils import InitializeAutoDiff

            W = InitializeAutoDiff(np.asarray(theta, dtype=float)).ravel().reshape(2, -1)
        else:
            W = np.asarray(theta, dtype=float).reshape(2, -1)
        phis: list[Array] = []

        def act(i: int, obs: Any) -> Any:
            phi = pol.features(i, obs)
            phis.append(boxflip._values(phi))
            mu = W @ phi
            return mu if eps is None else mu + pol.sigma * eps[i]

        ep = plant.closed_loop(act, self.horizon, noise, pol.dim if autodiff else 0)
        return ep, np.array(phis)

    def collect(self, theta: Array, seeds: list[int], rng: np.random.Generator,
                autodiff: bool = False) -> Batch:
        t0 = time.perf_counter()
        eps = rng.normal(size=(len(seeds), self.horizon, 2))
        phi, rew, ok, grads, gnorm, events = [], [], [], [], [], []
        for s, e in zip(seeds, eps, strict=True):
            ep, f = self.episode(theta, s, e, autodiff)
            phi.append(f)
            rew.append(ep.reward_values())
            ok.append(ep.success())
            if autodiff:
                g = ep.reward_gradients()
                grads.append(g.sum(axis=0))
                gnorm.append(np.linalg.norm(g, axis=1))
                events.append(contact_events(ep.contact_modes()))
        return Batch(list(seeds), eps, np.array(phi), np.array(rew), np.array(ok),
                     np.array(grads) if autodiff else None,
                     np.array(gnorm) if autodiff else None,
                     events if autodiff else None, time.perf_counter() - t0)

    def evaluate(self, theta: Array, seeds: list[int]) -> dict[str, float]:
        """Mean policy (no action noise) on ``seeds``: mean return and success fraction."""
        eps = [self.episode(theta, s, None)[0] for s in seeds]
        return {"return": float(np.mean([e.reward_values().sum() for e in eps])),
                "success": float(np.mean([e.success() for e in eps]))}


def contact_events(modes: Array) -> list[tuple[int, str]]:
    """``(step, pair)`` for every change of a contact pair between consecutive states
    (``modes`` ``(H+1, 4)`` from :meth:`boxflip.Episode.contact_modes`; step ``i`` is the env
    step at whose end the change is seen, 0-based)."""
    out = []
    for i in range(1, len(modes)):
        for k in np.nonzero(modes[i] != modes[i - 1])[0]:
            out.append((i - 1, ("+" if modes[i, k] else "-") + boxflip.CONTACT_PAIRS[k]))
    return out


# ---------------------------------------------------------------------------------------------
# gradient estimators on a batch (ascent directions of the expected return)


def score(batch: Batch, sigma: float) -> Array:
    """``grad_theta log pi(a_t | s_t)`` per step, ``(N, H, d)``: ``(eps_t / sigma) (x) phi_t``."""
    n, h, _ = batch.eps.shape
    return (batch.eps[:, :, :, None] * batch.phi[:, :, None, :] / sigma).reshape(n, h, -1)


def fit_value(batch: Batch, ridge: float = 1e-3) -> Array:
    """Least-squares ``V(s_t, t) = v . phi_t`` fitted to the batch's returns-to-go ``(F,)``."""
    X = batch.phi.reshape(-1, batch.phi.shape[-1])
    y = batch.rtg.ravel()
    return np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y)


def reinforce_samples(batch: Batch, sigma: float, variant: str,
                      value: Array | None = None) -> Array:
    """Per-episode REINFORCE summands ``(N, d)`` (their mean is the estimate), seed 004:

    * ``total``: ``sum_t grad log pi_t * R``;
    * ``rtg``: ``sum_t grad log pi_t * G_t`` (causality: only rewards after the action);
    * ``rtg_const``: ``G_t - b``, ``b`` the mean return-to-go of the *other* episodes of the
      batch (leave-one-out: independent of episode i, so unbiased);
    * ``rtg_value``: ``G_t - V(s_t, t)``, ``V`` fitted on an earlier batch (``value``;
      ``None``: falls back to ``rtg_const``).
    """
    sc = score(batch, sigma)
    G = batch.rtg
    n = G.shape[0]
    if variant == "total":
        w = np.repeat(batch.returns[:, None], G.shape[1], axis=1)
    elif variant == "rtg":
        w = G
    elif variant == "rtg_const" or (variant == "rtg_value" and value is None):
        tot = G.mean(axis=1)
        b = (tot.sum() - tot) / max(n - 1, 1)
        w = G - b[:, None]
    elif variant == "rtg_value":
        w = G - batch.phi @ value
    else:
        raise ValueError(f"unknown REINFORCE variant {variant!r}; one of {ZOBG_VARIANTS}")
    return np.einsum("nhd,nh->nd", sc, w)


def trace_var(x: Array) -> float:
    """Trace of the sample covariance of rows ``(N, d)`` (ddof=1): per-sample variance."""
    return float(np.sum(x.var(axis=0, ddof=1)))


def alpha_rule(zs: Array, fs: Array, gamma_frac: float, confidence: float) -> dict[str, Any]:
    """The AoBG rule on per-episode ZoBG ``zs`` and FoBG ``fs`` summands ``(N, d)``.

    ``gamma = gamma_frac * |ZoBG|`` (a relative trust region: the step is taken by Adam, so
    only the direction matters) and ``L`` = the largest per-episode ZoBG norm of the batch.
    """
    n, d = zs.shape
    z, f = zs.mean(axis=0), fs.mean(axis=0)
    v0, v1 = trace_var(zs), trace_var(fs)
    lip = float(np.linalg.norm(zs, axis=1).max())
    gamma = gamma_frac * float(np.linalg.norm(z))
    eps = float(bernstein_eps(v0, n, d, lip, confidence))
    alpha = float(choose_alpha(f[None], z[None], np.array([v1]), np.array([v0]),
                               np.array([eps]), max(gamma, 1e-300))[0])
    diff = fs - zs  # paired: the same episodes
    se = diff.std(axis=0, ddof=1) / math.sqrt(n)
    return {"alpha": alpha, "alpha_bar": v0 / (v0 + v1) if v0 + v1 > 0 else 1.0,
            "eps": eps, "gamma": gamma, "lipschitz": lip, "var_zero": v0, "var_first": v1,
            "bias_hat": float(np.linalg.norm(f - z)),
            "bias_z": float(np.max(np.abs(f - z) / np.maximum(se, 1e-300))),
            "cosine": float(z @ f / max(np.linalg.norm(z) * np.linalg.norm(f), 1e-300)),
            "zobg_norm": float(np.linalg.norm(z)), "fobg_norm": float(np.linalg.norm(f)),
            "grad": alpha * f + (1 - alpha) * z}


# ---------------------------------------------------------------------------------------------
# optimization runs


@dataclass
class RunConfig:
    """One study: sizes, step size and seeds (``quick()`` for tests and the quick bench)."""

    iterations: int = 24
    episodes: int = 12          # per iteration (every method)
    lr: float = 0.01            # Adam, the gradient methods
    ppo_lr: float = 3e-4        # Adam, PPO (its default; it takes many steps per batch)
    track_every: int = 4        # iterations between held-out curve points
    track_episodes: int = 24    # held-out seeds TRACK_SEED0.. (float rollouts)
    eval_episodes: int = 50     # held-out seeds EVAL_SEED0.. (fingergym.make_env)
    horizon: int = 35           # env steps (3.5 s)
    gamma_frac: float = 0.5     # AoBG trust region relative to |ZoBG|
    confidence: float = 0.95
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> RunConfig:
        return cls(iterations=2, episodes=3, track_every=2, track_episodes=3,
                   eval_episodes=3, horizon=20, seed=seed)

    @property
    def budget(self) -> int:
        """Episodes per method."""
        return self.iterations * self.episodes


class _Clock:
    """Wall-clock of optimization only (evaluation time excluded)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def pause(self) -> Callable[[], None]:
        t = time.perf_counter()

        def resume() -> None:
            self.paused += time.perf_counter() - t
        return resume


def _track(task: Task, cfg: RunConfig, theta: Array, it: int, clock: _Clock,
           curve: list[dict[str, float]]) -> None:
    resume = clock.pause()
    ev = task.evaluate(theta, [TRACK_SEED0 + k for k in range(cfg.track_episodes)])
    resume()
    curve.append({"iteration": it, "episodes": it * cfg.episodes,
                  "env_steps": it * cfg.episodes * cfg.horizon, "seconds": clock(), **ev})


def run_gradient_method(method: str, task: Task, cfg: RunConfig,
                        progress: Any = None) -> dict[str, Any]:
    """Adam ascent with one estimator; returns the curve, diagnostics and final ``theta``."""
    import torch

    if method not in METHODS or method == "ppo":
        raise ValueError(f"unknown gradient method {method!r}")
    autodiff = method in ("fobg", "aobg")
    variant = method.removeprefix("reinforce_") if method.startswith("reinforce") else None
    rng = np.random.default_rng(cfg.seed)
    theta = torch.tensor(task.theta0(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=cfg.lr)
    sigma = task.policy.sigma
    value, curve, diag = None, [], []
    clock = _Clock()
    _track(task, cfg, theta.detach().numpy(), 0, clock, curve)
    for it in range(cfg.iterations):
        seeds = [TRAIN_SEED0 + 100_000 * cfg.seed + it * cfg.episodes + k
                 for k in range(cfg.episodes)]
        th = theta.detach().numpy().copy()
        t0 = time.perf_counter()
        batch = task.collect(th, seeds, rng, autodiff)
        zs = {v: reinforce_samples(batch, sigma, v, value) for v in ZOBG_VARIANTS}
        row: dict[str, Any] = {"iteration": it, "train_return": float(batch.returns.mean()),
                               "train_success": float(batch.success.mean()),
                               "rollout_s": batch.seconds,
                               **{f"var_{v}": trace_var(zs[v]) for v in ZOBG_VARIANTS}}
        if autodiff:
            fs = batch.grad_return
            rule = alpha_rule(zs["rtg_value"], fs, cfg.gamma_frac, cfg.confidence)
            g = fs.mean(axis=0) if method == "fobg" else rule.pop("grad")
            rule.pop("grad", None)
            row.update(rule)
            row["where"] = _where(batch)
        else:
            g = zs[variant].mean(axis=0)
        value = fit_value(batch)
        opt.zero_grad()
        theta.grad = -torch.as_tensor(g)  # ascent
        opt.step()
        row["grad_s"] = time.perf_counter() - t0
        row["grad_norm"] = float(np.linalg.norm(g))
        diag.append(row)
        if (it + 1) % cfg.track_every == 0 or it + 1 == cfg.iterations:
            _track(task, cfg, theta.detach().numpy(), it + 1, clock, curve)
        if progress is not None:
            progress.update(cfg.episodes)
    return {"method": method, "curve": curve, "iterations": diag,
            "theta": theta.detach().numpy().tolist(), "seconds": clock()}


def _where(batch: Batch) -> dict[str, Any]:
    """Where in the episode FoBG's largest per-episode gradient comes from: for the episode
    with the largest ``|d return / d theta|``, the step where ``|d r_t / d theta|`` jumps the
    most (the onset of the sensitivity) and the contact-pair changes within 2 env steps of
    it."""
    norms = np.linalg.norm(batch.grad_return, axis=1)
    k = int(np.argmax(norms))
    jump = np.diff(np.r_[0.0, batch.grad_reward_norm[k]])
    t_star = int(np.argmax(jump))
    near = [p for (i, p) in batch.contact_events[k] if abs(i - t_star) <= 2]
    return {"episode": k, "norm_max_over_median": float(norms[k] / max(np.median(norms),
                                                                        1e-300)),
            "step": t_star, "events": near,
            "first_event_steps": {p: i for (i, p) in reversed(batch.contact_events[k])}}


# ---------------------------------------------------------------------------------------------
# PPO on the env itself, same policy class


def make_feature_env(task: Task) -> Any:
    """``fingergym.make_env`` (randomized) seen through :meth:`LinearPolicy.features`,
    ``task.horizon`` steps per episode (truncation)."""
    import gymnasium as gym

    import fingergym

    pol = task.policy

    class FeatureObs(gym.Wrapper):
        def __init__(self, env: Any):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (pol.n_features,),
                                                    np.float32)
            self._i = 0

        def _phi(self, obs: Array) -> Array:
            return pol.features(self._i, np.asarray(obs, dtype=float)).astype(np.float32)

        def reset(self, **kw: Any) -> Any:
            obs, info = self.env.reset(**kw)
            self._i = 0
            return self._phi(obs), info

        def step(self, action: Any) -> Any:
            obs, r, term, trunc, info = self.env.step(action)
            self._i += 1
            return self._phi(obs), r, term, trunc or self._i >= task.horizon, info

    return FeatureObs(fingergym.make_env(task.scenario))


def run_ppo(task: Task, cfg: RunConfig, progress: Any = None) -> dict[str, Any]:
    """PPO with the linear actor ``W phi`` (no bias, log-std frozen at ``log sigma``), the
    same ``theta0``, ``cfg.episodes`` episodes per rollout and the same episode budget."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    n_steps = cfg.episodes * cfg.horizon
    venv = DummyVecEnv([lambda: make_feature_env(task)])
    venv.seed(TRAIN_SEED0 + 1_000_000 + cfg.seed)
    model = PPO("MlpPolicy", venv, learning_rate=cfg.ppo_lr, n_steps=n_steps,
                batch_size=max(n_steps // 4, 2), n_epochs=10, gamma=0.99, gae_lambda=0.95,
                clip_range=0.2, ent_coef=0.0, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": {"pi": [], "vf": [64, 64]},
                               "log_std_init": math.log(task.policy.sigma)})
    pol = model.policy
    F = task.policy.n_features
    with torch.no_grad():
        pol.action_net.weight.copy_(torch.as_tensor(task.theta0().reshape(2, F)))
        pol.action_net.bias.zero_()
    pol.action_net.bias.requires_grad_(False)
    pol.log_std.requires_grad_(False)

    def theta() -> Array:
        return pol.action_net.weight.detach().numpy().astype(float).ravel()

    curve: list[dict[str, float]] = []
    clock = _Clock()
    _track(task, cfg, theta(), 0, clock, curve)
    state = {"it": 0, "t": time.perf_counter()}
    iters: list[dict[str, float]] = []

    class Track(BaseCallback):
        def _on_rollout_start(self) -> None:  # after the previous update
            it = state["it"]
            if it and (it % cfg.track_every == 0):
                _track(task, cfg, theta(), it, clock, curve)

        def _on_rollout_end(self) -> None:
            state["it"] += 1
            if progress is not None:
                progress.update(cfg.episodes)

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=cfg.iterations * n_steps, callback=Track())
    if curve[-1]["iteration"] != cfg.iterations:
        _track(task, cfg, theta(), cfg.iterations, clock, curve)
    venv.close()
    return {"method": "ppo", "curve": curve, "iterations": iters, "theta": theta().tolist(),
            "seconds": clock(), "env_steps": int(model.num_timesteps)}


# ---------------------------------------------------------------------------------------------
# the held-out evaluation in the env itself


def evaluate_in_env(task: Task, theta: Array, episodes: int) -> dict[str, Any]:
    """The mean policy in ``fingergym.make_env`` (randomized) on seeds ``EVAL_SEED0..``:
    return over ``task.horizon`` steps and success (``info['success']`` at the last step)."""
    env = make_feature_env(task)
    W = np.asarray(theta, dtype=float).reshape(2, -1)
    rets, oks = [], []
    try:
        for k in range(episodes):
            phi, _ = env.reset(seed=EVAL_SEED0 + k)
            ret, info = 0.0, {}
            for _ in range(task.horizon):
                phi, r, _, _, info = env.step((W @ phi.astype(float)).astype(np.float32))
                ret += r
            rets.append(ret)
            oks.append(bool(info["success"]))
    finally:
        env.close()
    return {"episodes": episodes, "seeds": [EVAL_SEED0, EVAL_SEED0 + episodes - 1],
            "return_mean": float(np.mean(rets)),
            "return_se": float(np.std(rets, ddof=1) / math.sqrt(episodes)) if episodes > 1
            else 0.0, "success": float(np.mean(oks)), "successes": int(np.sum(oks))}
