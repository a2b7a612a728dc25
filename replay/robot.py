"""Replay a logged episode on the robot through the deploy safety layer (see replay_on_robot)."""

from __future__ import annotations

from fingergym.scenario import Scenario

from .reader import Episode


def replay_on_robot(ep: Episode, *, scenario: Scenario | None = None, virtual: bool = False):
    raise NotImplementedError(
        "--on-robot is pending: it needs the hardware package's deploy entry points "
        "(safety layer, hardware-mode env, virtual robot management in hardware/deploy.py)")
