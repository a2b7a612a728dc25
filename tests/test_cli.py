"""The console entry point: help, version, the demo."""

import re
import subprocess
import sys
import time

import pytest

from fingergym.cli import COMMANDS

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
    from PIL import Image, ImageSequence

    with Image.open(gif) as im:  # real time: reset + 100 steps of 0.1 s (Pillow merges repeats)
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(im)]
        assert im.info["loop"] == 0 and len(durations) > 50
        assert min(durations) >= 100 and sum(durations) == 101 * 100


def test_demo_shows_a_successful_held_out_episode_and_its_measured_rate():
    import json

    from fingergym.policies.runner import shipped_policy_path

    heldout = json.loads((shipped_policy_path().parent / "heldout.json").read_text())
    out = run("demo")
    assert out.returncode == 0, out.stderr
    wins = sum(r["success"] for r in heldout["per_episode"])
    rate = f"held-out success rate {heldout['success_rate']:.0%} ({wins}/50 episodes"
    assert rate in out.stdout, out.stdout
    seed = next(r["seed"] for r in heldout["per_episode"] if r["success"])
    assert f"seed {seed}: return" in out.stdout and "success=True" in out.stdout
    assert "--gif" in out.stdout  # says how to watch it


def test_demo_meshcat_serves_until_interrupted(tmp_path):
    """--meshcat plays the episode, then keeps the server up (stdin not a terminal) until
    SIGINT, and exits cleanly."""
    import signal
    import urllib.request

    proc = subprocess.Popen([*FINGERGYM, "demo", "--meshcat", "--speed", "20"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to exit" in line:
                break
        url = re.search(r"(http://\S+)", lines[-1]).group(1)
        assert "success=True" in "".join(lines)
        time.sleep(1.0)
        assert proc.poll() is None  # still serving
        assert b"meshcat" in urllib.request.urlopen(url, timeout=10).read().lower()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_render_modes():
    import fingergym

    env = fingergym.make_env(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.startswith("t= 0.00s box_x=") and "finger_z=+0.150" in text
    env = fingergym.make_env()  # no render mode: nothing to render, no crash
    env.reset(seed=0)
    assert env.render() is None


def test_missing_ros_gives_a_one_line_hint():
    code = ("import sys; sys.modules['rclpy'] = None; from fingergym.cli import main; "
            "sys.exit(main(['deploy', '--episodes', '1']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "fingergym deploy: needs ROS 2's Python packages (rclpy is missing): pip install "
        "'fingergym[ros]', or source your ROS 2 (e.g. source /opt/ros/<distro>/setup.bash)"]


def test_eval_video_mp4(tmp_path):
    video = tmp_path / "x.mp4"
    out = run("eval", "--episodes", "1", "--video", str(video))
    assert out.returncode == 0, out.stderr
    import imageio.v3 as iio

    assert len(list(iio.imiter(video, plugin="FFMPEG"))) == 101
    bad = run("eval", "--episodes", "1", "--video", str(tmp_path / "x.avi"))
    assert bad.returncode == 2 and "the video must end in one of .gif, .mp4" in bad.stderr


def test_demo_rejects_a_bad_scenario_file(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("box:\n  mass: -2\n")
    out = run("demo", "--scenario", str(bad))
    assert out.returncode == 2
    assert f"{bad}: box.mass" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["demo", "bench", "train"])
def test_subcommand_help(command):
    out = run(command, "--help")
    assert out.returncode == 0 and "usage" in out.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_explained(command):
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    for action in parser._actions:
        assert action.help, f"fingergym {command} {'/'.join(action.option_strings)}: no help"


def test_bench_without_a_name_lists_the_benchmarks():
    out = run("bench")
    assert out.returncode == 0
    assert "gradients:" in out.stdout and "make bench" in out.stdout


def test_bench_gradients_help_prints_each_default_once():
    out = run("bench", "gradients", "--help")
    assert out.returncode == 0
    assert "(default: None)" not in out.stdout and "(default: False)" not in out.stdout
