"""``fingergym demo``: one sim episode on built-in defaults, its return and outcome.

Runs the shipped policy (else the scripted flip-up) on a held-out seed and prints the success
rate it was measured to have on the held-out evaluation (``policies/shipped/heldout.json``,
written by ``fingergym eval --episodes 50 --json``). ``--gif`` saves the episode, ``--meshcat``
plays it in real time in a browser and keeps serving it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fingergym.cli import serve_until_interrupted
from fingergym.env import make_env

HELDOUT = "heldout.json"  # next to the shipped policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None,
                        help="episode seed (default: the first held-out seed the shipped policy "
                             "succeeded on in its held-out evaluation, 100000 or just after)")
    parser.add_argument("--scripted", action="store_true",
                        help="use the scripted flip-up instead of the shipped policy")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario YAML (default: the shipped configs/scenario.yaml)")
    parser.add_argument("--gif", type=Path, default=None, metavar="FILE",
                        help="also save the episode as a GIF (10 fps, real time; .mp4 works too)")
    parser.add_argument("--meshcat", action="store_true",
                        help="play the episode in Meshcat (a 2D view of the bin in the browser) "
                             "and keep serving it, with a replayable animation, until Ctrl-C")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="with --meshcat: playback speed, 1 = real time (default)")


def heldout_result(policy) -> dict | None:
    """The shipped held-out evaluation if it was measured on this very policy file."""
    path = policy.path.parent / HELDOUT
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return result if result.get("sha256") == policy.sha256 else None


def _describe(result: dict) -> str:
    rows = result["per_episode"]
    wins = sum(r["success"] for r in rows)
    first, last = rows[0]["seed"], rows[-1]["seed"]
    return (f"held-out success rate {result['success_rate']:.0%} ({wins}/{len(rows)} episodes, "
            f"seeds {first}..{last}, never used in training or model selection; "
            f"policies/shipped/{HELDOUT})")


def _controller(env, scripted: bool):
    """(name, obs -> action, held-out result or None): the shipped policy if available (and
    made for this env's observation layout), else the task's scripted expert (true state)."""
    if not scripted:
        try:
            from fingergym.policies.runner import load_shipped_policy

            policy = load_shipped_policy()
            policy.check_layout(env.observation_layout)
            return (f"shipped policy {policy.path.name} (sha256 {policy.sha256[:12]})",
                    lambda obs: policy(obs), heldout_result(policy))
        except (ImportError, FileNotFoundError, ValueError):
            pass
    expert = env.task.expert()
    if expert is None:
        raise SystemExit(f"fingergym demo: no policy and no scripted expert for {env.task.name}")
    return f"{env.task.name} scripted expert", lambda obs: expert(env.true_state()), None


def _meshcat_visualizer(env):
    from pydrake.geometry import MeshcatVisualizer

    return next(s for s in env.station.diagram.GetSystems() if isinstance(s, MeshcatVisualizer))


def run(args: argparse.Namespace) -> int:
    from fingergym.policies.evaluate import DEFAULT_EVAL_SEED

    if args.speed <= 0:
        print("fingergym demo: --speed must be > 0", file=sys.stderr)
        return 2
    if args.gif:
        from fingergym.files import check_output_file, video_suffixes

        try:
            check_output_file(args.gif, "the GIF", video_suffixes())
        except OSError as e:
            print(f"fingergym demo: {e}", file=sys.stderr)
            return 2
    env = make_env(args.scenario, render_mode="rgb_array" if args.gif else None,
                   meshcat=True if args.meshcat else None)
    name, act, heldout = _controller(env, args.scripted)
    print(f"controller: {name}")
    seed = args.seed
    if heldout is not None:
        print(f"  {_describe(heldout)}")
        if seed is None:
            seed = next((r["seed"] for r in heldout["per_episode"] if r["success"]), None)
            print(f"  showing held-out seed {seed}, one of those episodes")
    elif not args.scripted:
        print(f"  its held-out success rate is not recorded next to it; measure it: "
              f"fingergym eval --episodes 50 (seeds {DEFAULT_EVAL_SEED}..)")
    seed = DEFAULT_EVAL_SEED if seed is None else seed
    obs, info = env.reset(seed=seed)
    vis = None
    if args.meshcat:
        env.simulator.set_target_realtime_rate(args.speed)
        vis = _meshcat_visualizer(env)
        vis.StartRecording(False)  # also publish every frame live
        print(f"Meshcat: {env.meshcat.web_url()} (2D view of the bin)", flush=True)
    frames = [env.render()] if args.gif else []
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += reward
        done = terminated or truncated
        if args.gif:
            frames.append(env.render())
    details = ", ".join(f"{k} {v:+.3f}" for k, v in env.task.info(env.true_state()).items())
    print(f"seed {seed}: return {total:.1f} over {info['sim_time']:.1f} s, "
          f"success={info['success']}" + (f" ({details})" if details else ""))
    if args.gif:
        from fingergym.video import save_video

        fps = 1.0 / env.scenario.episode.step
        save_video(args.gif, [np.asarray(f) for f in frames], fps)
        print(f"wrote {args.gif} ({len(frames)} frames at {fps:g} fps, real time)")
    elif not args.meshcat:
        print("watch it: fingergym demo --gif flip.gif, or fingergym demo --meshcat")
    if vis is not None:
        vis.StopRecording()
        vis.PublishRecording()
        serve_until_interrupted(f"serving the episode at {env.meshcat.web_url()} (replay it "
                                f"with the animation controls); Ctrl-C to exit")
    return 0

