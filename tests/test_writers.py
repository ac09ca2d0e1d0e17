"""Outputs read back as what was written; atomic writes survive real failures; names cannot escape OUT."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bulk_transcribe.config import TranscribeOptions
from bulk_transcribe.layout import MANIFEST_NAME
from bulk_transcribe.models import Segment, SourceKind, Transcript, VideoItem, VideoStatus, Word
from subtitle_files import parse_srt, parse_vtt
from bulk_transcribe.outputs.writers import (
    atomic_write_text,
    render_json,
    render_srt,
    render_txt,
    render_vtt,
    write_manifest,
    write_transcript,
)

ITEM = VideoItem(source="https://example.org/v/1", kind=SourceKind.URL, input="https://example.org/v/1",
                 title="A talk")


def _transcript() -> Transcript:
    """Hand-made so the edge cases are certain: hours, rounding, markup characters, an empty segment."""
    return Transcript(
        video_id="vid1", language="en", language_probability=0.98, duration_s=3725.5,
        segments=[
            Segment(0.0, 2.5, " Hello there.", [Word(0.0, 1.0, " Hello", 0.9), Word(1.0, 2.5, " there.", 0.8)]),
            Segment(2.5, 61.0004, " Fish & chips <cheap> --> now", []),
            Segment(61.0, 61.0, "   ", []),
            Segment(3600.0, 3725.4996, " Last   line\nwrapped", []),
        ],
        model="bundled (tiny.en)", transcribe_s=100.0, download_s=2.0,
    )


def test_timestamp_formats_and_numbering():
    srt, vtt = render_srt(_transcript()), render_vtt(_transcript())
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n00:00:02,500 --> 00:01:01,000\n")
    assert "3\n01:00:00,000 --> 01:02:05,500\nLast line wrapped\n\n" in srt
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n")
    assert "Fish &amp; chips &lt;cheap&gt; --&gt; now" in vtt  # markup would otherwise be read as tags
    assert render_txt(_transcript()) == "Hello there.\nFish & chips <cheap> --> now\nLast line wrapped\n"


def test_srt_and_vtt_parse_back_to_the_json_segments():
    t = _transcript()
    data = json.loads(render_json(t, ITEM, {}))
    expected = [(s["start"], s["end"], s["text"]) for s in data["segments"] if s["text"]]
    expected = [(a, b, " ".join(text.split())) for a, b, text in expected]
    for cues in (parse_srt(render_srt(t)), parse_vtt(render_vtt(t))):
        assert [(round(a, 3), round(b, 3), text) for a, b, text in cues] == expected
        starts = [c[0] for c in cues]
        assert starts == sorted(starts) and all(b >= a for a, b, _ in cues)


def test_parse_vtt_accepts_short_timestamps_and_rejects_non_vtt():
    cues = parse_vtt("WEBVTT\n\nNOTE a comment\n\n00:01.500 --> 00:03.000 align:start\nHi\nthere\n")
    assert cues == [(1.5, 3.0, "Hi\nthere")]
    with pytest.raises(ValueError, match="WEBVTT"):
        parse_vtt("1\n00:00:00,000 --> 00:00:01,000\nx\n")


def test_json_holds_words_metadata_and_timings():
    data = json.loads(render_json(_transcript(), ITEM, {"timings": {"queued_s": 1.5}, "attempts": 2}))
    assert data["source"] == ITEM.source and data["title"] == "A talk" and data["video_id"] == "vid1"
    assert data["language"] == "en" and data["language_probability"] == 0.98
    assert data["duration"] == 3725.5 and data["model"] == "bundled (tiny.en)"
    assert data["timings"] == {"download_s": 2.0, "transcribe_s": 100.0, "speed_x": 37.255, "queued_s": 1.5}
    assert data["attempts"] == 2
    assert data["segments"][0]["words"] == [
        {"start": 0.0, "end": 1.0, "word": " Hello", "probability": 0.9},
        {"start": 1.0, "end": 2.5, "word": " there.", "probability": 0.8},
    ]
    assert data["text"].startswith("Hello there. Fish & chips")
    no_words = Transcript("v", "en", 1.0, 1.0, [Segment(0.0, 1.0, "hi")], "m")
    assert "words" not in json.loads(render_json(no_words, ITEM, {}))["segments"][0]


def test_empty_transcript_renders_valid_empty_outputs():
    t = Transcript("v", "en", 1.0, 3.0, [], "m")
    assert render_txt(t) == "" and render_srt(t) == "" and render_vtt(t) == "WEBVTT\n\n"
    assert parse_vtt(render_vtt(t)) == [] and json.loads(render_json(t, ITEM, {}))["segments"] == []


def test_write_transcript_writes_every_format(tmp_path):
    outputs = write_transcript(tmp_path, "A talk", ITEM, _transcript(), ("txt", "srt", "vtt", "json"))
    assert outputs == {f: f"A talk/transcript.{f}" for f in ("txt", "srt", "vtt", "json")}
    assert (tmp_path / outputs["txt"]).read_text() == render_txt(_transcript())
    assert json.loads((tmp_path / outputs["json"]).read_text())["title"] == "A talk"
    assert sorted(p.name for p in (tmp_path / "A talk").iterdir()) == sorted(
        f"transcript.{f}" for f in outputs)  # no temp files left behind


def test_write_transcript_with_a_real_model_transcript(tmp_path, jfk_flac):
    from bulk_transcribe.media.transcribe import Transcriber

    t = Transcriber(TranscribeOptions(cpu_threads=1)).transcribe(jfk_flac, "jfk")
    outputs = write_transcript(tmp_path, "jfk", ITEM, t, ("srt", "vtt", "json"))
    segments = json.loads((tmp_path / outputs["json"]).read_text())["segments"]
    srt = parse_srt((tmp_path / outputs["srt"]).read_text())
    vtt = parse_vtt((tmp_path / outputs["vtt"]).read_text())
    assert [c[2] for c in srt] == [c[2] for c in vtt] == [s["text"] for s in segments]
    assert srt[-1][1] == pytest.approx(segments[-1]["end"], abs=0.001)


@pytest.mark.parametrize("folder", ["..", "../elsewhere", "a/../../x", "/tmp/abs", "", ".", "a/.."])
def test_folder_escaping_out_dir_is_refused(tmp_path, folder):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="output folder"):
        write_transcript(out, folder, ITEM, _transcript(), ("txt",))
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "x").exists()


def test_symlinked_folder_pointing_outside_is_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        write_transcript(out, "link", ITEM, _transcript(), ("txt",))
    assert list(outside.iterdir()) == []


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        write_transcript(tmp_path, "x", ITEM, _transcript(), ("txt", "docx"))


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "transcript.txt"
    atomic_write_text(target, "old version\n")
    # A lone surrogate cannot be encoded as UTF-8: the write fails part-way, after the temp file exists.
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "new version " + "x" * 100_000 + "\udc80")
    assert target.read_text() == "old version\n"
    assert os.listdir(tmp_path) == ["transcript.txt"]


def test_failed_rename_keeps_the_target_and_leaves_no_temp(tmp_path):
    # The target is a non-empty folder: the data is written and synced, then os.replace fails for real.
    target = tmp_path / "transcript.txt"
    target.mkdir()
    (target / "keep").write_text("keep")
    with pytest.raises(OSError):
        atomic_write_text(target, "text")
    assert (target / "keep").read_text() == "keep"
    assert os.listdir(tmp_path) == ["transcript.txt"]


def test_atomic_write_replaces_and_respects_umask(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two ünïcode\n")
    assert target.read_text(encoding="utf-8") == "two ünïcode\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_manifest_round_trips(tmp_path):
    entries = [
        {"input": "https://example.org/v/1", "title": "A talk", "duration_s": 11.0, "status": VideoStatus.DONE,
         "error": None, "attempts": 1, "outputs": {"txt": "A talk/transcript.txt"}, "started": 1.0,
         "finished": 2.5, "elapsed": 1.5, "speed_x": 7.3},
        {"input": "/media/bad.mp4", "title": "bad", "duration_s": None, "status": "failed",
         "error": "file is empty (0 bytes)", "attempts": 1, "outputs": {}, "started": 3.0, "finished": 3.1,
         "elapsed": 0.1, "speed_x": None, "path": Path("/media/bad.mp4")},
    ]
    (tmp_path / "out" / "A talk").mkdir(parents=True)
    (tmp_path / "out" / "A talk" / "transcript.txt").write_text("words\n")
    path = write_manifest(tmp_path / "out", entries)
    assert path == tmp_path / "out" / MANIFEST_NAME
    data = json.loads(path.read_text())
    back = data["videos"]
    assert back[0] == {**entries[0], "status": "done"}
    assert back[1] == {**entries[1], "path": "/media/bad.mp4"}
    assert data["count"] == 2 and data["version"] == 1
    write_manifest(tmp_path / "out", entries[:1])  # rewritten in place, atomically
    assert len(json.loads(path.read_text())["videos"]) == 1


@pytest.mark.parametrize("folder", ["manifest.json", "bulk_transcribe.sqlite", "Audio", "MANIFEST.JSON/x"])
def test_folder_named_like_the_tools_own_files_is_refused(tmp_path, folder):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="tool's own"):
        write_transcript(out, folder, ITEM, _transcript(), ("txt",))
    assert not (out / folder).exists()
