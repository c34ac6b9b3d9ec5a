"""Tensor-arena planning as TFLite Micro does it, for a graph given as tensors with lifetimes.

`greedy_arena` reproduces TFLite Micro's GreedyMemoryPlanner (tensorflow/lite/micro/memory_planner/
greedy_memory_planner.cc): buffers sorted by size, largest first (a stable bubble sort over the buffers listed
last tensor first, so equal sizes are placed in reverse tensor order); the first at offset 0; each next one at the
lowest offset where it overlaps no already placed buffer that is alive at the same time (lifetimes are inclusive
op-index ranges); the arena is the highest end. Sizes are
rounded up to 16 bytes, as MicroAllocator aligns every buffer. `live_peak` is the largest sum of tensors alive at one
op: a lower bound no planner can beat, which the greedy planner exceeds when lifetimes interleave (residual DAGs).
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 16


@dataclass(frozen=True)
class Buffer:
    """One planned tensor: `size` bytes, alive from op `first` to op `last` (both inclusive)."""

    size: int
    first: int
    last: int

    def overlaps(self, other: "Buffer") -> bool:
        return not (other.first > self.last or self.first > other.last)


def aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def greedy_arena(buffers: list[Buffer]) -> int:
    """Bytes of the activation arena TFLite Micro's greedy planner needs for `buffers` (in tensor order)."""
    # The planner fills its sort array from the tail (last tensor first), then sorts stably by size: equal sizes
    # are placed last tensor first.
    order = sorted(reversed(range(len(buffers))), key=lambda i: -aligned(buffers[i].size))
    placed: list[tuple[int, int]] = []  # (offset, buffer index), kept sorted by offset
    for i in order:
        want, b = aligned(buffers[i].size), buffers[i]
        offset = 0
        for off, j in placed:
            if not b.overlaps(buffers[j]):
                continue
            if off - offset >= want:
                break
            offset = max(offset, off + aligned(buffers[j].size))
        placed.append((offset, i))
        placed.sort(key=lambda t: t[0])
    return max((off + aligned(buffers[i].size) for off, i in placed), default=0)


def live_peak(buffers: list[Buffer]) -> int:
    """Largest sum of aligned sizes alive at one op (a lower bound for any planner)."""
    if not buffers:
        return 0
    last = max(b.last for b in buffers)
    return max(sum(aligned(b.size) for b in buffers if b.first <= k <= b.last) for k in range(last + 1))
