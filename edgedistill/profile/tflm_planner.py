"""TFLite Micro's greedy memory planner, re-enacted: where each activation tensor goes in the arena, and the arena
size it needs.

TFLite Micro (tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc) plans every non-constant tensor as a
buffer with a size (the tensor's bytes rounded up to 16, MicroArenaBufferAlignment) and a lifetime in operator
steps: [first step that writes it, last step that reads it]; subgraph inputs live from step 0 and subgraph outputs
to the last step (micro_allocation_info.cc). The planner then

1. orders the buffers by size, largest first; it lists them from the last added to the first before a stable
   bubble sort, so equal sizes go in reverse tensor-index order;
2. places the first at offset 0, and each next one at the lowest offset, scanning the already placed buffers in
   offset order, where the gap before the next *simultaneously live* buffer is large enough (or after the last);
3. needs max(offset + size) bytes.

A lower bound (the largest sum of live tensors at one step) is what a perfect planner would need; the greedy
planner needs more when lifetimes interleave (reported for the MLPerf Tiny VWW reference model: 73,728 B
planned against a 55,296 B bound). tests/profile/test_tflm_planner.py checks this module against TFLite Micro's own recording allocator.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 16


@dataclass(frozen=True)
class Buffer:
    """One planned tensor: aligned size in bytes, first and last operator step it is live (inclusive)."""

    size: int
    first: int
    last: int


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _overlaps(a: Buffer, b: Buffer) -> bool:
    return not (a.first > b.last or b.first > a.last)


def greedy_offsets(buffers: list[Buffer]) -> list[int]:
    """Each buffer's arena offset as TFLite Micro's GreedyMemoryPlanner assigns it (buffers in the order added)."""
    if not buffers:
        return []
    # the planner fills its sort array from the tail (last added first), then sorts stably by size, descending
    order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i].size)
    offsets = [0] * len(buffers)
    placed: list[int] = [order[0]]  # buffer ids sorted by offset (insertion after equal offsets)
    for bid in order[1:]:
        want = buffers[bid]
        candidate = 0
        live = [p for p in placed if _overlaps(buffers[p], want)]
        for p in live:  # in offset order: the first gap before a live buffer that is large enough
            if offsets[p] - candidate >= want.size:
                break
            candidate = max(candidate, offsets[p] + buffers[p].size)
        offsets[bid] = candidate
        pos = next((k for k, p in enumerate(placed) if offsets[p] > candidate), len(placed))
        placed.insert(pos, bid)
    return offsets


def greedy_arena_bytes(buffers: list[Buffer]) -> int:
    """The arena bytes TFLite Micro's greedy planner needs for `buffers` (0 for none)."""
    offsets = greedy_offsets(buffers)
    return max((o + b.size for o, b in zip(offsets, buffers)), default=0)


def lower_bound_bytes(buffers: list[Buffer], steps: int) -> int:
    """The largest sum of live buffer sizes at one step: what any planner needs at least."""
    return max((sum(b.size for b in buffers if b.first <= k <= b.last) for k in range(max(steps, 1))), default=0)
