"""Snapshot -> what the monitor shows: table rows, the global summary, one card per video in progress.

Plain functions over `models.Snapshot`, so they are tested on real snapshots without a browser, and both modes
(sequential and parallel) render through the same code and look the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Snapshot, VideoProgress, VideoStatus

TABLE_COLUMNS = (
    "Title", "Source", "Duration", "Status", "Worker", "Progress", "Speed", "Elapsed", "ETA", "Attempts", "Error",
)
"""Status table columns, in display order."""

DURATION_COLUMNS = ("Duration", "Elapsed", "ETA")
"""Columns holding seconds; shown as clocks but kept numeric so sorting works."""

STATUS_LABELS = {status: status.value for status in VideoStatus}
"""Plain words: they sort, read aloud, and need no emoji font on the viewer's machine."""


def status_label(status: VideoStatus) -> str:
    return STATUS_LABELS.get(status, str(status.value))


def status_rows(snapshot: Snapshot) -> list[dict]:
    """One dict per video, keyed by TABLE_COLUMNS. Seconds stay floats (None when unknown)."""
    rows = []
    for v in snapshot.videos:
        rows.append({
            "Title": v.title,
            "Source": v.source,
            "Duration": v.duration_s,
            "Status": status_label(v.status),
            "Worker": v.worker or "",
            "Progress": 1.0 if v.status == VideoStatus.DONE else max(0.0, min(1.0, v.progress or 0.0)),
            "Speed": round(v.speed_x, 1) if v.speed_x else None,
            "Elapsed": v.elapsed_s,
            "ETA": v.eta_s if not v.status.is_terminal else None,
            "Attempts": v.attempts,
            "Error": v.error or "",
        })
    return rows


def status_frame(snapshot: Snapshot):
    """The status table as a DataFrame: seconds become timedeltas so the table shows clocks and sorts by time."""
    import pandas as pd  # Streamlit depends on pandas; imported here so the rest of the module stays light

    frame = pd.DataFrame(status_rows(snapshot), columns=list(TABLE_COLUMNS))
    for column in DURATION_COLUMNS:
        seconds = pd.to_numeric(frame[column], errors="coerce").round()
        frame[column] = pd.to_timedelta(seconds, unit="s")
    return frame


@dataclass(frozen=True)
class Summary:
    """The global progress block."""

    progress: float  # 0..1, weighted by audio seconds
    label: str
    done: int
    failed: int
    remaining: int
    active: int
    total: int
    throughput: str
    eta: str
    finished: bool
    mode: str


def summary(snapshot: Snapshot) -> Summary:
    counts = snapshot.counts or {}
    total = len(snapshot.videos)
    done = counts.get(VideoStatus.DONE.value, 0) + counts.get(VideoStatus.SKIPPED.value, 0)
    failed = counts.get(VideoStatus.FAILED.value, 0)
    cancelled = counts.get(VideoStatus.CANCELLED.value, 0)
    remaining = max(0, total - done - failed - cancelled)
    progress = snapshot.progress
    if snapshot.audio_total_s > 0:
        label = (f"{progress:.0%} of the audio ({clock(snapshot.audio_done_s)} of {clock(snapshot.audio_total_s)})")
    else:
        label = f"{progress:.0%} of the videos"
    return Summary(
        progress=progress,
        label=label,
        done=done,
        failed=failed,
        remaining=remaining,
        active=len(snapshot.active),
        total=total,
        throughput=f"{snapshot.throughput_x:.1f}×" if snapshot.throughput_x else "–",
        eta="–" if snapshot.finished or snapshot.eta_s is None else clock(snapshot.eta_s),
        finished=snapshot.finished,
        mode=snapshot.mode,
    )


@dataclass(frozen=True)
class Card:
    """One video being processed right now."""

    video_id: str
    title: str
    stage: str
    worker: str
    progress: float  # of the current stage, 0..1
    progress_text: str
    line: str


def cards(snapshot: Snapshot) -> list[Card]:
    return [_card(v) for v in snapshot.active]


def _card(v: VideoProgress) -> Card:
    stage_progress = max(0.0, min(1.0, v.stage_progress or 0.0))
    if v.status == VideoStatus.DOWNLOADING:
        stage = "Downloading"
        text = f"Downloading {stage_progress:.0%}"
        if v.downloaded_bytes:
            text += f" · {v.downloaded_bytes / 1024 / 1024:.1f} MB"
        if v.download_speed:
            text += f" · {v.download_speed / 1024 / 1024:.1f} MB/s"
    else:
        stage = "Transcribing"
        text = f"Transcribing {stage_progress:.0%}"
        if v.duration_s:
            text += f" of {clock(v.duration_s)}"
        if v.speed_x:
            text += f" · {v.speed_x:.1f}× real time"
    return Card(
        video_id=v.video_id,
        title=v.title,
        stage=stage,
        worker=v.worker or "",
        progress=stage_progress,
        progress_text=text,
        line=(v.current_text or "").strip(),
    )


def clock(seconds: float | None) -> str:
    """1:02:03 / 4:05 style; '–' when unknown."""
    if seconds is None:
        return "–"
    total = int(round(max(0.0, seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
