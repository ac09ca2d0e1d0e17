"""Searching one or more output folders: every store read-only, hits merged by bm25, each with a link to the moment.

Only finished (`done`) videos are found: the index is joined to the store's `videos` table, which also gives
each hit its title, source and folder. A folder that cannot be searched (no store, unreadable, not indexed yet)
is a line in the result, never an exception: the other folders are still searched.

How it stays fast at 10,000 videos. FTS5 finds the matches, newest first (it walks its lists of rows by rowid, and
rowids grow with time), and bm25 is computed over them here (rank.py says why FTS5's own bm25() is not used: it
counts every row holding each phrase, per query). At most CANDIDATES matches are ranked: a query with fewer matches
than that (nearly every useful one) is ranked whole; a very common one gets the best of its most recent matches,
and the result says so. A run or flagged filter becomes the spans of segment ids its videos hold (FTS5 seeks
straight to each), a language filter part of the match (FTS5 intersects it with the words), so a filter that keeps
few videos costs no more than one that keeps all.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import layout
from .highlight import Phrase, marked, phrases
from .index import normal_language
from .links import clock, moment_link
from .query import Query, QueryError, describe, on_text, parse, terms
from .rank import idf, scores
from .schema import FTS, SEGMENTS, VIDEOS, has_index, totals

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
"""Most hits one search returns (a page of results, not an export: the JSON outputs are that)."""

CANDIDATES = 2_000
"""Matching segments ranked at most, per folder and search (newest first): ~10 ms (benchmarks/README.md, library).
When a filter is checked on each match (see MAX_SPANS), it doubles until enough of them pass."""

MAX_SPANS = 16
"""A run or flagged filter whose videos lie in at most this many spans of segment ids is searched span by span (a
run's videos are one span or a few); more (flags scattered over many videos) are checked on each match instead:
FTS5 seeks to a span cheaply for a word, at several milliseconds for a phrase of common words."""

_TOP = (1 << 63) - 1

MARKS = ("«", "»")
"""How `Hit.snippet` marks each match in plain text (the CLI in a pipe, the dashboard's table)."""


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
        conn = store.connection()
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
            result.notes.append(f"{out_dir}: more than {partial:,} segments match; these are the best of the "
                                f"{partial:,} most recent (add a word or a phrase to narrow the search)")
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
    checks: list[str] = []
    args: list = []
    if filters.language:
        share = _language_share(conn, filters.language)
        if share == 0.0:
            return [], 0
        if share < 1.0:
            match = f'{match} AND language : "{filters.language}"'
    spans: list[tuple[int, int]] | None = [(1, _TOP)]
    if filters.run or filters.flagged:
        flagged = flagged_videos_sql(conn) if filters.flagged else None
        if filters.flagged and flagged is None:
            return [], 0  # the store keeps no flags: nothing is flagged
        spans = _spans(conn, filters.run, flagged)
        if spans == []:
            return [], 0
        if spans is None:  # too scattered to seek to: checked on each match
            spans = [(1, _TOP)]
            # The unary + keeps SQLite from driving these lookups by the video index instead of the seg_id list.
            if filters.run:
                checks.append("+s.run_id = ?")
                args.append(filters.run)
            if flagged:
                checks.append(f"+s.video_id IN ({flagged})")
    wanted = phrases(query)
    rows, words = totals(conn)
    average = words / rows if rows else 0.0
    # One word or phrase searched everywhere: its own newest matches are the candidates, and they tell how many
    # segments hold it; otherwise each phrase is looked up alone.
    alone = len(wanted) == 1 and not checks and spans == [(1, _TOP)] and match == on_text(query.match) and \
        _one_phrase(query)
    weights = [1.0] if alone else [idf(rows, _holding(conn, phrase, rows)) for phrase in wanted]
    scored: list[tuple[float, int]] = []
    cursor = _Cursor(spans)
    budget, ranked = max(CANDIDATES, 4 * limit), 0
    while True:
        batch, taken, more = cursor.take(conn, match, checks, args, budget)
        ranked += taken
        scored += scores(batch, wanted, weights, average)
        # Without per-match checks every match passes: one batch ranks CANDIDATES of them. With checks, a batch
        # may pass few: the next one is twice as large, until `limit` pass.
        if not more or not checks or len(scored) >= limit:
            break
        budget *= 2
    if alone and scored:
        holding = float(ranked) if not more else _density(conn, cursor.upper + 1, ranked, rows)
        weight = idf(rows, holding)
        scored = [(score * weight, seg_id) for score, seg_id in scored]
    scored.sort(key=lambda pair: (-pair[0], -pair[1]))  # best first; among equals, the newest
    return _hits(conn, out_dir, query, scored, limit), ranked if more else 0


class _Cursor:
    """Matches newest first across the spans (each newest first), resumable where the last batch stopped."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = sorted(spans, key=lambda span: -span[1])
        self.index = 0
        self.upper = self.spans[0][1] if self.spans else 0

    def take(self, conn: sqlite3.Connection, match: str, checks: list[str], args: list,
             budget: int) -> tuple[list[tuple[int, str, int]], int, bool]:
        """The next `budget` matches: those passing `checks` as (seg_id, text, words), how many matches were
        taken, and whether more may follow. FTS5 lists the rowids (cheap, unscored); only those are then read."""
        ids: list[int] = []
        more = False
        while self.index < len(self.spans):
            lo = self.spans[self.index][0]
            need = budget - len(ids)
            got = [row[0] for row in conn.execute(
                f"SELECT rowid FROM {FTS} WHERE {FTS} MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rowid DESC LIMIT ?",
                (match, lo, self.upper, need + 1))]
            if len(got) > need:  # more in this span than the budget: the next batch starts below the last taken
                ids += got[:need]
                self.upper = ids[-1] - 1
                more = True
                break
            ids += got
            self.index += 1
            if self.index < len(self.spans):
                self.upper = self.spans[self.index][1]
        where = "".join(f" AND {check}" for check in checks)
        rows: list[tuple[int, str, int]] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            rows += conn.execute(f"SELECT s.seg_id, s.text, s.tokens FROM {SEGMENTS} s "
                                 f"WHERE s.seg_id IN ({', '.join('?' * len(chunk))}){where}", (*chunk, *args))
        return rows, len(ids), more


_CHUNK = 10_000
"""Ids per `IN (...)`: under SQLite's limit on parameters in one statement (32,766)."""


def _spans(conn: sqlite3.Connection, run: str | None, flagged: str | None) -> list[tuple[int, int]] | None:
    """The segment-id spans of the videos a run / flagged filter keeps (adjacent videos merged); None when there
    are more than MAX_SPANS. Exact: a video's segments are exactly the ids of its span (index.index_video)."""
    sql = f"SELECT first_seg, last_seg FROM {VIDEOS} WHERE first_seg IS NOT NULL"
    args: list = []
    if run:
        sql += " AND run_id = ?"
        args.append(run)
    if flagged:
        sql += f" AND video_id IN ({flagged})"
    spans: list[tuple[int, int]] = []
    for first, last in conn.execute(sql + " ORDER BY first_seg", args):
        if spans and first == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], last)
            continue
        spans.append((first, last))
        if len(spans) > MAX_SPANS:
            return None
    return spans


def _holding(conn: sqlite3.Connection, phrase: Phrase, rows: int) -> float:
    """How many segments hold `phrase`: counted when fewer than CANDIDATES (FTS5 walks them, unscored), else
    estimated from how densely its newest CANDIDATES matches lie (a phrase that common weighs next to nothing
    either way: rank.idf)."""
    match = on_text('"' + " ".join(phrase.words) + '"' + ("*" if phrase.prefix else ""))
    newest = conn.execute(f"SELECT rowid FROM {FTS} WHERE {FTS} MATCH ? ORDER BY rowid DESC LIMIT ?",
                          (match, CANDIDATES)).fetchall()
    if len(newest) < CANDIDATES:
        return float(len(newest))
    return _density(conn, newest[-1][0], len(newest), rows)


def _density(conn: sqlite3.Connection, oldest: int, found: int, rows: int) -> float:
    """Segments holding a phrase, estimated: `found` of them among the segments from `oldest` to the newest, and
    as densely among the rest (segment ids are dense: deletions leave few gaps)."""
    top = conn.execute(f"SELECT max(seg_id) FROM {SEGMENTS}").fetchone()[0] or 1
    return min(float(rows), found * rows / max(1, top - oldest + 1))


_ONE_PHRASE = re.compile(r'\s*(?:"(?:[^"]|"")*"|[^\s"(){}:^+*]+)\*?\s*')


def _one_phrase(query: Query) -> bool:
    """The query is a single word or "phrase" (optionally a prefix*): no operators, columns or groups."""
    if query.literal:
        wanted, unwanted = terms(query.text)
        return len(wanted) == 1 and not unwanted
    return bool(_ONE_PHRASE.fullmatch(query.text)) and query.text.strip() not in ("AND", "OR", "NOT")


def _language_share(conn: sqlite3.Connection, language: str) -> float:
    total = conn.execute(f"SELECT sum(segments) FROM {VIDEOS}").fetchone()[0] or 0
    if not total:
        return 0.0
    have = conn.execute(f"SELECT sum(segments) FROM {VIDEOS} WHERE language = ?", (language,)).fetchone()[0] or 0
    return have / total


def _hits(conn: sqlite3.Connection, out_dir: Path, query: Query, scored: list[tuple[float, int]],
          limit: int) -> list[Hit]:
    """The best `limit` of `scored` that belong to finished videos (an indexed video queued again is not found),
    with their details and marked snippets."""
    wanted = phrases(query)
    hits: list[Hit] = []
    step = limit * 2
    for start in range(0, len(scored), step):
        chunk = scored[start:start + step]
        details = {row[0]: row for row in conn.execute(
            f"SELECT s.seg_id, s.video_id, s.run_id, s.language, s.start_s, s.end_s, s.text, v.title, v.source, "
            f"v.kind, v.folder FROM {SEGMENTS} s JOIN videos v ON v.video_id = s.video_id "
            f"WHERE s.seg_id IN ({', '.join('?' * len(chunk))}) AND v.status = 'done'", [i for _, i in chunk])}
        for score, seg_id in chunk:
            if seg_id not in details:
                continue
            _, video_id, run_id, language, start, end, text, title, source, kind, folder = tuple(details[seg_id])
            parts = marked(text, wanted)
            hits.append(Hit(
                title=title, video_id=video_id, out_dir=out_dir, start=start, end=end,
                snippet="".join(f"{MARKS[0]}{piece}{MARKS[1]}" if matched else piece for piece, matched in parts),
                source=source, kind=kind, link=moment_link(source, kind, start), score=score, text=text,
                run_id=run_id, language=language, folder=folder, parts=parts,
            ))
            if len(hits) == limit:
                return hits
    return hits


# ---- what a store holds, for filters and notes -------------------------------------------------------------------

def unindexed(conn: sqlite3.Connection) -> int:
    """Finished videos with no rows in the index (transcribed before it existed, or its write failed)."""
    return conn.execute(
        f"SELECT count(*) FROM videos WHERE status = 'done' AND video_id NOT IN (SELECT video_id FROM {VIDEOS})"
    ).fetchone()[0]


FLAGGED_SQL = "SELECT video_id FROM videos WHERE flags_json IS NOT NULL AND flags_json != '[]'"
"""The videos whose transcript earned a quality flag (quality.py; the store's flags_json, schema 5)."""


def flagged_videos_sql(conn: sqlite3.Connection) -> str | None:
    """SQL selecting the ids of the store's flagged videos, or None for a store older than its flags (read-only
    opened, so not migrated)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(videos)")}
    return FLAGGED_SQL if "flags_json" in columns else None


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
            conn = store.connection()
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

