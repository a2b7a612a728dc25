"""Bags are checked, not trusted: CRCs and sequence numbers written, damage found and reported,
steps paired by the step number they carry, `episodes` marks damaged and incomplete bags."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader

from fingergym.cli import main
from fingergym.replay import topics as T
from fingergym.replay.reader import read_episode
from fingergym.replay.recorder import EpisodeRecorder
from fingergym.scenario import Scenario

STEPS = 20


def _obs(k: int) -> np.ndarray:
    return np.arange(10) + 1000.0 * (k + 1) + 0.125  # unique bytes per step


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """A closed bag of STEPS steps, one chunk per step (flush_period=0)."""
    path = tmp_path_factory.mktemp("bags") / "good"
    rec = EpisodeRecorder(path, metadata={"mode": "hardware"}, scenario=Scenario(),
                          flush_period=0.0)
    for k in range(STEPS):
        rec.record_step(sim_time=0.1 * k, wall_time_ns=10**9 * k, observation=_obs(k),
                        action=[k / 100, -k / 100], target=[0.01 * k, 0.1], reward=float(k))
    rec.close(end_reason="time_limit", success=True, episode_return=float(sum(range(STEPS))))
    return path


def _copy(bag: Path, dst: Path) -> Path:
    shutil.copytree(bag, dst)
    (dst / "good.mcap").rename(dst / f"{dst.name}.mcap")
    return dst


def test_crcs_and_step_numbers_are_written(bag):
    ep = read_episode(bag)
    assert ep.status == "ok" and not ep.problems and not ep.notes, (ep.problems, ep.notes)
    with open(bag / "good.mcap", "rb") as f:  # the official reader, CRCs validated
        chunks = [r for r in StreamReader(f, emit_chunks=True).records
                  if type(r).__name__ == "Chunk"]
        assert len(chunks) > STEPS and all(c.uncompressed_crc != 0 for c in chunks)
        f.seek(0)
        reader = make_reader(f, validate_crcs=True)
        seqs = [m.sequence for _, _, m in reader.iter_messages(topics=[T.ACTION])]
    assert seqs == list(range(1, STEPS + 1))
    np.testing.assert_array_equal(ep.observation[7], _obs(7))


def test_flipped_byte_drops_its_step_and_keeps_the_pairs(bag, tmp_path, capsys):
    dmg = _copy(bag, tmp_path / "flip")
    raw = bytearray((dmg / "flip.mcap").read_bytes())
    at = raw.find(struct.pack("<d", _obs(5)[3]))  # inside step 6's observation
    assert at > 0
    raw[at] ^= 0x40
    (dmg / "flip.mcap").write_bytes(bytes(raw))
    ep = read_episode(dmg)
    assert ep.damaged and ep.status == "damaged"
    assert any("CRC" in p for p in ep.problems), ep.problems
    assert any("step 6" in p for p in ep.problems), ep.problems
    assert ep.steps == STEPS - 1
    for row in range(ep.steps):  # every kept row is one step's own data
        k = int(round(ep.reward[row]))
        np.testing.assert_array_equal(ep.observation[row], _obs(k))
        np.testing.assert_allclose(ep.action[row], [k / 100, -k / 100])
    assert 5 not in np.round(ep.reward).astype(int)
    # replaying its actions is refused; describing it says why
    assert main(["replay", str(dmg), "--in", "sim"]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "refusing" in err and "Traceback" not in err


def test_episodes_marks_damaged_and_incomplete_bags(bag, tmp_path, capsys):
    root = tmp_path / "logs"
    _copy(bag, root / "ok")
    data = (bag / "good.mcap").read_bytes()
    tiny = _copy(bag, root / "tiny")  # cut to a few bytes, metadata.yaml still there
    (tiny / "tiny.mcap").write_bytes(data[:12])
    cut = _copy(bag, root / "cut")  # cut after closing: metadata.yaml says complete
    (cut / "cut.mcap").write_bytes(data[: len(data) // 2])
    crashed = _copy(bag, root / "crashed")  # what a crash leaves: no footer, no metadata.yaml
    (crashed / "crashed.mcap").write_bytes(data[: len(data) // 2])
    (crashed / "metadata.yaml").unlink()
    counts = _copy(bag, root / "counts")  # metadata.yaml lists more messages than the file has
    meta = yaml.safe_load((counts / "metadata.yaml").read_text())
    for entry in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        entry["message_count"] += 3
    (counts / "metadata.yaml").write_text(yaml.safe_dump(meta))
    for name, text in (("garbage", b"\xff\xfe\x00garbage"), ("scalar", b"5\n"),
                       ("badcount", b"rosbag2_bagfile_information:\n  "
                                    b"topics_with_message_count: 5\n")):
        _copy(bag, root / name)
        (root / name / "metadata.yaml").write_bytes(text)
    assert main(["episodes", str(root)]) == 0
    out = capsys.readouterr()
    rows = {line.split()[-1]: line for line in out.out.splitlines()[1:-1]}
    assert " yes " in rows["ok"] and " ok " in rows["ok"]
    assert "unreadable" in rows["tiny"] and " yes " not in rows["tiny"]
    for name in ("cut", "counts", "garbage", "scalar", "badcount"):
        assert "damaged" in rows[name] and " yes " not in rows[name], rows[name]
    assert "ends early" in rows["cut"] and "message counts differ" in rows["counts"]
    assert "incomplete" in rows["crashed"]
    assert "1 succeeded" in out.out and "5 damaged" in out.out and "1 unreadable" in out.out
    assert "Traceback" not in out.err
