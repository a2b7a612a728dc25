"""The box flip-up task: push a flat box in a bin until it stands (``fingergym/BoxFlipUp-v0``).

- :mod:`.scene` — the box and the bin (shared with other tasks on the same scene);
- :mod:`.task` — :class:`BoxFlipUp`: observation layout, reward, success, randomization;
- :mod:`.experts` — :class:`ScriptedFlip` and :class:`StandingExpert` (warm start, demo).
"""

from .task import BoxFlipUp, angle_from_vertical

__all__ = ["BoxFlipUp", "angle_from_vertical"]

TASK = BoxFlipUp  # what fingergym.registry.discover() registers as "box_flipup"
GYM_IDS = {"fingergym/BoxFlipUp-v0": ""}  # "": the project's default, configs/scenario.yaml
