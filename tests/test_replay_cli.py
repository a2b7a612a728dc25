"""`fingergym replay` (in sim, plot, Meshcat) and `fingergym episodes` on logged sim episodes."""

from __future__ import annotations

import gc
import shutil

import numpy as np
import pytest

from fingergym.cli import main
from fingergym.env import make_env
from fingergym.replay.reader import read_episode
from fingergym.replay.sim_log import RecordEpisodes
from fingergym.tasks.box_flipup.experts import ScriptedFlip


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    """Two logged sim episodes: one scripted to the end, one abandoned after 5 steps."""
    root = tmp_path_factory.mktemp("episodes")
    env = RecordEpisodes(make_env(), root, metadata={"policy": "scripted"})
    script = ScriptedFlip(env.unwrapped.scenario)
    env.reset(seed=2)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(script(env.unwrapped.true_state()))
        done = terminated or truncated
    env.reset(seed=3)
    for _ in range(5):
        env.step(np.zeros(2, dtype=np.float32))
    env.close()
    return root, env.bags


def test_replay_in_sim_with_plot(log_dir, tmp_path, capsys):
    _, bags = log_dir
    out = tmp_path / "replay.png"
    assert main(["replay", str(bags[0]), "--in", "sim", "--param", "friction=0.4",
                 "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "final divergence" in text and "replayed episode" in text
    assert out.stat().st_size > 20_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_episodes_table(log_dir, tmp_path, capsys):
    root, bags = log_dir
    table_dir = tmp_path / "table"
    for bag in bags:
        shutil.copytree(bag, table_dir / bag.name)
    cut = table_dir / "cut"  # a bag whose recorder died: no metadata.yaml, no footer
    cut.mkdir()
    data = next(bags[0].glob("*.mcap")).read_bytes()
    (cut / "cut.mcap").write_bytes(data[: len(data) - 100])
    (table_dir / "junk").mkdir()
    (table_dir / "junk" / "junk.mcap").write_bytes(b"junk")
    assert main(["episodes", str(table_dir)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["date", "(UTC)", "mode"]
    assert bags[0].name in text and bags[1].name in text
    assert "time_limit" in text and "closed" in text and "4 episode(s)" in text
    assert "incomplete" in text and "unreadable" in text
    assert "2 ok, 1 incomplete, 0 damaged, 1 unreadable" in text


def test_policy_rerun_in_sim_from_a_logged_start_reproduces_its_episode(tmp_path, capsys):
    """``--in sim --policy``: the policy closed-loop from the bag's start. On a noise-free sim
    bag of that policy it is the same episode; a policy of another task is refused."""
    from fingergym.policies.runner import load_shipped_policy, shipped_policy_path
    from fingergym.replay.replay import replay_in_sim
    from fingergym.scenario import load_scenario

    quiet = load_scenario().replace(**{"randomization.obs_noise_position": [0.0, 0.0],
                                       "randomization.obs_noise_velocity": [0.0, 0.0]})
    policy = load_shipped_policy()
    env = RecordEpisodes(make_env(quiet), tmp_path, metadata={"policy": "shipped"})
    obs, _ = env.reset(seed=100_003)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        done = terminated or truncated
    env.close()
    ep = read_episode(env.bags[0])
    rerun = replay_in_sim(ep, policy=policy)
    assert rerun.closed_loop and rerun.success == ep.success == info["success"]
    assert np.abs(rerun.error).max() < 1e-6
    assert main(["replay", str(env.bags[0]), "--in", "sim", "--policy",
                 str(shipped_policy_path())]) == 0
    assert "ran the policy closed-loop in sim" in capsys.readouterr().out
    assert main(["replay", str(env.bags[0]), "--in", "sim", "--policy",
                 str(shipped_policy_path("gripper_lift"))]) == 2
    assert "another task or robot" in capsys.readouterr().err
    assert main(["replay", str(env.bags[0]), "--policy", str(shipped_policy_path())]) == 2


def test_replay_cli_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope")]) == 2
    assert "no such bag" in capsys.readouterr().err
    assert main(["episodes", str(tmp_path)]) == 1


def test_meshcat_playback(log_dir):
    from pydrake.geometry import StartMeshcat

    from fingergym.replay.meshcat_view import TARGET_PATH, show_episode

    ep = read_episode(log_dir[1][0])
    meshcat = show_episode(ep, speed=1000.0, meshcat=StartMeshcat())
    assert meshcat.HasPath(TARGET_PATH)
    assert meshcat.HasPath("visualizer/box")
    del meshcat  # Meshcat must die on this thread (not in a later GC on another thread)
    gc.collect()


def test_replay_meshcat_serves_until_interrupted(log_dir):
    """`replay --meshcat` plays the bag, then keeps serving it with stdin not a terminal, until
    SIGINT; it exits cleanly."""
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "fingergym.cli", "replay", str(log_dir[1][0]),
                             "--meshcat", "--speed", "50"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to exit" in line:
                break
        url = re.search(r"(http://\S+),", "".join(lines)).group(1)
        assert proc.poll() is None  # still serving after the playback
        assert b"meshcat" in urllib.request.urlopen(url, timeout=10).read().lower()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_eval_log_writes_one_bag_per_episode(tmp_path, monkeypatch, capsys):
    runner = pytest.importorskip("fingergym.policies.runner")

    class FakePolicy:
        path = tmp_path / "fake.safetensors"
        sha256 = "ab" * 32

        def __call__(self, obs):
            return np.array([0.5, -0.5], dtype=np.float32)

        def check_layout(self, observation, action=None):
            pass

    monkeypatch.setattr(runner, "load_shipped_policy", lambda task=None: FakePolicy())
    log = tmp_path / "log"
    assert main(["eval", "--episodes", "2", "--seed", "7", "--json", "--log", str(log)]) == 0
    bags = sorted(log.iterdir())
    assert [b.name.split("_")[-1] for b in bags] == ["seed7", "seed8"]
    ep = read_episode(bags[0])
    assert ep.steps == 100 and ep.metadata["policy_sha256"] == FakePolicy.sha256
    np.testing.assert_array_equal(ep.action[0], [0.5, -0.5])
