"""A training run's phases: one live progress display, and clean stops on Ctrl-C or SIGTERM.

:class:`RunControl` shows every phase (starting the env workers, the warm start, evaluations,
PPO) as a progress bar from its first second, and turns the first SIGINT or SIGTERM (Ctrl-C,
``timeout``, Slurm, ``docker stop``) into a request to stop: the phase stops at its next safe
point — a finished vectorized env step (:class:`StepTicker`) or a finished evaluation episode —
by raising :class:`Stopped`, so no env-worker pipe is left half-read and the trainer can save
what exists and close the workers. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

Tick = Callable[[int], None]  # advance the current phase by n units


class Stopped(KeyboardInterrupt):
    """Raised at a safe point after SIGINT/SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunControl:
    """Context manager: installs the signal handlers (main thread only) and the display."""

    def __init__(self, progress: bool = True, log: Callable[[str], None] = print):
        self.signum: int | None = None
        self._log = log
        self._progress = None
        if progress and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True),
                refresh_per_second=4)
        self._tasks: list = []
        self._previous: dict[int, object] = {}

    # ------------------------------------------------------------------ context
    def __enter__(self) -> RunControl:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self.signum is not None:  # `timeout` signals the process and then its group
            return
        self.signum = signum
        self.log(f"{signal.Signals(signum).name}: stopping at the next env step, then saving "
                 f"(Ctrl-C again to abort without saving)")
        # A second Ctrl-C interrupts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # ------------------------------------------------------------------ API
    @property
    def stop_requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise :class:`Stopped` if a stop was requested (call at safe points only)."""
        if self.signum is not None:
            raise Stopped(self.signum)

    def log(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self._log(text)

    @contextlib.contextmanager
    def phase(self, description: str, total: int | None = None,
              unit: str = "steps") -> Iterator[Tick]:
        """A phase of the run: a bar (``total`` units) or a spinner (``None``) shown at once;
        yields ``tick(n)``, which advances it and stops the run at this safe point if asked."""
        if self._progress is None:
            self._log(f"{description}" + (f" ({total} {unit})" if total else ""))
            task = None
        else:
            task = self._progress.add_task(description, total=total, unit=unit)
            self._tasks.append(task)

        def tick(n: int = 1) -> None:
            if task is not None:
                self._progress.advance(task, n)
            self.check()

        try:
            self.check()
            yield tick
        finally:
            if task is not None:
                self._tasks.remove(task)
                self._progress.remove_task(task)

    def tick(self, n: int = 1) -> None:
        """Advance the innermost phase by ``n`` (from code that does not hold its ``tick``)."""
        if self._progress is not None and self._tasks:
            self._progress.advance(self._tasks[-1], n)
        self.check()


class StepTicker(VecEnvWrapper):
    """Ticks the current phase by ``num_envs`` per vectorized step and stops the run, if asked,
    only after a step has completed (every worker answered: the pipes are clean)."""

    def __init__(self, venv: VecEnv, control: RunControl):
        super().__init__(venv)
        self.control = control

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        result = self.venv.step_wait()
        self.control.tick(self.num_envs)
        return result
