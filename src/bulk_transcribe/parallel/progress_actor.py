"""The run's progress actor: every worker's and the driver's events land here; screens only read `snapshot()`.

It applies events to the same `ProgressTracker` an in-process run uses (so both modes look alike) and writes
them through to the SQLite session store (throttled for progress ticks, always for status changes), so the store
is complete when the cluster goes away and a rerun can resume. It is an async actor: its methods never await
while touching state, so each runs to completion in order, and a `snapshot()` never queues behind a thread pool.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

from ..models import EventKind, ProgressEvent, Snapshot, VideoStatus
from ..progress import ProgressTracker
from .metrics import RunMetrics

STORE_PROGRESS_INTERVAL_S = 1.0
"""Least time between two progress writes of one video to SQLite (status changes are always written)."""

_PROGRESS_KINDS = frozenset({EventKind.DOWNLOAD_PROGRESS, EventKind.TRANSCRIBE_PROGRESS})


class ProgressActor:
    """Plain class (tested without Ray); `cluster.py` makes it an async named actor per run."""

    def __init__(self, run_id: str, mode: str = "parallel", videos: Iterable[Any] = (),
                 db_path: str | Path | None = None, *, metrics: bool = False) -> None:
        self.run_id = run_id
        self.tracker = ProgressTracker(run_id, mode)
        self.tracker.add_videos(list(videos))
        self.store = None
        if db_path is not None:
            from ..session_manager import SessionStore

            self.store = SessionStore(db_path)
        self._last_write: dict[str, float] = {}
        self.applied = 0
        self.store_writes = 0
        self.metrics = RunMetrics(run_id) if metrics else None
        self._cancel_requested = False

    def _apply(self, event: ProgressEvent) -> bool:
        before = self.tracker.get(event.video_id)
        accepted = self.tracker.apply(event)
        if not accepted:
            return False
        self.applied += 1
        if self.metrics is not None and before is not None:
            self.metrics.on_event(event, before.status)
        if self.store is not None:
            if event.kind in _PROGRESS_KINDS:
                now = time.monotonic()
                if now - self._last_write.get(event.video_id, float("-inf")) < STORE_PROGRESS_INTERVAL_S:
                    return True
                self._last_write[event.video_id] = now
            self.store.apply_event(event)
            self.store_writes += 1
        return True

    # Sync bodies: Ray runs them on the actor's event loop as plain calls; see async wrappers below.
    def apply_events(self, events: list[ProgressEvent]) -> int:
        applied = sum(1 for e in events if self._apply(e))
        self._gauge_queue()
        return applied

    def _gauge_queue(self) -> None:
        """Videos waiting for a worker, for the Ray dashboard's metrics."""
        if self.metrics is not None:
            self.metrics.queue_length(self.tracker.count(VideoStatus.QUEUED))

    def add_videos(self, records: list[Any]) -> int:
        """Videos join the run as they are resolved (the table shows them at once)."""
        self.tracker.add_videos(records)
        self._gauge_queue()
        return len(self.tracker)

    def set_inputs(self, resolved: int, total: int) -> None:
        self.tracker.set_inputs(resolved, total)

    def request_cancel(self) -> None:
        """Anyone may ask (the dashboard of another process, a second CLI); the driver polls `cancel_requested`."""
        self._cancel_requested = True

    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def snapshot(self) -> Snapshot:
        return self.tracker.snapshot()

    def status_of(self, video_id: str) -> VideoStatus | None:
        row = self.tracker.get(video_id)
        return row.status if row else None

    def mark_finished(self) -> Snapshot:
        self.tracker.mark_finished()
        return self.tracker.snapshot()

    def stats(self) -> dict[str, int]:
        return {"applied": self.applied, "store_writes": self.store_writes, "videos": len(self.tracker)}

    def flush(self) -> bool:
        """A barrier: returns once every event sent before it has been applied (calls run in order)."""
        return True


class AsyncProgressActor(ProgressActor):
    """The actor body Ray runs: `async def` makes it an async actor (one event loop, no thread pool)."""

    async def apply_events(self, events: list[ProgressEvent]) -> int:  # type: ignore[override]
        return ProgressActor.apply_events(self, events)

    async def snapshot(self) -> Snapshot:  # type: ignore[override]
        return ProgressActor.snapshot(self)

    async def add_videos(self, records: list[Any]) -> int:  # type: ignore[override]
        return ProgressActor.add_videos(self, records)

    async def set_inputs(self, resolved: int, total: int) -> None:  # type: ignore[override]
        ProgressActor.set_inputs(self, resolved, total)

    async def request_cancel(self) -> None:  # type: ignore[override]
        ProgressActor.request_cancel(self)

    async def cancel_requested(self) -> bool:  # type: ignore[override]
        return ProgressActor.cancel_requested(self)

    async def status_of(self, video_id: str) -> VideoStatus | None:  # type: ignore[override]
        return ProgressActor.status_of(self, video_id)

    async def mark_finished(self) -> Snapshot:  # type: ignore[override]
        return ProgressActor.mark_finished(self)

    async def stats(self) -> dict[str, int]:  # type: ignore[override]
        return ProgressActor.stats(self)

    async def flush(self) -> bool:  # type: ignore[override]
        return True
