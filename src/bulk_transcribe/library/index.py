"""Writing the index: one video's segments as it is delivered, and its removal. Plain SQL on the store's own
connection: the store calls this as a transcript is delivered (rebuild.py redoes a whole folder).
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from typing import Any, Iterable

from .highlight import folded_words
from .schema import INFO, SEGMENTS, VIDEOS

def clean_text(text: str) -> str:
    """A segment's text as indexed: control characters gone (a terminal or a page never receives an escape
    sequence from a transcript), whitespace runs one space."""
    return " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in str(text)).split())


def normal_language(language: str | None) -> str:
    return (language or "").strip().lower()


def index_video(conn: sqlite3.Connection, video_id: str, run_id: str, segments: Iterable[Any],
                language: str | None) -> int:
    """Make one video's transcript searchable, replacing whatever was indexed for it before; returns how many
    segments were indexed (empty ones are skipped).

    `segments`: models.Segment objects or the dicts of a transcript's JSON (start, end, text). Runs in a savepoint
    (joins the caller's transaction, or is one of its own), so a video is indexed whole or not at all, and its
    segments get consecutive ids after every existing one.
    """
    lang = normal_language(language)
    lang_words = len(folded_words(lang))
    conn.execute("SAVEPOINT library_index")
    try:
        _delete(conn, video_id)
        top = conn.execute(f"SELECT max(seg_id) FROM {SEGMENTS}").fetchone()[0] or 0
        rows = []
        for seg in segments:
            start, end, text = _fields(seg)
            text = clean_text(text)
            if text:
                # Words in the row as FTS5 counts them (both columns): bm25's segment length (rank.py).
                tokens = len(folded_words(text)) + lang_words
                rows.append((top + 1 + len(rows), video_id, run_id, lang, start, max(start, end), text, tokens))
        conn.executemany(f"INSERT INTO {SEGMENTS} (seg_id, video_id, run_id, language, start_s, end_s, text, tokens) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        tokens = sum(r[-1] for r in rows)
        conn.execute(
            f"INSERT INTO {VIDEOS} (video_id, run_id, language, segments, tokens, first_seg, last_seg, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (video_id, run_id, lang, len(rows), tokens, rows[0][0] if rows else None, rows[-1][0] if rows else None,
             time.time()),
        )
        _add_totals(conn, len(rows), tokens)
    except BaseException:
        conn.execute("ROLLBACK TO library_index")
        conn.execute("RELEASE library_index")
        raise
    conn.execute("RELEASE library_index")
    return len(rows)


def remove_video(conn: sqlite3.Connection, video_id: str) -> int:
    """Take a video out of the index (its segments and its row); returns how many segments went."""
    conn.execute("SAVEPOINT library_remove")
    try:
        removed = _delete(conn, video_id)
    except BaseException:
        conn.execute("ROLLBACK TO library_remove")
        conn.execute("RELEASE library_remove")
        raise
    conn.execute("RELEASE library_remove")
    return removed


def _delete(conn: sqlite3.Connection, video_id: str) -> int:
    # The trigger on library_segments takes each row out of the FTS index as well.
    had = conn.execute(f"SELECT segments, tokens FROM {VIDEOS} WHERE video_id = ?", (video_id,)).fetchone()
    removed = conn.execute(f"DELETE FROM {SEGMENTS} WHERE video_id = ?", (video_id,)).rowcount
    conn.execute(f"DELETE FROM {VIDEOS} WHERE video_id = ?", (video_id,))
    if had:
        _add_totals(conn, -had[0], -had[1])
    return max(0, removed)


def _add_totals(conn: sqlite3.Connection, segments: int, tokens: int) -> None:
    conn.execute(f"UPDATE {INFO} SET value = value + ? WHERE key = 'segments'", (segments,))
    conn.execute(f"UPDATE {INFO} SET value = value + ? WHERE key = 'tokens'", (tokens,))


def _fields(seg: Any) -> tuple[float, float, str]:
    if isinstance(seg, dict):
        return float(seg.get("start") or 0.0), float(seg.get("end") or 0.0), str(seg.get("text") or "")
    return float(seg.start or 0.0), float(seg.end or 0.0), str(seg.text or "")
