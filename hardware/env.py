"""``make_env(mode="hardware")``: the same :class:`~fingergym.env.FingerGymEnv` on a ROS 2 robot.

Same spaces, same ``actions``/``observations``/``reward`` ports, same reward code; the station
behind the ports is :mod:`fingergym.hardware.station`. ``reset()`` homes the robot
(``set_home``: no randomized reset); the scene is reset by a person (or the virtual robot's
reset service) before it. ``step()`` takes ``scenario.episode.step`` seconds of wall time.

``info`` adds ``sent_target`` (what was last published after the safety layer),
``joint_state_age``/``object_pose_age`` [s], ``object_pose_latency`` [s], ``estop``,
``overruns`` and ``rejected`` (state messages rejected as invalid, by reason:
:mod:`fingergym.hardware.validity`). A fault — invalid state, the e-stop, another commander on
the command topic, the watchdog — ends the episode as ``truncated`` with ``info["end_reason"]``
naming it, while the last command sent is held.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pydrake.systems.analysis import Simulator

from fingergym.env import FingerGymEnv
from fingergym.hardware.config import HardwareConfig, as_hardware_config, topics
from fingergym.hardware.ros_bridge import RosBridge
from fingergym.hardware.station import build_hardware_station
from fingergym.scenario import Scenario, as_scenario


def make_hardware_env(scenario: Scenario | str | Path | None = None, *,
                      render_mode: str | None = None,
                      config: HardwareConfig | str | Path | None = None,
                      domain_id: int | None = None,
                      node_name: str | None = None) -> FingerGymEnv:
    """Create the hardware-mode env (starts a ROS 2 node; call ``env.close()`` to stop it).

    Args:
        scenario: the scenario (workspace, home pose, task constants; velocity estimator).
        render_mode: ``None`` or ``"ansi"`` (a robot has no rendering camera here).
        config: the hardware config (default: the shipped ``configs/hardware.yaml``).
        domain_id: ROS domain (default: ``ROS_DOMAIN_ID``).
        node_name: overrides ``ros.node_name``.
    """
    scenario = as_scenario(scenario)
    config = as_hardware_config(config)
    if abs(config.command_period - scenario.controller.period) > 1e-9:
        warnings.warn(f"{config.source}: command.rate {config.command.rate:g} Hz differs from "
                      f"the scenario's controller.period {scenario.controller.period:g} s (the "
                      f"set-point rate the policy was trained with)", stacklevel=2)
    if render_mode not in (None, "ansi"):
        raise ValueError(f"hardware mode renders only 'ansi' (got {render_mode!r}); watch the "
                         f"robot, or replay the episode's log in sim to render it")
    task, robot = scenario.plugins()
    spec = task.observation()
    from fingergym.hardware.validity import StateValidator, ValidityLimits

    validity = StateValidator(ValidityLimits.from_plugins(task, robot, config.safety))
    bridge = RosBridge(config, topics(config, robot, spec.objects), spec, robot.joint_names,
                       robot.command_layout.names, scenario.observation.velocity_window,
                       domain_id=domain_id, node_name=node_name, validity=validity)
    try:
        station = build_hardware_station(scenario, config, bridge)
        simulator = Simulator(station.diagram)
        simulator.set_target_realtime_rate(0.0)  # the station paces itself (and reports overruns)
        simulator.set_monitor(station.monitor)
        env = FingerGymEnv(simulator, scenario=scenario, station_of=lambda _: station,
                           render_mode=render_mode, hardware=True,
                           reset_handler=station.set_home)
    except BaseException:
        bridge.close()
        raise
    env.hardware_config = config
    return env
