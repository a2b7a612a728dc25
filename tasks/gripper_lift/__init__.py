"""Grasp the box and lift it (``fingergym/GripperLift-v0``, on the parallel-jaw gripper).

- :mod:`.task` — :class:`GripperLift`: observation layout, reward, success, randomization
  (the box and bin are the flip-up's, :mod:`fingergym.tasks.box_flipup.scene`);
- ``scenario.yaml`` — the task on the gripper: the scenario behind the gym id.
"""

from .task import GripperLift

__all__ = ["GripperLift"]

TASK = GripperLift  # what fingergym.registry.discover() registers as "gripper_lift"
GYM_IDS = {"fingergym/GripperLift-v0": "scenario.yaml"}  # gym id -> scenario in this folder
