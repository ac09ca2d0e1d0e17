"""The SQLite session store: every run and every video's state, in the output folder.

It is what makes resume work (a done video is never redone), what the history and the dashboard list after a
restart, and the source of the manifest. Several threads and processes may write at once: the database runs in
WAL mode with a busy timeout, each thread gets its own connection, and every write is one short
`BEGIN IMMEDIATE` transaction (taking the write lock up front, so two writers never deadlock upgrading a read).

Status changes go through `progress.advance`, the same rules the live ProgressTracker uses, so a run rendered
from the database looks exactly like the live one.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .config import RunConfig
from .folder_lock import OwnerLock
from .library.schema import ensure_schema as ensure_library_schema
from .models import RunStatus, ProgressEvent, Snapshot, SourceKind, Transcript, VideoItem, VideoStatus
from .quality import Flag, Quality
from .naming import is_safe, numbered, safe_name
from .progress import ProgressTracker, VideoState, advance, state_from_row
from .redact import config_record

SCHEMA_VERSION = 5
"""Bump with a new entry in _MIGRATIONS; PRAGMA user_version records what a database holds."""

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another's lock before SQLite gives up."""

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        mode TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL,
        out_dir TEXT NOT NULL,
        config_json TEXT NOT NULL
    );
    CREATE TABLE videos (
        video_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        input TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        duration_s REAL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        worker TEXT NOT NULL DEFAULT '',
        progress REAL NOT NULL DEFAULT 0,
        stage_progress REAL NOT NULL DEFAULT 0,
        folder TEXT NOT NULL,
        outputs_json TEXT NOT NULL DEFAULT '{}',
        started_at REAL,
        finished_at REAL,
        elapsed_s REAL,
        speed_x REAL,
        transcribe_started_at REAL,
        current_text TEXT NOT NULL DEFAULT '',
        downloaded_bytes INTEGER,
        download_speed REAL,
        run_id TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    -- Folders are the user's transcript folders: two videos must never share one.
    CREATE UNIQUE INDEX videos_folder ON videos(folder COLLATE NOCASE);
    -- Which videos belong to which run, in that run's input order (a resumed video belongs to several runs).
    CREATE TABLE run_videos (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        video_id TEXT NOT NULL REFERENCES videos(video_id),
        position INTEGER NOT NULL,
        PRIMARY KEY (run_id, video_id)
    );
    CREATE INDEX run_videos_order ON run_videos(run_id, position);
    """,
    # Each run keeps its own outcome: a video redone by a later run no longer rewrites an earlier run's history.
    # What the site says beyond the title (uploader, upload date, playlist, id): output templates and the
    # download archive need it after a restart too.
    2: """
    ALTER TABLE run_videos ADD COLUMN final_status TEXT;
    ALTER TABLE run_videos ADD COLUMN final_error TEXT;
    ALTER TABLE runs ADD COLUMN duplicates_json TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE videos ADD COLUMN meta_json TEXT NOT NULL DEFAULT '{}';
    """,
    # A finished transcript's note has its own field (it travelled in `error`, and tools took it for a failure).
    3: """
    ALTER TABLE videos ADD COLUMN note TEXT;
    ALTER TABLE run_videos ADD COLUMN final_note TEXT;
    UPDATE videos SET note = error, error = NULL WHERE status = 'done' AND error IS NOT NULL;
    UPDATE run_videos SET final_note = final_error, final_error = NULL
        WHERE final_status = 'done' AND final_error IS NOT NULL;
    """,
    # Rows are found by the input line they came from (a line that resolves at last replaces its failed row).
    4: """
    CREATE INDEX videos_input ON videos(input);
    ALTER TABLE videos ADD COLUMN identity TEXT NOT NULL DEFAULT '';
    CREATE INDEX videos_identity ON videos(identity);
    ALTER TABLE videos ADD COLUMN download_s REAL;
    ALTER TABLE videos ADD COLUMN retryable INTEGER;
    -- Which video owns each transcript file a template gave (two videos must never write one file).
    CREATE TABLE output_paths (
        path TEXT PRIMARY KEY COLLATE NOCASE,
        video_id TEXT NOT NULL,
        n INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX output_paths_video ON output_paths(video_id);
    """,
    # How far to trust each finished transcript (quality.py): its language, the flags it earned (what "needs
    # review" means everywhere, the search library's filter included), and the signals and recheck behind them.
    5: """
    ALTER TABLE videos ADD COLUMN language TEXT;
    ALTER TABLE videos ADD COLUMN flags_json TEXT;
    ALTER TABLE videos ADD COLUMN quality_json TEXT;
    """,
}

_VIDEO_COLUMNS = (
    "video_id position input source kind title duration_s status attempts error worker progress stage_progress "
    "folder outputs_json started_at finished_at elapsed_s speed_x transcribe_started_at current_text "
    "downloaded_bytes download_speed run_id updated_at meta_json note identity download_s retryable language flags_json "
    "quality_json"
).split()


@dataclass
class VideoRecord:
    """One video as stored. `run_id` is the run that last worked on it; `folder` is its transcript folder name."""

    video_id: str
    position: int
    input: str
    source: str
    kind: str
    title: str
    duration_s: float | None
    status: VideoStatus
    attempts: int = 0
    error: str | None = None
    note: str | None = None
    worker: str = ""
    progress: float = 0.0
    folder: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    elapsed_s: float | None = None
    speed_x: float | None = None
    run_id: str = ""
    updated_at: float = 0.0
    # Live details kept so any process can redraw the table exactly as the running process sees it.
    stage_progress: float = 0.0
    transcribe_started_at: float | None = None
    current_text: str = ""
    downloaded_bytes: int | None = None
    download_speed: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    identity: str = ""
    download_s: float | None = None
    retryable: bool | None = None
    """For a failed video: whether another attempt may change anything (None: not known, an older store)."""
    language: str | None = None
    quality: Quality | None = None
    """For a done video: its flags (empty: nothing looks wrong), signals and recheck."""

    @property
    def flags(self) -> list[Flag]:
        return list(self.quality.flags) if self.quality is not None else []

    def to_item(self) -> VideoItem:
        """The VideoItem to schedule; a failed record keeps its error so it is not scheduled again in this run."""
        return VideoItem(
            source=self.source,
            kind=SourceKind(self.kind),
            input=self.input,
            title=self.title,
            duration_s=self.duration_s,
            video_id=self.video_id,
            error=self.error if self.status is VideoStatus.FAILED else None,
            meta=dict(self.meta),
            identity=self.identity,
        )


@dataclass
class RunRecord:
    run_id: str
    name: str
    mode: str
    status: str
    created_at: float
    finished_at: float | None
    out_dir: str
    config_json: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def stopped(self) -> bool:
        """Recorded as running, but no live process owns it: it was killed and can only be resumed."""
        return self.status == RunStatus.STOPPED


UNRESOLVED_META = json.dumps({"unresolved": True}, sort_keys=True)
"""How a stand-in row for an input line that was never resolved (the run stopped first) is marked."""


class SessionStore:
    """Runs and videos of one output folder. Safe to share between threads; open one per process."""

    def __init__(self, db_path: Path | str, clock: Callable[[], float] = time.time, *,
                 read_only: bool = False) -> None:
        self.db_path = Path(db_path)
        self.read_only = read_only
        """Readers that must never write (`status`, on a read-only disk too) open the file read-only."""
        if not read_only:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()  # guards only the list of connections, for close()
        if read_only:
            self._check_version()
        else:
            self._migrate()
            with self._write() as conn:
                ensure_library_schema(conn)  # the search index's own tables (library/), not a numbered migration

    def _older_schema(self) -> bool:
        return self._conn().execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        # A connection inherited through fork() must not be used by the child: open its own.
        if conn is None or self._local.pid != os.getpid():
            conn = self._open_read_only() if self.read_only else sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._all_lock:
                self._all.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for the search index's tables (library/) that live in this database: read
        and written with the store's settings (busy timeout, WAL; read-only and immutable fallback for readers)."""
        return self._conn()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened in this process (call once other threads are done)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_read_only(self) -> sqlite3.Connection:
        """mode=ro sees a live writer's changes; a WAL file on a read-only disk cannot be opened that way (SQLite
        needs to create its -shm file), and there nobody can be writing, so it is read as immutable."""
        if not self.db_path.is_file():
            raise sqlite3.OperationalError(f"no session store at {self.db_path}")
        common = dict(timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False, uri=True)
        # Quoted: a folder named "talks #2" would otherwise end the path at the '#' (a URI fragment) and SQLite
        # would create an empty database beside it.
        location = "file:" + urllib.parse.quote(str(self.db_path.resolve()))
        try:
            conn = sqlite3.connect(f"{location}?mode=ro", **common)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            return conn
        except sqlite3.OperationalError:
            return sqlite3.connect(f"{location}?immutable=1", **common)

    def _check_version(self) -> None:
        if self._older_schema() and os.access(self.db_path.parent, os.W_OK):
            # A folder from an earlier version, read before any run upgraded it: upgrade it once, as a writer would.
            SessionStore(self.db_path).close()
            self.close()
        version = self._conn().execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.db_path} has schema {version}, this bulk-transcribe reads {SCHEMA_VERSION}: "
                + ("run it once with write access to upgrade the folder" if version < SCHEMA_VERSION
                   else "upgrade bulk-transcribe")
            )

    def _migrate(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.db_path} was written by a newer bulk-transcribe (schema {version} > {SCHEMA_VERSION}); "
                    "upgrade bulk-transcribe or use another output folder"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    # -- runs -------------------------------------------------------------------------------------------------

    def begin_run(self, config: RunConfig, mode: str) -> str:
        """Record a new run and return its id (sortable by time, with a random suffix for uniqueness)."""
        now = self._clock()
        run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(3)
        config_json = json.dumps(config_record(config), default=str, sort_keys=True)  # no passwords
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, name, mode, status, created_at, out_dir, config_json) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (run_id, config.run_name or config.out_dir.resolve().name, mode, now, str(config.out_dir), config_json),
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        """Record the run's end and freeze its outcome: each video's status and error as this run leaves them."""
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", (status, self._clock(), run_id)
            )
            self._freeze_outcome(conn, run_id)

    @staticmethod
    def _freeze_outcome(conn: sqlite3.Connection, run_id: str) -> None:
        conn.execute(
            "UPDATE run_videos SET "
            "final_status = (SELECT status FROM videos v WHERE v.video_id = run_videos.video_id), "
            "final_error = (SELECT error FROM videos v WHERE v.video_id = run_videos.video_id), "
            "final_note = (SELECT note FROM videos v WHERE v.video_id = run_videos.video_id) "
            "WHERE run_id = ?",
            (run_id,),
        )

    def record_duplicates(self, run_id: str, duplicates: list[str]) -> None:
        """The input lines given more than once (listed once): kept so every line the user gave is accounted for."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET duplicates_json = ? WHERE run_id = ?", (json.dumps(duplicates), run_id))

    def duplicates(self, run_id: str) -> list[str]:
        row = self._conn().execute("SELECT duplicates_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else []

    def close_stale_runs(self, keep: str | None = None) -> list[str]:
        """Mark every run still recorded as running (except `keep`) as stopped, freezing where it left its videos.

        Call it only while holding the folder's OwnerLock: then no other process can be running them, so a
        "running" row is one whose process was killed (SIGKILL, power loss) before it could record its end.
        """
        with self._write() as conn:
            stale = [r["run_id"] for r in conn.execute(
                "SELECT run_id FROM runs WHERE status = ? AND run_id IS NOT ?", (RunStatus.RUNNING.value, keep))]
            for run_id in stale:
                conn.execute("UPDATE runs SET status = ? WHERE run_id = ?", (RunStatus.STOPPED.value, run_id))
                self._freeze_outcome(conn, run_id)
        return stale

    def runs(self) -> list[RunRecord]:
        """Every run, newest first, each with its own outcome (the counts it ended with, or live ones while it
        runs); a run recorded as running whose owner is gone reads as stopped."""
        conn = self._conn()
        rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC").fetchall()
        counts: dict[str, dict[str, int]] = {}
        for r in conn.execute(
            "SELECT rv.run_id, COALESCE(rv.final_status, v.status) AS status, COUNT(*) AS n "
            "FROM run_videos rv JOIN videos v USING (video_id) GROUP BY rv.run_id, 2"
        ):
            counts.setdefault(r["run_id"], {})[r["status"]] = r["n"]
        live = self._live_run_ids(rows)
        return [self._run_record(r, counts.get(r["run_id"], {}), live) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        conn = self._conn()
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        counts = {
            r["status"]: r["n"]
            for r in conn.execute(
                "SELECT COALESCE(rv.final_status, v.status) AS status, COUNT(*) AS n "
                "FROM run_videos rv JOIN videos v USING (video_id) WHERE rv.run_id = ? GROUP BY 1",
                (run_id,),
            )
        }
        return self._run_record(row, counts, self._live_run_ids([row]))

    def _live_run_ids(self, rows: Iterable[sqlite3.Row]) -> set[str] | None:
        """Ids of runs a live process owns; None when no run is recorded as running (nothing to check)."""
        if not any(r["status"] == RunStatus.RUNNING.value for r in rows):
            return None
        owner = OwnerLock.holder(self.db_path.parent)
        return {owner.run_id} if owner is not None else set()

    @staticmethod
    def _run_record(row: sqlite3.Row, counts: dict[str, int], live: set[str] | None = None) -> RunRecord:
        full = {s.value: 0 for s in VideoStatus}
        full.update(counts)
        status = row["status"]
        if status == RunStatus.RUNNING.value and live is not None and row["run_id"] not in live:
            status = RunStatus.STOPPED.value
        return RunRecord(
            run_id=row["run_id"], name=row["name"], mode=row["mode"], status=status,
            created_at=row["created_at"], finished_at=row["finished_at"], out_dir=row["out_dir"],
            config_json=row["config_json"], counts=full,
        )

    # -- videos -----------------------------------------------------------------------------------------------

    def done_urls(self) -> dict[str, VideoItem]:
        """Finished videos from URLs, by source: a rerun lists them without asking their site again."""
        return {r.source: r.to_item() for r in self.videos()
                if r.status == VideoStatus.DONE and r.kind == SourceKind.URL}

    def ids_by_identity(self, identities: Iterable[str]) -> dict[str, str]:
        """identity -> the video already known as it (a done one first): the same video given another way (a
        tracking parameter, `localhost`, the page that embeds it) resumes that row instead of starting a second."""
        wanted = [i for i in dict.fromkeys(identities) if i]
        found: dict[str, str] = {}
        conn = self._conn()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = conn.execute(
                f"SELECT identity, video_id FROM videos WHERE identity IN ({','.join('?' * len(chunk))}) "
                "ORDER BY status = 'done' DESC, rowid", chunk)
            for row in rows:
                found.setdefault(row["identity"], row["video_id"])
        return found

    def forget_line_rows(self, line: str, keep: Iterable[str]) -> int:
        """`line` resolved into its videos (`keep`): the rows that stood for the line itself go, everywhere (the
        table, every run's history, the manifest): a stand-in a stop left, or a failure of the line before it
        became videos (a feed that answered 500, a page that timed out). Videos that ran are never dropped.
        Returns how many went."""
        keep = set(keep)
        with self._write() as conn:
            ids = [r["video_id"] for r in conn.execute(
                "SELECT video_id, meta_json, status, attempts, outputs_json FROM videos WHERE input = ?", (line,))
                if r["video_id"] not in keep and (
                    r["meta_json"] == UNRESOLVED_META
                    or (r["status"] == VideoStatus.FAILED.value and r["attempts"] == 0 and r["outputs_json"] == "{}"))]
            for video_id in ids:
                conn.execute("DELETE FROM run_videos WHERE video_id = ?", (video_id,))
                conn.execute("DELETE FROM videos WHERE video_id = ?", (video_id,))
        return len(ids)

    def register_videos(self, run_id: str, items: list[VideoItem]) -> list[VideoRecord]:
        """Attach `items` to the run; returns their records in the order given (duplicates collapsed).

        Positions continue after the run's existing videos, so registering more later (a playlist expanding)
        appends; a video already in the run keeps its place.

        Done videos stay done (resume never redoes work) and keep their folder and run; anything else already
        known (failed, cancelled, skipped, or left downloading/transcribing by a crash) is queued again for
        this run with a fresh attempt count. Items that carry an `error` are recorded failed with it.
        """
        now = self._clock()
        order: list[str] = []
        seen: set[str] = set()
        with self._write() as conn:
            folders = _FolderNames(r[0] for r in conn.execute("SELECT folder FROM videos"))
            member = {
                r[0]: r[1]
                for r in conn.execute("SELECT video_id, position FROM run_videos WHERE run_id = ?", (run_id,))
            }
            next_position = max(member.values(), default=-1) + 1
            for item in items:
                if item.video_id in seen:
                    continue
                seen.add(item.video_id)
                order.append(item.video_id)
                position = member.get(item.video_id)
                if position is None:
                    position = member[item.video_id] = next_position
                    next_position += 1
                existing = conn.execute("SELECT * FROM videos WHERE video_id = ?", (item.video_id,)).fetchone()
                failed = item.error is not None
                status = VideoStatus.FAILED if failed else VideoStatus.QUEUED
                if existing is not None and item.meta:  # the site's latest word (a renamed playlist, say)
                    conn.execute("UPDATE videos SET meta_json = ? WHERE video_id = ?",
                                 (json.dumps(item.meta, sort_keys=True), item.video_id))
                if existing is not None and item.identity and existing["identity"] != item.identity:
                    conn.execute("UPDATE videos SET identity = ? WHERE video_id = ?", (item.identity, item.video_id))
                if existing is None:
                    folder = folders.claim(item.title)
                    conn.execute(
                        "INSERT INTO videos (video_id, position, input, source, kind, title, duration_s, status, "
                        "error, folder, finished_at, run_id, updated_at, meta_json, identity, retryable) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            item.video_id, position, item.input, item.source, SourceKind(item.kind).value,
                            item.title, item.duration_s, status.value, item.error, folder,
                            now if failed else None, run_id, now, json.dumps(item.meta or {}, sort_keys=True),
                            item.identity, int(item.retryable) if failed else None,
                        ),
                    )
                elif existing["status"] == VideoStatus.DONE.value:
                    conn.execute(
                        "UPDATE videos SET position = ?, duration_s = COALESCE(duration_s, ?) WHERE video_id = ?",
                        (position, item.duration_s, item.video_id),
                    )
                else:
                    # A new run starts this video afresh: timings and attempts of the earlier run do not apply.
                    renamed = item.title != existing["title"] and safe_name(item.title) != existing["folder"]
                    if renamed or not is_safe(existing["folder"]):
                        # Not done yet, so nothing is written under its old name: it takes the title the site
                        # gives now (a failed resolution named it after its URL), or, named by an older version
                        # unsafely (a title such as `manifest.json`), a name that cannot fail on every rerun.
                        folders.release(existing["folder"])
                        conn.execute("UPDATE videos SET folder = ?, title = ? WHERE video_id = ?",
                                     (folders.claim(item.title), item.title, item.video_id))
                    conn.execute(
                        "UPDATE videos SET position = ?, input = ?, duration_s = COALESCE(?, duration_s), "
                        "status = ?, attempts = 0, error = ?, note = NULL, worker = '', progress = 0, stage_progress = 0, "
                        "outputs_json = '{}', started_at = NULL, finished_at = ?, elapsed_s = NULL, speed_x = NULL, "
                        "transcribe_started_at = NULL, download_s = NULL, retryable = ?, current_text = '', "
                        "downloaded_bytes = NULL, download_speed = NULL, run_id = ?, updated_at = ? "
                        "WHERE video_id = ?",
                        (
                            position, item.input, item.duration_s, status.value, item.error,
                            now if failed else None, int(item.retryable) if failed else None, run_id, now,
                            item.video_id,
                        ),
                    )
                conn.execute(
                    "INSERT OR IGNORE INTO run_videos (run_id, video_id, position) VALUES (?, ?, ?)",
                    (run_id, item.video_id, position),
                )
        by_id = {r.video_id: r for r in self.videos(run_id)}
        return [by_id[video_id] for video_id in order]

    def claim_outputs(self, video_id: str, wanted: dict[str, str]) -> dict[str, str]:
        """The paths `video_id` may write its formats to: `wanted` when no other video owns any of them, else the
        same names numbered (`t (2).txt`, `t (3).txt` ...) as folder names are; recorded as this video's. A video
        keeps its number: formats added later get the same one."""
        with self._write() as conn:
            row = conn.execute("SELECT MAX(n) FROM output_paths WHERE video_id = ?", (video_id,)).fetchone()
            for n in range(row[0] or 1, 10_000):
                paths = {fmt: numbered(path, n) for fmt, path in wanted.items()}
                owners = {r[0] for r in conn.execute(
                    f"SELECT video_id FROM output_paths WHERE path IN ({','.join('?' * len(paths))})",
                    list(paths.values()))}
                if owners <= {video_id}:
                    conn.executemany("INSERT OR REPLACE INTO output_paths (path, video_id, n) VALUES (?, ?, ?)",
                                     [(p, video_id, n) for p in paths.values()])
                    return paths
        raise ValueError(f"no free name left for {sorted(wanted.values())}")

    def requeue(self, run_id: str, video_ids: Iterable[str], records: list[VideoRecord]) -> list[VideoRecord]:
        """Done videos to do again (their outputs are gone): queued afresh in this run, keeping their folder;
        returns `records` with those rows as they now stand."""
        ids = set(video_ids)
        with self._write() as conn:
            for video_id in ids:
                conn.execute(
                    "UPDATE videos SET status = 'queued', attempts = 0, error = NULL, note = NULL, worker = '', "
                    "progress = 0, stage_progress = 0, outputs_json = '{}', started_at = NULL, finished_at = NULL, "
                    "elapsed_s = NULL, speed_x = NULL, transcribe_started_at = NULL, download_s = NULL, "
                    "retryable = NULL, language = NULL, flags_json = NULL, quality_json = NULL, current_text = '', "
                    "run_id = ?, updated_at = ? WHERE video_id = ?",
                    (run_id, self._clock(), video_id))
        fresh = {r.video_id: r for r in self.videos(run_id) if r.video_id in ids}
        return [fresh.get(r.video_id, r) for r in records]

    def apply_event(self, event: ProgressEvent) -> bool:
        """Persist one event; False when it was ignored (unknown video, or the video is already terminal)."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM videos WHERE video_id = ?", (event.video_id,)).fetchone()
            if row is None:
                return False
            record = _record(row)
            state = state_from_row(record)
            if not advance(state, event):
                return False
            self._save(conn, state)
            return True

    def set_outputs(self, video_id: str, outputs: dict[str, str]) -> bool:
        """Replace a done video's outputs (formats written later from its stored transcript)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE videos SET outputs_json = ?, updated_at = ? WHERE video_id = ? AND status = 'done'",
                (json.dumps(outputs, sort_keys=True), self._clock(), video_id),
            )
            return cur.rowcount > 0

    def set_folder(self, video_id: str, folder: str, outputs: dict[str, str]) -> None:
        """Rename a video's folder (and the outputs inside it), e.g. away from a name an older version allowed."""
        with self._write() as conn:
            conn.execute("UPDATE videos SET folder = ?, outputs_json = ?, updated_at = ? WHERE video_id = ?",
                         (folder, json.dumps(outputs, sort_keys=True), self._clock(), video_id))

    def index_transcript(self, run_id: str, transcript: Transcript) -> int:
        """Make a delivered transcript searchable (library/): its segments replace what the video had indexed."""
        from .library.index import index_video

        with self._write() as conn:
            return index_video(conn, transcript.video_id, run_id, transcript.segments, transcript.language)

    def save_state(self, state: VideoState) -> None:
        """Write one video's state as the run's ledger computed it (ledger.py: the one place state changes)."""
        with self._write() as conn:
            self._save(conn, state)

    def _save(self, conn: sqlite3.Connection, state: VideoState) -> None:
        v = state.progress
        conn.execute(
            "UPDATE videos SET duration_s = ?, status = ?, attempts = ?, error = ?, note = ?, worker = ?, progress = ?, "
            "stage_progress = ?, outputs_json = ?, started_at = ?, finished_at = ?, elapsed_s = ?, speed_x = ?, "
            "transcribe_started_at = ?, download_s = ?, retryable = ?, current_text = ?, downloaded_bytes = ?, "
            "download_speed = ?, language = ?, flags_json = ?, quality_json = ?, updated_at = ? "
            "WHERE video_id = ?",
            (
                v.duration_s, v.status.value, v.attempts, v.error, v.note, v.worker, v.progress, v.stage_progress,
                json.dumps(v.outputs, sort_keys=True), v.started_at, v.finished_at, v.elapsed_s, v.speed_x,
                state.transcribe_started_at, state.download_s,
                None if v.retryable is None else int(v.retryable), v.current_text, v.downloaded_bytes,
                v.download_speed, v.language, *_quality_columns(state.quality), self._clock(),
                v.video_id,
            ),
        )

    def videos(self, run_id: str | None = None) -> list[VideoRecord]:
        """Videos in input order: all of them, or those of one run (with that run's positions)."""
        conn = self._conn()
        if run_id is None:
            rows = conn.execute("SELECT * FROM videos ORDER BY position, rowid").fetchall()
            return [_record(r) for r in rows]
        # A run that has ended shows its own outcome (a later run may have redone its failed videos since).
        cols = ", ".join(f"v.{c}" for c in _VIDEO_COLUMNS if c not in ("position", "status", "error", "note"))
        rows = conn.execute(
            f"SELECT {cols}, rv.position AS position, COALESCE(rv.final_status, v.status) AS status, "
            "CASE WHEN rv.final_status IS NULL THEN v.error ELSE rv.final_error END AS error, "
            "CASE WHEN rv.final_status IS NULL THEN v.note ELSE rv.final_note END AS note "
            "FROM run_videos rv JOIN videos v USING (video_id) WHERE rv.run_id = ? ORDER BY rv.position",
            (run_id,),
        ).fetchall()
        return [_record(r) for r in rows]

    def snapshot(self, run_id: str) -> Snapshot:
        """The run as the live tracker would show it, built from the database alone (any process can call it)."""
        # Only the run's mode and end are needed: `run()` would also count statuses with a second join over every
        # video of the run (a third of the time at 10,000 videos), and the tracker counts them anyway.
        run = self._conn().execute("SELECT mode, created_at, finished_at FROM runs WHERE run_id = ?",
                                   (run_id,)).fetchone()
        if run is None:
            raise KeyError(f"no run {run_id!r} in {self.db_path}")
        tracker = ProgressTracker(run_id, mode=run["mode"], clock=self._clock, started_at=run["created_at"])
        tracker.add_videos(self.videos(run_id))
        if run["finished_at"] is not None:
            tracker.mark_finished(at=run["finished_at"])
        return tracker.snapshot()

    def manifest_entries(self, run_id: str | None) -> list[dict[str, Any]]:
        """One plain dict per video of the run (or of the whole folder with None), in input order."""
        return [
            {
                "input": r.input,
                "source": r.source,
                "video_id": r.video_id,
                "title": r.title,
                "duration_s": r.duration_s,
                "status": r.status.value,
                "error": r.error,
                "note": r.note,
                "attempts": r.attempts,
                "outputs": dict(r.outputs),
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "elapsed_s": r.elapsed_s,
                "speed_x": r.speed_x,
                "language": r.language,
                # How far to trust it: flags (empty: nothing looks wrong), signals, a recheck (null: not done yet).
                "quality": r.quality.to_dict() if r.quality is not None else None,
            }
            for r in self.videos(run_id)
        ]


class _FolderNames:
    """Unique folder names for many videos at once.

    The rule is naming.safe_name's (sanitise, then ` (2)`, ` (3)` ... on a case-insensitive clash), but
    safe_name rescans every taken name per call; remembering the last suffix per name keeps registering
    10,000 videos (even with identical titles) linear instead of quadratic.
    """

    def __init__(self, taken: Iterable[str]) -> None:
        self._taken = {t.lower() for t in taken}
        self._next: dict[str, int] = {}

    def release(self, folder: str) -> None:
        """`folder` is free again (its video takes another name)."""
        self._taken.discard(folder.lower())

    def claim(self, title: str) -> str:
        base = safe_name(title)
        n = self._next.get(base.lower(), 1)
        candidate = base if n == 1 else f"{base} ({n})"
        while candidate.lower() in self._taken:
            n += 1
            candidate = f"{base} ({n})"
        self._next[base.lower()] = n
        self._taken.add(candidate.lower())
        return candidate


def _record(row: sqlite3.Row) -> VideoRecord:
    return VideoRecord(
        video_id=row["video_id"], position=row["position"], input=row["input"], source=row["source"],
        kind=row["kind"], title=row["title"], duration_s=row["duration_s"], status=VideoStatus(row["status"]),
        attempts=row["attempts"], error=row["error"], note=row["note"], worker=row["worker"], progress=row["progress"],
        folder=row["folder"], outputs=json.loads(row["outputs_json"]), started_at=row["started_at"],
        finished_at=row["finished_at"], elapsed_s=row["elapsed_s"], speed_x=row["speed_x"], run_id=row["run_id"],
        updated_at=row["updated_at"], stage_progress=row["stage_progress"],
        transcribe_started_at=row["transcribe_started_at"], current_text=row["current_text"],
        downloaded_bytes=row["downloaded_bytes"], download_speed=row["download_speed"],
        meta=json.loads(row["meta_json"] or "{}"), identity=row["identity"] or "", download_s=row["download_s"],
        retryable=None if row["retryable"] is None else bool(row["retryable"]),
        language=row["language"], quality=_quality(row["flags_json"], row["quality_json"]),
    )


def _quality(flags_json: str | None, quality_json: str | None) -> Quality | None:
    """A done video's Quality from its two columns (flags apart: they are what every filter reads)."""
    if flags_json is None:
        return None
    data = json.loads(quality_json or "{}")
    data["flags"] = json.loads(flags_json)
    return Quality.from_dict(data)


def _quality_columns(quality: Quality | None) -> tuple[str | None, str | None]:
    if quality is None:
        return None, None
    data = quality.to_dict()
    return json.dumps(data.pop("flags"), ensure_ascii=False), json.dumps(data, ensure_ascii=False)

