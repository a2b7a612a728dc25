"""``fingergym bench planning``: the seed-003 study on the flip-up scene.

Sections: the 1-D pusher check (barrier step vs Student-t smoothing of the exact step), bias and
spread of the smoothed linearization three ways, and the planner's flip-up in the full Drake
simulation (open and closed loop, success over randomized starts, plan time). Tables on
stdout (or one JSON object), a PNG figure. Numbers are explained in docs/planning.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

JSON_KEYS = ("version", "config", "onedim", "smoothing", "flipup", "rrt", "timing_s", "plot")
EVAL_SEED = 10_000  # flip-up episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...


def run_onedim(kappa: float, samples: int) -> dict:
    from .onedim import Pusher1D, compare

    return compare(Pusher1D(m=1.0, k=100.0, h=0.1), kappa, samples=samples)


def run_smoothing(quick: bool, seed: int, tick: Any = None) -> list[dict]:
    from fingergym.scenario import load_scenario

    from .model import QuasiDynamicModel
    from .smoothing import study

    model = QuasiDynamicModel(load_scenario(), h=0.2)
    if quick:
        return study(model, samples=(10,), reps=3, ref_samples=100, kappas=(1e3,), seed=seed,
                     tick=tick)
    return study(model, samples=(10, 100), reps=10, ref_samples=1000, seed=seed, tick=tick)


_WORKER: dict[str, Any] = {}


def _episode(job: tuple[str, int]) -> dict:
    """One flip-up episode (mode, seed) in this process's own env and planner."""
    from fingergym.env import make_env
    from fingergym.scenario import load_scenario

    from .flipup import FlipUpPlanner, run_episode

    if not _WORKER:
        scenario = load_scenario()
        _WORKER["env"] = make_env(scenario, randomize=True)
        _WORKER["planner"] = FlipUpPlanner(scenario)
    mode, seed = job
    planner = _WORKER["planner"]
    t0 = time.perf_counter()
    r = run_episode(_WORKER["env"], planner, seed, closed_loop=mode == "closed")
    return {"mode": mode, "seed": r.seed, "success": r.success,
            "angle_from_vertical": r.angle_from_vertical, "box_omega": r.box_omega,
            "plans": len(r.plan_seconds), "plan_seconds": float(np.sum(r.plan_seconds)),
            "replan_median_s": float(np.median(r.plan_seconds)),
            "episode_wall_s": time.perf_counter() - t0, "phases": sorted(set(planner.phases)),
            "example": {"states": r.states[:, :5].tolist(), "targets": r.targets.tolist()}}


def run_flipup(episodes: int, modes: Sequence[str], tick: Any = None, jobs: int = 1) -> dict:
    """``episodes`` held-out episodes per mode (seeds EVAL_SEED...), over ``jobs`` processes
    (each with its own env and planner; plan times are per-process wall times)."""
    from .flipup import FlipUpConfig

    tasks = [(mode, EVAL_SEED + i) for mode in modes for i in range(episodes)]
    results = []
    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            for res in pool.imap_unordered(_episode, tasks):
                results.append(res)
                if tick:
                    tick()
    else:
        for t in tasks:
            results.append(_episode(t))
            if tick:
                tick()
    out: dict[str, Any] = {"episodes": episodes, "seeds": [EVAL_SEED, EVAL_SEED + episodes - 1],
                           "jobs": jobs, "config": vars(FlipUpConfig())}
    examples = {}
    for mode in modes:
        rows = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["seed"])
        if rows:
            examples[mode] = rows[0]["example"]
        for r in rows:
            r.pop("example", None)
        succ = [r["success"] for r in rows]
        out[mode] = {
            "success_rate": float(np.mean(succ)), "successes": int(np.sum(succ)),
            "plan_seconds_per_episode_median": float(np.median(
                [r["plan_seconds"] for r in rows])),
            "replan_seconds_median": float(np.median([r["replan_median_s"] for r in rows])),
            "episode_wall_seconds_median": float(np.median(
                [r["episode_wall_s"] for r in rows])),
            "rows": rows}
    out["examples"] = examples
    return out


def run_rrt(runs: int, max_nodes: int, tick: Any = None) -> dict:
    """Both metrics from the same flat starts (box x = -0.05 + 0.05 i), low friction model."""
    from dataclasses import replace

    from fingergym.scenario import load_scenario
    from fingergym.sim.params import nominal_params

    from .model import QuasiDynamicModel
    from .rrt import BoxRRT, RRTConfig

    s = load_scenario()
    model = QuasiDynamicModel(s, h=0.2, params=replace(nominal_params(s),
                                                       friction=s.randomization.friction[0]))
    out: dict[str, Any] = {"runs": runs, "max_nodes": max_nodes}
    for metric in ("smoothed", "euclidean"):
        rows = []
        for i in range(runs):
            q0 = model.flat_q(-0.05 + 0.05 * i)
            r = BoxRRT(model, RRTConfig(metric=metric, max_nodes=max_nodes), seed=i).plan(
                q0, np.pi / 2)
            path = np.asarray(r.path) if r.path else np.zeros((0, 5))
            rows.append({"start_x": float(q0[0]), "success": r.success, "nodes": r.nodes,
                         "seconds": r.seconds, "best_angle": r.best_angle,
                         "path_length": len(path),
                         "max_hover_m": _max_hover(model, path)})
            if tick:
                tick()
        out[metric] = {"successes": int(sum(r["success"] for r in rows)), "rows": rows}
    return out


def _max_hover(model: Any, path: np.ndarray) -> float:
    """Largest clearance [m] between the box and the floor along a path (barrier artifacts)."""
    best = 0.0
    for q in path:
        c = model.contacts(q)
        floor = [p for p, n in zip(c.phi, c.names) if n.startswith("bin_floor|box")]
        if floor:
            best = max(best, float(min(floor)))
    return best


def make_plot(path: Path, onedim: dict, smoothing: list[dict], flipup: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .onedim import Pusher1D, t2_quadrature

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    p = Pusher1D(onedim["m"], onedim["k"], onedim["h"])
    kappa = onedim["kappa"]
    s = onedim["t_scale"]
    x = np.linspace(-6 * s, 6 * s, 121)
    ax.plot(x * 1e3, p.exact(x) * 1e3, "k-", lw=1, label="exact step")
    ax.plot(x * 1e3, p.barrier(x, kappa) * 1e3, "C0-", lw=3, alpha=0.5,
            label=f"log-barrier, kappa={kappa:g}")
    ax.plot(x * 1e3, [t2_quadrature(p, xi, kappa) * 1e3 for xi in x], "C1--",
            label=f"E[exact], u + t2 noise (scale {s * 1e3:.2f} mm)")
    ax.plot(x * 1e3, p.gaussian_smoothed(x, onedim["gaussian_sigma"]) * 1e3, "C2:",
            label="E[exact], Gaussian (same density at 0)")
    ax.set_xlabel("commanded penetration x = u - q_a - phi [mm]")
    ax.set_ylabel("box displacement [mm]")
    ax.set_title("1-D pusher: barrier = Student-t(2) smoothing")
    ax.legend(fontsize=7)

    ax = axes[1]
    configs = list(dict.fromkeys(r["config"] for r in smoothing))
    labels = list(dict.fromkeys(f"{r['estimator']}" + (f" N={r['N']}" if r["N"] > 1 else "")
                                for r in smoothing))
    width = 0.8 / len(labels)
    for j, lab in enumerate(labels):
        bias, std = [], []
        for c in configs:
            row = next(r for r in smoothing if r["config"] == c and
                       f"{r['estimator']}" + (f" N={r['N']}" if r["N"] > 1 else "") == lab)
            bias.append(row["bias"])
            std.append(row["std"])
        xs = np.arange(len(configs)) + j * width
        ax.bar(xs, np.maximum(bias, 1e-3), width, label=lab, color=f"C{j}")
        ax.plot(xs, np.maximum(std, 1e-3), "kx", ms=5)
    ax.set_xticks(np.arange(len(configs)) + 0.4 - width / 2, configs, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("|bias| / |B_ref| (bar), spread / |B_ref| (x)")
    ax.set_title("smoothed linearization dq+/du, sigma = 1 cm")
    ax.legend(fontsize=6)

    ax = axes[2]
    if flipup and flipup.get("examples"):
        for mode, style in (("closed", "C3"), ("open", "C4")):
            ex = flipup["examples"].get(mode)
            if ex is None:
                continue
            st = np.asarray(ex["states"])
            t = np.arange(len(st)) * 0.1
            ax.plot(t, np.abs(np.mod(st[:, 2], np.pi) - np.pi / 2), style,
                    label=f"{mode} loop: |angle from vertical| [rad]")
        ax.axhline(0.15, color="k", lw=0.5, ls="--", label="success threshold")
        ax.set_xlabel("time [s]")
        rates = ", ".join(f"{m} {flipup[m]['successes']}/{flipup['episodes']}"
                          for m in ("closed", "open") if m in flipup)
        ax.set_title(f"flip-up in the Drake sim (first episode); success {rates}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_onedim(res: dict) -> str:
    lines = [f"1-D pusher (m={res['m']} kg, k={res['k']} N/m, h={res['h']} s, kappa="
             f"{res['kappa']:g}): alpha={res['alpha']:.3f}, t2 scale sqrt(delta/2)="
             f"{res['t_scale'] * 1e3:.3f} mm; Clarabel vs closed form max err "
             f"{res['exact_closed_vs_clarabel_max_err']:.1e} m",
             f"{'x [mm]':>8} {'barrier':>10} {'t2 quad':>10} {'t2 MC':>10} {'+-':>8} "
             f"{'gaussian':>10} {'exact':>10}   (box displacement, mm)"]
    for r in res["rows"]:
        lines.append(f"{r['x'] * 1e3:8.3f} {r['barrier_newton'] * 1e3:10.5f} "
                     f"{r['t2_quadrature'] * 1e3:10.5f} {r['t2_monte_carlo'] * 1e3:10.5f} "
                     f"{r['t2_mc_stderr'] * 1e3:8.5f} {r['gaussian'] * 1e3:10.5f} "
                     f"{r['exact'] * 1e3:10.5f}")
    return "\n".join(lines)


def format_smoothing(rows: list[dict]) -> str:
    lines = ["Smoothed linearization B = d q+/d u of the exact step, Gaussian sigma = "
             f"{rows[0]['sigma']} m on u; reference: first order with "
             f"{rows[0]['ref_samples']} samples",
             f"{'config':<18} {'estimator':<30} {'N':>4} {'bias':>9} {'spread':>9} "
             f"{'s/est':>8}"]
    for r in rows:
        lines.append(f"{r['config']:<18} {r['estimator']:<30} {r['N']:>4} {r['bias']:9.3f} "
                     f"{r['std']:9.3f} {r['seconds']:8.4f}")
    seen = {}
    for r in rows:
        seen[r["config"]] = r["ref_zero_order_gap"]
    lines.append("reference check |ZO - FO| / |FO| at the reference sample size: " +
                 ", ".join(f"{k} {v:.3f}" for k, v in seen.items()))
    return "\n".join(lines)


def format_flipup(res: dict) -> str:
    lines = [f"Flip-up in fingergym/BoxFlipUp-v0 (randomized, seeds {res['seeds'][0]}.."
             f"{res['seeds'][1]}, never used in tuning)",
             f"{'mode':<8} {'success':>10} {'plan s/episode':>15} {'s/re-plan':>10}"]
    for mode in ("open", "closed"):
        if mode in res:
            m = res[mode]
            lines.append(f"{mode:<8} {m['successes']:>4}/{res['episodes']:<5} "
                         f"{m['plan_seconds_per_episode_median']:15.1f} "
                         f"{m['replan_seconds_median']:10.3f}")
    return "\n".join(lines)


def format_rrt(res: dict) -> str:
    lines = [f"RRT over the box configuration (barrier model kappa=200, {res['max_nodes']} nodes "
             "max, flat starts)", f"{'metric':<10} {'stood up':>9} {'nodes (median)':>15} "
             f"{'s (median)':>11} {'max hover [mm]':>15}"]
    for metric in ("smoothed", "euclidean"):
        rows = res[metric]["rows"]
        hover = [r["max_hover_m"] for r in rows if r["success"]]
        lines.append(f"{metric:<10} {res[metric]['successes']:>4}/{res['runs']:<4} "
                     f"{np.median([r['nodes'] for r in rows]):15.0f} "
                     f"{np.median([r['seconds'] for r in rows]):11.1f} "
                     f"{(max(hover) * 1e3 if hover else float('nan')):15.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fingergym bench planning",
        description=(
            "Planning through contact with smoothed quasi-dynamic models (seed 003, Pang et "
            "al.): the 1-D pusher check (log-barrier step vs randomized smoothing of the exact "
            "step), bias/spread of the smoothed linearization by zero-order, first-order and "
            "barrier smoothing on the flip-up scene, and the smoothed-iLQR planner flipping "
            "the box in the full Drake simulation, open and closed loop. Prints tables (or "
            "one JSON object with --json) and, with --plot, a PNG figure."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Results are explained in docs/planning.md. The full run takes ~20-30 min on "
               "one core (most of it the planner in the loop); --quick takes ~1-2 min.")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys: " + ", ".join(JSON_KEYS) + ")")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes: 2 episodes per mode, small smoothing study")
    p.add_argument("--episodes", type=int, default=None,
                   help="flip-up episodes per mode (default 20, quick 2)")
    p.add_argument("--modes", default="closed,open",
                   help="comma-separated flip-up modes: closed, open")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes for the flip-up episodes (each its own env and planner)")
    p.add_argument("--rrt", type=int, default=0, metavar="RUNS",
                   help="also run the RRT (stretch) from RUNS flat starts per metric "
                        "(smoothed vs euclidean); minutes")
    p.add_argument("--rrt-nodes", type=int, default=600, help="RRT node budget")
    p.add_argument("--kappa", type=float, default=1e4, help="1-D check's barrier kappa")
    p.add_argument("--samples", type=int, default=200_000,
                   help="1-D check's Monte Carlo samples per x")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="also write the figure to PNG (default: no figure)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the smoothing study")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return p


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``fingergym bench planning``). Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    episodes = args.episodes if args.episodes is not None else (2 if args.quick else 20)
    modes = [m for m in args.modes.split(",") if m]
    if episodes < 0 or args.jobs < 1 or any(m not in ("closed", "open") for m in modes):
        parser.error("--episodes must be >= 0, --jobs >= 1 and --modes a list of closed, open")
    from tqdm import tqdm

    total = 2 + 6 + episodes * len(modes) + 2 * args.rrt
    bar = tqdm(total=total, desc="bench planning", disable=args.quiet, file=sys.stderr,
               leave=False)
    timing: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name: str, fn: Any, *a: Any, **kw: Any) -> Any:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        timing[name] = time.perf_counter() - t0
        return out

    onedim = timed("onedim", run_onedim, args.kappa,
                   20_000 if args.quick else args.samples)
    bar.update()
    smoothing = timed("smoothing", run_smoothing, args.quick, args.seed, bar.update)
    flipup = (timed("flipup", run_flipup, episodes, modes, bar.update, args.jobs)
              if episodes else None)
    rrt = timed("rrt", run_rrt, args.rrt, args.rrt_nodes, bar.update) if args.rrt else None
    plot = None
    if args.plot is not None:
        timed("plot", make_plot, args.plot, onedim, smoothing, flipup)
        plot = str(args.plot)
    bar.update()
    bar.close()
    timing["total"] = time.perf_counter() - t_all
    res = {"version": 1, "config": {"quick": args.quick, "episodes": episodes, "modes": modes,
                                    "kappa_1d": args.kappa, "seed": args.seed, "rrt": args.rrt,
                                    "rrt_nodes": args.rrt_nodes, "jobs": args.jobs},
           "onedim": onedim, "smoothing": smoothing, "flipup": flipup, "rrt": rrt,
           "timing_s": timing,
           "plot": plot}
    if args.json:
        print(json.dumps(_jsonable(res)))
        return 0
    print(format_onedim(onedim))
    print()
    print(format_smoothing(smoothing))
    if flipup:
        print()
        print(format_flipup(flipup))
    if rrt:
        print()
        print(format_rrt(rrt))
    print()
    print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timing.items()))
    if plot:
        print(f"plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
