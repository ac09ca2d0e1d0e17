"""A bundle of short videos on one worker: fetched one by one, transcribed in shared batches, each video's outcome
and events its own. Real yt-dlp against the local media server, real files, the real tiny.en model."""

from __future__ import annotations

import threading

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.errors import Cancelled, VideoError
from bulk_transcribe.models import EventKind, SourceKind, Transcript, VideoItem
from bulk_transcribe.engine.worker import Worker
from bulk_transcribe.engine.pipeline import VideoProcessor
from textmetrics import wer

BATCHED = TranscribeOptions(cpu_threads=2, batch_size=4)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return RunConfig(out_dir=tmp_path_factory.mktemp("out"), transcribe=BATCHED)


@pytest.fixture(scope="module")
def processor(config, tmp_path_factory):
    return VideoProcessor(config, tmp_path_factory.mktemp("work"), worker="w-bundle")


def url(server, path) -> VideoItem:
    return VideoItem(server.url(path), SourceKind.URL, input="x")


def local(path) -> VideoItem:
    return VideoItem(str(path), SourceKind.FILE, input=str(path))


def kinds_of(events, video_id) -> list[EventKind]:
    """The video's event kinds, repeats of one kind collapsed (progress events are throttled by time)."""
    out: list[EventKind] = []
    for e in events:
        if e.video_id == video_id and (not out or out[-1] != e.kind):
            out.append(e.kind)
    return out


def assert_timestamps_sound(t: Transcript) -> None:
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts), starts
    for s in t.segments:
        assert 0.0 <= s.start <= s.end <= t.duration_s + 1e-6, (s, t.duration_s)


def test_one_bad_video_fails_alone_and_the_others_complete(processor, media_server, speech_clips, bad_media,
                                                           jfk_flac, jfk_text):
    weather, garden, train = speech_clips["weather"], speech_clips["garden"], speech_clips["train"]
    items = [
        url(media_server, weather.path.name),
        local(jfk_flac),
        local(bad_media["text_as_mp4"]),          # downloads fine, is not media: fails at the probe
        url(media_server, "no-such-clip.mp3"),    # the server answers 404: fails at the fetch
        local(garden.path),
        url(media_server, train.path.name),
    ]
    texts = {0: weather.text, 1: jfk_text, 4: garden.text, 5: train.text}
    events = []
    results = processor.process_bundle(items, events.append)

    assert len(results) == len(items)
    for i in (2, 3):
        assert isinstance(results[i], VideoError), results[i]
        assert results[i].reason and "Error" not in results[i].reason, results[i].reason
    assert "not a media file" in results[2].reason
    for i, text in texts.items():
        t = results[i]
        assert isinstance(t, Transcript) and t.video_id == items[i].video_id
        assert wer(text, t.text) <= 0.35, (i, t.text)
        assert t.batch_size == 4 and t.worker == "w-bundle"
        assert_timestamps_sound(t)
        assert t.segments and t.segments[-1].end <= t.duration_s
    assert results[0].download_s is not None and results[0].download_s >= 0

    # Each video's own events, in process()'s order; TRANSCRIBE_STARTED carries the probed length.
    for i in texts:
        vid = items[i].video_id
        kinds = kinds_of(events, vid)
        if items[i].kind == SourceKind.URL:
            assert kinds[0] == EventKind.DOWNLOAD_STARTED
            assert kinds.index(EventKind.DOWNLOADED) < kinds.index(EventKind.TRANSCRIBE_STARTED)
        else:  # a local file has nothing to download: queued (with its probed length) until it is transcribed
            assert kinds[0] == EventKind.QUEUED and EventKind.DOWNLOAD_STARTED not in kinds
        assert kinds.index(EventKind.TRANSCRIBE_STARTED) < kinds.index(EventKind.TRANSCRIBE_PROGRESS)
        started = next(e for e in events if e.video_id == vid and e.kind == EventKind.TRANSCRIBE_STARTED)
        assert started.duration_s == pytest.approx(results[i].duration_s, abs=0.1)
        progress = [e.transcribed_s for e in events if e.video_id == vid and e.kind == EventKind.TRANSCRIBE_PROGRESS]
        assert progress == sorted(progress) and progress[-1] <= results[i].duration_s + 1e-6
        assert all(e.worker == "w-bundle" for e in events if e.video_id == vid and e.kind != EventKind.QUEUED)
    assert kinds_of(events, items[3].video_id) == [EventKind.DOWNLOAD_STARTED], "a failed fetch goes no further"
    assert EventKind.TRANSCRIBE_STARTED not in kinds_of(events, items[2].video_id)
    # Downloads are released once the bundle is through.
    assert not any(p.is_file() for p in processor.downloader.work_dir.rglob("*"))


def test_a_bundle_video_gets_the_events_process_gives_it(processor, media_server, speech_clips):
    item = url(media_server, speech_clips["library"].path.name)
    alone, bundled = [], []
    processor.process(item, alone.append)
    (result,) = processor.process_bundle([item], bundled.append)
    assert isinstance(result, Transcript)
    assert kinds_of(bundled, item.video_id) == kinds_of(alone, item.video_id)


def test_cancel_ends_the_whole_bundle_and_releases_its_downloads(processor, media_server, speech_clips):
    items = [url(media_server, speech_clips[name].path.name) for name in ("weather", "garden")]
    downloaded = threading.Event()

    def emit(event):
        if event.kind == EventKind.DOWNLOADED:
            downloaded.set()

    with pytest.raises(Cancelled):
        processor.process_bundle(items, emit, downloaded.is_set)  # cancel once the first file is here
    assert not any(p.is_file() for p in processor.downloader.work_dir.rglob("*"))


def test_the_worker_runs_a_bundle_under_its_model_lock(config, tmp_path, media_server, speech_clips, bad_media):
    events = []
    actor = Worker(config, "w-actor", progress=events.append, work_dir=tmp_path / "work")
    items = [url(media_server, speech_clips["train"].path.name), local(bad_media["empty"])]
    results = actor.process_bundle(items)
    assert isinstance(results[0], Transcript) and wer(speech_clips["train"].text, results[0].text) <= 0.35
    assert isinstance(results[1], VideoError) and results[1].reason == "file is empty"
    assert actor.info()["videos_done"] == 1
    assert not actor._model_lock.locked()
    actor.close()
