"""Per-episode physical parameters: nominal values, or a domain-randomized draw.

Generic terms (friction, controller gains, observation noise, set-point delay) have their
ranges in the scenario's ``randomization:`` section; the task draws its own (e.g. the object's
start pose, mass and size, :meth:`fingergym.interfaces.Task.draw_params`). A range of zero
width turns a term off. Draws come from Drake's :class:`RandomGenerator`, so
``env.reset(seed=s)`` reproduces them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydrake.common import RandomGenerator

from fingergym.scenario import Scenario


@dataclass(frozen=True)
class EpisodeParams:
    """What one episode's station is built from (SI units); ``task`` holds the task's own."""

    friction: float
    kp: float
    kd: float
    obs_noise_position: float  # std [m, rad]
    obs_noise_velocity: float  # std [m/s, rad/s]
    action_delay_periods: int
    task: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """One flat ``{name: value}`` (task parameters first), as stored in bags."""
        generic = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.name != "task"}
        return {**self.task, **generic}

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> EpisodeParams:
        """Inverse of :meth:`as_dict`: generic fields by name, every other key is the task's."""
        names = {f.name for f in dataclasses.fields(cls)} - {"task"}
        missing = sorted(names - set(flat))
        if missing:
            raise ValueError(f"episode parameters lack {missing}")
        task = {k: float(v) for k, v in flat.items() if k not in names}
        generic = {k: flat[k] for k in names}
        generic["action_delay_periods"] = int(generic["action_delay_periods"])
        return cls(task=task, **generic)

    def replace(self, **changes: Any) -> EpisodeParams:
        """A copy with generic or task parameters changed (unknown names: ``ValueError``)."""
        flat = self.as_dict()
        unknown = sorted(set(changes) - set(flat))
        if unknown:
            raise ValueError(f"unknown physics parameter(s) {unknown}; known: {sorted(flat)}")
        return EpisodeParams.from_dict({**flat, **changes})


def nominal_params(scenario: Scenario, **task_overrides: float) -> EpisodeParams:
    """The scenario's nominal parameters: no randomization, no noise, no delay.

    ``task_overrides`` change the task's nominal values (e.g. ``box_x=0.05``)."""
    task, _ = scenario.plugins()
    own = {**task.nominal_params(), **task_overrides}
    c = scenario.controller
    return EpisodeParams(friction=scenario.contact.friction, kp=c.kp, kd=c.kd,
                         obs_noise_position=0.0, obs_noise_velocity=0.0,
                         action_delay_periods=0, task=own)


def uniform(rng: np.random.Generator, lo_hi: list[float]) -> float:
    """A uniform draw from ``[lo, hi]``; no draw (and ``lo``) when the range is empty."""
    lo, hi = lo_hi
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def draw_generic(scenario: Scenario, rng: np.random.Generator, task: dict[str, float], *,
                 gain: float | None = None) -> EpisodeParams:
    """The generic terms, in this order: gain scale (unless given), friction, observation
    noise (position, velocity), set-point delay; ``task`` is the task's own draw."""
    r, c = scenario.randomization, scenario.controller
    gain = uniform(rng, r.gain_scale) if gain is None else gain
    friction = uniform(rng, r.friction)
    noise_position = uniform(rng, r.obs_noise_position)
    noise_velocity = uniform(rng, r.obs_noise_velocity)
    lo_d, hi_d = r.action_delay_periods
    return EpisodeParams(friction=friction, kp=c.kp * gain, kd=c.kd * math.sqrt(gain),
                         obs_noise_position=noise_position, obs_noise_velocity=noise_velocity,
                         action_delay_periods=int(rng.integers(lo_d, hi_d + 1)), task=task)


def draw_params(scenario: Scenario, generator: RandomGenerator) -> EpisodeParams:
    """One domain-randomized draw; deterministic given the generator's state."""
    rng = np.random.default_rng([generator() for _ in range(4)])
    task, _ = scenario.plugins()
    return task.draw_episode(rng)


# Which scenario entry gives each generic parameter its validity rules (range, type,
# cross-checks); a task adds its own (``Task.param_rules``). A range entry (a two-element list
# such as ``randomization.<name>``) is checked as the zero-width range ``[v, v]``.
_SCENARIO_RULE: dict[str, str] = {
    "friction": "contact.friction", "kp": "controller.kp", "kd": "controller.kd",
    "obs_noise_position": "randomization.obs_noise_position",
    "obs_noise_velocity": "randomization.obs_noise_velocity",
    "action_delay_periods": "randomization.action_delay_periods",
}


def validate_overrides(overrides: dict[str, float], scenario: Scenario) -> dict[str, float]:
    """Check per-episode parameter overrides (``replay --param``) with the scenario's own rules.

    Returns them typed (``action_delay_periods`` as int); raises
    :class:`~fingergym.scenario.ScenarioError` naming the parameter.
    """
    from fingergym.scenario import ScenarioError, show, to_dict

    task, _ = scenario.plugins()
    rules = {**_SCENARIO_RULE, **dict(task.param_rules)}
    known = sorted({*(f.name for f in dataclasses.fields(EpisodeParams) if f.name != "task"),
                    *task.nominal_params()})
    data = to_dict(scenario)
    out: dict[str, float] = {}
    for name, value in overrides.items():
        if name not in known:
            raise ScenarioError(f"--param {name}: unknown physics parameter; known: {known}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ScenarioError(f"--param {name}: must be a finite number, got {show(value)}")
        if name == "action_delay_periods":
            if value != int(value):
                raise ScenarioError(f"--param {name}: must be an integer, got {show(value)}")
            value = int(value)
        key = rules.get(name)
        if key is not None:
            section, _, leaf = key.partition(".")
            current = data.get(section, {}).get(leaf)
            entry = [value, value] if isinstance(current, list) and len(current) == 2 else value
            try:
                scenario.replace(**{key: entry})
            except ScenarioError as e:
                why = str(e).split(": ", 2)[-1]  # drop "<source> (overridden): <key>"
                raise ScenarioError(f"--param {name}={show(value)}: {why} (the scenario's "
                                    f"rule for {key})") from None
        out[name] = float(value) if name != "action_delay_periods" else value
    return out
