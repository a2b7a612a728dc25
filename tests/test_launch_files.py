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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_file_starts_installed_scripts_with_the_config_files(name, monkeypatch):
    _fake_launch(monkeypatch)
    namespace: dict = {"__name__": "launch_file"}
    exec(compile((LAUNCH / name).read_text(), name, "exec"), namespace)
    description = namespace["generate_launch_description"]()
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions
                if type(a).__name__ == "DeclareLaunchArgument"}
    for key in ("config", "scenario"):
        assert Path(declared[key]).is_file(), f"{name}: default {key} {declared[key]} missing"
    processes = [a for a in actions if type(a).__name__ == "ExecuteProcess"]
    assert processes
    for p in processes:
        cmd = p.kwargs["cmd"]
        assert cmd[0] in SCRIPTS, f"{name}: {cmd[0]} is not a console script of this package"
        if cmd[0] == "fingergym":
            assert cmd[1] == "deploy"
        flags = {c for c in cmd if isinstance(c, str)}
        assert {"--config", "--scenario"} <= flags
        used = {c.args[0] for c in cmd if type(c).__name__ == "LaunchConfiguration"}
        assert used <= set(declared), f"{name}: uses undeclared {used - set(declared)}"
    if name == "deploy.launch.py":
        robot = [p for p in processes if p.kwargs["cmd"][0] == "fingergym-virtual-robot"]
        assert len(robot) == 1
        assert robot[0].kwargs["condition"].args[0].args[0] == "use_virtual_robot"
        # every deploy flag the launch file passes exists on the command line
        import argparse

        from fingergym.hardware.deploy import add_arguments

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        known = set(parser._option_string_actions)
        for p in processes:
            for flag in p.kwargs["cmd"]:
                if isinstance(flag, str) and flag.startswith("--"):
                    assert flag in known, flag
    else:
        from fingergym.hardware.virtual_robot import build_parser

        known = set(build_parser()._option_string_actions)
        for p in processes:
            for flag in p.kwargs["cmd"]:
                if isinstance(flag, str) and flag.startswith("--"):
                    assert flag in known, flag
