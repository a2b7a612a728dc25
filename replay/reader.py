"""Read a logged episode back: :func:`read_episode` -> :class:`Episode` (numpy arrays per step).

The MCAP file is read by streaming its records (the ``mcap`` library's StreamReader) and the
messages are decoded with rosbags' typestore. Streaming needs neither the MCAP footer/summary
nor ``metadata.yaml``, which rosbags' writer only writes on close: a bag cut short by a crash
or SIGKILL still reads up to its last flushed chunk, and the :class:`Episode` says so
(``truncated``, ``notes``). A missing, empty, corrupted or foreign bag raises :class:`BagError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mcap.records import Channel, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from fingergym.layout import Layout, LayoutError
from fingergym.scenario import Scenario, ScenarioError, scenario_from_dict

from . import topics as T

MAX_RECORD = 256 << 20  # a corrupted length field must not allocate gigabytes


class BagError(ValueError):
    """The bag is missing, unreadable, or not a fingergym episode of this robot."""


@dataclass
class Episode:
    """One logged episode; arrays have one row per gym step (see the recorder's convention)."""

    path: Path
    metadata: dict[str, Any]
    observation: np.ndarray  # (N, n) what the policy saw (observation_layout)
    action: np.ndarray       # (N, m) applied, agent units (action_layout)
    target: np.ndarray       # (N, m) commanded
    reward: np.ndarray       # (N,)
    sim_time: np.ndarray     # (N,) [s]
    wall_time: np.ndarray    # (N,) [s since the epoch]
    stamp_ns: np.ndarray     # (N,) bag log time
    state: np.ndarray | None = None  # (N, n) noise-free (sim bags only)
    topic_counts: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.reward)

    @property
    def observation_layout(self) -> Layout:
        """The observation's names (``obs_names`` in bags from before the layouts)."""
        return _layout(self.metadata, "observation_layout", "obs_names", self.path)

    @property
    def action_layout(self) -> Layout:
        """The action's names (bags from before the layouts: the logged robot's)."""
        if "action_layout" in self.metadata:
            return _layout(self.metadata, "action_layout", None, self.path)
        return self.scenario.plugins()[1].command_layout

    @property
    def finished(self) -> bool:
        """The recorder closed the episode (an end record exists)."""
        return "end_reason" in self.metadata

    @property
    def end_reason(self) -> str:
        return self.metadata.get("end_reason", "unfinished (recording cut short)")

    @property
    def success(self) -> bool | None:
        return self.metadata.get("success")

    @property
    def episode_return(self) -> float:
        return float(self.metadata.get("episode_return", float(np.sum(self.reward))))

    @property
    def mode(self) -> str:
        return str(self.metadata.get("mode", "?"))

    @property
    def scenario(self) -> Scenario:
        try:
            return scenario_from_dict(self.metadata["scenario"],
                                      source=f"{self.path} (logged scenario)")
        except (KeyError, ScenarioError) as e:
            raise BagError(f"{self.path}: the logged scenario is missing or invalid: {e}") from e

    @property
    def episode_params(self) -> dict[str, Any] | None:
        """The sim's per-episode physics (:class:`fingergym.sim.params.EpisodeParams` fields)."""
        return self.metadata.get("episode_params")

    @property
    def true_state(self) -> np.ndarray:
        """Noise-free state when logged (sim), else the observation (robot)."""
        return self.state if self.state is not None else self.observation

    @property
    def final_observation(self) -> np.ndarray | None:
        fo = self.metadata.get("final_observation")
        return None if fo is None else np.asarray(fo, dtype=float)

    @property
    def final_state(self) -> np.ndarray | None:
        """Noise-free state after the last step when logged (sim), else the final observation."""
        fs = self.metadata.get("final_state")
        return self.final_observation if fs is None else np.asarray(fs, dtype=float)

    @property
    def time(self) -> np.ndarray:
        """Seconds since the first step (sim time if it advanced, else wall time)."""
        t = self.sim_time if len(t := self.sim_time) > 1 and np.ptp(t) > 0 else self.wall_time
        return t - t[0] if len(t) else t


def _layout(meta: dict, key: str, legacy: str | None, path: Path) -> Layout:
    try:
        return Layout.from_dict(meta.get(key) or (meta.get(legacy) if legacy else None) or [])
    except LayoutError as e:
        raise BagError(f"{path}: the logged {key} is invalid: {e}") from e


def find_mcap(path: Path) -> Path:
    """The MCAP file of a bag directory (or the file itself)."""
    if not path.exists():
        raise BagError(f"{path}: no such bag (expected a rosbag2 directory or an .mcap file)")
    if path.is_file():
        return path
    files = sorted(path.glob("*.mcap"))
    if not files:
        raise BagError(f"{path}: not a rosbag2 MCAP bag (no .mcap file in the directory)")
    if len(files) > 1:
        raise BagError(f"{path}: several .mcap files ({[f.name for f in files]}); "
                       f"fingergym episodes are one file per bag")
    return files[0]


def _custom_data(text: str) -> dict[str, Any]:
    info = yaml.safe_load(text) or {}
    info = info.get("rosbag2_bagfile_information", info)
    raw = (info.get("custom_data") or {}).get("fingergym")
    return json.loads(raw) if raw else {}


def _stream(mcap: Path, notes: list[str]) -> tuple[dict[str, list], dict[str, Any], bool]:
    """(topic -> [(log_time, msg)], custom_data from the MCAP metadata record, complete)."""
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    out: dict[str, list] = {}
    custom: dict[str, Any] = {}
    complete = False
    undecodable: dict[str, int] = {}
    with mcap.open("rb") as f:
        size = mcap.stat().st_size
        if size == 0:
            raise BagError(f"{mcap}: the file is empty (the recorder died before its first flush)")
        reader = StreamReader(f, record_size_limit=MAX_RECORD)
        try:
            for rec in reader.records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                elif isinstance(rec, Message):
                    topic, msgtype = channels.get(rec.channel_id, ("", ""))
                    try:
                        msg = T.deserialize(rec.data, msgtype)
                    except Exception:  # noqa: BLE001 - unknown type or damaged bytes
                        undecodable[topic] = undecodable.get(topic, 0) + 1
                        continue
                    out.setdefault(topic, []).append((rec.log_time, msg))
                elif isinstance(rec, Metadata) and rec.name == "rosbag2":
                    try:
                        custom = _custom_data(rec.metadata.get("serialized_metadata", ""))
                    except (yaml.YAMLError, json.JSONDecodeError):
                        notes.append("the bag's embedded rosbag2 metadata is unreadable")
                elif isinstance(rec, Footer):
                    complete = True
        except Exception as e:  # noqa: BLE001 - truncated or damaged: keep what was read
            pos = f.tell()
            if not out and not channels:
                raise BagError(f"{mcap}: not a readable MCAP file ({type(e).__name__}: {e})") \
                    from e
            what = ("ends in the middle of a record" if pos >= size
                    else f"is damaged near byte {pos} of {size} ({type(e).__name__}: {e})")
            notes.append(f"the MCAP file {what}; read everything before that")
    for topic, n in undecodable.items():
        notes.append(f"{n} message(s) on {topic or '<unknown channel>'} could not be decoded")
    return out, custom, complete


def _array(rows: list, n: int, topic: str, path: Path) -> np.ndarray:
    data = [np.asarray(m.data, dtype=float) for _, m in rows]
    bad = [i for i, d in enumerate(data) if d.shape != (n,)]
    if bad:
        raise BagError(f"{path}: {topic} has {data[bad[0]].size} values per message, expected {n}"
                       f" (a bag from a different robot or observation layout?)")
    return np.array(data).reshape(len(data), n)


def read_episode(path: str | Path) -> Episode:
    """Read a bag written by :class:`~fingergym.replay.recorder.EpisodeRecorder`."""
    path = Path(path)
    mcap = find_mcap(path)
    bag_dir = mcap.parent if path.is_file() else path
    notes: list[str] = []
    msgs, custom, complete = _stream(mcap, notes)
    meta_yaml = bag_dir / "metadata.yaml"
    if meta_yaml.exists():
        try:
            custom = _custom_data(meta_yaml.read_text()) or custom
        except (OSError, yaml.YAMLError, json.JSONDecodeError) as e:
            notes.append(f"{meta_yaml.name} is unreadable ({e}); using the bag's own records")
    elif not path.is_file():
        notes.append("no metadata.yaml (the recorder did not close the bag)")
    truncated = not complete
    if truncated:
        notes.insert(0, "the bag was not closed (crash or kill during recording): "
                        "it holds the episode up to its last flushed second")

    events = []
    for _, m in msgs.get(T.EPISODE, []):
        try:
            events.append(dict(json.loads(m.data)))
        except (ValueError, TypeError):
            notes.append(f"an unreadable {T.EPISODE} record was skipped")
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None and not custom:
        raise BagError(f"{path}: not a fingergym episode bag (no {T.EPISODE} start record; "
                       f"topics: {sorted(msgs)})")
    meta: dict[str, Any] = dict(start or {})
    for e in events:
        if e.get("event") == "end":
            meta.update(e)
    meta.update(custom)
    meta.pop("event", None)
    if not str(meta.get("format", "")).startswith(T.FORMAT.split("/")[0]):
        raise BagError(f"{path}: unknown episode format {meta.get('format')!r}")
    n = _layout(meta, "observation_layout", "obs_names", path).size
    m = meta.get("action_dim")
    if not n or not isinstance(m, int) or m < 1:
        raise BagError(f"{path}: the bag does not say its observation/action layout "
                       f"(obs {meta.get('obs_names')}, action dim {m})")

    step_topics = [T.OBSERVATION, T.ACTION, T.TARGET, T.REWARD, T.TIME]
    counts = {t: len(msgs.get(t, [])) for t in step_topics}
    k = min(counts.values())
    if len(set(counts.values())) > 1:
        notes.append(f"step topics have unequal counts {counts}; using the first {k} steps")
    if k == 0:
        notes.append("the bag holds no step")
    rows = {t: msgs.get(t, [])[:k] for t in [*step_topics, T.STATE]}
    times = _array(rows[T.TIME], 2, T.TIME, path)
    state = None
    if len(rows[T.STATE]) == k and k:
        state = _array(rows[T.STATE], n, T.STATE, path)
    ep = Episode(
        path=path, metadata=meta,
        observation=_array(rows[T.OBSERVATION], n, T.OBSERVATION, path),
        action=_array(rows[T.ACTION], m, T.ACTION, path),
        target=_array(rows[T.TARGET], m, T.TARGET, path),
        reward=np.array([m.data for _, m in rows[T.REWARD]], dtype=float),
        sim_time=times[:, 0], wall_time=times[:, 1],
        stamp_ns=np.array([s for s, _ in rows[T.OBSERVATION]], dtype=np.int64),
        state=state, topic_counts={t: len(v) for t, v in msgs.items()},
        truncated=truncated, notes=notes)
    if ep.finished and ep.metadata.get("steps") not in (None, k):
        ep.notes.append(f"the end record says {ep.metadata['steps']} steps, the bag holds {k}")
    return ep


def scenario_mismatch(logged: Scenario, current: Scenario) -> list[str]:
    """How two scenarios differ where it changes what actions and observations mean: task and
    robot, the observation layout, the action scaling (workspace), the step."""
    from fingergym.scaling import ActionScaling

    out = []
    for key in ("task", "robot"):
        if getattr(logged, key) != getattr(current, key):
            out.append(f"{key}: logged {getattr(logged, key)!r}, here {getattr(current, key)!r}")
    if out:
        return out
    a, b = logged.plugins()[0].observation_layout, current.plugins()[0].observation_layout
    if not a.same_names(b):
        out.append(f"observation: logged {list(a.names)}, here {list(b.names)}")
    sa, sb = ActionScaling.from_scenario(logged), ActionScaling.from_scenario(current)
    if not (np.allclose(sa.low, sb.low) and np.allclose(sa.high, sb.high)):
        out.append(f"workspace: logged {sa.low.tolist()}..{sa.high.tolist()}, here "
                   f"{sb.low.tolist()}..{sb.high.tolist()}")
    if logged.episode.step != current.episode.step:
        out.append(f"episode.step: logged {logged.episode.step!r}, here {current.episode.step!r}")
    return out
