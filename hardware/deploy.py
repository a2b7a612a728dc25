"""``fingergym deploy``: run an exported policy on the robot through the hardware-mode env.

Per episode: home the robot, reset the scene (ask the operator, call the reset service, or
wait), ``env.reset()`` (homes, collects fresh object poses), step the policy to the time limit,
log the episode (a rosbag2 bag per episode: steps, the raw ROS messages, what was actually
sent), print success and return. ``--virtual-robot`` starts ``fingergym-virtual-robot`` as a
separate process (and stops it at the end) and resets the scene through its service. ``--task``
picks a registered task/robot pair (``fingergym tasks``). The episode loop is
:mod:`fingergym.hardware.session`'s, shared with ``fingergym replay --on-robot``.

Policies are loaded with :class:`fingergym.policies.runner.Policy` (safetensors, never a pickle).
An episode succeeds only if it ran to its time limit without a fault; the summary counts
requested, run, succeeded and faulted episodes and prints why a run stopped early. Exit codes
(:mod:`fingergym.hardware.outcome`): 0 every episode ran to its time limit; 2 bad arguments,
config or policy; 3 the robot stopped answering (watchdog, homing timeout, no ROS peers, the
virtual robot exited); 4 invalid robot state; 5 e-stop; 6 another commander on the command
topic; 130 interrupted. After a watchdog or invalid-state fault deploy stops, or goes on with the
next episode with ``safety.on_fault: continue`` in the hardware config.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from pathlib import Path

import numpy as np

from fingergym.cli import optional_path
from fingergym.hardware.outcome import (
    EXIT_CONFLICT,
    EXIT_ESTOP,
    EXIT_INTERRUPTED,
    EXIT_ROBOT,
    EXIT_STATE,
    RunSummary,
    fault_code,
)
from fingergym.hardware.session import (
    RESET_MODES,
    open_recorder,
    reset_scene,
    robot_env,
    run_episode,
    virtual_robot_ground_truth,
)
from fingergym.registry import scenario_path
from fingergym.scenario import Scenario, ScenarioError, as_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=None, metavar="ID_OR_TASK",
                        help="a registered gym id or task (`fingergym tasks`); picks its default "
                             "scenario (default: fingergym/BoxFlipUp-v0)")
    parser.add_argument("--policy", type=optional_path, default=None,
                        help="exported policy (.safetensors; default: the task's shipped policy)")
    parser.add_argument("--scripted", action="store_true",
                        help="run the task's scripted expert on the observation instead of a "
                             "policy")
    parser.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    parser.add_argument("--virtual-robot", action="store_true",
                        help="start fingergym-virtual-robot as a separate process and use it")
    parser.add_argument("--reset", choices=RESET_MODES, default=None,
                        help="how the scene is reset between episodes: ask the operator "
                             "(prompt; default on a robot), call the reset service (default "
                             "with --virtual-robot), or wait --reset-wait seconds")
    parser.add_argument("--reset-wait", type=float, default=10.0,
                        help="seconds to wait with --reset wait (default 10)")
    parser.add_argument("--config", type=optional_path, default=None,
                        help="hardware config YAML (default: the shipped configs/hardware.yaml)")
    parser.add_argument("--scenario", type=optional_path, default=None,
                        help="scenario YAML (default: the --task's, else the shipped "
                             "configs/scenario.yaml)")
    parser.add_argument("--log-dir", type=optional_path, default=None,
                        help="episode bags go here (default: logs/deploy-<UTC time>/)")
    parser.add_argument("--no-log", action="store_true", help="do not record episodes")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per episode and a final summary line")
    parser.add_argument("--robot-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the virtual robot (repeatable), e.g. "
                             "--robot-arg=--drop-rate=0.05")


def load_controller(args: argparse.Namespace, scenario: Scenario, observation_layout):
    """(name, sha256, obs -> action). Exported policies only: no pickles on this path."""
    if args.scripted:
        task, _ = scenario.plugins()
        expert = task.expert()
        if expert is None:
            raise ValueError(f"task {task.name!r} on robot {scenario.robot!r} has no scripted "
                             f"expert")
        return f"{task.name} scripted expert", "scripted", \
            lambda obs: expert(np.asarray(obs, dtype=float))
    from fingergym.policies.runner import Policy, load_shipped_policy

    policy = (Policy.load(args.policy) if args.policy
              else load_shipped_policy(scenario.task))
    policy.check_layout(observation_layout)
    return str(policy.path), policy.sha256, policy


def _code(e: Exception) -> int:
    """The exit code of a :class:`~fingergym.hardware.ros_bridge.HardwareError`."""
    from fingergym.hardware.ros_bridge import ControlConflict, EStopEngaged, StateFault

    return (EXIT_ESTOP if isinstance(e, EStopEngaged) else
            EXIT_CONFLICT if isinstance(e, ControlConflict) else
            EXIT_STATE if isinstance(e, StateFault) else EXIT_ROBOT)


class _Out:
    """Human lines on stderr when --json owns stdout."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def record(self, obj: dict) -> None:
        if self.as_json:
            print(json.dumps(obj), flush=True)


def run(args: argparse.Namespace) -> int:
    out = _Out(args.json)
    if args.episodes < 1:
        out.say("fingergym deploy: --episodes must be >= 1")
        return 2
    if args.scripted and args.policy:
        out.say("fingergym deploy: give either --policy or --scripted")
        return 2
    try:
        from fingergym.hardware.config import as_hardware_config

        path = scenario_path(args.task, args.scenario)
        scenario = as_scenario(path)
        config = as_hardware_config(args.config)
        task, _ = scenario.plugins()
        name, sha, controller = load_controller(args, scenario, task.observation_layout)
    except (ScenarioError, ValueError, FileNotFoundError, ImportError) as e:
        out.say(f"fingergym deploy: {e}")
        return 2
    from fingergym.hardware.ros_bridge import HardwareError

    def _terminate(signum, frame):  # SIGTERM (e.g. ros2 launch shutting down): clean up as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    reset_mode = args.reset or ("service" if args.virtual_robot else "prompt")
    log_root = None if args.no_log else (args.log_dir or Path("logs") / (
        "deploy-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")))
    if log_root is not None and log_root.is_dir() and any(log_root.glob("episode_*")):
        out.say(f"fingergym deploy: {log_root} already holds episodes; choose a new --log-dir")
        return 2
    if log_root is not None:
        from fingergym.files import check_output_dir

        try:
            check_output_dir(log_root, "episode logs")
        except OSError as e:
            out.say(f"fingergym deploy: {e}")
            return 2
    results: list[dict] = []
    run_summary = RunSummary(requested=args.episodes)
    try:
        from fingergym.hardware.pacing import use_realtime_priority

        out.say(use_realtime_priority(config.command.realtime_priority))
        with robot_env(scenario, config, virtual=args.virtual_robot, scenario_path=path,
                       robot_args=args.robot_arg, say=out.say) as env:
            station = env.station
            truth = None  # the virtual robot's offsets: read once it answers (after homing)
            out.say(f"{scenario.task} on {scenario.robot}; policy: {name} (sha256 {sha[:12]}); "
                    f"{args.episodes} episode(s), scene reset: {reset_mode}; logs: "
                    f"{log_root or 'off'}")
            for i in range(args.episodes):
                out.say(f"episode {i + 1}/{args.episodes}: homing")
                station.go_home()
                reset_scene(reset_mode, station, out.say, args.reset_wait)
                if args.virtual_robot and truth is None:
                    truth = virtual_robot_ground_truth(station)
                recorder = None
                if log_root is not None:
                    recorder = open_recorder(log_root / f"episode_{i:03d}", {
                        "mode": "hardware", "policy": name, "policy_sha256": sha,
                        "virtual_robot": bool(args.virtual_robot), "episode": i,
                        "hardware_config": config.source,
                        **({"virtual_robot_physics": truth} if truth else {})},
                        scenario, station)
                out.say(f"episode {i + 1}/{args.episodes}: started")
                try:
                    ep = run_episode(env, lambda obs, k: controller(obs), recorder)
                except HardwareError as e:  # the episode started and could not go on
                    run_summary.add(str(e), False, _code(e))
                    out.record({"episode": i, "success": False, "return": 0.0, "steps": 0,
                                "end_reason": str(e), "truncated": True, "rejected": {}})
                    raise
                run_summary.add(ep.end_reason, ep.success)
                result = {"episode": i, "success": ep.success, "return": round(ep.ret, 3),
                          "steps": ep.steps, "end_reason": ep.end_reason,
                          "truncated": ep.truncated, "overruns": ep.overruns,
                          "rejected": ep.rejected,
                          "log": str(log_root / f"episode_{i:03d}") if log_root else None}
                results.append(result)
                out.say(f"episode {i + 1}/{args.episodes}: success={ep.success} "
                        f"return={ep.ret:.1f} steps={ep.steps} end={ep.end_reason}"
                        + (f" rejected={ep.rejected}" if ep.rejected else ""))
                out.record(result)
                code = fault_code(ep.end_reason)
                if code and (code in (EXIT_ESTOP, EXIT_CONFLICT, EXIT_INTERRUPTED)
                             or config.safety.on_fault == "stop" or station.bridge.abort):
                    run_summary.stop(ep.end_reason, code)
                    out.say(f"stopping: {ep.end_reason}; the robot holds its last safe command")
                    break
    except HardwareError as e:
        out.say(f"fingergym deploy: {e}")
        run_summary.stop(str(e), _code(e))
    except KeyboardInterrupt:
        out.say("interrupted: the robot holds its last command")
        run_summary.stop("interrupted", EXIT_INTERRUPTED)
    if run_summary.run < run_summary.requested and not run_summary.stopped_early:
        run_summary.stop("unknown", EXIT_ROBOT)
    summary = {**run_summary.as_dict(),
               "mean_return": float(np.mean([r["return"] for r in results])) if results else 0.0,
               "policy": name, "policy_sha256": sha}
    out.say(run_summary.line())
    out.record({"summary": summary})
    return run_summary.exit_code
