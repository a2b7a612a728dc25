"""Hardware mode: the env's ports backed by a ROS 2 robot, and the robot side (any registered
robot and task; names come from the robot's model file and the hardware config).

- :mod:`.env` — ``make_env(mode="hardware")``: the same :class:`~fingergym.env.FingerGymEnv`;
- :mod:`.station` — the Drake diagram behind the ports (command sender, state source, watchdog);
- :mod:`.ros_bridge` — the rclpy node (topics, QoS, newest state, raw-message hook);
- :mod:`.safety` — the one safety layer between a policy and the publisher;
- :mod:`.validity` — every incoming state message checked (finite, plausible, stamps);
- :mod:`.estop` — the e-stop latch; :mod:`.outcome` — honest outcomes, deploy's exit codes;
- :mod:`.pacing` — the one pacing utility for real-time loops;
- :mod:`.virtual_robot` — ``fingergym-virtual-robot``; :mod:`.deploy` — ``fingergym deploy``;
- :mod:`.session` — the one robot episode runner (deploy, ``replay --on-robot``);
- :mod:`.config` — ``configs/hardware.yaml``; :mod:`.testing` — isolated multi-process ROS tests.

Importing this package does not import rclpy.
"""
