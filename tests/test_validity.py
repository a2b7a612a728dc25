"""The robot-side checks without ROS: state validity, the e-stop latch, honest outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fingergym.hardware.config import load_hardware_config
from fingergym.hardware.estop import EStopLatch
from fingergym.hardware.outcome import RunSummary, episode_success, fault_code
from fingergym.hardware.validity import StateValidator, ValidityLimits
from fingergym.scenario import load_scenario

T = 1000.0  # a wall clock [s]
JS, POSE = "/joint_states", "/box/pose"
UNIT = np.array([1.0, 0.0, 0.0, 0.0])


@pytest.fixture
def v() -> StateValidator:
    task, robot = load_scenario().plugins()
    return StateValidator(ValidityLimits.from_plugins(task, robot,
                                                      load_hardware_config().safety))


def test_valid_stream_is_accepted(v):
    for k in range(5):
        assert v.joint_state(JS, T + 0.01 * k, T + 0.01 * k + 0.002, [0.0, 0.15], [0.1, 0.0]) == ""
        assert v.pose(POSE, T + 0.01 * k, T + 0.01 * k + 0.01, [0.0, 0.0, 0.025], UNIT) == ""
    assert v.counts() == {} and v.fault == ""


@pytest.mark.parametrize("call, reason", [
    (lambda v: v.joint_state(JS, T, T, [np.nan, 0.15], None), "non_finite"),
    (lambda v: v.joint_state(JS, T, T, [0.0, 0.15], [0.0, -np.inf]), "non_finite"),
    (lambda v: v.joint_state(JS, math.nan, T, [0.0, 0.15], None), "non_finite"),
    (lambda v: v.joint_state(JS, T, T, [1e6, 0.15], None), "joint_limits"),
    (lambda v: v.joint_state(JS, T, T, [0.0, 0.15], [50.0, 0.0]), "joint_limits"),
    (lambda v: v.pose(POSE, T, T, [0.0, 0.0, 0.025], [np.nan, 0, 0, 0]), "non_finite"),
    (lambda v: v.pose(POSE, T, T, [0.0, 0.0, 0.025], [0.5, 0, 0, 0]), "quaternion"),
    (lambda v: v.pose(POSE, T, T, [0.0, 0.0, 0.025], [0.0, 0, 0, 0]), "quaternion"),
    (lambda v: v.pose(POSE, T, T, [3.0, 0.0, 0.025], UNIT), "workspace"),
    (lambda v: v.pose(POSE, T + 100.0, T, [0.0, 0.0, 0.025], UNIT), "stamp_future"),
])
def test_faults_are_rejected_counted_and_named(v, call, reason):
    assert call(v) == reason
    assert v.counts() == {reason: 1}
    assert v.fault.startswith(f"invalid state: {reason} on ")


def test_stamp_order_and_staleness_reject_without_a_fault(v):
    assert v.pose(POSE, T, T, [0.0, 0.0, 0.025], UNIT) == ""
    # a far-future pose is refused, so it cannot blind the estimator to the poses after it
    assert v.pose(POSE, T + 50, T + 0.01, [0.0, 0.0, 0.025], UNIT) == "stamp_future"
    assert v.pose(POSE, T + 0.02, T + 0.03, [0.0, 0.0, 0.025], UNIT) == ""
    assert v.pose(POSE, T + 0.01, T + 0.04, [0.0, 0.0, 0.025], UNIT) == "stamp_order"
    assert v.pose(POSE, T - 1.0, T + 0.05, [0.0, 0.0, 0.025], UNIT) == "stamp_stale"
    assert v.counts() == {"stamp_future": 1, "stamp_order": 1, "stamp_stale": 1}
    v.new_episode()
    assert v.counts() == {} and v.fault == ""
    assert v.pose(POSE, T + 0.02, T + 0.06, [0.0, 0.0, 0.025], UNIT) == "stamp_repeat"
    assert v.fault == ""  # order, repeats and staleness only stop the stream (the watchdog)


def test_a_bad_message_from_before_the_episode_is_no_fault_of_it(v):
    v.new_episode(since=T)
    assert v.joint_state(JS, T - 0.5, T + 0.1, [np.nan, 0.15], None) == "non_finite"
    assert v.fault == "" and v.counts() == {"non_finite": 1}
    assert v.joint_state(JS, T + 0.05, T + 0.1, [np.nan, 0.15], None) == "non_finite"
    assert v.fault


def test_estop_latch():
    latch = EStopLatch()
    latch.update(False)
    assert not latch.engaged and latch.ignored_releases == 1
    latch.update(True)
    latch.update(True)
    assert latch.engaged and latch.engagements == 1
    latch.update(False)  # an explicit release after the engage
    assert not latch.engaged


def test_honest_outcomes_and_exit_codes():
    assert episode_success("time_limit", True)
    for reason in ("watchdog: no valid box pose", "invalid state: non_finite on /x", "estop: x",
                   "control conflict: /rogue", "interrupted", "error: ValueError"):
        assert not episode_success(reason, True)
    assert [fault_code(r) for r in ("time_limit", "watchdog: x", "invalid state: x",
                                    "estop: x", "control conflict: x", "interrupted")] \
        == [0, 3, 4, 5, 6, 130]
    s = RunSummary(requested=4)
    s.add("time_limit", True)
    s.add("watchdog: no valid joint states", False)
    s.stop("watchdog: no valid joint states", 3)
    d = s.as_dict()
    assert (d["requested"], d["run"], d["succeeded"], d["faulted"], d["exit_code"]) == \
        (4, 2, 1, 1, 3)
    assert "stopped early: watchdog" in s.line() and "4 requested, 2 run, 1 faulted" in s.line()
