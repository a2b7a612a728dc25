"""Benchmark: ``fingergym identify`` on sim episodes logged with planted physics offsets.

Logs ``--episodes`` pushes of the box (the scripted flip-up plus exploration noise) on a "true"
scenario (box mass x1.2, friction x0.8, gains x0.85, one extra control period of delay, position
noise), then fits from the nominal scenario and prints recovered vs planted values and the
held-out replay divergence before/after. The virtual-robot version of this check (offsets set
in configs/hardware.yaml, unknown to the fit) is still to do (docs/identify.md).

    nice -n 10 .venv/bin/python bench/identify_planted.py --episodes 6 --seconds 3 --out /tmp/id
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from fingergym.cli import main as cli
from fingergym.env import make_env
from fingergym.replay.sim_log import RecordEpisodes
from fingergym.scenario import default_scenario_path, load_scenario
from fingergym.tasks.box_flipup.experts import ScriptedFlip

PLANTED = {"box_mass": 1.2, "friction": 0.8, "gain_scale": 0.85, "action_delay_periods": 1}


def true_scenario(prior, seconds: float, noise: float):
    p = PLANTED
    return prior.replace(**{
        "box.mass": prior.box.mass * p["box_mass"], "box.mass_scale": [1.0, 1.0],
        "box.size_scale": [1.0, 1.0], "contact.friction": prior.contact.friction * p["friction"],
        "randomization.friction": [prior.contact.friction * p["friction"]] * 2,
        "controller.kp": prior.controller.kp * p["gain_scale"],
        "controller.kd": prior.controller.kd * math.sqrt(p["gain_scale"]),
        "randomization.gain_scale": [1.0, 1.0],
        "randomization.action_delay_periods": [p["action_delay_periods"]] * 2,
        "randomization.obs_noise_position": [noise, noise],
        "randomization.obs_noise_velocity": [0.0, 0.0], "episode.time_limit": seconds})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--holdout", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="episode length [s]")
    ap.add_argument("--noise", type=float, default=5e-4, help="position noise std [m]")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    prior = load_scenario()
    true = true_scenario(prior, a.seconds, a.noise)
    env = RecordEpisodes(make_env(true), a.out / "bags")
    expert, rng = ScriptedFlip(true), np.random.default_rng(0)
    for seed in range(a.episodes):
        env.reset(seed=seed)
        done = False
        while not done:
            act = np.clip(expert(env.unwrapped.true_state()) + 0.3 * rng.standard_normal(2), -1, 1)
            *_, term, trunc, _ = env.step(act)
            done = term or trunc
    env.close()
    print("planted:", ", ".join(f"{k} x{v:g}" if k != "action_delay_periods" else f"{k} {v}"
                                for k, v in PLANTED.items()), flush=True)
    return cli(["identify", str(a.out / "bags"), "-o", str(a.out / "identified.yaml"),
                "--scenario", str(default_scenario_path()), "--holdout", str(a.holdout),
                "--delays", "0:3"])


if __name__ == "__main__":
    sys.exit(main())
