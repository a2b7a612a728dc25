"""Plot an episode: states, actions/targets and reward over time, logged vs replayed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .reader import Episode  # noqa: E402
from .replay import SimReplay  # noqa: E402


def plot_episode(ep: Episode, out: str | Path, replay: SimReplay | None = None,
                 title: str | None = None) -> Path:
    """Write a PNG: box position, box angle, finger position vs target, action, reward."""
    out = Path(out)
    t = ep.time
    step = float(ep.metadata.get("step", 0.1))
    s = ep.true_state
    fig, axes = plt.subplots(5, 1, figsize=(9, 11), sharex=True, constrained_layout=True)
    rt = None if replay is None else np.arange(len(replay.state)) * step
    logged = dict(lw=1.8)
    replayed = dict(lw=1.4, ls="--")

    ax = axes[0]
    ax.plot(t, 1e3 * s[:, 0], color="C0", label="box x (logged)", **logged)
    ax.plot(t, 1e3 * s[:, 1], color="C1", label="box z (logged)", **logged)
    if rt is not None:
        ax.plot(rt, 1e3 * replay.state[:, 0], color="C0", label="box x (replayed)", **replayed)
        ax.plot(rt, 1e3 * replay.state[:, 1], color="C1", label="box z (replayed)", **replayed)
    ax.set_ylabel("box position [mm]")

    ax = axes[1]
    ax.plot(t, np.degrees(s[:, 2]), color="C2", label="logged", **logged)
    if rt is not None:
        ax.plot(rt, np.degrees(replay.state[:, 2]), color="C2", label="replayed", **replayed)
    band = np.degrees(ep.scenario.episode.success_angle)
    lo, hi = ax.get_ylim()
    for k in range(int(np.floor((lo - 90) / 180)), int(np.ceil((hi - 90) / 180)) + 1):
        ax.axhspan(90 + 180 * k - band, 90 + 180 * k + band, color="C2", alpha=0.15,
                   label="standing (success band)" if k == 0 else None)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("box angle theta [deg]")

    ax = axes[2]
    for i, axis in enumerate("xz"):
        ax.plot(t, 1e3 * s[:, 3 + i], color=f"C{3 + i}", label=f"finger {axis} (logged)",
                **logged)
        ax.step(t, 1e3 * ep.target[:, i], where="post", color=f"C{3 + i}", alpha=0.45, lw=1,
                label=f"target {axis}")
        if rt is not None:
            ax.plot(rt, 1e3 * replay.state[:, 3 + i], color=f"C{3 + i}",
                    label=f"finger {axis} (replayed)", **replayed)
    ax.set_ylabel("finger position [mm]")

    ax = axes[3]
    for i, axis in enumerate("xz"):
        ax.step(t, ep.action[:, i], where="post", color=f"C{3 + i}", label=f"action {axis}")
    ax.set_ylim(-1.1, 1.1)
    ax.set_ylabel("action (applied)")

    ax = axes[4]
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
        head += (f"\nreplay in sim: {'success' if replay.success else 'failure'}, final "
                 f"divergence box {1e3 * d['box_pos'][-1]:.1f} mm / "
                 f"{np.degrees(d['box_theta'][-1]):.1f} deg")
    fig.suptitle(head, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
