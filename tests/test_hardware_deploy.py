"""``fingergym deploy`` end to end on the virtual robot: separate processes, real rclpy.

Each test has its own ROS_DOMAIN_ID and kills every process it started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from fingergym.scaling import ActionScaling

pytest.importorskip("rclpy")

from fingergym.hardware.testing import LineReader, Processes, unique_domain_id  # noqa: E402

DEPLOY = [sys.executable, "-m", "fingergym.cli", "deploy"]


def _policy_args() -> list[str]:
    """The shipped policy with the virtual robot's default latency and noise.

    Until a policy is shipped: the scripted flip-up on observations, without tracker noise (it
    thresholds the box pose; measured 3-4 of 6 with the default noise, 6 of 6 without).
    """
    try:
        from fingergym.policies.runner import shipped_policy_path

        if shipped_policy_path().exists():
            return ["--policy", str(shipped_policy_path())]
    except ImportError:
        pass
    return ["--scripted", "--robot-arg=--pose-noise-position=0",
            "--robot-arg=--pose-noise-angle=0"]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_deployed_policy_flips_the_box_on_the_virtual_robot(request, tmp_path):
    """Default latency and noise: at least 2 of 3 episodes end with the box standing."""
    domain = unique_domain_id(request.node.nodeid)
    with Processes(domain) as procs:
        # A patient watchdog: this test is about the policy on the robot; on a loaded machine
        # the 0.1 s default can trip (and then deploy honestly stops, exit 3).
        config = tmp_path / "hardware.yaml"
        config.write_text("safety:\n  watchdog_age: 0.5\n")
        deploy = procs.start([*DEPLOY, *_policy_args(), "--episodes", "3", "--virtual-robot",
                              "--json", "--log-dir", str(tmp_path / "logs"),
                              "--config", str(config), "--robot-arg=--friction-scale=0.95"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = deploy.communicate(timeout=180)
    assert deploy.returncode == 0, err[-3000:]
    lines = _json_lines(out)
    episodes, summary = lines[:-1], lines[-1]["summary"]
    assert len(episodes) == 3 and all(e["end_reason"] == "time_limit" for e in episodes)
    assert summary["successes"] >= 2, out
    # every episode was logged, with what was actually sent
    from fingergym.replay.reader import read_episode

    ep = read_episode(tmp_path / "logs" / "episode_000")
    assert ep.finished and ep.steps == 100 and ep.mode == "hardware"
    # the virtual robot's sim-to-real offsets (the ground truth for `fingergym identify`)
    truth = ep.metadata["virtual_robot_physics"]
    assert truth["friction_scale"] == 0.95 and truth["gain_scale"] == 1.0
    assert "command_latency" in truth and "param_scale" in truth
    assert ep.success == episodes[0]["success"]
    lo, hi = ActionScaling.from_scenario(ep.scenario).low, ActionScaling.from_scenario(
        ep.scenario).high
    assert np.all((ep.target >= lo - 1e-9) & (ep.target <= hi + 1e-9))
    for topic in ("/joint_states", "/box/pose", "/finger_controller/commands"):
        assert ep.topic_counts.get(topic, 0) > 50, ep.topic_counts
    # every message decodes with rosbags' strict reader (no size mismatch)
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    with Reader(tmp_path / "logs" / "episode_000") as reader:
        decoded = {}
        for conn, _, raw in reader.messages():
            ts.deserialize_cdr(raw, conn.msgtype)
            decoded[conn.topic] = decoded.get(conn.topic, 0) + 1
    assert decoded == ep.topic_counts


@pytest.mark.slow
def test_killing_the_robot_fires_the_watchdog_and_deploy_exits(request, tmp_path):
    domain = unique_domain_id(request.node.nodeid)
    with Processes(domain) as procs:
        robot = procs.python("fingergym.hardware.virtual_robot", "--quiet")
        deploy = procs.start([*DEPLOY, "--scripted", "--episodes", "3", "--reset", "service",
                              "--json", "--no-log"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err = LineReader(deploy.stderr)
        err.wait_for("episode 1/3: started", timeout=90)
        time.sleep(1.0)
        procs.kill(robot)  # SIGKILL mid-episode: no goodbye
        t_kill = time.monotonic()
        out = deploy.stdout.read()
        code = deploy.wait(timeout=15)
        elapsed = time.monotonic() - t_kill
    assert elapsed < 5.0, f"deploy took {elapsed:.1f} s to exit"
    assert code == 3, err.text()
    episode, summary = _json_lines(out)
    assert episode["truncated"] and episode["end_reason"].startswith("watchdog: no ")
    assert episode["steps"] < 100
    assert summary["summary"]["episodes"] == 1
    assert "Traceback" not in err.text()
