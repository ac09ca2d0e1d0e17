"""Snapshot -> what the monitor shows: table rows, the global summary, one card per worker.

Plain functions over `models.Snapshot`, so they are tested on real snapshots without a browser, and both modes
(sequential and parallel) render through the same code and look the same. Every string here that came from a site,
a file or a URL is data: render.py shows it as text, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import LOCAL_WORKER, Snapshot, VideoProgress, VideoStatus
from ..progress import clock, current_work, describe_eta, describe_inputs, describe_progress
from ..quality import review_line

TABLE_COLUMNS = (
    "Title", "Status", "Progress", "Error", "Quality", "Note", "Duration", "Language", "Worker", "Speed", "Elapsed",
    "ETA", "Attempts", "Source",
)
"""Status table columns, in display order: what a person scans first (title, status, progress, why it failed, how
far to trust a finished transcript) comes first, so the error is never the column cut off at the right edge."""

QUALITY_OK = "ok"
"""The Quality cell of a finished transcript that earned no flag."""

STATUS_LABELS = {
    VideoStatus.QUEUED: "queued",
    VideoStatus.DOWNLOADING: "downloading",
    VideoStatus.TRANSCRIBING: "transcribing",
    VideoStatus.DONE: "done",
    VideoStatus.FAILED: "failed",
    VideoStatus.SKIPPED: "skipped",
    VideoStatus.CANCELLED: "cancelled",
}
"""Plain words: they sort, read aloud, and need no emoji font on the viewer's machine."""

FILTERS = ("All", "Failed first", "Unfinished", "Failed", "Needs review", "Done")
"""Ways to look at the table: a failed row, or a transcript not to trust, among hundreds must be one click away."""


def quality_cell(v: VideoProgress) -> str:
    """'ok', or 'needs review: <reasons>' for a finished transcript; blank before it is finished."""
    if v.status is not VideoStatus.DONE:
        return ""
    return f"needs review: {review_line(v.flags)}" if v.needs_review else QUALITY_OK


def status_label(status: VideoStatus) -> str:
    return STATUS_LABELS.get(status, str(status.value))


def stage_percent(v: VideoProgress) -> int | None:
    """The one progress figure shown for a video, table and card alike: the current stage's share in whole percent
    (done is 100; nothing for a video that is not being worked on)."""
    if v.status is VideoStatus.DONE:
        return 100
    if not v.status.is_active:
        return None
    return int(max(0.0, min(1.0, v.stage_progress or 0.0)) * 100)


def status_rows(snapshot: Snapshot, show: str = "All") -> list[dict]:
    """One dict per video, keyed by TABLE_COLUMNS; blanks are empty strings, never None."""
    _, next_up = current_work(snapshot)
    waiting = {v.video_id: worker for worker, videos in next_up.items() for v in videos}
    rows = []
    for index, v in enumerate(snapshot.videos):
        status = status_label(v.status)
        percent = stage_percent(v)
        if v.video_id in waiting:
            # Fetched ahead and waiting for its worker: its finished download is not the row's progress (a full
            # bar beside the video actually transcribing read as if this one were done).
            status, percent = f"next up ({waiting[v.video_id]})", None
        rows.append({
            "Title": v.title,
            "Status": status,
            "Progress": percent,
            "Error": v.error or "",
            "Quality": quality_cell(v),
            "Note": v.note or "",
            "Duration": clock(v.duration_s) if v.duration_s else "",
            "Language": v.language or "",
            "Worker": v.worker or "",
            "Speed": f"{v.speed_x:.1f}×" if v.speed_x else "",
            "Elapsed": clock(v.elapsed_s) if v.elapsed_s is not None else "",
            "ETA": clock(v.eta_s) if v.eta_s is not None and not v.status.is_terminal else "",
            "Attempts": str(v.attempts) if v.attempts else "",
            "Source": v.source,
            "_order": (_FAILED_FIRST.get(v.status, 3), index),
            "_status": v.status,
            "_review": v.needs_review,
        })
    if show == "Failed first":
        rows.sort(key=lambda r: r["_order"])
    elif show == "Unfinished":
        rows = [r for r in rows if not r["_status"].is_terminal]
    elif show == "Failed":
        rows = [r for r in rows if r["_status"] in (VideoStatus.FAILED, VideoStatus.CANCELLED)]
    elif show == "Needs review":
        rows = [r for r in rows if r["_review"]]
    elif show == "Done":
        rows = [r for r in rows if r["_status"] is VideoStatus.DONE]
    for r in rows:
        del r["_order"], r["_status"], r["_review"]
    return rows


_FAILED_FIRST = {VideoStatus.FAILED: 0, VideoStatus.CANCELLED: 1, VideoStatus.DOWNLOADING: 2,
                 VideoStatus.TRANSCRIBING: 2}


def status_frame(snapshot: Snapshot, show: str = "All"):
    """The status table as a DataFrame, in TABLE_COLUMNS order."""
    import pandas as pd  # Streamlit depends on pandas; imported here so the rest of the module stays light

    frame = pd.DataFrame(status_rows(snapshot, show), columns=list(TABLE_COLUMNS))
    frame["Progress"] = frame["Progress"].astype("Int64")  # whole percent; missing stays blank, not "None"
    return frame


@dataclass(frozen=True)
class Summary:
    """The global progress block. done + failed + cancelled + skipped + in_progress + waiting == total."""

    progress: float  # 0..1, weighted by audio seconds; < 1 while any video is unfinished
    label: str
    done: int
    failed: int
    cancelled: int
    skipped: int
    in_progress: int
    waiting: int
    total: int
    throughput: str
    eta: str
    finished: bool
    mode: str
    estimated: bool
    failed_for_good: int = 0
    """Failed videos a retry cannot change (the input itself is wrong: a missing file, a refused path, not media)."""
    needs_review: int = 0
    """Finished videos whose transcript earned a quality flag."""
    recheckable: int = 0
    """Of those, the ones never rechecked (a recheck that kept a flag is not offered again)."""

    @property
    def retryable_failed(self) -> int:
        return self.failed - self.failed_for_good

    @property
    def remaining(self) -> int:
        return self.in_progress + self.waiting


def summary(snapshot: Snapshot) -> Summary:
    counts = snapshot.counts or {}
    total = len(snapshot.videos)
    current, _ = current_work(snapshot)
    done = counts.get(VideoStatus.DONE.value, 0)
    failed = counts.get(VideoStatus.FAILED.value, 0)
    cancelled = counts.get(VideoStatus.CANCELLED.value, 0)
    skipped = counts.get(VideoStatus.SKIPPED.value, 0)
    in_progress = len(current)
    return Summary(
        progress=snapshot.progress,
        label=" · ".join(filter(None, [describe_progress(snapshot), describe_inputs(snapshot)])),
        done=done,
        failed=failed,
        cancelled=cancelled,
        skipped=skipped,
        in_progress=in_progress,
        waiting=max(0, total - done - failed - cancelled - skipped - in_progress),
        total=total,
        throughput=f"{snapshot.throughput_x:.1f}×" if snapshot.throughput_x else "–",
        eta=describe_eta(snapshot),
        finished=snapshot.finished,
        mode=snapshot.mode,
        estimated=snapshot.estimated,
        failed_for_good=sum(1 for v in snapshot.videos if v.status is VideoStatus.FAILED and v.retryable is False),
        needs_review=snapshot.needs_review,
        recheckable=sum(1 for v in snapshot.videos if v.needs_review and not v.rechecked),
    )


@dataclass(frozen=True)
class Card:
    """One worker and the video it is working on now."""

    video_id: str
    title: str
    stage: str
    worker: str
    progress: float  # of the current stage, 0..1 (the same figure as the table's Progress column)
    progress_text: str
    line: str
    next_up: tuple[str, ...] = field(default_factory=tuple)
    """Titles this worker has fetched ahead (shown, not counted as in progress)."""


def cards(snapshot: Snapshot) -> list[Card]:
    current, next_up = current_work(snapshot)
    return [_card(v, [n.title for n in next_up.get(v.worker or LOCAL_WORKER, [])]) for v in current]


def _card(v: VideoProgress, next_titles: list[str]) -> Card:
    percent = stage_percent(v) or 0
    if v.status == VideoStatus.DOWNLOADING:
        stage = "Downloading"
        text = f"Downloading {percent}%"
        if v.downloaded_bytes:
            text += f" · {v.downloaded_bytes / 1024 / 1024:.1f} MB"
        if v.download_speed:
            text += f" · {v.download_speed / 1024 / 1024:.1f} MB/s"
    else:
        stage = "Transcribing"
        text = f"Transcribing {percent}%"
        if v.duration_s:
            text += f" of {clock(v.duration_s)}"
        if v.speed_x:
            text += f" · {v.speed_x:.1f}× real time"
    return Card(
        video_id=v.video_id,
        title=v.title,
        stage=stage,
        worker=v.worker or "",
        progress=percent / 100,
        progress_text=text,
        line=(v.current_text or "").strip(),
        next_up=tuple(next_titles),
    )
