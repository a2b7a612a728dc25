"""Hardware-in-the-loop timing on the virtual robot, and sim-vs-virtual-robot success.

Over ``--duration`` seconds of episodes (default 60 s) on ``fingergym-virtual-robot`` (a separate
process, default latency and noise, its own ROS domain on loopback):

- the achieved command rate and the command period jitter ``|period - 1/rate|`` (p50/p99/max),
  from the monotonic send time of every command within an episode;
- the latency from a state message's arrival (JointState, box pose) to the command that used it
  (the first command after the policy acted on an observation), p50/p99;
- reference in the same run: a bare :class:`~fingergym.hardware.pacing.Pacer` loop (no ROS, no
  Drake) for the OS scheduling floor on this machine, measured just before.

Then the success rate of the same controller on the virtual robot vs in sim: randomized sim
episodes (what training sees) and sim episodes from the same box starts as the robot's, nominal
physics. Quote medians.

Usage: ``.venv/bin/python bench/hil_timing.py [--duration 60] [--episodes 0] [--sim-episodes 50]
[--policy FILE | --scripted] [--json]``. ``--episodes N`` runs at least N robot episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

from fingergym.hardware.pacing import Pacer
from fingergym.hardware.testing import Processes, unique_domain_id
from fingergym.scenario import Scenario, load_scenario


def controller(args, scenario: Scenario):
    if not args.scripted:
        try:
            from fingergym.policies.runner import Policy, load_shipped_policy

            policy = Policy.load(args.policy) if args.policy else load_shipped_policy()
            return f"policy {policy.path.name} ({policy.sha256[:12]})", policy
        except (ImportError, FileNotFoundError) as e:
            print(f"no policy ({e}); using the scripted flip-up", file=sys.stderr)
    from fingergym.tasks.box_flipup.experts import ScriptedFlip

    script = ScriptedFlip(scenario)
    return "scripted flip-up (on observations)", script


def pct(x, q) -> float:
    return float(np.percentile(np.asarray(x), q)) if len(x) else float("nan")


def reference_pacer(period: float, seconds: float) -> dict:
    pacer, ticks = Pacer(period), []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pacer.wait()
        ticks.append(time.monotonic())
    jitter = np.abs(np.diff(ticks) - period)
    return {"jitter_p50_ms": 1e3 * pct(jitter, 50), "jitter_p99_ms": 1e3 * pct(jitter, 99)}


def matched_sim_scenario(scenario: Scenario, x: float, theta: float) -> Scenario:
    """Nominal physics, no noise or delay, the box starting at (x, theta)."""
    return scenario.replace(**{
        "box.x_range": [x, x],
        "box.flip_probability": 1.0 if theta > 1.0 else 0.0,
        "box.mass_scale": [1.0, 1.0], "box.size_scale": [1.0, 1.0],
        "randomization.friction": [scenario.contact.friction] * 2,
        "randomization.gain_scale": [1.0, 1.0],
        "randomization.obs_noise_position": [0.0, 0.0],
        "randomization.obs_noise_velocity": [0.0, 0.0],
        "randomization.action_delay_periods": [0, 0]})


def sim_success(scenario: Scenario, act, seeds) -> float:
    from fingergym.env import make_env

    env = make_env(scenario)
    wins = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            done = terminated or truncated
        wins.append(bool(info["success"]))
    return float(np.mean(wins)) if wins else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of robot episodes")
    ap.add_argument("--episodes", type=int, default=0, help="at least this many robot episodes")
    ap.add_argument("--sim-episodes", type=int, default=50, help="randomized sim episodes")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--scripted", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--realtime-priority", type=int, default=None,
                    help="SCHED_FIFO priority of the control loop and the robot (0: off; "
                         "default: the config's)")
    args = ap.parse_args()

    scenario = load_scenario()
    name, act = controller(args, scenario)
    from fingergym.hardware.config import load_hardware_config

    config = load_hardware_config()
    period = config.command_period
    if args.realtime_priority is not None:
        config.command.realtime_priority = args.realtime_priority
        config.virtual_robot.realtime_priority = args.realtime_priority
    ref_normal = reference_pacer(period, 5.0)  # before any priority change

    domain = unique_domain_id("bench/hil_timing")
    with Processes(domain) as procs:
        robot = procs.python("fingergym.hardware.virtual_robot", "--quiet",
                             "--realtime-priority", str(config.virtual_robot.realtime_priority))
        from fingergym.env import make_env
        from fingergym.hardware.pacing import use_realtime_priority

        rt = use_realtime_priority(config.command.realtime_priority)
        print(rt, file=sys.stderr)
        ref = reference_pacer(period, 5.0)  # the same thread, the same priority as the HIL loop
        config.ros.discovery_timeout = 60.0
        env = make_env(scenario, mode="hardware", config=config, domain_id=domain)
        station = env.station
        timing = station.sender.timing
        periods, joint_lat, pose_lat, starts, wins, overruns = [], [], [], [], [], 0
        obs_lat, slack = [], []
        sent_total, active = 0, 0.0
        try:
            t_begin = time.monotonic()
            while (time.monotonic() - t_begin < args.duration) or len(wins) < args.episodes:
                station.go_home()
                msg = station.bridge.call_reset()
                m = re.search(r"x=([-+.\d]+) m, theta=([.\d]+)", msg)
                starts.append((float(m.group(1)), float(m.group(2))))
                obs, info = env.reset()
                for lst in (timing.sent, timing.joint_to_cmd, timing.pose_to_cmd,
                            timing.obs_to_cmd, timing.slack):
                    lst.clear()
                done = False
                while not done:
                    obs, _, terminated, truncated, info = env.step(act(obs))
                    done = terminated or truncated
                sent = np.asarray(timing.sent)
                periods.extend(np.diff(sent))
                sent_total += len(sent) - 1
                active += sent[-1] - sent[0]
                joint_lat.extend(timing.joint_to_cmd)
                pose_lat.extend(timing.pose_to_cmd)
                obs_lat.extend(timing.obs_to_cmd)
                slack.extend(timing.slack)
                overruns += int(info["overruns"])
                wins.append(bool(info["success"]))
                print(f"robot episode {len(wins)}: success={wins[-1]} start={starts[-1]} "
                      f"end={info.get('end_reason')}", file=sys.stderr)
        finally:
            env.close()
        robot_alive = robot.poll() is None
    periods = np.asarray(periods)
    jitter = np.abs(periods - period)
    robot_rate = float(np.mean(wins))
    matched = np.mean([sim_success(matched_sim_scenario(scenario, x, th), act, [0])
                       for x, th in starts])
    randomized = sim_success(scenario, act, range(args.sim_episodes))
    result = {
        "controller": name,
        "command_rate_hz": sent_total / active,
        "period_p50_ms": 1e3 * pct(periods, 50), "period_p99_ms": 1e3 * pct(periods, 99),
        "jitter_p50_ms": 1e3 * pct(jitter, 50), "jitter_p99_ms": 1e3 * pct(jitter, 99),
        "jitter_max_ms": 1e3 * float(jitter.max()), "commands": int(sent_total),
        "overruns": overruns,
        "joint_state_to_command_p50_ms": 1e3 * pct(joint_lat, 50),
        "joint_state_to_command_p99_ms": 1e3 * pct(joint_lat, 99),
        "box_pose_to_command_p50_ms": 1e3 * pct(pose_lat, 50),
        "box_pose_to_command_p99_ms": 1e3 * pct(pose_lat, 99),
        "observation_to_command_p50_ms": 1e3 * pct(obs_lat, 50),
        "observation_to_command_p99_ms": 1e3 * pct(obs_lat, 99),
        "slack_before_deadline_p1_ms": 1e3 * pct(slack, 1),
        "scheduling": rt,
        "reference_pacer_jitter_p50_ms": ref["jitter_p50_ms"],
        "reference_pacer_jitter_p99_ms": ref["jitter_p99_ms"],
        "reference_pacer_normal_priority_jitter_p99_ms": ref_normal["jitter_p99_ms"],
        "load_average_1min_at_end": os.getloadavg()[0], "cpus": os.cpu_count(),
        "robot_episodes": len(wins), "robot_success": robot_rate,
        "sim_matched_success": float(matched), "sim_randomized_success": randomized,
        "sim_randomized_episodes": args.sim_episodes, "robot_alive_at_end": robot_alive,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
