"""A recording process killed with SIGKILL leaves a bag readable up to its last flush."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from fingergym.replay.reader import read_episode

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from fingergym.scenario import load_scenario
    from fingergym.replay.recorder import EpisodeRecorder

    rec = EpisodeRecorder(Path(sys.argv[1]), metadata={"mode": "hardware", "seed": 7},
                          scenario=load_scenario(), flush_period=0.2)
    k = 0
    while True:  # a 100 Hz control loop that is never closed: it gets killed
        rec.record_step(sim_time=0.01 * k, wall_time_ns=time.time_ns(),
                        observation=np.full(10, float(k)), action=[0.0, 0.5],
                        target=[0.0, 0.1], reward=float(k))
        print(k, flush=True)
        k += 1
        time.sleep(0.01)
""")


def test_sigkill_during_recording_leaves_a_readable_bag(tmp_path):
    bag = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(bag)], stdout=subprocess.PIPE,
                            text=True)
    try:
        last = -1
        deadline = time.monotonic() + 120
        while last < 150 and time.monotonic() < deadline:  # ~1.5 s of steps
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        assert last >= 150, "the recording child did not run"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (bag / "metadata.yaml").exists()
    ep = read_episode(bag)
    assert ep.truncated and ep.end_reason.startswith("unfinished")
    # Flushed every 0.2 s: at most ~1 s (100 steps) may be missing, and nothing is invented.
    print(f"killed after step {last}; bag holds {ep.steps} steps")
    assert last - 100 <= ep.steps <= last + 1
    np.testing.assert_array_equal(ep.observation[:, 0], np.arange(ep.steps))
    assert ep.metadata["seed"] == 7 and ep.mode == "hardware"


def test_recorder_left_open_is_closed_at_exit(tmp_path):
    bag = tmp_path / "left_open"
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from fingergym.scenario import load_scenario
        from fingergym.replay.recorder import EpisodeRecorder

        rec = EpisodeRecorder(Path(sys.argv[1]), metadata={"mode": "hardware"},
                              scenario=load_scenario())
        for k in range(3):
            rec.record_step(sim_time=0.1 * k, wall_time_ns=k, observation=[0.0] * 10,
                            action=[0, 0], target=[0, 0.1], reward=1.0)
        # no close(): the interpreter exits normally
    """)
    subprocess.run([sys.executable, "-c", code, str(bag)], check=True, timeout=120)
    ep = read_episode(bag)
    assert (bag / "metadata.yaml").exists() and not ep.truncated
    assert ep.end_reason == "process_exit" and ep.steps == 3
    assert ep.episode_return == 3.0
