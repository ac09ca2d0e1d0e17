"""A Ray worker's progress events, shipped to the run's progress actor in order and in batches."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from ..models import ProgressEvent

EVENT_BATCH_S = 0.2
"""Longest a worker holds progress events before sending them to the progress actor in one call."""


class EventSender:
    """Ships a worker's events to the progress actor in order, batched, off the transcription thread.

    Each batch is sent and awaited before the next, so the progress actor sees one worker's events in the order
    they happened; `flush()` returns once everything emitted so far has been applied.
    """

    def __init__(self, target: Any, interval_s: float = EVENT_BATCH_S) -> None:
        self.target = target
        self.interval_s = interval_s
        self._queue: queue.Queue[ProgressEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="event-sender", daemon=True)
        self._thread.start()

    def __call__(self, event: ProgressEvent) -> None:
        self._queue.put(event)

    def _loop(self) -> None:
        import ray

        while True:
            first = self._queue.get()
            batch = [first]
            deadline = time.monotonic() + self.interval_s
            while True:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            events = [e for e in batch if e is not None]
            try:
                if events:
                    ray.get(self.target.apply_events.remote(events))
            except Exception:  # noqa: BLE001 — progress is advisory; the driver reports every outcome itself
                pass
            finally:
                for _ in batch:
                    self._queue.task_done()

    def flush(self) -> None:
        self._queue.join()
