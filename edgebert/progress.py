"""Progress for long steps: rich spinners/bars on a terminal (stderr), plain lines otherwise.

Library code takes an optional ``Progress``; ``None`` means silent (tests, library use).
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from rich.console import Console


class Progress:
    """Minimal progress reporter: ``step`` for a timed phase, ``track`` for a counted loop."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        start = time.perf_counter()
        if self.console.is_terminal:
            with self.console.status(message):
                yield
        else:
            self.console.print(f"{message} ...", highlight=False)
            yield
        self.console.print(f"[green]✓[/] {message} ({time.perf_counter() - start:.1f}s)", highlight=False)

    def jobs(self, total: int, description: str) -> "JobLines":
        """A reporter for ``total`` jobs that finish in any order (``done(line)`` each, then ``close()``)."""
        return JobLines(self.console, total, description)

    def track(self, iterable, total: int, description: str):
        if not self.console.is_terminal:
            self.console.print(f"{description} ({total}) ...", highlight=False)
            yield from iterable
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TimeElapsedColumn

        with RichProgress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in iterable:
                yield item
                bar.advance(task)


class JobLines:
    """Finished jobs of a long phase: one plain line each without a terminal (a CI log shows every
    record as it lands); with a terminal, a rich bar with the same lines printed above it."""

    def __init__(self, console: Console, total: int, description: str):
        import threading

        self.console, self.lock = console, threading.Lock()
        self.bar = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TimeElapsedColumn

            self.bar = RichProgress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total)
        else:
            console.print(f"{description}: {total} to do", highlight=False)

    def grow(self, total: int) -> None:
        """More jobs joined (a build submits each model's as it is ready)."""
        with self.lock:
            if self.bar:
                self.bar.update(self.task, total=total)
            else:
                self.console.print(f"(now {total} to do)", highlight=False)

    def done(self, line: str) -> None:
        with self.lock:
            (self.bar.console if self.bar else self.console).print(line, highlight=False, markup=False,
                                                                   soft_wrap=True)
            if self.bar:
                self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


@contextlib.contextmanager
def maybe_step(progress: "Progress | None", message: str) -> Iterator[None]:
    if progress is None:
        yield
    else:
        with progress.step(message):
            yield


def maybe_track(progress: "Progress | None", iterable, total: int, description: str):
    return iterable if progress is None else progress.track(iterable, total, description)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
