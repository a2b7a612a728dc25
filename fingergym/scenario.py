"""The scenario: a task on a robot, and every physical parameter around them, in one YAML file.

The file names its task and robot (``task:``, ``robot:``; see :mod:`fingergym.registry`) and
holds their sections (e.g. ``box:``, ``bin:``, ``finger:``) beside the generic ones (contact,
plant, controller, episode, randomization, observation). It is loaded and validated once
(:func:`load_scenario`); sim, hardware, the virtual robot and replay all receive the same
:class:`Scenario` object. An unknown key, a wrong type or an out-of-range value raises
:class:`ScenarioError` naming the file and the dotted key. The robot's own geometry, masses and
joint limits are in its model file (``robots/<name>/``), not here.

Units: metres, kilograms, seconds, radians, newtons.
"""

from __future__ import annotations

import copy
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


param = _f  # the validated-field helper, for plug-in tasks' and robots' scenario sections


@dataclass
class ContactParams:
    model: str = _f("point", choices=("point", "hydroelastic", "hydroelastic_with_fallback"))
    approximation: str = _f("lagged", choices=("sap", "tamsi", "similar", "lagged"),
                            doc="MultibodyPlant discrete contact approximation")
    friction: float = _f(1.0, 0.0, 5.0, doc="Coulomb friction of every contact pair")
    stiffness: float = _f(1.0e5, 1.0, 1.0e9, doc="point-contact stiffness [N/m]")
    dissipation: float = _f(1.0, 0.0, 100.0, doc="Hunt-Crossley dissipation [s/m]")
    hydroelastic_modulus: float = _f(1.0e7, 1.0, 1.0e12, doc="[Pa], hydroelastic models only")
    resolution_hint: float = _f(0.01, 0.0001, 1.0, lo_open=True,
                                doc="hydroelastic mesh resolution [m], hydroelastic models only")


@dataclass
class PlantParams:
    time_step: float = _f(0.01, 0.0001, 0.05, doc="MultibodyPlant discrete time step [s]")


@dataclass
class ControllerParams:
    """The robot's position controller in sim (gravity-compensated PD) and the command rate."""

    kp: float = _f(100.0, 0.0, 1.0e5, lo_open=True, doc="stiffness [1/s^2]")
    kd: float = _f(20.0, 0.0, 1.0e4)
    ki: float = _f(0.0, 0.0, 1.0e4)
    period: float = _f(0.01, 0.0005, 0.1, doc="set-point/command period [s] (100 Hz on hardware)")
    rate_limit: bool = _f(False, doc="sim: limit the set-point's change per period to the "
                                     "model file's velocity limits x period, as the hardware "
                                     "safety layer does to every command sent")


@dataclass
class EpisodeParams:
    step: float = _f(0.1, 0.001, 10.0, lo_open=True, doc="seconds of simulated time per gym step")
    time_limit: float = _f(10.0, 0.0, 3600.0, lo_open=True, doc="episode length [s] (truncation)")

    @property
    def steps(self) -> int:
        """Gym steps in an episode that runs to its time limit."""
        return int(round(self.time_limit / self.step))


@dataclass
class RandomizationParams:
    """Uniform ranges ``[lo, hi]`` drawn at every sim reset; ``lo == hi`` turns a term off.

    The task's own terms (e.g. object pose, mass, size) live in the task's sections."""

    friction: list[float] = _f([0.6, 1.2], doc="Coulomb friction coefficient")
    gain_scale: list[float] = _f([0.8, 1.2], doc="scales kp (and kd with its square root)")
    obs_noise_position: list[float] = _f([0.0, 0.002], doc="std of position noise [m, rad]")
    obs_noise_velocity: list[float] = _f([0.0, 0.02], doc="std of velocity noise [m/s, rad/s]")
    action_delay_periods: list[int] = _f([0, 2], doc="set-point delay in controller periods")


@dataclass
class ObservationParams:
    """How the observation is produced (its layout is the task's)."""

    object_velocity: str = _f("exact", choices=("exact", "estimated"),
                              doc="sim: exact plant velocity of tracked objects, or estimated "
                                  "from poses sampled at pose_rate as on hardware "
                                  "(fingergym.observation)")
    pose_rate: float = _f(60.0, 1.0, 1000.0, doc="object pose (tracker) rate for the estimate "
                                                 "[Hz]")
    velocity_window: float = _f(0.06, 0.0, 1.0, lo_open=True,
                                doc="poses of the last window seconds are fitted [s]")


GENERIC_SECTIONS = ("contact", "plant", "controller", "episode", "randomization", "observation")


@dataclass
class Scenario:
    """A task on a robot and the physics around them.

    ``task``/``robot`` name the plug-ins (registered names or ``module.path:Class``, see
    :mod:`fingergym.registry`); the generic sections hold the physics, controller, episode,
    generic randomization and observation settings; ``sections`` holds the task's and the
    robot's own sections (read as attributes: ``scenario.box``).
    """

    task: str = _f("box_flipup", doc="the task: a registered name or module.path:Class")
    robot: str = _f("finger", doc="the robot: a registered name or module.path:Class")
    contact: ContactParams = field(default_factory=ContactParams)
    plant: PlantParams = field(default_factory=PlantParams)
    controller: ControllerParams = field(default_factory=ControllerParams)
    episode: EpisodeParams = field(default_factory=EpisodeParams)
    randomization: RandomizationParams = field(default_factory=RandomizationParams)
    observation: ObservationParams = field(default_factory=ObservationParams)
    sections: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        # ``Scenario()``: the task's and robot's sections at their defaults too
        if not self.sections:
            from fingergym.registry import RegistryError, robot_class, task_class

            try:
                owned = {**task_class(self.task).sections, **robot_class(self.robot).sections}
            except RegistryError:
                return  # scenario_from_dict reports it, naming the file and key
            self.sections = {name: cls() for name, cls in owned.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("sections", "source"):
            raise AttributeError(name)
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(f"the scenario has no section {name!r} (task {self.task!r}, "
                                 f"robot {self.robot!r})") from None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_plugins"}

    def plugins(self) -> tuple[Any, Any]:
        """``(task, robot)`` instances for this scenario (built once, then cached)."""
        cached = self.__dict__.get("_plugins")
        if cached is None:
            from fingergym.registry import robot_class, task_class

            robot = robot_class(self.robot)(self)
            cached = (task_class(self.task)(self, robot), robot)
            self.__dict__["_plugins"] = cached
        return cached

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
    """Plain nested dict (YAML/JSON-safe) of a scenario: task, robot, their sections, then the
    generic sections."""
    data: dict[str, Any] = {"task": scenario.task, "robot": scenario.robot}
    for name, section in scenario.sections.items():
        data[name] = dataclasses.asdict(section)
    for name in GENERIC_SECTIONS:
        data[name] = dataclasses.asdict(getattr(scenario, name))
    return data


def _check_value(value: Any, tp: Any, meta: dict[str, Any], where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if meta.get("point"):  # a point/list of any (bounded) length
            if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 64:
                raise ScenarioError(f"{where}: expected a list of 1 to 64 values, "
                                    f"got {show(value)}")
        elif not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ScenarioError(f"{where}: expected a list of two numbers, got {show(value)}")
        items = [_check_value(v, item_tp, {}, f"{where}[{i}]") for i, v in enumerate(value)]
        if not meta.get("point") and items[0] > items[1]:
            raise ScenarioError(f"{where}: lower bound {items[0]} is above upper bound {items[1]}")
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a mapping, got {show(value)}")
        return dict(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {show(value)}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ScenarioError(f"{where}: must be one of {list(meta['choices'])}, "
                                f"got {show(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {show(value)}")
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
    """Cross-field checks that a per-key range cannot express; then the task's and robot's."""
    d = s.randomization.action_delay_periods
    if d[0] < 0 or d[1] > 10:
        raise ScenarioError(f"{source}: randomization.action_delay_periods: must lie in [0, 10]")
    if s.episode.step < s.plant.time_step:
        raise ScenarioError(f"{source}: episode.step: shorter than plant.time_step")
    if s.randomization.gain_scale[0] <= 0:
        raise ScenarioError(f"{source}: randomization.gain_scale: scales must be > 0")
    for name in ("friction", "obs_noise_position", "obs_noise_velocity"):
        if getattr(s.randomization, name)[0] < 0:
            raise ScenarioError(f"{source}: randomization.{name}: must be >= 0")
    task, robot = s.plugins()
    task.check()
    low, high = robot.workspace(task.reach_region())
    home = robot.home()
    for i, joint in enumerate(robot.command_layout.names):
        if not low[i] < high[i]:
            raise ScenarioError(f"{source}: robot {robot.name!r}: no reachable workspace for "
                                f"{joint} inside its joint limits and the task's region")
        if not low[i] <= home[i] <= high[i]:
            raise ScenarioError(f"{source}: {robot.name}.home: {home.tolist()} is outside the "
                                f"reachable workspace {low.tolist()}..{high.tolist()}")


def _migrate(data: dict[str, Any], legacy: dict[str, str | None]) -> None:
    """Move keys of older scenario files/bags (``old.dotted.key -> new.dotted.key``, or drop
    them when the new key is ``None``: now in the robot's model file) in place."""
    for old, new in legacy.items():
        *parents, leaf = old.split(".")
        node = data
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        if new is None:
            continue
        *parents, leaf = new.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value


def scenario_from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    """Validate a nested dict into a :class:`Scenario` (errors name ``source`` and the key).

    The ``task``/``robot`` keys pick the plug-ins, whose ``sections`` are validated too; keys of
    older files (``legacy_keys`` of the plug-ins) are moved to where they live now.
    """
    from fingergym.registry import RegistryError, robot_class, task_class

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: top level: expected a mapping, got {show(data)}")
    data = copy.deepcopy(data)
    classes = {}
    for key, lookup, default in (("task", task_class, "box_flipup"),
                                 ("robot", robot_class, "finger")):
        ref = data.setdefault(key, default)
        if not isinstance(ref, str):
            raise ScenarioError(f"{source}: {key}: expected a name or module.path:Class, "
                                f"got {show(ref)}")
        try:
            classes[key] = lookup(ref)
        except RegistryError as e:
            raise ScenarioError(f"{source}: {key}: {e}") from e
    owned: dict[str, type] = {}
    for cls in (classes["task"], classes["robot"]):
        _migrate(data, dict(getattr(cls, "legacy_keys", {})))
        for name, section in cls.sections.items():
            if name in GENERIC_SECTIONS or name in ("task", "robot") or name in owned:
                raise ScenarioError(f"{source}: {cls.__name__}.sections: section {name!r} is "
                                    f"already taken")
            owned[name] = section
    generic = {k: v for k, v in data.items() if k not in owned}
    unknown = sorted(set(generic) - set(GENERIC_SECTIONS) - {"task", "robot"})
    if unknown:
        known = sorted([*GENERIC_SECTIONS, "task", "robot", *owned])
        raise ScenarioError(f"{source}: {unknown[0]}: unknown key (known: {known})")
    scenario = _build(Scenario, generic, source, "")
    scenario.sections = {name: _build(cls, data.get(name), source, f"{name}.")
                         for name, cls in owned.items()}
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

