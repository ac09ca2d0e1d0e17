"""The search index's tables, kept in OUT's own session store so the index lives and dies with its folder.

One row per transcript segment in `library_segments` (its text, times, video, run, language and length in words),
an FTS5 index over it (`library_fts`, external content: the text is stored once), one row per indexed video in
`library_videos` (the run and language it was indexed with, the span of segment ids it holds), and running totals
in `library_info` (segments and words: bm25's row count and average row length).

These tables are no part of the store's numbered migrations: `ensure_schema` creates them when missing, so the
store can call it whenever it opens (a folder made before the index gets empty tables, filled by
`bulk-transcribe index OUT`). Their own layout has a version: a store holding an older layout has it dropped and
made again (the index is rebuilt from the stored transcripts, never the only copy of anything).
"""

from __future__ import annotations

import sqlite3

LAYOUT_VERSION = 1
"""Bump when the tables below change shape: ensure_schema then drops the old index (`index` rebuilds it)."""

SEGMENTS = "library_segments"
VIDEOS = "library_videos"
FTS = "library_fts"
INFO = "library_info"

TOKENIZER = "unicode61 remove_diacritics 2"
"""Words are Unicode letters and digits, case-folded, accents ignored ("cafe" finds "café")."""

PREFIXES = "2 3"
"""Prefix indexes for 2- and 3-character prefixes: `ab*` reads one list of rows instead of merging those of every
word that starts with it. They make the index a quarter larger (benchmarks/README.md, library)."""

_TABLES = f"""
CREATE TABLE IF NOT EXISTS {INFO} (
    key TEXT PRIMARY KEY,
    value NOT NULL
);
-- seg_id is the FTS rowid. Each video's segments are written in one transaction, so they hold consecutive ids,
-- and ids grow with time: a video's (and mostly a run's) segments lie in one span of ids, which FTS5 seeks to.
CREATE TABLE IF NOT EXISTS {SEGMENTS} (
    seg_id INTEGER PRIMARY KEY,
    video_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    language TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {SEGMENTS}_video ON {SEGMENTS}(video_id);
CREATE TABLE IF NOT EXISTS {VIDEOS} (
    video_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    language TEXT NOT NULL,
    segments INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    first_seg INTEGER,
    last_seg INTEGER,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {VIDEOS}_run ON {VIDEOS}(run_id, first_seg, last_seg);
CREATE INDEX IF NOT EXISTS {VIDEOS}_language ON {VIDEOS}(language, segments);
-- The language is a column of its own so a language filter is part of the match: FTS5 intersects it with the
-- words, instead of every match being looked up and checked.
CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(
    text, language, content='{SEGMENTS}', content_rowid='seg_id', tokenize='{TOKENIZER}', prefix='{PREFIXES}'
);
CREATE TRIGGER IF NOT EXISTS {SEGMENTS}_ai AFTER INSERT ON {SEGMENTS} BEGIN
    INSERT INTO {FTS}(rowid, text, language) VALUES (new.seg_id, new.text, new.language);
END;
CREATE TRIGGER IF NOT EXISTS {SEGMENTS}_ad AFTER DELETE ON {SEGMENTS} BEGIN
    INSERT INTO {FTS}({FTS}, rowid, text, language) VALUES ('delete', old.seg_id, old.text, old.language);
END;
"""

_DROP = f"""
DROP TRIGGER IF EXISTS {SEGMENTS}_ai;
DROP TRIGGER IF EXISTS {SEGMENTS}_ad;
DROP TABLE IF EXISTS {FTS};
DROP TABLE IF EXISTS {VIDEOS};
DROP TABLE IF EXISTS {SEGMENTS};
DROP TABLE IF EXISTS {INFO};
"""


def has_index(conn: sqlite3.Connection) -> bool:
    """True when the store holds the index, in this layout (a folder made before it, read-only, does not)."""
    return layout_version(conn) == LAYOUT_VERSION and conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FTS,)).fetchone() is not None


def layout_version(conn: sqlite3.Connection) -> int | None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (INFO,)).fetchone() is None:
        return None
    row = conn.execute(f"SELECT value FROM {INFO} WHERE key = 'version'").fetchone()
    return int(row[0]) if row else None


def totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(segments, words) indexed: bm25's row count and, divided, its average row length (index.py keeps them)."""
    values = dict(conn.execute(f"SELECT key, value FROM {INFO} WHERE key IN ('segments', 'tokens')").fetchall())
    return int(values.get("segments", 0)), int(values.get("tokens", 0))


def fts5_available(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0])


def ensure_schema(conn: sqlite3.Connection) -> bool:
    """Create the index tables when missing; idempotent and cheap when they are there (two reads, no write).
    False when this Python's SQLite has no FTS5: the store still opens, without an index (search says so).

    Runs in a savepoint: inside the caller's write transaction it joins it, alone it is one transaction of its own.
    """
    if has_index(conn):
        return True
    if not fts5_available(conn):
        return False
    conn.execute("SAVEPOINT library_schema")
    try:
        if layout_version(conn) is not None:
            reset(conn)  # an older layout
        else:
            _create(conn)
    except BaseException:
        conn.execute("ROLLBACK TO library_schema")
        conn.execute("RELEASE library_schema")
        raise
    conn.execute("RELEASE library_schema")
    return True


def reset(conn: sqlite3.Connection) -> None:
    """Drop the whole index and make its tables again, empty (inside the caller's transaction): a rebuild starts
    here (dropping is far faster than deleting 700,000 rows one by one), and so does a store of an older layout."""
    for statement in _statements(_DROP):
        conn.execute(statement)
    _create(conn)


def _create(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript would COMMIT the caller's transaction first.
    for statement in _statements(_TABLES):
        conn.execute(statement)
    conn.executemany(f"INSERT OR IGNORE INTO {INFO} (key, value) VALUES (?, ?)", [("segments", 0), ("tokens", 0)])
    conn.execute(f"INSERT OR REPLACE INTO {INFO} (key, value) VALUES ('version', ?)", (str(LAYOUT_VERSION),))


def _statements(script: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current.append(line)
        joined = "\n".join(current)
        if sqlite3.complete_statement(joined):
            out.append(joined)
            current = []
    return out
