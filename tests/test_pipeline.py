"""One video's path with the real downloader and model: events in order, outputs delivered, failures as data."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.errors import Cancelled, MediaError, VideoError
from bulk_transcribe.models import EventKind, SourceKind, VideoItem
from bulk_transcribe.engine.pipeline import VideoProcessor, deliver, failure_reason, retry_may_help
from textmetrics import wer


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return RunConfig(out_dir=tmp_path_factory.mktemp("out"), transcribe=TranscribeOptions(cpu_threads=2))


@pytest.fixture(scope="module")
def processor(config, tmp_path_factory):
    return VideoProcessor(config, tmp_path_factory.mktemp("work"), worker="test")


def test_url_video_emits_stages_in_order_and_delivers(processor, config, media_server, speech_clips):
    clip = speech_clips["train"]
    item = VideoItem(media_server.url(clip.path.name), SourceKind.URL, input="x")
    events = []
    transcript = processor.process(item, events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == EventKind.DOWNLOAD_STARTED
    assert kinds.index(EventKind.DOWNLOADED) < kinds.index(EventKind.TRANSCRIBE_STARTED)
    assert all(e.worker == "test" for e in events)
    assert wer(clip.text, transcript.text) <= 0.35
    # The temporary download is gone once the video is processed.
    assert not any(p.is_file() for p in processor.downloader.work_dir.rglob("*"))

    done = deliver(config, "train", item, transcript, attempt=1)
    assert done.kind == EventKind.DONE and set(done.outputs) == set(config.formats)
    assert (config.out_dir / done.outputs["txt"]).read_text().strip()


def test_bad_media_raises_specific_error(processor, bad_media):
    item = VideoItem(str(bad_media["no_audio"]), SourceKind.FILE, input="x")
    with pytest.raises(MediaError, match="no audio"):
        processor.process(item, lambda e: None)


def test_deliver_to_unwritable_place_is_a_video_error(tmp_path, processor, jfk_flac):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    config = RunConfig(out_dir=blocker)  # OUT is a file: every write fails with a real OSError
    item = VideoItem(str(jfk_flac), SourceKind.FILE, input="x")
    transcript = processor.transcribe(item, processor.downloader.fetch(item), lambda e: None)
    with pytest.raises(VideoError, match="cannot write outputs"):
        deliver(config, "jfk", item, transcript, attempt=1)


def test_failure_reason_and_retry_policy():
    try:
        {}["missing"]
    except KeyError as exc:
        reason = failure_reason(exc)
    assert reason.startswith("internal error: KeyError") and "test_pipeline.py" in reason
    assert failure_reason(VideoError("HTTP 500\n  Internal")) == "HTTP 500 Internal"
    assert retry_may_help(VideoError("x")) and not retry_may_help(Cancelled("cancelled"))
    assert not retry_may_help(MediaError("x"))  # not media: the same file fails the same way
    assert not retry_may_help(KeyError("x"))


def test_a_downloaded_video_takes_its_audio_length_at_once(processor, media_server, media_dir, odd_layouts):
    # The site says 30 s (its video's length); the file holds ~4 s of audio: that is the length from DOWNLOADED on.
    layout = odd_layouts["video_longer.mkv"]
    shutil.copy(layout.path, media_dir / "layout_video_longer.mkv")
    item = VideoItem(media_server.url("layout_video_longer.mkv"), SourceKind.URL, input="x", duration_s=30.0)
    events = []
    processor.process(item, events.append)
    lengths = {e.kind: e.duration_s for e in events if e.kind in (EventKind.DOWNLOADED, EventKind.TRANSCRIBE_STARTED)}
    assert lengths[EventKind.DOWNLOADED] == pytest.approx(layout.audio_s, abs=0.15)
    assert lengths[EventKind.TRANSCRIBE_STARTED] == pytest.approx(layout.audio_s, abs=0.15)


def test_recheck_redoes_only_flagged_transcripts_and_keeps_the_better(run_cli, tmp_path, mixed_languages,
                                                                      whisper_base):
    """A first run flags German, Spanish and silence; a rerun with --recheck-model (Whisper base, multilingual)
    redoes just those three with safer options, keeps the better of each pair by the same signals and records
    both; the English transcript is left as it was; a third run has nothing left to recheck."""
    out = tmp_path / "out"
    common = ["--out", str(out), "--formats", "txt,json", "--cpu-threads", "2"]
    assert run_cli("run", *map(str, mixed_languages.values()), *common)[0] == 0
    before = {v["title"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    texts = {t: (out / v["outputs"]["txt"]).read_text() for t, v in before.items()}
    # Mark the stored German transcript (the copy OUT keeps): the recheck must weigh that one, not a new pass.
    stored = out / ".transcripts" / f"{before['german']['video_id']}.json.gz"
    data = json.loads(gzip.decompress(stored.read_bytes()))
    data["quality"]["signals"]["mean_logprob"] = -2.5
    stored.write_bytes(gzip.compress(json.dumps(data).encode()))

    code, stdout, stderr = run_cli("run", *map(str, mixed_languages.values()), *common, "--recheck-model",
                                   str(whisper_base))
    assert code == 0, stdout + stderr
    assert "3 finished video(s) flagged before: transcribed again to recheck them" in stdout
    after = {v["title"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    assert after["english"]["finished_at"] == before["english"]["finished_at"]  # not redone
    assert after["english"]["quality"].get("recheck") is None
    for title in ("german", "spanish", "silence"):
        recheck = after[title]["quality"]["recheck"]
        assert recheck["model"] == "whisper-base" and recheck["original_flags"], recheck
        assert "rechecked with safer options (whisper-base)" in after[title]["note"]
        # What the recheck had to beat is the transcript the user had, not a fresh (and different) first pass.
        assert recheck["original_flags"] == before[title]["quality"]["flags"], (recheck, before[title]["quality"])
        if recheck["kept"] == "original":
            assert (out / after[title]["outputs"]["txt"]).read_text() == texts[title]
        else:  # both recorded: the text not kept stays readable beside the one kept (the .txt puts each segment
            # on its own line; other_text holds the same words on one)
            assert recheck["other_text"].split() == texts[title].split()
    assert after["german"]["quality"]["recheck"]["original_logprob"] == -2.5
    # Whisper base hears the Spanish the English-only model dropped, and writes nothing on silence.
    spanish = after["spanish"]
    assert spanish["quality"]["recheck"]["kept"] == "recheck" and spanish["quality"]["flags"] == []
    assert spanish["language"] == "es" and "tiempo" in (out / spanish["outputs"]["txt"]).read_text().lower()
    silence = after["silence"]
    assert silence["quality"]["recheck"]["kept"] == "recheck" and silence["quality"]["flags"] == []
    assert (out / silence["outputs"]["txt"]).read_text().strip() == ""

    code, stdout, _ = run_cli("run", *map(str, mixed_languages.values()), *common, "--recheck")
    assert code == 0 and "flagged before" not in stdout and stdout.strip().splitlines()[-1].startswith("Nothing to do")
