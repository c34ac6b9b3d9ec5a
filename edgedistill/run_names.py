"""Default output folders: `distill`'s runs/distill-DATA[-TEACHERS][-int8] and `build`'s runs/build-TARGET[-DATA],
so the README's commands, run one after the other, each write their own folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgedistill.config import DistillConfig


def source_slug(source: str) -> str:
    """'builtin:fashion-mnist' -> 'fashion-mnist', 'data/my.npz' -> 'my', 'images/' -> 'images'."""
    if source.startswith("builtin:"):
        return source.split(":", 1)[1]
    p = Path(source.rstrip("/\\") or ".").expanduser()
    name = (p.stem if p.suffix else p.name) or p.resolve().name or "data"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def default_out(config: "DistillConfig") -> str:
    """runs/distill-DATA, plus -TEACHER[-TEACHER] when the teachers are not the data's own built-in one, plus -int8
    with QAT: so the README's commands, run one after the other, each write their own directory."""
    parts = [source_slug(config.data.source)]
    teachers = [t.path for t in config.teachers]
    if teachers != [config.data.source] or not config.data.source.startswith("builtin:"):
        parts += [source_slug(t) for t in teachers]
    if config.quant.qat:
        parts.append("int8")
    return "runs/distill-" + "-".join(parts)


def build_out(target: str, data: str | None) -> str:
    """build's default directory: runs/build-TARGET for the built-in example, runs/build-TARGET-DATA with --data
    ('builtin:langid' -> langid, 'data/my.npz' -> my), so a build of other data never replaces an earlier one."""
    return f"runs/build-{target}" + (f"-{source_slug(data)}" if data else "")
