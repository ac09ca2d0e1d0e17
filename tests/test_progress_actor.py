"""The progress actor's body as a plain class: tracker + SQLite write-through, as the Ray actor runs it."""

from __future__ import annotations

import asyncio

from bulk_transcribe.config import RunConfig
from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.parallel.progress_actor import AsyncProgressActor, ProgressActor
from bulk_transcribe.session_manager import SessionStore


def _items(n: int) -> list[VideoItem]:
    return [VideoItem(f"http://127.0.0.1/v{i}.mp3", SourceKind.URL, "x", duration_s=10.0 + i) for i in range(n)]


def test_events_reach_snapshot_and_store(tmp_path):
    store = SessionStore(tmp_path / "state.sqlite")
    run_id = store.begin_run(RunConfig(out_dir=tmp_path), "parallel")
    records = store.register_videos(run_id, _items(3))
    actor = ProgressActor(run_id, "parallel", records, tmp_path / "state.sqlite")
    a, b, c = (r.video_id for r in records)
    applied = actor.apply_events([
        ProgressEvent(a, EventKind.DOWNLOAD_STARTED, worker="worker-0"),
        ProgressEvent(a, EventKind.TRANSCRIBE_STARTED, worker="worker-0", duration_s=10.0),
        ProgressEvent(a, EventKind.TRANSCRIBE_PROGRESS, worker="worker-0", transcribed_s=5.0, duration_s=10.0,
                      progress=0.5, text="half way"),
        ProgressEvent(b, EventKind.FAILED, worker="worker-1", error="HTTP 404: gone"),
        ProgressEvent(c, EventKind.DONE, worker="worker-1", duration_s=12.0, outputs={"txt": "c/c.txt"}),
        ProgressEvent(c, EventKind.TRANSCRIBE_PROGRESS, worker="worker-1", transcribed_s=1.0),  # late: ignored
        ProgressEvent("not-in-this-run", EventKind.DONE),
    ])
    assert applied == 5
    snap = actor.snapshot()
    by_id = {v.video_id: v for v in snap.videos}
    assert by_id[a].status == VideoStatus.TRANSCRIBING and by_id[a].current_text == "half way"
    assert by_id[b].status == VideoStatus.FAILED and by_id[b].error == "HTTP 404: gone"
    assert by_id[c].status == VideoStatus.DONE
    assert snap.mode == "parallel"
    # Written through: a fresh reader (another process, or a resume after the cluster is gone) sees the same.
    stored = {r.video_id: r for r in SessionStore(tmp_path / "state.sqlite").videos(run_id)}
    assert stored[b].status == VideoStatus.FAILED and stored[b].error == "HTTP 404: gone"
    assert stored[c].status == VideoStatus.DONE and stored[c].outputs == {"txt": "c/c.txt"}
    assert stored[a].status == VideoStatus.TRANSCRIBING
    assert actor.mark_finished().finished


def test_snapshot_of_ten_thousand_videos_is_cached_until_something_changes():
    actor = ProgressActor("run", "parallel", _items(10_000))
    first = actor.snapshot()
    assert len(first.videos) == 10_000
    assert actor.snapshot() is first, "polling without changes must not rebuild 10,000 rows"
    actor.apply_events([ProgressEvent(first.videos[42].video_id, EventKind.DOWNLOAD_STARTED, worker="w")])
    second = actor.snapshot()
    assert second is not first and second.videos[42].status == VideoStatus.DOWNLOADING
    assert second.videos[43] is first.videos[43], "unchanged rows are shared, not copied"


def test_async_body_is_the_same_logic():
    actor = AsyncProgressActor("run", "parallel", _items(2))
    vid = actor.tracker.snapshot().videos[0].video_id

    async def go():
        n = await actor.apply_events([ProgressEvent(vid, EventKind.DONE, duration_s=10.0)])
        return n, await actor.snapshot(), await actor.stats()

    n, snap, stats = asyncio.run(go())
    assert n == 1 and snap.counts["done"] == 1 and stats["applied"] == 1
