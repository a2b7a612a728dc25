"""One way to run episodes on a robot, shared by ``fingergym deploy`` and ``fingergym replay
--on-robot``: start (and stop) the virtual robot, build the hardware env, reset the scene, step
a controller through the env, record what was sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fingergym.hardware.config import VIRTUAL_ROBOT_NODE, HardwareConfig, topics
from fingergym.hardware.outcome import episode_success, fault_code
from fingergym.scenario import Scenario

RESET_MODES = ("prompt", "service", "wait")


def start_virtual_robot(scenario: Path | str | None, config: Path | str | None,
                        robot_args: list[str] | None = None) -> subprocess.Popen:
    """``fingergym-virtual-robot`` in its own process group (stopping it never signals us);
    its output goes to our stderr."""
    cmd = [sys.executable, "-m", "fingergym.hardware.virtual_robot", "--quiet",
           "--parent-pid", str(os.getpid())]  # it exits if we die (even by SIGKILL)
    if config:
        cmd += ["--config", str(config)]
    if scenario:
        cmd += ["--scenario", str(scenario)]
    cmd += list(robot_args or [])
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


@contextmanager
def robot_env(scenario: Scenario, config: HardwareConfig, *, virtual: bool = False,
              scenario_path: Path | str | None = None, robot_args: list[str] | None = None,
              say: Callable[[str], None] = print) -> Iterator:
    """The hardware-mode env (on the virtual robot, started here, with ``virtual``); closed
    (and the virtual robot stopped) on exit. ``scenario_path``: the file the virtual robot
    loads (default: the shipped scenario)."""
    from fingergym.env import make_env

    robot = env = watcher = None
    try:
        if virtual:
            robot = start_virtual_robot(scenario_path, None if config.source == "<defaults>"
                                        else config.source, robot_args)
            say(f"virtual robot started (pid {robot.pid})")
            # Our own robot is still importing Drake: allow it time to appear.
            config.ros.discovery_timeout = max(config.ros.discovery_timeout, 60.0)
        env = make_env(scenario, mode="hardware", config=config)
        if robot is not None:  # a robot that exits stops waits and episodes with the reason
            watcher = ChildWatcher(robot, env.station.bridge)
        yield env
    finally:
        if watcher is not None:
            watcher.stop()
        if env is not None:
            env.close()
        stop_process(robot)


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


def reset_scene(mode: str, station, say: Callable[[str], None], wait: float,
                poses: dict[str, list[float]] | None = None) -> None:
    """Between episodes: call the reset service, ask the operator, or wait. ``poses``
    ({object: [x, z, theta]}): where the objects should start; the virtual robot's reset
    (``service``) puts them there (its ``reset_pose`` parameter), an operator is shown them."""
    if mode == "service":
        if poses:
            station.bridge.set_remote_parameters(VIRTUAL_ROBOT_NODE,
                                                 {"reset_pose": json.dumps(poses)})
        say(f"  scene reset: {station.bridge.call_reset()}")
    elif mode == "prompt":
        where = ("at " + "; ".join(f"{o} x={p[0]:+.3f} m z={p[1]:+.3f} m theta={p[2]:+.2f} rad"
                                   for o, p in poses.items())) if poses else \
            "(e.g. put the box flat in the bin, clear of the robot)"
        say(f"  Reset the scene {where}, then press Enter...")
        input()
    else:
        say(f"  reset the scene now: starting in {wait:.0f} s")
        time.sleep(wait)


def virtual_robot_ground_truth(station) -> dict:
    """The virtual robot's sim-to-real offsets (its ``ground_truth`` parameter), for the bags:
    what ``fingergym identify`` should recover."""
    raw = station.bridge.get_remote_parameters(VIRTUAL_ROBOT_NODE, ["ground_truth"])
    return json.loads(raw["ground_truth"]) if raw.get("ground_truth") else {}


def open_recorder(bag_dir: Path, metadata: dict, scenario: Scenario, station):
    """An EpisodeRecorder whose raw-message hook is the bridge's (incoming and outgoing)."""
    from rclpy.serialization import serialize_message

    from fingergym.replay.recorder import EpisodeRecorder

    task, robot = scenario.plugins()
    recorder = EpisodeRecorder(bag_dir, metadata=metadata, scenario=scenario,
                               topics=topics(station.config, robot, task.observation().objects))
    station.bridge.raw_hook = lambda topic, msgtype, msg, stamp: recorder.record_raw(
        topic, msgtype, serialize_message(msg), stamp)
    return recorder


@dataclass
class RobotEpisode:
    """What one robot episode did: observations (T+1, n) (before each action, then the final
    one), rewards (T,), how it ended."""

    observations: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool = False
    end_reason: str = "interrupted"
    truncated: bool = False
    overruns: int = 0
    rejected: dict = field(default_factory=dict)  # state messages rejected, by reason

    @property
    def faulted(self) -> bool:
        return fault_code(self.end_reason) != 0

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        return float(sum(self.rewards))


def run_episode(env, act: Callable[[np.ndarray, int], np.ndarray | None], recorder=None, *,
                exhausted: str = "actions_done") -> RobotEpisode:
    """``env.reset()``, then ``act(obs, k)`` -> action each step until the episode ends, or
    ``act`` returns ``None`` (end reason ``exhausted``); every step is recorded as sent (after
    safety). The recorder is closed. Success is honest: the task's test at the end of an
    episode that ran to its time limit (or ``exhausted``) without a fault."""
    station = env.station
    out = RobotEpisode()
    info: dict = {}
    try:
        obs, info = env.reset()
        out.observations.append(np.asarray(obs, dtype=float))
        t_obs, wall_ns = info["sim_time"], time.time_ns()
        done, k = False, 0
        while not done:
            action = act(obs, k)
            if action is None:
                out.end_reason = exhausted
                break
            obs, reward, terminated, truncated, info = env.step(action)
            sent = info["sent_target"]
            if recorder is not None:  # what was actually sent, not what was asked
                recorder.record_step(sim_time=t_obs, wall_time_ns=wall_ns,
                                     observation=out.observations[-1],
                                     action=station.scaling.to_action(sent), target=sent,
                                     reward=reward)
            out.observations.append(np.asarray(obs, dtype=float))
            out.rewards.append(float(reward))
            t_obs, wall_ns = info["sim_time"], time.time_ns()
            done, k = terminated or truncated, k + 1
            out.truncated = bool(truncated)
        if done:
            out.end_reason = info.get("end_reason", "terminated")
        out.success = episode_success(out.end_reason, bool(info.get("success"))) or (
            out.end_reason == exhausted and bool(info.get("success")))
        out.overruns = int(info.get("overruns", 0))
    except KeyboardInterrupt:
        out.end_reason = "interrupted"
        raise
    except Exception as e:
        from fingergym.hardware.ros_bridge import HardwareError

        out.end_reason = (str(e) if isinstance(e, HardwareError)
                          else f"error: {type(e).__name__}: {e}")[:300]
        raise
    finally:
        station.bridge.raw_hook = None
        out.rejected = dict(info.get("rejected", {}))
        if recorder is not None:
            recorder.close(end_reason=out.end_reason, success=out.success,
                           episode_return=out.ret,
                           final_observation=out.observations[-1] if out.observations else None,
                           extra={"rejected": out.rejected,
                                  "rejected_first": info.get("rejected_first", {}),
                                  "faulted": out.faulted and out.end_reason != exhausted})
    return out
