"""The e-stop latch: engaged by ``true``, released only by an explicit ``false`` after that.

The e-stop topic (``std_msgs/Bool``) is subscribed twice by the bridge: with the configured QoS
(reliable, **transient_local**: a ``true`` a transient_local publisher sent before we started is
delivered on matching) and reliable/volatile (so a volatile publisher matches too; DDS does not
match a volatile writer with a transient_local reader). Both feed one :class:`EStopLatch`.

While engaged, the command sender keeps sending the last command it sent (no jump to the
measured position), the episode ends with ``end_reason = "estop: ..."``, and homing is refused.
A release only lets the *next* homing start; it never resumes an episode.
"""

from __future__ import annotations

import threading
import time


class EStopLatch:
    """Thread-safe latch of e-stop messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engaged = False
        self.engaged_at: float | None = None   # monotonic s of the last engage
        self.engagements = 0                   # since construction
        self.ignored_releases = 0              # ``false`` while not engaged

    def update(self, value: bool) -> None:
        with self._lock:
            if value:
                if not self._engaged:
                    self._engaged = True
                    self.engaged_at = time.monotonic()
                    self.engagements += 1
            elif self._engaged:
                self._engaged = False
            else:
                self.ignored_releases += 1

    @property
    def engaged(self) -> bool:
        with self._lock:
            return self._engaged
