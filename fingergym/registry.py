"""Where tasks, robots and gym ids are registered, and how a name becomes a class.

A task or a robot is one folder, found without being listed anywhere (:func:`discover`):

- every package ``fingergym.tasks.<name>`` (the ``tasks/`` folder) that defines ``TASK`` (its
  :class:`~fingergym.interfaces.Task` class) is the task ``<name>``; its optional ``GYM_IDS``
  (gym id -> scenario file in the folder, ``""`` for the shipped ``configs/scenario.yaml``)
  are registered with gymnasium;
- every package ``fingergym.robots.<name>`` that defines ``ROBOT`` is the robot ``<name>``;
- an installed distribution adds its own the same way, with an entry point naming such a
  package: ``[project.entry-points."fingergym.tasks"] my_task = "my_package.my_task"`` (and
  ``"fingergym.robots"``).

A scenario's ``task:`` and ``robot:`` keys are those names or import references, so a user
plugs in their own without forking or installing anything:

- ``"my_package.my_module:MyTask"`` (an importable module), or
- ``"/path/to/my_task.py:MyTask"`` (a file; its folder does not need to be a package).

Gym ids pair one task with one robot through a default scenario file::

    fingergym.registry.register_task("my_task", "my_package.tasks:MyTask")
    fingergym.registry.register_env("me/MyTask-v0", "path/to/my_scenario.yaml")
    env = gymnasium.make("me/MyTask-v0")

``fingergym tasks`` lists the registered gym ids with their task and robot.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium

# name -> "module:Class" (imported on first use) or the class itself; filled by discover()
_TASKS: dict[str, Any] = {}
_ROBOTS: dict[str, Any] = {}
TASK_GROUP, ROBOT_GROUP = "fingergym.tasks", "fingergym.robots"  # folders and entry-point groups


@dataclass(frozen=True)
class EnvSpec:
    """A registered gym id: its default scenario (which names the task and robot)."""

    env_id: str
    scenario: str  # path of the scenario YAML ("" = the shipped configs/scenario.yaml)
    task: str
    robot: str


_ENVS: dict[str, EnvSpec] = {}


class RegistryError(ValueError):
    """An unknown name, or a reference that does not import to the right kind of class."""


def register_task(name: str, task: Any) -> None:
    """Register a :class:`~fingergym.interfaces.Task` class (or its ``"module:Class"``)."""
    _TASKS[name] = task


def register_robot(name: str, robot: Any) -> None:
    """Register a :class:`~fingergym.interfaces.Robot` class (or its ``"module:Class"``)."""
    _ROBOTS[name] = robot


def _import(ref: str, what: str) -> Any:
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise RegistryError(f"{what} {ref!r}: expected a registered name or 'module.path:Class'"
                            f" / '/path/file.py:Class'")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            key = f"fingergym_plugin_{abs(hash(str(path)))}"
            module = sys.modules.get(key)
            if module is None:
                spec = importlib.util.spec_from_file_location(key, path)
                if spec is None or spec.loader is None or not path.exists():
                    raise RegistryError(f"{what} {ref!r}: no such file {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise RegistryError(f"{what} {ref!r}: cannot import {module_name!r}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"{what} {ref!r}: {module_name!r} has no {attr!r}") from None


def _resolve(table: dict[str, Any], ref: str, what: str, base: type) -> type:
    entry = table.get(ref, ref)
    if isinstance(entry, str):
        if ":" not in entry:
            raise RegistryError(f"unknown {what} {ref!r} (registered: {sorted(table)}; or give "
                                f"'module.path:Class')")
        entry = _import(entry, what)
        if ref in table:
            table[ref] = entry
    if not (isinstance(entry, type) and issubclass(entry, base)):
        raise RegistryError(f"{what} {ref!r} is {entry!r}, not a {base.__name__} subclass")
    return entry


def _plugin_packages(group: str) -> dict[str, str]:
    """name -> package of every folder under ``group`` and every entry point in ``group``."""
    found = {m.name: f"{group}.{m.name}"
             for m in pkgutil.iter_modules(importlib.import_module(group).__path__) if m.ispkg}
    for ep in importlib.metadata.entry_points(group=group):
        found.setdefault(ep.name, ep.value)
    return found


def discover() -> None:
    """Register every task and robot folder (and entry point) not registered yet, and the gym
    ids their task packages declare (``GYM_IDS``). Robots are imported on first use; task
    packages are imported here, for their gym ids. A package that fails to import is reported
    when it is used (``fingergym tasks``, a scenario naming it), not here."""
    for name, package in _plugin_packages(ROBOT_GROUP).items():
        _ROBOTS.setdefault(name, f"{package}:ROBOT")
    for name, package in _plugin_packages(TASK_GROUP).items():
        if name in _TASKS:
            continue
        _TASKS[name] = f"{package}:TASK"
        try:
            module = importlib.import_module(package)
        except Exception:  # noqa: BLE001 - re-raised with its name by task_class()
            continue
        folder = Path(module.__file__).parent
        for env_id, scenario in getattr(module, "GYM_IDS", {}).items():
            if env_id not in _ENVS:
                register_env(env_id, folder / scenario if scenario else "")


def task_class(ref: str) -> type:
    """The Task class of a registered name or an import reference."""
    from fingergym.interfaces import Task

    return _resolve(_TASKS, ref, "task", Task)


def robot_class(ref: str) -> type:
    """The Robot class of a registered name or an import reference."""
    from fingergym.interfaces import Robot

    return _resolve(_ROBOTS, ref, "robot", Robot)


def task_names() -> list[str]:
    return sorted(_TASKS)


def robot_names() -> list[str]:
    return sorted(_ROBOTS)


def register_env(env_id: str, scenario: str | Path = "", *, task: str = "",
                 robot: str = "") -> EnvSpec:
    """Register gym id ``env_id`` for a default scenario file (which names task and robot).

    ``gymnasium.make(env_id, **kwargs)`` then calls :func:`fingergym.make_env` with that
    scenario (``scenario=...`` in kwargs overrides it). ``task``/``robot`` are only for
    listing; by default they are read from the scenario file.
    """
    scenario = str(scenario)
    if not (task and robot):
        from fingergym.scenario import default_scenario_path, read_yaml

        path = Path(scenario) if scenario else default_scenario_path()
        data = read_yaml(path, "scenario file")
        task = task or str(data.get("task", "box_flipup"))
        robot = robot or str(data.get("robot", "finger"))
    spec = EnvSpec(env_id, scenario, task, robot)
    _ENVS[env_id] = spec
    if env_id in gymnasium.registry:
        del gymnasium.registry[env_id]
    gymnasium.register(id=env_id, entry_point="fingergym.env:make_env",
                       kwargs={"scenario": scenario or None})
    return spec


def env_specs() -> list[EnvSpec]:
    """The registered gym ids, in registration order."""
    return list(_ENVS.values())


def scenario_of(name: str) -> str:
    """The default scenario path of a gym id or a task name ("" = the shipped default)."""
    for spec in _ENVS.values():
        if name in (spec.env_id, spec.task):
            return spec.scenario
    raise RegistryError(f"no registered gym id or task {name!r} (registered: "
                        f"{[f'{s.env_id} ({s.task} on {s.robot})' for s in _ENVS.values()]})")


def scenario_path(task: str | None, scenario: str | Path | None) -> Path | None:
    """A command's scenario file: ``--scenario``, else ``--task``'s (a gym id or task name),
    else ``None`` (the shipped default). Unknown names raise ScenarioError."""
    if scenario is not None or not task:
        return None if scenario is None else Path(scenario)
    from fingergym.scenario import ScenarioError

    try:
        path = scenario_of(task)
    except RegistryError as e:
        raise ScenarioError(str(e)) from e
    return Path(path) if path else None


# ---------------------------------------------------------------------------- `fingergym tasks`
def add_arguments(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: Any) -> int:
    """Print the registered gym ids, one per line, with their robot and task."""
    import json

    import fingergym  # noqa: F401 - registers the shipped ids

    discover()
    for spec in env_specs():
        if args.json:
            print(json.dumps({"id": spec.env_id, "robot": spec.robot, "task": spec.task,
                              "scenario": spec.scenario or "(shipped configs/scenario.yaml)"}))
        else:
            print(f"{spec.env_id}  robot={spec.robot}  task={spec.task}")
    return 0
