"""Training callbacks: snapshots (checkpoints), held-out evaluation, learning curve.

A *snapshot* is ``<stem>.zip`` (the SB3 model, for resuming), ``<stem>_vecnormalize.pkl``
(VecNormalize, for resuming) and ``<stem>_normalize.json`` (the observation statistics as
plain numbers, which is what :mod:`fingergym.policies.export` reads).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from fingergym.env import make_env
from fingergym.policies.evaluate import evaluate
from fingergym.scenario import Scenario

EVAL_FIELDS = ("timesteps", "wall_s", "success_rate", "mean_return", "min_return", "episodes")


def normalize_stats(vecnorm: VecNormalize | None) -> dict:
    """Observation normalization as JSON-safe numbers (identity when off)."""
    if vecnorm is None or not vecnorm.norm_obs:
        return {"enabled": False}
    return {"enabled": True, "mean": vecnorm.obs_rms.mean.tolist(),
            "var": vecnorm.obs_rms.var.tolist(), "count": float(vecnorm.obs_rms.count),
            "clip": float(vecnorm.clip_obs), "epsilon": float(vecnorm.epsilon)}


def save_snapshot(model: PPO, vecnorm: VecNormalize | None, stem: Path) -> Path:
    """Write ``stem``_vecnormalize.pkl, ``stem``_normalize.json and then ``stem``.zip, each
    through a temporary file and a rename: a ``.zip`` exists only once its normalization does,
    so a run killed while saving (a second Ctrl-C, ``timeout -k``) never leaves a snapshot
    that would resume or export without it."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    partial = stem.parent / f".partial-{stem.name}"  # matched by no snapshot glob
    if vecnorm is not None:
        vecnorm.save(str(partial) + "_vecnormalize.pkl")
        os.replace(str(partial) + "_vecnormalize.pkl", str(stem) + "_vecnormalize.pkl")
    Path(str(partial) + "_normalize.json").write_text(json.dumps(normalize_stats(vecnorm)))
    os.replace(str(partial) + "_normalize.json", str(stem) + "_normalize.json")
    model.save(partial.with_suffix(".zip"))
    os.replace(partial.with_suffix(".zip"), stem.with_suffix(".zip"))
    return stem.with_suffix(".zip")


def make_predict(model: PPO, vecnorm: VecNormalize | None):
    """obs (10,) -> deterministic action (2,) with the CURRENT normalization statistics."""

    def act(obs: np.ndarray) -> np.ndarray:
        o = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        return model.predict(o, deterministic=True)[0]

    return act


class SnapshotCallback(BaseCallback):
    """Every ``freq`` env steps: ``checkpoints/step_<n>`` (model + normalization)."""

    def __init__(self, run_dir: Path, freq: int, vecnorm: VecNormalize | None):
        super().__init__()
        self.dir = Path(run_dir) / "checkpoints"
        self.freq = freq
        self.vecnorm = vecnorm
        self._next = freq

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            save_snapshot(self.model, self.vecnorm, self.dir / f"step_{self.num_timesteps}")
            self._next += self.freq
        return True


@contextlib.contextmanager
def _no_phase(description: str, total: int | None = None, unit: str = "") -> Iterator:
    yield lambda n=1: None


class HeldOutEvalCallback(BaseCallback):
    """Every ``freq`` env steps: deterministic episodes on held-out seeds ``seed..seed+n-1``
    with the full (un-overridden) scenario. Appends to ``eval.csv`` / ``eval.json`` and keeps
    the best snapshot (highest success rate, then mean return) as ``best``."""

    def __init__(self, run_dir: Path, scenario: Scenario, vecnorm: VecNormalize | None, *,
                 freq: int, episodes: int, seed: int, t_start: float | None = None,
                 phase=None):
        super().__init__()
        # phase(description, total) -> context manager yielding tick(n); shows the episodes
        # and stops between them (fingergym.policies.progress.RunControl.phase)
        self.phase = phase or _no_phase
        self.run_dir = Path(run_dir)
        self.env = make_env(scenario)
        self.vecnorm = vecnorm
        self.freq, self.episodes, self.seed = freq, episodes, seed
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.csv = self.run_dir / "eval.csv"
        self.json = self.run_dir / "eval.json"
        self.rows: list[dict] = json.loads(self.json.read_text()) if self.json.exists() else []
        self.best = max(((r["success_rate"], r["mean_return"]) for r in self.rows),
                        default=(-1.0, -np.inf))
        self._next = freq

    def _on_training_start(self) -> None:
        if self.freq:
            self._next = (self.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self.freq and self.num_timesteps >= self._next:
            self.run_eval()
            self._next += self.freq
        return True

    def run_eval(self) -> dict:
        """Evaluate now; log, append and keep the best snapshot. Returns the row."""
        with self.phase(f"evaluation at {self.model.num_timesteps} steps", self.episodes,
                        unit="episodes") as tick:
            res = evaluate(self.env, make_predict(self.model, self.vecnorm),
                           range(self.seed, self.seed + self.episodes),
                           on_episode=lambda _: tick(1))
        prev_wall = self.rows[-1]["wall_s"] if self.rows else 0.0
        row = {"timesteps": int(self.model.num_timesteps),
               "wall_s": round(max(time.perf_counter() - self.t_start, prev_wall), 1),
               "success_rate": res["success_rate"], "mean_return": round(res["mean_return"], 2),
               "min_return": round(res["min_return"], 2), "episodes": res["episodes"]}
        self.rows.append(row)
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)
        self.json.write_text(json.dumps(self.rows, indent=1))
        if getattr(self.model, "_logger", None) is not None:  # not before learn() starts
            self.logger.record("eval/success_rate", row["success_rate"])
            self.logger.record("eval/mean_return", row["mean_return"])
        key = (row["success_rate"], row["mean_return"])
        if key > self.best:
            self.best = key
            save_snapshot(self.model, self.vecnorm, self.run_dir / "best")
        if self.verbose:
            print(f"eval @ {row['timesteps']} steps ({row['wall_s']:.0f} s): success "
                  f"{row['success_rate']:.0%}, mean return {row['mean_return']:.1f}", flush=True)
        return row


def _steps_label(x: float, _pos=None) -> str:
    """Env steps as 0, 50k, 1.5M (no "1e6" multiplier at the end of the axis)."""
    return f"{x / 1e6:g}M" if abs(x) >= 1e6 else (f"{x / 1e3:g}k" if x else "0")


def plot_learning_curve(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Success rate and mean return vs env steps, as a PNG. ``None`` if there is no data."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    t = np.array([r["timesteps"] for r in rows])
    fig, ax = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    ax[0].plot(t, [r["success_rate"] for r in rows], "o-")
    ax[0].set_ylabel("success rate (eval seeds)")
    ax[0].set_ylim(-0.02, 1.02)
    ax[0].axhline(0.8, ls="--", c="gray", lw=0.8)
    ax[1].plot(t, [r["mean_return"] for r in rows], "o-", c="C1")
    ax[1].set_ylabel("mean return")
    ax[1].set_xlabel("env steps")
    if title:
        ax[0].set_title(title)
    for a in ax:  # no "+9.2e2" offsets: read values off the axes as they are
        a.ticklabel_format(style="plain", useOffset=False)
    ax[1].xaxis.set_major_formatter(FuncFormatter(_steps_label))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
