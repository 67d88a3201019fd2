"""The one console: rich output on stderr, progress bars for long work, a switch for quiet runs."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet
    console.quiet = quiet


def log(*args, **kwargs) -> None:
    console.print(*args, **kwargs)


def log_error(text: str) -> None:
    """One line on stderr that --quiet does not silence (a refusal must always be seen)."""
    quiet, console.quiet = console.quiet, False
    try:
        console.print(text, soft_wrap=True, markup=False, highlight=False)
    finally:
        console.quiet = quiet


@contextlib.contextmanager
def progress(description: str, total: int, completed: int = 0):
    """``with progress("carving", n) as advance: ... advance(info="loss 0.1")`` — a bar with count,
    rate, ETA and an optional info text."""
    if _quiet or not sys.stderr.isatty() and total <= 1:
        yield lambda n=1, info=None, total=None: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"), console=console, transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total, completed=completed, rate="", info="")

        def advance(n: int = 1, info: str | None = None, total: int | None = None) -> None:
            if total is not None:  # a plan that changes while it runs (training to a time budget)
                bar.update(task, total=total)
            bar.advance(task, n)
            t = bar.tasks[0]
            if t.speed:
                bar.update(task, rate=f"{t.speed:.2f}/s")
            if info is not None:
                bar.update(task, info=info)

        yield advance


class HoldParseErrors:
    """sys.stderr during :func:`main`: while tyro is still parsing, whatever is written is tyro's
    refusal of the command line, held so `fourd.cli.main` prints it as one line; once a command runs,
    text passes straight through."""

    def __init__(self, real, parsed: list):
        self.real, self.held, self.parsed = real, [], parsed

    def write(self, text: str) -> int:
        if not self.parsed:  # still parsing: only tyro writes here, and only to refuse the command line
            self.held.append(text)
            return len(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return False  # plain text: the box is condensed, not shown

    def one_line(self) -> str:
        lines = (ln.strip(" │╭╮╰╯─━┃") for ln in plain_text("".join(self.held)).splitlines())
        text = " ".join(ln for ln in lines if ln and not ln.startswith("For full helptext"))
        return " ".join(text.split()) or "the command line was not understood"


def plain_text(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
