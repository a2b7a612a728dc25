"""The warm start's clone alone: how often it succeeds before any PPO, against how many
planner demonstrations it learned from, and after rounds of DAgger.

    # clones of the first 75, 150 and 300 demonstrations, then 2 DAgger rounds on the last
    .venv/bin/python bench/clone_study.py --demos 75 150 300 --dagger-rounds 2

Plans the largest number of demonstrations once (closed-loop planner, seeds ``warm_start.seed``
..., on every core; reused from and stored in the demonstration cache when
``warm_start.cache``), then for each count N clones the first N into a fresh policy exactly as
``fingergym train`` does (the config's ``warm_start`` and ``policy`` sections) and evaluates
the clone deterministically on ``--eval-episodes`` episodes from ``--eval-seed`` (the training
evaluation's seeds 10000...; the held-out seeds 100000... are not touched).

``--dagger-rounds R`` then runs DAgger on the last clone, as ``warm_start.dagger_rounds`` does
in training (:func:`fingergym.policies.warmstart.dagger`): it drives ``--per-round`` episodes
(seeds ``warm_start.seed`` + 1 000 000...) while the planner labels each observation with its
own action there; the clone is refitted on the successful demonstrations plus every labelled
episode so far and evaluated again. Prints a table (or ``--json``) and can draw it (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fresh_model(cfg):
    """An untrained PPO and its VecNormalize, built as ``fingergym train`` builds them."""
    import tempfile

    from stable_baselines3.common.vec_env import DummyVecEnv

    from fingergym.env import make_env
    from fingergym.policies.train import build_model, wrap_normalize

    venv = DummyVecEnv([lambda: make_env(cfg.train_scenario(), randomize=cfg.env.randomize)])
    vecnorm = wrap_normalize(cfg, venv)
    return build_model(cfg, vecnorm or venv, Path(tempfile.mkdtemp())), vecnorm


def success_of(cfg, model, vecnorm, episodes: int, seed: int, by: str = "") -> dict:
    """The clone's deterministic success on ``episodes`` evaluation episodes; with ``by`` (an
    observation element's name) also per third of the episodes, sorted by that element's
    absolute value at the start: ``{"success", "by": [[low, high, success, n], ...]}``."""
    from fingergym.env import make_env
    from fingergym.policies.callbacks import make_predict
    from fingergym.policies.evaluate import evaluate

    env = make_env(cfg.eval_scenario(), randomize=True)
    try:
        res = evaluate(env, make_predict(model, vecnorm), range(seed, seed + episodes))
        out = {"success": res["success_rate"]}
        if by:
            i = env.unwrapped.observation_layout.index(by)
            start = np.array([abs(env.reset(seed=e["seed"])[0][i]) for e in res["per_episode"]])
            ok = np.array([e["success"] for e in res["per_episode"]])
            order = np.argsort(start)
            out["by"] = [[float(start[k[0]]), float(start[k[-1]]), float(ok[k].mean()), len(k)]
                         for k in np.array_split(order, 3) if len(k)]
        return out
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "train_planner.yaml",
                   help="training config whose warm start is studied (%(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, as fingergym train --set")
    p.add_argument("--demos", type=int, nargs="+", default=[75, 150],
                   help="demonstration counts to clone (%(default)s)")
    p.add_argument("--dagger-rounds", type=int, default=0, help="DAgger rounds on the last clone")
    p.add_argument("--per-round", type=int, default=50, help="episodes per DAgger round")
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--by", default="", metavar="NAME",
                   help="also report success per third of the episodes by |NAME| at the start "
                        "(an observation element, e.g. box_x)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="planning processes (%(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    p.add_argument("--plot", type=Path, help="also draw the table as this PNG")
    args = p.parse_args(argv)
    if min(args.demos) < 1 or args.dagger_rounds < 0 or args.per_round < 1:
        p.error("--demos, --per-round must be >= 1 and --dagger-rounds >= 0")

    import torch
    from tqdm import tqdm

    from fingergym.planning.demo_cache import default_dir
    from fingergym.planning.demos import cannot_plan, collect_demonstrations
    from fingergym.policies.config import load_train_config
    from fingergym.policies.train import parse_set
    from fingergym.policies.warmstart import clone, dagger
    from fingergym.scenario import ScenarioError

    torch.set_num_threads(1)
    try:
        cfg = load_train_config(args.config)
        if args.set:
            cfg = cfg.replace(**parse_set(args.set))
        w, scenario = cfg.warm_start, cfg.train_scenario()
    except (ScenarioError, OSError) as e:
        p.error(str(e))
    if cannot_plan(scenario):
        p.error(cannot_plan(scenario))
    names = scenario.plugins()[0].observation_layout.names
    if args.by and args.by not in names:
        p.error(f"--by {args.by}: not an observation element ({', '.join(names)})")
    fit_args = dict(epochs=w.epochs, batch_size=w.batch_size, lr=w.learning_rate,
                    log_std=w.log_std, seed=w.seed)
    counts = sorted(set(args.demos))
    t0 = time.perf_counter()
    with tqdm(total=counts[-1], desc="planner demonstrations", unit="ep",
              file=sys.stderr) as bar:
        data = collect_demonstrations(scenario, counts[-1], w.seed, workers=args.workers,
                                      cache_dir=default_dir() if w.cache else None,
                                      progress=lambda steps, ok: bar.update(), log=bar.write)
    rows = [{"stage": "planner", "demonstrations": counts[-1], "success": float(np.mean(
        data.success)), "episodes": counts[-1], "seconds": round(time.perf_counter() - t0)}]
    for n in counts:
        t0 = time.perf_counter()
        model, vecnorm = fresh_model(cfg)
        clone(model, vecnorm, data.subset(list(range(n))), successful_only=w.successful_only,
              **fit_args)
        rows.append({"stage": "clone", "demonstrations": n, "episodes": args.eval_episodes,
                     **success_of(cfg, model, vecnorm, args.eval_episodes, args.eval_seed,
                                  args.by),
                     "seconds": round(time.perf_counter() - t0)})
        print(json.dumps(rows[-1]), flush=True)
    demos = data.successful_episodes() if w.successful_only else data
    t0 = time.perf_counter()

    def evaluate_round(r: dict) -> None:
        nonlocal t0
        rows.append({"stage": f"DAgger {r['round']}", "demonstrations": counts[-1],
                     "labelled": r["labelled_episodes"],
                     "driving_success": r["driving_success"], "episodes": args.eval_episodes,
                     **success_of(cfg, model, vecnorm, args.eval_episodes, args.eval_seed,
                                  args.by),
                     "seconds": round(time.perf_counter() - t0)})
        print(json.dumps(rows[-1]), flush=True)
        t0 = time.perf_counter()

    if args.dagger_rounds:
        with tqdm(total=args.dagger_rounds * args.per_round, desc="DAgger episodes",
                  unit="ep", file=sys.stderr) as bar:
            dagger(model, vecnorm, scenario, demos, rounds=args.dagger_rounds,
                   episodes=args.per_round, workers=args.workers,
                   progress=lambda steps, ok: bar.update(), on_round=evaluate_round,
                   log=bar.write, **fit_args)
    if args.json:
        print(json.dumps(rows))
    else:
        print("| stage | demonstrations | DAgger-labelled episodes | success | of | s |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['stage']} | {row['demonstrations']} | {row.get('labelled', 0)} | "
                  f"{row['success']:.0%} | {row['episodes']} | {row['seconds']} |")
        for row in rows:
            if row.get("by"):
                thirds = ", ".join(f"{lo:.3f}-{hi:.3f}: {ok:.0%} of {n}"
                                   for lo, hi, ok, n in row["by"])
                print(f"{row['stage']} {row['demonstrations']}, by |{args.by}|: {thirds}")
    if args.plot:
        plot(rows, args.plot, args.by)
        print(f"plot: {args.plot}")
    return 0


def plot(rows: list[dict], path: Path, by: str = "") -> Path:
    """Bars: the planner's success, each clone's and each DAgger round's; with ``by``, also
    the third of the episodes that start with the smallest |by|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"planner\n(its own {r['demonstrations']} ep)" if r["stage"] == "planner"
              else f"clone of\n{r['demonstrations']}" if r["stage"] == "clone"
              else f"{r['stage']}\n(+{r['labelled']})" for r in rows]
    colors = ["0.6" if r["stage"] == "planner" else "C0" if r["stage"] == "clone" else "C1"
              for r in rows]
    x = np.arange(len(rows))
    third = [r["by"][0] if r.get("by") else None for r in rows]
    w = 0.4 if any(third) else 0.8
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2, 3.8))
    bars = ax.bar(x - (w / 2 if any(third) else 0), [100 * r["success"] for r in rows], w,
                  color=colors, label="all episodes")
    ax.bar_label(bars, [f"{r['success']:.0%}" for r in rows], fontsize=8)
    if any(third):
        k = [i for i, t in enumerate(third) if t]
        bars = ax.bar(x[k] + w / 2, [100 * third[i][2] for i in k], w, color="none",
                      edgecolor=[colors[i] for i in k], hatch="//",
                      label=f"the third with the smallest |{by}| "
                            f"(< {third[k[0]][1]:.3f})")
        ax.bar_label(bars, [f"{third[i][2]:.0%}" for i in k], fontsize=8)
        ax.legend(loc="upper left", fontsize=8)
    ax.axhline(80, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success [%]")
    ax.set_title(f"the clone before PPO (deterministic; {rows[-1]['episodes']} evaluation "
                 f"episodes)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
