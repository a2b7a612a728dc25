"""The console entry point: help, version, the demo."""

import re
import subprocess
import sys

import pytest

FINGERGYM = [sys.executable, "-m", "fingergym.cli"]


def run(*args, timeout=300):
    return subprocess.run([*FINGERGYM, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("demo", "train", "eval", "export", "bench"):
        assert command in out.stdout


def test_no_command_prints_help_and_fails():
    out = run()
    assert out.returncode == 2 and "usage" in out.stdout


def test_demo_runs_an_episode_and_prints_its_return(tmp_path):
    gif = tmp_path / "demo.gif"
    out = run("demo", "--seed", "0", "--scripted", "--gif", str(gif))
    assert out.returncode == 0, out.stderr
    m = re.search(r"return (-?[\d.]+) over 10\.0 s, success=(True|False)", out.stdout)
    assert m, out.stdout
    assert m.group(2) == "True"  # the scripted flip stands the nominal-seed box up
    assert 0 < float(m.group(1)) <= 1000
    assert gif.stat().st_size > 10_000


def test_demo_rejects_a_bad_scenario_file(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("box:\n  mass: -2\n")
    out = run("demo", "--scenario", str(bad))
    assert out.returncode == 2
    assert f"{bad}: box.mass" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_subcommand_help(command):
    out = run(command, "--help")
    assert out.returncode == 0 and "usage" in out.stdout
