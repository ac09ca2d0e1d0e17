"""The in-process runner: one model, one video at a time, no Ray. It is the default and the rollback path, and it
feeds the same events as the parallel engine so every screen and output looks the same whichever mode ran."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

from .config import RunConfig
from .models import EventKind, ProgressEvent
from .pipeline import VideoProcessor, deliver, failure_reason, needs_safer_retry, should_retry
from .session_manager import VideoRecord

RETRY_BACKOFF_S = 1.0
"""Pause before the second attempt of a failed video; doubles per attempt."""

WORKER_NAME = "local"


def run_sequential(
    config: RunConfig,
    records: Sequence[VideoRecord],
    emit: Callable[[ProgressEvent], None],
    *,
    cancel_event: threading.Event | None = None,
    work_dir: Path | None = None,
    processor: VideoProcessor | None = None,
    on_phase: Callable[[str | None], None] | None = None,
) -> None:
    """Process `records` in order; every one ends with exactly one terminal event (done, failed or cancelled)."""
    cancel_event = cancel_event or threading.Event()
    todo = list(records)
    if not todo:
        return
    # The model loads once, and only when there is work: a resumed run with nothing left costs nothing.
    if processor is None:
        if on_phase:
            on_phase("loading the model")
        processor = VideoProcessor(config, work_dir or config.out_dir / ".work", WORKER_NAME)
        if on_phase:
            on_phase(None)
    for index, record in enumerate(todo):
        if cancel_event.is_set():
            for rest in todo[index:]:
                emit(ProgressEvent(rest.video_id, EventKind.CANCELLED, error="cancelled before it started"))
            return
        _run_one(config, record, processor, emit, cancel_event)


def _run_one(config, record, processor, emit, cancel_event) -> None:
    item = record.to_item()
    safer = False
    for attempt in range(1, config.max_attempts + 1):
        try:
            transcript = processor.process(item, emit, cancel_event.is_set, safer=safer)
            emit(deliver(config, record.folder, item, transcript, attempt, WORKER_NAME))
            return
        except Exception as exc:  # noqa: BLE001 — one bad video must never stop the batch
            if cancel_event.is_set():
                emit(ProgressEvent(item.video_id, EventKind.CANCELLED, error="cancelled", attempt=attempt))
                return
            reason = failure_reason(exc)
            if should_retry(exc, attempt, config.max_attempts):
                safer = safer or needs_safer_retry(exc)
                emit(ProgressEvent(item.video_id, EventKind.RETRYING, error=reason, attempt=attempt,
                                   worker=WORKER_NAME))
                cancel_event.wait(RETRY_BACKOFF_S * 2 ** (attempt - 1))
                continue
            emit(ProgressEvent(item.video_id, EventKind.FAILED, error=reason, attempt=attempt, worker=WORKER_NAME))
            return
