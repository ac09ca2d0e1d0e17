"""Searching one or more output folders: every store read-only, hits merged by bm25, each with a link to the moment.

Only finished (`done`) videos are found: the index is joined to the store's `videos` table, which also gives
each hit its title, source and folder. A folder that cannot be searched (no store, unreadable, not indexed yet)
is a line in the result, never an exception: the other folders are still searched.

Why the search ranks in windows. FTS5 computes bm25 for every segment that matches before it can sort them: a
word in most segments ("the": ~500,000 of them at 1,000 hours) costs seconds. So the matches are ranked newest
first in windows of WINDOW_MATCHES segments (FTS5 seeks straight to a span of rowids, and rowids grow with time):
a query with fewer matches than that (nearly every useful one) is ranked whole, exactly; a very common one
returns the best of its most recent matches, and says so. Filters that drop most matches (a run, a rare
language, the flagged videos) would empty a window, so the next window doubles until `limit` hits are found.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import layout
from .index import normal_language, store_connection
from .links import clock, moment_link
from .query import Query, QueryError, describe, on_text, parse
from .schema import FTS, SEGMENTS, VIDEOS, has_index

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
"""Most hits one search returns (a page of results, not an export: the JSON outputs are that)."""

WINDOW_MATCHES = 2_000
"""Matching segments ranked per window. bm25 costs ~1 µs per match, plus FTS5's document-frequency count per
window, so a window stays within a few tens of milliseconds at 10,000 videos (benchmarks/README.md, library)."""

SNIPPET_TOKENS = 24
"""Words around the match in a snippet: most segments fit whole."""

MARKS = ("«", "»")
"""How `Hit.snippet` marks each match in plain text (the CLI in a pipe, the dashboard's table)."""

_OPEN, _CLOSE = "\x02", "\x03"
"""What FTS5 puts around matches: control characters, which indexed text never holds (index.clean_text)."""


@dataclass(frozen=True)
class Hit:
    """One segment that matches, with what is needed to show it and to go there."""

    title: str
    video_id: str
    out_dir: Path
    start: float
    """Seconds from the start of the media; the segment runs to `end`."""
    end: float
    snippet: str
    """The segment (or the part around the match, '…' where cut), each match between MARKS."""
    source: str
    """The video's URL (any password masked) or absolute file path, as the store keeps it."""
    kind: str
    """"url" or "file"."""
    link: str
    """To the moment: the URL made to start at `start` (links.py), or "PATH @ M:SS" for a local file."""
    score: float
    """bm25 relevance, higher is better (FTS5's own value negated); comparable within one search."""
    text: str = ""
    """The whole segment."""
    run_id: str = ""
    """The run that transcribed it."""
    language: str = ""
    folder: str = ""
    """Its transcript folder inside out_dir."""
    parts: tuple[tuple[str, bool], ...] = ()
    """The snippet as (text, is_match) pieces: for styling the matches without parsing the marks back."""

    @property
    def at(self) -> str:
        """The start as 1:23 / 1:02:03."""
        return clock(self.start)

    def to_dict(self) -> dict:
        return {"title": self.title, "video_id": self.video_id, "out_dir": str(self.out_dir), "start": self.start,
                "end": self.end, "at": self.at, "snippet": self.snippet, "text": self.text, "source": self.source,
                "kind": self.kind, "link": self.link, "score": round(self.score, 4), "run_id": self.run_id,
                "language": self.language, "folder": self.folder}


@dataclass
class SearchResult:
    """A search over several folders: its hits, and one line for anything the person should know."""

    query: Query | None
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None
    """Why the query itself cannot be searched (nothing was searched)."""
    problems: list[str] = field(default_factory=list)
    """A folder that could not be searched, one line each (the others were)."""
    notes: list[str] = field(default_factory=list)
    """What limits the answer: folders or videos not indexed yet, a query read as plain words, a partial ranking."""
    searched: int = 0
    """Folders whose index was searched."""


@dataclass(frozen=True)
class Filters:
    run: str | None = None
    language: str | None = None
    flagged: bool = False


def search(out_dirs: Iterable[Path | str], query: str, *, limit: int = DEFAULT_LIMIT, run: str | None = None,
           language: str | None = None, flagged: bool = False) -> list[Hit]:
    """The best `limit` hits for `query` across `out_dirs`, best first. Raises QueryError (one line) when the query
    has nothing to search for; folders that cannot be searched are skipped (`find` says which, and why)."""
    result = find(out_dirs, query, limit=limit, run=run, language=language, flagged=flagged, coverage=False)
    if result.error:
        raise QueryError(result.error)
    return result.hits


def find(out_dirs: Iterable[Path | str], query: str, *, limit: int = DEFAULT_LIMIT, run: str | None = None,
         language: str | None = None, flagged: bool = False, coverage: bool = True) -> SearchResult:
    """`search` with everything the front ends show besides the hits: the query's problem, folders that could not
    be searched, and notes. `coverage` also counts finished videos that are not indexed (a few ms per folder)."""
    try:
        parsed = parse(query)
    except QueryError as exc:
        return SearchResult(None, error=str(exc))
    result = SearchResult(parsed)
    if parsed.literal:
        result.notes.append(f"not search syntax, so read as plain words: {describe(parsed)}")
    limit = max(1, min(int(limit), MAX_LIMIT))
    filters = Filters(run or None, normal_language(language) or None, flagged)
    hits: list[Hit] = []
    for out_dir in _unique(out_dirs):
        hits.extend(_search_folder(out_dir, parsed, filters, limit, result, coverage))
    hits.sort(key=lambda h: -h.score)
    result.hits = hits[:limit]
    return result


def _unique(out_dirs: Iterable[Path | str]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for folder in out_dirs:
        seen.setdefault(Path(folder).resolve(), Path(folder))
    return list(seen.values())


def _search_folder(out_dir: Path, query: Query, filters: Filters, limit: int, result: SearchResult,
                   coverage: bool) -> list[Hit]:
    from ..session_manager import SessionStore

    db = layout.state_db(out_dir)
    if not db.is_file():
        result.problems.append(f"{out_dir}: no batch here (missing {db.name})")
        return []
    try:
        store = SessionStore(db, read_only=True)  # a search never writes, and works on a read-only disk
    except (sqlite3.Error, RuntimeError, OSError) as exc:
        result.problems.append(f"{out_dir}: cannot read {db.name}: {' '.join(str(exc).split())}")
        return []
    try:
        conn = store_connection(store)
        if not has_index(conn):
            result.notes.append(f"{out_dir} has no search index yet: run `bulk-transcribe index {out_dir}`")
            return []
        result.searched += 1
        if coverage:
            missing = unindexed(conn)
            if missing:
                result.notes.append(f"{out_dir}: {missing} finished video{'' if missing == 1 else 's'} not "
                                    f"indexed yet: run `bulk-transcribe index {out_dir}`")
        hits, partial = _ranked(conn, out_dir, query, filters, limit)
        if partial:
            result.notes.append(f"{out_dir}: more than {partial:,} segments match; these are the best of the most "
                                "recent ones (add a word or a phrase to narrow the search)")
        return hits
    except sqlite3.Error as exc:
        result.problems.append(f"{out_dir}: cannot search {db.name}: {' '.join(str(exc).split())}")
        return []
    finally:
        store.close()


# ---- one store ---------------------------------------------------------------------------------------------------

def _ranked(conn: sqlite3.Connection, out_dir: Path, query: Query, filters: Filters,
            limit: int) -> tuple[list[Hit], int]:
    """The store's best `limit` hits, and how many matches were ranked when older ones were left out (else 0)."""
    match = on_text(query.match)
    lo, hi = 1, (1 << 63) - 1
    checks = ["v.status = 'done'"]
    args: list = []
    if filters.run:
        span = conn.execute(f"SELECT min(first_seg), max(last_seg) FROM {VIDEOS} WHERE run_id = ?",
                            (filters.run,)).fetchone()
        if span[0] is None:
            return [], 0
        lo, hi = span  # the run's segments lie in this span; others written later inside it are checked out
        checks.append("s.run_id = ?")
        args.append(filters.run)
    if filters.language:
        share = _language_share(conn, filters.language)
        if share == 0.0:
            return [], 0
        if share < 0.5:
            # A language few segments have: part of the match, so FTS5 intersects it with the words up front.
            match = f'{match} AND language : "{filters.language}"'
        elif share < 1.0:
            checks.append("s.language = ?")  # most segments have it: cheaper checked on each match
            args.append(filters.language)
    if filters.flagged:
        flagged = flagged_videos_sql(conn)
        if flagged is None:
            return [], 0
        checks.append(f"v.video_id IN ({flagged})")
    where = " AND ".join(checks)
    ranked: list[tuple[int, float]] = []
    upper, window, partial = hi, WINDOW_MATCHES, 0
    seen = 0
    while True:
        edge = conn.execute(
            f"SELECT rowid FROM {FTS} WHERE {FTS} MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY rowid DESC LIMIT 1 OFFSET ?", (match, lo, upper, window - 1)).fetchone()
        bottom = edge[0] if edge else lo
        ranked += conn.execute(
            f"SELECT {FTS}.rowid, bm25({FTS}, 1.0, 0.0) AS score FROM {FTS} "
            f"JOIN {SEGMENTS} s ON s.seg_id = {FTS}.rowid JOIN videos v ON v.video_id = s.video_id "
            f"WHERE {FTS} MATCH ? AND {FTS}.rowid BETWEEN ? AND ? AND {where} ORDER BY score LIMIT ?",
            (match, bottom, upper, *args, limit)).fetchall()
        seen += window
        if edge is None or bottom <= lo:
            break
        if len(ranked) >= limit:
            partial = seen  # older matches exist and were not ranked
            break
        upper, window = bottom - 1, window * 2
    ranked.sort(key=lambda r: r[1])
    return _hits(conn, out_dir, match, ranked[:limit]), partial


def _language_share(conn: sqlite3.Connection, language: str) -> float:
    total = conn.execute(f"SELECT sum(segments) FROM {VIDEOS}").fetchone()[0] or 0
    if not total:
        return 0.0
    have = conn.execute(f"SELECT sum(segments) FROM {VIDEOS} WHERE language = ?", (language,)).fetchone()[0] or 0
    return have / total


def _hits(conn: sqlite3.Connection, out_dir: Path, match: str, ranked: list[tuple[int, float]]) -> list[Hit]:
    """Snippets and details for the chosen segments only (FTS5 would otherwise cut a snippet for every match it
    ranks before sorting)."""
    hits = []
    for seg_id, score in ranked:
        snip = conn.execute(
            f"SELECT snippet({FTS}, 0, ?, ?, '…', ?) FROM {FTS} WHERE {FTS} MATCH ? AND rowid = ?",
            (_OPEN, _CLOSE, SNIPPET_TOKENS, match, seg_id)).fetchone()
        row = conn.execute(
            f"SELECT s.video_id, s.run_id, s.language, s.start_s, s.end_s, s.text, v.title, v.source, v.kind, "
            f"v.folder FROM {SEGMENTS} s JOIN videos v ON v.video_id = s.video_id WHERE s.seg_id = ?",
            (seg_id,)).fetchone()
        if row is None:
            continue
        video_id, run_id, language, start, end, text, title, source, kind, folder = tuple(row)
        parts = snippet_parts(snip[0] if snip and snip[0] else text)
        hits.append(Hit(
            title=title, video_id=video_id, out_dir=out_dir, start=start, end=end,
            snippet="".join(f"{MARKS[0]}{piece}{MARKS[1]}" if matched else piece for piece, matched in parts),
            source=source, kind=kind, link=moment_link(source, kind, start), score=-score, text=text,
            run_id=run_id, language=language, folder=folder, parts=parts,
        ))
    return hits


def snippet_parts(marked: str) -> tuple[tuple[str, bool], ...]:
    """FTS5's snippet (matches between _OPEN and _CLOSE) as (text, is_match) pieces."""
    parts: list[tuple[str, bool]] = []
    for i, chunk in enumerate(marked.split(_OPEN)):
        if i == 0:
            if chunk:
                parts.append((chunk, False))
            continue
        matched, _, rest = chunk.partition(_CLOSE)
        if matched:
            parts.append((matched, True))
        if rest:
            parts.append((rest, False))
    return tuple(parts)


# ---- what a store holds, for filters and notes -------------------------------------------------------------------

def unindexed(conn: sqlite3.Connection) -> int:
    """Finished videos with no rows in the index (transcribed before it existed, or its write failed)."""
    return conn.execute(
        f"SELECT count(*) FROM videos WHERE status = 'done' AND video_id NOT IN (SELECT video_id FROM {VIDEOS})"
    ).fetchone()[0]


_FLAG_SOURCES = (
    # (table, column, SQL selecting the flagged video ids): the shapes a store may give the "flags" notion.
    ("flags", "video_id", "SELECT video_id FROM flags"),
    ("video_flags", "video_id", "SELECT video_id FROM video_flags"),
    ("videos", "flags_json", "SELECT video_id FROM videos WHERE flags_json NOT IN ('', '[]', '{}', 'null')"),
    ("videos", "flags", "SELECT video_id FROM videos WHERE flags IS NOT NULL AND flags NOT IN ('', '[]', '{}', 0)"),
    ("videos", "flagged", "SELECT video_id FROM videos WHERE flagged"),
)
"""Flags are being added to the store by another change; whichever of these shapes a store has is what "flagged"
means for it (the first found). A store with none has no flagged videos."""


def flagged_videos_sql(conn: sqlite3.Connection) -> str | None:
    """SQL selecting the ids of the store's flagged videos, or None when the store keeps no flags."""
    for table, column, sql in _FLAG_SOURCES:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column in columns:
            return sql
    return None


@dataclass(frozen=True)
class FolderFacets:
    """What the filters can offer for one folder: its indexed runs and languages, and how many videos are flagged."""

    runs: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    flagged: int = 0


def facets(out_dir: Path | str) -> FolderFacets:
    """The runs (newest first) and languages the folder's index holds and its flagged finished videos; empty when
    the folder has no store or no index."""
    from ..session_manager import SessionStore

    db = layout.state_db(out_dir)
    if not db.is_file():
        return FolderFacets()
    try:
        with SessionStore(db, read_only=True) as store:
            conn = store_connection(store)
            if not has_index(conn):
                return FolderFacets()
            runs = tuple(r[0] for r in conn.execute(
                f"SELECT run_id FROM {VIDEOS} GROUP BY run_id ORDER BY max(first_seg) DESC"))
            languages = tuple(r[0] for r in conn.execute(
                f"SELECT language FROM {VIDEOS} WHERE language != '' GROUP BY language ORDER BY sum(segments) DESC"))
            sql = flagged_videos_sql(conn)
            flagged = conn.execute(
                f"SELECT count(*) FROM videos WHERE status = 'done' AND video_id IN ({sql})").fetchone()[0] \
                if sql else 0
            return FolderFacets(runs, languages, flagged)
    except (sqlite3.Error, RuntimeError, OSError):
        return FolderFacets()

