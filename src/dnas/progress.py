"""One progress display for long loops (epochs, steps, trials); silent in quiet mode.

Uses rich when the output is a terminal or progress is asked for; otherwise prints nothing, so
scripts and CI logs stay clean.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


class _Silent:
    def add(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, n: int = 1, **fields) -> None:
        pass

    def update(self, task: int, **kwargs) -> None:
        pass

    def reset(self, task: int, total: int | None = None, description: str | None = None) -> None:
        pass

    def log(self, message: str) -> None:
        pass


class _Rich(_Silent):
    def __init__(self, progress) -> None:
        self.p = progress

    def add(self, description: str, total: int | None = None) -> int:
        return self.p.add_task(description, total=total)

    def advance(self, task: int, n: int = 1, **fields) -> None:
        self.p.update(task, advance=n, **fields)

    def update(self, task: int, **kwargs) -> None:
        self.p.update(task, **kwargs)

    def reset(self, task: int, total: int | None = None, description: str | None = None) -> None:
        kw = {"total": total}
        if description is not None:
            kw["description"] = description
        self.p.reset(task, **kw)

    def log(self, message: str) -> None:
        self.p.console.print(message)


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator[_Silent]:
    if not enabled:
        yield _Silent()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        transient=False,
    ) as p:
        # every task carries an `info` field shown at the right
        orig = p.add_task
        p.add_task = lambda *a, **k: orig(*a, info=k.pop("info", ""), **k)  # type: ignore[method-assign]
        yield _Rich(p)
