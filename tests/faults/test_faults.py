"""Hardware mode under injected faults: what reached the command topic, what the summary, the
exit code and the bag say. See ``conftest.py`` for the setup (own ROS domain, real rclpy)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import yaml
from conftest import max_step_of, robot_counts, start_deploy, start_robot

from fingergym.hardware.config import load_hardware_config
from fingergym.replay.reader import read_episode
from fingergym.scenario import load_scenario

MAX_STEP = load_scenario().plugins()[1].max_step(load_hardware_config().command_period)
BOX = (0.0, 0.025)  # where the mock robot's box lies (the scenario's default centre, flat)


def _bag(files, i: int):
    return read_episode(files.logs / f"episode_{i:03d}")


def _assert_commands_safe(bus, at_least: int = 20) -> np.ndarray:
    cmds = bus.command_log()
    assert len(cmds) >= at_least
    assert np.all(np.isfinite(cmds))
    assert np.all(max_step_of(cmds) <= MAX_STEP + 1e-9)  # also homing, soft start, faults
    return cmds


def test_invalid_state_ends_the_episode_and_is_logged(procs, files, bus):
    """NaN, inf, implausible positions and non-unit quaternions, one per episode (deploy goes
    on after a fault with ``on_fault: continue``); a clean episode first."""
    config = files.config(safety={"on_fault": "continue"})
    start_robot(procs, files, config)
    run = start_deploy(procs, files, config=config, episodes=5, reset_wait=1.0)
    injections = [
        lambda: bus.joint_state([np.nan, 0.15]),
        lambda: bus.joint_state([0.0, 0.15], velocity=[np.inf, 0.0]),
        lambda: bus.joint_state([1.0e6, 0.15]),
        lambda: bus.pose(*BOX, quaternion=(0.5, 0.0, 0.0, 0.0)),
    ]
    for k, inject in enumerate(injections, start=2):  # episode 1 runs clean
        run.inject_until_ended(k, inject)
    code = run.wait()
    assert code == 4, run.err.text()[-3000:]
    reasons = [e["end_reason"] for e in run.episodes]
    assert reasons[0] == "time_limit"
    assert reasons[1].startswith("invalid state: non_finite on /joint_states")
    assert reasons[2].startswith("invalid state: non_finite on /joint_states")
    assert reasons[3].startswith("invalid state: joint_limits on /joint_states")
    assert reasons[4].startswith("invalid state: quaternion on /box/pose")
    s = run.summary
    assert (s["requested"], s["run"], s["faulted"], s["succeeded"]) == (5, 5, 4, 0)
    assert s["exit_code"] == 4 and "Traceback" not in run.err.text()
    _assert_commands_safe(bus)
    for k in range(1, 5):
        ep = _bag(files, k)
        assert ep.status == "ok" and ep.success is False and ep.metadata["faulted"] is True
        assert sum(ep.metadata["rejected"].values()) >= 1
        assert np.all(np.isfinite(ep.observation))  # the bad value never reached the policy
    assert _bag(files, 0).metadata["faulted"] is False
    assert _bag(files, 1).topic_counts["/joint_states"] > 0  # what arrived is kept as evidence


def test_bad_stamps_tracker_clock_stepping_back_and_future_pose(procs, files, bus):
    """A tracker whose clock steps back 1 s has every later pose rejected, so the watchdog ends
    the episode and names the rejections; a pose stamped in the future is a fault."""
    robot_cfg = files.config("robot.yaml", ros={"object_pose_topic": "/{object}/pose_raw"})
    config = files.config(safety={"on_fault": "continue"})
    start_robot(procs, files, robot_cfg)
    offset = [0.0]
    bus.relay_poses("/box/pose_raw", lambda stamp: stamp + offset[0])
    run = start_deploy(procs, files, config=config, episodes=2, reset_wait=1.0)
    run.err.wait_for("episode 1/2: started", timeout=120)
    time.sleep(0.3)
    offset[0] = -1.0
    run.err.wait_for("episode 1/2: success=", timeout=120)
    offset[0] = 0.0  # the tracker's clock is fixed: the next homing sees valid poses again
    run.inject_until_ended(2, lambda: bus.pose(*BOX, stamp=time.time() + 100.0))
    assert run.wait() == 3, run.err.text()[-3000:]  # the first fault's kind: the watchdog
    first, second = (e["end_reason"] for e in run.episodes)
    assert first.startswith("watchdog: no valid object pose") and "stamp_stale" in first
    assert run.episodes[0]["rejected"].get("stamp_stale", 0) >= 1
    assert second.startswith("invalid state: stamp_future on /box/pose")
    assert run.summary["faulted"] == 2 and run.summary["succeeded"] == 0
    _assert_commands_safe(bus)
    assert _bag(files, 0).metadata["rejected"]["stamp_stale"] >= 1


def test_estop_latched_before_start_and_engaged_mid_episode(procs, files, bus):
    robot = start_robot(procs, files)
    bus.estop(True)  # latched (transient_local) before deploy exists
    config = files.config(ros={"estop_timeout": 60.0})  # as on a real robot
    run = start_deploy(procs, files, config=config)
    assert run.wait() == 5, run.err.text()[-3000:]
    assert "e-stop is engaged" in run.err.text()
    assert run.summary["run"] == 0 and run.summary["requested"] == 1
    assert run.summary["stopped_early"].startswith("set_home: the e-stop is engaged")
    assert len(bus.command_log()) == 0  # homing refused: not one command was sent
    bus.estop(False)
    files.logs = files.root / "logs2"
    run = start_deploy(procs, files, config=config, episodes=2)
    run.err.wait_for("episode 1/2: started", timeout=120)
    time.sleep(0.5)
    bus.estop(True)
    assert run.wait() == 5, run.err.text()[-3000:]
    (ep,) = run.episodes  # engaged while stepping, or while env.reset() homed it
    engaged = ("estop: engaged", "set_home: the e-stop is engaged")
    assert ep["end_reason"].startswith(engaged) and not ep["success"]
    assert run.summary["stopped_early"].startswith(engaged)
    assert run.summary["faulted"] == 1 and run.summary["run"] == 1
    cmds = _assert_commands_safe(bus, at_least=1)  # no jump at engage
    bag = _bag(files, 0)
    assert bag.end_reason.startswith(engaged) and bag.success is False
    # nothing new was commanded once engaged: the last command is the last one logged (or its
    # repetition), which the position controller holds
    assert np.all(np.abs(cmds[-1] - bag.target[-1]) <= MAX_STEP + 1e-9)
    assert robot.proc.poll() is None


def test_rogue_commander_is_detected_and_refused(procs, files, bus):
    # The rogue streams commands, as a controller would, and the episode is long enough (6 s)
    # for deploy's twice-a-second check to see the new publisher however quickly or slowly
    # discovery goes (1.5 s episodes let a fast run end first). Undetected, deploy exits 0.
    files.scenario.write_text(yaml.safe_dump({"episode": {"time_limit": 6.0}}))
    robot = start_robot(procs, files)
    run = start_deploy(procs, files)
    run.err.wait_for("episode 1/1: started", timeout=120)
    deadline = time.monotonic() + 30.0
    while run.proc.poll() is None and time.monotonic() < deadline:
        for data in ([np.nan, 0.1], [0.1], [5.0, 5.0]):
            bus.rogue_command(data)
        time.sleep(0.05)
    assert run.wait() == 6, run.err.text()[-3000:]
    (ep,) = run.episodes
    # caught while stepping, or while env.reset() homed the robot
    assert ep["end_reason"].startswith(("control conflict: ", "set_home: "))
    assert "also publish on /finger_controller/commands" in ep["end_reason"]
    assert run.summary["faulted"] == 1 and not ep["success"]
    counts = robot_counts(robot, procs)
    assert counts["refused"] >= 2 and counts["clamped"] >= 1  # NaN and [0.1]; [5, 5]
    seen = bus.raw_commands()
    assert any(len(d) == 2 and np.isnan(d).any() for d in seen)  # the rogue's reached the
    assert [0.1] in seen                                           # topic ...
    _assert_commands_safe(bus, at_least=1)  # ... ours never did, nor a jump (deploy may stop
    # at its first command: the rogue is checked for before every half second of commands)
    assert "also publish on" in _bag(files, 0).end_reason


def test_second_deploy_on_the_domain(procs, files, bus):
    start_robot(procs, files)
    long = files.root / "long.yaml"
    long.write_text(yaml.safe_dump({"episode": {"time_limit": 60.0}}))
    (files.root / "a").mkdir()
    first_files = type(files)(files.root / "a")
    first_files.scenario = long
    first = start_deploy(procs, first_files, config=files.config())
    first.err.wait_for("episode 1/1: started", timeout=120)
    files.logs = files.root / "b_logs"
    second = start_deploy(procs, files)
    assert first.wait(timeout=180) == 6, first.err.text()[-3000:]
    code = second.wait(timeout=180)
    (ep,) = first.episodes
    assert "also publish on" in ep["end_reason"] and not ep["success"]
    assert ep["steps"] < 600  # stopped long before its time limit
    # the second one refuses while the first is on the domain (or, had the first already
    # gone, runs alone); it never resets the scene or commands alongside the first
    assert code in (6, 0), second.err.text()[-3000:]
    if code == 6:
        assert second.summary["run"] == 0
        assert "refusing to command the robot alongside another commander" in second.err.text()


def test_killed_virtual_robot_stops_deploy_with_the_reason(procs, files, bus):
    run = start_deploy(procs, files, virtual=True, episodes=3)
    line = run.err.wait_for("virtual robot started (pid ", timeout=60)
    pid = int(line.split("(pid ")[1].rstrip(")"))
    run.err.wait_for("episode 1/3: started", timeout=120)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert run.wait() == 3, run.err.text()[-3000:]
    assert time.monotonic() - t0 < 20  # noticed promptly (generous for a loaded machine)
    (ep,) = run.episodes
    assert ep["end_reason"].startswith(("the virtual robot", "watchdog"))
    assert (run.summary["run"], run.summary["faulted"], run.summary["requested"]) == (1, 1, 3)
    assert run.summary["stopped_early"]
    bag = _bag(files, 0)
    assert bag.status == "ok" and bag.success is False and bag.metadata["faulted"] is True


def test_virtual_robot_dying_at_startup_is_noticed(procs, files):
    t0 = time.monotonic()
    run = start_deploy(procs, files, "--robot-arg=--no-such-flag", virtual=True)
    assert run.wait() == 3
    assert time.monotonic() - t0 < 45  # not the 60 s discovery timeout
    assert "exited with code 2" in run.err.text() and "Traceback" not in run.err.text()
    assert run.summary["run"] == 0


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_killed_deploy_takes_its_virtual_robot_down(procs, files):
    run = start_deploy(procs, files, virtual=True)
    line = run.err.wait_for("virtual robot started (pid ", timeout=60)
    pid = int(line.split("(pid ")[1].rstrip(")"))
    try:
        run.err.wait_for("episode 1/1: started", timeout=120)
        time.sleep(0.5)
        procs.kill(run.proc)  # SIGKILL: no cleanup in deploy
        run.wait()
        deadline = time.monotonic() + 20
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(pid), "the virtual robot outlived its deploy"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    bag = _bag(files, 0)  # what the crash left is marked incomplete, not a success
    assert bag.status == "incomplete" and bag.success is None


def test_joint_name_mismatch_is_named(procs, files, bus):
    """JointStates arrive, but name other joints: homing fails saying so (not "is the robot
    running?")."""
    start_robot(procs, files, files.config("robot.yaml",
                                           ros={"joint_states_topic": "/joint_states_raw"}))
    bus.relay_joint_states("/joint_states_raw", ["a_x", "a_z"])
    run = start_deploy(procs, files, config=files.config(home={"timeout": 3.0}))
    assert run.wait() == 3
    err = run.err.text()
    assert "arrived naming ['a_x', 'a_z'], not the robot's joints ['finger_x', 'finger_z']" in err
    assert "Traceback" not in err
