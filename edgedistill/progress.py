"""Progress bars for long steps (rich; plain lines when stderr is not a terminal), with one switch to silence them
in tests and quiet runs."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


VAL_ACCURACY, VAL_PERPLEXITY = "val {:.2f}%", "val perplexity {:.3f}"


class Bars:
    """`bars.task(label, total)` returns an update function `(advance, loss=None, val_acc=None)`; `val` formats
    the validation figure (default: an accuracy in percent; a causal LM shows its perplexity)."""

    def __init__(self, progress: Progress | None):
        self._p = progress

    def task(self, label: str, total: int, val: str = VAL_ACCURACY) -> Callable[..., None]:
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
                parts.append(val.format(state["val"]))
            self._p.update(tid, advance=advance, stats="  ".join(parts))

        return update

    def log(self, message: str) -> None:
        if self._p is not None:
            self._p.console.print(message)


class LineBars:
    """Progress for a stderr that is not a terminal (a CI log, a pipe), where rich draws its bars only once, at the
    end: a plain line when a step starts, at every further 10 % of it and when it ends, so a long run never looks
    hung. Same interface as Bars."""

    def __init__(self, stream=None):
        self._stream = stream

    def _say(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)

    def task(self, label: str, total: int, val: str = VAL_ACCURACY) -> Callable[..., None]:
        t0, state = time.monotonic(), {"done": 0, "next": 0.1, "loss": None, "val": None}
        self._say(f"{label}: started (0/{total:,})")

        def update(advance: int = 0, loss: float | None = None, val_acc: float | None = None) -> None:
            state["loss"] = loss if loss is not None else state["loss"]
            state["val"] = val_acc if val_acc is not None else state["val"]
            state["done"] += advance
            frac = state["done"] / total if total else 1.0
            if frac + 1e-9 < state["next"]:
                return
            state["next"] = math.floor(frac * 10 + 1e-9) / 10 + 0.1
            stats = "".join([f", loss {state['loss']:.3f}" if state["loss"] is not None else "",
                             ", " + val.format(state["val"]) if state["val"] is not None else ""])
            self._say(f"{label}: {min(state['done'], total):,}/{total:,} ({min(frac, 1.0):.0%}), "
                      f"{time.monotonic() - t0:.0f} s{stats}")

        return update

    def log(self, message: str) -> None:
        self._say(message)


def step_bar(ui, label: str, steps: int, batch_size: int, val: str = VAL_ACCURACY) -> Callable[..., None]:
    """A training bar that counts optimizer steps (0/N for `--steps N`) from a trainer's sample counts: each report
    of k samples (one batch, the last of an epoch or a rank's shard smaller; a resumed run's k = steps × batch) is
    ceil(k / batch_size) steps. Same update signature as `Bars.task`'s."""
    update = ui.task(label, steps, val)
    return lambda advance=0, loss=None, val_acc=None: update(-(-advance // batch_size), loss, val_acc)


@contextlib.contextmanager
def bars(enabled: bool = True) -> Iterator[Bars]:
    if not enabled:
        yield Bars(None)
        return
    if not console.is_terminal:
        yield LineBars()
        return
    columns = [TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}")]
    with Progress(*columns, console=console, transient=False) as p:
        yield Bars(p)
