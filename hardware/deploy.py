"""``fingergym deploy``: run an exported policy on the robot through the hardware-mode env.

Per episode: home the finger, reset the box (ask the operator, call the reset service, or wait),
``env.reset()`` (homes, collects fresh box poses), step the policy to the time limit, log the
episode (a rosbag2 bag per episode: steps, the raw ROS messages, what was actually sent), print
success and return. ``--virtual-robot`` starts ``fingergym-virtual-robot`` as a separate process
(and stops it at the end) and resets the box through its service.

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
import os
import signal
import subprocess
import sys
import threading
import time
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
    episode_success,
    fault_code,
)
from fingergym.scenario import Scenario, ScenarioError, as_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=optional_path, default=None,
                        help="exported policy (.safetensors; default: the shipped policy)")
    parser.add_argument("--scripted", action="store_true",
                        help="run the scripted flip-up on the observation instead of a policy")
    parser.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    parser.add_argument("--virtual-robot", action="store_true",
                        help="start fingergym-virtual-robot as a separate process and use it")
    parser.add_argument("--reset", choices=("prompt", "service", "wait"), default=None,
                        help="how the box is reset between episodes: ask the operator (prompt; "
                             "default on a robot), call the reset service (default with "
                             "--virtual-robot), or wait --reset-wait seconds")
    parser.add_argument("--reset-wait", type=float, default=10.0,
                        help="seconds to wait with --reset wait (default 10)")
    parser.add_argument("--config", type=optional_path, default=None,
                        help="hardware config YAML (default: the shipped configs/hardware.yaml)")
    parser.add_argument("--scenario", type=optional_path, default=None,
                        help="scenario YAML (default: the shipped configs/scenario.yaml)")
    parser.add_argument("--log-dir", type=optional_path, default=None,
                        help="episode bags go here (default: logs/deploy-<UTC time>/)")
    parser.add_argument("--no-log", action="store_true", help="do not record episodes")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per episode and a final summary line")
    parser.add_argument("--robot-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the virtual robot (repeatable), e.g. "
                             "--robot-arg=--drop-rate=0.05")


def load_controller(args: argparse.Namespace, scenario: Scenario):
    """(name, sha256, obs -> action). Exported policies only: no pickles on this path."""
    if args.scripted:
        from fingergym.sim.scripted import ScriptedFlip

        script = ScriptedFlip(scenario)
        return "scripted flip-up", "scripted", lambda obs: script(np.asarray(obs, dtype=float))
    from fingergym.policies.runner import Policy, load_shipped_policy

    policy = Policy.load(args.policy) if args.policy else load_shipped_policy()
    return str(policy.path), policy.sha256, policy


class _Out:
    """Human lines on stderr when --json owns stdout."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def record(self, obj: dict) -> None:
        if self.as_json:
            print(json.dumps(obj), flush=True)


def start_virtual_robot(args: argparse.Namespace) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fingergym.hardware.virtual_robot", "--quiet",
           "--parent-pid", str(os.getpid())]  # it exits if we die (even by SIGKILL)
    if args.config:
        cmd += ["--config", str(args.config)]
    if args.scenario:
        cmd += ["--scenario", str(args.scenario)]
    cmd += list(args.robot_arg)
    # Its own process group, so stopping it never signals us; its output goes to our stderr.
    return subprocess.Popen(cmd, stdout=sys.stderr, start_new_session=True)


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def open_recorder(bag_dir: Path, metadata: dict, scenario: Scenario, bridge):
    """An EpisodeRecorder whose raw-message hook is the bridge's (incoming and outgoing)."""
    from rclpy.serialization import serialize_message

    from fingergym.replay.recorder import EpisodeRecorder

    recorder = EpisodeRecorder(bag_dir, metadata=metadata, scenario=scenario)
    bridge.raw_hook = lambda topic, msgtype, msg, stamp: recorder.record_raw(
        topic, msgtype, serialize_message(msg), stamp)
    return recorder


def reset_box(mode: str, station, out: _Out, wait: float) -> None:
    if mode == "service":
        out.say(f"  box reset: {station.bridge.call_reset_box()}")
    elif mode == "prompt":
        out.say("  Put the box flat in the bin, clear of the finger, then press Enter...")
        input()
    else:
        out.say(f"  reset the box now: starting in {wait:.0f} s")
        time.sleep(wait)


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

        scenario = as_scenario(args.scenario)
        config = as_hardware_config(args.config)
        name, sha, controller = load_controller(args, scenario)
    except (ScenarioError, ValueError, FileNotFoundError, ImportError) as e:
        out.say(f"fingergym deploy: {e}")
        return 2
    from fingergym.hardware.ros_bridge import (
        ControlConflict,
        EStopEngaged,
        HardwareError,
        StateFault,
    )

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
    robot = None
    env = None
    results: list[dict] = []
    run_summary = RunSummary(requested=args.episodes)
    watcher = None
    try:
        if args.virtual_robot:
            robot = start_virtual_robot(args)
            out.say(f"virtual robot started (pid {robot.pid})")
            # Our own robot is still importing Drake: allow it time to appear (a robot that
            # exits is noticed within a second by the watcher below).
            config.ros.discovery_timeout = max(config.ros.discovery_timeout, 60.0)
        from fingergym.env import make_env
        from fingergym.hardware.pacing import use_realtime_priority

        out.say(use_realtime_priority(config.command.realtime_priority))
        env = make_env(scenario, mode="hardware", config=config)
        station = env.station
        if robot is not None:
            watcher = ChildWatcher(robot, station.bridge)
        out.say(f"policy: {name} (sha256 {sha[:12]}); {args.episodes} episode(s), box reset: "
                f"{reset_mode}; logs: {log_root or 'off'}")
        for i in range(args.episodes):
            out.say(f"episode {i + 1}/{args.episodes}: homing")
            station.go_home()
            reset_box(reset_mode, station, out, args.reset_wait)
            obs, info = env.reset()
            recorder = None
            if log_root is not None:
                recorder = open_recorder(log_root / f"episode_{i:03d}", {
                    "mode": "hardware", "policy": name, "policy_sha256": sha,
                    "virtual_robot": bool(args.virtual_robot), "episode": i,
                    "hardware_config": config.source}, scenario, station.bridge)
            out.say(f"episode {i + 1}/{args.episodes}: started")
            total, done, steps, truncated = 0.0, False, 0, False
            t_obs, wall_ns = info["sim_time"], time.time_ns()
            end_reason = "interrupted"
            try:
                while not done:
                    action = controller(obs)
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    sent = info["sent_target"]
                    if recorder is not None:  # what was actually sent, not what was asked
                        recorder.record_step(sim_time=t_obs, wall_time_ns=wall_ns,
                                             observation=obs,
                                             action=station.scaling.to_action(sent),
                                             target=sent, reward=reward)
                    obs, t_obs, wall_ns = next_obs, info["sim_time"], time.time_ns()
                    total += reward
                    steps += 1
                    done = terminated or truncated
                end_reason = info.get("end_reason", "terminated")
            except KeyboardInterrupt:
                end_reason = "interrupted"
                raise
            except Exception as e:
                end_reason = f"error: {type(e).__name__}: {e}"[:200]
                raise
            finally:
                station.bridge.raw_hook = None
                success = episode_success(end_reason, bool(info.get("success")))
                rejected = info.get("rejected", {})
                run_summary.add(end_reason, success)
                if recorder is not None:
                    recorder.close(end_reason=end_reason, success=success,
                                   episode_return=total, final_observation=obs,
                                   extra={"rejected": rejected,
                                          "rejected_first": info.get("rejected_first", {}),
                                          "faulted": fault_code(end_reason) != 0})
            result = {"episode": i, "success": success, "return": round(total, 3),
                      "steps": steps, "end_reason": end_reason,
                      "truncated": bool(truncated), "overruns": int(info.get("overruns", 0)),
                      "rejected": rejected,
                      "log": str(log_root / f"episode_{i:03d}") if log_root else None}
            results.append(result)
            out.say(f"episode {i + 1}/{args.episodes}: success={result['success']} "
                    f"return={total:.1f} steps={steps} end={end_reason}"
                    + (f" rejected={rejected} (first: {info.get('rejected_first')})"
                       if rejected else ""))
            out.record(result)
            code = fault_code(end_reason)
            if code and (code in (EXIT_ESTOP, EXIT_CONFLICT, EXIT_INTERRUPTED)
                         or config.safety.on_fault == "stop" or station.bridge.abort):
                run_summary.stop(end_reason, code)
                out.say(f"stopping: {end_reason}; the finger holds its last safe target")
                break
    except HardwareError as e:
        out.say(f"fingergym deploy: {e}")
        run_summary.stop(str(e), EXIT_ESTOP if isinstance(e, EStopEngaged) else
                         EXIT_CONFLICT if isinstance(e, ControlConflict) else
                         EXIT_STATE if isinstance(e, StateFault) else EXIT_ROBOT)
    except KeyboardInterrupt:
        out.say("interrupted: the finger holds its last target")
        run_summary.stop("interrupted", EXIT_INTERRUPTED)
    finally:
        if watcher is not None:
            watcher.stop()
        if env is not None:
            env.close()
        stop_process(robot)
    if run_summary.run < run_summary.requested and not run_summary.stopped_early:
        run_summary.stop("unknown", EXIT_ROBOT)
    summary = {**run_summary.as_dict(),
               "mean_return": float(np.mean([r["return"] for r in results])) if results else 0.0,
               "policy": name, "policy_sha256": sha}
    out.say(run_summary.line())
    out.record({"summary": summary})
    return run_summary.exit_code


class ChildWatcher:
    """Polls a child process (the virtual robot) every 0.1 s; when it exits, sets the bridge's
    ``abort`` so waits and the running episode stop within a second, with the reason."""

    def __init__(self, proc: subprocess.Popen, bridge, period: float = 0.1):
        self.proc, self.bridge, self.period = proc, bridge, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="child-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            code = self.proc.poll()
            if code is not None:
                self.bridge.abort = (f"the virtual robot (pid {self.proc.pid}) exited with code "
                                     f"{code}; see its messages above")
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
