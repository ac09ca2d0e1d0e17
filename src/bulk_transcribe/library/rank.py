"""bm25, as FTS5 defines it, computed over the candidates a search gathered.

FTS5's own bm25() first counts, for every query, how many rows of the whole index hold each phrase: a walk over
the phrase's entire list of rows before the first hit can be scored (~35 ms for "the" at 1,000 hours of audio,
~60 ms for "of the"). Here FTS5 only finds the matches (newest first, which it does cheaply), and the score is the
same formula over them: each phrase's count in the segment, the segment's length against the average, and the
phrase's rarity (lookup.py counts how many segments hold it, up to a bound, and estimates beyond it: a phrase in
that many segments weighs next to nothing either way, as FTS5's own floor of 1e-6 has it).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .highlight import Phrase, count, folded

K1 = 1.2
B = 0.75
"""FTS5's bm25 parameters (fts5_aux.c)."""

IDF_FLOOR = 1e-6
"""What FTS5 gives a phrase held by more than half the rows (its log would be negative)."""


def idf(rows: int, holding: float) -> float:
    """A phrase's weight: rarer is heavier."""
    value = math.log((rows - holding + 0.5) / (holding + 0.5)) if rows else 0.0
    return value if value > 0 else IDF_FLOOR


def bm25(counts: Sequence[int], weights: Sequence[float], length: int, average: float) -> float:
    """The segment's score (higher is better; FTS5's bm25() is this, negated): `counts` of each phrase in it,
    `weights` their idf, `length` its words, `average` the index's words per segment."""
    norm = K1 * (1 - B + B * length / average) if average else K1
    return sum(w * c * (K1 + 1) / (c + norm) for c, w in zip(counts, weights) if c)


def scores(rows: Iterable[tuple[int, str, int]], wanted: Sequence[Phrase], weights: Sequence[float],
           average: float) -> list[tuple[float, int]]:
    """(score, seg_id) for each candidate (seg_id, text, length in words): `bm25`, unrolled for the usual query of
    one word or phrase (thousands of candidates per search: a function call per candidate would double the cost)."""
    scale, per = K1 * (1 - B), (K1 * B / average if average else 0.0)
    k = K1 + 1
    out: list[tuple[float, int]] = []
    append = out.append
    if len(wanted) == 1:
        phrase, weight = wanted[0], weights[0]
        for seg_id, text, length in rows:
            c = count(folded(text), phrase)
            append((weight * c * k / (c + scale + per * length) if c else 0.0, seg_id))
        return out
    for seg_id, text, length in rows:
        plain = folded(text)
        total = 0.0
        for phrase, weight in zip(wanted, weights):
            c = count(plain, phrase)
            if c:
                total += weight * c * k / (c + scale + per * length)
        append((total, seg_id))
    return out
