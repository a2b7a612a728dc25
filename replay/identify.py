"""Identify a scenario's physics from logged episodes (``fingergym identify BAG_OR_DIR...``).

Each logged episode is re-simulated open-loop with its logged actions from its logged first
state (:func:`~fingergym.replay.replay.replay_in_sim`, the same re-simulation as ``replay --in
sim``), from the *prior* scenario's nominal physics (a sim bag's own logged draw is ignored: the
fit sees every bag as a robot bag) with the fitted parameters overridden. The residual is the
replayed minus logged position of every tracked object and commanded joint, scaled by
:data:`POSITION_SCALE` [m] and :data:`ANGLE_SCALE` [rad], over all steps of all fit episodes.

Continuous parameters are fitted as scales of their prior by bounded nonlinear least squares
(``scipy.optimize.least_squares``, finite-difference Jacobians: the point-contact plant steps
through a discrete solver, AutoDiffXd gradients through it are not worth the time here). The
command delay is discrete: it is profiled, a full continuous fit per integer delay in control
periods, and the delay of least cost wins. Uncertainty: the Gauss-Newton covariance
``(J^T J)^-1 s^2`` with ``s^2 = |r|^2 / (m - p)``; a parameter is *not identifiable* when its
relative std exceeds :data:`UNIDENTIFIABLE_REL_STD` or ``J`` is (near-)rank-deficient along it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fingergym.scenario import Scenario

from .reader import Episode

POSITION_SCALE = 1e-3           # m: 1 mm of position error is one residual unit
ANGLE_SCALE = math.radians(1)   # rad: 1 degree likewise
SCALE_BOUNDS = (0.25, 4.0)      # fitted value / prior
DIFF_STEP = 1e-3                # relative finite-difference step of the Jacobian
GRID = (0.6, 0.8, 1.0, 1.25, 1.5)  # coarse scales of the object's parameters tried jointly
MAX_GRID_PARAMS = 2             # ... when there are at most this many (5^2 re-simulations)
UNIDENTIFIABLE_REL_STD = 0.2    # std / value above which a parameter is reported unidentified
DELAY = "action_delay_periods"
GAIN = "gain_scale"             # kp = prior kp * g, kd = prior kd * sqrt(g) (as randomization)
RANGE_SIGMAS = 3.0              # randomization range narrowed to fitted +- this many std ...
MIN_RANGE = 0.05                # ... but at least +- this fraction of the fitted value


def as_robot_bag(ep: Episode) -> Episode:
    """``ep`` as a robot logs it: without a sim bag's physics draw (a replay starts from the
    scenario's nominal) and noise-free state (it is compared with the logged observation)."""
    meta = {k: v for k, v in ep.metadata.items() if k not in ("episode_params", "final_state")}
    return dataclasses.replace(ep, metadata=meta, state=None)


def head(ep: Episode, steps: int) -> Episode:
    """The first ``steps`` gym steps of ``ep`` (a robot bag's, :func:`as_robot_bag`)."""
    if ep.steps <= steps:
        return ep
    meta = {k: v for k, v in ep.metadata.items()
            if k not in ("final_observation", "final_state")}
    cut = {f: getattr(ep, f)[:steps] for f in ("observation", "action", "target", "reward",
                                                "sim_time", "wall_time", "stamp_ns")}
    return dataclasses.replace(ep, metadata=meta, state=None, **cut)


def default_params(scenario: Scenario) -> list[str]:
    """What training randomizes: friction, gain scale, delay, and every task parameter whose
    scenario entry ``<section>.<leaf>`` has a ``<section>.<leaf>_scale`` range."""
    return ["friction", GAIN, DELAY, *task_scaled_params(scenario)]


def task_scaled_params(scenario: Scenario) -> dict[str, tuple[str, str]]:
    """Task parameter -> (scenario key, its randomization scale range key)."""
    from fingergym.scenario import to_dict

    task, _ = scenario.plugins()
    data = to_dict(scenario)
    out = {}
    for name, key in dict(task.param_rules).items():
        section, _, leaf = key.partition(".")
        node = data.get(section, {})
        if isinstance(node.get(leaf), (int, float)) and isinstance(node.get(f"{leaf}_scale"), list):
            out[name] = (key, f"{section}.{leaf}_scale")
    return out


def prior_values(scenario: Scenario, names: list[str]) -> dict[str, float]:
    """The prior scenario's nominal value of each parameter (``gain_scale``: 1)."""
    from fingergym.sim.params import nominal_params

    flat = nominal_params(scenario).as_dict()
    out = {}
    for n in names:
        if n == GAIN:
            out[n] = 1.0
        elif n in flat:
            out[n] = float(flat[n])
        else:
            raise ValueError(f"--params {n}: unknown physics parameter; known: "
                             f"{sorted([*flat, GAIN])}")
    return out


def overrides_for(values: dict[str, float], scenario: Scenario) -> dict[str, float]:
    """EpisodeParams overrides (``replay --param``) from fitted values (``gain_scale``: kp, kd)."""
    out = {k: v for k, v in values.items() if k != GAIN}
    if GAIN in values:
        g = values[GAIN]
        out.setdefault("kp", scenario.controller.kp * g)
        out.setdefault("kd", scenario.controller.kd * math.sqrt(g))
    return out


def position_channels(scenario: Scenario, robot_only: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the observation layout of the positions compared (``robot_only``: the
    commanded joints' only), and their scales."""
    task, robot = scenario.plugins()
    idx, scale = [], []
    for i, s in enumerate(task.observation().sources.values()):
        if s.kind == "object_pose" and not robot_only:
            idx.append(i)
            scale.append(ANGLE_SCALE if s.axis == 2 else POSITION_SCALE)
        elif s.kind == "joint_position" and s.name in robot.command_layout.names:
            idx.append(i)
            scale.append(POSITION_SCALE)
    return np.array(idx), np.array(scale)


def episode_residual(ep: Episode, scenario: Scenario, values: dict[str, float],
                     robot_only: bool = False):
    """(scaled residual vector, the replay) of one episode with ``values`` overridden."""
    from .replay import replay_in_sim

    rep = replay_in_sim(ep, scenario=scenario, overrides=overrides_for(values, scenario))
    idx, scale = position_channels(scenario, robot_only)
    return (rep.error[:, idx] / scale).ravel(), rep


def max_divergence(ep: Episode, scenario: Scenario, values: dict[str, float]) -> dict[str, float]:
    """Max over the episode of each named divergence (m, rad) with ``values`` overridden."""
    _, rep = episode_residual(ep, scenario, values)
    return {k: float(v.max()) for k, v in rep.divergence().items()}


@dataclass
class Fit:
    """The fit: per parameter prior, fitted value, std, identifiable; the delay profile."""

    prior: dict[str, float]
    value: dict[str, float]
    std: dict[str, float]
    identifiable: dict[str, bool]
    why: dict[str, str]
    cost_prior: float
    cost: float
    residual_rms: float
    delay_profile: dict[int, float] = field(default_factory=dict)
    singular_values: list[float] = field(default_factory=list)
    nfev: int = 0


ROBOT_PARAMS = ("kp", "kd", GAIN)  # what the commanded joints' motion alone determines


def fit(episodes: list[Episode], scenario: Scenario, names: list[str], *,
        delays: list[int] | None = None, max_nfev: int = 30, horizon: float | None = 1.5,
        fit_seconds: float | None = None, progress: Any = None) -> Fit:
    """Fit ``names`` (EpisodeParams fields, task parameters, ``gain_scale``; ``delays`` profiles
    ``action_delay_periods`` when it is among them) to ``episodes`` from ``scenario``'s prior.

    Stages, because the open-loop replay's cost is not convex (a contact made or missed makes
    local minima, e.g. gains that compensate a delay), and gets rougher as the replay drifts
    over long episodes: on the first ``horizon`` seconds of each episode, (1) the controller's
    parameters and the delay on the commanded joints' positions alone (others at their prior),
    the delay profiled over ``delays``; (2) every continuous parameter on all positions at that
    delay, from stage 1's values; then (3) the same on the first ``fit_seconds`` of each
    episode (``None``: the whole episodes), from stage 2's. An open-loop replay through contact
    is chaotic on long episodes (a 10 s flip-up diverges by centimetres whatever the
    parameters), so the prior's cost there can be lower than any fit's; ``fit_seconds`` keeps
    the fit to the stretch the replay can still follow."""
    from scipy.optimize import least_squares

    eps = [as_robot_bag(e) for e in episodes]
    if fit_seconds:
        eps = [head(e, max(1, round(fit_seconds / scenario.episode.step))) for e in eps]
    n_head = (max(1, round(horizon / scenario.episode.step)) if horizon
              else max(e.steps for e in eps))
    short = [head(e, n_head) for e in eps]
    cont = [n for n in names if n != DELAY]
    prior = prior_values(scenario, names)
    base = {n: prior[n] for n in cont}
    for n, v in base.items():
        if v == 0:
            raise ValueError(f"--params {n}: its prior is 0; it cannot be fitted as a scale")
    if DELAY in names:
        delays = list(range(4)) if delays is None else list(delays)
    else:
        delays = [None]
    nfev = 0

    def values_of(x: np.ndarray, d: int | None) -> dict[str, float]:
        v = {n: base[n] * float(s) for n, s in zip(cont, x)}
        if d is not None:
            v[DELAY] = d
        return v

    def residual(x: np.ndarray, d: int | None, free: list[int], x_all: np.ndarray,
                 robot_only: bool = False, which: list[Episode] = eps) -> np.ndarray:
        nonlocal nfev
        nfev += 1
        if progress is not None:
            progress.update(1)
        full = x_all.copy()
        full[free] = x
        return np.concatenate([episode_residual(e, scenario, values_of(full, d), robot_only)[0]
                               for e in which])

    def solve(d, free, x_all, robot_only=False, which=eps):
        if not free:
            r = residual(np.zeros(0), d, free, x_all, robot_only, which)
            return x_all, r, np.zeros((len(r), 0))
        sol = least_squares(residual, x_all[free], args=(d, free, x_all, robot_only, which),
                            bounds=SCALE_BOUNDS, diff_step=DIFF_STEP, max_nfev=max_nfev,
                            method="trf", xtol=1e-5, ftol=1e-8)
        out = x_all.copy()
        out[free] = sol.x
        return out, sol.fun, sol.jac

    x0 = np.ones(len(cont))
    all_idx = list(range(len(cont)))
    r0 = residual(x0[all_idx], prior.get(DELAY) if DELAY in names else None, all_idx, x0)
    robot_idx = [i for i, n in enumerate(cont) if n in ROBOT_PARAMS]
    profile: dict[int, float] = {}
    best = None
    for d in delays:  # stage 1
        if d is None and not robot_idx:
            best = (0.0, None, x0)
            break
        x1, r1, _ = solve(d, robot_idx, x0, robot_only=True, which=short)
        cost1 = 0.5 * float(r1 @ r1)
        if d is not None:
            profile[d] = cost1
        if best is None or cost1 < best[0]:
            best = (cost1, d, x1)
    _, d, x1 = best
    # the object's parameters: a coarse grid over them jointly first (the cost is rough and
    # has coupled valleys, e.g. mass vs friction: from the prior the local fit does not move)
    obj_idx = [i for i in all_idx if i not in robot_idx]
    if 0 < len(obj_idx) <= MAX_GRID_PARAMS:
        best_grid = None
        for combo in itertools.product(GRID, repeat=len(obj_idx)):
            trial = x1.copy()
            trial[obj_idx] = combo
            rr = residual(trial[all_idx], d, all_idx, trial, which=short)
            if best_grid is None or float(rr @ rr) < best_grid[0]:
                best_grid = (float(rr @ rr), trial)
        x1 = best_grid[1]
    x, r, jac = solve(d, all_idx, x1, which=short)  # stage 2
    if any(e.steps > n_head for e in eps):
        x, r, jac = solve(d, all_idx, x)  # stage 3
    cost = 0.5 * float(r @ r)
    m, p = len(r), len(cont)
    s2 = float(r @ r) / max(m - p, 1)
    sv = np.linalg.svd(jac, compute_uv=False) if p else np.zeros(0)
    std, ident, why = {}, {}, {}
    if p:
        cov = np.linalg.pinv(jac.T @ jac, rcond=1e-10) * s2
        rank_ok = sv.min() > 1e-8 * max(sv.max(), 1e-300)
        for i, n in enumerate(cont):
            sd = math.sqrt(max(cov[i, i], 0.0)) * base[n]
            std[n] = sd
            val = x[i] * base[n]
            col = float(np.linalg.norm(jac[:, i]))
            if col < 1e-9 * max(float(np.linalg.norm(jac)), 1e-300) or col == 0:
                ident[n], why[n] = False, "the episodes never excite it (zero sensitivity)"
                std[n] = float("nan")
            elif not rank_ok and sd / abs(val) > UNIDENTIFIABLE_REL_STD:
                ident[n], why[n] = False, "confounded with others (near-singular J^T J)"
            elif sd / abs(val) > UNIDENTIFIABLE_REL_STD:
                ident[n], why[n] = False, (f"std {100 * sd / abs(val):.0f}% of its value "
                                           f"(> {100 * UNIDENTIFIABLE_REL_STD:.0f}%)")
            else:
                ident[n], why[n] = True, ""
    value = {n: float(x[i] * base[n]) for i, n in enumerate(cont)}
    if d is not None:
        value[DELAY] = d
        srt = sorted(profile.values())
        # a delay is identified when the next best costs clearly more than the noise level
        margin = (srt[1] - srt[0]) if len(srt) > 1 else 0.0
        ident[DELAY] = margin > max(s2, 1e-12) * 2
        why[DELAY] = "" if ident[DELAY] else "its cost profile is flat"
        std[DELAY] = 0.0 if ident[DELAY] else float("nan")
    return Fit(prior=prior, value=value, std=std, identifiable=ident, why=why,
               cost_prior=0.5 * float(r0 @ r0), cost=cost, residual_rms=math.sqrt(s2),
               delay_profile=profile, singular_values=[float(v) for v in sv], nfev=nfev)


def identified_scenario(scenario: Scenario, f: Fit) -> Scenario:
    """``scenario`` with the identified parameters as nominal values and their randomization
    ranges narrowed to fitted +- max(RANGE_SIGMAS std, MIN_RANGE) (unidentified ones untouched)."""
    changes: dict[str, Any] = {}
    task_keys = task_scaled_params(scenario)
    def half(n: str) -> float:
        v, sd = f.value[n], f.std.get(n, 0.0)
        return max(RANGE_SIGMAS * (sd if math.isfinite(sd) else 0.0), MIN_RANGE * abs(v))

    for n, ok in f.identifiable.items():
        if not ok:
            continue
        v = f.value[n]
        if n == "friction":
            lo, hi = max(v - half(n), 0.0), v + half(n)
            changes["contact.friction"] = v
            changes["randomization.friction"] = [lo, hi]
        elif n == GAIN:
            changes["controller.kp"] = scenario.controller.kp * v
            changes["controller.kd"] = scenario.controller.kd * math.sqrt(v)
            w = half(n) / v
            changes["randomization.gain_scale"] = [max(1 - w, 0.01), 1 + w]
        elif n in ("kp", "kd"):
            changes[f"controller.{n}"] = v
        elif n == DELAY:
            changes["randomization.action_delay_periods"] = [int(v), int(v)]
        elif n in task_keys:
            key, rng_key = task_keys[n]
            w = half(n) / abs(v)
            changes[key] = v
            changes[rng_key] = [max(1 - w, 0.01), 1 + w]
    return scenario.replace(**changes) if changes else scenario
