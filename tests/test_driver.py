"""The one driver loop, through both executors: the same tests run in-process ("local", no Ray) and on a real
local Ray ("ray", one per module), with the real bundled model. Every video ends with exactly one terminal event;
one bad video never stops the batch; retries, cancel and the start-up phase behave the same in both modes."""

from __future__ import annotations

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.models import EventKind, SourceKind, VideoItem, VideoStatus
from engine_harness import drive, shared_worker

EXECUTORS = ["local", "ray"]


@pytest.fixture(scope="module")
def base_config(tmp_path_factory):
    return RunConfig(out_dir=tmp_path_factory.mktemp("shared"), transcribe=TranscribeOptions(cpu_threads=1),
                     max_attempts=2, workers=2)


@pytest.fixture(scope="module")
def local_worker(base_config):
    return shared_worker(base_config)


@pytest.fixture(params=EXECUTORS)
def engine(request, local_worker, tmp_path, base_config):
    """(executor kind, a config on a fresh OUT, the shared worker for local runs)."""
    if request.param == "ray":
        request.getfixturevalue("ray_local")  # started by the first Ray test, shared by the module
    from dataclasses import replace

    config = replace(base_config, out_dir=tmp_path / "out")
    return request.param, config, (local_worker if request.param == "local" else None)


def _file(path, name=None) -> VideoItem:
    return VideoItem(str(path), SourceKind.FILE, input=name or str(path))


def test_every_video_ends_once_and_bad_ones_do_not_stop_the_batch(engine, speech_clips, bad_media, media_server):
    kind, config, worker = engine
    items = [
        _file(bad_media["text_as_mp4"], "a"),
        _file(speech_clips["weather"].path, "b"),
        VideoItem(media_server.url("status/500"), SourceKind.URL, input="c"),
        _file(speech_clips["garden"].path, "d"),
    ]
    run = drive(config, items, kind, worker=worker)
    assert run.terminal() == {
        items[0].video_id: [EventKind.FAILED],
        items[1].video_id: [EventKind.DONE],
        items[2].video_id: [EventKind.FAILED],
        items[3].video_id: [EventKind.DONE],
    }
    # A server error is transient: it was retried once (max_attempts=2) before failing, a bad file was not.
    retries = [e.video_id for e in run.events if e.kind == EventKind.RETRYING]
    assert retries == [items[2].video_id]
    failed = next(e for e in run.events if e.kind == EventKind.FAILED and e.video_id == items[2].video_id)
    assert "500" in failed.error and failed.attempt == 2
    statuses = run.statuses()
    assert [statuses[i.video_id] for i in items] == [VideoStatus.FAILED, VideoStatus.DONE, VideoStatus.FAILED,
                                                     VideoStatus.DONE]


def test_cancel_after_the_first_done_marks_the_rest(engine, speech_clips):
    kind, config, worker = engine
    items = [_file(c.path, c.name) for c in speech_clips.values()]
    run = drive(config, items, kind, worker=worker,
                when=lambda s: s.counts.get("done", 0) >= 1, action=lambda s, driver: driver.cancel_event.set())
    ends = run.terminal()
    assert run.fired and len(ends) == 4 and all(len(v) == 1 for v in ends.values()), ends
    kinds = [k[0] for k in ends.values()]
    assert EventKind.DONE in kinds and EventKind.CANCELLED in kinds
    assert all(s.is_terminal for s in run.statuses().values())


def test_cancel_mid_video_is_cancelled_not_failed(engine, jfk_flac):
    kind, config, worker = engine
    items = [_file(jfk_flac, "jfk")]
    run = drive(config, items, kind, worker=worker,
                when=lambda s: any(v.status == VideoStatus.TRANSCRIBING for v in s.videos),
                action=lambda s, driver: driver.cancel_event.set())
    assert run.fired and run.terminal() == {items[0].video_id: [EventKind.CANCELLED]}


def test_start_up_phase_is_said_until_the_model_is_loaded(engine, speech_clips):
    """A run is never silent while it starts: the screens show 'loading the model' until videos flow."""
    kind, config, worker = engine
    run = drive(config, [_file(speech_clips["train"].path, "train")], kind, worker=worker)
    assert run.phases[0].startswith("loading the model on 1 worker") and run.phases[1] is None
    assert run.terminal() and list(run.terminal().values())[0] == [EventKind.DONE]


def test_nothing_to_do_loads_no_model(engine):
    kind, config, _ = engine
    run = drive(config, [], kind)  # no worker given: a local run would have to load one
    assert run.phases == [] and run.driver.started == 0 and run.events == []


def test_short_videos_go_to_a_worker_in_bundles_when_batched(engine, speech_clips):
    """--batch-size 4: the short clips share the model's batches as one bundle, and each is still delivered and
    recorded on its own, with timestamps inside its own length."""
    import json
    from dataclasses import replace

    kind, config, worker = engine
    config = replace(config, transcribe=replace(config.transcribe, batch_size=4))
    if worker is not None:  # the shared worker was built unbatched: a batched run needs its own options
        worker = None
    items = [_file(c.path, c.name) for c in speech_clips.values()]
    run = drive(config, items, kind, worker=worker)
    assert run.terminal() == {i.video_id: [EventKind.DONE] for i in items}
    assert any(len(call) > 1 for call in run.submissions), run.submissions
    for record in run.store.videos(run.run_id):
        data = json.loads((config.out_dir / record.folder / record.outputs["json"].split("/")[-1]).read_text())
        assert data["segments"], record.title
        ends = [seg["end"] for seg in data["segments"]]
        assert ends == sorted(ends) and ends[-1] <= record.duration_s + 0.05
