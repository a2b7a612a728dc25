"""`fingergym replay BAG --on-robot --virtual-robot`: logged actions through the deploy path."""

from __future__ import annotations

import numpy as np
import pytest

from fingergym.env import make_env
from fingergym.replay.reader import read_episode
from fingergym.replay.recorder import EpisodeRecorder
from fingergym.tasks.box_flipup.experts import ScriptedFlip

STEPS = 8  # 0.8 s of robot time: the test is mostly process start-up


@pytest.fixture
def short_bag(tmp_path):
    env = make_env()
    script = ScriptedFlip(env.scenario)
    obs, info = env.reset(seed=1)
    bag = tmp_path / "short"
    with EpisodeRecorder(bag, metadata={"mode": "sim", "seed": 1}, scenario=env.scenario) as rec:
        for _ in range(STEPS):
            action = script(env.true_state())
            t, state = info["sim_time"], env.true_state().copy()
            next_obs, reward, _, _, info = env.step(action)
            rec.record_step(sim_time=t, wall_time_ns=0, observation=obs, action=action,
                            target=info["target"], reward=reward, state=state)
            obs = next_obs
        rec.close(end_reason="cut", success=False, episode_return=0.0, final_observation=obs)
    return bag


def test_replay_on_virtual_robot(short_bag, tmp_path, monkeypatch, capfd):
    pytest.importorskip("rclpy")
    pytest.importorskip("fingergym.hardware.deploy")
    from fingergym.cli import main

    # Isolated from other tests' ROS traffic (the virtual robot inherits the environment).
    from fingergym.hardware.testing import unique_domain_id

    monkeypatch.setenv("ROS_DOMAIN_ID", str(unique_domain_id("test_replay_on_virtual_robot")))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out_dir = tmp_path / "replays"
    code = main(["replay", str(short_bag), "--on-robot", "--virtual-robot",
                 "--log-dir", str(out_dir)])
    captured = capfd.readouterr()
    text = captured.out
    assert code == 0, captured.err
    assert f"of {STEPS} logged actions on the robot" in text
    (bag,) = out_dir.iterdir()
    ep = read_episode(bag)
    logged = read_episode(short_bag)
    assert ep.mode == "replay" and ep.metadata["replay_of"] == str(short_bag)
    assert 1 <= ep.steps <= STEPS and not ep.truncated  # fewer only if a watchdog stopped it
    assert ep.end_reason in ("logged_actions_done", "time_limit") or "watchdog" in ep.end_reason
    # What was sent is what the safety layer let through: inside the workspace, rate limited.
    scaling = make_env().scaling
    assert np.all(ep.target >= scaling.low - 1e-9) and np.all(ep.target <= scaling.high + 1e-9)
    assert ep.topic_counts.get("/joint_states", 0) > STEPS  # raw messages at the robot's rate
    # commands go out at 100 Hz, 10 per 0.1 s step (a watchdog end may leave only one step)
    assert ep.topic_counts.get("/finger_controller/commands", 0) > ep.steps
    assert logged.steps == STEPS
    # the virtual robot put the box where the logged episode started (reset_pose), not at a
    # random pose of its own: within 5 std of its tracker noise (and the box at rest). (2 std
    # of the angle noise, the old 0.01 rad, failed about one run in twenty.)
    from fingergym.hardware.config import load_hardware_config

    vr = load_hardware_config().virtual_robot
    tolerance = {"box_x": max(0.01, 5 * vr.pose_noise_position),
                 "box_z": max(0.01, 5 * vr.pose_noise_position),
                 "box_theta": max(0.01, 5 * vr.pose_noise_angle)}
    first, start = ep.observation_layout.as_dict(ep.observation[0]), \
        logged.observation_layout.as_dict(logged.true_state[0])
    assert all(abs(first[n] - start[n]) < tol for n, tol in tolerance.items()), (first, start)
    assert "box at x=" in text and "logged start: box" in text
