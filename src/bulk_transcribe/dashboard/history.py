"""Recent runs for the home page, read from the SQLite stores in the output folders the dashboard knows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import urlencode

from .. import layout
from ..layout import STATE_DB_NAME
from .paths import within

TRANSCRIBE_PAGE = "Bulk_Transcribe"
"""URL path of the working page: Streamlit derives it from pages/02_Bulk_Transcribe.py."""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    mode: str
    status: str
    created_at: float | None
    finished_at: float | None
    out_dir: Path
    counts: dict

    @property
    def total(self) -> int:
        return sum((self.counts or {}).values())


def find_stores(output_root: Path, extra_dirs: Iterable[Path] = (), depth: int = 2) -> list[Path]:
    """Session stores in the output root (and up to `depth` folders below it) plus those of `extra_dirs`."""
    root = Path(output_root)
    found: dict[Path, None] = {}
    for level in range(depth + 1):
        pattern = "/".join(["*"] * level + [STATE_DB_NAME])
        for db in sorted(root.glob(pattern)):
            if within(db, root):
                found[db.resolve()] = None
    for folder in extra_dirs:
        db = layout.state_db(folder)
        if db.is_file():
            found[db.resolve()] = None
    return list(found)


def recent_runs(output_root: Path, extra_dirs: Iterable[Path] = (), limit: int = 20) -> tuple[list[RunRow], list[str]]:
    """Newest first, and a note per store that could not be read (so one broken folder hides nothing else)."""
    from ..session_manager import SessionStore

    rows: list[RunRow] = []
    problems: list[str] = []
    for db in find_stores(output_root, extra_dirs):
        try:
            with SessionStore(db, read_only=True) as store:  # a page view never writes
                records = store.runs()
            for r in records:
                rows.append(RunRow(r.run_id, r.name, r.mode, str(getattr(r.status, "value", r.status)),
                                   r.created_at, r.finished_at, Path(r.out_dir or db.parent), dict(r.counts or {})))
        except Exception as exc:  # noqa: BLE001 — a locked or foreign file is reported, not fatal
            problems.append(f"{db.parent}: {' '.join(str(exc).split())}")
    rows.sort(key=lambda r: r.created_at or 0.0, reverse=True)
    return rows[:limit], problems


@dataclass(frozen=True)
class StoredRun:
    """What the store says of a run beyond its videos: its own settings, duplicates, and whether it was stopped."""

    config: dict | None = None
    duplicates: int = 0
    stopped: bool = False


def run_settings(out_dir: Path, run_id: str) -> StoredRun:
    from ..session_manager import SessionStore

    db = layout.state_db(out_dir)
    if not db.is_file():
        return StoredRun()
    try:
        with SessionStore(db, read_only=True) as store:
            run = store.run(run_id)
            if run is None:
                return StoredRun()
            return StoredRun(run.config, len(store.duplicates(run_id)), run.stopped)
    except Exception:  # noqa: BLE001 — an unreadable store hides the header details, not the page
        return StoredRun()


def run_query(run_id: str, out_dir: Path, output_root: Path) -> dict[str, str]:
    """Query parameters that reopen a run on the working page: its id and its folder relative to the root."""
    out = Path(out_dir).resolve()
    root = Path(output_root).resolve()
    rel = out.relative_to(root).as_posix() if within(out, root) else str(out)
    return {"run": run_id, "out": rel or "."}


def run_url(run_id: str, out_dir: Path, output_root: Path) -> str:
    return f"/{TRANSCRIBE_PAGE}?{urlencode(run_query(run_id, out_dir, output_root))}"


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else ""
