"""The in-process runner with the real model: exactly one terminal event per video, retries, cancel."""

from __future__ import annotations

import threading

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.models import EventKind, SourceKind, VideoItem
from bulk_transcribe.pipeline import VideoProcessor
from bulk_transcribe.session_manager import SessionStore
from bulk_transcribe.sequential import run_sequential

TERMINAL = {EventKind.DONE, EventKind.FAILED, EventKind.CANCELLED, EventKind.SKIPPED}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return RunConfig(out_dir=tmp_path_factory.mktemp("out"), transcribe=TranscribeOptions(cpu_threads=2),
                     max_attempts=2)


@pytest.fixture(scope="module")
def processor(config):
    return VideoProcessor(config, config.out_dir / ".work", "local")


def register(config, items):
    store = SessionStore(config.state_db)
    run_id = store.begin_run(config, "sequential")
    return store.register_videos(run_id, items)


def cancel_on(kind):
    """A cancel flag that the first event of `kind` sets, the event list, and the emit that records into it."""
    cancel, events = threading.Event(), []

    def emit(event):
        events.append(event)
        if event.kind == kind:
            cancel.set()

    return cancel, events, emit


def terminal_events(events):
    by_video = {}
    for e in events:
        if e.kind in TERMINAL:
            by_video.setdefault(e.video_id, []).append(e)
    return by_video


def test_every_video_ends_once_and_bad_ones_do_not_stop_the_batch(config, processor, speech_clips, bad_media,
                                                                   media_server):
    items = [
        VideoItem(str(bad_media["text_as_mp4"]), SourceKind.FILE, input="a"),
        VideoItem(str(speech_clips["weather"].path), SourceKind.FILE, input="b"),
        VideoItem(media_server.url("status/500"), SourceKind.URL, input="c"),
        VideoItem(str(speech_clips["garden"].path), SourceKind.FILE, input="d"),
    ]
    records = register(config, items)
    events = []
    run_sequential(config, records, events.append, processor=processor)
    ends = terminal_events(events)
    assert {vid: [e.kind for e in evs] for vid, evs in ends.items()} == {
        items[0].video_id: [EventKind.FAILED],
        items[1].video_id: [EventKind.DONE],
        items[2].video_id: [EventKind.FAILED],
        items[3].video_id: [EventKind.DONE],
    }
    # A server error is transient: it was retried once (max_attempts=2) before failing, a bad file was not.
    retries = [e.video_id for e in events if e.kind == EventKind.RETRYING]
    assert retries == [items[2].video_id]
    assert "500" in ends[items[2].video_id][0].error
    assert ends[items[2].video_id][0].attempt == 2


def test_cancel_stops_between_videos_and_marks_the_rest(config, processor, speech_clips):
    items = [VideoItem(str(c.path), SourceKind.FILE, input=c.name) for c in speech_clips.values()]
    records = register(config, items)
    cancel, events, emit = cancel_on(EventKind.DONE)
    run_sequential(config, records, emit, cancel_event=cancel, processor=processor)
    ends = terminal_events(events)
    assert len(ends) == 4 and all(len(v) == 1 for v in ends.values())
    kinds = [ends[i.video_id][0].kind for i in items]
    assert kinds[0] == EventKind.DONE
    assert kinds[1:] == [EventKind.CANCELLED] * 3


def test_cancel_mid_video_is_cancelled_not_failed(config, processor, jfk_flac):
    records = register(config, [VideoItem(str(jfk_flac), SourceKind.FILE, input="jfk")])
    cancel, events, emit = cancel_on(EventKind.TRANSCRIBE_STARTED)
    run_sequential(config, records, emit, cancel_event=cancel, processor=processor)
    assert [e.kind for e in events if e.kind in TERMINAL] == [EventKind.CANCELLED]


def test_start_up_phase_is_reported_while_the_model_loads(config, speech_clips):
    """A run is never silent while it starts: the screens show 'loading the model' until videos flow."""
    clip = speech_clips["train"]
    records = register(config, [VideoItem(str(clip.path), SourceKind.FILE, str(clip.path), title="train")])
    phases, events = [], []

    def emit(event):
        events.append((len(phases), event.kind))

    run_sequential(config, records, emit, on_phase=phases.append)
    assert phases == ["loading the model", None]
    assert events and all(n == 2 for n, _ in events)  # every event came after the phase was cleared
