"""Deploy a policy on the robot: ``ros2 launch launch/deploy.launch.py policy:=FILE``.

Starts the same console scripts with the same config files as the command line:
``fingergym deploy`` (and, with ``use_virtual_robot:=true``, ``fingergym-virtual-robot``, whose
reset service then resets the box). Arguments (``ros2 launch ... --show-args``):

- ``policy``: exported policy (.safetensors); default (empty): the shipped policy
- ``config``: hardware config YAML; default (empty): the shipped configs/hardware.yaml
- ``scenario``: scenario YAML; default (empty): the shipped configs/scenario.yaml
- ``use_virtual_robot``: ``true`` to run on the virtual robot instead of the real finger
- ``episodes``: number of episodes
- ``box_reset``: on the real robot, ``wait`` (reset the box during ``reset_wait`` seconds; launch
  gives the process no terminal to prompt on) or ``service`` (a scene-reset Trigger service)
- ``reset_wait``: seconds to reset the box by hand between episodes
- ``log_dir``: where the episode bags go; default (empty): logs/deploy-<UTC time>/

The launch ends when deploy exits. Keep this file thin: behaviour lives in the console scripts.
It imports only ``launch`` (it runs under the distribution's Python): empty defaults are
resolved by the launched commands, in the environment fingergym is installed in.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    arg = LaunchConfiguration
    # `--flag=` and the value as one argument, so an empty value reaches the command as "".
    common = [["--config=", arg("config")], ["--scenario=", arg("scenario")]]
    deploy = ["fingergym", "deploy", ["--policy=", arg("policy")], "--episodes", arg("episodes"),
              ["--log-dir=", arg("log_dir")], *common]
    on_robot = ExecuteProcess(
        cmd=[*deploy, "--reset", arg("box_reset"), "--reset-wait", arg("reset_wait")],
        name="deploy", output="screen", condition=UnlessCondition(arg("use_virtual_robot")))
    on_virtual = ExecuteProcess(
        cmd=[*deploy, "--reset", "service"],
        name="deploy", output="screen", condition=IfCondition(arg("use_virtual_robot")))
    virtual_robot = ExecuteProcess(
        cmd=["fingergym-virtual-robot", *common],
        name="virtual_robot", output="screen", condition=IfCondition(arg("use_virtual_robot")))
    return LaunchDescription([
        DeclareLaunchArgument("policy", default_value="",
                              description="exported policy (.safetensors; empty: the shipped one)"),
        DeclareLaunchArgument("config", default_value="",
                              description="hardware config YAML (empty: the shipped one)"),
        DeclareLaunchArgument("scenario", default_value="",
                              description="scenario YAML (empty: the shipped one)"),
        DeclareLaunchArgument("use_virtual_robot", default_value="false",
                              description="run on fingergym-virtual-robot"),
        DeclareLaunchArgument("episodes", default_value="1", description="number of episodes"),
        DeclareLaunchArgument("box_reset", default_value="wait",
                              description="wait | service: how the box is reset on the robot"),
        DeclareLaunchArgument("reset_wait", default_value="15",
                              description="seconds to reset the box by hand"),
        DeclareLaunchArgument("log_dir", default_value="",
                              description="episode bags directory (empty: logs/deploy-<UTC time>)"),
        virtual_robot,
        on_robot,
        on_virtual,
        *[RegisterEventHandler(OnProcessExit(target_action=action,
                                             on_exit=[EmitEvent(event=Shutdown())]))
          for action in (on_robot, on_virtual)],
    ])
