"""``fingergym bench policy-gradients``: REINFORCE, FoBG, AoBG and PPO on the box flip-up.

Run ``python -m fingergym.gradients.policy_bench --help``. Every method optimizes
:class:`~fingergym.gradients.policy_opt.LinearPolicy` from the same start with the same
number of episodes; curves are on held-out seeds (float rollouts of the env's plant), the
final score is the mean policy in ``fingergym.make_env`` on held-out seeds 100000.. .
Writes nothing unless asked (``--plot PATH``, ``--save PATH``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .policy_opt import (
    EVAL_SEED0,
    LABELS,
    METHODS,
    TRACK_SEED0,
    TRAIN_SEED0,
    RunConfig,
    Task,
    evaluate_in_env,
    run_gradient_method,
    run_ppo,
)

JSON_KEYS = ("version", "config", "policy", "initial", "methods", "summary", "timing_s",
             "plot")
SUMMARY_KEYS = ("method", "label", "episodes", "env_steps", "return_env", "return_env_se",
                "success_env", "successes_env", "eval_episodes", "track_return_final",
                "track_success_final", "track_success_best", "seconds", "grad_s_median",
                "rollout_s_per_episode", "var_estimator_median", "alpha_mean",
                "alpha_zero_frac", "bias_rel_median", "bias_significant_frac",
                "cosine_median")


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(vals)) if vals else None


def summarize(run: dict[str, Any], final: dict[str, Any], cfg: RunConfig) -> dict[str, Any]:
    """One table row per method (see ``SUMMARY_KEYS``)."""
    rows, m = run["iterations"], run["method"]
    curve = run["curve"]
    var_key = {"fobg": "var_first", "aobg": None, "ppo": None}.get(
        m, "var_" + m.removeprefix("reinforce_"))
    ad = m in ("fobg", "aobg")
    out = {
        "method": m, "label": LABELS[m], "episodes": cfg.budget,
        "env_steps": cfg.budget * cfg.horizon, "return_env": final["return_mean"],
        "return_env_se": final["return_se"], "success_env": final["success"],
        "successes_env": final["successes"], "eval_episodes": final["episodes"],
        "track_return_final": curve[-1]["return"], "track_success_final": curve[-1]["success"],
        "track_success_best": max(c["success"] for c in curve), "seconds": run["seconds"],
        "grad_s_median": _median(rows, "grad_s") if rows else run["seconds"] / cfg.iterations,
        "rollout_s_per_episode": (_median(rows, "rollout_s") / cfg.episodes) if rows else None,
        "var_estimator_median": _median(rows, var_key) if var_key else None,
        "alpha_mean": _median(rows, "alpha") if ad else None,
        "alpha_zero_frac": float(np.mean([r["alpha"] == 0.0 for r in rows])) if ad else None,
        "bias_rel_median": float(np.median([r["bias_hat"] / max(r["zobg_norm"], 1e-300)
                                            for r in rows])) if ad else None,
        "bias_significant_frac": float(np.mean([r["bias_z"] > 3.0 for r in rows]))
        if ad else None,
        "cosine_median": _median(rows, "cosine") if ad else None,
    }
    if m == "aobg":
        out["alpha_mean"] = float(np.mean([r["alpha"] for r in rows]))
    return out


def where_alpha_collapses(run: dict[str, Any]) -> dict[str, Any]:
    """For the AutoDiffXd runs: in iterations with alpha = 0 and alpha > 0, at which step the
    largest per-step reward gradient of the heaviest episode sits and which contact changes
    (within 3 env steps before it) go with it."""
    out = {}
    for name, sel in (("alpha_zero", lambda a: a == 0.0), ("alpha_positive", lambda a: a > 0)):
        rows = [r for r in run["iterations"] if sel(r["alpha"])]
        ev = Counter(p for r in rows for p in set(r["where"]["events"]))
        out[name] = {
            "iterations": len(rows),
            "step_median": float(np.median([r["where"]["step"] for r in rows])) if rows else None,
            "heavy_over_median": float(np.median([r["where"]["norm_max_over_median"]
                                                  for r in rows])) if rows else None,
            "with_contact_change_frac": float(np.mean([bool(r["where"]["events"])
                                                       for r in rows])) if rows else None,
            "contact_changes": dict(ev.most_common()),
        }
    return out


def run(cfg: RunConfig, methods: Sequence[str] = METHODS, plot: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """The whole study; returns the JSON object (``JSON_KEYS``)."""
    import torch
    from tqdm import tqdm

    from fingergym import __version__

    torch.set_num_threads(1)  # tiny networks; more threads only fight over the shared cores
    t_all = time.perf_counter()
    task = Task(horizon=cfg.horizon)
    theta0 = task.theta0()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    initial = evaluate_in_env(task, theta0, cfg.eval_episodes)
    timing["eval_initial"] = time.perf_counter() - t0
    runs, finals, summary = {}, {}, []
    bar = tqdm(total=cfg.budget * len(methods), desc="policy-gradient episodes",
               disable=not progress, file=sys.stderr, leave=False)
    for m in methods:
        bar.set_postfix_str(m)
        t0 = time.perf_counter()
        r = run_ppo(task, cfg, bar) if m == "ppo" else run_gradient_method(m, task, cfg, bar)
        timing[m] = time.perf_counter() - t0
        t0 = time.perf_counter()
        finals[m] = evaluate_in_env(task, np.array(r["theta"]), cfg.eval_episodes)
        timing[f"eval_{m}"] = time.perf_counter() - t0
        if m in ("fobg", "aobg"):
            r["where_summary"] = where_alpha_collapses(r)
        runs[m] = r
        summary.append(summarize(r, finals[m], cfg))
    bar.close()
    for m in methods:
        runs[m]["final"] = finals[m]
    res = {"version": __version__,
           "config": {**asdict(cfg), "budget_episodes": cfg.budget,
                      "seeds": {"train": TRAIN_SEED0, "track": TRACK_SEED0,
                                "eval_env": EVAL_SEED0},
                      "scenario": task.scenario.source},
           "policy": {"class": "LinearPolicy", "dim": task.policy.dim,
                      "nodes": task.policy.nodes, "sigma": task.policy.sigma,
                      "theta0": theta0.tolist()},
           "initial": initial, "methods": runs, "summary": summary, "timing_s": timing,
           "plot": None}
    if plot:
        res["plot"] = make_plot(res, plot)
    timing["total"] = time.perf_counter() - t_all
    return res


def make_plot(res: dict[str, Any], path: str) -> str:
    """Four panels: held-out success vs episodes and vs seconds, estimator variance along
    training, alpha and FoBG-ZoBG disagreement along training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(12, 8.5))
    for m, r in res["methods"].items():
        c = r["curve"]
        ax[0, 0].plot([p["episodes"] for p in c], [p["return"] for p in c], marker=".",
                      label=LABELS[m])
        ax[0, 1].plot([p["seconds"] for p in c], [p["success"] for p in c], marker=".",
                      label=m)
    ax[0, 0].set(xlabel="training episodes", ylabel="held-out mean return (mean policy)",
                 title="return vs samples")
    ax[0, 1].set(xlabel="wall-clock of optimization [s]", ylabel="held-out success",
                 title="success vs wall-clock", xscale="symlog")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].legend(fontsize=7)
    for m, r in res["methods"].items():
        if m == "ppo" or not r["iterations"]:
            continue
        it = [row["iteration"] for row in r["iterations"]]
        if m.startswith("reinforce"):
            v = m.removeprefix("reinforce_")
            ax[1, 0].semilogy(it, [row[f"var_{v}"] for row in r["iterations"]],
                              label=f"REINFORCE {v}")
        else:
            ax[1, 0].semilogy(it, [row["var_first"] for row in r["iterations"]], ls="--",
                              label=f"FoBG (in {m} run)")
            ax[1, 1].semilogy(it, [row["bias_hat"] / row["zobg_norm"]
                                   for row in r["iterations"]], label=f"|FoBG-ZoBG|/|ZoBG| ({m})")
            ax[1, 1].plot(it, [max(row["alpha"], 1e-3) for row in r["iterations"]], "o",
                          ms=3, label=f"alpha ({m}; 1e-3 = 0)")
    ax[1, 0].set(xlabel="iteration", ylabel="per-episode variance (trace)",
                 title="gradient variance along training")
    ax[1, 1].set(xlabel="iteration", title="empirical bias and alpha")
    ax[1, 0].legend(fontsize=7)
    ax[1, 1].legend(fontsize=7)
    fig.suptitle(f"box flip-up, linear policy d={res['policy']['dim']}, "
                 f"{res['config']['budget_episodes']} episodes per method")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def format_table(res: dict[str, Any]) -> str:
    ini = res["initial"]
    lines = [f"initial policy (all methods): env return {ini['return_mean']:.1f} "
             f"± {ini['return_se']:.1f}, success {ini['successes']}/{ini['episodes']}",
             f"{'method':<22} {'return(env)':>13} {'success':>9} {'track':>6} {'sec':>6} "
             f"{'s/grad':>7} {'var':>9} {'alpha':>6} {'a=0':>5} {'bias/|Z|':>8} "
             f"{'cos':>6}"]

    def f(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    for s in res["summary"]:
        lines.append(
            f"{s['method']:<22} {s['return_env']:>7.1f}±{s['return_env_se']:<5.1f} "
            f"{s['successes_env']:>4}/{s['eval_episodes']:<4} {s['track_success_final']:>6.2f} "
            f"{s['seconds']:>6.0f} {f(s['grad_s_median'], '7.2f')} "
            f"{f(s['var_estimator_median'], '9.2e')} {f(s['alpha_mean'], '6.2f')} "
            f"{f(s['alpha_zero_frac'], '5.2f')} {f(s['bias_rel_median'], '8.2f')} "
            f"{f(s['cosine_median'], '6.2f')}")
    for m in ("fobg", "aobg"):
        r = res["methods"].get(m)
        if r and "where_summary" in r:
            for k, w in r["where_summary"].items():
                lines.append(f"{m} {k}: {w['iterations']} iterations, heaviest step median "
                             f"{w['step_median']}, heavy/median {w['heavy_over_median']}, "
                             f"with contact change {w['with_contact_change_frac']}, "
                             f"{w['contact_changes']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fingergym bench policy-gradients",
        description="Policy optimization on the randomized box flip-up with REINFORCE (total "
        "return, return-to-go, constant and learned-value baselines), FoBG through Drake "
        "AutoDiffXd, AoBG (alpha rule) and PPO: same linear policy class, start, episode "
        "budget and held-out evaluation. Progress on stderr.")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 iterations x 3 episodes of 20 steps, 3 eval "
                   "episodes (< 1 min)")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.add_argument("--plot", metavar="PNG", help="write the figure here (default: no figure)")
    p.add_argument("--save", metavar="JSON", help="also write the JSON object to this file")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--iterations", type=int, help="iterations per method (default 24)")
    p.add_argument("--episodes", type=int, help="episodes per iteration (default 12)")
    p.add_argument("--eval-episodes", type=int, help="held-out env episodes (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the action noise / PPO")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``fingergym bench policy-gradients``). Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = RunConfig.quick(args.seed) if args.quick else RunConfig(seed=args.seed)
    for key in ("iterations", "episodes", "eval_episodes"):
        v = getattr(args, key)
        if v is not None:
            if v < 2:
                parser.error(f"--{key.replace('_', '-')} must be >= 2")
            setattr(cfg, key, v)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        parser.error(f"--methods: unknown {bad}; choose from {','.join(METHODS)}")
    cfg.track_every = min(cfg.track_every, cfg.iterations)
    res = run(cfg, methods, args.plot, progress=not args.quiet)
    text = json.dumps(res)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(text)
    if args.json:
        print(text)
    else:
        print(format_table(res))
        print("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in res["timing_s"].items()))
        if res["plot"]:
            print(f"plot: {res['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
