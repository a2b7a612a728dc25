"""Replay a logged episode on the robot: the logged actions through the deploy path.

The actions go through exactly what ``fingergym deploy`` uses: the hardware-mode env
(:func:`fingergym.env.make_env` with ``mode="hardware"``), whose station passes every target
through the one safety layer (:class:`fingergym.hardware.safety.SafetyFilter`: workspace clamp,
rate limit, e-stop) and starts each episode with homing and a soft start. ``virtual=True``
starts and stops ``fingergym-virtual-robot`` the way deploy does. The replay is itself recorded
as a bag (``mode: "replay"``, ``replay_of``) next to the logged one, and compared with the log.

The box cannot be put back by software on a real robot: the operator is shown the logged start
pose of the box and asked to place it so; the virtual robot's reset service places it itself
(at its own random pose), so the divergence at step 0 is reported too.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fingergym.scenario import Scenario
from fingergym.task import BOX_Q, FINGER_Q, is_success

from .reader import Episode
from .replay import replay_scenario


@dataclass
class RobotReplay:
    bag: Path | None        # the recording of the replay
    observation: np.ndarray  # (M, 10) observations before each sent action (+ the final one)
    reward: np.ndarray       # (M - 1,)
    error: np.ndarray        # (K, 10) replayed - logged observation, on the steps both have
    success: bool
    end_reason: str

    def divergence(self) -> dict[str, np.ndarray]:
        e = self.error
        return {"box_pos": np.linalg.norm(e[:, BOX_Q][:, :2], axis=1),
                "box_theta": np.abs(e[:, BOX_Q][:, 2]),
                "finger_pos": np.linalg.norm(e[:, FINGER_Q], axis=1)}

    def report(self, ep: Episode) -> str:
        d = self.divergence()
        lines = [f"replayed {len(self.reward)} of {ep.steps} logged actions on the robot "
                 f"({self.end_reason}); recorded in {self.bag}"]
        if len(self.error):
            lines.append(f"divergence from the logged observations: start box "
                         f"{1e3 * d['box_pos'][0]:.1f} mm; final box {1e3 * d['box_pos'][-1]:.1f}"
                         f" mm, {np.degrees(d['box_theta'][-1]):.1f} deg, finger "
                         f"{1e3 * d['finger_pos'][-1]:.1f} mm")
        logged = {True: "succeeded", False: "failed", None: "unknown"}[ep.success]
        lines.append(f"logged episode {logged}; replayed episode "
                     f"{'succeeded' if self.success else 'failed'}")
        return "\n".join(lines)


class _Say:
    def __init__(self, say):
        self.say = say


def replay_on_robot(ep: Episode, *, scenario: Scenario | None = None, virtual: bool = False,
                    config=None, log_dir: Path | None = None, reset: str | None = None,
                    robot_args: list[str] | None = None, say=print) -> RobotReplay:
    """Send ``ep``'s logged actions to the robot (or a virtual robot) through the safety layer."""
    from fingergym.env import make_env
    from fingergym.hardware.config import as_hardware_config
    from fingergym.hardware.deploy import (
        ChildWatcher,
        open_recorder,
        reset_box,
        start_virtual_robot,
        stop_process,
    )

    scenario = replay_scenario(ep, scenario)
    config = as_hardware_config(config)
    reset = reset or ("service" if virtual else "prompt")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(log_dir) if log_dir else ep.path.parent
    bag = base / f"{ep.path.name}_replay_{stamp}"
    robot = env = watcher = None
    obs_l: list[np.ndarray] = []
    rewards: list[float] = []
    end_reason, success = "interrupted", False
    try:
        if virtual:
            robot = start_virtual_robot(SimpleNamespace(config=None, scenario=None,
                                                        robot_arg=list(robot_args or [])))
            say(f"virtual robot started (pid {robot.pid})")
            config.ros.discovery_timeout = max(config.ros.discovery_timeout, 60.0)
        env = make_env(scenario, mode="hardware", config=config)
        station = env.station
        if robot is not None:  # a virtual robot that exits stops the replay with the reason
            watcher = ChildWatcher(robot, station.bridge)
        say("homing")
        station.go_home()
        s0 = ep.true_state[0]
        say(f"logged start: box at x={s0[0]:+.3f} m, z={s0[1]:.3f} m, theta={s0[2]:+.2f} rad")
        reset_box(reset, station, _Say(say), 10.0)
        obs, info = env.reset()
        recorder = open_recorder(bag, {
            "mode": "replay", "replay_of": str(ep.path), "policy": ep.metadata.get("policy"),
            "policy_sha256": ep.metadata.get("policy_sha256"), "virtual_robot": virtual,
            "hardware_config": config.source}, scenario, station.bridge)
        obs_l.append(np.asarray(obs, dtype=float))
        t_obs, wall_ns = info["sim_time"], time.time_ns()
        say(f"replaying {ep.steps} actions")
        try:
            for action in ep.action:
                obs, reward, terminated, truncated, info = env.step(action)
                sent = info["sent_target"]
                recorder.record_step(sim_time=t_obs, wall_time_ns=wall_ns, observation=obs_l[-1],
                                     action=station.scaling.to_action(sent), target=sent,
                                     reward=reward)
                obs_l.append(np.asarray(obs, dtype=float))
                rewards.append(float(reward))
                t_obs, wall_ns = info["sim_time"], time.time_ns()
                if terminated or truncated:
                    break
            end_reason = info.get("end_reason") or (
                "logged_actions_done" if len(rewards) == ep.steps else "terminated")
            # honest: a replay stopped by a fault (watchdog, invalid state, e-stop, another
            # commander) is no success, whatever the box did
            success = end_reason in ("time_limit", "logged_actions_done") and bool(
                info.get("success", is_success(obs_l[-1], scenario)))
        finally:
            station.bridge.raw_hook = None
            recorder.close(end_reason=end_reason, success=success,
                           episode_return=float(sum(rewards)), final_observation=obs_l[-1])
    finally:
        if watcher is not None:
            watcher.stop()
        if env is not None:
            env.close()
        stop_process(robot)
    replayed = np.array(obs_l)
    ref = ep.observation
    if ep.final_observation is not None:
        ref = np.vstack([ref, ep.final_observation])
    k = min(len(replayed), len(ref))
    return RobotReplay(bag, replayed, np.array(rewards), replayed[:k] - ref[:k], success,
                       end_reason)
