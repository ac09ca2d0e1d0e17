"""The run's progress actor: every worker's and the driver's events land here; screens only read `snapshot()`.

It holds the run's Ledger (ledger.py), the same one an in-process run holds: events change the tracker screens read
and are written through to the SQLite session store (throttled for progress ticks, always for status changes), so
both modes look alike and the store is complete when the cluster goes away and a rerun can resume. It is an async actor: its methods never await
while touching state, so each runs to completion in order, and a `snapshot()` never queues behind a thread pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..ledger import Ledger
from ..models import ProgressEvent, Snapshot, VideoStatus
from .metrics import RunMetrics


class ProgressActor:
    """Plain class (tested without Ray); `cluster.py` makes it an async named actor per run. Its ledger is the run's:
    the one place events change a video's state, live and in SQLite."""

    def __init__(self, run_id: str, mode: str = "parallel", videos: Iterable[Any] = (),
                 db_path: str | Path | None = None, *, metrics: bool = False) -> None:
        from ..session_manager import SessionStore

        self.run_id = run_id
        self.metrics = RunMetrics(run_id) if metrics else None
        store = SessionStore(db_path) if db_path is not None else None
        self.ledger = Ledger(run_id, mode, store,
                             observer=self.metrics.on_event if self.metrics is not None else None)
        self.ledger.add_videos(list(videos))
        self._cancel_requested = False

    @property
    def tracker(self):
        return self.ledger.tracker

    # Sync bodies: Ray runs them on the actor's event loop as plain calls; see async wrappers below.
    def apply_events(self, events: list[ProgressEvent]) -> int:
        applied = self.ledger.apply(events)
        self._gauge_queue()
        return applied

    def _gauge_queue(self) -> None:
        """Videos waiting for a worker, for the Ray dashboard's metrics."""
        if self.metrics is not None:
            self.metrics.queue_length(self.tracker.count(VideoStatus.QUEUED))

    def add_videos(self, records: list[Any]) -> int:
        """Videos join the run as they are resolved (the table shows them at once)."""
        count = self.ledger.add_videos(records)
        self._gauge_queue()
        return count

    def set_inputs(self, resolved: int, total: int) -> None:
        self.ledger.set_inputs(resolved, total)

    def request_cancel(self) -> None:
        """Anyone may ask (the dashboard of another process, a second CLI); the driver polls `cancel_requested`."""
        self._cancel_requested = True

    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def snapshot(self) -> Snapshot:
        return self.ledger.snapshot()

    def status_of(self, video_id: str) -> VideoStatus | None:
        row = self.tracker.get(video_id)
        return row.status if row else None

    def mark_finished(self) -> Snapshot:
        return self.ledger.finish()

    def stats(self) -> dict[str, int]:
        return {"applied": self.ledger.applied, "store_writes": self.ledger.store_writes,
                "videos": len(self.tracker)}

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
