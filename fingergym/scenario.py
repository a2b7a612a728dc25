"""The scenario: every physical parameter of the box flip-up station, in one YAML file.

The file is loaded and validated once (:func:`load_scenario`); sim, hardware, the virtual robot
and replay all receive the same :class:`Scenario` object. An unknown key, a wrong type or an
out-of-range value raises :class:`ScenarioError` naming the file and the dotted key.

Units: metres, kilograms, seconds, radians, newtons.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCENARIO = "scenario.yaml"
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
MAX_CONFIG_BYTES = 1 << 20   # a config file is a few kB
MAX_CONFIG_VALUES = 100_000  # values after YAML alias expansion (an alias bomb has billions)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 60, 60, 40


def show(value: Any) -> str:
    """A bounded repr for error messages: never expands a large or aliased value."""
    try:
        return _SHORT.repr(value)
    except Exception:  # noqa: BLE001 - e.g. an int beyond str()'s digit limit
        return f"<{type(value).__name__}>"


class ScenarioError(ValueError):
    """A scenario/config file is invalid; the message names the file and the key."""


def _f(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
       choices: tuple[str, ...] | None = None, point: bool = False, doc: str = "") -> Any:
    """A validated dataclass field with bounds (``lo`` inclusive unless ``lo_open``).

    A two-element list is a ``[lo, hi]`` range unless ``point`` (then any two numbers).
    """
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "point": point, "doc": doc}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BoxParams:
    length: float = _f(0.2, 0.01, 1.0, doc="long side; lies along x when the box is flat")
    thickness: float = _f(0.05, 0.005, 0.5, doc="short side; the box stands on it")
    depth: float = _f(0.3, 0.01, 1.0, doc="out-of-plane size (inertia and visuals only)")
    mass: float = _f(1.0, 0.0, 100.0, lo_open=True)


@dataclass
class FingerParams:
    radius: float = _f(0.01, 0.001, 0.1, lo_open=True)
    mass: float = _f(1.0, 0.0, 100.0, lo_open=True)
    x_limits: list[float] = _f([-0.3, 0.3], doc="prismatic joint x limits")
    z_limits: list[float] = _f([0.0, 0.5], doc="prismatic joint z limits")
    home: list[float] = _f([0.0, 0.15], point=True, doc="home (x, z), inside the workspace")


@dataclass
class BinParams:
    wall_x: list[float] = _f([-0.265, 0.265], doc="inner faces of the left and right walls")
    wall_thickness: float = _f(0.05, 0.001, 1.0)
    wall_height: float = _f(0.21, 0.01, 2.0)
    floor_z: float = _f(0.0, -1.0, 1.0, doc="top face of the bin floor")


@dataclass
class ContactParams:
    model: str = _f("point", choices=("point", "hydroelastic", "hydroelastic_with_fallback"))
    approximation: str = _f("lagged", choices=("sap", "tamsi", "similar", "lagged"),
                            doc="MultibodyPlant discrete contact approximation")
    friction: float = _f(1.0, 0.0, 5.0, doc="Coulomb friction of every contact pair")
    stiffness: float = _f(1.0e5, 1.0, 1.0e9, doc="point-contact stiffness [N/m]")
    dissipation: float = _f(1.0, 0.0, 100.0, doc="Hunt-Crossley dissipation [s/m]")
    hydroelastic_modulus: float = _f(1.0e7, 1.0, 1.0e12, doc="[Pa], hydroelastic models only")


@dataclass
class PlantParams:
    time_step: float = _f(0.01, 0.0001, 0.05, doc="MultibodyPlant discrete time step [s]")


@dataclass
class ControllerParams:
    kp: float = _f(100.0, 0.0, 1.0e5, lo_open=True, doc="stiffness [1/s^2]")
    kd: float = _f(20.0, 0.0, 1.0e4)
    ki: float = _f(0.0, 0.0, 1.0e4)
    period: float = _f(0.01, 0.0005, 0.1, doc="set-point/command period [s] (100 Hz on hardware)")


@dataclass
class EpisodeParams:
    step: float = _f(0.1, 0.001, 10.0, lo_open=True, doc="seconds of simulated time per gym step")
    time_limit: float = _f(10.0, 0.0, 3600.0, lo_open=True, doc="episode length [s] (truncation)")
    success_angle: float = _f(0.15, 0.0, 1.6, lo_open=True, doc="|angle from vertical| [rad]")
    success_omega: float = _f(0.5, 0.0, 100.0, lo_open=True, doc="|box angular velocity| [rad/s]")


@dataclass
class RandomizationParams:
    """Uniform ranges ``[lo, hi]`` drawn at every sim reset; ``lo == hi`` turns a term off."""

    box_x: list[float] = _f([-0.1, 0.1], doc="initial box centre x [m]")
    flip_probability: float = _f(0.5, 0.0, 1.0, doc="chance the box starts upside down (theta=pi)")
    box_mass_scale: list[float] = _f([0.7, 1.3])
    box_size_scale: list[float] = _f([0.9, 1.1], doc="scales length and thickness together")
    friction: list[float] = _f([0.6, 1.2], doc="Coulomb friction coefficient")
    gain_scale: list[float] = _f([0.8, 1.2], doc="scales kp (and kd with its square root)")
    obs_noise_position: list[float] = _f([0.0, 0.002], doc="std of position noise [m, rad]")
    obs_noise_velocity: list[float] = _f([0.0, 0.02], doc="std of velocity noise [m/s, rad/s]")
    action_delay_periods: list[int] = _f([0, 2], doc="set-point delay in controller periods")


@dataclass
class ObservationParams:
    """How the observation is produced (the layout itself is fixed in fingergym.task)."""

    box_velocity: str = _f("exact", choices=("exact", "estimated"),
                           doc="sim: exact plant velocity, or estimated from poses sampled at "
                               "pose_rate as on hardware (fingergym.observation)")
    pose_rate: float = _f(60.0, 1.0, 1000.0, doc="box pose (tracker) rate for the estimate [Hz]")
    velocity_window: float = _f(0.06, 0.0, 1.0, lo_open=True,
                                doc="poses of the last window seconds are fitted [s]")


@dataclass
class Scenario:
    box: BoxParams = field(default_factory=BoxParams)
    finger: FingerParams = field(default_factory=FingerParams)
    bin: BinParams = field(default_factory=BinParams)
    contact: ContactParams = field(default_factory=ContactParams)
    plant: PlantParams = field(default_factory=PlantParams)
    controller: ControllerParams = field(default_factory=ControllerParams)
    episode: EpisodeParams = field(default_factory=EpisodeParams)
    randomization: RandomizationParams = field(default_factory=RandomizationParams)
    observation: ObservationParams = field(default_factory=ObservationParams)
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def replace(self, **changes: Any) -> Scenario:
        """A copy with dotted-key overrides, e.g. ``replace(**{"box.mass": 2.0})``, validated."""
        data = to_dict(self)
        for key, value in changes.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return scenario_from_dict(data, source=f"{self.source} (overridden)")


def to_dict(scenario: Scenario) -> dict[str, Any]:
    """Plain nested dict (YAML/JSON-safe) of a scenario, without the ``source`` field."""
    data = dataclasses.asdict(scenario)
    data.pop("source", None)
    return data


def _check_value(value: Any, tp: Any, meta: dict[str, Any], where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ScenarioError(f"{where}: expected a list of two numbers, got {show(value)}")
        items = [_check_value(v, item_tp, {}, f"{where}[{i}]") for i, v in enumerate(value)]
        if not meta.get("point") and items[0] > items[1]:
            raise ScenarioError(f"{where}: lower bound {items[0]} is above upper bound {items[1]}")
        return items
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {show(value)}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ScenarioError(f"{where}: must be one of {list(meta['choices'])}, "
                                f"got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {show(value)}")
    elif tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            # PyYAML implements YAML 1.1, which reads `1e5`/`1.0e5` (no sign in the exponent)
            # as a string; YAML 1.2 and every user read it as a number.
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where}: expected a number, got {show(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise ScenarioError(f"{where}: number out of range, got {show(value)}") from None
        if not math.isfinite(value):
            raise ScenarioError(f"{where}: must be finite, got {show(value)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ScenarioError(f"{where}: must be {op} {lo}, got {show(value)}")
    if hi is not None and value > hi:
        raise ScenarioError(f"{where}: must be <= {hi}, got {show(value)}")
    return value


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "top level"
        raise ScenarioError(f"{source}: {where}: expected a mapping, got {show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if not isinstance(key, str):
            where = prefix.rstrip(".") or "top level"
            raise ScenarioError(f"{source}: {where}: key {show(key)} is not a string")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ScenarioError(f"{source}: {key}: unknown key (known: {sorted(fields)})")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        where = f"{source}: {prefix}{name}"
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(value, tp, dict(fields[name].metadata), where)
    return cls(**kwargs)


def _check_consistency(s: Scenario, source: str) -> None:
    """Cross-field checks that a per-key range cannot express."""
    lo, hi = s.bin.wall_x
    r = s.finger.radius
    if hi - lo <= 2 * r + s.box.thickness:
        raise ScenarioError(f"{source}: bin.wall_x: the bin is too narrow for finger and box")
    ws = workspace_bounds(s)
    for i, axis in enumerate("xz"):
        if not ws[0][i] < ws[1][i]:
            raise ScenarioError(f"{source}: finger.{axis}_limits: no reachable workspace inside "
                                f"the joint limits and the bin walls")
        if not ws[0][i] <= s.finger.home[i] <= ws[1][i]:
            raise ScenarioError(f"{source}: finger.home: {s.finger.home} is outside the reachable "
                                f"workspace {ws[0]}..{ws[1]}")
    scale_hi = s.randomization.box_size_scale[1]
    half_span = 0.5 * s.box.length * scale_hi
    bx = s.randomization.box_x
    if bx[0] - half_span < lo or bx[1] + half_span > hi:
        raise ScenarioError(f"{source}: randomization.box_x: {bx} lets a box of length "
                            f"{2 * half_span:.3f} start inside a wall at {s.bin.wall_x}")
    d = s.randomization.action_delay_periods
    if d[0] < 0 or d[1] > 10:
        raise ScenarioError(f"{source}: randomization.action_delay_periods: must lie in [0, 10]")
    if s.episode.step < s.plant.time_step:
        raise ScenarioError(f"{source}: episode.step: shorter than plant.time_step")
    for name in ("box_mass_scale", "box_size_scale", "gain_scale"):
        if getattr(s.randomization, name)[0] <= 0:
            raise ScenarioError(f"{source}: randomization.{name}: scales must be > 0")
    for name in ("friction", "obs_noise_position", "obs_noise_velocity"):
        if getattr(s.randomization, name)[0] < 0:
            raise ScenarioError(f"{source}: randomization.{name}: must be >= 0")


def workspace_bounds(s: Scenario) -> tuple[list[float], list[float]]:
    """Reachable finger-centre targets: joint limits intersected with the bin (walls, floor)."""
    r = s.finger.radius
    x_lo = max(s.finger.x_limits[0], s.bin.wall_x[0] + r)
    x_hi = min(s.finger.x_limits[1], s.bin.wall_x[1] - r)
    z_lo = max(s.finger.z_limits[0], s.bin.floor_z + r)
    z_hi = min(s.finger.z_limits[1], s.bin.floor_z + s.bin.wall_height + 0.1)
    return [x_lo, z_lo], [x_hi, z_hi]


def scenario_from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    """Validate a nested dict into a :class:`Scenario` (errors name ``source`` and the key)."""
    scenario = _build(Scenario, data, source, "")
    scenario.source = source
    _check_consistency(scenario, source)
    return scenario


def default_scenario_path() -> Path:
    """The scenario file shipped with the package (``configs/scenario.yaml``)."""
    return Path(str(resources.files("fingergym.configs").joinpath(DEFAULT_SCENARIO)))


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (no tags executed) that refuses values expanding beyond
    :data:`MAX_CONFIG_VALUES` through aliases (a "billion laughs" alias bomb)."""

    def construct_document(self, node: yaml.Node) -> Any:
        seen: dict[int, int] = {}

        def size(n: yaml.Node) -> int:  # values n stands for, aliases expanded (memoized)
            if id(n) in seen:
                total = seen[id(n)]
            else:
                seen[id(n)] = 1  # a recursive alias counts once
                total = 1
                if isinstance(n, yaml.SequenceNode):
                    total += sum(size(c) for c in n.value)
                elif isinstance(n, yaml.MappingNode):
                    total += sum(size(k) + size(v) for k, v in n.value)
                seen[id(n)] = total
            if total > MAX_CONFIG_VALUES:
                raise yaml.YAMLError(f"the document expands to more than {MAX_CONFIG_VALUES} "
                                     f"values (YAML aliases?); refusing to load it")
            return total

        size(node)
        return super().construct_document(node)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML config file as a dict (empty file: ``{}``); errors name the file.

    The file must be a regular UTF-8 file of at most :data:`MAX_CONFIG_BYTES`; aliases may not
    expand it beyond :data:`MAX_CONFIG_VALUES` values."""
    from fingergym.files import FileCheckError, read_regular

    try:
        blob = read_regular(path, what, MAX_CONFIG_BYTES)
    except FileCheckError as e:
        raise ScenarioError(str(e)) from None
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{path}: {what} is not UTF-8 text (byte 0x{blob[e.start]:02x} at "
                            f"offset {e.start})") from None
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {_one_line(e)}") from None
    except (ValueError, OverflowError, RecursionError) as e:  # e.g. int beyond the digit limit
        raise ScenarioError(f"{path}: not a valid {what}: {_one_line(e)}") from None
    return {} if data is None else data


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load and validate a scenario YAML file (``None``: the shipped default)."""
    path = Path(path) if path is not None else default_scenario_path()
    return scenario_from_dict(read_yaml(path, "scenario file"), source=str(path))


def as_scenario(scenario: Scenario | str | Path | None) -> Scenario:
    """Accept a Scenario, a path, or ``None`` (the shipped default)."""
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)

