"""Honest episode outcomes on a robot: what counts as a success, what stops a run, exit codes.

An episode **succeeded** only if it ran to its time limit without a fault and the task's success
test held at the end. Any other end — the watchdog, invalid state, the e-stop, another commander,
an interrupt, a crash — is a **fault**, and its reason is kept. A run's :class:`RunSummary`
counts requested, run, succeeded and faulted episodes and says why it stopped early; its exit
code says which kind of stop it was:

====  ======================================================================================
0     every requested episode ran to its time limit (succeeded or not)
2     bad arguments, config or policy file (nothing ran)
3     the robot stopped answering: watchdog, homing timeout, no ROS peers, the virtual robot
      exited
4     invalid robot state (``fingergym.hardware.validity``) ended an episode
5     the e-stop is or was engaged
6     another node commands the robot (a rogue publisher, a second deploy)
130   interrupted (Ctrl-C, SIGTERM)
====  ======================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK, EXIT_ARGS, EXIT_ROBOT, EXIT_STATE, EXIT_ESTOP, EXIT_CONFLICT, EXIT_INTERRUPTED = (
    0, 2, 3, 4, 5, 6, 130)
CLEAN_ENDS = ("time_limit",)


def fault_code(end_reason: str) -> int:
    """The exit code of an episode end reason (0: not a fault)."""
    if end_reason in CLEAN_ENDS:
        return EXIT_OK
    for prefix, code in (("estop", EXIT_ESTOP), ("control conflict", EXIT_CONFLICT),
                         ("invalid state", EXIT_STATE), ("interrupted", EXIT_INTERRUPTED)):
        if end_reason.startswith(prefix):
            return code
    return EXIT_ROBOT  # watchdog, the robot process exited, simulator errors, ...


def episode_success(end_reason: str, task_success: bool) -> bool:
    """Success: the task's test held at the end of an episode that ran to its time limit."""
    return bool(task_success) and end_reason in CLEAN_ENDS


@dataclass
class RunSummary:
    """Counts of a deploy (or robot replay) run."""

    requested: int
    run: int = 0
    succeeded: int = 0
    faulted: int = 0
    stopped_early: str = ""          # why fewer than ``requested`` episodes ran
    exit_code: int = EXIT_OK
    end_reasons: list[str] = field(default_factory=list)

    def add(self, end_reason: str, success: bool, code: int | None = None) -> None:
        """One episode that started; ``code``: its fault's exit code if known (else from the
        end reason)."""
        self.run += 1
        self.end_reasons.append(end_reason)
        if success:
            self.succeeded += 1
        code = fault_code(end_reason) if code is None else code
        if code:
            self.faulted += 1
            self.exit_code = self.exit_code or code

    def stop(self, reason: str, code: int) -> None:
        """The run stops now (before ``requested`` episodes ran, or with a fault)."""
        self.stopped_early = self.stopped_early or reason
        self.exit_code = self.exit_code or code

    def line(self) -> str:
        text = (f"{self.succeeded}/{self.run} episodes succeeded ({self.requested} requested, "
                f"{self.run} run, {self.faulted} faulted)")
        if self.stopped_early:
            text += f"; stopped early: {self.stopped_early}"
        return text

    def as_dict(self) -> dict:
        return {"requested": self.requested, "run": self.run, "succeeded": self.succeeded,
                "faulted": self.faulted, "stopped_early": self.stopped_early or None,
                "exit_code": self.exit_code,
                # the names of earlier releases
                "episodes": self.run, "successes": self.succeeded,
                "success_rate": self.succeeded / self.run if self.run else 0.0}
