"""``fingergym replay BAG``: replay a logged episode in sim, on the robot, as a plot, in Meshcat.

With no mode option it prints what the bag holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fingergym.scenario import ScenarioError, load_scenario

from .reader import BagError, Episode, read_episode


def _param(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: not a number: {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="a bag directory (or its .mcap file)")
    parser.add_argument("--in", dest="in_", choices=["sim"], default=None,
                        help="re-simulate the logged actions open-loop from the logged initial "
                             "state and report the divergence (the sim-to-real gap)")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                        help="--in sim: override an episode physics parameter, e.g. friction=0.5, "
                             "kp=80, or one of the task's (box_mass=1.2) (repeatable)")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario YAML to replay with (default: the one logged in the bag); "
                             "must match the logged task, robot, layouts, workspace and step")
    parser.add_argument("--policy", type=Path, default=None, metavar="POLICY.safetensors",
                        help="--in sim: run this exported policy closed-loop from the logged "
                             "start instead of the logged actions (would it have succeeded in "
                             "sim from where the robot started?)")
    parser.add_argument("--every", type=int, default=10,
                        help="--in sim: print the divergence every N steps (default 10)")
    parser.add_argument("--on-robot", action="store_true",
                        help="send the logged actions to the robot through the deploy safety layer")
    parser.add_argument("--virtual-robot", action="store_true",
                        help="--on-robot: start and use the virtual robot instead of hardware")
    parser.add_argument("--config", type=Path, default=None,
                        help="--on-robot: hardware config YAML (default: the shipped one)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="--on-robot: where the replay's own bag goes (default: beside BAG)")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                        help="plot states, actions and reward (logged vs replayed with --in sim)")
    parser.add_argument("--meshcat", action="store_true", help="show the episode in Meshcat")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="--meshcat: playback speed, x real time (default 1)")


def describe(ep: Episode) -> str:
    m = ep.metadata
    outcome = {True: "succeeded", False: "failed", None: "unknown"}[ep.success]
    lines = [f"{ep.path}: {ep.mode} episode, {ep.steps} steps "
             f"({ep.steps * float(m.get('step', 0.1)):.1f} s), return {ep.episode_return:.1f}, "
             f"{outcome} ({ep.end_reason}); bag {ep.status}",
             f"  recorded {m.get('created', '?')}, seed {m.get('seed')}, "
             f"policy {m.get('policy', '-')} sha256 {str(m.get('policy_sha256', '-'))[:12]}",
             "  topics: " + ", ".join(f"{t} ({n})" for t, n in sorted(ep.topic_counts.items()))]
    return "\n".join(lines)


PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def run(args: argparse.Namespace) -> int:
    from fingergym.files import check_output_dir, check_output_file

    try:  # outputs checked before any replay runs
        if args.plot:
            check_output_file(args.plot, "the plot", PLOT_SUFFIXES)
        if args.log_dir and args.on_robot:
            check_output_dir(args.log_dir, "the replay's bag")
        ep = read_episode(args.bag)
    except (BagError, OSError) as e:
        print(f"fingergym replay: {e}", file=sys.stderr)
        return 2
    print(describe(ep))
    for note in ep.notes:
        print(f"  note: {note}", file=sys.stderr)
    for problem in ep.problems:
        print(f"  damaged: {problem}", file=sys.stderr)
    if ep.damaged and (args.in_ or args.on_robot):
        print(f"fingergym replay: {args.bag}: the bag is damaged ({ep.problems[0]}); refusing "
              f"to replay its actions (plot or describe it instead)", file=sys.stderr)
        return 2
    if ep.truncated:
        print(f"  warning: truncated bag; replaying the {ep.steps} step(s) it holds",
              file=sys.stderr)
    if args.virtual_robot and not args.on_robot:
        print("fingergym replay: --virtual-robot applies to --on-robot", file=sys.stderr)
        return 2
    scenario = None
    if args.scenario is not None:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as e:
            print(f"fingergym replay: {e}", file=sys.stderr)
            return 2
    replay = None
    try:
        if args.in_ == "sim":
            from .replay import format_sim_report, replay_in_sim

            policy = None
            if args.policy is not None:
                from fingergym.policies.runner import Policy, PolicyFormatError

                try:
                    policy = Policy.load(args.policy)
                    policy.check_layout(ep.observation_layout, ep.action_layout)
                except (PolicyFormatError, OSError, ValueError) as e:
                    print(f"fingergym replay: {e}", file=sys.stderr)
                    return 2
            replay = replay_in_sim(ep, scenario=scenario, overrides=dict(args.param) or None,
                                   policy=policy)
            print(format_sim_report(ep, replay, every=max(1, args.every)))
        elif args.param or args.policy:
            print("fingergym replay: --param and --policy apply to --in sim", file=sys.stderr)
            return 2
        if args.on_robot:
            try:
                from fingergym.hardware.ros_bridge import HardwareError

                from .robot import replay_on_robot
            except ImportError as e:
                print(f"fingergym replay: --on-robot unavailable ({e})", file=sys.stderr)
                return 2
            try:
                result = replay_on_robot(ep, scenario=scenario, virtual=args.virtual_robot,
                                         config=args.config, log_dir=args.log_dir)
            except HardwareError as e:
                print(f"fingergym replay: {e}", file=sys.stderr)
                return 3
            print(result.report(ep))
        if args.plot:
            from .plots import plot_episode

            print(f"wrote {plot_episode(ep, args.plot, replay)}")
        if args.meshcat:
            from pydrake.geometry import StartMeshcat

            from fingergym.cli import serve_until_interrupted

            from .meshcat_view import show_episode

            meshcat = StartMeshcat()
            print(f"playing in Meshcat (2D view of the bin) at {meshcat.web_url()}, "
                  f"{args.speed:g}x real time", flush=True)
            show_episode(ep, speed=args.speed, meshcat=meshcat)
            serve_until_interrupted("the episode stays there as an animation (replay or scrub "
                                    "it with the controls); Ctrl-C to exit")
    except (BagError, ValueError, ScenarioError) as e:
        print(f"fingergym replay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
