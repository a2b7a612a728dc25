"""The ros2 launch files, checked statically (launch/launch_ros cannot be installed here).

They must compile, declare the documented arguments, start only console scripts this package
installs, and pass the same config files. The process graph itself is exercised by
``fingergym deploy --virtual-robot`` (tests/test_hardware_deploy.py).
"""

from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
# [project.scripts] names (tomllib is 3.11+; the package supports 3.10)
_PYPROJECT = (ROOT / "pyproject.toml").read_text()
SCRIPTS = set(re.findall(r'^([\w-]+) = "fingergym[\w.]*:main"$',
                         _PYPROJECT.split("[project.scripts]")[1].split("\n[")[0], re.M))
EXPECTED = {
    "deploy.launch.py": {"policy", "config", "scenario", "use_virtual_robot", "episodes",
                         "box_reset", "reset_wait", "log_dir"},
    "virtual_robot.launch.py": {"config", "scenario", "mock"},
}


def _declared(tree: ast.AST) -> set[str]:
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
            "DeclareLaunchArgument" and isinstance(node.args[0], ast.Constant)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_file_compiles_and_declares_documented_arguments(name):
    source = (LAUNCH / name).read_text()
    tree = ast.parse(source, filename=name)
    compile(tree, name, "exec")
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    assert _declared(tree) == EXPECTED[name]
    doc = ast.get_docstring(tree)
    for arg in EXPECTED[name]:
        assert f"``{arg}``" in doc, f"{name}: argument {arg} is not documented in the docstring"
    hardware_md = (ROOT / "docs" / "hardware.md").read_text()
    assert name in hardware_md
    for arg in EXPECTED[name]:
        assert re.search(rf"\b{arg}\b", hardware_md), f"docs/hardware.md: {arg} not documented"


class _Recorder:
    """Stands in for every launch class: remembers its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _fake_launch(monkeypatch) -> None:
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "EmitEvent", "ExecuteProcess",
                           "RegisterEventHandler"],
        "launch.conditions": ["IfCondition", "UnlessCondition"],
        "launch.event_handlers": ["OnProcessExit"],
        "launch.events": ["Shutdown"],
        "launch.substitutions": ["LaunchConfiguration"],
    }
    for module, classes in names.items():
        m = types.ModuleType(module)
        for c in classes:
            setattr(m, c, type(c, (_Recorder,), {}))
        monkeypatch.setitem(sys.modules, module, m)


HEAVY = ("fingergym", "pydrake", "gymnasium", "torch", "stable_baselines3", "numpy", "rclpy")


def _argv(cmd: list, declared: dict[str, str]) -> list[str]:
    """The command line a launch ``cmd`` becomes with the declared defaults substituted
    (an item that is a list is one argument, its parts concatenated, as launch does)."""
    def text(part) -> str:
        return declared[part.args[0]] if type(part).__name__ == "LaunchConfiguration" else part

    return [("".join(text(p) for p in c) if isinstance(c, list) else text(c)) for c in cmd]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_file_starts_installed_scripts_with_the_config_files(name, monkeypatch):
    _fake_launch(monkeypatch)
    # `ros2 launch` runs under the distro's Python: none of these are there
    for module in [*HEAVY, *(m for m in list(sys.modules) if m.split(".")[0] in HEAVY)]:
        monkeypatch.setitem(sys.modules, module, None)
    namespace: dict = {"__name__": "launch_file"}
    exec(compile((LAUNCH / name).read_text(), name, "exec"), namespace)
    description = namespace["generate_launch_description"]()
    monkeypatch.undo()
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions
                if type(a).__name__ == "DeclareLaunchArgument"}
    processes = [a for a in actions if type(a).__name__ == "ExecuteProcess"]
    assert processes
    for p in processes:
        cmd = p.kwargs["cmd"]
        used = {c.args[0] for c in (x for item in cmd for x in (item if isinstance(item, list)
                                                               else [item]))
                if type(c).__name__ == "LaunchConfiguration"}
        assert used <= set(declared), f"{name}: uses undeclared {used - set(declared)}"
        argv = _argv(cmd, declared)
        assert argv[0] in SCRIPTS, f"{name}: {argv[0]} is not a console script of this package"
        if argv[0] == "fingergym":
            assert argv[1] == "deploy"
            import argparse

            from fingergym.hardware.deploy import add_arguments

            parser = argparse.ArgumentParser(exit_on_error=False)
            add_arguments(parser)
            args = parser.parse_args(argv[2:])
            # the defaults are resolved by the launched process: shipped policy and configs,
            # logs/deploy-<UTC time>
            assert (args.policy, args.log_dir) == (None, None)
        else:
            from fingergym.hardware.virtual_robot import build_parser

            parser = build_parser()
            parser.exit_on_error = False
            args = parser.parse_args(argv[1:])
        assert (args.config, args.scenario) == (None, None), argv
        assert any(a.startswith("--config=") for a in argv)
        assert any(a.startswith("--scenario=") for a in argv)
        overridden = _argv(cmd, {**declared, "config": "/robot/hardware.yaml"})
        assert parser.parse_args(overridden[1 + (argv[0] == "fingergym"):]).config == Path(
            "/robot/hardware.yaml")
    if name == "deploy.launch.py":
        robot = [p for p in processes if p.kwargs["cmd"][0] == "fingergym-virtual-robot"]
        assert len(robot) == 1
        assert robot[0].kwargs["condition"].args[0].args[0] == "use_virtual_robot"


def test_launch_files_are_installed_as_a_ros2_package_share():
    """A wheel puts them in <prefix>/share/fingergym/launch with an ament index marker, so
    `ros2 launch fingergym deploy.launch.py` finds them (prefix on AMENT_PREFIX_PATH)."""
    tomllib = pytest.importorskip("tomllib")
    data_files = tomllib.loads(_PYPROJECT)["tool"]["setuptools"]["data-files"]
    installed = {Path(f).name for f in data_files["share/fingergym/launch"]}
    assert installed == {p.name for p in LAUNCH.glob("*.launch.py")}
    (marker,) = data_files["share/ament_index/resource_index/packages"]
    assert Path(marker).name == "fingergym" and (ROOT / marker).is_file()
