"""Per-episode physical parameters: nominal values, or a domain-randomized draw.

Every range lives in the scenario file (``randomization:``); a range of zero width turns a term
off. Draws come from Drake's :class:`RandomGenerator`, so ``env.reset(seed=s)`` reproduces them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from pydrake.common import RandomGenerator

from fingergym.scenario import Scenario


@dataclass(frozen=True)
class EpisodeParams:
    """What one episode's station is built from (SI units)."""

    box_x: float
    box_theta: float          # 0 or pi: which long face is down
    box_mass: float
    box_length: float
    box_thickness: float
    friction: float
    kp: float
    kd: float
    obs_noise_position: float  # std [m, rad]
    obs_noise_velocity: float  # std [m/s, rad/s]
    action_delay_periods: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def nominal_params(scenario: Scenario, box_x: float | None = None,
                   box_theta: float = 0.0) -> EpisodeParams:
    """The scenario's nominal parameters: no randomization, no noise, no delay."""
    s = scenario
    centre = 0.5 * (s.randomization.box_x[0] + s.randomization.box_x[1])
    return EpisodeParams(
        box_x=centre if box_x is None else box_x, box_theta=box_theta,
        box_mass=s.box.mass, box_length=s.box.length, box_thickness=s.box.thickness,
        friction=s.contact.friction, kp=s.controller.kp, kd=s.controller.kd,
        obs_noise_position=0.0, obs_noise_velocity=0.0, action_delay_periods=0)


def draw_params(scenario: Scenario, generator: RandomGenerator) -> EpisodeParams:
    """One domain-randomized draw; deterministic given the generator's state."""
    rng = np.random.default_rng([generator() for _ in range(4)])
    r = scenario.randomization

    def u(lo_hi: list[float]) -> float:
        lo, hi = lo_hi
        return float(lo) if lo == hi else float(rng.uniform(lo, hi))

    size = u(r.box_size_scale)
    gain = u(r.gain_scale)
    lo_d, hi_d = r.action_delay_periods
    return EpisodeParams(
        box_x=u(r.box_x),
        box_theta=math.pi if rng.uniform() < r.flip_probability else 0.0,
        box_mass=scenario.box.mass * u(r.box_mass_scale),
        box_length=scenario.box.length * size,
        box_thickness=scenario.box.thickness * size,
        friction=u(r.friction),
        kp=scenario.controller.kp * gain,
        kd=scenario.controller.kd * math.sqrt(gain),
        obs_noise_position=u(r.obs_noise_position),
        obs_noise_velocity=u(r.obs_noise_velocity),
        action_delay_periods=int(rng.integers(lo_d, hi_d + 1)),
    )


# Which scenario entry gives each parameter its validity rules (range, type, cross-checks).
# A range entry ``randomization.<name>`` is checked as the zero-width range ``[v, v]``.
_SCENARIO_RULE: dict[str, str] = {
    "box_x": "randomization.box_x", "box_mass": "box.mass", "box_length": "box.length",
    "box_thickness": "box.thickness", "friction": "contact.friction", "kp": "controller.kp",
    "kd": "controller.kd", "obs_noise_position": "randomization.obs_noise_position",
    "obs_noise_velocity": "randomization.obs_noise_velocity",
    "action_delay_periods": "randomization.action_delay_periods",
}


def validate_overrides(overrides: dict[str, float], scenario: Scenario) -> dict[str, float]:
    """Check per-episode parameter overrides (``replay --param``) with the scenario's own rules.

    Returns them typed (``action_delay_periods`` as int); raises
    :class:`~fingergym.scenario.ScenarioError` naming the parameter.
    """
    from fingergym.scenario import ScenarioError, show

    fields = EpisodeParams.__dataclass_fields__
    out: dict[str, float] = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ScenarioError(f"--param {name}: unknown physics parameter; known: "
                                f"{sorted(fields)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ScenarioError(f"--param {name}: must be a finite number, got {show(value)}")
        if name == "action_delay_periods":
            if value != int(value):
                raise ScenarioError(f"--param {name}: must be an integer, got {show(value)}")
            value = int(value)
        key = _SCENARIO_RULE.get(name)
        if key is not None:
            entry = [value, value] if key.startswith("randomization.") else value
            try:
                scenario.replace(**{key: entry})
            except ScenarioError as e:
                why = str(e).split(": ", 2)[-1]  # drop "<source> (overridden): <key>"
                raise ScenarioError(f"--param {name}={show(value)}: {why} (the scenario's "
                                    f"rule for {key})") from None
        out[name] = float(value) if name != "action_delay_periods" else value
    return out
