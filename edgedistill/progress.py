"""Progress bars for long steps (rich), with one switch to silence them in tests and non-interactive runs."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class Bars:
    """`bars.task(label, total)` returns an update function `(advance, loss=None, val_acc=None)`."""

    def __init__(self, progress: Progress | None):
        self._p = progress

    def task(self, label: str, total: int) -> Callable[..., None]:
        if self._p is None:
            return lambda advance=0, loss=None, val_acc=None: None
        tid = self._p.add_task(label, total=total, stats="")
        state = {"loss": None, "val": None}

        def update(advance: int = 0, loss: float | None = None, val_acc: float | None = None) -> None:
            state["loss"] = loss if loss is not None else state["loss"]
            state["val"] = val_acc if val_acc is not None else state["val"]
            parts = []
            if state["loss"] is not None:
                parts.append(f"loss {state['loss']:.3f}")
            if state["val"] is not None:
                parts.append(f"val {state['val']:.2f}%")
            self._p.update(tid, advance=advance, stats="  ".join(parts))

        return update

    def log(self, message: str) -> None:
        if self._p is not None:
            self._p.console.print(message)


@contextlib.contextmanager
def bars(enabled: bool = True) -> Iterator[Bars]:
    if not enabled:
        yield Bars(None)
        return
    columns = [TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}")]
    with Progress(*columns, console=console, transient=False) as p:
        yield Bars(p)
