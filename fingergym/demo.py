"""``fingergym demo``: one sim episode on built-in defaults, its return and outcome.

Runs the shipped policy when the package has one, else the scripted flip-up.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fingergym.env import make_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    parser.add_argument("--scripted", action="store_true",
                        help="use the scripted flip-up instead of the shipped policy")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario YAML (default: the shipped configs/scenario.yaml)")
    parser.add_argument("--gif", type=Path, default=None, help="also save the episode as a GIF")
    parser.add_argument("--meshcat", action="store_true", help="show the episode in Meshcat")


def _controller(env, scripted: bool):
    """(name, obs -> action): the shipped policy if available, else the task's scripted expert
    (on the true state)."""
    if not scripted:
        try:
            from fingergym.policies.runner import load_shipped_policy

            policy = load_shipped_policy()
            policy.check_layout(env.observation_layout)
            return f"shipped policy {policy.path.name}", lambda obs: policy(obs)
        except (ImportError, FileNotFoundError, ValueError):
            pass
    expert = env.task.expert()
    if expert is None:
        raise SystemExit(f"fingergym demo: no policy and no scripted expert for {env.task.name}")
    return f"{env.task.name} scripted expert", lambda obs: expert(env.true_state())


def run(args: argparse.Namespace) -> int:
    env = make_env(args.scenario, render_mode="rgb_array" if args.gif else None,
                   meshcat=True if args.meshcat else None)
    name, act = _controller(env, args.scripted)
    obs, info = env.reset(seed=args.seed)
    frames, total, done = [], 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += reward
        done = terminated or truncated
        if args.gif:
            frames.append(env.render())
        if args.meshcat:
            env.render()
    print(f"controller: {name}")
    details = ", ".join(f"{k} {v:+.3f}" for k, v in env.task.info(env.true_state()).items())
    print(f"seed {args.seed}: return {total:.1f} over {info['sim_time']:.1f} s, "
          f"success={info['success']}" + (f" ({details})" if details else ""))
    if args.gif:
        import imageio.v2 as imageio

        imageio.mimsave(args.gif, [np.asarray(f) for f in frames],
                        duration=env.scenario.episode.step, loop=0)
        print(f"wrote {args.gif} ({len(frames)} frames)")
    return 0
