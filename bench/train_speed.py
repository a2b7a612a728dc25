"""Training speed of fingergym's PPO: samples/s of a rollout+update cycle, and time-to-80%.

    .venv/bin/python bench/train_speed.py            # cycle speed + the shipped run's numbers
    .venv/bin/python bench/train_speed.py --quick    # one short cycle (seconds)
    .venv/bin/python bench/train_speed.py --run-dir runs/X   # time-to-80% of another run
    .venv/bin/python bench/train_speed.py --eval 50  # also re-evaluate the shipped policy

samples/s: env steps per wall-clock second of ``PPO.learn`` (SubprocVecEnv rollout + update)
with the default training config, timed after one warm-up cycle. time-to-80%: the wall-clock
seconds (from the start of the run, warm start included) at the first held-out evaluation
with success rate >= 0.8, read from the run's ``eval.json`` (for the shipped policy, its copy
``policies/shipped/eval.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "policies" / "shipped"


def cycle_speed(n_envs: int, cycles: int, n_steps: int | None) -> dict:
    """Env steps/s of PPO rollout+update cycles with the default config."""
    import torch

    from fingergym.policies.config import load_train_config
    from fingergym.policies.train import build_model, make_vec_env

    torch.set_num_threads(1)
    cfg = load_train_config()
    if n_steps:
        cfg = cfg.replace(**{"ppo.n_steps": n_steps, "ppo.batch_size": min(cfg.ppo.batch_size,
                                                                           n_steps)})
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env(cfg, n_envs), gamma=cfg.ppo.gamma)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(cfg, venv, Path(tmp))
            per_cycle = cfg.ppo.n_steps * n_envs
            model.learn(per_cycle)  # warm-up: worker start, first reset
            t0 = time.perf_counter()
            model.learn(per_cycle * cycles, reset_num_timesteps=False)
            dt = time.perf_counter() - t0
    finally:
        venv.close()
    return {"n_envs": n_envs, "n_steps": cfg.ppo.n_steps, "samples": per_cycle * cycles,
            "seconds": round(dt, 2), "samples_per_s": round(per_cycle * cycles / dt, 1)}


def time_to(eval_rows: list[dict], threshold: float = 0.8) -> dict:
    """First evaluation reaching ``threshold`` success (wall seconds, env steps) or None."""
    for r in eval_rows:
        if r["success_rate"] >= threshold:
            return {"wall_s": r["wall_s"], "timesteps": r["timesteps"],
                    "success_rate": r["success_rate"], "episodes": r["episodes"]}
    return {"wall_s": None, "timesteps": None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one short cycle (n_steps 256)")
    p.add_argument("--n-envs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--run-dir", type=Path, default=None,
                   help="a run whose eval.json gives time-to-80%% (default: the shipped run)")
    p.add_argument("--eval", type=int, default=0, metavar="N",
                   help="also evaluate the shipped policy on N held-out episodes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    out: dict = {}
    out["cycle"] = cycle_speed(args.n_envs, 1 if args.quick else args.cycles,
                               256 if args.quick else None)
    log = (args.run_dir / "eval.json") if args.run_dir else SHIPPED_DIR / "eval.json"
    if log.exists():
        rows = json.loads(log.read_text())
        out["time_to_80"] = {"log": str(log), **time_to(rows)}
        out["run_wall_s"] = rows[-1]["wall_s"] if rows else None
    if args.eval:
        from fingergym.env import make_env
        from fingergym.policies.evaluate import DEFAULT_EVAL_SEED, evaluate
        from fingergym.policies.runner import load_shipped_policy

        res = evaluate(make_env(), load_shipped_policy(),
                       range(DEFAULT_EVAL_SEED, DEFAULT_EVAL_SEED + args.eval))
        out["shipped_eval"] = {k: res[k] for k in ("episodes", "success_rate", "mean_return",
                                                   "min_return")}
    if args.json:
        print(json.dumps(out))
        return 0
    c = out["cycle"]
    print(f"train: PPO rollout+update {c['samples_per_s']:.0f} samples/s "
          f"({c['n_envs']} envs x n_steps {c['n_steps']}, {c['samples']} samples in "
          f"{c['seconds']:.1f} s)")
    if "time_to_80" in out:
        t = out["time_to_80"]
        if t["wall_s"] is None:
            print(f"train: time-to-80% success: not reached in {log}")
        else:
            print(f"train: time-to-80% success: {t['wall_s'] / 60:.1f} min wall-clock "
                  f"({t['timesteps']} env steps; {t['success_rate']:.0%} on {t['episodes']} "
                  f"held-out episodes; {log})")
    if "shipped_eval" in out:
        e = out["shipped_eval"]
        print(f"train: shipped policy {e['success_rate']:.0%} success on {e['episodes']} "
              f"held-out episodes, mean return {e['mean_return']:.1f}, min "
              f"{e['min_return']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
