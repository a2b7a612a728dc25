"""Episode logging and replay: a sim episode logged as a rosbag2 MCAP bag, read back (with rosbags
independently of our reader, then with ours), replayed in sim, and bad bags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from fingergym.env import make_env
from fingergym.replay import topics as T
from fingergym.replay.reader import BagError, read_episode
from fingergym.replay.recorder import EpisodeRecorder
from fingergym.replay.replay import format_sim_report, replay_in_sim
from fingergym.replay.sim_log import RecordEpisodes
from fingergym.tasks.box_flipup.experts import ScriptedFlip

SEED = 4


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One scripted sim episode logged with RecordEpisodes, and what the env returned."""
    log_dir = tmp_path_factory.mktemp("logs")
    env = RecordEpisodes(make_env(), log_dir, metadata={"policy": "scripted"})
    script = ScriptedFlip(env.unwrapped.scenario)
    obs, info = env.reset(seed=SEED)
    seen = {"obs": [obs], "action": [], "reward": [], "state": [env.unwrapped.true_state()]}
    done = False
    while not done:
        action = script(env.unwrapped.true_state())
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        seen["obs"].append(obs)
        seen["action"].append(action)
        seen["reward"].append(reward)
        seen["state"].append(env.unwrapped.true_state())
    env.close()
    return Path(info["bag"]), {k: np.array(v) for k, v in seen.items()}, info, env


def test_sim_bag_read_with_rosbags(logged):
    bag, seen, info, env = logged
    n = len(seen["reward"])
    ts = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
        got: dict[str, list] = {}
        for conn, _, raw in reader.messages():
            got.setdefault(conn.topic, []).append(ts.deserialize_cdr(raw, conn.msgtype))
    info_yaml = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info_yaml["storage_identifier"] == "mcap"
    custom = json.loads(info_yaml["custom_data"]["fingergym"])
    for topic in ("/fingergym/observation", "/fingergym/action", "/fingergym/target",
                  "/fingergym/reward", "/fingergym/time", "/fingergym/state",
                  "/joint_states", "/box/pose", "/finger_controller/commands"):
        assert counts[topic] == n, topic
    assert counts["/fingergym/episode"] == 2
    assert types["/joint_states"] == "sensor_msgs/msg/JointState"
    assert types["/box/pose"] == "geometry_msgs/msg/PoseStamped"
    obs = np.array([m.data for m in got["/fingergym/observation"]])
    np.testing.assert_array_equal(obs, seen["obs"][:-1])  # float32 obs, stored exactly
    np.testing.assert_array_equal([m.data for m in got["/fingergym/action"]], seen["action"])
    np.testing.assert_array_equal([m.data for m in got["/fingergym/reward"]], seen["reward"])
    np.testing.assert_array_equal([m.data for m in got["/fingergym/state"]], seen["state"][:-1])
    sim_time = np.array([m.data[0] for m in got["/fingergym/time"]])
    np.testing.assert_allclose(sim_time, 0.1 * np.arange(n), atol=1e-9)
    js = got["/joint_states"][5]
    assert list(js.name) == ["finger_x", "finger_z"]
    np.testing.assert_array_equal(js.position, seen["obs"][5][3:5])
    pose = got["/box/pose"][5].pose
    assert (pose.position.x, pose.position.z) == pytest.approx(tuple(seen["obs"][5][:2]))
    start, end = (json.loads(m.data) for m in got["/fingergym/episode"])
    assert start["event"] == "start" and end["event"] == "end"
    assert end["end_reason"] == "time_limit" and end["success"] == bool(info["success"])
    assert end["episode_return"] == pytest.approx(seen["reward"].sum())
    assert custom["seed"] == SEED and custom["mode"] == "sim" and custom["policy"] == "scripted"
    assert custom["obs_names"] == list(make_env().observation_layout.names)
    assert custom["scenario"]["box"]["length"] == env.unwrapped.scenario.box.length
    assert set(custom["episode_params"]) >= {"friction", "box_mass", "action_delay_periods"}


def test_read_episode_and_replay_in_sim_reproduces_it(logged):
    bag, seen, info, _ = logged
    ep = read_episode(bag)
    assert not ep.truncated and not ep.notes
    assert ep.steps == len(seen["reward"]) and ep.success == bool(info["success"])
    np.testing.assert_array_equal(ep.observation, seen["obs"][:-1])
    np.testing.assert_array_equal(ep.final_state, seen["state"][-1])
    rep = replay_in_sim(ep)
    assert rep.error.shape == (ep.steps + 1, ep.observation_layout.size)
    assert np.abs(rep.error).max() == 0.0  # same physics, noise-free reference: exact
    np.testing.assert_array_equal(rep.reward, ep.reward)
    assert rep.success == ep.success


def test_replay_with_changed_physics_reports_divergence(logged):
    ep = read_episode(logged[0])
    rep = replay_in_sim(ep, overrides={"friction": 0.2, "box_mass": 2.0})
    d = rep.divergence()
    assert d["box_pos"].max() > 1e-3
    report = format_sim_report(ep, rep, every=20)
    assert "final divergence" in report and "logged episode" in report
    with pytest.raises(ValueError, match="unknown physics parameter"):
        replay_in_sim(ep, overrides={"gravity": 1.0})


def _rerecord(ep, path: Path, flush_period: float) -> None:
    """Write ``ep`` again with a chunk per step (so a cut file keeps earlier steps)."""
    meta = {k: ep.metadata[k] for k in ("mode", "seed", "episode_params")}
    rec = EpisodeRecorder(path, metadata=meta, scenario=ep.scenario, flush_period=flush_period)
    for k in range(ep.steps):
        rec.record_step(sim_time=ep.sim_time[k], wall_time_ns=0, observation=ep.observation[k],
                        action=ep.action[k], target=ep.target[k], reward=ep.reward[k],
                        state=ep.state[k])
    rec.close(end_reason="time_limit", success=True, episode_return=float(ep.reward.sum()))


def test_truncated_bag_reads_and_replays_what_it_holds(logged, tmp_path, capsys):
    ep = read_episode(logged[0])
    full = tmp_path / "full"
    _rerecord(ep, full, flush_period=0.0)
    with open(full / "full.mcap", "rb") as f:  # the official MCAP reader, through the index
        reader = make_reader(f)
        summary = reader.get_summary()
        assert len(summary.chunk_indexes) > 10  # flushed chunk by chunk
        assert sum(1 for _ in reader.iter_messages(topics=["/fingergym/action"])) == ep.steps
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (full / "full.mcap").read_bytes()
    (cut / "cut.mcap").write_bytes(data[: int(0.6 * len(data))])  # no footer, no metadata.yaml
    part = read_episode(cut)
    assert part.truncated and any("not closed" in n for n in part.notes)
    assert 0 < part.steps < ep.steps
    assert part.end_reason.startswith("unfinished") and part.success is None
    np.testing.assert_array_equal(part.observation, ep.observation[: part.steps])
    rep = replay_in_sim(part)
    assert len(rep.error) == part.steps and np.abs(rep.error).max() == 0.0
    from fingergym.cli import main

    assert main(["replay", str(cut), "--in", "sim"]) == 0
    err = capsys.readouterr().err
    assert f"truncated bag; replaying the {part.steps} step(s) it holds" in err


def test_bad_bags_give_clear_errors(logged, tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        read_episode(tmp_path / "missing")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match="no .mcap file"):
        read_episode(tmp_path / "empty_dir")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "junk.mcap").write_bytes(b"this is not an mcap file" * 10)
    with pytest.raises(BagError, match="not a readable MCAP file"):
        read_episode(junk)
    (junk / "junk.mcap").write_bytes(b"")
    with pytest.raises(BagError, match="empty"):
        read_episode(junk)
    # A rosbag2 bag that is not a fingergym episode.
    other = tmp_path / "other"
    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(other, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        w.write(c, 1, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="hi"),
                                       "std_msgs/msg/String"))
    with pytest.raises(BagError, match="not a fingergym episode"):
        read_episode(other)
    # A bag of another observation layout reads (its layout is in it), but does not replay
    # as this task.
    ep = read_episode(logged[0])
    foreign = tmp_path / "foreign"
    other = {"names": ["a", "b"], "groups": {}}
    with EpisodeRecorder(foreign, metadata={"mode": "hardware", "obs_names": ["a", "b"],
                                            "observation_layout": other},
                         scenario=ep.scenario) as rec:
        rec.close(end_reason="done", success=False, episode_return=0.0)
    assert read_episode(foreign).observation_layout.names == ("a", "b")
    with pytest.raises(BagError, match="not what task 'box_flipup' observes"):
        replay_in_sim(read_episode(foreign))
    # Replaying with a scenario of a different workspace.
    other_robot = ep.scenario.replace(**{"bin.wall_x": [-0.3, 0.3]})
    with pytest.raises(BagError, match="workspace: logged"):
        replay_in_sim(ep, scenario=other_robot)
    # Damaged bytes in the middle: the damaged chunk is skipped (CRC), the rest is kept, each
    # kept step still pairs its own observation, action and reward (by step number).
    dmg = tmp_path / "dmg"
    _rerecord(ep, tmp_path / "src", flush_period=0.0)
    shutil.copytree(tmp_path / "src", dmg)
    (dmg / "src.mcap").rename(dmg / "dmg.mcap")
    (dmg / "metadata.yaml").unlink()
    raw = bytearray((dmg / "dmg.mcap").read_bytes())
    with open(dmg / "dmg.mcap", "rb") as f:  # the chunk in the middle of the file
        chunks = make_reader(f).get_summary().chunk_indexes
    c = min(chunks, key=lambda c: abs(c.chunk_start_offset - len(raw) // 2))
    mid = c.chunk_start_offset + c.chunk_length // 2  # inside its records, not a header
    raw[mid: mid + 64] = b"\xff" * 64
    (dmg / "dmg.mcap").write_bytes(bytes(raw))
    part = read_episode(dmg)
    assert part.damaged and 0 < part.steps < ep.steps
    assert any("CRC" in p or "damaged" in p for p in part.problems), part.problems
    kept = [int(np.argmin(np.abs(ep.sim_time - t))) for t in part.sim_time]
    np.testing.assert_array_equal(part.observation, ep.observation[kept])
    np.testing.assert_array_equal(part.action, ep.action[kept])
    np.testing.assert_array_equal(part.reward, ep.reward[kept])


def test_recorder_context_manager_records_error(tmp_path, logged):
    ep = read_episode(logged[0])
    with pytest.raises(RuntimeError, match="boom"), \
            EpisodeRecorder(tmp_path / "e", metadata={"mode": "hardware"},
                            scenario=ep.scenario) as rec:
        rec.record_step(sim_time=0.0, wall_time_ns=1, observation=ep.observation[0],
                        action=[0, 0], target=[0, 0.1], reward=1.0)
        raise RuntimeError("boom")
    out = read_episode(tmp_path / "e")
    assert out.end_reason == "error" and out.steps == 1 and not out.truncated
    rec.record_raw("/joint_states", "sensor_msgs/msg/JointState", b"late", 1)  # no raise
    assert rec.dropped_raw == 1
    with pytest.raises(ValueError, match="10 elements"):
        EpisodeRecorder(tmp_path / "f", metadata={}, scenario=ep.scenario).record_step(
            sim_time=0, wall_time_ns=0, observation=np.zeros(3), action=[0, 0],
            target=[0, 0], reward=0)
    assert T.EPISODE == "/fingergym/episode"


def test_raw_rclpy_messages_round_trip(tmp_path, logged):
    """Deploy hands the recorder rclpy's serialize_message bytes (4 padding bytes after a
    JointState); the bag holds them re-encoded, so rosbags' strict reader decodes them."""
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    msg = JointState()
    msg.name = ["finger_x", "finger_z"]
    msg.position = [0.1, 0.2]
    msg.velocity = [0.0, -0.3]
    ep = read_episode(logged[0])
    with EpisodeRecorder(tmp_path / "raw", metadata={"mode": "hardware"},
                         scenario=ep.scenario) as rec:
        rec.record_raw("/joint_states", "sensor_msgs/msg/JointState", serialize_message(msg), 5)
        rec.close(end_reason="done", success=False, episode_return=0.0)
    ts = get_typestore(Stores.ROS2_KILTED)
    with Reader(tmp_path / "raw") as reader:
        strict = [ts.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/joint_states"]
    assert list(strict[0].name) == ["finger_x", "finger_z"]
    np.testing.assert_array_equal(strict[0].velocity, [0.0, -0.3])
    out = read_episode(tmp_path / "raw")
    assert out.topic_counts["/joint_states"] == 1
    assert not any("decoded" in n for n in out.notes)
    decoded = T.deserialize(serialize_message(msg), "sensor_msgs/msg/JointState")
    np.testing.assert_array_equal(decoded.velocity, [0.0, -0.3])


def test_bag_of_the_first_release_still_reads_and_replays_exactly():
    """A sim bag written before tasks and robots were plug-ins (flat scenario, obs_names only)."""
    ep = read_episode(Path(__file__).parent / "data" / "first_release_bag")
    assert ep.steps == 8 and ep.end_reason == "closed" and not ep.problems
    assert ep.observation_layout.same_names(make_env().observation_layout)
    assert ep.action_layout.names == ("finger_x", "finger_z")
    assert ep.scenario.box.x_range == [-0.1, 0.1]  # moved from randomization.box_x
    rep = replay_in_sim(ep)
    # its logged states (not the final one: that bag kept only the noisy final observation)
    assert np.abs(rep.error[:-1]).max() == 0.0


def test_raw_topic_names_come_from_the_hardware_config(tmp_path):
    """A sim bag recorded under a non-default hardware config uses that config's topic names,
    as the robot side does."""
    from fingergym.hardware.config import hardware_config_from_dict

    config = hardware_config_from_dict({"ros": {"controller": "arm_controller",
                                                "object_pose_topic": "/tracker/{object}",
                                                "joint_states_topic": "/robot/joint_states"}})
    env = RecordEpisodes(make_env(), tmp_path, hardware_config=config)
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.zeros(2, np.float32))
    env.close()
    ep = read_episode(env.bags[0])
    for topic in ("/arm_controller/commands", "/tracker/box", "/robot/joint_states"):
        assert ep.topic_counts[topic] == 3, topic
    assert ep.metadata["topics"]["commands"] == "/arm_controller/commands"
    assert "/finger_controller/commands" not in ep.topic_counts
