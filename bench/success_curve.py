"""Learning curves finer than the training-time evaluation: every checkpoint of one or more runs
on N fresh episodes, several processes at once; a table and a PNG.

    # three seeds, every 80 k steps, 100 episodes each from seed 30000, 2 processes
    .venv/bin/python bench/success_curve.py runs/s8/planner-1M/seed0 runs/s8/planner-1M/seed1 \\
        --every 80000 --episodes 100 --plot docs/curve.png

The training-time evaluation replays the same 20 starts (seeds 10000..10019) at every snapshot
and picks ``best`` with them, so it reads a policy 5-10 points high late in a run. This script
re-runs each checkpoint (exported, as deployed) on ``--episodes`` episodes from ``--seed``
(30000..: used by no training, selection or held-out report) with the run's own evaluation
scenario; at 100 episodes one rate is good to about +-4 points (one standard error at 80%).
The run's last snapshot (``final`` or ``interrupted``) is added at the run's last step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CURVE_SEED = 30_000  # used by no training, selection or held-out report


def snapshots(run_dir: Path, every: int, start: int = 0) -> list[tuple[int, str]]:
    """(env steps, snapshot name) of the run's checkpoints at multiples of ``every`` (all if
    0) from ``start`` steps on, then its last snapshot at the run's last step."""
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml)")
    steps = sorted(int(z.stem.split("_")[1]) for z in (run_dir / "checkpoints").glob("step_*.zip"))
    from fingergym.policies.export import end_snapshot

    out = [(n, f"step_{n}") for n in steps if n >= start and (every <= 0 or n % every == 0)]
    last, summary = end_snapshot(run_dir), run_dir / "summary.json"
    if last and summary.exists():
        n = int(json.loads(summary.read_text())["timesteps"])
        if not out or n > out[-1][0]:
            out.append((n, last))
    return out


def evaluate_snapshot(job: tuple[str, int, str, int, int]) -> dict:
    """One snapshot on ``episodes`` episodes from ``seed`` (run in a worker process)."""
    run_dir, steps, which, seed, episodes = job
    from fingergym.policies.evaluate import evaluate_run_snapshot

    res = evaluate_run_snapshot(Path(run_dir), which, range(seed, seed + episodes))
    return {"run_dir": run_dir, "timesteps": steps, "snapshot": which, "episodes": episodes,
            "success_rate": res["success_rate"], "mean_return": res["mean_return"]}


def curves(run_dirs: list[Path], every: int, seed: int, episodes: int, workers: int,
           on_row=None, start: int = 0) -> list[dict]:
    """Every selected snapshot of every run, ``workers`` at a time; rows in run, step order."""
    jobs = [(str(d), n, which, seed, episodes)
            for d in run_dirs for n, which in snapshots(d, every, start)]
    rows = []
    workers = max(1, min(workers, len(jobs)))
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for row in (pool.map if pool else map)(evaluate_snapshot, jobs):  # 1: in this process
            rows.append(row)
            if on_row is not None:
                on_row(row, len(rows), len(jobs))
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Success vs env steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, run in enumerate(dict.fromkeys(r["run_dir"] for r in rows)):
        mine = [r for r in rows if r["run_dir"] == run]
        ax.plot([r["timesteps"] for r in mine], [r["success_rate"] for r in mine], marker=".",
                color=f"C{i}", label=run)
    ax.axhline(0.8, ls="--", c="gray", lw=0.8)
    n = rows[0]["episodes"] if rows else 0
    ax.set_ylabel(f"success, {n} episodes\n(seeds never used in training)")
    ax.set_xlabel("env steps")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("runs", type=Path, nargs="+", help="run directories")
    p.add_argument("--every", type=int, default=0,
                   help="only checkpoints at multiples of this many steps (0: all)")
    p.add_argument("--from-step", type=int, default=0, metavar="N",
                   help="only snapshots at N env steps or later (extends a curve)")
    p.add_argument("--episodes", type=int, default=100, help="episodes per snapshot (100)")
    p.add_argument("--seed", type=int, default=CURVE_SEED,
                   help=f"first episode seed ({CURVE_SEED})")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes (default: one per CPU core)")
    p.add_argument("--plot", type=Path, default=None, help="also draw the curves as this PNG")
    p.add_argument("--title", default="success on fresh episodes vs training steps")
    p.add_argument("--json", action="store_true", help="one JSON list of rows instead of the table")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    try:
        for d in args.runs:
            snapshots(d, args.every)
    except FileNotFoundError as e:
        p.error(str(e))

    def show(row: dict, done: int, total: int) -> None:
        if not args.json:
            print(f"[{done}/{total}] {row['run_dir']} {row['snapshot']} ({row['timesteps']} "
                  f"steps): {row['success_rate']:.0%} of {row['episodes']}", flush=True)

    rows = curves(args.runs, args.every, args.seed, args.episodes, args.workers, show,
                  args.from_step)
    if args.json:
        print(json.dumps(rows))
    if args.plot:
        plot(rows, args.plot, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
