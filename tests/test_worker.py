"""Worker sizing (plain function) and the Worker in-process with the real bundled model."""

from __future__ import annotations

import threading

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.errors import Cancelled
from bulk_transcribe.models import EventKind, SourceKind, VideoItem
from bulk_transcribe.engine.worker import Worker
from bulk_transcribe.parallel.plan import plan_workers


def test_cpu_plan_never_oversubscribes():
    plan = plan_workers(RunConfig(workers=2), {"CPU": 2})
    assert (plan.workers, plan.num_cpus, plan.cpu_threads, plan.num_gpus) == (2, 1.0, 1, 0.0)
    plan = plan_workers(RunConfig(workers=2), {"CPU": 8})
    assert (plan.workers, plan.cpu_threads) == (2, 4)
    plan = plan_workers(RunConfig(workers=5, transcribe=TranscribeOptions(cpu_threads=4)), {"CPU": 4})
    assert plan.workers == 4 and plan.cpu_threads == 1 and "capped" in plan.note
    assert plan.workers * plan.cpu_threads <= 4


def test_gpu_plan_uses_gpu_shares():
    plan = plan_workers(RunConfig(workers=4, gpus_per_worker=0.5), {"CPU": 16, "GPU": 2})
    assert plan.use_gpu and plan.workers == 4 and plan.num_gpus == 0.5
    plan = plan_workers(RunConfig(workers=8), {"CPU": 3, "GPU": 3})
    assert plan.workers == 3 and plan.num_gpus == 1.0
    cpu_only = plan_workers(RunConfig(workers=2, transcribe=TranscribeOptions(device="cpu")), {"CPU": 2, "GPU": 2})
    assert not cpu_only.use_gpu
    with pytest.raises(ValueError, match="no GPUs"):
        plan_workers(RunConfig(transcribe=TranscribeOptions(device="cuda")), {"CPU": 4})


@pytest.fixture(scope="module")
def worker_and_events(tmp_path_factory):
    events = []
    lock = threading.Lock()

    def sink(event):
        with lock:
            events.append(event)

    out = tmp_path_factory.mktemp("out")
    config = RunConfig(out_dir=out, transcribe=TranscribeOptions(cpu_threads=1))
    worker = Worker(config, "worker-0", progress=sink, cpu_threads=1)
    return worker, events


def _local(path) -> VideoItem:
    return VideoItem(str(path), SourceKind.FILE, str(path))


def test_worker_transcribes_with_one_loaded_model(worker_and_events, speech_clips, media_server):
    worker, events = worker_and_events
    info = worker.info()
    assert info["device"] == "cpu" and info["cpu_threads"] == 1 and info["name"] == "worker-0"
    model = worker.processor.transcriber
    clip = speech_clips["train"]
    t = worker.process(_local(clip.path))
    assert "train" in t.text.lower() and t.worker == "worker-0"
    url = media_server.url(speech_clips["garden"].path.name)
    t2 = worker.process(VideoItem(url, SourceKind.URL, url))
    assert "garden" in t2.text.lower()
    assert worker.processor.transcriber is model, "the model is loaded once for the worker's life"
    # A local file has nothing to download: it stays queued (with its probed length) until it is transcribed.
    local = [e.kind for e in events if e.video_id == t.video_id]
    assert local[0] == EventKind.QUEUED and EventKind.DOWNLOAD_STARTED not in local
    assert EventKind.TRANSCRIBE_STARTED in local
    fetched = [e.kind for e in events if e.video_id == t2.video_id]
    assert fetched[0] == EventKind.DOWNLOAD_STARTED and EventKind.TRANSCRIBE_STARTED in fetched


def test_prefetch_downloads_while_the_model_is_busy(worker_and_events, jfk_flac, speech_clips):
    worker, events = worker_and_events
    first, second = _local(jfk_flac), _local(speech_clips["weather"].path)
    returned = {}
    started = threading.Event()

    def run(item):
        if item is first:
            returned[item.video_id] = worker.process(item)
            returned["first_done_at"] = len(events)
        else:
            returned[item.video_id] = worker.process(item)

    a = threading.Thread(target=run, args=(first,))
    a.start()
    while not any(e.video_id == first.video_id and e.kind == EventKind.TRANSCRIBE_STARTED for e in events):
        a.join(0.02)
        assert a.is_alive() or returned, "first video ended before transcribing"
    started.set()
    b = threading.Thread(target=run, args=(second,))
    b.start()
    a.join()
    b.join()
    order = [(e.video_id, e.kind) for e in events]
    # A local file's fetch is its probe: it reports its length (QUEUED, duration) once its audio is ready.
    second_ready = order.index((second.video_id, EventKind.QUEUED))
    second_transcribing = order.index((second.video_id, EventKind.TRANSCRIBE_STARTED))
    assert second_ready < returned["first_done_at"], "the second video's audio was ready before the first ended"
    assert second_transcribing >= returned["first_done_at"], "only one transcription at a time per model"
    assert "breeze" in returned[second.video_id].text.lower()


def test_cancel_stops_the_next_video(worker_and_events, speech_clips):
    worker, _ = worker_and_events
    worker.cancel()
    try:
        with pytest.raises(Cancelled):
            worker.process(_local(speech_clips["library"].path))
    finally:
        worker.resume()
