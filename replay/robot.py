"""Replay a logged episode on the robot: the logged actions through the deploy path.

The actions go through exactly what ``fingergym deploy`` uses: the hardware-mode env
(:func:`fingergym.env.make_env` with ``mode="hardware"``), whose station passes every target
through the one safety layer (:class:`fingergym.hardware.safety.SafetyFilter`: workspace clamp,
rate limit, e-stop) and starts each episode with homing and a soft start. ``virtual=True``
starts and stops ``fingergym-virtual-robot`` the way deploy does. The replay is itself recorded
as a bag (``mode: "replay"``, ``replay_of``) next to the logged one, and compared with the log.

The box cannot be put back by software on a real robot: the operator is shown the logged start
pose of the box and asked to place it so. The virtual robot puts it there itself (its
``reset_pose`` parameter, then its reset service); the divergence at step 0 is reported too.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingergym.scenario import Scenario

from .reader import Episode
from .replay import divergence, replay_scenario


@dataclass
class RobotReplay:
    bag: Path | None        # the recording of the replay
    observation: np.ndarray  # (M, n) observations before each sent action (+ the final one)
    reward: np.ndarray       # (M - 1,)
    error: np.ndarray        # (K, n) replayed - logged observation, on the steps both have
    success: bool
    end_reason: str
    scenario: Scenario | None = None

    def divergence(self) -> dict[str, np.ndarray]:
        return divergence(self.error, self.scenario)

    def report(self, ep: Episode) -> str:
        lines = [f"replayed {len(self.reward)} of {ep.steps} logged actions on the robot "
                 f"({self.end_reason}); recorded in {self.bag}"]
        if len(self.error):
            d = self.divergence()
            lines.append("divergence from the logged observations: start " + ", ".join(
                f"{k} {_fmt(k, v[0])}" for k, v in d.items() if k != "robot_pos")
                + "; final " + ", ".join(f"{k} {_fmt(k, v[-1])}" for k, v in d.items()))
        logged = {True: "succeeded", False: "failed", None: "unknown"}[ep.success]
        lines.append(f"logged episode {logged}; replayed episode "
                     f"{'succeeded' if self.success else 'failed'}")
        return "\n".join(lines)


def _fmt(name: str, value: float) -> str:
    return f"{np.degrees(value):.1f} deg" if name.endswith("_theta") else f"{1e3 * value:.1f} mm"


def replay_on_robot(ep: Episode, *, scenario: Scenario | None = None, virtual: bool = False,
                    config=None, log_dir: Path | None = None, reset: str | None = None,
                    robot_args: list[str] | None = None, say=print) -> RobotReplay:
    """Send ``ep``'s logged actions to the robot (or a virtual robot) through the safety layer,
    with the episode runner of ``fingergym deploy`` (:mod:`fingergym.hardware.session`)."""
    import tempfile

    import yaml

    from fingergym.hardware.config import as_hardware_config
    from fingergym.hardware.session import open_recorder, reset_scene, robot_env, run_episode
    from fingergym.scenario import to_dict

    scenario = replay_scenario(ep, scenario)
    config = as_hardware_config(config)
    reset = reset or ("service" if virtual else "prompt")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(log_dir) if log_dir else ep.path.parent
    bag = base / f"{ep.path.name}_replay_{stamp}"
    with tempfile.TemporaryDirectory() as tmp:
        scenario_file = None
        if virtual:  # the virtual robot runs the replayed scenario
            scenario_file = Path(tmp) / "scenario.yaml"
            scenario_file.write_text(yaml.safe_dump(to_dict(scenario), sort_keys=False))
        with robot_env(scenario, config, virtual=virtual, scenario_path=scenario_file,
                       robot_args=robot_args, say=say) as env:
            station = env.station
            say("homing")
            station.go_home()
            # the logged start of the tracked objects (the observation's own layout)
            spec = scenario.plugins()[0].observation()
            logged = ep.observation_layout.as_dict(ep.true_state[0])
            start = spec.object_poses(spec.layout.vector(logged))
            say("logged start: " + "; ".join(f"{o} {np.round(p, 3).tolist()}"
                                             for o, p in start.items()))
            reset_scene(reset, station, say, 10.0, poses=start)
            recorder = open_recorder(bag, {
                "mode": "replay", "replay_of": str(ep.path), "policy": ep.metadata.get("policy"),
                "policy_sha256": ep.metadata.get("policy_sha256"), "virtual_robot": virtual,
                "hardware_config": config.source}, scenario, station)
            say(f"replaying {ep.steps} actions")
            result = run_episode(env, lambda obs, k: ep.action[k] if k < ep.steps else None,
                                 recorder, exhausted="logged_actions_done")
    end_reason = result.end_reason
    replayed = np.array(result.observations)
    ref = ep.observation
    if ep.final_observation is not None:
        ref = np.vstack([ref, ep.final_observation])
    k = min(len(replayed), len(ref))
    return RobotReplay(bag, replayed, np.array(result.rewards), replayed[:k] - ref[:k],
                       result.success, end_reason, scenario)
