"""The run's ledger: each event changes the tracker once, and the row it leaves is what SQLite holds."""

from __future__ import annotations

from bulk_transcribe.config import RunConfig
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.ledger import STORE_PROGRESS_INTERVAL_S, Ledger
from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.session_manager import SessionStore


def _run(tmp_path, clock, n=3):
    store = SessionStore(tmp_path / STATE_DB_NAME)
    run_id = store.begin_run(RunConfig(out_dir=tmp_path), "sequential")
    items = [VideoItem(f"/media/v{i}.mp3", SourceKind.FILE, f"v{i}.mp3", duration_s=20.0) for i in range(n)]
    records = store.register_videos(run_id, items)
    ledger = Ledger(run_id, "sequential", store, clock=clock)
    ledger.add_videos(records)
    return store, run_id, ledger, [r.video_id for r in records]


def test_the_store_holds_what_the_tracker_shows(tmp_path, clock):
    store, run_id, ledger, (a, b, c) = _run(tmp_path, clock)
    ledger.apply([
        ProgressEvent(a, EventKind.DOWNLOAD_STARTED, time=1000, worker="local"),
        ProgressEvent(a, EventKind.TRANSCRIBE_STARTED, time=1001, duration_s=18.0),
        ProgressEvent(a, EventKind.DONE, time=1010, outputs={"txt": "v0/transcript.txt"}, duration_s=18.0),
        ProgressEvent(b, EventKind.RETRYING, time=1011, error="HTTP 500 Internal Server Error", attempt=1),
        ProgressEvent(c, EventKind.FAILED, time=1012, error="file is empty", retryable=False),
    ])
    live = {v.video_id: v for v in ledger.snapshot().videos}
    stored = {v.video_id: v for v in store.snapshot(run_id).videos}
    for video_id in (a, b, c):
        for field in ("status", "error", "attempts", "duration_s", "outputs", "started_at", "finished_at", "speed_x",
                      "elapsed_s", "retryable", "note"):
            assert getattr(stored[video_id], field) == getattr(live[video_id], field), (video_id, field)
    assert stored[a].status is VideoStatus.DONE and stored[a].duration_s == 18.0
    assert stored[b].status is VideoStatus.QUEUED and stored[b].attempts == 2
    assert stored[c].retryable is False


def test_progress_ticks_are_throttled_and_status_changes_never(tmp_path, clock):
    store, run_id, ledger, (a, _, _) = _run(tmp_path, clock)
    ledger.apply([ProgressEvent(a, EventKind.TRANSCRIBE_STARTED, time=1000, duration_s=20.0)])
    writes = ledger.store_writes
    for second in range(10):  # ten ticks within one interval: one write
        clock.t += STORE_PROGRESS_INTERVAL_S / 20
        ledger.apply([ProgressEvent(a, EventKind.TRANSCRIBE_PROGRESS, transcribed_s=second + 1.0, text=f"line {second}")])
    assert ledger.applied == 11 and ledger.store_writes == writes + 1
    clock.t += STORE_PROGRESS_INTERVAL_S
    ledger.apply([ProgressEvent(a, EventKind.TRANSCRIBE_PROGRESS, transcribed_s=15.0, text="later")])
    assert ledger.store_writes == writes + 2
    assert [v.current_text for v in store.videos(run_id) if v.video_id == a] == ["later"]
    ledger.apply([ProgressEvent(a, EventKind.DONE, outputs={})])  # at once, however soon after a tick
    assert ledger.store_writes == writes + 3
    assert [v.status for v in store.videos(run_id) if v.video_id == a] == [VideoStatus.DONE]


def test_late_and_unknown_events_write_nothing(tmp_path, clock):
    store, run_id, ledger, (a, _, _) = _run(tmp_path, clock)
    ledger.apply([ProgressEvent(a, EventKind.FAILED, error="no audio track")])
    writes = ledger.store_writes
    assert ledger.apply([ProgressEvent(a, EventKind.DONE, outputs={"txt": "x"}),
                         ProgressEvent("ffffffffffffffff", EventKind.DONE)]) == 0
    assert ledger.store_writes == writes
    assert [v.error for v in store.videos(run_id) if v.video_id == a] == ["no audio track"]
