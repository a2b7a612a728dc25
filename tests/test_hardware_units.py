"""Hardware pieces without ROS: config validation, safety layer, pacing, velocity estimator."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from fingergym.hardware.config import hardware_config_from_dict, load_hardware_config
from fingergym.hardware.pacing import Pacer
from fingergym.hardware.safety import SafetyFilter
from fingergym.observation import (
    PoseVelocityEstimator,
    planar_angle,
    planar_quaternion,
    window_velocity,
)
from fingergym.scaling import ActionScaling
from fingergym.scenario import ScenarioError, load_scenario


@pytest.fixture(scope="module")
def scenario():
    return load_scenario()


def test_shipped_config_loads_with_documented_defaults(scenario):
    from fingergym.hardware.config import HardwareConfig, topics

    c = load_hardware_config()
    # the code's defaults are the shipped file (one source of truth)
    assert c == HardwareConfig()
    task, robot = scenario.plugins()
    t = topics(c, robot, task.observation().objects)
    assert t.commands == "/finger_controller/commands"  # from robots/finger/controllers.yaml
    assert t.joint_states == "/joint_states" and t.objects == {"box": "/box/pose"}
    assert t.estop == "/finger/estop"
    assert robot.joint_names == ("finger_x", "finger_z")  # from robots/finger/finger.urdf
    assert c.command.rate == 100.0 and c.safety.watchdog_age == 0.1
    assert c.virtual_robot.joint_state_rate == 200.0 and c.virtual_robot.object_pose_rate == 60.0
    # one controller name renames the command topic
    other = hardware_config_from_dict({"ros": {"controller": "my_controller"}})
    assert topics(other, robot, ()).commands == "/my_controller/commands"


@pytest.mark.parametrize("data, key", [
    ({"safety": {"watchdog_age": -1.0}}, "safety.watchdog_age"),
    ({"qos": {"commands": {"reliability": "sometimes"}}}, "qos.commands.reliability"),
    ({"command": {"rates": 100}}, "command.rates"),
    ({"ros": {"object_pose_topic": "/{thing}/pose"}}, "ros.object_pose_topic"),
    ({"virtual_robot": {"param_scale": {"box_mass": -1}}}, "virtual_robot.param_scale"),
])
def test_config_errors_name_file_and_key(data, key):
    with pytest.raises(ScenarioError, match=rf"my\.yaml: {key}"):
        hardware_config_from_dict(data, source="my.yaml")


def test_safety_clamps_rate_limits_and_rejects_non_finite(scenario):
    scaling = ActionScaling.from_scenario(scenario)
    _, robot = scenario.plugins()
    step = robot.max_step(0.01)  # the model file's velocity limits x the command period
    np.testing.assert_allclose(step, [0.03, 0.03])
    f = SafetyFilter(scaling, max_step=step)
    with pytest.raises(RuntimeError):
        f.filter(np.zeros(2))  # no soft start yet
    f.reset([0.0, 0.15])
    # a far target: rate limited toward it in every dimension, never beyond the workspace
    sent = [f.filter([5.0, 0.3]) for _ in range(40)]
    steps = np.diff([[0.0, 0.15]] + [s.target for s in sent], axis=0)
    assert np.all(np.abs(steps) <= 0.03 + 1e-12)
    assert steps[0] == pytest.approx([0.03, 0.03])  # each dimension limited on its own
    assert sent[0].reason == "workspace" and sent[-1].target[0] == pytest.approx(scaling.high[0])
    last = sent[-1].target
    for bad in ([np.nan, 0.1], [0.1, np.inf], [1.0]):
        cmd = f.filter(bad)
        assert cmd.reason == "non_finite" and np.array_equal(cmd.target, last)
    assert f.rejected == 3


def test_safety_soft_start_and_estop(scenario):
    f = SafetyFilter(ActionScaling.from_scenario(scenario), max_step=0.01)
    f.reset([0.1, 0.2])  # measured
    first = f.filter([0.0, 0.2])
    assert first.target == pytest.approx([0.09, 0.2])  # ramps from the measured position
    # engage with the finger lagging 5 cm behind: the last command is held, no jump to it
    f.set_estop(True, measured=[0.14, 0.2])
    for target in ([0.2, 0.1], [np.nan, 0.0]):
        cmd = f.filter(target)
        assert cmd.reason == "estop" and cmd.target == pytest.approx([0.09, 0.2])
    f.set_estop(False, measured=[0.02, 0.2])  # release: on from the last command, rate limited
    assert f.filter([0.0, 0.2]).target == pytest.approx([0.08, 0.2])
    f.reset([0.0, 0.3])  # a new episode's soft start: still no jump from the last command
    cmd = f.filter([0.0, 0.3])
    assert cmd.target == pytest.approx([0.07, 0.21])  # one step per joint from the last command


def test_pacer_keeps_period_and_reports_overruns():
    p = Pacer(0.005)
    ticks = []
    for i in range(30):
        p.wait()
        ticks.append(time.monotonic())
        if i == 10:
            time.sleep(0.02)  # an overrun
    period = np.diff(ticks)
    assert np.median(period) == pytest.approx(0.005, abs=0.001)
    s = p.stats()
    # The injected 20 ms stall is reported; on a loaded machine the scheduler may add more
    # overruns, but only at ticks that came more than a period after the previous one (a tick
    # over a period late follows one at most a period late).
    assert s.ticks == 30 and 1 <= s.overruns <= int(np.sum(period > 0.005))
    assert period[10] > 0.02  # the stall itself
    # re-anchored: no burst of catch-up ticks after a late one
    assert np.sum(period < 0.002) <= 1


def test_velocity_estimator_tracks_a_ramp_and_unwraps():
    est = PoseVelocityEstimator(window=0.06)
    rate, v = 60.0, np.array([0.2, -0.1, 3.0])
    start = np.array([0.0, 0.05, math.pi - 0.5])  # theta crosses pi: the tracker wraps it
    for k in range(30):
        t = k / rate
        q = start + v * t
        w, x, y, z = planar_quaternion(q[2])
        est.add(1000.0 + t, q[0], q[1], planar_angle(w, x, y, z))
    assert est.velocity() == pytest.approx(v, rel=1e-6)
    assert est.pose()[2] == pytest.approx(start[2] + v[2] * 29 / rate)  # unwrapped past pi
    est.reset()
    est.add(0.0, 0.0, 0.0, -math.pi + 0.01)  # upside down: put in [-pi/2, 3pi/2)
    assert est.pose()[2] == pytest.approx(math.pi + 0.01)
    assert np.array_equal(est.velocity(), np.zeros(3))


def test_window_velocity_is_least_squares_slope():
    t = np.array([0.0, 0.01, 0.03])
    y = np.c_[2 * t + 1, -t]
    assert window_velocity(t, y) == pytest.approx([2.0, -1.0])
    assert np.array_equal(window_velocity(t[:1], y[:1]), np.zeros(2))


def test_safety_rate_limits_each_dimension_of_an_n_d_command():
    from fingergym.layout import Layout

    scaling = ActionScaling(np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.1]),
                            Layout(["x", "z", "opening"]))
    f = SafetyFilter(scaling, max_step=[0.1, 0.05, 0.01])
    f.reset([0.5, 0.5, 0.05])
    cmd = f.filter([1.0, 0.0, 0.0])
    assert cmd.reason == "rate_limit" and cmd.target == pytest.approx([0.6, 0.45, 0.04])
    assert f.filter([0.5, 0.5]).reason == "non_finite"  # wrong size: held


def test_sim_estimated_object_velocity_switch(scenario):
    """observation.object_velocity: estimated gives the hardware pipeline in sim (default:
    exact)."""
    from fingergym.env import make_env
    from fingergym.tasks.box_flipup.experts import ScriptedFlip

    assert scenario.observation.object_velocity == "exact"
    s = scenario.replace(**{"observation.object_velocity": "estimated"})
    env = make_env(s, randomize=False)
    script = ScriptedFlip(s)
    obs, _ = env.reset(seed=0)
    err = []
    for _ in range(30):
        obs, *_ = env.step(script(env.true_state()))
        err.append(obs[5:8] - env.true_state()[5:8])
    err = np.abs(err)
    assert err.max() > 1e-4  # really estimated (sampled at 60 Hz, lagging) ...
    assert np.median(err[:, :2]) < 0.05 and np.median(err[:, 2]) < 0.5  # ... and close


def test_virtual_robot_help_lists_the_sim_to_real_knobs():
    from fingergym.hardware.virtual_robot import build_parser

    text = build_parser().format_help()
    for flag in ("--command-latency", "--object-pose-latency", "--jitter",
                 "--pose-noise-position", "--drop-rate", "--friction-scale", "--param-scale",
                 "--mock", "--config"):
        assert flag in text


def test_deploy_refuses_pickles_before_touching_ros(tmp_path, capsys):
    pytest.importorskip("fingergym.policies.runner")
    from fingergym.cli import main

    bad = tmp_path / "policy.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle, whatever the name says
    assert main(["deploy", "--policy", str(bad), "--episodes", "1"]) == 2
    assert "refusing" in capsys.readouterr().out


def test_reset_pose_parameter_is_parsed_or_refused_in_one_line():
    from fingergym.hardware.virtual_robot import _poses

    assert _poses('{"box": [0.1, 0.025, 0]}') == {"box": [0.1, 0.025, 0.0]}
    for bad in ('{"box": [0.1, 0.025]}', "[1, 2, 3]", '{"box": [0, "x", 0]}', "nope",
                '{"box": [0, NaN, 0]}'):
        with pytest.raises(RuntimeError, match="reset_pose"):
            _poses(bad)


def test_physics_reset_to_puts_the_box_at_the_pose_at_rest():
    from fingergym.hardware.config import VirtualRobotParams
    from fingergym.hardware.virtual_robot import Physics
    from fingergym.scenario import load_scenario

    physics = Physics(load_scenario(), VirtualRobotParams(), np.random.default_rng(0))
    physics.set_target(physics.robot.home())
    message = physics.reset_to({"box": [0.05, 0.03, 0.2]})
    assert "box at x=+0.050" in message
    np.testing.assert_allclose(physics.state().objects["box"], [0.05, 0.03, 0.2])
    with pytest.raises(RuntimeError, match="unknown object"):
        physics.reset_to({"ball": [0, 0, 0]})
