"""`bulk-transcribe status` for scripts: the run and its videos as JSON, and an exit code that tells the outcome."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..models import Snapshot, VideoStatus
from ..session_manager import RunRecord

JSON_VERSION = 1
"""Bumped when a key changes meaning or goes away (new keys may appear at any time)."""

BAD_STATUSES = (VideoStatus.FAILED, VideoStatus.CANCELLED)


def status_exit_code(run: RunRecord, snapshot: Snapshot) -> int:
    """0 when no video failed or was cancelled and the run itself did not fail; 1 otherwise (like `run`)."""
    bad = sum(snapshot.counts.get(s.value, 0) for s in BAD_STATUSES)
    return 1 if bad or run.status == "failed" else 0


def status_dict(run: RunRecord, snapshot: Snapshot, folders: dict[str, str] | None = None) -> dict[str, Any]:
    """Plain data: the run (id, mode, status, times, counts, totals) and one entry per video in input order."""
    folders = folders or {}
    videos = []
    for v in snapshot.videos:
        entry = asdict(v)
        entry["status"] = v.status.value
        entry["folder"] = folders.get(v.video_id)
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
        },
        "videos": videos,
    }


def status_json(run: RunRecord, snapshot: Snapshot, folders: dict[str, str] | None = None) -> str:
    return json.dumps(status_dict(run, snapshot, folders), ensure_ascii=False, indent=2, default=str) + "\n"
