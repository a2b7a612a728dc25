"""Recorder overhead per gym step, measured against no recording in the same run.

1. Sim episodes (scripted flip-up) stepped with and without :class:`RecordEpisodes`, episodes
   interleaved so both see the same machine load: median time per step and the ratio.
2. The control-loop side on the robot: one ``record_step`` plus the three ``record_raw`` calls
   of a step (what deploy calls between reading the state and sending the command): median.

Usage: ``.venv/bin/python bench/record_overhead.py [--episodes 6] [--out DIR]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fingergym.env import make_env
from fingergym.replay import topics as T
from fingergym.replay.recorder import EpisodeRecorder
from fingergym.replay.sim_log import RecordEpisodes
from fingergym.tasks.box_flipup.experts import ScriptedFlip


def episode_step_times(env, script, seed: int) -> list[float]:
    base = env.unwrapped
    env.reset(seed=seed)
    times, done = [], False
    while not done:
        action = script(base.true_state())
        t0 = time.perf_counter()
        *_, terminated, truncated, _ = env.step(action)
        times.append(time.perf_counter() - t0)
        done = terminated or truncated
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6, help="episodes per variant (6)")
    parser.add_argument("--calls", type=int, default=2000, help="record_step calls (2000)")
    parser.add_argument("--out", type=Path, default=None, help="where bags go (a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="record_overhead_"))

    plain = make_env()
    recorded = RecordEpisodes(make_env(), out / "sim", metadata={"policy": "scripted"})
    script = ScriptedFlip(plain.scenario)
    episode_step_times(plain, script, 0)  # warm up both
    episode_step_times(recorded, script, 0)
    t_plain, t_rec = [], []
    for k in range(args.episodes):
        t_plain += episode_step_times(plain, script, 1000 + k)
        t_rec += episode_step_times(recorded, script, 1000 + k)
    recorded.close()
    m_plain, m_rec = np.median(t_plain), np.median(t_rec)
    print(f"sim env.step, {len(t_plain)} steps each: no recording {1e3 * m_plain:.3f} ms, "
          f"recording {1e3 * m_rec:.3f} ms median -> +{1e6 * (m_rec - m_plain):.0f} us/step, "
          f"ratio {m_rec / m_plain:.3f}")

    # Control-loop side: the calls deploy makes per step, timed alone.
    obs, target = np.linspace(-0.1, 0.1, 10), np.array([0.0, 0.1])
    raw = T.sim_raw_messages(obs, target, 0)
    rec = EpisodeRecorder(out / "calls", metadata={"mode": "hardware"}, scenario=plain.scenario)
    calls = []
    for k in range(args.calls):
        now = time.time_ns()
        t0 = time.perf_counter()
        rec.record_step(sim_time=0.01 * k, wall_time_ns=now, observation=obs,
                        action=[0.1, 0.2], target=target, reward=5.0)
        for topic, msgtype, cdr in raw:
            rec.record_raw(topic, msgtype, cdr, now)
        calls.append(time.perf_counter() - t0)
        time.sleep(0.001)
    rec.close(end_reason="bench", success=True, episode_return=0.0)
    c = np.array(calls)
    print(f"control loop: record_step + 3 record_raw, {len(c)} calls: median "
          f"{1e6 * np.median(c):.1f} us, p99 {1e6 * np.percentile(c, 99):.1f} us "
          f"(command period 10000 us)")
    print(f"bags in {out}")


if __name__ == "__main__":
    main()
