"""Plot an episode: states, commands, actions and reward over time, logged vs replayed.

Panels come from the task's observation layout (by name): one per tracked object's position and
one per object's angle, the robot's joints against their commands, the applied actions, the
reward. No task-specific code: a new task's bags plot the same way.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .reader import Episode  # noqa: E402
from .replay import SimReplay  # noqa: E402


def _panels(ep: Episode) -> list[tuple[str, list[tuple[str, int, str | None]], str]]:
    """(y label, [(element name, observation index)], kind) per state panel."""
    task, robot = ep.scenario.plugins()
    spec = task.observation()
    layout = ep.observation_layout
    srcs = spec.sources
    panels = []
    for obj in spec.objects:
        xz = [(n, layout.index(n), None) for n, s in srcs.items()
              if s.kind == "object_pose" and s.name == obj and s.axis < 2]
        th = [(n, layout.index(n), None) for n, s in srcs.items()
              if s.kind == "object_pose" and s.name == obj and s.axis == 2]
        if xz:
            panels.append((f"{obj} position [mm]", xz, "mm"))
        if th:
            panels.append((f"{obj} angle [deg]", th, "deg"))
    # (observation name, index, the command joint it measures): paired with its command by joint
    joints = [(n, layout.index(n), s.name) for n, s in srcs.items()
              if s.kind == "joint_position" and s.name in robot.command_layout.names]
    if joints:
        panels.append(("robot joints vs command [mm | mrad]", joints, "cmd"))
    return panels


def plot_episode(ep: Episode, out: str | Path, replay: SimReplay | None = None,
                 title: str | None = None) -> Path:
    """Write a PNG: the task's objects, the robot's joints vs commands, actions, reward."""
    out = Path(out)
    t = ep.time
    step = float(ep.metadata.get("step", 0.1))
    s = ep.true_state
    panels = _panels(ep)
    fig, axes = plt.subplots(len(panels) + 2, 1, figsize=(9, 2.2 * (len(panels) + 2)),
                             sharex=True, constrained_layout=True)
    rt = None if replay is None else np.arange(len(replay.state)) * step
    logged = dict(lw=1.8)
    replayed = dict(lw=1.4, ls="--")
    command = list(ep.action_layout.names)
    color = 0
    for ax, (label, elements, kind) in zip(axes, panels):
        scale = np.degrees if kind == "deg" else (lambda v: 1e3 * v)
        for name, i, joint in elements:
            c = f"C{color % 10}"
            color += 1
            ax.plot(t, scale(s[:, i]), color=c, label=f"{name} (logged)", **logged)
            if kind == "cmd" and joint in command:
                ax.step(t, 1e3 * ep.target[:, command.index(joint)], where="post", color=c,
                        alpha=0.45, lw=1, label=f"{joint} command")
            if rt is not None:
                ax.plot(rt, scale(replay.state[:, i]), color=c, label=f"{name} (replayed)",
                        **replayed)
        ax.set_ylabel(label)
    ax = axes[-2]
    for i, name in enumerate(command):
        ax.step(t, ep.action[:, i], where="post", color=f"C{i % 10}", label=f"action {name}")
    ax.set_ylim(-1.1, 1.1)
    ax.set_ylabel("action (applied)")
    ax = axes[-1]
    # A row's reward is computed at the end of its step (the observation at its start).
    ax.plot(t + step, ep.reward, color="C7", label="logged", **logged)
    if replay is not None:
        ax.plot(rt[1:], replay.reward, color="C7", label="replayed", **replayed)
    ax.set_ylabel("reward")
    ax.set_xlabel("time [s]")

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    outcome = {True: "success", False: "failure", None: "unfinished"}[ep.success]
    head = title or (f"{ep.path.name}: {ep.mode}, {ep.steps} steps, return "
                     f"{ep.episode_return:.1f}, {outcome} ({ep.end_reason})"
                     + (", TRUNCATED BAG" if ep.truncated else ""))
    if replay is not None:
        d = replay.divergence()
        final = ", ".join(f"{k} {np.degrees(v[-1]):.1f} deg" if k.endswith("_theta")
                          else f"{k} {1e3 * v[-1]:.1f} mm" for k, v in d.items())
        head += f"\nreplay in sim: {'success' if replay.success else 'failure'}, final " \
                f"divergence {final}"
    fig.suptitle(head, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
