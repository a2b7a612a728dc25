"""The one pacing utility for every real-time loop (station, homing, virtual robot, bench).

:class:`Pacer` sleeps to absolute deadlines on the monotonic clock (no drift), and reports
overruns instead of hiding them: a tick that starts more than one period late counts as an
overrun and re-anchors the schedule (no burst of catch-up ticks).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

# Sleep until this close to the deadline, then spin: time.sleep() overshoots by 50-100 us.
_SPIN = 0.0002


def use_realtime_priority(priority: int) -> str:
    """Run the calling thread under SCHED_FIFO at ``priority`` (1-99; 0: leave it alone).

    Threads it starts afterwards do not inherit it (SCHED_RESET_ON_FORK). Also shortens the
    GIL switch interval, so a busy helper thread delays this one by at most ~0.5 ms. Returns
    what happened; never raises (without permission it says how to grant it).
    """
    if priority <= 0:
        return "realtime priority: off"
    sys.setswitchinterval(0.0005)
    policy = getattr(os, "SCHED_FIFO", None)
    if policy is None:
        return "realtime priority: not available on this OS"
    try:
        os.sched_setscheduler(0, policy | getattr(os, "SCHED_RESET_ON_FORK", 0),
                              os.sched_param(priority))
    except (PermissionError, OSError) as e:
        return (f"realtime priority {priority}: not permitted ({e.strerror or e}); allow it "
                f"with `ulimit -r {priority}` / rtprio in /etc/security/limits.conf")
    return f"realtime priority: SCHED_FIFO {priority}"


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic() >= deadline`` (s); coarse sleep then a short spin."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if remaining > _SPIN:
            time.sleep(remaining - _SPIN)
        # else: spin (yields the GIL through time.monotonic's call boundary)


@dataclass
class PacingStats:
    ticks: int
    overruns: int
    period: float
    late_p50: float  # s a tick started after its deadline
    late_p99: float
    late_max: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class Pacer:
    """Fixed-rate schedule on ``time.monotonic()``.

    >>> pacer = Pacer(0.01)
    >>> while running:
    ...     pacer.wait()      # returns how late this tick started [s]
    ...     do_work()
    """

    def __init__(self, period: float, keep: int = 100_000):
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = float(period)
        self._keep = keep
        self.start()

    def start(self, now: float | None = None) -> None:
        """(Re)anchor: the next :meth:`wait` returns at once, then every ``period``."""
        self._next = time.monotonic() if now is None else now
        self.overruns = 0
        self._late: list[float] = []

    def wait_until(self, deadline: float) -> float:
        """Sleep to an absolute deadline (s, monotonic); return how late we are (>= 0)."""
        sleep_until(deadline)
        late = time.monotonic() - deadline
        if len(self._late) < self._keep:
            self._late.append(late)
        if late > self.period:
            self.overruns += 1
        return late

    def wait(self) -> float:
        """Sleep to the next tick; return how late it started [s]."""
        late = self.wait_until(self._next)
        if late > self.period:  # re-anchor rather than firing a burst of late ticks
            self._next = time.monotonic()
        self._next += self.period
        return late

    def stats(self) -> PacingStats:
        late = np.asarray(self._late) if self._late else np.zeros(1)
        return PacingStats(len(self._late), self.overruns, self.period,
                           float(np.percentile(late, 50)), float(np.percentile(late, 99)),
                           float(late.max()))
