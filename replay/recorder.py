"""EpisodeRecorder: one episode -> one rosbag2 bag in MCAP storage, written off the control loop.

>>> with EpisodeRecorder(Path("logs/ep0"), metadata={"mode": "hardware"}, scenario=s) as rec:
...     rec.record_step(sim_time=t, wall_time_ns=time.time_ns(), observation=obs,
...                     action=applied, target=target_m, reward=r)
...     rec.record_raw("/joint_states", "sensor_msgs/msg/JointState", cdr, stamp_ns)
...     rec.close(end_reason="time_limit", success=True, episode_return=812.0)

Step convention (one row per gym step, as LeRobot frames): ``observation`` is what the policy saw
when it chose ``action``; ``action``/``target`` are what was actually sent (after clipping and the
safety layer); ``reward`` is what that step returned; ``sim_time`` is the time of
``observation``. Pass ``final_observation`` to :meth:`close` to keep the state after the last step.

Every message carries an MCAP sequence number, the step number (1, 2, ...) on the step topics and
a per-topic counter on the others, and every chunk a CRC (:mod:`.mcap_io`): the reader pairs
step topics by step and detects lost messages and damaged chunks.

``record_*`` only put a tuple on a queue: a background thread serializes (rosbags typestore) and
writes. It closes the MCAP chunk and flushes the file at least every ``flush_period`` seconds, so a
crash or SIGKILL loses at most that much; :mod:`fingergym.replay.reader` reads such a bag (no
footer, no metadata.yaml) by streaming its records. A recorder still open at a normal
interpreter exit is closed with ``end_reason="process_exit"``.

Log times: ``wall_time_ns`` on the robot; in sim (``metadata["mode"] == "sim"``) the bag's clock
is ``start + sim_time`` so a sim bag plays back in real time like a robot bag; the wall time is
kept in ``/fingergym/time`` either way.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import logging
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin

from fingergym.scenario import Scenario, to_dict

from . import topics as T
from .mcap_io import BagWriter

log = logging.getLogger(__name__)
FLUSH_PERIOD = 0.5  # [s] the most a crash can lose


class RecorderError(RuntimeError):
    """The bag could not be written (raised by the constructor and by close())."""


def to_json(obj: Any) -> str:
    """JSON that accepts numpy scalars/arrays, Paths and dataclasses' dicts."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "as_dict"):
            return o.as_dict()
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    return json.dumps(obj, default=default, sort_keys=True)


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    a = np.array(value, dtype=np.float64).ravel()  # a copy: the caller may reuse its buffer
    if a.shape != (n,):
        raise ValueError(f"{name} must have {n} elements, got shape {np.shape(value)}")
    return a


_OPEN: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_recorders() -> None:
    """At a normal interpreter exit, finish bags whose owner never closed them."""
    for rec in list(_OPEN):
        try:
            rec.close(end_reason="process_exit", success=False,
                      episode_return=rec.episode_return)
        except Exception:  # noqa: BLE001
            log.exception("closing %s at exit failed", rec.path)


class EpisodeRecorder:
    """Record one episode as a rosbag2 MCAP bag directory (created; must not exist).

    ``topics``: the robot's topic names (:func:`fingergym.hardware.config.topics`; default:
    from the shipped hardware config), recorded in the metadata and used for the raw topics
    synthesized in sim.
    """

    def __init__(self, bag_dir: Path | str, *, metadata: dict, scenario: Scenario,
                 topics=None, flush_period: float = FLUSH_PERIOD):
        self.path = Path(bag_dir)
        self.scenario = scenario
        self.flush_period = float(flush_period)
        self.clock = "sim" if metadata.get("mode") == "sim" else "wall"
        self.start_ns = time.time_ns()
        task, robot = scenario.plugins()
        spec = task.observation()
        if topics is None:
            from fingergym.hardware.config import load_hardware_config
            from fingergym.hardware.config import topics as make_topics

            topics = make_topics(load_hardware_config(), robot, spec.objects)
        self.topics = topics
        self.obs_layout, self.act_layout = spec.layout, robot.command_layout
        self._n, self._m = self.obs_layout.size, self.act_layout.size
        self._labels = {T.OBSERVATION: ",".join(self.obs_layout.names),
                        T.STATE: ",".join(self.obs_layout.names),
                        T.ACTION: ",".join(self.act_layout.names),
                        T.TARGET: ",".join(self.act_layout.names), T.TIME: T.TIME_LABEL}
        self._synth = T.RawSynth(spec, topics, self.act_layout)
        self.metadata: dict[str, Any] = {
            "format": T.FORMAT,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "task": scenario.task, "robot": scenario.robot,
            "obs_names": list(self.obs_layout.names),
            "observation_layout": self.obs_layout.to_dict(),
            "action_layout": self.act_layout.to_dict(),
            "action_dim": self._m,
            "topics": {"joint_states": topics.joint_states, "commands": topics.commands,
                       "objects": dict(topics.objects), "estop": topics.estop},
            "step": scenario.episode.step,
            "clock": self.clock,
            "scenario_source": scenario.source,
            **metadata,
            "scenario": to_dict(scenario),
        }
        try:
            from fingergym import __version__

            self.metadata.setdefault("fingergym_version", __version__)
            self._start_json = to_json({"event": "start", **self.metadata})
        except TypeError as e:
            raise RecorderError(f"{self.path}: metadata is not JSON-serializable: {e}") from e
        self.steps = 0
        self.dropped_raw = 0
        self._unknown_types: set[str] = set()
        self.episode_return = 0.0
        self._last_stamp = self.start_ns
        self._closed = False
        self._error: BaseException | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = BagWriter(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._sequence: dict[str, int] = {}  # per-topic counter (non-step topics)
        try:
            self._writer.open()
        except Exception as e:
            raise RecorderError(f"{self.path}: cannot create bag: {e}") from e
        self._connections: dict[str, Any] = {}
        self._queue.put(("msg", T.EPISODE, T.STRING, T.string_msg(self._start_json),
                         self.start_ns, True))
        self._thread = threading.Thread(target=self._run, name=f"recorder:{self.path.name}",
                                        daemon=True)
        self._thread.start()
        _OPEN.add(self)

    # ------------------------------------------------------------------ control-loop side
    def stamp(self, sim_time: float, wall_time_ns: int) -> int:
        """The bag log time of a step (see the module docstring)."""
        if self.clock == "sim":
            return self.start_ns + int(round(sim_time * 1e9))
        return int(wall_time_ns)

    def record_step(self, *, sim_time: float, wall_time_ns: int, observation: np.ndarray,
                    action: np.ndarray, target: np.ndarray, reward: float,
                    state: np.ndarray | None = None) -> None:
        """Queue one gym step (never blocks). ``state``: the noise-free state (sim only)."""
        self._check_open()
        obs = _vector("observation", observation, self._n)
        act = _vector("action", action, self._m)
        tgt = _vector("target", target, self._m)
        st = None if state is None else _vector("state", state, self._n)
        stamp = self.stamp(sim_time, wall_time_ns)
        self._last_stamp = max(self._last_stamp, stamp)
        self.steps += 1
        self.episode_return += float(reward)
        self._queue.put(("step", stamp, float(sim_time), int(wall_time_ns), obs, act, tgt,
                         float(reward), st, self.steps))

    def record_raw(self, topic: str, msgtype: str, cdr: bytes, stamp_ns: int) -> None:
        """Queue a raw CDR-serialized ROS message (e.g. ``rclpy.serialization``'s output).

        Never raises (it is called from ROS callback threads): a message arriving after
        :meth:`close`, or of a type the typestore does not know, is dropped and counted in
        ``dropped_raw`` (unknown types are logged once)."""
        if self._closed or msgtype not in T.TYPESTORE.types:
            self.dropped_raw += 1
            if not self._closed and msgtype not in self._unknown_types:
                self._unknown_types.add(msgtype)
                log.warning("%s: %s: unknown message type %r, not recorded", self.path, topic,
                            msgtype)
            return
        self._last_stamp = max(self._last_stamp, int(stamp_ns))
        self._queue.put(("raw", topic, msgtype, bytes(cdr), int(stamp_ns)))

    def record_sim_raw(self, observation: np.ndarray, target: np.ndarray, stamp_ns: int) -> None:
        """Queue the robot's raw topics, synthesized from a sim observation in the writer thread
        (:class:`fingergym.replay.topics.RawSynth`), so a sim bag looks like a robot bag."""
        self._check_open()
        self._queue.put(("sim_raw", _vector("observation", observation, self._n),
                         _vector("target", target, self._m), int(stamp_ns)))

    def close(self, *, end_reason: str, success: bool, episode_return: float,
              final_observation: np.ndarray | None = None,
              final_state: np.ndarray | None = None, extra: dict | None = None) -> None:
        """Write the outcome, finish the bag (footer, metadata.yaml). Idempotent.

        ``final_observation``/``final_state`` (optional): after the last step (state: sim only).
        ``extra``: more JSON-safe outcome fields (e.g. ``rejected`` state messages by reason).
        """
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        end = {**(extra or {}),
               "event": "end", "end_reason": str(end_reason), "success": bool(success),
               "episode_return": float(episode_return), "steps": self.steps,
               "duration": (self._last_stamp - self.start_ns) * 1e-9}
        if final_observation is not None:
            end["final_observation"] = _vector("final_observation", final_observation, self._n)
        if final_state is not None:
            end["final_state"] = _vector("final_state", final_state, self._n)
        stamp = self._last_stamp if self.clock == "sim" else max(time.time_ns(),
                                                                 self._last_stamp)
        end_json = to_json(end)
        self._queue.put(("msg", T.EPISODE, T.STRING, T.string_msg(end_json), stamp, True))
        self._queue.put(None)
        self._thread.join()
        try:
            summary = {**json.loads(self._start_json), **json.loads(end_json)}
            summary.pop("event")
            self._writer.set_custom_data("fingergym", to_json(summary))
            self._writer.close()
        except Exception as e:  # noqa: BLE001
            self._error = self._error or e
        if self._error is not None:
            raise RecorderError(f"{self.path}: recording failed: {self._error}") from self._error

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            try:
                self.close(end_reason="error", success=False, episode_return=self.episode_return)
            except RecorderError:
                log.exception("closing the bag after an error failed")
        else:
            self.close(end_reason="closed", success=False, episode_return=self.episode_return)

    def _check_open(self) -> None:
        if self._closed:
            raise RecorderError(f"{self.path}: recorder is closed")

    # ------------------------------------------------------------------ writer thread
    def _connection(self, topic: str, msgtype: str):
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=T.TYPESTORE)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"{topic}: recorded as {conn.msgtype}, now given {msgtype}")
        return conn

    def _write(self, topic: str, msgtype: str, data: bytes, stamp: int,
               step: int | None = None) -> None:
        """Write one message; its MCAP sequence number is ``step`` (1, 2, ...: step topics,
        so a reader pairs them by step) or the topic's own counter."""
        if step is None:
            step = self._sequence[topic] = self._sequence.get(topic, 0) + 1
        self._writer.write_seq(self._connection(topic, msgtype), stamp, data, step)

    def _handle(self, item: tuple) -> bool:
        """Write one queued item; returns whether to flush right away."""
        kind = item[0]
        if kind == "step":
            _, stamp, sim_time, wall_ns, obs, act, tgt, reward, state, k = item
            lab = self._labels
            for topic, msg in (
                    (T.OBSERVATION, T.array_msg(obs, lab[T.OBSERVATION])),
                    (T.ACTION, T.array_msg(act, lab[T.ACTION])),
                    (T.TARGET, T.array_msg(tgt, lab[T.TARGET])),
                    (T.REWARD, T.float_msg(reward)),
                    (T.TIME, T.array_msg([sim_time, wall_ns * 1e-9], lab[T.TIME])),
                    *([] if state is None else
                      [(T.STATE, T.array_msg(state, lab[T.STATE]))])):
                self._write(topic, T.STEP_TOPICS[topic], T.serialize(msg), stamp, step=k)
            return False
        if kind == "sim_raw":
            _, obs, tgt, stamp = item
            for topic, msgtype, data in self._synth.messages(obs, tgt, stamp):
                self._write(topic, msgtype, data, stamp)
            return False
        if kind == "raw":
            _, topic, msgtype, data, stamp = item
            # rclpy's serialize_message pads some messages (4 bytes after a JointState) that
            # strict readers (rosbags' deserialize_cdr) reject: write rosbags' own encoding.
            self._write(topic, msgtype, T.serialize(T.deserialize(data, msgtype)), stamp)
            return False
        _, topic, msgtype, msg, stamp, flush_now = item
        self._write(topic, msgtype, T.serialize(msg), stamp)
        return flush_now

    def _flush(self) -> None:
        """Close the pending MCAP chunk and push it to the OS: readable after a SIGKILL."""
        storage = self._writer.storage
        chunk = getattr(storage, "chunk", None)
        if chunk is not None and chunk.bio.tell():
            storage.close_chunk()
        bio = getattr(storage, "bio", None)
        if bio is not None:
            bio.flush()

    def _run(self) -> None:
        last_flush = time.monotonic()
        pending = False
        while True:
            timeout = max(0.0, self.flush_period - (time.monotonic() - last_flush))
            try:
                item = self._queue.get(timeout=timeout) if pending else self._queue.get()
            except queue.Empty:
                item = ()
            if item is None:
                return
            if self._error is None and item:
                try:
                    flush_now = self._handle(item)
                    pending = True
                    if flush_now:
                        self._flush()
                        pending, last_flush = False, time.monotonic()
                except Exception as e:  # noqa: BLE001 - reported by close()
                    self._error = e
                    log.error("%s: recording stopped: %s", self.path, e)
            if pending and time.monotonic() - last_flush >= self.flush_period:
                try:
                    self._flush()
                except Exception as e:  # noqa: BLE001
                    self._error = self._error or e
                pending, last_flush = False, time.monotonic()
