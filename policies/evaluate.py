"""``fingergym eval``: run a policy deterministically on randomized episodes.

The episode loop is :func:`run_episode` (one function, per-step arrays out), shared by the
CLI, the training-time evaluation callback and the benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fingergym.env import FingerGymEnv, make_env

PolicyFn = Callable[[np.ndarray], np.ndarray]  # obs (n,) float32 -> action (m,) float32

DEFAULT_EVAL_SEED = 100_000  # held out: training uses seeds < 10_000 and >= 1_000_000


@dataclass
class Episode:
    """One episode's per-step arrays. T steps: obs (T+1, n), actions (T, m), rewards (T,),
    success (T,) (the last one counts), and ``task_info``: the task's own quantities
    (:meth:`fingergym.interfaces.Task.info`, e.g. ``angle_from_vertical``), each (T,)."""

    seed: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    success_steps: np.ndarray
    task_info: dict[str, np.ndarray] = field(default_factory=dict)
    frames: list[np.ndarray] | None = None

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    @property
    def success(self) -> bool:
        return bool(self.success_steps[-1])

    def summary(self) -> dict:
        """Seed, return, success, steps, and the task's quantities at the end (``final_*``)."""
        return {"seed": self.seed, "return": round(self.ret, 3), "success": self.success,
                "steps": len(self.rewards),
                **{f"final_{k}": round(float(v[-1]), 4) for k, v in self.task_info.items()}}


def run_episode(env: FingerGymEnv, policy: PolicyFn, seed: int, *,
                render: bool = False) -> Episode:
    """Run one episode from ``env.reset(seed=seed)`` until terminated or truncated."""
    obs, info = env.reset(seed=seed)
    keys = [k for k in env.unwrapped.task.info(env.unwrapped.true_state())]
    obs_l, act_l, rew_l, suc_l = [obs], [], [], []
    task_info: dict[str, list[float]] = {k: [] for k in keys}
    frames = [env.render()] if render else None
    done = False
    while not done:
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        obs_l.append(obs)
        act_l.append(action)
        rew_l.append(reward)
        suc_l.append(info["success"])
        for k in keys:
            task_info[k].append(info[k])
        if render:
            frames.append(env.render())
    return Episode(seed, np.asarray(obs_l), np.asarray(act_l), np.asarray(rew_l),
                   np.asarray(suc_l, dtype=bool), {k: np.asarray(v) for k, v in task_info.items()},
                   frames)


def evaluate(env: FingerGymEnv, policy: PolicyFn, seeds: Iterable[int],
             on_episode: Callable[[Episode], None] | None = None) -> dict:
    """Episodes on ``seeds``; returns ``{episodes, success_rate, mean_return, min_return,
    per_episode}``."""
    rows = []
    for seed in seeds:
        ep = run_episode(env, policy, int(seed))
        rows.append(ep.summary())
        if on_episode is not None:
            on_episode(ep)
    returns = np.array([r["return"] for r in rows])
    return {"episodes": len(rows),
            "success_rate": float(np.mean([r["success"] for r in rows])),
            "mean_return": float(returns.mean()), "min_return": float(returns.min()),
            "per_episode": rows}


def evaluate_run_snapshot(run_dir: Path, which: str, seeds: Iterable[int]) -> dict:
    """Snapshot ``which`` of a run, exported as deployed (numpy runner), on episodes ``seeds``
    of the run's own evaluation scenario; :func:`evaluate`'s result."""
    import tempfile

    from fingergym.policies.config import load_train_config
    from fingergym.policies.export import export

    run_dir = Path(run_dir)
    env = make_env(load_train_config(run_dir / "config.yaml").eval_scenario())  # the run's task
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return evaluate(env, export(run_dir, Path(tmp) / "p.safetensors", which), seeds)
    finally:
        env.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, default=None,
                        help="exported policy file (default: the task's shipped policy)")
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes (50)")
    parser.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED,
                        help=f"first episode seed; episodes use seed, seed+1, ... "
                             f"(default {DEFAULT_EVAL_SEED}, never used in training)")
    parser.add_argument("--task", default=None, metavar="ID_OR_TASK",
                        help="a registered gym id or task (`fingergym tasks`); picks its default "
                             "scenario (default: fingergym/BoxFlipUp-v0)")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario YAML (default: the --task's, else the shipped "
                             "configs/scenario.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--video", type=Path, default=None,
                        help="also save the first episode as a .gif or .mp4 (10 fps, real time)")
    parser.add_argument("--log", type=Path, default=None, metavar="DIR",
                        help="log every episode as a rosbag2 (MCAP) bag in DIR "
                             "(see `fingergym replay`, `fingergym episodes`)")


def run(args: argparse.Namespace) -> int:
    from fingergym.files import check_output_dir, check_output_file, video_suffixes
    from fingergym.policies.runner import Policy, PolicyFormatError, load_shipped_policy

    if args.episodes < 1:
        print("fingergym eval: --episodes must be >= 1", file=sys.stderr)
        return 2
    from fingergym.registry import scenario_path

    try:  # outputs checked before the evaluation, so a finished one is never thrown away
        if args.video:
            check_output_file(args.video, "the video", video_suffixes())
        if args.log:
            check_output_dir(args.log, "episode logs")
        scenario = scenario_path(args.task, args.scenario)
        env = make_env(scenario)
        policy = (Policy.load(args.policy) if args.policy
                  else load_shipped_policy(env.scenario.task))
        policy.check_layout(env.observation_layout, env.action_layout)
    except (PolicyFormatError, OSError) as e:
        print(f"fingergym eval: {e}", file=sys.stderr)
        return 2
    if args.log:
        from fingergym.replay.sim_log import RecordEpisodes

        env = RecordEpisodes(env, args.log, metadata={"policy": str(policy.path),
                                                      "policy_sha256": policy.sha256})
    seeds = range(args.seed, args.seed + args.episodes)
    result = evaluate(env, policy, seeds)
    result = {"policy": str(policy.path), "sha256": policy.sha256, "seed": args.seed, **result}
    if args.video:
        video_env = make_env(scenario, render_mode="rgb_array")
        ep = run_episode(video_env, policy, args.seed, render=True)
        from fingergym.video import save_video

        save_video(args.video, ep.frames, fps=1.0 / video_env.scenario.episode.step)
        result["video"] = str(args.video)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"policy {policy.path} (sha256 {policy.sha256[:12]})")
    extra = [k for k in result["per_episode"][0] if k.startswith("final_")]
    print(f"{'seed':>8} {'return':>9} {'success':>8} " + " ".join(f"{k:>24}" for k in extra))
    for r in result["per_episode"]:
        print(f"{r['seed']:>8} {r['return']:>9.1f} {str(r['success']):>8} "
              + " ".join(f"{r[k]:>+24.3f}" for k in extra))
    print(f"episodes {result['episodes']}: success rate {result['success_rate']:.1%}, "
          f"mean return {result['mean_return']:.1f}, min return {result['min_return']:.1f}")
    if args.video:
        print(f"wrote {args.video}")
    return 0
