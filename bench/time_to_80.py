"""Time-to-80%: train a config with several seeds (time-boxed), then report, per seed, the first
periodic held-out evaluation >= 80% (wall-clock and env steps) and that snapshot's success on
50 further held-out episodes, the same for ``best`` and for the run's last snapshot; the median
and spread over seeds; the learning curves as a PNG.

    # a task's default recipe without an expert, 3 seeds, 60 min each, one at a time: the lift
    # (no expert; fingergym.planning cannot plan it) -> configs/train_expertfree.yaml
    .venv/bin/python bench/time_to_80.py --label lift-default --task fingergym/GripperLift-v0
    # the flip-up without its expert -> configs/train_planner.yaml (planner demonstrations)
    .venv/bin/python bench/time_to_80.py --label flipup-expert-free --expert-free --parallel 2
    # an explicit config, the expert warm start: same table
    .venv/bin/python bench/time_to_80.py --label warm-start --config configs/train.yaml
    # report existing runs only (no training)
    .venv/bin/python bench/time_to_80.py --label expert-free --runs runs/a runs/b runs/c
    # only draw recorded labels' curves (no training, no evaluation)
    .venv/bin/python bench/time_to_80.py --plot-only --plot docs/x.png --plot-labels a b

Seeds: training uses the run's seed; the periodic evaluation (which also picks ``best``) uses
episodes 10000..10019; the reported success uses 100000..100049, never used by training or
selection. Every run is started under ``nice -n 10`` and stopped with SIGINT (which saves a
snapshot) when its time box ends. Results are appended to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
THRESHOLD = 0.8
HELD_OUT_SEED = 100_000  # fingergym eval's default: never used in training or selection


def launch(config: Path | None, seed: int, run_dir: Path, minutes: float,
           sets: list[str], train_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """``nice -n 10 timeout -s INT <minutes> fingergym train ...`` in the background."""
    cmd = ["nice", "-n", "10", "timeout", "-s", "INT", "-k", "120", f"{minutes * 60:.0f}",
           str(Path(sys.executable).parent / "fingergym"), "train", "--run-dir", str(run_dir),
           "--seed", str(seed), "--no-progress", *train_args,
           # every run pays for its own planner demonstrations: the clock starts cold
           "--set", "warm_start.cache=false"]
    if config is not None:
        cmd += ["--config", str(config)]
    for s in sets:
        cmd += ["--set", s]
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "train.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def train_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``fingergym train`` options passed through: --task, --expert-free."""
    return ((("--task", args.task) if args.task else ())
            + (("--expert-free",) if args.expert_free else ()))


def first_at(rows: list[dict], threshold: float = THRESHOLD) -> dict | None:
    """The first evaluation row with success rate >= threshold, or None."""
    return next((r for r in rows if r["success_rate"] >= threshold), None)


def run_snapshot(run_dir: Path, which: str, first_seed: int, episodes: int) -> dict:
    """Export snapshot ``which`` and run it (numpy runner, as deployed) on the run's own
    evaluation scenario, episodes ``first_seed ...``."""
    from fingergym.policies.evaluate import evaluate_run_snapshot

    res = evaluate_run_snapshot(run_dir, which, range(first_seed, first_seed + episodes))
    return {k: res[k] for k in ("episodes", "success_rate", "mean_return", "min_return")}


def held_out(run_dir: Path, which: str, episodes: int) -> dict:
    """Snapshot ``which`` on the held-out seeds."""
    return run_snapshot(run_dir, which, HELD_OUT_SEED, episodes)


def validate(run_dir: Path, episodes: int) -> list[dict]:
    """Every checkpoint, up to the first >= 80%, re-evaluated on ``episodes`` episodes from
    the run's own training-time evaluation seed (``eval.seed``: used for selection, never for
    the reported number), with the wall clock of the run's evaluation at the same step. A finer
    selection than the training-time evaluation's 20 episodes; the held-out seeds stay
    untouched."""
    from fingergym.policies.config import load_train_config

    first_seed = load_train_config(run_dir / "config.yaml").eval.seed
    wall = {r["timesteps"]: r["wall_s"] for r in json.loads((run_dir / "eval.json").read_text())}
    steps = sorted(int(z.stem.split("_")[1]) for z in (run_dir / "checkpoints").glob("step_*.zip"))
    out = []
    for n in (n for n in steps if n in wall):  # no evaluation there: no wall clock to report
        res = run_snapshot(run_dir, f"step_{n}", first_seed, episodes)
        out.append({"timesteps": n, "wall_s": wall[n], "episodes": episodes,
                    "success_rate": res["success_rate"], "mean_return": res["mean_return"]})
        print(f"  {run_dir.name} step {n}: {res['success_rate']:.0%} of {episodes} "
              f"validation episodes", flush=True)
        if res["success_rate"] >= THRESHOLD:  # the clock stops here: no need to go on
            break
    return out


def report_run(run_dir: Path, episodes: int, validation: int = 0) -> dict:
    rows = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").exists() \
        else []
    first = first_at(rows)
    out = {"run_dir": str(run_dir), "evals": len(rows),
           "steps": rows[-1]["timesteps"] if rows else 0,
           "wall_s": rows[-1]["wall_s"] if rows else 0.0,
           "first_80": first, "held_out_first_80": None, "held_out_best": None,
           "held_out_final": None}
    if (run_dir / "summary.json").exists():  # the run's own end (after its last evaluation)
        end = json.loads((run_dir / "summary.json").read_text())
        out["steps"] = max(out["steps"], end.get("timesteps") or 0)
        out["wall_s"] = max(out["wall_s"], end.get("wall_s") or 0.0)
    if (run_dir / "curriculum.json").exists():
        out["difficulty"] = json.loads((run_dir / "curriculum.json").read_text())[-1]["difficulty"]
    if validation > 0:
        out["validation"] = validate(run_dir, validation)
        v = out["first_80_validated"] = first_at(out["validation"])
        out["held_out_first_80_validated"] = (
            held_out(run_dir, f"step_{v['timesteps']}", episodes) if v and episodes > 0
            else None)
    if episodes <= 0:  # curves and time-to-80% only
        return out
    if first is not None and (run_dir / "checkpoints" / f"step_{first['timesteps']}.zip").exists():
        out["held_out_first_80"] = held_out(run_dir, f"step_{first['timesteps']}", episodes)
    if (run_dir / "best.zip").exists():
        out["held_out_best"] = held_out(run_dir, "best", episodes)
    from fingergym.policies.export import end_snapshot

    last = end_snapshot(run_dir)
    if last:  # the run's end: what a run that selects nothing would ship
        out["held_out_final"] = {"snapshot": last, **held_out(run_dir, last, episodes)}
    return out


def summarize(label: str, runs: list[dict], key: str = "first_80") -> dict:
    """Median and spread of time-to-80% over the runs (runs that never got there count as
    not reached; the median is then reported only if most runs got there). ``key``:
    ``first_80`` (the training-time evaluation) or ``first_80_validated``."""
    times = sorted(r[key]["wall_s"] for r in runs if r.get(key))
    steps = sorted(r[key]["timesteps"] for r in runs if r.get(key))
    reached = len(times)
    enough = reached * 2 > len(runs)
    return {"label": label, "runs": len(runs), "reached": reached,
            "median_min": round(statistics.median(times) / 60, 1) if enough else None,
            "range_min": [round(times[0] / 60, 1), round(times[-1] / 60, 1)] if times else None,
            "median_steps": int(statistics.median(steps)) if enough else None}


def plot(groups: dict[str, list[Path]], path: Path,
         title: str = "training without an expert: learning curves") -> None:
    """Held-out success (top) and curriculum difficulty (bottom) vs env steps, one line per
    run, one colour per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curricula = any((d / "curriculum.json").exists() for ds in groups.values() for d in ds)
    fig, axes = plt.subplots(2 if curricula else 1, 1, figsize=(8, 6.5 if curricula else 4),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    for i, (label, dirs) in enumerate(groups.items()):
        for j, d in enumerate(dirs):
            kw = {"color": f"C{i}", "alpha": 0.85, "marker": ".",
                  "label": label if j == 0 else None}
            if (d / "eval.json").exists():
                rows = json.loads((d / "eval.json").read_text())
                axes[0].plot([r["timesteps"] for r in rows], [r["success_rate"] for r in rows],
                             **kw)
            if (d / "curriculum.json").exists():
                rows = json.loads((d / "curriculum.json").read_text())
                steps = [r["timesteps"] for r in rows]
                level = [r["difficulty"] for r in rows]
                if (d / "summary.json").exists():  # hold the last level to the run's end
                    steps.append(json.loads((d / "summary.json").read_text())["timesteps"])
                    level.append(level[-1])
                axes[1].step(steps, level, where="post", **{**kw, "ls": "-" if i % 2 else "--"})
    axes[0].axhline(THRESHOLD, ls="--", c="gray", lw=0.8)
    axes[0].set_ylabel("success, 20 eval episodes\n(task's own starts)")
    if curricula:
        axes[1].set_ylabel("curriculum difficulty\n(1 = task's own starts)")
        axes[1].legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("env steps")
    for ax in axes:
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--label", help="name of this configuration in the table (required "
                   "unless --plot-only)")
    p.add_argument("--config", type=Path, default=None, help="training config (default: the "
                   "shipped configs/train.yaml)")
    p.add_argument("--task", default=None, help="fingergym train --task: a gym id or task; "
                   "without --config, train picks that task's default recipe")
    p.add_argument("--expert-free", action="store_true", help="fingergym train --expert-free: "
                   "the default recipe of a task without a scripted expert")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override passed to fingergym train")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=60.0, help="time box per run")
    p.add_argument("--parallel", type=int, default=1, help="runs at the same time")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench",
                   help="parent of the run directories (<out>/<label>/seed<k>)")
    p.add_argument("--runs", type=Path, nargs="+", default=None,
                   help="report these existing run directories instead of training")
    p.add_argument("--episodes", type=int, default=50, help="held-out episodes per snapshot "
                   "(0: none, curves and time-to-80%% only)")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="also re-evaluate every checkpoint on N episodes from the run's "
                   "training-time evaluation seed and time the first >= 80%% there (a finer "
                   "selection than 20 episodes; the held-out seeds stay untouched)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="runs evaluated at the same time, one process each (default: one per "
                   "CPU core)")
    p.add_argument("--plot", type=Path, default=None, help="learning curves PNG (all labels "
                   "in bench/results.json)")
    p.add_argument("--plot-labels", nargs="+", default=None, metavar="LABEL",
                   help="labels of bench/results.json to plot (default: all)")
    p.add_argument("--plot-only", action="store_true", help="only draw --plot from "
                   "bench/results.json (no training, no evaluation)")
    p.add_argument("--title", default="training without an expert: learning curves")
    args = p.parse_args(argv)
    if args.plot_only:
        if not args.plot:
            p.error("--plot-only needs --plot PNG")
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        unknown = sorted(set(args.plot_labels or []) - set(results))
        if unknown:
            p.error(f"not in {RESULTS}: {', '.join(unknown)} (it has: {', '.join(results)})")
        plot_results(results, args.plot_labels or list(results), args.plot, args.title)
        return 0
    if not args.label:
        p.error("--label is required (or --plot-only)")

    if args.runs:
        dirs = list(args.runs)
    else:
        dirs = [args.out / args.label / f"seed{s}" for s in args.seeds]
        pending = list(zip(args.seeds, dirs, strict=True))
        active: list[subprocess.Popen] = []
        while pending or active:
            while pending and len(active) < args.parallel:
                seed, d = pending.pop(0)
                print(f"training {args.label} seed {seed} -> {d}", flush=True)
                active.append(launch(args.config, seed, d, args.minutes, args.set,
                                     train_args(args)))
            time.sleep(5)
            active = [a for a in active if a.poll() is None]
    report = functools.partial(report_run, episodes=args.episodes, validation=args.validation)
    workers = max(1, min(args.workers, len(dirs)))
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        runs = list((pool.map if pool else map)(report, dirs))  # one run a process, in order
    summary = summarize(args.label, runs)
    if args.validation > 0:
        summary["validated"] = summarize(args.label, runs, "first_80_validated")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = {"summary": summary, "runs": runs,
                           "config": ("each run's config.yaml" if args.runs
                                      else str(args.config or "the default of fingergym train")),
                           "train_args": list(train_args(args)), "set": args.set}
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"| {args.label} | seed | first eval >= 80%: min (steps) | held out at that point "
          f"| best, held out | end of the run (steps), held out |")
    for r in runs:
        f, h, b, e = r["first_80"], r["held_out_first_80"], r["held_out_best"], \
            r.get("held_out_final")
        first = (f"{f['wall_s'] / 60:.1f} ({f['timesteps']})" if f
                 else f"not in {r['wall_s'] / 60:.0f} min ({r['steps']})")
        at = f"{h['success_rate']:.0%}" if h else "-"
        best = f"{b['success_rate']:.0%}" if b else "-"
        end = f"{e['success_rate']:.0%} ({r['steps']})" if e else "-"
        print(f"| | {Path(r['run_dir']).name} | {first} | {at} | {best} | {end} |")
    if args.validation > 0:
        print(f"| {args.label} | seed | first >= 80% on {args.validation} validation episodes: "
              f"min (steps) | held out at that point |")
        for r in runs:
            f, h = r["first_80_validated"], r["held_out_first_80_validated"]
            first = f"{f['wall_s'] / 60:.1f} ({f['timesteps']})" if f else "never"
            at = f"{h['success_rate']:.0%}" if h else "-"
            print(f"| | {Path(r['run_dir']).name} | {first} | {at} |")
    print(json.dumps(summary))
    if args.plot:
        plot_results(results, args.plot_labels or list(results), args.plot, args.title)
    return 0


def plot_results(results: dict, labels: list[str], path: Path, title: str) -> None:
    """:func:`plot` of these labels' runs in ``results`` (run directories relative to the
    repository, as recorded)."""
    plot({k: [ROOT / r["run_dir"] for r in results[k]["runs"]] for k in labels}, path, title)


if __name__ == "__main__":
    raise SystemExit(main())
