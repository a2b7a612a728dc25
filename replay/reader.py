"""Read a logged episode back: :func:`read_episode` -> :class:`Episode` (numpy arrays per step).

The MCAP file is read by streaming its records (:func:`fingergym.replay.mcap_io.scan_mcap`) and
the messages are decoded with rosbags' typestore. Streaming needs neither the MCAP footer/summary
nor ``metadata.yaml``, which rosbags' writer only writes on close: a bag cut short by a crash
or SIGKILL still reads up to its last flushed chunk, and the :class:`Episode` says so
(``truncated``, ``notes``).

The bag is checked, not trusted: chunk CRCs, message counts against ``metadata.yaml`` (and the
MCAP statistics), per-topic sequence numbers (a gap is a lost message), messages that do not
decode. Step topics are paired by the step number each message carries (its MCAP sequence), not
by position, so a lost or damaged message drops its step instead of shifting the rest. What is
wrong is listed in ``Episode.problems`` (``damaged``). A missing, empty, unreadable or foreign
bag raises :class:`BagError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fingergym.layout import Layout, LayoutError
from fingergym.scenario import Scenario, ScenarioError, scenario_from_dict, show

from . import topics as T
from .mcap_io import McapDamaged, Scan, scan_mcap

STEP_TOPICS = (T.OBSERVATION, T.ACTION, T.TARGET, T.REWARD, T.TIME)  # required on every step
MAX_METADATA_BYTES = 16 << 20


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
    problems: list[str] = field(default_factory=list)  # damage found by the checks

    @property
    def damaged(self) -> bool:
        """The bag is not what the recorder wrote (see ``problems``)."""
        return bool(self.problems)

    @property
    def status(self) -> str:
        """``ok``, ``incomplete`` (cut short: a clean prefix) or ``damaged``."""
        return "damaged" if self.problems else "incomplete" if self.truncated else "ok"

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
    if not path.is_dir():
        raise BagError(f"{path}: not a rosbag2 bag (neither a directory nor a regular file)")
    files = sorted(path.glob("*.mcap"))
    if not files:
        raise BagError(f"{path}: not a rosbag2 MCAP bag (no .mcap file in the directory)")
    if len(files) > 1:
        raise BagError(f"{path}: several .mcap files ({[f.name for f in files]}); "
                       f"fingergym episodes are one file per bag")
    return files[0]


def _bag_info(text: str) -> dict[str, Any]:
    info = yaml.safe_load(text) or {}
    if not isinstance(info, dict):
        raise ValueError("not a mapping")
    info = info.get("rosbag2_bagfile_information", info)
    if not isinstance(info, dict):
        raise ValueError("no rosbag2_bagfile_information mapping")
    return info


def _custom_data(info: dict[str, Any]) -> dict[str, Any]:
    raw = (info.get("custom_data") or {}).get("fingergym")
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("custom_data.fingergym is not a JSON object")
    return data


def _topic_counts(info: dict[str, Any]) -> dict[str, int]:
    """``topics_with_message_count`` of a rosbag2 metadata mapping as {topic: count}."""
    out = {}
    for entry in info.get("topics_with_message_count") or []:
        out[str(entry["topic_metadata"]["name"])] = int(entry["message_count"])
    return out


def _decode(scan: Scan, problems: list[str]) -> dict[str, list[tuple[int, int, Any]]]:
    """topic -> [(log_time, sequence, message)]; undecodable messages are counted as damage."""
    out: dict[str, list] = {}
    for topic, raws in scan.messages.items():
        msgtype, bad = scan.msgtypes.get(topic, ""), 0
        rows = out.setdefault(topic, [])
        for r in raws:
            try:
                rows.append((r.log_time, r.sequence, T.deserialize(r.data, msgtype)))
            except Exception:  # noqa: BLE001 - unknown type or damaged bytes
                bad += 1
        if bad:
            problems.append(f"{bad} message(s) on {topic or '<unknown channel>'} could not be "
                            f"decoded")
    return out


def _check_sequences(scan: Scan, problems: list[str]) -> bool:
    """Gaps in each topic's sequence numbers are lost messages; returns whether the bag has
    sequence numbers at all (older recorders wrote 0)."""
    numbered = False
    for topic, raws in scan.messages.items():
        seq = [r.sequence for r in raws]
        if not any(seq):
            continue
        numbered = True
        expected = len(seq) + (seq[0] - 1 if seq[0] > 0 else 0)
        if 0 in seq or any(b <= a for a, b in zip(seq, seq[1:])):
            problems.append(f"{topic}: sequence numbers out of order or repeated")
        elif seq[-1] != expected:
            problems.append(f"{topic}: {seq[-1] - expected} message(s) lost (sequence gaps)")
        elif seq[0] != 1:
            problems.append(f"{topic}: the first {seq[0] - 1} message(s) are missing")
    return numbered


def _array(rows: list, n: int, topic: str, path: Path) -> np.ndarray:
    data = [np.asarray(m.data, dtype=float) for m in rows]
    bad = [i for i, d in enumerate(data) if d.shape != (n,)]
    if bad:
        raise BagError(f"{path}: {topic} has {data[bad[0]].size} values per message, expected {n}"
                       f" (a bag from a different robot or observation layout?)")
    return np.array(data).reshape(len(data), n)


def _read_metadata_yaml(meta_yaml: Path, notes: list[str],
                        problems: list[str]) -> dict[str, Any] | None:
    from fingergym.files import read_regular

    try:
        text = read_regular(meta_yaml, "bag metadata", MAX_METADATA_BYTES).decode("utf-8")
        return _bag_info(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as e:
        problems.append(f"{meta_yaml.name} is unreadable ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:120]})")
        return None


def _check_counts(scan: Scan, info: dict[str, Any] | None, where: str,
                  problems: list[str]) -> None:
    """Message counts in the file against what the closed bag's metadata says it holds."""
    if info is None:
        return
    try:
        expected = _topic_counts(info)
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"{where}: topics_with_message_count is malformed ({type(e).__name__})")
        return
    got = scan.counts()
    diff = {t: (n, got.get(t, 0)) for t, n in expected.items() if got.get(t, 0) != n}
    diff.update({t: (0, n) for t, n in got.items() if t not in expected})
    if diff:
        shown = ", ".join(f"{t}: {a} listed, {b} in the file" for t, (a, b) in
                          sorted(diff.items())[:4])
        problems.append(f"message counts differ from {where} ({shown})")


def _pair_steps(msgs: dict[str, list], numbered: bool, problems: list[str],
                notes: list[str]) -> tuple[list[int], dict[str, list]]:
    """(step numbers, topic -> messages of those steps): the steps every step topic has."""
    if not numbered:  # an older recorder: no step numbers, pair by position
        n = min(len(msgs.get(t, [])) for t in STEP_TOPICS)
        counts = {t: len(msgs.get(t, [])) for t in STEP_TOPICS}
        if len(set(counts.values())) > 1:
            problems.append(f"step topics have unequal counts {counts}")
        notes.append("recorded without step numbers (older recorder): steps paired by position")
        rows = {t: [m for _, _, m in msgs.get(t, [])[:n]] for t in (*STEP_TOPICS, T.STATE)}
        return list(range(1, n + 1)), rows
    by_step = {t: {seq: m for _, seq, m in msgs.get(t, [])} for t in (*STEP_TOPICS, T.STATE)}
    steps = sorted(set.intersection(*(set(by_step[t]) for t in STEP_TOPICS)))
    every = sorted(set.union(*(set(by_step[t]) for t in STEP_TOPICS)))
    if len(steps) < len(every):
        lacking = sorted(set(every) - set(steps))
        problems.append(f"{len(lacking)} step(s) lack one of the step topics and were dropped "
                        f"(first: step {lacking[0]})")
    if steps and steps != list(range(1, len(steps) + 1)):
        missing = sorted(set(range(1, steps[-1] + 1)) - set(steps))
        problems.append(f"{len(missing)} step(s) missing from the sequence (first: step "
                        f"{missing[0]})")
    rows = {t: [by_step[t][k] for k in steps if k in by_step[t]] for t in by_step}
    return steps, rows


def read_episode(path: str | Path) -> Episode:
    """Read and check a bag written by :class:`~fingergym.replay.recorder.EpisodeRecorder`."""
    path = Path(path)
    mcap = find_mcap(path)
    bag_dir = mcap.parent if path.is_file() else path
    try:
        scan = scan_mcap(mcap)
    except McapDamaged as e:
        raise BagError(str(e)) from None
    except OSError as e:
        raise BagError(f"{mcap}: cannot read the bag: {e.strerror or e}") from None
    notes, problems = list(scan.notes), list(scan.problems)
    custom: dict[str, Any] = {}
    embedded = None
    if scan.embedded_metadata:
        try:
            embedded = _bag_info(scan.embedded_metadata)
            custom = _custom_data(embedded)
        except (yaml.YAMLError, ValueError) as e:
            problems.append(f"the bag's embedded rosbag2 metadata is unreadable "
                            f"({type(e).__name__})")
    meta_yaml = bag_dir / "metadata.yaml"
    info = None
    if meta_yaml.exists() or meta_yaml.is_symlink():
        info = _read_metadata_yaml(meta_yaml, notes, problems)
        if info is not None:
            try:
                custom = _custom_data(info) or custom
            except ValueError as e:
                problems.append(f"{meta_yaml.name}: custom_data is unreadable ({e})")
        if not scan.complete:
            problems.append(f"{meta_yaml.name} says the bag was closed, but the MCAP file ends "
                            f"early (cut or overwritten after recording)")
    elif not path.is_file():
        notes.append("no metadata.yaml (the recorder did not close the bag)")
        if scan.complete:
            problems.append("the MCAP file is complete but metadata.yaml is missing")
    _check_counts(scan, info, meta_yaml.name, problems)
    if info is None and embedded is not None:
        _check_counts(scan, embedded, "the bag's embedded metadata", problems)
    if scan.statistics is not None and scan.statistics != {t: n for t, n in
                                                           scan.counts().items() if n}:
        problems.append("message counts differ from the MCAP file's own statistics")
    if scan.chunks_without_crc:
        notes.append(f"{scan.chunks_without_crc} of {scan.chunks} chunk(s) carry no CRC (an "
                     f"older recorder): their bytes could not be checked")
    numbered = _check_sequences(scan, problems)
    msgs = _decode(scan, problems)
    truncated = not scan.complete
    if truncated:
        notes.insert(0, "the bag was not closed (crash or kill during recording): "
                        "it holds the episode up to its last flushed second")

    events = []
    for _, _, m in msgs.get(T.EPISODE, []):
        try:
            event = json.loads(m.data)
            if not isinstance(event, dict):
                raise TypeError
            events.append(event)
        except (ValueError, TypeError, RecursionError):
            problems.append(f"an unreadable {T.EPISODE} record was skipped")
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None and not custom:
        raise BagError(f"{path}: not a fingergym episode bag (no {T.EPISODE} start record; "
                       f"topics: {sorted(msgs)[:8]})")
    meta: dict[str, Any] = dict(start or {})
    for e in events:
        if e.get("event") == "end":
            meta.update(e)
    meta.update(custom)
    meta.pop("event", None)
    if not str(meta.get("format", "")).startswith(T.FORMAT.split("/")[0]):
        raise BagError(f"{path}: unknown episode format {show(meta.get('format'))}")
    obs_dim = _layout(meta, "observation_layout", "obs_names", path).size
    act_dim = meta.get("action_dim")
    if not obs_dim or isinstance(act_dim, bool) or not isinstance(act_dim, int) \
            or not 1 <= act_dim <= 4096:
        raise BagError(f"{path}: the bag does not say its observation/action layout "
                       f"(obs {show(meta.get('obs_names'))}, action dim {show(act_dim)})")

    steps, rows = _pair_steps(msgs, numbered, problems, notes)
    n = len(steps)
    if n == 0:
        notes.append("the bag holds no step")
    times = _array(rows[T.TIME], 2, T.TIME, path)
    state = None
    if len(rows[T.STATE]) == n and n:
        state = _array(rows[T.STATE], obs_dim, T.STATE, path)
    stamps = {seq: t for t, seq, _ in msgs.get(T.OBSERVATION, [])}
    ep = Episode(
        path=path, metadata=meta,
        observation=_array(rows[T.OBSERVATION], obs_dim, T.OBSERVATION, path),
        action=_array(rows[T.ACTION], act_dim, T.ACTION, path),
        target=_array(rows[T.TARGET], act_dim, T.TARGET, path),
        reward=np.array([m.data for m in rows[T.REWARD]], dtype=float),
        sim_time=times[:, 0], wall_time=times[:, 1],
        stamp_ns=np.array([t for t, _, _ in msgs.get(T.OBSERVATION, [])][:n] if not numbered
                          else [stamps[k] for k in steps], dtype=np.int64),
        state=state, topic_counts={t: len(v) for t, v in msgs.items()},
        truncated=truncated, notes=notes, problems=problems)
    if ep.finished and ep.metadata.get("steps") not in (None, n):
        ep.problems.append(f"the end record says {show(ep.metadata['steps'])} steps, the bag "
                           f"holds {n}")
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
