"""The virtual robot alone: ``ros2 launch launch/virtual_robot.launch.py``.

Runs ``fingergym-virtual-robot`` (the Drake finger and box as a ROS 2 robot) with the same
config files as the command line; point a deploy, a replay or your own nodes at it. Arguments:

- ``config``: hardware config YAML (topics, QoS, the ``virtual_robot:`` sim-to-real gap);
  default (empty): the shipped configs/hardware.yaml
- ``scenario``: scenario YAML (the physics); default (empty): the shipped configs/scenario.yaml
- ``mock``: ``true`` for mock hardware (joint states mirror the commands, no physics)

It imports only ``launch``; empty defaults are resolved by the launched command.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    arg = LaunchConfiguration
    # `--flag=` and the value as one argument, so an empty value reaches the command as "".
    cmd = ["fingergym-virtual-robot", ["--config=", arg("config")],
           ["--scenario=", arg("scenario")]]
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="",
                              description="hardware config YAML (empty: the shipped one)"),
        DeclareLaunchArgument("scenario", default_value="",
                              description="scenario YAML (empty: the shipped one)"),
        DeclareLaunchArgument("mock", default_value="false",
                              description="mock hardware: no physics"),
        ExecuteProcess(cmd=cmd, name="virtual_robot", output="screen",
                       condition=UnlessCondition(arg("mock"))),
        ExecuteProcess(cmd=[*cmd, "--mock"], name="virtual_robot", output="screen",
                       condition=IfCondition(arg("mock"))),
    ])
