"""A batch from inputs to manifest: resolve, register (resume), run in the chosen mode, summarise.

The CLI calls `run_batch` and blocks; the dashboard calls `start_batch` and polls the handle. Both modes report
through the same events and the same Snapshot, and both write the SQLite store as they go, so a crash loses only
the video in flight and a rerun on the same OUT resumes.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import threading
import traceback
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import layout
from .config import RunConfig, available_cpus
from .inputs import InputStream
from .media.urls import kind_of
from .models import EventKind, ProgressEvent, RunMode, RunStatus, Snapshot, VideoItem, VideoStatus
from .redact import redact_text
from .folder_lock import OwnerLock
from .session_manager import SessionStore, VideoRecord
from .outputs.writers import write_manifest
from .engine.driver import Driver, Executor, Recorder
from .engine.intake import IntakeTally, StoreIntake
from .inputs.archive import DownloadArchive
from .engine.handover import HandoverExecutor, HandoverRecorder, HandoverTimes
from .engine.local import LocalExecutor, LocalRecorder


@dataclass
class PreparedBatch:
    """A run registered in the store, owning OUT, its inputs ready to resolve (they stream in once it starts)."""

    config: RunConfig
    store: SessionStore
    run_id: str
    stream: InputStream
    lock: OwnerLock | None = None
    """This process's ownership of OUT, held until the batch ends (released by BatchHandle or `release`)."""
    archive: DownloadArchive | None = None
    """The download archive: videos it lists become skipped rows; each video delivered is appended."""
    intake: StoreIntake | None = None
    """Set when the run starts: what was registered, done before, archived, backfilled (see IntakeTally)."""

    @property
    def mode(self) -> RunMode:
        return self.config.mode

    @property
    def records(self) -> list[VideoRecord]:
        """The videos registered so far (all of them once the run has ended)."""
        return self.intake.records if self.intake is not None else []

    @property
    def tally(self) -> IntakeTally:
        return self.intake.tally if self.intake is not None else IntakeTally()

    @property
    def duplicates(self) -> list[str]:
        return list(self.stream.duplicates)

    def release(self) -> None:
        self.stream.close()
        if self.lock is not None:
            self.lock.release()


@dataclass
class BatchResult:
    run_id: str
    counts: dict[str, int]
    manifest: Path
    error: str | None = None
    tally: IntakeTally = field(default_factory=IntakeTally)
    warnings: list[str] = field(default_factory=list)
    """What went wrong beside the videos, the run going on regardless (e.g. the archive could not be appended)."""
    handover: HandoverTimes | None = None
    """How an embedded parallel run's start went (engine/handover.py); None for the other runs."""

    @property
    def exit_code(self) -> int:
        """0 when every video is done, 1 when any failed or was cancelled, or the batch itself failed."""
        bad = sum(self.counts.get(s.value, 0) for s in (VideoStatus.FAILED, VideoStatus.CANCELLED))
        return 1 if bad or self.error else 0


def start_cluster(config: RunConfig, *, log_file: Path | None = None):
    """For a parallel run, start (or join) Ray in the background at once, before the run registers, and return a
    Future of its ClusterInfo; None for a sequential run (which never imports Ray). An explicit address is
    checked first (check_cluster: ConnectionError in one line, in seconds). The run's own opening of the cluster
    then waits for this start instead of beginning another; meanwhile an embedded run works in this process.

    The connection belongs to the calling process for its whole life (parallel.cluster runs ray.init on a thread
    that never ends): a run's own thread never starts or stops Ray.
    """
    config = config.with_env_overrides()  # the operator's override decides the mode, here as in the engine
    if not config.parallel:
        return None
    check_cluster(config)
    from .parallel import cluster

    cluster.log_to(log_file)  # for a start the run makes later
    if config.ray_address is None and config.ray_min_audio_s > 0:
        return None  # an embedded Ray starts with the run, once enough audio waits for it (engine/handover.py)
    return cluster.connect(config.ray_address, log_file=log_file, wait=False)


def check_cluster(config: RunConfig) -> None:
    """For a parallel run, a quick check (a TCP connect, no Ray import) that an explicit Ray address answers:
    raises ConnectionError in one line. The run then joins Ray itself (on the process's Ray-owner thread) while its
    inputs already resolve: the dashboard uses this, so a form never waits for an embedded Ray to start."""
    config = config.with_env_overrides()
    if not config.parallel:
        return
    from .parallel.preflight import ray_address_problem

    problem = ray_address_problem(config.ray_address)
    if problem:
        raise ConnectionError(problem)


def prepare_batch(config: RunConfig) -> PreparedBatch:
    """Take ownership of OUT and open the run; its inputs resolve once it starts, each video joining the table,
    the store and the queue as soon as it is known. Done videos from earlier runs stay done (resume).

    Raises FolderBusy (naming the owner) when another live process, or another run of this one, owns OUT, and
    ValueError (one line) for a download archive that cannot be used; either way nothing is registered.
    """
    config = config.with_env_overrides()
    archive = DownloadArchive(config.download_archive) if config.download_archive else None
    config.out_dir.mkdir(parents=True, exist_ok=True)
    lock = OwnerLock(config.out_dir).acquire()
    try:
        # What OUT/.work holds at the start was cut off by a crash or a kill (we own OUT now, so nobody else is
        # downloading there): never resumed (yt-dlp restarts each download), never an input, so it goes.
        shutil.rmtree(layout.work_dir(config.out_dir), ignore_errors=True)
        store = SessionStore(config.state_db)
        store.close_stale_runs()  # runs whose process was killed: we own OUT now, so nobody runs them
        run_id = store.begin_run(config, config.mode.value)
        lock.record(run_id)
        stream = InputStream(config.inputs, options=config.download, out_dir=config.out_dir,
                             known=store.done_urls())
    except BaseException:
        lock.release()
        raise
    return PreparedBatch(config, store, run_id, stream, lock, archive)


def refused_item(line: str, reason: str) -> VideoItem:
    """A failed row for an input line a front end refused (outside the media folder, not a URL): data, like any
    other failure, so it shows in the table and the manifest (credentials in it redacted, as everywhere)."""
    line, reason = redact_text(line), redact_text(reason)
    return VideoItem.failed(line, kind_of(line), line, reason, title=line)


class BatchHandle:
    """A batch running outside the caller's thread. `snapshot()` is cheap: poll it as often as a screen likes."""

    def __init__(self, prepared: PreparedBatch) -> None:
        self.prepared = prepared
        self.run_id = prepared.run_id
        self.mode = prepared.mode
        self.error: str | None = None
        self.result: BatchResult | None = None
        self._cancel = threading.Event()
        self._local = LocalRecorder(prepared.run_id, self.mode.value, prepared.store)
        self._recorder: Recorder = self._local
        """Where this run's events go: the in-process tracker, or (parallel, once Ray is up) the progress actor."""
        self.phase: str | None = None
        """What the batch is busy with before videos flow ("starting Ray", "loading the model on 2 workers")."""
        self.phase_since: float | None = None
        # Waiters watch this event, not Thread.join: on Python 3.11 a join interrupted by KeyboardInterrupt can
        # mark a still-running thread as stopped, and the caller would go on without a result.
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"batch-{self.run_id}", daemon=True)

    def start(self) -> "BatchHandle":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = _execute(self.prepared, self)
        except BaseException as exc:  # noqa: BLE001 — a dead thread must never leave a caller waiting forever
            traceback.print_exc()
            manifest = layout.manifest(self.prepared.config.out_dir)
            self.result = BatchResult(self.run_id, {}, manifest, f"the batch crashed: {_one_line(exc)}")
        finally:
            self._on_phase(None)
            self.prepared.release()
            if self.result is not None:
                self.error = self.result.error
            self._finished.set()

    def _on_phase(self, phase: str | None) -> None:
        self.phase, self.phase_since = phase, (time.time() if phase else None)

    def snapshot(self) -> Snapshot:
        if self.done and self._recorder is not self._local:
            return self.prepared.store.snapshot(self.run_id)  # the progress actor is gone; the store has it all
        try:
            return self._recorder.snapshot()
        except (Exception, SystemExit):  # noqa: BLE001 — Ray going away under a screen: the store still knows it
            return self.prepared.store.snapshot(self.run_id)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)


def _execute(prepared: PreparedBatch, handle: BatchHandle) -> BatchResult:
    """Resolve, register and run the batch through the one driver loop, on threads here or on Ray actors."""
    config, store, run_id = prepared.config, prepared.store, prepared.run_id
    executor: Executor
    error = None
    recorder: Recorder = handle._local
    prepared.stream.start()  # resolution overlaps everything from here: Ray's start, the model's load
    handover: HandoverExecutor | None = None
    try:
        if config.parallel and config.ray_address is None:
            # An embedded Ray takes 15-25 s to boot and load its workers' models: in-process workers start at
            # once and hand over to them (engine/handover.py).
            recorder = handle._recorder = HandoverRecorder(handle._local)
            # The cluster starts once enough audio waits to pay for its start (config.ray_min_audio_s); until then
            # (and meanwhile) the run's workers are in this process, as many as the cluster would get here.
            at_once = config.ray_min_audio_s <= 0
            local_config, local_workers = _in_process_plan(config)
            executor = handover = HandoverExecutor(
                LocalExecutor(local_config, recorder, workers=local_workers),
                lambda: _open_cluster(config, run_id), recorder,
                lambda: store.videos(run_id),
                worth_it=None if at_once else lambda: _waiting_audio_s(recorder.snapshot()) >= config.ray_min_audio_s)
        elif config.parallel:
            from .parallel.executor import open_run  # sequential never imports ray

            executor, recorder = open_run(config, run_id, handle._on_phase)
            handle._recorder = recorder
        else:
            executor = LocalExecutor(config, handle._local)
        intake = prepared.intake = StoreIntake(config, store, run_id, prepared.stream, recorder,
                                               archive=prepared.archive)
        intake.admit([refused_item(line, why) for line, why in config.rejected])
        Driver(config, intake, executor, recorder, folders=intake.folders, cancel_event=handle._cancel,
               on_phase=handle._on_phase, archive=prepared.archive, claim=store.claim_outputs,
               on_delivered=lambda item, transcript: store.index_transcript(run_id, transcript)).run()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 — a batch-level failure is reported, not raised
        # Ray answers a call made after its shutdown (or the loss of its cluster) with SystemExit; in this run
        # thread that is a failed batch to report, not a reason to end the process.
        on_ray = config.parallel and (handover is None or handover.times.cluster_open_s is not None)
        error = RAY_GONE if isinstance(exc, SystemExit) or (on_ray and _ray_gone()) else _one_line(exc)
        _fail_unfinished(store, run_id, recorder, f"batch stopped: {error}")
    try:
        recorder.finish()  # every event applied (and in SQLite) from here
        if recorder is not handle._local:
            recorder.close()
    except (Exception, SystemExit):  # noqa: BLE001 — Ray gone: the store has what was written through
        pass
    _remove_if_empty(layout.work_dir(config.out_dir))
    status = RunStatus.FAILED if error else (RunStatus.CANCELLED if handle.cancelled else RunStatus.FINISHED)
    manifest = layout.manifest(config.out_dir)
    snapshot = store.snapshot(run_id)
    try:
        store.finish_run(run_id, status.value)
        snapshot = store.snapshot(run_id)
        # Every video this folder holds, not only this run's: a second batch into the same OUT adds to it.
        manifest = write_manifest(config.out_dir, store.manifest_entries(None), duplicates=prepared.duplicates)
    except (OSError, sqlite3.Error) as exc:
        # Disk full (or OUT gone read-only) must end the batch with its cause, never leave the caller waiting on a
        # thread that died; every write is atomic, so the outputs and manifest already there stay intact.
        error = error or f"cannot record the end of the run in {config.out_dir}: {_one_line(exc)}"
    warnings = [prepared.archive.problem] if prepared.archive is not None and prepared.archive.problem else []
    if handover is not None and handover.problem:
        warnings.append(f"the embedded Ray could not start ({handover.problem}): the run went on in this process")
    return BatchResult(run_id, snapshot.counts, manifest, error, prepared.tally, warnings,
                       handover.times if handover is not None else None)


def _waiting_audio_s(snapshot) -> float:
    """Audio of the run not transcribed yet, as its ledger knows it now (unknown lengths at the mean known one)."""
    return max(0.0, snapshot.audio_total_s - snapshot.audio_done_s)


def _in_process_plan(config: RunConfig) -> tuple[RunConfig, int]:
    """The config and count of a parallel run's in-process workers: what the embedded Ray's plan would give on this
    machine (parallel/plan.py), each worker its share of the cores. On this machine two one-thread models do ~1.5x
    the work of one two-thread model (benchmarks/README.md, Start-up); an explicit --cpu-threads stands."""
    from .media.devices import cuda_devices
    from .parallel.plan import plan_workers  # no Ray in it

    gpus = cuda_devices() if config.transcribe.device.strip().lower() in ("auto", "cuda") else 0
    try:
        plan = plan_workers(config, {"CPU": float(available_cpus()), "GPU": float(gpus)})
    except ValueError:  # e.g. cuda asked for with no GPU: the worker's own load says so, in its words
        return config, 1
    return replace(config, transcribe=replace(config.transcribe, cpu_threads=plan.cpu_threads)), plan.workers


def _open_cluster(config: RunConfig, run_id: str):
    """The run's actors on an embedded Ray (started now unless this process has one), for a hand-over."""
    from .parallel.executor import open_run  # sequential never imports ray

    return open_run(config, run_id, lambda phase: None)  # no phase: videos flow in this process meanwhile


def _fail_unfinished(store: SessionStore, run_id: str, recorder: Recorder, reason: str) -> None:
    """Nothing in flight survives a batch failure: mark what is left so the store never shows ghosts. Through the
    run's ledger while it lives (screens and store agree); what it could not record (its actor went with Ray) goes
    to the store alone."""
    def unfinished() -> list[str]:
        return [r.video_id for r in store.videos(run_id) if not r.status.is_terminal]

    try:
        recorder.emit(*[ProgressEvent(v, EventKind.FAILED, error=reason, retryable=True) for v in unfinished()])
    except (Exception, SystemExit):  # noqa: BLE001 — Ray shut down with the run's ledger in it
        pass
    try:
        for video_id in unfinished():
            store.apply_event(ProgressEvent(video_id, EventKind.FAILED, error=reason, retryable=True))
    except (OSError, sqlite3.Error):
        pass  # the store cannot be written (disk full): a rerun requeues whatever is not done


def _remove_if_empty(folder: Path) -> None:
    """Scratch space leaves no empty folder behind in the user's output (each run made an empty .work/)."""
    try:
        folder.rmdir()
    except OSError:
        pass  # absent, or still holding kept or partial files


BATCH_ERROR_CHARS = 300
"""Longest batch-level error kept: Ray's errors run to pages, and this line lands on every unfinished video."""


RAY_GONE = "Ray shut down under the run (the cluster was stopped or lost)"

def _ray_gone() -> bool:
    """Whether Ray, which this run was using, has shut down: then whatever a call into it raised ("Ray has not
    been started yet", or an AttributeError from inside Ray on its torn-down worker) means just that."""
    ray = sys.modules.get("ray")  # a sequential run never imports it
    return ray is not None and not getattr(ray, "is_initialized", lambda: True)()


_OWN_ERRORS = (RuntimeError, ConnectionError, OSError, ValueError)
"""Errors whose message says it all (the engine's own, Ray unreachable, a disk): shown without a class name."""


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of the message (with the type for anything unexpected), capped at
    BATCH_ERROR_CHARS."""
    if isinstance(exc, OSError) and exc.strerror:  # "Is a directory: '/x/.manifest.json.1a2b.tmp' -> ..." reads badly
        where = exc.filename2 or exc.filename
        text = f"{where}: {exc.strerror.lower()}" if where else exc.strerror
        return text if len(text) <= BATCH_ERROR_CHARS else text[: BATCH_ERROR_CHARS - 1] + "…"
    first = " ".join(next((line.strip() for line in str(exc).splitlines() if line.strip()), "").split())
    if first and type(exc) in _OWN_ERRORS:
        text = first
    else:
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= BATCH_ERROR_CHARS else text[: BATCH_ERROR_CHARS - 1] + "…"


def start_batch(config: RunConfig, prepared: PreparedBatch | None = None) -> BatchHandle:
    prepared = prepared or prepare_batch(config)
    try:
        return BatchHandle(prepared).start()
    except BaseException:
        prepared.release()
        raise


def run_batch(
    config: RunConfig,
    *,
    prepared: PreparedBatch | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    poll_s: float = 0.5,
    cancel_event: threading.Event | None = None,
) -> BatchResult:
    """Run a whole batch and block until it ends, calling `on_snapshot` about every `poll_s` seconds."""
    handle = start_batch(config, prepared)
    while True:
        try:
            if handle.wait(poll_s):
                break
            if cancel_event is not None and cancel_event.is_set():
                handle.cancel()
            if on_snapshot:
                on_snapshot(handle.snapshot())
        except KeyboardInterrupt:  # callers without their own signal handling: Ctrl-C is a graceful stop
            handle.cancel()
    if on_snapshot:
        on_snapshot(handle.snapshot())
    assert handle.result is not None  # set before the finished event, whatever happened in the thread
    return handle.result


def attach_snapshot(out_dir: Path, run_id: str, ray_address: str | None = None) -> Snapshot | None:
    """Read a run this process did not start: from its live progress actor when it is parallel and still running,
    otherwise from the SQLite store in OUT (works after a crash or a server restart)."""
    store_path = layout.state_db(out_dir)
    if not store_path.exists():
        return None
    store = SessionStore(store_path, read_only=True)  # a reader: never writes, works on a read-only disk
    run = store.run(run_id)
    if run is None:
        return None
    # Only look for live actors where they can be: a cluster named by the caller, or the Ray this process already
    # joined. Starting a Ray just to search it would cost seconds per poll and could never find the run.
    if run.mode == "parallel" and run.status == "running" and (ray_address or _ray_connected()):
        try:
            from .parallel.cluster import attach

            live = attach(run_id, ray_address)
            if live is not None:
                return live.snapshot()
        except Exception:  # noqa: BLE001 — the cluster may be gone; the store still knows the run
            pass
    return store.snapshot(run_id)


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")  # never import ray here: sequential mode must not pay for it
    return bool(ray is not None and ray.is_initialized())
