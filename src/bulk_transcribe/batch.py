"""A batch from inputs to manifest: resolve, register (resume), run in the chosen mode, summarise.

The CLI calls `run_batch` and blocks; the dashboard calls `start_batch` and polls the handle. Both modes report
through the same events and the same Snapshot, and both write the SQLite store as they go, so a crash loses only
the video in flight and a rerun on the same OUT resumes.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import threading
import traceback
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .backfill import BackfillResult

from .config import MANIFEST_NAME, WORK_DIR_NAME, RunConfig
from .models import EventKind, ProgressEvent, RunMode, RunStatus, Snapshot, SourceKind, VideoItem, VideoStatus
from .progress import ProgressTracker
from .redact import credentials_from, redact_text
from .session_manager import OwnerLock, SessionStore, VideoRecord
from .sources import resolve_inputs
from .writers import write_manifest

STORE_PROGRESS_INTERVAL_S = 1.0
"""Least time between two progress writes of one video to SQLite (status changes are always written)."""

_PROGRESS_KINDS = frozenset({EventKind.DOWNLOAD_PROGRESS, EventKind.TRANSCRIBE_PROGRESS})


@dataclass
class PreparedBatch:
    """A run registered in the store, its videos resolved (titles, durations) but not yet processed."""

    config: RunConfig
    store: SessionStore
    run_id: str
    records: list[VideoRecord]
    duplicates: list[str] = field(default_factory=list)
    lock: OwnerLock | None = None
    """This process's ownership of OUT, held until the batch ends (released by BatchHandle or `release`)."""
    backfill: "BackfillResult | None" = None
    """Outputs written for done videos from their stored transcripts (a rerun with more formats)."""
    archived: int = 0
    """Videos left out because the download archive lists them."""

    @property
    def mode(self) -> RunMode:
        return RunMode.PARALLEL if self.config.parallel else RunMode.SEQUENTIAL

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    @property
    def todo(self) -> list[VideoRecord]:
        return [r for r in self.records if r.status == VideoStatus.QUEUED]


@dataclass
class BatchResult:
    run_id: str
    counts: dict[str, int]
    manifest: Path
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when every video is done, 1 when any failed or was cancelled, or the batch itself failed."""
        bad = sum(self.counts.get(s.value, 0) for s in (VideoStatus.FAILED, VideoStatus.CANCELLED))
        return 1 if bad or self.error else 0


def prepare_batch(config: RunConfig) -> PreparedBatch:
    """Take ownership of OUT, resolve inputs and register them; done videos from earlier runs stay done (resume).

    Raises FolderBusy (naming the owner) when another live process, or another run of this one, owns OUT.
    """
    config = config.with_env_overrides()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    lock = OwnerLock(config.out_dir).acquire()
    try:
        # What OUT/.work holds at the start was cut off by a crash or a kill (we own OUT now, so nobody else is
        # downloading there): never resumed (yt-dlp restarts each download), never an input, so it goes.
        shutil.rmtree(config.out_dir / WORK_DIR_NAME, ignore_errors=True)
        store = SessionStore(config.state_db)
        store.close_stale_runs()  # runs whose process was killed: we own OUT now, so nobody runs them
        resolved = resolve_inputs(config.inputs, config.input_files, options=config.download,
                                  out_dir=config.out_dir)
        resolved.items.extend(refused_item(line, why) for line, why in config.rejected)
        archived: list = []
        if config.download_archive:
            from .archive import read_archive, split_archived

            resolved.items, archived = split_archived(resolved.items, read_archive(Path(config.download_archive)))
        if resolved.credentials:  # passwords from the inputs, for the downloads only (never stored: redact.py)
            config = replace(config, download=replace(config.download,
                                                      url_credentials=credentials_from(resolved.credentials)))
        mode = RunMode.PARALLEL if config.parallel else RunMode.SEQUENTIAL
        run_id = store.begin_run(config, mode.value)
        lock.record(run_id)
        records = store.register_videos(run_id, resolved.items)
        if resolved.duplicates:
            store.record_duplicates(run_id, resolved.duplicates)
        from .backfill import repair_unsafe_folders, write_missing_outputs

        repair_unsafe_folders(config, store, records)  # before the manifest is written: it may sit where one belongs
        backfill = write_missing_outputs(config, store, records)  # more formats for done videos, without a model
    except BaseException:
        lock.release()
        raise
    return PreparedBatch(config, store, run_id, records, resolved.duplicates, lock, backfill, len(archived))


def refused_item(line: str, reason: str) -> VideoItem:
    """A failed row for an input line a front end refused (outside the media folder, not a URL): data, like any
    other failure, so it shows in the table and the manifest (credentials in it redacted, as everywhere)."""
    line, reason = redact_text(line), redact_text(reason)
    kind = SourceKind.URL if "://" in line else SourceKind.FILE
    return VideoItem(line, kind, line, title=line, error=reason)


class EventSink:
    """Fans each event out to the in-process tracker and (throttled for progress) to the SQLite store."""

    def __init__(self, tracker: ProgressTracker, store: SessionStore) -> None:
        self.tracker = tracker
        self.store = store
        self._lock = threading.Lock()
        self._last_write: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self.tracker.apply(event)
        if event.kind in _PROGRESS_KINDS:
            now = time.monotonic()
            if now - self._last_write.get(event.video_id, float("-inf")) < STORE_PROGRESS_INTERVAL_S:
                return
            self._last_write[event.video_id] = now
        self.store.apply_event(event)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self.tracker.snapshot()


class BatchHandle:
    """A batch running outside the caller's thread. `snapshot()` is cheap: poll it as often as a screen likes."""

    def __init__(self, prepared: PreparedBatch) -> None:
        self.prepared = prepared
        self.run_id = prepared.run_id
        self.mode = prepared.mode
        self.error: str | None = None
        self.result: BatchResult | None = None
        self._cancel = threading.Event()
        tracker = ProgressTracker(prepared.run_id, self.mode)
        tracker.add_videos(prepared.records)
        self._sink = EventSink(tracker, prepared.store)
        self._latest_parallel: Snapshot | None = None
        self.phase: str | None = None
        """What the batch is busy with before videos flow ("starting Ray", "loading the model on 2 workers")."""
        self.phase_since: float | None = None
        # Waiters watch this event, not Thread.join: on Python 3.11 a join interrupted by KeyboardInterrupt can
        # mark a still-running thread as stopped, and the caller would go on without a result.
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"batch-{self.run_id}", daemon=True)

    def start(self) -> "BatchHandle":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = _execute(self.prepared, self._sink, self._cancel, self._on_parallel_snapshot,
                                   self._on_phase)
        except BaseException as exc:  # noqa: BLE001 — a dead thread must never leave a caller waiting forever
            traceback.print_exc()
            manifest = self.prepared.config.out_dir / MANIFEST_NAME
            self.result = BatchResult(self.run_id, {}, manifest, f"the batch crashed: {_one_line(exc)}")
        finally:
            self._on_phase(None)
            self.prepared.release()
            if self.result is not None:
                self.error = self.result.error
            self._finished.set()

    def _on_parallel_snapshot(self, snapshot: Snapshot) -> None:
        self._latest_parallel = snapshot

    def _on_phase(self, phase: str | None) -> None:
        self.phase, self.phase_since = phase, (time.time() if phase else None)

    def snapshot(self) -> Snapshot:
        # In parallel mode the progress actor is the source of truth; the driver loop pushes its snapshots here.
        if self._latest_parallel is not None and not self.done:
            return self._latest_parallel
        if self.mode == "parallel" and self.done:
            return self.prepared.store.snapshot(self.run_id)
        return self._sink.snapshot()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)


def _execute(
    prepared: PreparedBatch,
    sink: EventSink,
    cancel_event: threading.Event,
    on_parallel_snapshot: Callable[[Snapshot], None] | None = None,
    on_phase: Callable[[str | None], None] | None = None,
) -> BatchResult:
    config, store, run_id = prepared.config, prepared.store, prepared.run_id
    error = None
    try:
        if config.parallel:
            from .parallel.runner import run_parallel  # sequential never imports ray

            run_parallel(config, store, run_id, prepared.todo, cancel_event=cancel_event,
                         on_snapshot=on_parallel_snapshot, on_phase=on_phase)
        else:
            from .sequential import run_sequential

            run_sequential(config, prepared.todo, sink, cancel_event=cancel_event, on_phase=on_phase)
    except Exception as exc:  # noqa: BLE001 — a batch-level failure (e.g. Ray unreachable) is reported, not raised
        error = _one_line(exc)
        # Nothing in flight survives a batch failure: mark what is left so the store never shows ghosts.
        try:
            for record in store.videos(run_id):
                if not record.status.is_terminal:
                    sink(ProgressEvent(record.video_id, EventKind.FAILED, error=f"batch stopped: {error}"))
        except (OSError, sqlite3.Error):
            pass  # the store cannot be written (disk full): a rerun requeues whatever is not done
    _remove_if_empty(config.out_dir / WORK_DIR_NAME)
    status = RunStatus.FAILED if error else (RunStatus.CANCELLED if cancel_event.is_set() else RunStatus.FINISHED)
    manifest = config.out_dir / MANIFEST_NAME
    snapshot = store.snapshot(run_id)
    try:
        store.finish_run(run_id, status.value)
        snapshot = store.snapshot(run_id)
        # Every video this folder holds, not only this run's: a second batch into the same OUT adds to it.
        manifest = write_manifest(config.out_dir, store.manifest_entries(None), duplicates=prepared.duplicates)
    except (OSError, sqlite3.Error) as exc:
        # Disk full (or OUT gone read-only) must end the batch with its cause, never leave the caller waiting on a
        # thread that died; every write is atomic, so the outputs and manifest already there stay intact.
        error = error or f"cannot record the end of the run in {config.out_dir}: {_one_line(exc)}"
    return BatchResult(run_id, snapshot.counts, manifest, error)


def _remove_if_empty(folder: Path) -> None:
    """Scratch space leaves no empty folder behind in the user's output (each run made an empty .work/)."""
    try:
        folder.rmdir()
    except OSError:
        pass  # absent, or still holding kept or partial files


BATCH_ERROR_CHARS = 300
"""Longest batch-level error kept: Ray's errors run to pages, and this line lands on every unfinished video."""


def _one_line(exc: BaseException) -> str:
    """The type and the first non-empty line of the message, capped at BATCH_ERROR_CHARS."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {' '.join(first.split())}" if first else type(exc).__name__
    return text if len(text) <= BATCH_ERROR_CHARS else text[: BATCH_ERROR_CHARS - 1] + "…"


def start_batch(config: RunConfig, prepared: PreparedBatch | None = None) -> BatchHandle:
    prepared = prepared or prepare_batch(config)
    try:
        return BatchHandle(prepared).start()
    except BaseException:
        prepared.release()
        raise


def run_batch(
    config: RunConfig,
    *,
    prepared: PreparedBatch | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    poll_s: float = 0.5,
    cancel_event: threading.Event | None = None,
) -> BatchResult:
    """Run a whole batch and block until it ends, calling `on_snapshot` about every `poll_s` seconds."""
    handle = start_batch(config, prepared)
    while True:
        try:
            if handle.wait(poll_s):
                break
            if cancel_event is not None and cancel_event.is_set():
                handle.cancel()
            if on_snapshot:
                on_snapshot(handle.snapshot())
        except KeyboardInterrupt:  # callers without their own signal handling: Ctrl-C is a graceful stop
            handle.cancel()
    if on_snapshot:
        on_snapshot(handle.snapshot())
    assert handle.result is not None  # set before the finished event, whatever happened in the thread
    return handle.result


def retry_failed(config: RunConfig, run_id: str) -> BatchHandle:
    """Start a new run over the same inputs; failed and cancelled videos go back to the queue, done ones stay done."""
    return start_batch(config)


def attach_snapshot(out_dir: Path, run_id: str, ray_address: str | None = None) -> Snapshot | None:
    """Read a run this process did not start: from its live progress actor when it is parallel and still running,
    otherwise from the SQLite store in OUT (works after a crash or a server restart)."""
    store_path = Path(out_dir) / RunConfig().state_db.name
    if not store_path.exists():
        return None
    store = SessionStore(store_path, read_only=True)  # a reader: never writes, works on a read-only disk
    run = store.run(run_id)
    if run is None:
        return None
    # Only look for live actors where they can be: a cluster named by the caller, or the Ray this process already
    # joined. Starting a Ray just to search it would cost seconds per poll and could never find the run.
    if run.mode == "parallel" and run.status == "running" and (ray_address or _ray_connected()):
        try:
            from .parallel.cluster import attach

            live = attach(run_id, ray_address)
            if live is not None:
                return live.snapshot()
        except Exception:  # noqa: BLE001 — the cluster may be gone; the store still knows the run
            pass
    return store.snapshot(run_id)


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")  # never import ray here: sequential mode must not pay for it
    return bool(ray is not None and ray.is_initialized())
