"""The Ray executor end to end on a real local Ray (one per module) with the real bundled model.

Covers what only Ray workers do: the same outputs as the in-process executor; a worker SIGKILLed mid-video (the run
finishes, each video done exactly once); cancel mid-run frees every actor of the run. What both executors share
is in test_driver.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

import media
from bulk_transcribe.runs import run_batch
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.models import SourceKind, VideoItem, VideoStatus
from bulk_transcribe.parallel import cluster
from bulk_transcribe.session_manager import SessionStore
from engine_harness import drive


@pytest.fixture(scope="module")
def long_clip(jfk_flac, tmp_path_factory) -> Path:
    """About 44 s of real speech: long enough that a worker is surely mid-transcription when we kill it."""
    samples, rate = media.read_pcm(jfk_flac)
    return media.write_wav(np.tile(samples, 4), tmp_path_factory.mktemp("long") / "jfk_x4.wav", rate)


def _texts(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): p.read_text().strip() for p in sorted(out.glob("*/*.txt"))}


def test_parallel_outputs_match_sequential(make_config, ray_local, speech_clips, bad_media, media_server, tmp_path):
    inputs = [c.path for c in speech_clips.values()] + [bad_media["text_as_mp4"],
                                                        media_server.url(speech_clips["train"].path.name)]
    seq = run_batch(make_config(tmp_path / "seq", inputs, formats=("txt", "json"), workers=2, parallel=False))
    from bulk_transcribe.parallel import cluster

    # The cluster's own address: Ray's workers from the start, no in-process hand-over (test_handover.py's).
    par = run_batch(make_config(tmp_path / "par", inputs, formats=("txt", "json"), workers=2, parallel=True,
                                ray_address=cluster.gcs_address()))
    assert par.error is None, par.error
    assert seq.counts == par.counts and par.counts["done"] == 5 and par.counts["failed"] == 1
    assert _texts(tmp_path / "seq") == _texts(tmp_path / "par")
    seq_files = {p.relative_to(tmp_path / "seq").as_posix() for p in (tmp_path / "seq").glob("*/*")}
    par_files = {p.relative_to(tmp_path / "par").as_posix() for p in (tmp_path / "par").glob("*/*")}
    assert seq_files == par_files
    videos = SessionStore(tmp_path / "par" / STATE_DB_NAME).videos(par.run_id)
    workers = {v.worker for v in videos if v.status == VideoStatus.DONE}
    assert workers and workers <= {"worker-0", "worker-1"}, "each video records the worker that ran it"
    # How far to trust each transcript crosses Ray whole: the same flags and signals as in-process.
    seq_quality = {v.title: v.quality for v in SessionStore(tmp_path / "seq" / STATE_DB_NAME).videos(seq.run_id)}
    assert {v.title: v.quality for v in videos} == seq_quality
    assert all(v.quality is not None and v.quality.signals is not None for v in videos if v.status == VideoStatus.DONE)


def _items(paths) -> list[VideoItem]:
    return [VideoItem(str(p), SourceKind.FILE, str(p)) for p in paths]


@pytest.mark.slow
def test_sigkill_a_worker_mid_video_each_video_done_once(make_config, ray_local, long_clip, speech_clips, tmp_path):
    ray = ray_local
    config = make_config(tmp_path, [], formats=("txt", "json"), workers=2, parallel=True, max_attempts=1)
    items = _items([long_clip, speech_clips["weather"].path, speech_clips["library"].path])
    long_id = items[0].video_id
    killed = {}

    def kill(snapshot, driver):
        row = next(v for v in snapshot.videos if v.video_id == long_id)
        run_id = snapshot.run_id
        actor = ray.get_actor(cluster.actor_name(run_id, row.worker), namespace=cluster.NAMESPACE)
        killed["pid"] = ray.get(actor.info.remote())["pid"]
        killed["worker"] = row.worker
        os.kill(killed["pid"], signal.SIGKILL)

    run = drive(config, items, "ray", when=lambda s: any(v.video_id == long_id and v.status == VideoStatus.TRANSCRIBING
                                                         for v in s.videos), action=kill)
    assert run.fired and run.driver.deaths == [killed["worker"]]
    # max_attempts=1 and still done: a worker's death does not use up the video's attempt.
    assignments = run.driver.scheduler.assignments()
    assert assignments[long_id][0] == killed["worker"] and len(assignments[long_id]) == 2
    videos = run.store.videos(run.run_id)
    assert [v.status for v in videos] == [VideoStatus.DONE] * 3
    assert sorted(p.parent.name for p in tmp_path.glob("*/*.txt")) == sorted(v.folder for v in videos)
    long_row = next(v for v in videos if v.video_id == long_id)
    assert "country" in (tmp_path / long_row.folder / long_row.outputs["txt"].split("/")[-1]).read_text().lower()


def test_cancel_mid_run_frees_the_run_actors(make_config, ray_local, long_clip, speech_clips, tmp_path):
    config = make_config(tmp_path, [], formats=("txt", "json"), workers=2, parallel=True)
    items = _items([long_clip] + [c.path for c in speech_clips.values()])
    run = drive(config, items, "ray", when=lambda s: any(v.status == VideoStatus.TRANSCRIBING for v in s.videos),
                action=lambda s, driver: driver.cancel_event.set())
    statuses = run.statuses()
    assert all(s.is_terminal for s in statuses.values()), statuses
    # Cancel reached the workers: the long video was in flight and did not run to the end.
    assert statuses[items[0].video_id] == VideoStatus.CANCELLED
    import ray

    assert not [a for a in ray.util.list_named_actors(all_namespaces=True)
                if run.run_id in (a["name"] if isinstance(a, dict) else a)], "run actors are freed"
