"""The Search page's logic: which folders it searches, what its filters offer, the rows of its results table, and
what its player may play.

Every folder with a session store under the output root is searched (plus the folders of runs this server
started). Everything a hit carries came from a site or a file (titles, words, URLs): the table shows it as plain
cells; the only live links are the ones library/links.py builds from the video's own http(s) URL; and the player
plays only a local file inside the media root (the same rule as the Videos box) or audio the run kept in
OUT/audio, never a path the store merely names.
"""

from __future__ import annotations

import hashlib

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .. import layout
from ..library import facets, find
from ..library.links import clock, is_web_link
from ..library.lookup import DEFAULT_LIMIT, Hit, SearchResult
from .history import find_stores
from .paths import confine, within
from .settings import DashboardSettings

ALL_RUNS = "All runs"
ANY_LANGUAGE = "Any language"
"""The filters' "no filter" choices."""

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".wmv", ".flv", ".mpeg", ".mpg",
                              ".ts", ".3gp"})
"""Local media the player shows as video; every other media file plays as audio."""

MAX_PLAYER_MB = 512
"""Largest file the page plays: Streamlit reads a local file whole into the server's memory to serve it."""

TABLE_COLUMNS = ("Title", "At", "Said", "Link", "File", "Folder")


@dataclass(frozen=True)
class Scope:
    """What a search on this page covers, and what its filters can offer."""

    folders: tuple[Path, ...] = ()
    runs: tuple[str, ...] = ()
    """Runs whose transcripts are indexed, newest first."""
    languages: tuple[str, ...] = ()
    """Languages indexed, the most common first."""
    flagged: int = 0
    """Flagged finished videos across the folders: the "flagged" filter is offered only when some are."""


def scope(settings: DashboardSettings, extra_dirs: Iterable[Path] = ()) -> Scope:
    folders = tuple(db.parent for db in find_stores(settings.output_root, extra_dirs))
    runs: dict[str, None] = {}
    languages: dict[str, None] = {}
    flagged = 0
    for folder in folders:
        f = facets(folder)
        runs.update(dict.fromkeys(f.runs))
        languages.update(dict.fromkeys(f.languages))
        flagged += f.flagged
    # Run ids start with their date and time: newest first across folders too.
    return Scope(folders, tuple(sorted(runs, reverse=True)), tuple(languages), flagged)


def search(where: Scope, query: str, *, run: str = ALL_RUNS, language: str = ANY_LANGUAGE, flagged: bool = False,
           limit: int = DEFAULT_LIMIT) -> SearchResult:
    return find(where.folders, query, limit=limit, run=None if run == ALL_RUNS else run,
                language=None if language == ANY_LANGUAGE else language, flagged=flagged and where.flagged > 0)


def folder_label(out_dir: Path, output_root: Path) -> str:
    """The folder as the page names it: relative to the output root."""
    out, root = Path(out_dir).resolve(), Path(output_root).resolve()
    return (out.relative_to(root).as_posix() or ".") if within(out, root) else str(out)


def table_rows(hits: list[Hit], output_root: Path) -> list[dict]:
    """One row per hit. "Link" holds only http(s) links built from the video's own URL (a LinkColumn makes them
    live; "" otherwise); a local file's place is plain text ("File")."""
    return [{
        "Title": hit.title,
        "At": hit.at,
        "Said": hit.snippet,
        "Link": hit.link if hit.kind == "url" and is_web_link(hit.link) else "",
        "File": hit.link if hit.kind == "file" else "",
        "Folder": folder_label(hit.out_dir, output_root),
    } for hit in hits]


def results_key(query: str, run: str, language: str, flagged: bool) -> str:
    """The results table's widget key: one per search, so a selection never carries over to other results."""
    digest = hashlib.sha1(repr((query.strip(), run, language, bool(flagged))).encode()).hexdigest()[:12]
    return f"search-results-{digest}"


def chosen_row(selection: object, count: int) -> int:
    """The row the visitor selected in the table (st.dataframe's selection state), else the first."""
    rows = []
    try:
        rows = list(selection["selection"]["rows"])  # type: ignore[index]
    except (KeyError, TypeError, AttributeError):
        try:
            rows = list(selection.selection.rows)  # type: ignore[attr-defined]
        except AttributeError:
            rows = []
    return rows[0] if rows and 0 <= rows[0] < count else 0


@dataclass(frozen=True)
class Player:
    """What the page offers to play a hit from its moment."""

    kind: str
    """"video" or "audio" (a local file, played by the page), "link" (the video's own page, opened by the
    visitor's browser), or "none"."""
    start: int = 0
    """Whole seconds: where playback starts (the hit's start, rounded down)."""
    path: Path | None = None
    mime: str = ""
    """The file's media type, for the player (Streamlit would otherwise call every audio file audio/wav)."""
    url: str | None = None
    note: str = ""
    """Why there is nothing to play here, or where the file is when it is too large to play (shown as text)."""


def player_for(hit: Hit, settings: DashboardSettings) -> Player:
    start = int(max(0.0, hit.start))
    problem = ""
    if hit.kind == "file":
        try:
            path = confine(hit.source, settings.input_roots)
        except FileNotFoundError:
            problem = f"{hit.source} is no longer there"
        except ValueError:  # OutsideRootError: never served, whatever the store says
            problem = f"{hit.source} is outside the media folder, so the page does not play it"
        else:
            played = _playable(path, start)
            if played.kind != "none":
                return played
            problem = played.note
    kept = kept_audio(hit.out_dir, hit.video_id, settings)
    if kept is not None:
        played = _playable(kept, start, audio=True)
        if played.kind != "none":
            return played
        problem = problem or played.note
    if hit.kind == "url" and is_web_link(hit.link):
        return Player("link", start, url=hit.link)
    return Player("none", start, note=problem or "nothing to play: the media is not on this server")


def kept_audio(out_dir: Path, video_id: str, settings: DashboardSettings) -> Path | None:
    """The audio a run kept for this video (OUT/audio/<video_id>.*, --keep-audio), when it lies in the output root."""
    folder = layout.audio_dir(out_dir)
    try:
        candidates = sorted(folder.glob(f"{video_id}.*"))
    except OSError:
        return None
    for path in candidates:
        if path.is_file() and within(path, settings.output_root) and within(path, folder):
            return path.resolve()
    return None


def _playable(path: Path, start: int, *, audio: bool = False) -> Player:
    try:
        size = path.stat().st_size
    except OSError:
        return Player("none", start, note=f"{path} cannot be read")
    if size > MAX_PLAYER_MB * 1024 * 1024:
        return Player("none", start, note=f"{path} is too large to play in the page ({size / 1024**2:.0f} MB); "
                                          f"open it at {clock(start)}")
    kind = "video" if not audio and path.suffix.lower() in VIDEO_EXTENSIONS else "audio"
    mime = mimetypes.guess_type(path.name)[0] or ("video/mp4" if kind == "video" else "audio/mpeg")
    return Player(kind, start, path=path, mime=mime)
