"""A WordPiece vocabulary learned deterministically, for tools/train_text_teacher.py.

tokenizers' own WordPieceTrainer gives a different vocabulary from run to run on the same words (ids of
continuing-subword tokens follow hash-map iteration order and break ties between equally frequent merges:
huggingface/tokenizers #1794, fix proposed in #2066), so a committed teacher could not be reproduced. This learner
runs the same algorithm that trainer runs, BPE merges by pair frequency (Sennrich et al. 2016, "Neural Machine
Translation of Rare Words with Subword Units"), with ties broken by the pair's strings; the resulting vocabulary
is read by the `tokenizers` library's WordPiece model (greedy longest-match-first, `##` marks a continuation).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

PREFIX = "##"


def learn_vocab(words: Iterable[str], vocab_size: int, specials: list[str], min_frequency: int = 2) -> dict[str, int]:
    """token -> id: the specials, every character seen (alone and as a `##` continuation, so no word of known
    characters becomes [UNK]), then merged pieces in merge order until `vocab_size` tokens or no pair occurs
    `min_frequency` times. `words` are pre-tokenized words (normalized, no spaces)."""
    counts = Counter(words)
    types = sorted(counts)
    freq = [counts[w] for w in types]
    seqs = [[w[0], *(PREFIX + c for c in w[1:])] for w in types if w]
    chars = sorted({c for w in types for c in w})
    vocab = list(dict.fromkeys([*specials, *chars, *(PREFIX + c for c in chars)]))
    known = set(vocab)
    pairs: Counter = Counter()
    where: defaultdict = defaultdict(set)
    for i, seq in enumerate(seqs):
        for p in zip(seq, seq[1:]):
            pairs[p] += freq[i]
            where[p].add(i)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -neg:
            continue  # stale entry: the pair's count changed after it was pushed
        if -neg < min_frequency:
            break
        merged = best[0] + best[1][len(PREFIX):]
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed = set()
        for i in sorted(where.pop(best)):
            changed |= _merge_word(seqs, i, freq[i], best, merged, pairs, where)
        pairs.pop(best, None)
        for p in sorted(changed - {best}):
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
    return {t: i for i, t in enumerate(vocab)}


def _merge_word(seqs, i, f, best, merged, pairs, where) -> set:
    """Merge every occurrence of `best` in word i (left to right) and update the pair counts; returns the pairs
    whose counts changed."""
    seq = seqs[i]
    old = list(zip(seq, seq[1:]))
    out, j = [], 0
    while j < len(seq):
        if j + 1 < len(seq) and (seq[j], seq[j + 1]) == best:
            out.append(merged)
            j += 2
        else:
            out.append(seq[j])
            j += 1
    seqs[i] = out
    new = list(zip(out, out[1:]))
    for p in old:
        pairs[p] -= f
        if pairs[p] <= 0:
            del pairs[p]
    for p in new:
        pairs[p] += f
    for p in set(old) - set(new):
        where[p].discard(i)
    for p in new:
        where[p].add(i)
    return set(old) | set(new)
