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


def test_cancel_after_the_first_done_marks_the_rest(engine, speech_clips, jfk_flac, tmp_path):
    kind, config, worker = engine
    # Enough audio behind the first video that a cancel lands while some are still to do (four short clips alone
    # could all finish on two Ray workers within the watcher's poll).
    import shutil

    copies = [shutil.copy(jfk_flac, tmp_path / f"jfk{n}.flac") for n in range(4)]
    items = [_file(c.path, c.name) for c in speech_clips.values()] + [_file(c, f"jfk{n}") for n, c in
                                                                      enumerate(copies)]
    run = drive(config, items, kind, worker=worker,
                when=lambda s: s.counts.get("done", 0) >= 1, action=lambda s, driver: driver.cancel_event.set())
    ends = run.terminal()
    assert run.fired and len(ends) == len(items) and all(len(v) == 1 for v in ends.values()), ends
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


# ---- the driver's policy, in memory (no model, no Ray): milliseconds per run -------------------------------------

@pytest.fixture
def policy(tmp_path):
    """(config, items, run(script, ...)): drive scripted outcomes through the real Driver, intake and store."""
    from engine_harness import ScriptedExecutor

    from bulk_transcribe.engine.scheduler import Scheduler

    config = RunConfig(out_dir=tmp_path / "out", max_attempts=2, workers=2, formats=("txt",))
    items = [VideoItem(f"/media/v{n}.mp3", SourceKind.FILE, f"v{n}.mp3", duration_s=10.0 * (n + 1))
             for n in range(4)]

    def run(script, *, cfg=None, planned=2, starts_ok=100, **kw):
        executor = ScriptedExecutor({items[n].video_id: outcomes for n, outcomes in script.items()},
                                    planned=planned, starts_ok=starts_ok)
        scheduler = Scheduler(max_attempts=(cfg or config).max_attempts, backoff_s=0.01)
        return drive(cfg or config, items, "scripted", executor=executor, scheduler=scheduler, **kw), executor

    return config, items, run


def _ends(run, items):
    ends = run.terminal()
    return [ends.get(i.video_id) for i in items]


def test_policy_retries_what_may_pass_and_never_what_cannot(policy):
    from bulk_transcribe.errors import DownloadError, InputError

    config, items, run = policy
    result, executor = run({0: [DownloadError("HTTP 503: x")], 1: [InputError("file is empty")],
                            2: [DownloadError("HTTP 500: x"), DownloadError("HTTP 500: y")]})
    assert _ends(result, items) == [[EventKind.DONE], [EventKind.FAILED], [EventKind.FAILED], [EventKind.DONE]]
    tries = [video for _, video, _ in executor.calls]
    assert [tries.count(i.video_id) for i in items] == [2, 1, 2, 1]  # max_attempts=2; bad input asked once
    failed = {e.video_id: e for e in result.events if e.kind == EventKind.FAILED}
    assert failed[items[2].video_id].error == "HTTP 500: y" and failed[items[2].video_id].attempt == 2
    assert [e.kind for e in result.events if e.video_id == items[0].video_id and e.kind != EventKind.DONE] == \
        [EventKind.RETRYING]


def test_policy_a_runaway_transcription_is_retried_with_safer_options(policy):
    from bulk_transcribe.errors import TranscriptionError

    config, items, run = policy
    result, executor = run({3: [TranscriptionError("transcription exceeded its time limit (61 s for 1 s)")]})
    safer = [s for _, video, s in executor.calls if video == items[3].video_id]
    assert safer == [False, True] and _ends(result, items)[3] == [EventKind.DONE]


def test_policy_a_delivery_that_cannot_be_written_fails_once(policy, tmp_path):
    config, items, run = policy
    (config.out_dir).mkdir(parents=True)
    (config.out_dir / "v0.mp3").write_text("a file where the video folder belongs")
    result, executor = run({})
    assert _ends(result, items) == [[EventKind.FAILED], [EventKind.DONE], [EventKind.DONE], [EventKind.DONE]]
    failed = next(e for e in result.events if e.kind == EventKind.FAILED)
    assert failed.error.startswith("cannot write outputs:") and "Error" not in failed.error
    assert [video for _, video, _ in executor.calls].count(items[0].video_id) == 1  # not retried elsewhere


def test_policy_cancel_ends_every_video_once(policy):
    from engine_harness import HANG

    config, items, run = policy
    result, _ = run({0: [HANG], 1: [HANG]}, when=lambda s: s.counts.get("done", 0) + s.counts.get("queued", 0) < 4
                    and any(v.status is VideoStatus.QUEUED for v in s.videos) or True,
                    action=lambda s, driver: driver.cancel_event.set())
    ends = _ends(result, items)
    assert all(end is not None and len(end) == 1 for end in ends), ends
    assert ends[0] == ends[1] == [EventKind.CANCELLED]  # in flight: stopped
    reasons = {e.video_id: e.error for e in result.events if e.kind == EventKind.CANCELLED}
    assert reasons[items[0].video_id] == "cancelled"
    assert all(s.is_terminal for s in result.statuses().values())


def test_policy_a_list_that_resolves_a_line_at_a_time_still_gets_every_planned_worker(policy):
    """Workers start as work arrives: the first video starts one; the next, arriving while that one is busy,
    starts the second (a driver that sized its workers by the first take would run the batch on one)."""
    import threading

    from engine_harness import DripStream

    config, items, run = policy
    release = threading.Event()
    result, executor = run({0: [release]}, stream=DripStream(items),
                           when=lambda s: s.counts.get("done", 0) >= 3, action=lambda s, driver: release.set())
    assert executor.started == ["worker-0", "worker-1"]
    assert {w for w, _, _ in executor.calls} == {"worker-0", "worker-1"}
    assert _ends(result, items) == [[EventKind.DONE]] * 4


def test_policy_one_video_loads_one_model(policy):
    from engine_harness import DripStream

    config, items, run = policy
    result, executor = run({}, stream=DripStream(items[:1]))
    assert executor.started == ["worker-0"] and _ends(result, items[:1]) == [[EventKind.DONE]]


def test_policy_a_dead_worker_is_replaced_and_its_videos_requeued(policy):
    from engine_harness import DIE

    config, items, run = policy
    result, executor = run({3: [DIE]})  # the longest goes first and kills its worker
    assert _ends(result, items) == [[EventKind.DONE]] * 4
    assert len(executor.started) == 3  # two planned, one replacement
    # The longest (what it ran) is retried and says why; what it only held ahead just waits again.
    retried = [e for e in result.events if e.kind == EventKind.RETRYING]
    assert [e.video_id for e in retried] == [items[3].video_id] and "died" in retried[0].error
    assert result.driver.scheduler.tasks[items[3].video_id].losses == 1
    assert all(t.losses == 0 for v, t in result.driver.scheduler.tasks.items() if v != items[3].video_id)


def test_policy_a_video_that_kills_every_worker_fails_alone(policy):
    from engine_harness import DIE

    config, items, run = policy
    result, executor = run({3: [DIE, DIE, DIE, DIE]})
    ends = _ends(result, items)
    assert ends[3] == [EventKind.FAILED] and ends[:3] == [[EventKind.DONE]] * 3
    failed = next(e for e in result.events if e.kind == EventKind.FAILED)
    assert "worker died" in failed.error


def test_policy_no_workers_left_ends_the_run_with_its_reason(policy):
    from engine_harness import DIE

    config, items, run = policy
    with pytest.raises(RuntimeError, match="no workers left"):
        run({n: [DIE] * 3 for n in range(4)}, planned=1)  # one planned: four starts in all, each killed


def test_policy_random_outcomes_end_every_video_exactly_once(policy):
    """Fifty runs of random outcomes (success, transient and bad-input failures, timeouts, deaths): each video
    ends with exactly one terminal event, and the store agrees."""
    import random

    from engine_harness import DIE, OK

    from bulk_transcribe.errors import DownloadError, InputError, TranscriptionError

    config, items, run = policy
    rng = random.Random(7)
    choices = [OK, OK, OK, DIE, DownloadError("HTTP 503: x"), InputError("not a media file"),
               TranscriptionError("transcription exceeded its time limit")]
    for n in range(50):
        out = config.out_dir.with_name(f"out{n}")
        from dataclasses import replace

        script = {k: [rng.choice(choices) for _ in range(3)] for k in range(4)}
        result, _ = run(script, cfg=replace(config, out_dir=out))
        ends = _ends(result, items)
        assert all(end is not None and len(end) == 1 for end in ends), (n, script, ends)
        assert all(s.is_terminal for s in result.statuses().values()), n
