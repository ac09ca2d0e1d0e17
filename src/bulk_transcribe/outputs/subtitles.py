"""Subtitle line shaping (WhisperX's --max_line_width / --max_line_count): cues players can show.

A segment's words are wrapped into lines of at most `max_width` characters (a word is never cut: one longer than
the width gets a line of its own), and lines are grouped into cues of at most `max_count` lines, each cue timed
from its own words: word timestamps when the transcript has them, otherwise times shared out by characters.
"""

from __future__ import annotations

from ..config import LineShape
from ..models import Transcript

Cue = tuple[float, float, str]


def _timed_words(seg) -> list[tuple[float, float, str]]:
    start = max(0.0, seg.start)
    end = max(start, seg.end)
    if seg.words:
        words = [(max(start, w.start), min(end, max(w.start, w.end)), w.word.strip()) for w in seg.words]
        words = [w for w in words if w[2]]
        if words:
            return words
    tokens = seg.text.split()
    total = sum(len(t) for t in tokens) or 1
    out, done = [], 0
    for token in tokens:
        t0 = start + (end - start) * done / total
        done += len(token)
        out.append((t0, start + (end - start) * done / total, token))
    return out


def _wrap(words: list[tuple[float, float, str]], width: int) -> list[list[tuple[float, float, str]]]:
    lines: list[list[tuple[float, float, str]]] = []
    current: list[tuple[float, float, str]] = []
    length = 0
    for word in words:
        extra = len(word[2]) + (1 if current else 0)
        if current and length + extra > width:
            lines.append(current)
            current, length = [], 0
            extra = len(word[2])
        current.append(word)
        length += extra
    if current:
        lines.append(current)
    return lines


def shape_cues(t: Transcript, shape: LineShape) -> list[Cue]:
    """Cues with lines joined by newlines; empty segments dropped; times never run backwards."""
    cues: list[Cue] = []
    for seg in t.segments:
        words = _timed_words(seg)
        if not words:
            continue
        lines = _wrap(words, shape.max_width) if shape.max_width else [words]
        per_cue = shape.max_count or len(lines)
        chunks = [lines[i:i + per_cue] for i in range(0, len(lines), per_cue)]
        for n, chunk in enumerate(chunks):
            first, last = chunk[0][0], chunk[-1][-1]
            start = max(0.0, seg.start) if n == 0 else first[0]
            end = max(seg.end, start) if n == len(chunks) - 1 else last[1]
            if cues:
                start = max(start, cues[-1][1]) if n else start
            text = "\n".join(" ".join(w[2] for w in line) for line in chunk)
            cues.append((start, max(start, end), text))
    return cues
