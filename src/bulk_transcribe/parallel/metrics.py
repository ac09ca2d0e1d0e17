"""Custom metrics for the Ray dashboard (Metrics tab / Prometheus): queue length, active videos, audio seconds
done, failures. Every metric carries the run id as a tag, so two runs on one cluster stay apart.

Metrics are best effort: when Ray's metrics agent is absent (e.g. a cluster started without the dashboard) the
calls must never break a run, so each one is guarded.
"""

from __future__ import annotations

from typing import Any

from ..models import EventKind, ProgressEvent, VideoStatus

PREFIX = "bulk_transcribe_"


class RunMetrics:
    def __init__(self, run_id: str) -> None:
        self.tags = {"run_id": run_id}
        self.active = 0
        self._metrics: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._metrics is None:
            try:
                from ray.util import metrics

                keys = ("run_id",)
                self._metrics = {
                    "queue": metrics.Gauge(PREFIX + "queue_length", "Videos waiting for a worker", keys),
                    "active": metrics.Gauge(PREFIX + "active_videos", "Videos downloading or transcribing", keys),
                    "audio": metrics.Counter(PREFIX + "audio_seconds_done", "Seconds of audio transcribed", keys),
                    "failures": metrics.Counter(PREFIX + "failures", "Videos that failed for good", keys),
                    "retries": metrics.Counter(PREFIX + "retries", "Attempts that will be retried", keys),
                }
            except Exception:  # noqa: BLE001 — no metrics is better than no run
                self._metrics = {}
        return self._metrics

    def _call(self, name: str, method: str, value: float) -> None:
        metric = self._get().get(name)
        if metric is None:
            return
        try:
            getattr(metric, method)(value, tags=self.tags)
        except Exception:  # noqa: BLE001
            pass

    def queue_length(self, n: int) -> None:
        self._call("queue", "set", n)

    def on_event(self, event: ProgressEvent, before: VideoStatus) -> None:
        """Called after the tracker accepted `event` for a video that was in status `before`."""
        after_active = event.kind in (
            EventKind.DOWNLOAD_STARTED, EventKind.DOWNLOAD_PROGRESS, EventKind.DOWNLOADED,
            EventKind.TRANSCRIBE_STARTED, EventKind.TRANSCRIBE_PROGRESS,
        )
        if before.is_active != after_active:
            self.active += 1 if after_active else -1
            self._call("active", "set", max(0, self.active))
        if event.kind == EventKind.DONE and event.duration_s:
            self._call("audio", "inc", float(event.duration_s))
        elif event.kind == EventKind.FAILED:
            self._call("failures", "inc", 1)
        elif event.kind == EventKind.RETRYING:
            self._call("retries", "inc", 1)
