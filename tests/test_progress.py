"""ProgressTracker: status rules, audio-weighted progress, throughput and ETA, snapshot caching, scale."""

from __future__ import annotations

import pytest

from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.progress import DOWNLOAD_SHARE, ProgressTracker
from bulk_transcribe.session_manager import VideoRecord


def item(name: str, duration: float | None = None, error: str | None = None) -> VideoItem:
    return VideoItem(source=f"/media/{name}.mp3", kind=SourceKind.FILE, input=f"{name}.mp3", duration_s=duration, error=error)


def ev(video: VideoItem | str, kind: EventKind, t: float, **kw) -> ProgressEvent:
    vid = video if isinstance(video, str) else video.video_id
    return ProgressEvent(vid, kind, time=t, **kw)


def test_counts_every_status_and_starts_queued(clock):
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([item("a", 10), item("b"), item("bad", error="file not found: bad.mp3")])
    snap = tracker.snapshot()
    assert set(snap.counts) == {s.value for s in VideoStatus}
    assert snap.counts["queued"] == 2 and snap.counts["failed"] == 1 and sum(snap.counts.values()) == 3
    assert [v.title for v in snap.videos] == ["a.mp3", "b.mp3", "bad.mp3"]
    assert snap.videos[2].error == "file not found: bad.mp3"
    assert snap.throughput_x is None and snap.eta_s is None and not snap.finished
    assert snap.audio_total_s == 10


def test_weighted_progress_speed_and_eta_follow_events(clock):
    a, b, c = item("a", 100), item("b", 300), item("c")  # c's duration is learned later
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([a, b, c])

    assert tracker.apply(ev(a, EventKind.DOWNLOAD_STARTED, 1000, worker="w1"))
    tracker.apply(ev(a, EventKind.DOWNLOAD_PROGRESS, 1002, progress=0.5, downloaded_bytes=500, download_speed=250.0))
    clock.t = 1002
    va = tracker.snapshot().videos[0]
    assert va.status is VideoStatus.DOWNLOADING and va.worker == "w1" and va.attempts == 1
    assert va.progress == pytest.approx(DOWNLOAD_SHARE * 0.5)
    assert va.downloaded_bytes == 500

    tracker.apply(ev(a, EventKind.TRANSCRIBE_STARTED, 1010))
    tracker.apply(ev(a, EventKind.TRANSCRIBE_PROGRESS, 1020, transcribed_s=50, text="ask not"))
    clock.t = 1020
    snap = tracker.snapshot()
    va = snap.videos[0]
    assert va.status is VideoStatus.TRANSCRIBING
    assert va.progress == pytest.approx(DOWNLOAD_SHARE + (1 - DOWNLOAD_SHARE) * 0.5)
    assert va.speed_x == pytest.approx(5.0)  # 50 s of audio in 10 s of transcribing
    assert va.eta_s == pytest.approx(10.0)  # 50 s left at 5x
    assert va.elapsed_s == pytest.approx(20.0)
    assert va.current_text == "ask not"
    assert snap.audio_total_s == 400 and snap.audio_done_s == pytest.approx(50)
    assert snap.throughput_x == pytest.approx(50 / 20)
    # Remaining: 50 (a) + 300 (b) + one unknown video estimated at the mean known duration (200).
    assert snap.eta_s == pytest.approx(550 / 2.5)
    assert snap.started_at == 1000 and [v.video_id for v in snap.active] == [a.video_id]

    tracker.apply(ev(a, EventKind.DONE, 1030, outputs={"txt": "a/a.txt"}))
    tracker.apply(ev(c, EventKind.TRANSCRIBE_STARTED, 1030, duration_s=50))
    tracker.apply(ev(b, EventKind.FAILED, 1031, error="HTTP Error 404: Not Found"))
    clock.t = 1040
    snap = tracker.snapshot()
    va, vb, vc = snap.videos
    assert va.status is VideoStatus.DONE and va.progress == 1.0 and va.outputs == {"txt": "a/a.txt"}
    assert va.elapsed_s == pytest.approx(30) and va.speed_x == pytest.approx(100 / 20)
    assert vb.status is VideoStatus.FAILED and vb.error == "HTTP Error 404: Not Found"
    assert vc.duration_s == 50 and vc.status is VideoStatus.TRANSCRIBING
    assert snap.audio_total_s == 150 and snap.audio_done_s == pytest.approx(100)  # b failed: out of the total
    assert snap.counts["done"] == 1 and snap.counts["failed"] == 1 and snap.counts["transcribing"] == 1
    assert not snap.finished and snap.eta_s == pytest.approx(50 / (100 / 40))

    tracker.apply(ev(c, EventKind.DONE, 1050))
    clock.t = 2000  # the wall clock after the last video no longer dilutes throughput
    snap = tracker.snapshot()
    assert snap.finished and snap.finished_at == 1050 and snap.eta_s == 0.0
    assert snap.throughput_x == pytest.approx(150 / 50)
    # What failed weighs nothing: 100% of what could be done, the failure counted beside the bar.
    assert snap.progress == 1.0 and snap.audio_total_s == 150


def test_elapsed_is_the_videos_own_work_not_its_wait_for_the_model(clock):
    """A prefetched video downloads in 5 s, then waits 25 s while its worker transcribes another: its Elapsed is
    its download and its own transcription (15 s), not its time in the queue (40 s). A local file has nothing to
    download: its Elapsed starts with its transcription."""
    url, local = item("url", 60), item("local", 60)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([url, local])
    tracker.apply(ev(url, EventKind.DOWNLOAD_STARTED, 1000, worker="w"))
    tracker.apply(ev(url, EventKind.DOWNLOADED, 1005))
    tracker.apply(ev(url, EventKind.TRANSCRIBE_STARTED, 1030))
    clock.t = 1034
    assert tracker.snapshot().videos[0].elapsed_s == pytest.approx(9)
    tracker.apply(ev(url, EventKind.DONE, 1040, outputs={}))
    tracker.apply(ev(local, EventKind.QUEUED, 1041, duration_s=58.0))  # probed while it waits: still queued
    assert tracker.snapshot().videos[1].status is VideoStatus.QUEUED and tracker.snapshot().videos[1].duration_s == 58
    tracker.apply(ev(local, EventKind.TRANSCRIBE_STARTED, 1050))
    tracker.apply(ev(local, EventKind.DONE, 1056, outputs={}))
    done = tracker.snapshot().videos
    assert done[0].elapsed_s == pytest.approx(15) and done[1].elapsed_s == pytest.approx(6)


def test_terminal_states_are_final_and_unknown_ids_ignored(clock):
    a = item("a", 10)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([a])
    assert not tracker.apply(ev("no-such-video", EventKind.DONE, 1000))
    tracker.apply(ev(a, EventKind.TRANSCRIBE_STARTED, 1000))
    assert tracker.apply(ev(a, EventKind.DONE, 1005, outputs={"txt": "x"}))
    version, snap = tracker.version, tracker.snapshot()
    for kind in (EventKind.DONE, EventKind.FAILED, EventKind.RETRYING, EventKind.DOWNLOAD_STARTED,
                 EventKind.TRANSCRIBE_PROGRESS, EventKind.QUEUED):
        assert not tracker.apply(ev(a, kind, 1010, outputs={"txt": "other"}, error="late"))
    assert tracker.version == version and tracker.snapshot() is snap
    v = snap.videos[0]
    assert v.status is VideoStatus.DONE and v.outputs == {"txt": "x"} and v.attempts == 1 and v.error is None


def test_retrying_requeues_with_attempt_and_error_then_done_clears_error(clock):
    a = item("a", 10)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([a])
    tracker.apply(ev(a, EventKind.DOWNLOAD_STARTED, 1000, worker="w1"))
    tracker.apply(ev(a, EventKind.RETRYING, 1001, error="connection reset"))
    v = tracker.snapshot().videos[0]
    assert v.status is VideoStatus.QUEUED and v.attempts == 2 and v.error == "connection reset"
    assert v.progress == 0 and v.worker == "" and tracker.snapshot().counts["queued"] == 1
    tracker.apply(ev(a, EventKind.DOWNLOAD_STARTED, 1002, worker="w2", attempt=2))
    tracker.apply(ev(a, EventKind.DONE, 1004))
    v = tracker.snapshot().videos[0]
    assert v.status is VideoStatus.DONE and v.attempts == 2 and v.error is None and v.worker == "w2"


def test_late_download_event_does_not_pull_transcription_back(clock):
    a = item("a", 10)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([a])
    tracker.apply(ev(a, EventKind.TRANSCRIBE_STARTED, 1000))
    assert not tracker.apply(ev(a, EventKind.DOWNLOAD_PROGRESS, 999, progress=0.9))
    assert tracker.snapshot().videos[0].status is VideoStatus.TRANSCRIBING
    # A progress event stands in for a lost start event.
    b = item("b", 20)
    tracker.add_videos([b])
    tracker.apply(ev(b, EventKind.TRANSCRIBE_PROGRESS, 1001, transcribed_s=10))
    vb = tracker.snapshot().videos[1]
    assert vb.status is VideoStatus.TRANSCRIBING and vb.started_at == 1001 and vb.stage_progress == 0.5


def test_snapshot_is_cached_until_next_change_and_old_ones_stay_frozen(clock):
    a, b = item("a", 10), item("b", 10)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([a, b])
    first = tracker.snapshot()
    clock.t += 5
    assert tracker.snapshot() is first
    assert not tracker.apply(ev("unknown", EventKind.DONE, 1000))
    assert tracker.snapshot() is first
    tracker.apply(ev(a, EventKind.TRANSCRIBE_STARTED, 1000))
    second = tracker.snapshot()
    assert second is not first
    assert first.videos[0].status is VideoStatus.QUEUED  # an earlier snapshot is not mutated by later events
    assert second.videos[0].status is VideoStatus.TRANSCRIBING
    assert second.videos[1] is first.videos[1]  # unchanged rows are shared, not copied again


def test_resumed_done_records_count_as_done_but_not_as_this_runs_throughput(clock):
    def record(name: str, status: VideoStatus, run_id: str, duration: float) -> VideoRecord:
        it = item(name, duration)
        return VideoRecord(
            video_id=it.video_id, position=0, input=it.input, source=it.source, kind="file", title=it.title,
            duration_s=duration, status=status, attempts=1 if status is VideoStatus.DONE else 0,
            folder=name, outputs={"txt": f"{name}/{name}.txt"} if status is VideoStatus.DONE else {},
            started_at=10.0 if status is VideoStatus.DONE else None,
            finished_at=20.0 if status is VideoStatus.DONE else None, run_id=run_id,
        )

    old = record("old", VideoStatus.DONE, "r0", 100)
    new = record("new", VideoStatus.QUEUED, "r1", 100)
    tracker = ProgressTracker("r1", clock=clock)
    tracker.add_videos([old, new])
    snap = tracker.snapshot()
    assert snap.counts["done"] == 1 and snap.audio_done_s == 100 and snap.progress == pytest.approx(0.5)
    assert snap.videos[0].outputs == {"txt": "old/old.txt"}
    assert snap.started_at is None  # the earlier run's timings are not this run's start

    tracker.apply(ev(new.video_id, EventKind.TRANSCRIBE_STARTED, 1000))
    tracker.apply(ev(new.video_id, EventKind.TRANSCRIBE_PROGRESS, 1010, transcribed_s=20))
    clock.t = 1010
    snap = tracker.snapshot()
    assert snap.audio_done_s == pytest.approx(120)
    assert snap.throughput_x == pytest.approx(2.0)  # 20 s this run in 10 s, not 120 s
    assert snap.eta_s == pytest.approx(40.0)


def test_mark_finished_freezes_the_run(clock):
    a, b = item("a", 10), item("b", 10)
    tracker = ProgressTracker("r1", mode="parallel", clock=clock)
    tracker.add_videos([a, b])
    tracker.apply(ev(a, EventKind.TRANSCRIBE_STARTED, 1000))
    tracker.apply(ev(a, EventKind.DONE, 1010))
    clock.t = 1020
    tracker.mark_finished()  # e.g. cancelled with b still queued
    clock.t = 5000
    snap = tracker.snapshot()
    assert snap.finished and snap.finished_at == 1020 and snap.mode == "parallel"
    assert snap.throughput_x == pytest.approx(10 / 20)


def test_ten_thousand_videos_build_and_poll(clock):
    items = [item(f"v{i}", 60.0 + i % 7) for i in range(10_000)]
    tracker = ProgressTracker("big", clock=clock)
    tracker.add_videos(items)
    snap = tracker.snapshot()
    assert len(snap.videos) == 10_000 and snap.counts["queued"] == 10_000
    for n, it in enumerate(items[:3000]):
        tracker.apply(ev(it, EventKind.TRANSCRIBE_STARTED, 1000 + n))
        tracker.apply(ev(it, EventKind.TRANSCRIBE_PROGRESS, 1000 + n + 0.5, transcribed_s=30))
        if n % 100 == 0:
            tracker.snapshot()  # interleaved polls rebuild only what changed
        tracker.apply(ev(it, EventKind.DONE, 1001 + n))
    clock.t = 5000
    polls = [tracker.snapshot() for _ in range(1000)]
    assert all(p is polls[0] for p in polls)
    snap = polls[0]
    assert snap.counts["done"] == 3000 and snap.counts["queued"] == 7000
    assert snap.audio_total_s == pytest.approx(sum(i.duration_s for i in items))
    assert snap.audio_done_s == pytest.approx(sum(i.duration_s for i in items[:3000]))
    assert [v.video_id for v in snap.videos] == [i.video_id for i in items]
    assert not snap.finished and snap.eta_s is not None
