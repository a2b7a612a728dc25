"""Log sim episodes: :class:`RecordEpisodes` wraps a sim env and writes one bag per episode.

>>> env = RecordEpisodes(make_env(), "logs/", metadata={"policy": "p.pt", "policy_sha256": h})
>>> obs, info = env.reset(seed=3)          # opens logs/<date>_sim_seed3/
>>> ... env.step(a) ...                    # the last step closes it; info["bag"] is its path

Per step it records the observation the action was chosen from, the action applied (clipped to
[-1, 1], as the station's saturation does), the commanded target, the reward, the noise-free
state and the robot's raw topics synthesized from the observation. The metadata holds the
episode's physics (:class:`fingergym.sim.params.EpisodeParams`), so a sim replay rebuilds it.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from fingergym.scaling import check_action

from .recorder import EpisodeRecorder


def new_bag_path(log_dir: Path, mode: str, seed: int | None) -> Path:
    """``log_dir/<UTC date-time>_<mode>[_seed<seed>]``, made unique with a counter."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}_{mode}" + ("" if seed is None else f"_seed{seed}")
    path, k = log_dir / base, 1
    while path.exists():
        path, k = log_dir / f"{base}_{k}", k + 1
    return path


class RecordEpisodes(gym.Wrapper):
    """Write every episode of a sim :class:`~fingergym.env.FingerGymEnv` as a bag in ``log_dir``."""

    def __init__(self, env: gym.Env, log_dir: str | Path, *, metadata: dict | None = None,
                 hardware_config=None):
        """``hardware_config``: where the robot's raw topic names come from (default: the
        shipped ``configs/hardware.yaml``), so sim bags match robot bags."""
        super().__init__(env)
        self.hardware_config = hardware_config
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.extra = dict(metadata or {})
        self.recorder: EpisodeRecorder | None = None
        self.bags: list[Path] = []
        self._obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._finish("reset", False)
        obs, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        meta: dict[str, Any] = {"mode": "sim", "seed": seed,
                                "episode_params": base.station.params.as_dict(), **self.extra}
        path = new_bag_path(self.log_dir, "sim", seed)
        from fingergym.hardware.config import as_hardware_config, topics

        task, robot = base.task, base.robot
        names = topics(as_hardware_config(self.hardware_config), robot,
                       task.observation().objects)
        self.recorder = EpisodeRecorder(path, metadata=meta, scenario=base.scenario, topics=names)
        self.bags.append(path)
        self._obs = np.asarray(obs, dtype=float)
        info = dict(info, bag=str(path))
        return obs, info

    def step(self, action):
        base = self.env.unwrapped
        rec = self.recorder
        applied = np.clip(check_action(action, base.action_layout.size), -1.0, 1.0)
        sim_time = float(base.simulator.get_context().get_time())
        state = np.array(base.true_state(), dtype=float) if rec else None
        wall_ns = time.time_ns()
        obs, reward, terminated, truncated, info = self.env.step(action)
        if rec is None:
            return obs, reward, terminated, truncated, info
        target = np.asarray(info.get("target", base.scaling.to_target(applied)), dtype=float)
        rec.record_step(sim_time=sim_time, wall_time_ns=wall_ns, observation=self._obs,
                        action=applied, target=target, reward=reward, state=state)
        rec.record_sim_raw(self._obs, target, rec.stamp(sim_time, wall_ns))
        self._obs = np.asarray(obs, dtype=float)
        if terminated or truncated:
            reason = info.get("end_reason", "terminated" if terminated else "time_limit")
            info = dict(info, bag=str(rec.path))
            self._finish(reason, bool(info.get("success", False)),
                         final_state=np.array(base.true_state(), dtype=float))
        return obs, reward, terminated, truncated, info

    def close(self):
        self._finish("closed", False)
        return self.env.close()

    def _finish(self, reason: str, success: bool, final_state: np.ndarray | None = None) -> None:
        rec, self.recorder = self.recorder, None
        if rec is not None:
            rec.close(end_reason=reason, success=success, episode_return=rec.episode_return,
                      final_observation=self._obs, final_state=final_state)
