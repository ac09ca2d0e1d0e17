"""What the CLI reports once a run ends (and `status` shows): the plain table and summary lines, the run as JSON
for scripts, and the exit code that tells the outcome."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..models import RunStatus, Snapshot, VideoStatus
from ..quality import Quality, review_line
from .live import printable
from ..session_manager import RunRecord


JSON_VERSION = 1
"""Bumped when a key changes meaning or goes away (new keys may appear at any time)."""


BAD_STATUSES = (VideoStatus.FAILED, VideoStatus.CANCELLED)


def status_exit_code(run: RunRecord, snapshot: Snapshot) -> int:
    """0 when no video failed or was cancelled and the run itself neither failed nor ended early (cancelled, or
    stopped: its process died before recording its end, maybe before any video joined); 1 otherwise (like `run`)."""
    bad = sum(snapshot.counts.get(s.value, 0) for s in BAD_STATUSES)
    ended_early = run.status in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.STOPPED)
    return 1 if bad or ended_early else 0


def status_dict(run: RunRecord, snapshot: Snapshot, folders: dict[str, str] | None = None,
                qualities: dict[str, Quality | None] | None = None) -> dict[str, Any]:
    """Plain data: the run (id, mode, status, times, counts, totals) and one entry per video in input order, with
    its folder and, once done, its quality (flags, signals, recheck) when the store gave them."""
    folders, qualities = folders or {}, qualities or {}
    videos = []
    for v in snapshot.videos:
        entry = asdict(v)
        entry["status"] = v.status.value
        entry["folder"] = folders.get(v.video_id)
        quality = qualities.get(v.video_id)
        entry["quality"] = quality.to_dict() if quality is not None and v.status is VideoStatus.DONE else None
        videos.append(entry)
    return {
        "version": JSON_VERSION,
        "run": {
            "run_id": run.run_id, "name": run.name, "mode": run.mode, "status": run.status,
            "created_at": run.created_at, "finished_at": run.finished_at, "out_dir": run.out_dir,
            "counts": {s.value: snapshot.counts.get(s.value, 0) for s in VideoStatus},
            "videos": len(snapshot.videos), "progress": round(snapshot.progress, 4),
            "audio_total_s": snapshot.audio_total_s, "audio_done_s": snapshot.audio_done_s,
            "throughput_x": snapshot.throughput_x, "eta_s": snapshot.eta_s,
            "needs_review": snapshot.needs_review,
        },
        "videos": videos,
    }


def status_json(run: RunRecord, snapshot: Snapshot, folders: dict[str, str] | None = None,
                qualities: dict[str, Quality | None] | None = None) -> str:
    return json.dumps(status_dict(run, snapshot, folders, qualities), ensure_ascii=False, indent=2,
                      default=str) + "\n"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def render_table(snapshot: Snapshot, width: int = 120) -> str:
    """The final summary (and `status`): one line per video, then the totals."""
    title_w = max(16, width - 78)
    lines = [f"{'#':>3}  {'title':<{title_w}} {'duration':>8} {'status':<12} {'speed':>7} {'tries':>5} {'lang':<4}  "
             "error / review / note"]
    for n, v in enumerate(snapshot.videos, 1):
        speed = f"{v.speed_x:.1f}x" if v.speed_x else "-"
        aside = v.error or (f"review: {review_line(v.flags)}" if v.needs_review else "") or \
            (f"note: {v.note}" if v.note else "")
        lines.append(
            f"{n:>3}  {_shorten(printable(v.title), title_w):<{title_w}} {_clock(v.duration_s):>8} {v.status.value:<12} "
            f"{speed:>7} {v.attempts:>5} {(v.language or '-'):<4}  {_shorten(printable(aside), 60)}"
        )
    lines.append(summary_line(snapshot))
    return "\n".join(lines)


def summary_line(snapshot: Snapshot) -> str:
    counts = snapshot.counts
    parts = [f"{counts.get(s.value, 0)} {s.value}" for s in VideoStatus if counts.get(s.value, 0)]
    if snapshot.needs_review:
        parts.insert(1, f"{snapshot.needs_review} need{'s' if snapshot.needs_review == 1 else ''} review")
    speed = f", {snapshot.throughput_x:.1f}x real time from the run's start" if snapshot.throughput_x else ""
    if snapshot.processing_x and snapshot.throughput_x and snapshot.processing_x > snapshot.throughput_x * 1.05:
        speed += f" ({snapshot.processing_x:.1f}x from its first video's)"
    n = len(snapshot.videos)
    return (f"{n} video{'' if n == 1 else 's'}: {', '.join(parts) or 'none'}; "
            f"audio {_clock(snapshot.audio_done_s)} / {_clock(snapshot.audio_total_s)}{speed}")


def backfill_line(backfill) -> str:
    parts = []
    if backfill.files:
        parts.append(f"wrote {backfill.files} missing output(s) for {backfill.videos} finished video(s) "
                     "from their stored transcripts")
    if backfill.redo:
        parts.append(f"{len(backfill.redo)} finished video(s) lost outputs that no stored transcript could rewrite: "
                     "transcribed again")
    line = "; ".join(parts)
    return line[:1].upper() + line[1:]


def handover_line(times) -> str | None:
    """How an embedded parallel run started (engine/handover.HandoverTimes), in one line; None when there is
    nothing to say (the run ended before any video started)."""
    here = f"{times.in_process_videos} video(s) started in this process"
    if times.cluster_asked_s is None:
        return (f"Ray was not started: too little audio waited to pay for its start; {here}"
                if times.in_process_videos else None)
    if times.cluster_open_s is None:
        return f"Ray was still starting when the run ended; {here}" if times.in_process_videos else None
    if times.first_cluster_worker_s is None:
        return f"Ray was up after {times.cluster_open_s:.0f} s, its workers were not ready before the end: {here}"
    return (f"Ray's first worker was ready {times.first_cluster_worker_s:.0f} s after the start "
            f"(Ray up at {times.cluster_open_s:.0f} s); {here} meanwhile")
