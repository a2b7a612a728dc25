"""Hardware mode: the env's ports backed by a ROS 2 finger, and the robot side.

- :mod:`.env` — ``make_env(mode="hardware")``: the same :class:`~fingergym.env.FingerGymEnv`;
- :mod:`.station` — the Drake diagram behind the ports (command sender, state source, watchdog);
- :mod:`.ros_bridge` — the rclpy node (topics, QoS, newest state, raw-message hook);
- :mod:`.safety` — the one safety layer between a policy and the publisher;
- :mod:`.pacing` — the one pacing utility for real-time loops;
- :mod:`.velocity` — box velocity from poses (hardware, and the sim switch);
- :mod:`.virtual_robot` — ``fingergym-virtual-robot``; :mod:`.deploy` — ``fingergym deploy``;
- :mod:`.config` — ``configs/hardware.yaml``; :mod:`.testing` — isolated multi-process ROS tests.

Importing this package does not import rclpy (the sim uses :mod:`.velocity`).
"""
