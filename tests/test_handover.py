"""engine/handover.py: a parallel run works in this process at once and hands over to the cluster's workers.

The policy runs on in-memory executors (tests/engine_harness.py) through the real Driver, intake, store and
ledgers, in milliseconds; the last test is a real embedded-Ray run through runs.py with the bundled model.
"""

from __future__ import annotations

import threading

import pytest

from engine_harness import HANG, ListStream, ScriptedExecutor
from bulk_transcribe.config import RunConfig, available_cpus
from bulk_transcribe.engine.driver import Driver
from bulk_transcribe.engine.handover import HandoverExecutor, HandoverRecorder
from bulk_transcribe.engine.intake import StoreIntake
from bulk_transcribe.engine.local import LocalRecorder, worker_name
from bulk_transcribe.engine.scheduler import Scheduler
from bulk_transcribe.models import SourceKind, VideoItem, VideoStatus
from bulk_transcribe.session_manager import SessionStore


class Handover:
    """One run through a HandoverExecutor: `local` answers as scripted, the cluster opens when `gate` is set (or
    raises `fail`), and its executor `cluster` answers OK."""

    def __init__(self, tmp_path, local_script, *, gate_open=True, fail: BaseException | None = None,
                 worth_it=None, local_workers=1):
        self.config = RunConfig(out_dir=tmp_path / "out", workers=2, formats=("txt",), parallel=True)
        self.items = [VideoItem(f"/media/v{n}.mp3", SourceKind.FILE, f"v{n}.mp3", duration_s=10.0 * (n + 1))
                      for n in range(4)]
        self.store = SessionStore(self.config.state_db)
        self.run_id = self.store.begin_run(self.config, "parallel")
        self.local = ScriptedExecutor({self.items[n].video_id: o for n, o in local_script.items()},
                                      planned=local_workers, name=worker_name)
        self.cluster = ScriptedExecutor({}, planned=2)
        self.cluster_ledger = LocalRecorder(self.run_id, "parallel", self.store)  # the progress actor's ledger
        self.gate = threading.Event()
        if gate_open:
            self.gate.set()
        self.fail = fail
        self.recorder = HandoverRecorder(LocalRecorder(self.run_id, "parallel", self.store))
        self.executor = HandoverExecutor(self.local, self._open, self.recorder, lambda: self.store.videos(self.run_id),
                                         worth_it=worth_it)

    def _open(self):
        self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.cluster, self.cluster_ledger

    def run(self, *, action=None):
        intake = StoreIntake(self.config, self.store, self.run_id, ListStream(self.items), self.recorder)
        cancel = threading.Event()
        driver = self.driver = Driver(self.config, intake, self.executor, self.recorder, folders=intake.folders,
                                      cancel_event=cancel, scheduler=Scheduler(max_attempts=2, backoff_s=0.01),
                                      claim=self.store.claim_outputs)
        if action is not None:
            threading.Thread(target=action, args=(cancel,), daemon=True).start()
        driver.run()
        self.recorder.finish()
        return {r.title: r for r in self.store.videos(self.run_id)}

    def ran(self, executor) -> list[str]:
        titles = {i.video_id: i.title for i in self.items}
        return [titles[video_id] for _, video_id, _ in executor.calls]


def test_work_starts_in_process_and_moves_to_the_cluster_once_it_is_ready(tmp_path):
    """The in-process worker takes the shortest video at once; the cluster's workers take the rest as soon as they
    are ready (the in-process worker no new one), each video runs once, and from the switch on the cluster's
    ledger (the progress actor's) holds the run: every row, including the one finished in process after it."""
    release = threading.Event()
    run = Handover(tmp_path, {0: [release]})
    done = run.cluster_ledger.snapshot

    def finish_the_first_when_the_others_are_done(_cancel):
        while sum(1 for v in done().videos if v.status is VideoStatus.DONE) < 3:
            threading.Event().wait(0.01)
        release.set()

    rows = run.run(action=finish_the_first_when_the_others_are_done)
    assert run.ran(run.local) == ["v0.mp3"]
    assert sorted(run.ran(run.cluster)) == ["v1.mp3", "v2.mp3", "v3.mp3"]
    assert all(r.status is VideoStatus.DONE and r.attempts == 1 for r in rows.values())
    assert rows["v0.mp3"].worker == "local"
    assert {r.worker for t, r in rows.items() if t != "v0.mp3"} <= {"worker-0", "worker-1"}
    assert run.recorder.current is run.cluster_ledger
    final = run.cluster_ledger.snapshot()
    assert final.counts["done"] == 4 and final.finished
    assert run.local.closed  # the in-process model is freed once it has left


def test_every_in_process_worker_works_while_the_cluster_starts_and_all_leave_once_it_is_ready(tmp_path):
    """Two in-process workers (the plan's worth) each take a video at once, the shortest; the cluster, once up,
    starts as many workers as ran here and takes the rest; both in-process workers finish what they hold and
    leave the rotation, and every video runs once."""
    release = threading.Event()
    run = Handover(tmp_path, {0: [release], 1: [release]}, gate_open=False, local_workers=2)

    def open_the_cluster_once_both_work(_cancel):
        while len(run.local.calls) < 2:
            threading.Event().wait(0.01)
        run.gate.set()
        while sum(1 for v in run.cluster_ledger.snapshot().videos if v.status is VideoStatus.DONE) < 2:
            threading.Event().wait(0.01)
        release.set()

    rows = run.run(action=open_the_cluster_once_both_work)
    assert {(w, titles) for w, titles in _by_worker(run, run.local).items()} == {("local", ("v0.mp3",)),
                                                                                 ("local-2", ("v1.mp3",))}
    assert sorted(run.ran(run.cluster)) == ["v2.mp3", "v3.mp3"] and run.cluster.started == ["worker-0", "worker-1"]
    assert all(r.status is VideoStatus.DONE and r.attempts == 1 for r in rows.values())
    assert run.local.closed and not set(run.driver.scheduler.workers) & {"local", "local-2"}  # retired, both


def _by_worker(run, executor) -> dict[str, tuple[str, ...]]:
    titles = {i.video_id: i.title for i in run.items}
    out: dict[str, tuple[str, ...]] = {}
    for worker, video_id, _ in executor.calls:
        out[worker] = out.get(worker, ()) + (titles[video_id],)
    return out


def test_a_short_run_ends_before_the_cluster_is_up_and_never_switches(tmp_path):
    run = Handover(tmp_path, {}, gate_open=False)
    rows = run.run()
    assert all(r.status is VideoStatus.DONE and r.worker == "local" for r in rows.values())
    assert run.recorder.current is not run.cluster_ledger
    run.gate.set()  # the cluster comes up after the run: its executor is closed at once, never used
    run.executor._opener.join(5)
    assert run.cluster.closed and run.cluster.calls == []


def test_a_cancel_before_the_cluster_is_up_cancels_every_video_once(tmp_path):
    run = Handover(tmp_path, {0: [HANG]}, gate_open=False)

    def cancel_when_the_first_runs(cancel):
        while not run.local.calls:
            threading.Event().wait(0.01)
        cancel.set()

    rows = run.run(action=cancel_when_the_first_runs)
    assert {r.status for r in rows.values()} == {VideoStatus.CANCELLED}
    run.gate.set()
    run.executor._opener.join(5)
    assert run.cluster.closed and run.cluster.calls == []


def test_a_cluster_that_cannot_start_leaves_the_run_in_process(tmp_path):
    run = Handover(tmp_path, {}, fail=ConnectionError("raylet did not start"))
    rows = run.run()
    assert all(r.status is VideoStatus.DONE and r.worker == "local" for r in rows.values())
    assert run.executor.problem == "raylet did not start"


def test_the_cluster_starts_only_once_the_waiting_work_is_worth_it(tmp_path):
    """Not worth it: the run is done in process and the cluster is never asked for. Worth it later (here: once the
    first video is done): asked then, and it takes over from there."""
    never = Handover(tmp_path / "never", {}, worth_it=lambda: False)
    rows = never.run()
    assert all(r.status is VideoStatus.DONE and r.worker == "local" for r in rows.values())
    assert never.executor.times.cluster_asked_s is None and not never.executor._opener.is_alive()
    assert never.cluster.calls == [] and never.recorder.current is not never.cluster_ledger

    release = threading.Event()
    later = Handover(tmp_path / "later", {3: [release]}, worth_it=lambda: bool(later.local.calls))

    def release_once_the_cluster_is_ready(_cancel):
        while later.executor.times.first_cluster_worker_s is None:
            threading.Event().wait(0.01)
        release.set()

    rows = later.run(action=release_once_the_cluster_is_ready)
    assert all(r.status is VideoStatus.DONE and r.attempts == 1 for r in rows.values())
    assert later.executor.times.cluster_asked_s is not None
    # Before Ray was asked for, the in-process worker worked as the sequential path does (the longest first, and
    # ahead: with four short videos it held them all); the cluster took over the run's ledger and whatever was
    # left: each video once, on one side.
    here, there = later.ran(later.local), later.ran(later.cluster)
    assert here[0] == "v3.mp3" and sorted(here + there) == ["v0.mp3", "v1.mp3", "v2.mp3", "v3.mp3"]
    assert later.recorder.current is later.cluster_ledger and later.executor.times.first_cluster_worker_s is not None


def test_a_small_parallel_batch_by_default_never_starts_ray(run_cli, jfk_flac, tmp_path, monkeypatch):
    """The default threshold (30 min of waiting audio): an 11 s clip in a --parallel run is done in this process,
    the CLI says why Ray was not started, and this process never started it."""
    import sys

    from bulk_transcribe.config import DEFAULT_RAY_MIN_AUDIO_S, RAY_MIN_AUDIO_ENV

    monkeypatch.setenv(RAY_MIN_AUDIO_ENV, str(DEFAULT_RAY_MIN_AUDIO_S))
    was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    code, stdout, stderr = run_cli("run", str(jfk_flac), "--out", str(tmp_path / "out"), "--parallel",
                                   "--cpu-threads", "2", "--formats", "txt")
    assert code == 0, stdout + stderr
    assert "Ray was not started: too little audio waited to pay for its start; 1 video(s)" in stdout
    assert "Ray is up" not in stdout
    if not was_up:  # (an earlier test in this process may have left its Ray up: then the CLI does not own one)
        assert "an embedded local Ray starts once 30 min of audio waits" in stdout
        assert not ("ray" in sys.modules and sys.modules["ray"].is_initialized())


@pytest.mark.skipif(available_cpus() < 2, reason="one core: the plan is one in-process worker")
def test_a_parallel_run_below_the_threshold_transcribes_on_every_in_process_worker_at_once(make_config, jfk_flac,
                                                                                           tmp_path, monkeypatch):
    """Ray not worth starting: the run's two workers (what Ray would get here, one core each) are in this process,
    and they transcribe at the same time (the ~1.5x of two one-thread models over one two-thread one)."""
    import shutil

    from bulk_transcribe.config import DEFAULT_RAY_MIN_AUDIO_S, RAY_MIN_AUDIO_ENV
    from bulk_transcribe.runs import run_batch

    monkeypatch.setenv(RAY_MIN_AUDIO_ENV, str(DEFAULT_RAY_MIN_AUDIO_S))
    clips = [shutil.copy(jfk_flac, tmp_path / f"talk-{n}.flac") for n in range(4)]
    config = make_config(tmp_path / "out", clips, formats=("txt",), workers=2, parallel=True, cpu_threads=0,
                         ray_min_audio_s=DEFAULT_RAY_MIN_AUDIO_S)
    result = run_batch(config)
    assert result.error is None and result.counts["done"] == 4
    assert result.handover is not None and result.handover.cluster_asked_s is None
    videos = SessionStore(config.state_db).videos(result.run_id)
    spans = {}
    for v in videos:
        start, end = spans.get(v.worker, (v.transcribe_started_at, v.finished_at))
        spans[v.worker] = (min(start, v.transcribe_started_at), max(end, v.finished_at))
    assert set(spans) == {"local", "local-2"}
    (a_start, a_end), (b_start, b_end) = spans.values()
    assert a_start < b_end and b_start < a_end, "the two workers transcribed at the same time"


@pytest.mark.usefixtures("ray_local")
def test_a_real_parallel_run_hands_over_from_this_process_to_ray(make_config, speech_clips, jfk_flac, tmp_path):
    """An embedded-Ray run through runs.py: the in-process workers (two here, as Ray would get) start at once,
    Ray's workers join, every video is transcribed once (one start each) and ends done, and the run's actors are
    gone at its end."""
    import shutil

    import ray

    from bulk_transcribe.runs import run_batch

    clips = []
    for n in range(24):  # enough that Ray's workers are ready (their models loaded) before the last is started
        clips.append(shutil.copy(jfk_flac, tmp_path / f"talk-{n}.flac"))
    config = make_config(tmp_path / "out", clips, formats=("txt",), workers=2, parallel=True)
    result = run_batch(config)
    assert result.error is None and result.counts["done"] == 24
    videos = SessionStore(config.state_db).videos(result.run_id)
    workers = {v.worker for v in videos}
    in_process = {"local", "local-2"}
    assert "local" in workers and workers - in_process <= {"worker-0", "worker-1"}
    assert workers - in_process, "Ray's workers took over"
    assert all(v.attempts == 1 for v in videos)
    named = [a for a in ray.util.list_named_actors(all_namespaces=True) if result.run_id in str(a)]
    assert named == []
