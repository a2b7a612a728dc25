"""The package as a user installs it: a wheel built without setuptools warnings that carries the
shipped policy and its held-out result, the license, and the launch files as a ROS 2 share."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_builds_quietly_with_its_data(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "runs", "logs"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Warning" not in log and "deprecated" not in log.lower(), [
        line for line in log.splitlines() if "arning" in line or "eprecat" in line]
    (wheel,) = (tmp_path / "dist").glob("fingergym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("policy.safetensors", "heldout.json", "config.yaml"):
        assert f"fingergym/policies/shipped/{shipped}" in names, shipped
        assert f"fingergym/policies/shipped/gripper_lift/{shipped}" in names, shipped
    assert "fingergym/tasks/gripper_lift/scenario.yaml" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    data = "fingergym-0.1.0.data/data/share/"
    for launch in ROOT.glob("launch/*.launch.py"):
        assert f"{data}fingergym/launch/{launch.name}" in names
    assert f"{data}ament_index/resource_index/packages/fingergym" in names


def test_every_package_folder_is_in_the_wheel_list():
    """A new task or robot folder works from a checkout at once (discovery); a wheel carries
    it only once pyproject's ``packages`` lists it: this names the folder to add."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    missing = []
    for package, folder in tool["package-dir"].items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            name = ".".join((package, *rel))
            if "__pycache__" not in rel and name not in listed:
                missing.append(name)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
