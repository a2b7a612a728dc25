"""Helpers for multi-process ROS 2 tests and benchmarks: isolated domains, owned processes.

Every test picks its own ``ROS_DOMAIN_ID`` (from its name and the pid) and keeps traffic on
loopback; every process it starts runs in its own process group and is killed on the way out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence

# Domains 10..98 by default; the DDS port range allows up to 232. Runs that share a machine
# (parallel CI jobs, several developers) give each its own range: FINGERGYM_ROS_DOMAINS=LO:HI.
_DEFAULT_DOMAINS = (10, 99)


def _domain_range() -> tuple[int, int]:
    spec = os.environ.get("FINGERGYM_ROS_DOMAINS", "")
    if not spec:
        return _DEFAULT_DOMAINS
    try:
        lo, hi = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ValueError(f"FINGERGYM_ROS_DOMAINS must be LO:HI (integers), got {spec!r}") from None
    if not 1 <= lo < hi <= 233:
        raise ValueError(f"FINGERGYM_ROS_DOMAINS must satisfy 1 <= LO < HI <= 233, got {spec!r}")
    return lo, hi


def unique_domain_id(name: str) -> int:
    """A ROS domain in ``[LO, HI)`` (default [10, 99)), derived from ``name`` and this pid."""
    lo, hi = _domain_range()
    return lo + zlib.crc32(f"{name}:{os.getpid()}".encode()) % (hi - lo)


def ros_env(domain_id: int) -> dict[str, str]:
    """os.environ for a child process on ``domain_id``, loopback only."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Processes:
    """Start processes in their own groups; :meth:`close` kills whatever is left."""

    def __init__(self, domain_id: int):
        self.domain_id = domain_id
        self.procs: list[subprocess.Popen] = []

    def start(self, args: Sequence[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("env", ros_env(self.domain_id))
        proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def python(self, module: str, *args: str, **kwargs) -> subprocess.Popen:
        return self.start([sys.executable, "-m", module, *args], **kwargs)

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for proc in self.procs:
            self.kill(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(proc)
                proc.wait()
        for proc in self.procs:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LineReader:
    """Collect a process's text stream in a thread; wait for a line containing some text."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no line with {text!r} in {timeout} s; got:\n"
                                       + "\n".join(self.lines[-30:]))
                self._cond.wait(remaining)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
