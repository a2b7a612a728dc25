"""Malformed input gets a one-line error and a documented exit code, never a traceback, a hang
or an unbounded allocation: policy files, config files, --param, special files, output paths."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fingergym.cli import main
from fingergym.files import FileCheckError, check_output_dir, check_output_file, read_regular
from fingergym.hardware.config import load_hardware_config
from fingergym.policies.runner import Policy, PolicyFormatError, shipped_policy_path
from fingergym.scenario import ScenarioError, load_scenario

FINGERGYM = [sys.executable, "-m", "fingergym.cli"]


def one_line(text: str) -> bool:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return len(lines) == 1 and "Traceback" not in text and len(lines[0]) < 600


# ------------------------------------------------------------------ policy files
def _header_and_data(path: Path) -> tuple[dict, bytes]:
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _write_policy(path: Path, header: dict | bytes, data: bytes, pad_to_low_byte=None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad_to_low_byte is not None:  # safetensors allows trailing spaces in the header
        raw += b" " * ((pad_to_low_byte - len(raw)) % 256)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_header_length_with_low_byte_0x80_is_not_a_pickle(tmp_path):
    src = shipped_policy_path()
    header, data = _header_and_data(src)
    p = _write_policy(tmp_path / "p.safetensors", header, data, pad_to_low_byte=0x80)
    assert p.read_bytes()[0] == 0x80  # what the old first-byte check refused
    policy, ref = Policy.load(p), Policy.load(src)
    obs = np.linspace(-0.5, 0.5, 10)
    np.testing.assert_array_equal(policy(obs), ref(obs))


def _spec_edit(tmp_path, name, edit):
    header, data = _header_and_data(shipped_policy_path())
    original = header["__metadata__"]["fingergym_policy"]
    spec = json.loads(original)
    edit(header, spec)
    meta = header["__metadata__"]
    if isinstance(meta, dict) and meta["fingergym_policy"] == original:  # a spec edit
        meta["fingergym_policy"] = json.dumps(spec)
    return _write_policy(tmp_path / f"{name}.safetensors", header, data)


@pytest.mark.parametrize("name, edit", [
    ("metadata_list", lambda h, s: h.__setitem__("__metadata__", [1, 2])),
    ("obs_names_int", lambda h, s: s.__setitem__("obs_names", 7)),
    ("layer_list", lambda h, s: s["layers"].__setitem__(0, ["a", "b"])),
    ("activation_list", lambda h, s: s["layers"][0].__setitem__("activation", ["tanh"])),
    ("clip_huge", lambda h, s: s["normalization"].__setitem__("clip", 10 ** 400)),
    ("mean_strings", lambda h, s: s["normalization"].__setitem__("mean", ["x"] * 10)),
    ("spec_not_json", lambda h, s: h["__metadata__"].__setitem__("fingergym_policy", "{")),
    ("spec_huge_int", lambda h, s: h["__metadata__"].__setitem__(
        "fingergym_policy", '{"version": ' + "9" * 5000 + "}")),
])
def test_malformed_policy_headers_are_one_line_errors(tmp_path, name, edit):
    p = _spec_edit(tmp_path, name, edit)
    with pytest.raises(PolicyFormatError) as err:
        Policy.load(p)
    assert one_line(str(err.value)) and str(p) in str(err.value)


def test_malformed_policy_through_the_cli(tmp_path):
    p = _spec_edit(tmp_path, "bad", lambda h, s: s.__setitem__("layers", {"a": 1}))
    out = subprocess.run([*FINGERGYM, "eval", "--policy", str(p), "--episodes", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and one_line(out.stderr), out.stderr
    assert "not a valid fingergym-policy file" in out.stderr


# ------------------------------------------------------------------ special files
@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_fifos_are_refused_without_blocking(tmp_path, fifo):
    t0 = time.monotonic()
    with pytest.raises(PolicyFormatError, match="FIFO"):
        Policy.load(fifo)
    with pytest.raises(ScenarioError, match="FIFO"):
        load_scenario(fifo)
    with pytest.raises(ScenarioError, match="FIFO"):
        load_hardware_config(fifo)
    bag = tmp_path / "bag"
    bag.mkdir()
    os.mkfifo(bag / "bag.mcap")
    from fingergym.replay.reader import BagError, read_episode

    with pytest.raises(BagError, match="FIFO"):
        read_episode(bag)
    with pytest.raises(FileCheckError, match="directory"):
        read_regular(tmp_path, "policy file", 100)
    assert time.monotonic() - t0 < 10  # nothing waited for a writer


# ------------------------------------------------------------------ config files
def _cfg(tmp_path, text: str | bytes, name="c.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def _alias_bomb(levels=9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, match", [
    (b"box:\n  mass: 1.0 # caf\xe9\n", "not UTF-8"),
    ("box:\n  mass: " + "9" * 5000 + "\n", "digits"),
    ("box:\n  mass: " + "9" * 400 + "\n", "out of range"),
    ("box:\n  1: 2\n", "box: key 1 is not a string"),
    ("[1, 2]\n", "expected a mapping"),
    ("box: {mass: [" + ", ".join(["1"] * 5000) + "]}\n", "box.mass: expected a number"),
    (_alias_bomb(), "expands to more than"),
    ("box: {length: &x [1, 2], mass: *x}\n", "box.length: expected a number"),
    ("box: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_bad_scenario_files_are_one_line_errors(tmp_path, text, match):
    p = _cfg(tmp_path, text)
    t0 = time.monotonic()
    with pytest.raises(ScenarioError, match=match) as err:
        load_scenario(p)
    assert time.monotonic() - t0 < 5  # the alias bomb is refused, not expanded
    assert one_line(str(err.value)) and len(str(err.value)) < 400, str(err.value)[:1000]


@pytest.mark.parametrize("text, match", [
    ("ros:\n  controller: 'bad name'\n", "ros.controller: 'bad name' is not a valid"),
    ("ros:\n  joint_states_topic: /a//b\n", "ros.joint_states_topic"),
    ("ros:\n  object_pose_topic: /{object}/1pose\n", "ros.object_pose_topic"),
    ("ros:\n  object_pose_topic: /{thing}/pose\n", "ros.object_pose_topic: bad placeholder"),
    ("ros:\n  node_name: my-node\n", "ros.node_name"),
    ("ros:\n  reset_service: /reset/\n", "ros.reset_service"),
    ("ros:\n  estop_topic: /joint_states\n", "also ros.joint_states_topic"),
])
def test_bad_ros_names_and_topic_clashes(tmp_path, text, match):
    p = _cfg(tmp_path, text)
    with pytest.raises(ScenarioError, match=match) as err:
        load_hardware_config(p)
    assert one_line(str(err.value)) and str(p) in str(err.value)


def test_ros_name_rule_agrees_with_rcl():
    """Our ROS name check accepts exactly what rcl's validator accepts (on these names)."""
    rclpy_names = pytest.importorskip("rclpy.validate_full_topic_name")
    from rclpy.exceptions import InvalidTopicNameException

    from fingergym.hardware.config import hardware_config_from_dict

    for name in ("/a", "/a/b_c", "/_x/y2", "/a//b", "/a/", "/1a", "/a b", "/a-b", "/a/~"):
        try:
            rclpy_names.validate_full_topic_name(name)
            rcl_ok = True
        except InvalidTopicNameException:
            rcl_ok = False
        try:
            hardware_config_from_dict({"ros": {"joint_states_topic": name}})
            ours = True
        except ScenarioError:
            ours = False
        assert ours == rcl_ok, name


# ------------------------------------------------------------------ --param
@pytest.mark.parametrize("param, match", [
    ("action_delay_periods=1e9", "action_delay_periods"),
    ("action_delay_periods=1.5", "integer"),
    ("friction=nan", "finite"),
    ("friction=1e400", "finite"),
    ("box_mass=-1", "box.mass"),
    ("kp=0", "controller.kp"),
    ("box_x=0.5", "box.x_range"),
    ("gravity=3", "unknown physics parameter"),
])
def test_replay_params_validated_like_the_scenario(param, match):
    from fingergym.replay.cli_replay import _param
    from fingergym.scenario import Scenario
    from fingergym.sim.params import validate_overrides

    name, value = _param(param)
    with pytest.raises(ScenarioError, match=match) as err:
        validate_overrides({name: value}, Scenario())
    assert one_line(str(err.value))


def test_valid_params_pass_typed():
    from fingergym.scenario import Scenario
    from fingergym.sim.params import validate_overrides

    out = validate_overrides({"action_delay_periods": 2.0, "friction": 0.5}, Scenario())
    assert out == {"action_delay_periods": 2, "friction": 0.5}
    assert isinstance(out["action_delay_periods"], int)


# ------------------------------------------------------------------ output paths
def test_output_path_checks(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "v.gif", "v", (".gif",))
    assert check_output_dir(tmp_path / "logs" / "run1", "logs")
    (tmp_path / "d.gif").mkdir()
    for bad, match in ((a_file / "v.gif", "not a directory"), (tmp_path / "d.gif", "directory"),
                       (tmp_path / "v.webm", "must end in")):
        with pytest.raises(FileCheckError, match=match):
            check_output_file(bad, "the video", (".gif",))
    with pytest.raises(FileCheckError, match="not a directory"):
        check_output_dir(a_file / "logs", "logs")
    with pytest.raises(FileCheckError, match="not a directory"):
        check_output_dir(a_file, "logs")
    with pytest.raises(FileCheckError, match="not writable"):  # even for root
        check_output_file(Path("/proc/fingergym-test.gif"), "the video", (".gif",))


def test_eval_checks_outputs_before_running(tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for args in (["--video", str(a_file / "v.gif")], ["--video", str(tmp_path / "v.webm")],
                 ["--log", str(a_file / "logs")], ["--video", "/proc/fingergym-test.gif"]):
        t0 = time.monotonic()
        assert main(["eval", "--episodes", "50", *args]) == 2
        captured = capsys.readouterr()
        assert one_line(captured.err) and captured.out == "", captured
        assert time.monotonic() - t0 < 10  # refused before 50 episodes ran


def test_eval_video_into_a_missing_directory_is_written(tmp_path, capsys):
    video = tmp_path / "missing" / "dir" / "first.gif"
    assert main(["eval", "--episodes", "1", "--video", str(video)]) == 0
    assert video.stat().st_size > 1000
    assert "success rate" in capsys.readouterr().out


def test_demo_and_replay_output_paths(tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert main(["demo", "--gif", str(a_file / "d.gif")]) == 2
    assert one_line(capsys.readouterr().err)
    assert main(["replay", str(tmp_path / "nobag"), "--plot", str(a_file / "p.png")]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "p.png" in err  # the output is checked first
