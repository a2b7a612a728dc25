"""The virtual robot alone: ``ros2 launch launch/virtual_robot.launch.py``.

Runs ``fingergym-virtual-robot`` (the Drake finger and box as a ROS 2 robot) with the same
config files as the command line; point a deploy, a replay or your own nodes at it. Arguments:

- ``config``: hardware config YAML (topics, QoS, the ``virtual_robot:`` sim-to-real gap)
- ``scenario``: scenario YAML (the physics)
- ``mock``: ``true`` for mock hardware (joint states mirror the commands, no physics)
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration

from fingergym.hardware.config import default_hardware_config_path
from fingergym.scenario import default_scenario_path


def generate_launch_description():
    arg = LaunchConfiguration
    cmd = ["fingergym-virtual-robot", "--config", arg("config"), "--scenario", arg("scenario")]
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=str(default_hardware_config_path()),
                              description="hardware config YAML"),
        DeclareLaunchArgument("scenario", default_value=str(default_scenario_path()),
                              description="scenario YAML"),
        DeclareLaunchArgument("mock", default_value="false",
                              description="mock hardware: no physics"),
        ExecuteProcess(cmd=cmd, name="virtual_robot", output="screen",
                       condition=UnlessCondition(arg("mock"))),
        ExecuteProcess(cmd=[*cmd, "--mock"], name="virtual_robot", output="screen",
                       condition=IfCondition(arg("mock"))),
    ])
