"""One run's ledger: the live tracker every screen reads and the SQLite store that survives the run, kept in step
by one object, whichever process holds it (this one for a sequential run, the progress actor for a parallel one).

Each event is applied once, to the tracker (progress.advance decides what it changes); the row it leaves is what
is written to the store, so the store never computes a state change of its own. Status changes are written at
once; progress ticks of one video at most once per STORE_PROGRESS_INTERVAL_S, so a crash loses at most a second of
progress and never a status.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

from .models import EventKind, ProgressEvent, Snapshot, VideoStatus
from .progress import ProgressTracker
from .session_manager import SessionStore

STORE_PROGRESS_INTERVAL_S = 1.0
"""Least time between two progress writes of one video to SQLite (status changes are always written)."""

PROGRESS_KINDS = frozenset({EventKind.DOWNLOAD_PROGRESS, EventKind.TRANSCRIBE_PROGRESS})
"""Events that only move a bar: throttled on their way to the store."""

Observer = Callable[[ProgressEvent, VideoStatus], None]
"""Told of every accepted event with the video's status before it (the Ray dashboard's metrics)."""


class Ledger:
    """The tracker and the store of one run. Not thread-safe: its owner serialises calls (a lock in this process,
    or the progress actor's single event loop)."""

    def __init__(self, run_id: str, mode: str, store: SessionStore | None, *, observer: Observer | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        run = store.run(run_id) if store is not None else None
        # Speeds are measured from the run's own start, whichever process holds the ledger and since when.
        self.tracker = ProgressTracker(run_id, mode, started_at=run.created_at if run is not None else None)
        self.store = store
        self.observer = observer
        self._clock = clock
        self._last_write: dict[str, float] = {}
        self._unwritten: set[str] = set()
        """Videos whose latest progress tick was throttled: written by flush()."""
        self.applied = 0
        """Events accepted so far."""
        self.store_writes = 0
        """Rows written to the store so far (fewer than `applied`: progress ticks are throttled)."""

    def add_videos(self, records: Iterable[Any]) -> int:
        """Videos join as they are registered (the store already has them); returns how many the run holds."""
        self.tracker.add_videos(records)
        return len(self.tracker)

    def apply(self, events: Sequence[ProgressEvent]) -> int:
        """Apply events in order; returns how many were accepted (a late event for a finished video is not)."""
        return sum(1 for event in events if self._apply(event))

    def _apply(self, event: ProgressEvent) -> bool:
        before = self.tracker.get(event.video_id)
        if before is None or not self.tracker.apply(event):
            return False
        self.applied += 1
        if self.observer is not None:
            self.observer(event, before.status)
        if self.store is None:
            return True
        if self._throttled(event):
            self._unwritten.add(event.video_id)
            return True
        self._write(event.video_id)
        return True

    def _write(self, video_id: str) -> None:
        state = self.tracker.state_of(video_id)
        if state is not None:
            self.store.save_state(state)
            self.store_writes += 1
        self._unwritten.discard(video_id)

    def flush(self) -> None:
        """Write the progress ticks the throttle held back: the store then holds every video as this ledger does
        (another ledger, the progress actor, takes the run over from the store)."""
        if self.store is not None:
            for video_id in list(self._unwritten):
                self._write(video_id)

    def _throttled(self, event: ProgressEvent) -> bool:
        if event.kind not in PROGRESS_KINDS:
            return False
        now = self._clock()
        if now - self._last_write.get(event.video_id, float("-inf")) < STORE_PROGRESS_INTERVAL_S:
            return True
        self._last_write[event.video_id] = now
        return False

    def set_inputs(self, resolved: int, total: int) -> None:
        self.tracker.set_inputs(resolved, total)

    def snapshot(self) -> Snapshot:
        return self.tracker.snapshot()

    def finish(self) -> Snapshot:
        """The run is over: freeze the wall clock its figures are measured against."""
        self.tracker.mark_finished()
        return self.tracker.snapshot()
