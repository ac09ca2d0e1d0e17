"""Writing the index: one video's segments as it is delivered, its removal, and a whole folder rebuilt from the
transcripts it already holds (folders transcribed before the index existed, or an index that was lost).
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import layout
from .highlight import folded_words
from .schema import FTS, INFO, SEGMENTS, VIDEOS, reset

INDEX_COMMAND = "bulk-transcribe index"
"""How a rebuild names itself in OUT's lock file (so a run refused meanwhile says who holds the folder)."""


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


# ---- a whole folder ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reindexed:
    """What a rebuild did in one folder."""

    out_dir: Path
    videos: int = 0
    """Finished videos now in the index."""
    segments: int = 0
    missing: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(video_id, title) of finished videos with neither a stored transcript nor a readable JSON output."""


def rebuild(out_dir: Path | str) -> int:
    """Build OUT's index again from the transcripts it holds; returns how many videos are indexed.

    For folders transcribed before the index existed (or whose index was lost). See `reindex` for the details
    (and the errors it raises)."""
    return reindex(out_dir).videos


def reindex(out_dir: Path | str) -> Reindexed:
    """Replace OUT's whole index, in one transaction (a search meanwhile sees the old index, then the new one),
    with every finished video's segments: from its stored copy (`OUT/.transcripts/<id>.json.gz`), else its
    `json` output.

    Takes OUT like a run does (raises session_manager.FolderBusy while a run or another rebuild holds it): a live
    run indexes its own videos as they finish, and two writers would only do the work twice. Raises
    FileNotFoundError when OUT holds no store, OSError / sqlite3.Error when it cannot be written.
    """
    from ..models import VideoStatus
    from ..outputs.writers import load_transcript
    from ..session_manager import OwnerLock, SessionStore

    out_dir = Path(out_dir)
    db = layout.state_db(out_dir)
    if not db.is_file():
        raise FileNotFoundError(f"no batch in {out_dir} (missing {db.name})")
    lock = OwnerLock(out_dir, INDEX_COMMAND).acquire()
    try:
        with SessionStore(db) as store:
            done = [r for r in store.videos() if r.status is VideoStatus.DONE]
            conn = store_connection(store)
            videos = segments = 0
            missing = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                reset(conn)
                for record in done:
                    transcript = load_transcript(out_dir, record.video_id, record.outputs)
                    if transcript is None:
                        missing.append((record.video_id, record.title))
                        continue
                    segments += index_video(conn, record.video_id, record.run_id, transcript.segments,
                                            transcript.language)
                    videos += 1
                # Merge the index's b-trees into one: what a folder indexed in one go should look like to readers.
                conn.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('optimize')")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        lock.release()
    return Reindexed(out_dir, videos, segments, tuple(missing))


def store_connection(store: Any) -> sqlite3.Connection:
    """The store's own connection for this thread: the index tables live in its database and are read and
    written with its settings (busy timeout, WAL; read-only and immutable fallback for readers)."""
    return store._conn()
