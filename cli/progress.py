"""RunProgress: ``gridhpo run``'s progress on stderr, a bar on a terminal and whole lines elsewhere."""
from __future__ import annotations

import sys
import time
from typing import Any

import click


class RunProgress:
    """``gridhpo run``'s progress on stderr: a bar on a terminal; elsewhere (a batch log, a
    pipe) a whole line now and then, never a bar's partial line."""

    EVERY = 5.0  # seconds between lines without a terminal

    def __init__(self, name: str, max_points: int, tty: bool) -> None:
        self.name, self.max_points, self.tty = name, max_points, tty
        self.ended = 0
        self.last_line: float | None = None
        self.bar: Any = None
        if tty:
            self.bar = click.progressbar(length=max_points, label="points", file=sys.stderr, show_pos=True,
                                         item_show_func=lambda s: s)
            self.bar.__enter__()

    def update(self, p: dict[str, Any]) -> None:
        ended = p["finished"] + p["failed"]
        best = p["best_value"]
        if self.bar is not None:
            if ended > self.ended:
                self.bar.update(ended - self.ended, None if best is None else f"best {best:.6g}")
        elif ended > self.ended and (self.last_line is None or time.monotonic() - self.last_line >= self.EVERY):
            self.last_line = time.monotonic()
            click.echo(f"task {self.name!r}: {p['finished']}/{self.max_points} finished, {p['failed']} failed, "
                       f"{p['running']} running" + ("" if best is None else f", best {best:.6g}"), err=True)
        self.ended = max(self.ended, ended)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
