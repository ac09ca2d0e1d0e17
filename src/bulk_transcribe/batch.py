"""A batch from inputs to manifest: resolve, register (resume), run in the chosen mode, summarise.

The CLI calls `run_batch` and blocks; the dashboard calls `start_batch` and polls the handle. Both modes report
through the same events and the same Snapshot, and both write the SQLite store as they go, so a crash loses only
the video in flight and a rerun on the same OUT resumes.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import traceback
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .backfill import BackfillResult

from .config import MANIFEST_NAME, RunConfig
from .models import EventKind, ProgressEvent, Snapshot, VideoStatus
from .progress import ProgressTracker
from .session_manager import SessionStore, VideoRecord
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
    backfill: "BackfillResult | None" = None
    """Outputs written for done videos from their stored transcripts (a rerun with more formats)."""
    archived: int = 0
    """Videos left out because the download archive lists them."""

    @property
    def mode(self) -> str:
        return "parallel" if self.config.parallel else "sequential"

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
    """Resolve inputs and register them; done videos from earlier runs on the same OUT stay done (resume)."""
    config = config.with_env_overrides()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    resolved = resolve_inputs(config.inputs, config.input_files, options=config.download)
    archived: list = []
    if config.download_archive:
        from .archive import read_archive, split_archived

        resolved.items, archived = split_archived(resolved.items, read_archive(Path(config.download_archive)))
    store = SessionStore(config.state_db)
    run_id = store.begin_run(config, "parallel" if config.parallel else "sequential")
    records = store.register_videos(run_id, resolved.items)
    from .backfill import repair_unsafe_folders, write_missing_outputs

    repair_unsafe_folders(config, store, records)  # before the manifest is written: it may sit where one belongs
    backfill = write_missing_outputs(config, store, records)  # more formats for done videos, without a model
    return PreparedBatch(config, store, run_id, records, resolved.duplicates, backfill, len(archived))


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
        self._thread = threading.Thread(target=self._run, name=f"batch-{self.run_id}", daemon=True)

    def start(self) -> "BatchHandle":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = _execute(self.prepared, self._sink, self._cancel, self._on_parallel_snapshot)
        except BaseException as exc:  # noqa: BLE001 — a dead thread must never leave a caller waiting forever
            traceback.print_exc()
            manifest = self.prepared.config.out_dir / MANIFEST_NAME
            self.result = BatchResult(self.run_id, {}, manifest, f"the batch crashed: {_one_line(exc)}")
        self.error = self.result.error

    def _on_parallel_snapshot(self, snapshot: Snapshot) -> None:
        self._latest_parallel = snapshot

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
        return self.result is not None

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done


def _execute(
    prepared: PreparedBatch,
    sink: EventSink,
    cancel_event: threading.Event,
    on_parallel_snapshot: Callable[[Snapshot], None] | None = None,
) -> BatchResult:
    config, store, run_id = prepared.config, prepared.store, prepared.run_id
    error = None
    try:
        if config.parallel:
            from .parallel.runner import run_parallel  # sequential never imports ray

            run_parallel(config, store, run_id, prepared.todo, cancel_event=cancel_event,
                         on_snapshot=on_parallel_snapshot)
        else:
            from .sequential import run_sequential

            run_sequential(config, prepared.todo, sink, cancel_event=cancel_event)
    except Exception as exc:  # noqa: BLE001 — a batch-level failure (e.g. Ray unreachable) is reported, not raised
        error = _one_line(exc)
        # Nothing in flight survives a batch failure: mark what is left so the store never shows ghosts.
        try:
            for record in store.videos(run_id):
                if not record.status.is_terminal:
                    sink(ProgressEvent(record.video_id, EventKind.FAILED, error=f"batch stopped: {error}"))
        except (OSError, sqlite3.Error):
            pass  # the store cannot be written (disk full): a rerun requeues whatever is not done
    snapshot = store.snapshot(run_id)
    status = "failed" if error else ("cancelled" if cancel_event.is_set() else "finished")
    manifest = config.out_dir / MANIFEST_NAME
    try:
        store.finish_run(run_id, status)
        manifest = write_manifest(config.out_dir, store.manifest_entries(run_id))
    except (OSError, sqlite3.Error) as exc:
        # Disk full (or OUT gone read-only) must end the batch with its cause, never leave the caller waiting on a
        # thread that died; every write is atomic, so the outputs and manifest already there stay intact.
        error = error or f"cannot record the end of the run in {config.out_dir}: {_one_line(exc)}"
    return BatchResult(run_id, snapshot.counts, manifest, error)


BATCH_ERROR_CHARS = 300
"""Longest batch-level error kept: Ray's errors run to pages, and this line lands on every unfinished video."""


def _one_line(exc: BaseException) -> str:
    """The type and the first non-empty line of the message, capped at BATCH_ERROR_CHARS."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {' '.join(first.split())}" if first else type(exc).__name__
    return text if len(text) <= BATCH_ERROR_CHARS else text[: BATCH_ERROR_CHARS - 1] + "…"


def start_batch(config: RunConfig, prepared: PreparedBatch | None = None) -> BatchHandle:
    return BatchHandle(prepared or prepare_batch(config)).start()


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
    try:
        while not handle.wait(poll_s):
            if cancel_event is not None and cancel_event.is_set():
                handle.cancel()
            if on_snapshot:
                on_snapshot(handle.snapshot())
    except KeyboardInterrupt:
        handle.cancel()
        handle.wait()
    if on_snapshot:
        on_snapshot(handle.snapshot())
    assert handle.result is not None
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
    store = SessionStore(store_path)
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
