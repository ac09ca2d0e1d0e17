"""Batch orchestration: videos stream in as resolved, a handle to poll, resume, retry, the env rollback switch."""

from __future__ import annotations

import json
from pathlib import Path

from bulk_transcribe.runs import attach_snapshot, prepare_batch, run_batch, start_batch
from bulk_transcribe.config import PARALLEL_ENV, RunConfig
from bulk_transcribe.models import VideoStatus


def test_env_variable_overrides_the_flag_both_ways(monkeypatch):
    base = RunConfig()
    assert base.parallel is False
    monkeypatch.setenv(PARALLEL_ENV, "1")
    assert base.with_env_overrides().parallel is True
    monkeypatch.setenv(PARALLEL_ENV, "0")
    assert RunConfig(parallel=True).with_env_overrides().parallel is False


def test_feed_entries_join_the_table_with_titles_and_durations(make_config, tmp_path, media_server):
    config = make_config(tmp_path / "out", [media_server.url("feed.rss")], cpu_threads=2)
    prepared = prepare_batch(config)
    assert prepared.records == []  # nothing is resolved before the run starts: inputs stream in once it runs
    handle = start_batch(config, prepared)
    try:
        for _ in range(300):
            snap = handle.snapshot()
            if len(snap.videos) == 4:
                break
            handle.wait(0.1)
        assert len(snap.videos) == 4
        assert all(v.title and v.duration_s for v in snap.videos)  # the feed's own titles and itunes:duration
        assert snap.inputs_total == 1 and snap.inputs_resolved == 1
    finally:
        handle.cancel()
        handle.wait()
    assert len(prepared.records) == 4 and all(r.title and r.duration_s for r in prepared.records)


def test_handle_snapshots_while_running_and_resume_skips_done(make_config, tmp_path, speech_clips, bad_media):
    out = tmp_path / "out"
    config = make_config(out, [speech_clips["weather"].path, speech_clips["library"].path, bad_media["empty"]],
                         cpu_threads=2)
    handle = start_batch(config)
    seen_statuses = set()
    while not handle.wait(0.1):
        snap = handle.snapshot()
        seen_statuses |= {v.status for v in snap.videos}
        assert len(snap.videos) <= 3  # videos join as their inputs resolve
        assert snap.inputs_total == 3
    assert VideoStatus.TRANSCRIBING in seen_statuses
    final = handle.snapshot()
    assert len(final.videos) == 3 and final.inputs_resolved == 3
    assert final.counts["done"] == 2 and final.counts["failed"] == 1
    assert handle.result.exit_code == 1

    # The same run read back from the store alone (what a restarted dashboard does).
    again = attach_snapshot(out, handle.run_id)
    assert [v.status for v in again.videos] == [v.status for v in final.videos]

    # Rerun: done videos are not processed again, the failed one is retried (and fails again).
    result = run_batch(config)
    assert result.tally.registered == 3 and result.tally.done_before == 2
    assert result.counts["done"] == 2 and result.counts["failed"] == 1
    entries = json.loads(result.manifest.read_text())
    assert len(entries["videos"]) == 3 and entries["count"] == 3


def test_retry_failed_requeues_only_failed(make_config, tmp_path, speech_clips, media_server):
    out = tmp_path / "out"
    flaky = media_server.url("status/503")
    config = make_config(out, [speech_clips["garden"].path, flaky], cpu_threads=2, max_attempts=1)
    first = run_batch(config)
    assert first.counts["failed"] == 1
    handle = start_batch(config)  # a retry: the same inputs again
    handle.wait()
    snap = handle.snapshot()
    assert snap.counts["done"] == 1 and snap.counts["failed"] == 1
    assert attach_snapshot(out, "no-such-run") is None


def test_lengths_are_the_audios_and_a_silent_first_track_is_said(make_config, tmp_path, odd_layouts):
    # 30 s of video over ~4 s of speech is ~4 s long from the start; a file whose first audio track is silent is
    # transcribed from the track with speech, and the row and the JSON say so.
    longer, tracks = odd_layouts["video_longer.mkv"], odd_layouts["first_track_silent.mkv"]
    out = tmp_path / "out"
    config = make_config(out, [longer.path, tracks.path], cpu_threads=2)
    prepared = prepare_batch(config)
    result = run_batch(config, prepared=prepared)
    assert [round(r.duration_s, 1) for r in prepared.records] == [round(longer.audio_s, 1), round(tracks.audio_s, 1)]
    assert result.counts["done"] == 2
    entries = {Path(e["source"]).name: e for e in json.loads(result.manifest.read_text())["videos"]}
    note = "audio track 1 of 2 has no speech; transcribed audio track 2 instead"
    assert entries["first_track_silent.mkv"]["note"] == note  # a note on a done video, not an error
    assert entries["first_track_silent.mkv"]["error"] is None
    assert entries["video_longer.mkv"]["error"] is None and entries["video_longer.mkv"]["note"] is None
    data = json.loads((out / entries["first_track_silent.mkv"]["outputs"]["json"]).read_text())
    assert data["notes"] == [note] and "breeze from the west" in data["text"]
    assert "notes" not in json.loads((out / entries["video_longer.mkv"]["outputs"]["json"]).read_text())
