"""SessionStore on real SQLite files: resume, folders, exactly-once DONE, concurrent writers, snapshots."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bulk_transcribe.config import RunConfig
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.naming import safe_name
from bulk_transcribe.progress import ProgressTracker
from bulk_transcribe.session_manager import SCHEMA_VERSION, SessionStore, VideoRecord

REPO_ROOT = Path(__file__).resolve().parents[1]


def item(name: str, duration: float | None = None, title: str = "", error: str | None = None) -> VideoItem:
    return VideoItem(
        source=f"http://127.0.0.1/{name}.mp3", kind=SourceKind.URL, input=f"http://127.0.0.1/{name}.mp3",
        title=title, duration_s=duration, error=error,
    )


def ev(video: VideoItem | str, kind: EventKind, t: float, **kw) -> ProgressEvent:
    return ProgressEvent(video if isinstance(video, str) else video.video_id, kind, time=t, **kw)


@pytest.fixture
def store(tmp_path, clock):
    with SessionStore(tmp_path / "out" / STATE_DB_NAME, clock=clock) as s:
        yield s


def row(store: SessionStore, video_id: str) -> VideoRecord | None:
    return next((r for r in store.videos() if r.video_id == video_id), None)


def done(video: VideoItem, t: float, outputs: dict[str, str]) -> ProgressEvent:
    return ev(video, EventKind.DONE, t, outputs=outputs)


def config(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(inputs=("x",), out_dir=tmp_path / "out", **kw)


def test_schema_is_versioned_and_wal(tmp_path, store):
    db = tmp_path / "out" / STATE_DB_NAME
    assert store.db_path == db and db.is_file()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer bulk-transcribe"):
        SessionStore(db)
    # Reopening a current database migrates nothing and keeps the data.
    other = tmp_path / "other.sqlite"
    SessionStore(other).close()
    with SessionStore(other) as again:
        assert again.runs() == []


def test_runs_are_listed_newest_first_with_counts(tmp_path, store, clock):
    first = store.begin_run(config(tmp_path, run_name="first"), "sequential")
    store.register_videos(first, [item("a", 10), item("b", 10)])
    clock.t += 10
    second = store.begin_run(config(tmp_path), "parallel")
    assert first != second
    store.apply_event(ev(item("a"), EventKind.DONE, clock.t))
    store.finish_run(first, "completed")
    runs = store.runs()
    assert [r.run_id for r in runs] == [second, first]
    assert runs[1].name == "first" and runs[0].name == "out" and runs[0].mode == "parallel"
    assert runs[1].status == "completed" and runs[1].finished_at == clock.t
    assert runs[1].counts["done"] == 1 and runs[1].counts["queued"] == 1 and runs[0].counts["done"] == 0
    assert runs[1].config["run_name"] == "first" and runs[1].config["out_dir"] == str(tmp_path / "out")
    assert store.run("nope") is None and store.run(first).counts == runs[1].counts


def test_resume_keeps_done_requeues_the_rest_and_adds_new(tmp_path, store, clock):
    a, b, c, d, e = (item(n, 10) for n in "abcde")
    run1 = store.begin_run(config(tmp_path), "sequential")
    records = store.register_videos(run1, [a, b, c, d])
    folders = {r.video_id: r.folder for r in records}
    assert all(r.status is VideoStatus.QUEUED and r.run_id == run1 for r in records)
    store.apply_event(ev(a, EventKind.TRANSCRIBE_STARTED, 1000))
    store.apply_event(ev(a, EventKind.DONE, 1010, outputs={"txt": "a/a.txt"}))
    store.apply_event(ev(b, EventKind.FAILED, 1011, error="HTTP Error 404"))
    store.apply_event(ev(c, EventKind.TRANSCRIBE_STARTED, 1012))  # then the process "crashes"
    store.apply_event(ev(d, EventKind.CANCELLED, 1013))

    clock.t = 2000
    run2 = store.begin_run(config(tmp_path), "sequential")
    records = store.register_videos(run2, [e, d, c, b, a])
    by_id = {r.video_id: r for r in records}
    assert [r.video_id for r in records] == [x.video_id for x in (e, d, c, b, a)]
    assert [r.position for r in records] == [0, 1, 2, 3, 4]
    done = by_id[a.video_id]
    assert done.status is VideoStatus.DONE and done.outputs == {"txt": "a/a.txt"} and done.run_id == run1
    assert done.finished_at == 1010 and done.attempts == 1
    for x in (b, c, d):
        r = by_id[x.video_id]
        assert r.status is VideoStatus.QUEUED and r.attempts == 0 and r.error is None and r.run_id == run2
        assert r.started_at is None and r.progress == 0
    assert by_id[e.video_id].status is VideoStatus.QUEUED
    assert all(by_id[k].folder == f for k, f in folders.items())  # folders never move
    # The first run still lists its own four videos; the store as a whole holds five.
    assert [r.video_id for r in store.videos(run1)] == [x.video_id for x in (a, b, c, d)]
    assert len(store.videos()) == 5
    # Resumed: the tracker built from these records counts a as done, the rest to do.
    snap = store.snapshot(run2)
    assert snap.counts["done"] == 1 and snap.counts["queued"] == 4 and snap.audio_done_s == 10


def test_folders_are_unique_and_safe_even_for_colliding_titles(tmp_path, store):
    run = store.begin_run(config(tmp_path), "sequential")
    titles = ["a/b", "a b", "..", "A B", "video", "", "audio", "a:b"]
    items = [item(f"t{i}", title=t) for i, t in enumerate(titles)]  # "" falls back to the URL's file name
    records = store.register_videos(run, items)
    more = store.register_videos(run, [item("late", title="a b"), item("t0", title="a/b renamed")])
    assert [r.video_id for r in more] == [item("late").video_id, item("t0").video_id]
    assert [r.position for r in more] == [len(titles), 0]  # appended; a video already in the run keeps its place
    folders = [r.folder for r in records + more[:1]]
    assert len({f.lower() for f in folders}) == len(folders)
    for f in folders:
        assert "/" not in f and "\\" not in f and f not in ("", ".", "..", "audio")
    # The same names naming.safe_name gives when called one by one (the store only makes it linear).
    assert [r.folder for r in records] == _expected([i.title for i in items])
    # A video not done yet takes the title the site gives now, and a folder of that name (a failed resolution
    # named it after its URL); a done one keeps its folder whatever its title becomes.
    assert (row(store, item("t0").video_id).title, row(store, item("t0").video_id).folder) == \
        ("a/b renamed", "a b renamed")
    store.apply_event(ev(item("t1"), EventKind.DONE, 2000, outputs={"txt": "a b (2)/transcript.txt"}))
    store.register_videos(run, [item("t1", title="Another title")])
    assert row(store, item("t1").video_id).folder == records[1].folder


def _expected(titles: list[str]) -> list[str]:
    taken: list[str] = []
    for title in titles:
        taken.append(safe_name(title, set(taken)))
    return taken


def test_unresolvable_items_are_recorded_failed_and_not_scheduled(tmp_path, store):
    run = store.begin_run(config(tmp_path), "sequential")
    ok, bad = item("ok", 5), item("missing", error="file not found: missing.mp3")
    records = store.register_videos(run, [ok, bad, ok])  # duplicates collapse to the first
    assert len(records) == 2
    failed = records[1]
    assert failed.status is VideoStatus.FAILED and failed.error == "file not found: missing.mp3"
    assert failed.to_item().error == "file not found: missing.mp3"
    assert records[0].to_item() == ok


def test_done_is_idempotent_and_final(tmp_path, store, clock):
    a = item("a", 20)
    run = store.begin_run(config(tmp_path), "sequential")
    store.register_videos(run, [a])
    assert store.apply_event(ev(a, EventKind.DOWNLOAD_STARTED, 1000, worker="w1"))
    assert store.apply_event(ev(a, EventKind.TRANSCRIBE_STARTED, 1002))
    clock.t = 1012
    assert store.apply_event(done(a, 1012, {"txt": "a/a.txt", "srt": "a/a.srt"}))
    after_first = row(store, a.video_id)
    assert after_first.status is VideoStatus.DONE and after_first.attempts == 1
    assert after_first.elapsed_s == 12 and after_first.speed_x == pytest.approx(2.0)

    clock.t = 1100
    assert not store.apply_event(done(a, 1100, {"txt": "elsewhere.txt"}))
    for kind in (EventKind.DONE, EventKind.FAILED, EventKind.RETRYING, EventKind.DOWNLOAD_STARTED, EventKind.QUEUED):
        assert not store.apply_event(ev(a, kind, 1100, error="late", attempt=5))
    assert row(store, a.video_id) == after_first  # not even updated_at moved


def test_events_for_unknown_videos_are_ignored(tmp_path, store):
    run = store.begin_run(config(tmp_path), "sequential")
    store.register_videos(run, [item("a")])
    assert not store.apply_event(ev("ffffffffffffffff", EventKind.DONE, 1000, outputs={"txt": "x"}))
    assert row(store, "ffffffffffffffff") is None and len(store.videos()) == 1


def test_retry_and_manifest_entries(tmp_path, store, clock):
    a, b = item("a", 30), item("b", 10)
    run = store.begin_run(config(tmp_path), "sequential")
    store.register_videos(run, [a, b])
    store.apply_event(ev(a, EventKind.DOWNLOAD_STARTED, 1000))
    store.apply_event(ev(a, EventKind.RETRYING, 1001, error="connection reset"))
    assert row(store, a.video_id).attempts == 2 and row(store, a.video_id).error == "connection reset"
    store.apply_event(ev(a, EventKind.TRANSCRIBE_STARTED, 1002))
    store.apply_event(ev(a, EventKind.DONE, 1012, outputs={"txt": "a/a.txt"}, speed_x=3.0))
    store.apply_event(ev(b, EventKind.FAILED, 1013, error="no audio stream in b.mp3"))
    entries = store.manifest_entries(run)
    assert [set(e) for e in entries] == [
        {"input", "source", "video_id", "title", "duration_s", "status", "error", "note", "attempts", "outputs",
         "started_at", "finished_at", "elapsed_s", "speed_x", "language", "quality"}
    ] * 2
    assert entries[0] == {
        "input": a.input, "source": a.source, "video_id": a.video_id, "title": "a.mp3", "duration_s": 30, "status": "done", "error": None, "note": None, "attempts": 2,
        "outputs": {"txt": "a/a.txt"}, "started_at": 1000, "finished_at": 1012, "elapsed_s": 12, "speed_x": 3.0,
        "language": None, "quality": None,
    }
    assert entries[1]["status"] == "failed" and entries[1]["error"] == "no audio stream in b.mp3"
    json.dumps(entries)  # the manifest writer can serialise it as is


def test_snapshot_from_store_equals_the_live_tracker(tmp_path, store, clock):
    """Every event goes to both; the store's snapshot (what a restarted dashboard sees) must match."""
    items = [item("a", 40), item("b", 20), item("c"), item("bad", error="unsupported URL: bad")]
    old = item("old", 50)
    run0 = store.begin_run(config(tmp_path), "parallel")
    store.register_videos(run0, [old])
    store.apply_event(done(old, clock.t, {"txt": "old/old.txt"}))
    clock.t = 1990  # the run starts 10 s before its first video (Ray's start, say)
    run = store.begin_run(config(tmp_path), "parallel")
    tracker = ProgressTracker(run, mode="parallel", clock=clock, started_at=store.run(run).created_at)
    tracker.add_videos(store.register_videos(run, [old] + items))
    a, b, c, _ = items
    script = [
        ev(a, EventKind.DOWNLOAD_STARTED, 2000, worker="w1"),
        ev(b, EventKind.DOWNLOAD_STARTED, 2000, worker="w2"),
        ev(a, EventKind.DOWNLOAD_PROGRESS, 2001, progress=0.25, downloaded_bytes=100, download_speed=50.0),
        ev(a, EventKind.DOWNLOADED, 2002),
        ev(a, EventKind.TRANSCRIBE_STARTED, 2002),
        ev(a, EventKind.TRANSCRIBE_PROGRESS, 2006, transcribed_s=10, text="first words"),
        ev(b, EventKind.RETRYING, 2007, error="HTTP Error 503"),
        ev("not-in-run", EventKind.DONE, 2007),
    ]
    for e in script:
        assert tracker.apply(e) == store.apply_event(e)
    clock.t = 2008
    assert_same(store.snapshot(run), tracker.snapshot())

    rest = [
        ev(b, EventKind.DOWNLOAD_STARTED, 2010, worker="w2", attempt=2),
        ev(a, EventKind.DONE, 2014, outputs={"txt": "a/a.txt"}),
        ev(b, EventKind.TRANSCRIBE_STARTED, 2015),
        ev(c, EventKind.TRANSCRIBE_STARTED, 2015, duration_s=8, worker="w1"),
        ev(b, EventKind.DONE, 2020, outputs={"txt": "b/b.txt"}),
        ev(c, EventKind.FAILED, 2021, error="model ran past its time budget"),
        ev(c, EventKind.DONE, 2022),  # too late: c is terminal
    ]
    for e in rest:
        assert tracker.apply(e) == store.apply_event(e)
    clock.t = 2030
    tracker.mark_finished()
    store.finish_run(run, "completed")
    final = store.snapshot(run)
    assert_same(final, tracker.snapshot())
    assert final.finished and final.counts["done"] == 3 and final.counts["failed"] == 2
    # The resumed 50 s are not this run's work; its 60 s took 40 s of wall clock from its start, 30 s from the
    # first video's.
    assert final.throughput_x == pytest.approx(60 / 40) and final.processing_x == pytest.approx(60 / 30)
    assert final.started_at == 1990


def assert_same(from_store, live) -> None:
    s, t = dataclasses.asdict(from_store), dataclasses.asdict(live)
    for key in ("audio_total_s", "audio_done_s", "throughput_x", "eta_s"):
        assert s.pop(key) == pytest.approx(t.pop(key)), key
    assert s == t


def test_concurrent_threads_and_a_second_process_record_every_event_once(tmp_path):
    db = tmp_path / "out" / STATE_DB_NAME
    store = SessionStore(db)
    run = store.begin_run(config(tmp_path), "parallel")
    items = [item(f"v{i}", 10) for i in range(40)]
    shared = item("shared", 10)
    store.register_videos(run, items + [shared])

    child_ids = [i.video_id for i in items[:20]]
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), json.dumps(child_ids), shared.video_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    wins: list[bool] = []

    def worker(ids: list[str]) -> None:
        for vid in ids:
            store.apply_event(ProgressEvent(vid, EventKind.DOWNLOAD_STARTED, worker=threading.current_thread().name))
            store.apply_event(ProgressEvent(vid, EventKind.TRANSCRIBE_PROGRESS, transcribed_s=5))
            store.apply_event(ProgressEvent(vid, EventKind.DONE, outputs={"txt": f"{vid}.txt"}))
            wins.append(store.apply_event(ProgressEvent(shared.video_id, EventKind.DONE, outputs={"txt": "parent"})))

    parent_ids = [i.video_id for i in items[20:]]
    threads = [threading.Thread(target=worker, args=(parent_ids[k::4],), name=f"t{k}") for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    child_wins = json.loads(out)

    records = {r.video_id: r for r in store.videos(run)}
    assert sum(wins) + sum(child_wins) == 1  # exactly one DONE for the contested video, across processes
    assert records[shared.video_id].status is VideoStatus.DONE
    for it in items:
        r = records[it.video_id]
        assert r.status is VideoStatus.DONE and r.attempts == 1 and r.outputs == {"txt": f"{it.video_id}.txt"}
    assert {records[v].worker for v in parent_ids} == {"t0", "t1", "t2", "t3"}
    assert {records[v].worker for v in child_ids} == {"child"}
    store.close()


_CHILD = """
import json, sys
from bulk_transcribe.models import EventKind, ProgressEvent
from bulk_transcribe.session_manager import SessionStore
store = SessionStore(sys.argv[1])
wins = []
for vid in json.loads(sys.argv[2]):
    store.apply_event(ProgressEvent(vid, EventKind.DOWNLOAD_STARTED, worker="child"))
    store.apply_event(ProgressEvent(vid, EventKind.TRANSCRIBE_PROGRESS, transcribed_s=5))
    store.apply_event(ProgressEvent(vid, EventKind.DONE, outputs={"txt": vid + ".txt"}))
    wins.append(store.apply_event(ProgressEvent(sys.argv[3], EventKind.DONE, outputs={"txt": "child"})))
store.close()
print(json.dumps(wins))
"""


# ---- ownership of OUT and each run's own outcome ------------------------------------------------------------

def test_a_run_whose_owner_died_reads_as_stopped_and_keeps_its_own_outcome(tmp_path, store, clock):
    from bulk_transcribe.folder_lock import OwnerLock

    a, b = item("a", 10), item("b", 10)
    run1 = store.begin_run(config(tmp_path), "sequential")
    store.register_videos(run1, [a, b])
    store.apply_event(ev(a, EventKind.DONE, clock.t))
    store.apply_event(ev(b, EventKind.TRANSCRIBE_STARTED, clock.t))
    # Nobody holds the folder: its process is gone, so the run is stopped, not running.
    assert store.run(run1).status == "stopped" and store.runs()[0].stopped
    # A new owner closes it for good, freezing where it left its videos, then redoes b.
    lock = OwnerLock(store.db_path.parent).acquire()
    try:
        assert store.close_stale_runs() == [run1]
        clock.t += 5
        run2 = store.begin_run(config(tmp_path), "sequential")
        lock.record(run2)
        store.register_videos(run2, [a, b])
        assert store.run(run2).status == "running"  # owned by a live process
        store.apply_event(ev(b, EventKind.DONE, clock.t))
        store.finish_run(run2, "finished")
    finally:
        lock.release()
    # Each run shows its own outcome: the first stopped with b unfinished; the second finished both.
    old = store.run(run1)
    assert old.status == "stopped" and old.counts["done"] == 1 and old.counts["transcribing"] == 1
    assert [v.status.value for v in store.videos(run1)] == ["done", "transcribing"]
    assert store.run(run2).counts["done"] == 2


def test_a_version_1_store_gains_the_sites_metadata_on_open(tmp_path, clock):
    """A store written before metadata existed opens, keeps its videos, and records meta from then on."""
    from bulk_transcribe.session_manager import _MIGRATIONS

    db = tmp_path / "out" / STATE_DB_NAME
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.executescript(_MIGRATIONS[1] + "PRAGMA user_version = 1;")
    with SessionStore(db, clock=clock) as s:
        assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        run = s.begin_run(config(tmp_path), "sequential")
        meta = {"id": "abc", "extractor_key": "Youtube", "uploader": "Ann", "playlist_index": 3}
        video = VideoItem("http://127.0.0.1/a.mp3", SourceKind.URL, "x", title="A", meta=meta)
        [record] = s.register_videos(run, [video])
        assert record.meta == meta and record.to_item().meta == meta
        assert row(s, video.video_id).meta == meta


def test_a_version_2_store_moves_notes_out_of_errors(tmp_path, clock):
    """Before notes had their own field, a done video's note sat in `error`: on open it moves to `note`, in the
    live row and in each run's frozen outcome, while a failed video keeps its error."""
    from bulk_transcribe.session_manager import _MIGRATIONS

    db = tmp_path / "out" / STATE_DB_NAME
    db.parent.mkdir()
    note = "audio track 1 of 2 has no speech; transcribed audio track 2 instead"
    with sqlite3.connect(db) as conn:
        conn.executescript(_MIGRATIONS[1] + _MIGRATIONS[2] + "PRAGMA user_version = 2;")
        conn.execute("INSERT INTO runs (run_id, name, mode, status, created_at, out_dir, config_json) "
                     "VALUES ('r1', 'out', 'sequential', 'finished', 1, 'out', '{}')")
        for vid, status, error in (("a" * 16, "done", note), ("b" * 16, "failed", "file is empty")):
            conn.execute("INSERT INTO videos (video_id, position, input, source, kind, title, status, error, folder, "
                         "run_id, updated_at) VALUES (?, 0, 'x', ?, 'file', ?, ?, ?, ?, 'r1', 1)",
                         (vid, f"/m/{vid}", vid, status, error, vid))
            conn.execute("INSERT INTO run_videos (run_id, video_id, position, final_status, final_error) "
                         "VALUES ('r1', ?, 0, ?, ?)", (vid, status, error))
    with SessionStore(db, clock=clock) as s:
        rows = {r.video_id: r for r in s.videos("r1")}
        assert (rows["a" * 16].note, rows["a" * 16].error) == (note, None)
        assert (rows["b" * 16].note, rows["b" * 16].error) == (None, "file is empty")
        entries = {e["video_id"]: e for e in s.manifest_entries(None)}
        assert entries["a" * 16]["note"] == note and entries["a" * 16]["error"] is None
