"""Reproduce the zero-/first-/alpha-order gradient study of Suh et al. (ICML 2022) on toys.

Run ``python -m fingergym.gradients.bench --help`` (or ``fingergym bench gradients``).

Sections (keys of the ``--json`` object):

* ``ball``  - ball thrown at a wall: bias and standard deviation of ZoBG, FoBG and AoBG
  against the exact smoothed gradient (quadrature) for several theta, sigma and N;
* ``stiff`` - Heaviside and the stiff ramp ``clip(2x/nu, -1, 1)`` over ``nu``;
* ``cliff`` - the pivot-like cliff ``-sin^2`` on ``|theta| <= pi/4``;
* ``optimisation`` - gradient descent with each estimator on the ball and on the cliff;
* ``boxflip`` - (``--boxflip`` only) the estimators on the return of an open-loop finger
  trajectory on the env's own Drake plant (``fingergym.sim.plant``), FoBG through
  AutoDiffXd, with a rollout-vs-env check; ``null`` otherwise;
* ``config``, ``timing_s``, ``plot`` - what was run, how long each part took, the PNG path.

Every bias row carries ``<est>_bias`` (mean estimate minus exact gradient over ``reps``
repetitions), ``<est>_bias_se`` (its standard error), ``<est>_std`` (spread of one estimate);
ZoBG/FoBG rows also carry the quadrature predictions ``*_quad``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .descent import gradient_descent
from .estimators import (
    AlphaOrder,
    Array,
    Estimator,
    FirstOrder,
    Objective,
    ZeroOrder,
    aobg,
    fobg,
    zobg,
)
from .quadrature import smoothed_moments
from .toys import BallParams, ball_wall_edge, ball_with_wall, heaviside, pivot_cliff, stiff_ramp

BALL_THETAS = (0.1, 0.5, 0.6932, 0.7854)
SIGMAS = (0.05, 0.1)
SAMPLE_COUNTS = (10, 100, 1000)
NUS = (1.0, 0.1, 0.01, 0.001)
CLIFF_THETAS = (0.5, 0.7, 0.7854)
CONFIDENCE = 0.95
BALL_GAMMA = 0.02
CLIFF_GAMMA = 1.0
STIFF_GAMMA = 1.0
ESTIMATORS = ("zobg", "fobg", "aobg")
_LABEL = {"zobg": "ZoBG", "fobg": "FoBG", "aobg": "AoBG"}

JSON_KEYS = ("version", "config", "ball", "stiff", "cliff", "optimisation", "boxflip",
             "timing_s", "plot")
BIAS_ROW_KEYS = ("problem", "theta", "sigma", "n", "reps", "exact_grad",
                 "zobg_bias", "zobg_bias_se", "zobg_std", "zobg_std_quad",
                 "fobg_bias", "fobg_bias_se", "fobg_std", "fobg_bias_quad", "fobg_std_quad",
                 "fobg_frac_zero", "aobg_bias", "aobg_bias_se", "aobg_std", "aobg_alpha_mean",
                 "aobg_eps_mean", "aobg_gamma", "aobg_lipschitz")
OPT_ROW_KEYS = ("problem", "estimator", "theta0", "sigma", "n", "step", "iterations", "trials",
                "final_theta_mean", "final_theta_std", "final_cost_mean", "final_cost_std",
                "cost_at_100_mean", "alpha_mean", "success_frac", "success_rule",
                "first_success_iter_median", "seconds")


@dataclass
class BenchConfig:
    """Sizes of the study; ``quick()`` shrinks it for tests."""

    reps: int = 1000
    sigmas: tuple[float, ...] = SIGMAS
    sample_counts: tuple[int, ...] = SAMPLE_COUNTS
    ball_thetas: tuple[float, ...] = BALL_THETAS
    nus: tuple[float, ...] = NUS
    opt_sigma: float = 0.1
    opt_n: int = 50
    opt_step: float = 0.1
    opt_iterations: int = 1000
    opt_trials: int = 20
    sweep_points: int = 131
    sweep_reps: int = 200
    confidence: float = CONFIDENCE
    seed: int = 0
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_config(cls, seed: int = 0) -> BenchConfig:
        return cls(reps=200, sample_counts=(10, 100), nus=(0.1, 0.001), opt_iterations=1000,
                   opt_trials=8, sweep_points=41, sweep_reps=60, seed=seed, quick=True)


# ---------------------------------------------------------------------------------------------
# AoBG settings per problem (documented in docs/gradients.md)


def ball_spread(p: BallParams | None = None) -> float:
    """Range of the ball objective ``max f - min f = (v0^2 / g)^2``."""
    p = BallParams() if p is None else p
    return (p.v0**2 / p.g) ** 2


def lipschitz_heuristic(spread: float, sigma: float) -> float:
    """``L = 2 * spread / sigma``: bounds ``|f - b| |w| / sigma^2`` for ``|w| <= 2 sigma``."""
    return 2.0 * spread / sigma


def ball_aobg(sigma: float, n: int, confidence: float = CONFIDENCE) -> AlphaOrder:
    return AlphaOrder(sigma, n, BALL_GAMMA, lipschitz_heuristic(ball_spread(), sigma),
                      confidence)


def cliff_aobg(sigma: float, n: int, confidence: float = CONFIDENCE) -> AlphaOrder:
    return AlphaOrder(sigma, n, CLIFF_GAMMA, lipschitz_heuristic(0.5, sigma), confidence)


def stiff_aobg(sigma: float, n: int, confidence: float = CONFIDENCE) -> AlphaOrder:
    return AlphaOrder(sigma, n, STIFF_GAMMA, lipschitz_heuristic(1.0, sigma), confidence)


# ---------------------------------------------------------------------------------------------
# bias / variance


def bias_row(problem: str, objective: Objective, theta: float, sigma: float, n: int, reps: int,
             ao: AlphaOrder, rng: np.random.Generator) -> dict[str, Any]:
    """Run each estimator ``reps`` times at ``theta`` and compare with quadrature."""
    m = smoothed_moments(objective, theta, sigma)
    exact = float(m.grad[0])
    batch = np.full((reps, 1), float(theta))
    ez = zobg(objective, batch, sigma, n, rng)
    ef = fobg(objective, batch, sigma, n, rng)
    ea = aobg(objective, batch, sigma, n, rng, ao.gamma, ao.lipschitz, ao.confidence)
    row: dict[str, Any] = {"problem": problem, "theta": float(theta), "sigma": sigma, "n": n,
                           "reps": reps, "exact_grad": exact}
    for key, est in (("zobg", ez), ("fobg", ef), ("aobg", ea)):
        g = np.asarray(est.grad)[:, 0]
        std = float(g.std(ddof=1))
        row[f"{key}_bias"] = float(g.mean() - exact)
        row[f"{key}_bias_se"] = std / math.sqrt(reps)
        row[f"{key}_std"] = std
    row["zobg_std_quad"] = float(m.zo_std(n)[0])
    row["fobg_bias_quad"] = float(m.fo_bias[0])
    row["fobg_std_quad"] = float(m.fo_std(n)[0])
    row["fobg_frac_zero"] = float(np.mean(np.asarray(ef.grad)[:, 0] == 0.0))
    row["aobg_alpha_mean"] = float(np.mean(ea.alpha))
    row["aobg_eps_mean"] = float(np.mean(ea.eps))
    row["aobg_gamma"] = ao.gamma
    row["aobg_lipschitz"] = ao.lipschitz
    return row


def run_ball(cfg: BenchConfig, rng: np.random.Generator, tick: Any = None) -> list[dict]:
    obj = ball_with_wall()
    rows = []
    for sigma in cfg.sigmas:
        for theta in cfg.ball_thetas:
            for n in cfg.sample_counts:
                rows.append(bias_row("ball_with_wall", obj, theta, sigma, n, cfg.reps,
                                     ball_aobg(sigma, n, cfg.confidence), rng))
                if tick:
                    tick()
    return rows


def run_stiff(cfg: BenchConfig, rng: np.random.Generator, tick: Any = None,
              theta: float = 0.0, sigma: float = 0.1) -> list[dict]:
    problems = [("heaviside", heaviside())] + [(f"ramp nu={nu:g}", stiff_ramp(nu))
                                               for nu in cfg.nus]
    rows = []
    for name, obj in problems:
        for n in cfg.sample_counts:
            rows.append(bias_row(name, obj, theta, sigma, n, cfg.reps,
                                 stiff_aobg(sigma, n, cfg.confidence), rng))
            if tick:
                tick()
    return rows


def run_cliff(cfg: BenchConfig, rng: np.random.Generator, tick: Any = None,
              sigma: float = 0.1, n: int = 100) -> list[dict]:
    obj = pivot_cliff()
    rows = []
    for theta in CLIFF_THETAS:
        rows.append(bias_row("pivot_cliff", obj, theta, sigma, n, cfg.reps,
                             cliff_aobg(sigma, n, cfg.confidence), rng))
        if tick:
            tick()
    return rows


# ---------------------------------------------------------------------------------------------
# optimisation


def opt_estimators(problem: str, sigma: float, n: int, confidence: float) -> list[Estimator]:
    """ZoBG, FoBG, AoBG; on the ball also two AoBG ablations (paper-code gamma, larger N)."""
    if problem != "ball_with_wall":
        return [ZeroOrder(sigma, n), FirstOrder(sigma, n), cliff_aobg(sigma, n, confidence)]
    ao = ball_aobg(sigma, n, confidence)
    ao2 = ball_aobg(sigma, 2 * n, confidence)
    return [ZeroOrder(sigma, n), FirstOrder(sigma, n), ao,
            replace(ao, gamma=0.01, name="AoBG gamma=0.01"),
            replace(ao2, name=f"AoBG N={2 * n}")]


def run_optimisation(cfg: BenchConfig, rng: np.random.Generator, tick: Any = None,
                     keep: dict | None = None) -> list[dict]:
    """Descent on the ball (from 0.1) and the cliff (from 0.3); ``keep`` gets trajectories."""
    edge = ball_wall_edge()
    setups = [
        ("ball_with_wall", ball_with_wall(), 0.1,
         lambda th: th > edge, f"final theta > wall edge {edge:.4f}"),
        ("pivot_cliff", pivot_cliff(), 0.3,
         lambda th: np.abs(th) <= math.pi / 4, "final |theta| <= pi/4 (still on the pivot)"),
    ]
    rows = []
    for problem, obj, theta0, success, rule in setups:
        for est in opt_estimators(problem, cfg.opt_sigma, cfg.opt_n, cfg.confidence):
            t0 = time.perf_counter()
            tr = gradient_descent(obj, est, [theta0], cfg.opt_step, cfg.opt_iterations,
                                  cfg.opt_trials, rng)
            secs = time.perf_counter() - t0
            th = tr.final_theta[:, 0]
            k100 = min(100, cfg.opt_iterations)
            ok = success(tr.theta[:, :, 0])  # (K+1, T)
            first = np.where(ok.any(axis=0), ok.argmax(axis=0), -1)
            rows.append({
                "problem": problem, "estimator": est.name, "theta0": theta0,
                "sigma": cfg.opt_sigma, "n": cfg.opt_n, "step": cfg.opt_step,
                "iterations": cfg.opt_iterations, "trials": cfg.opt_trials,
                "final_theta_mean": float(th.mean()), "final_theta_std": float(th.std()),
                "final_cost_mean": float(tr.final_cost.mean()),
                "final_cost_std": float(tr.final_cost.std()),
                "cost_at_100_mean": float(tr.cost[k100].mean()),
                "alpha_mean": float(tr.alpha.mean()),
                "success_frac": float(np.mean(success(th))), "success_rule": rule,
                "first_success_iter_median": (float(np.median(first)) if
                                              np.mean(first >= 0) >= 0.5 else None),
                "seconds": secs,
            })
            if keep is not None:
                keep[(problem, est.name)] = tr
            if tick:
                tick()
    return rows


# ---------------------------------------------------------------------------------------------
# plot


def sweep_ball(cfg: BenchConfig, rng: np.random.Generator, sigma: float = 0.1,
               n: int = 100) -> dict[str, Array]:
    """Bias, std and alpha of the three estimators over a theta grid on the ball."""
    obj = ball_with_wall()
    th = np.linspace(0.0, 1.3, cfg.sweep_points)
    m = smoothed_moments(obj, th, sigma)
    r = cfg.sweep_reps
    batch = np.repeat(th, r)[:, None]
    ao = ball_aobg(sigma, n, cfg.confidence)
    ea = aobg(obj, batch, sigma, n, rng, ao.gamma, ao.lipschitz, ao.confidence)
    ga = np.asarray(ea.grad)[:, 0].reshape(th.size, r)
    ez = zobg(obj, batch, sigma, n, rng)
    gz = np.asarray(ez.grad)[:, 0].reshape(th.size, r)
    alphas = {n: np.asarray(ea.alpha).reshape(th.size, r).mean(axis=1)}
    for n_other in (10, 1000):
        small = batch if n_other <= n else np.repeat(th, max(10, r // 4))[:, None]
        ao2 = ball_aobg(sigma, n_other, cfg.confidence)
        e2 = aobg(obj, small, sigma, n_other, rng, ao2.gamma, ao2.lipschitz, ao2.confidence)
        alphas[n_other] = np.asarray(e2.alpha).reshape(th.size, -1).mean(axis=1)
    return {"theta": th, "f": obj.values(th[:, None]), "exact": m.grad,
            "F01": m.value, "F005": smoothed_moments(obj, th, 0.05).value,
            "fo_bias": m.fo_bias, "zo_bias_mc": gz.mean(axis=1) - m.grad,
            "ao_bias_mc": ga.mean(axis=1) - m.grad,
            "zo_std": m.zo_std(n), "fo_std": m.fo_std(n), "ao_std_mc": ga.std(axis=1, ddof=1),
            "zo_std_mc": gz.std(axis=1, ddof=1),
            "alpha10": alphas[10], "alpha100": alphas[n], "alpha1000": alphas[1000],
            "sigma": np.array(sigma), "n": np.array(n)}


def make_plot(path: Path, sweep: dict[str, Array], trajs: dict, stiff_rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ZoBG": "tab:blue", "FoBG": "tab:red", "AoBG": "tab:green"}
    th = sweep["theta"]
    edge = ball_wall_edge()
    n, sigma = int(sweep["n"]), float(sweep["sigma"])
    fig, ax = plt.subplots(4, 2, figsize=(12.5, 15.0))
    fig.suptitle("Zero-, first- and alpha-order gradients through contact "
                 "(Suh et al. ICML 2022 toys)", fontsize=13)

    a = ax[0, 0]
    a.plot(th, sweep["f"], "k-", lw=1.5, label="f(θ) = −x_final²")
    a.plot(th, sweep["F005"], "--", color="tab:purple", label="smoothed F, σ=0.05")
    a.plot(th, sweep["F01"], "-", color="tab:orange", label="smoothed F, σ=0.1")
    a.axvspan(0.3147, edge, color="0.85", zorder=0, label="ball stops at the wall")
    a.axvline(edge, color="0.4", ls=":", lw=1)
    a.set(title="Ball with wall: objective", xlabel="launch angle θ [rad]", ylabel="cost")
    a.legend(fontsize=8, loc="lower left")

    a = ax[0, 1]
    a.plot(th, sweep["exact"], "k-", lw=2, label="exact ∇F (quadrature)")
    a.plot(th, sweep["exact"] + sweep["fo_bias"], color=colors["FoBG"],
           label="E[FoBG] (quadrature)")
    a.plot(th, sweep["exact"] + sweep["ao_bias_mc"], color=colors["AoBG"], ls="--",
           label=f"E[AoBG] (MC, N={n})")
    a.axvline(edge, color="0.4", ls=":", lw=1)
    a.axhline(0, color="0.6", lw=0.5)
    a.set(title=f"Smoothed gradient vs. what FoBG targets (σ={sigma})", xlabel="θ [rad]",
          ylabel="dF/dθ")
    a.legend(fontsize=8)

    a = ax[1, 0]
    a.plot(th, sweep["fo_bias"], color=colors["FoBG"], label="FoBG (exact)")
    a.plot(th, sweep["zo_bias_mc"], color=colors["ZoBG"], label="ZoBG (MC)")
    a.plot(th, sweep["ao_bias_mc"], color=colors["AoBG"], label="AoBG (MC)")
    a.axhspan(-BALL_GAMMA, BALL_GAMMA, color=colors["AoBG"], alpha=0.08,
              label=f"AoBG trust region γ={BALL_GAMMA}")
    a.axvline(edge, color="0.4", ls=":", lw=1)
    a.set(title=f"Bias E[estimate] − ∇F  (σ={sigma}, N={n})", xlabel="θ [rad]", ylabel="bias")
    a.legend(fontsize=8)

    a = ax[1, 1]
    a.semilogy(th, sweep["zo_std"], color=colors["ZoBG"], label="ZoBG (exact)")
    a.semilogy(th, np.maximum(sweep["fo_std"], 1e-12), color=colors["FoBG"],
               label="FoBG (exact)")
    a.semilogy(th, sweep["ao_std_mc"], color=colors["AoBG"], label="AoBG (MC)")
    a.axvline(edge, color="0.4", ls=":", lw=1)
    a.set(title=f"Standard deviation of one estimate (σ={sigma}, N={n})", xlabel="θ [rad]",
          ylabel="std", ylim=(1e-5, None))
    a.legend(fontsize=8)

    a = ax[2, 0]
    for key, ls in (("alpha10", ":"), ("alpha100", "-"), ("alpha1000", "--")):
        a.plot(th, sweep[key], color=colors["AoBG"], ls=ls, label=f"N={key[5:]}")
    a.axvline(edge, color="0.4", ls=":", lw=1)
    a.set(title=f"AoBG: mean α chosen (σ={sigma}, γ={BALL_GAMMA}, confidence {CONFIDENCE})",
          xlabel="θ [rad]", ylabel="α (1 = first order)", ylim=(-0.03, 1.03))
    a.legend(fontsize=8)

    a = ax[2, 1]
    for name in ("ZoBG", "FoBG", "AoBG"):
        tr = trajs.get(("ball_with_wall", name))
        if tr is None:
            continue
        c = tr.cost
        it = np.arange(c.shape[0])
        a.plot(it, c.mean(axis=1), color=colors[name], label=name)
        a.fill_between(it, c.min(axis=1), c.max(axis=1), color=colors[name], alpha=0.15)
    a.axhline(-0.0036, color="0.5", ls=":", lw=1, label="cost at the wall")
    a.set(title="Ball: descent from θ=0.1 (mean, min–max over trials)", xlabel="iteration",
          ylabel="f(θ_k)")
    a.legend(fontsize=8)

    a = ax[3, 0]
    ramp = [r for r in stiff_rows if r["problem"].startswith("ramp") and r["n"] == 100]
    if not ramp:
        ramp = [r for r in stiff_rows if r["problem"].startswith("ramp")]
    nus = np.array([float(r["problem"].split("=")[1]) for r in ramp])
    order = np.argsort(nus)
    if nus.size:
        nn = ramp[0]["n"]
        fo_std = np.array([r["fobg_std"] for r in ramp])[order]
        a.loglog(nus[order], np.where(fo_std > 0, fo_std, np.nan), "o-", color=colors["FoBG"],
                 label="FoBG std (0 at ν=1: every sample on the ramp)")
        a.loglog(nus[order], np.array([r["zobg_std"] for r in ramp])[order], "o-",
                 color=colors["ZoBG"], label="ZoBG std")
        a.set(title=f"Stiff ramp clip(2x/ν,−1,1) at x=0 (σ=0.1, N={nn})",
              xlabel="ν (ramp width)", ylabel="std of one estimate")
        b = a.twinx()
        b.plot(nus[order], np.array([r["fobg_frac_zero"] for r in ramp])[order], "s--",
               color="tab:gray", label="P(FoBG = 0)  (right axis)")
        b.set(ylabel="P(FoBG = 0)", ylim=(-0.02, 1.02))
        h1, l1 = a.get_legend_handles_labels()
        h2, l2 = b.get_legend_handles_labels()
        a.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")

    a = ax[3, 1]
    for name in ("ZoBG", "FoBG", "AoBG"):
        tr = trajs.get(("pivot_cliff", name))
        if tr is None:
            continue
        t = tr.theta[:, :, 0]
        it = np.arange(t.shape[0])
        a.plot(it, t.mean(axis=1), color=colors[name], label=name)
        a.fill_between(it, t.min(axis=1), t.max(axis=1), color=colors[name], alpha=0.15)
    a.axhline(math.pi / 4, color="k", ls=":", lw=1, label="cliff edge π/4")
    a.set(title="Pivot cliff: descent from θ=0.3", xlabel="iteration", ylabel="θ_k")
    a.legend(fontsize=8)

    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# printing


def _e(x: float) -> str:
    return f"{x:+.2e}"


def format_bias_table(rows: list[dict], title: str) -> str:
    head = (f"{'problem':<15}{'sigma':>6}{'theta':>8}{'N':>6} {'exact':>10} | "
            f"{'ZoBG bias':>10}{'std':>10} | {'FoBG bias':>10}{'std':>10}{'P0':>5} | "
            f"{'AoBG bias':>10}{'std':>10}{'alpha':>6}")
    lines = [title, head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['problem']:<15}{r['sigma']:>6g}{r['theta']:>8.4f}{r['n']:>6d} "
            f"{_e(r['exact_grad']):>10} | {_e(r['zobg_bias']):>10}{r['zobg_std']:>10.2e} | "
            f"{_e(r['fobg_bias']):>10}{r['fobg_std']:>10.2e}{r['fobg_frac_zero']:>5.2f} | "
            f"{_e(r['aobg_bias']):>10}{r['aobg_std']:>10.2e}{r['aobg_alpha_mean']:>6.2f}")
    return "\n".join(lines)


def _it(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def format_opt_table(rows: list[dict]) -> str:
    head = (f"{'problem':<15}{'estimator':<18}{'final theta':>16}{'final cost':>22}"
            f"{'cost@100':>11}{'mean alpha':>11}{'success':>9}{'1st iter':>9}{'time':>7}")
    lines = ["Optimisation (theta - step * estimate)", head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['problem']:<15}{r['estimator']:<18}"
            f"{r['final_theta_mean']:>9.4f}±{r['final_theta_std']:<6.4f}"
            f"{r['final_cost_mean']:>12.3e}±{r['final_cost_std']:<9.1e}"
            f"{r['cost_at_100_mean']:>11.3e}{r['alpha_mean']:>11.3f}"
            f"{r['success_frac']:>9.2f}{_it(r['first_success_iter_median']):>9}"
            f"{r['seconds']:>6.1f}s")
    lines.append("success: " + "; ".join(sorted({f"{r['problem']}: {r['success_rule']}"
                                                  for r in rows})))
    lines.append("1st iter: median first iteration at which the success rule held "
                 "('-' if it never did in half the trials)")
    return "\n".join(lines)


def format_boxflip(res: dict | None) -> str:
    if not res:
        return ""
    from .boxflip import format_report

    return format_report(res)


# ---------------------------------------------------------------------------------------------
# entry point


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fingergym bench gradients",
        description=(
            "Zero-order (ZoBG), first-order (FoBG) and alpha-order (AoBG) gradient estimators "
            "through contact, reproducing Suh et al., ICML 2022 on its toy problems: bias and "
            "standard deviation against the exact smoothed gradient (quadrature) on the ball "
            "thrown at a wall, Heaviside and stiff ramps, a pivot cliff; gradient descent with "
            "each estimator; optionally a Drake box flip-up (--boxflip). Prints tables "
            "(or one JSON object with --json) and writes a PNG plot."),
        epilog="Results are explained in docs/gradients.md.")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys: " + ", ".join(JSON_KEYS) + ") instead "
                        "of tables")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes (200 repetitions, N in {10, 100}, 8 trials); "
                        "for tests and smoke runs, a few seconds")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="also write the figure to PNG (default: no figure)")
    p.add_argument("--seed", type=int, default=0, help="random seed (whole run; default 0)")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions per bias/std cell (default 1000, quick 200)")
    p.add_argument("--trials", type=int, default=None,
                   help="optimisation trials per estimator (default 20, quick 8)")
    p.add_argument("--iterations", type=int, default=None,
                   help="optimisation iterations (default 1000)")
    p.add_argument("--boxflip", action="store_true",
                   help="also run the box flip-up experiment on the env's Drake plant "
                        "(AutoDiffXd through contact; takes minutes, ~15 s with --quick)")
    p.add_argument("--boxflip-reps", type=int, default=None,
                   help="repetitions per estimator in the box flip-up experiment "
                        "(default: the --quick or full size)")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return p


def run(cfg: BenchConfig, plot: Path | None, boxflip: bool = False,
        boxflip_reps: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every section and return the JSON-able result dict (keys ``JSON_KEYS``)."""
    from tqdm import tqdm

    rng = np.random.default_rng(cfg.seed)
    n_ball = len(cfg.sigmas) * len(cfg.ball_thetas) * len(cfg.sample_counts)
    n_stiff = (1 + len(cfg.nus)) * len(cfg.sample_counts)
    total = n_ball + n_stiff + len(CLIFF_THETAS) + 8 + (1 if plot else 0)
    bar = tqdm(total=total, desc="bench gradients", disable=not progress, file=sys.stderr,
               leave=False)
    timing: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        timing[name] = time.perf_counter() - t0
        return out

    ball = timed("ball", run_ball, cfg, rng, bar.update)
    stiff = timed("stiff", run_stiff, cfg, rng, bar.update)
    cliff = timed("cliff", run_cliff, cfg, rng, bar.update)
    trajs: dict = {}
    opt = timed("optimisation", run_optimisation, cfg, rng, bar.update, trajs)
    plot_path = None
    if plot is not None:
        sweep = timed("sweep", sweep_ball, cfg, rng)
        timed("plot", make_plot, plot, sweep, trajs, stiff)
        plot_path = str(plot)
        bar.update()
    bar.close()
    box = None
    if boxflip:
        from .boxflip import run_boxflip_study

        box = timed("boxflip", run_boxflip_study, reps=boxflip_reps, seed=cfg.seed,
                    quick=cfg.quick, progress=progress)
    timing["total"] = time.perf_counter() - t_all
    config = asdict(cfg)
    config.update({"ball_aobg": {"gamma": BALL_GAMMA,
                                 "lipschitz": "2 * (v0^2/g)^2 / sigma", "spread": ball_spread()},
                   "stiff_aobg": {"gamma": STIFF_GAMMA, "lipschitz": "2 / sigma"},
                   "cliff_aobg": {"gamma": CLIFF_GAMMA, "lipschitz": "1 / sigma"},
                   "stiff_theta": 0.0, "stiff_sigma": 0.1, "cliff_sigma": 0.1, "cliff_n": 100,
                   "zobg_baseline": "f(theta)", "aobg_samples": "independent draws for FoBG "
                   "and ZoBG, N each"})
    return {"version": 1, "config": config, "ball": ball, "stiff": stiff, "cliff": cliff,
            "optimisation": opt, "boxflip": box, "timing_s": timing, "plot": plot_path}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``fingergym bench gradients``). Returns the exit status."""
    args = build_parser().parse_args(argv)
    cfg = BenchConfig.quick_config(args.seed) if args.quick else BenchConfig(seed=args.seed)
    if args.reps is not None:
        cfg.reps = args.reps
    if args.trials is not None:
        cfg.opt_trials = args.trials
    if args.iterations is not None:
        cfg.opt_iterations = args.iterations
    if min(cfg.reps, cfg.opt_trials, cfg.opt_iterations) < 2:
        build_parser().error("--reps, --trials and --iterations must be >= 2")
    res = run(cfg, args.plot, boxflip=args.boxflip, boxflip_reps=args.boxflip_reps,
              progress=not args.quiet)
    if args.json:
        print(json.dumps(_jsonable(res)))
        return 0
    print(format_bias_table(res["ball"], "Ball with wall: bias = mean estimate - exact "
                            "smoothed gradient; std of one estimate; P0 = P(FoBG == 0)"))
    print()
    print(format_bias_table(res["stiff"], "Heaviside / stiff ramp at x=0, sigma=0.1"))
    print()
    print(format_bias_table(res["cliff"], "Pivot cliff, sigma=0.1"))
    print()
    print(format_opt_table(res["optimisation"]))
    if res["boxflip"]:
        print()
        print(format_boxflip(res["boxflip"]))
    print()
    t = res["timing_s"]
    print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    if res["plot"]:
        print(f"plot: {res['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
