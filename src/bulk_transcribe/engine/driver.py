"""The one driver loop, whichever executor runs the videos.

    intake (streamed, registered) -> scheduler (longest known first) -> executor (threads here, or Ray actors)
    -> outcome: deliver (write outputs here) and record, or retry (back-off, safer options), or give up

Every engine rule lives here once: what is retried and how, what a cancel does, when a dead worker is replaced,
who writes the outputs and records the terminal event. Executors only run videos on workers and report what came
back (`Finished`, `WorkerReady`, `WorkerLost`); recorders only carry events to the tracker and the store.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..config import RunConfig
from ..errors import Cancelled, VideoError
from ..inputs.archive import DownloadArchive
from ..outputs.writers import Claim
from ..models import EventKind, ProgressEvent, Snapshot, Transcript, VideoItem, VideoStatus
from .pipeline import deliver, failure_reason, needs_safer_retry, retry_may_help
from .scheduler import Assignment, Scheduler

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 1.0
"""Pause before a failed video's second attempt; doubles per attempt (the scheduler holds it back meanwhile)."""

POLL_S = 0.5
"""Longest the loop sleeps between looks at cancel requests, new inputs and snapshots."""

CHUNK_S = 30.0
"""Whisper's window: a bundle holds at most batch_size of them in audio."""

REPLACEMENTS_PER_WORKER = 3
"""How many times, per planned worker, a dead worker is replaced before the run stops replacing them."""


# ---- what executors report ----------------------------------------------------------------------------------

@dataclass
class Finished:
    """A worker answered for one video or a bundle: per assignment, its Transcript or the exception that ended it."""

    worker: str
    assignments: list[Assignment]
    results: list[Transcript | BaseException]


@dataclass
class WorkerReady:
    worker: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkerLost:
    """The worker is gone (killed, out of memory, node removed): nothing it held will ever answer."""

    worker: str
    why: str


@dataclass
class WorkerRetired:
    """The worker left on purpose, holding nothing (an in-process worker once a cluster's workers took over)."""

    worker: str


Report = Finished | WorkerReady | WorkerLost | WorkerRetired


class Executor(Protocol):
    """Runs assignments on workers that each hold one loaded model. Implementations: engine/local.py (threads in
    this process, no Ray) and parallel/executor.py (Ray actors)."""

    planned: int
    """How many workers this executor would run at once (the plan), before any start."""

    def start_worker(self) -> str:
        """Start one worker (loading its model may take a while: `WorkerReady` says when); returns its name."""

    def ready_workers(self) -> list[str]:
        """Workers that have loaded their model and are alive."""

    def takes_ahead(self, worker: str) -> bool:
        """Whether `worker` may hold videos fetched ahead of the one it runs (not one about to hand over)."""

    def submit(self, worker: str, assignments: Sequence[Assignment], safer: bool) -> None:
        """Run one video (or a bundle of short ones) on `worker`; the answer comes back through `wait`."""

    def wait(self, timeout: float) -> list[Report]:
        """What happened since the last call, waiting up to `timeout` for something."""

    def busy(self) -> bool:
        """True while any submitted work or any worker start has not reported back."""

    def working(self) -> bool:
        """True while any submitted work has not reported back (worker starts aside)."""

    def cancel(self) -> None:
        """Tell every worker to stop what it runs (each answer then comes back as Cancelled)."""

    def close(self) -> None:
        """Free the workers (scratch folders, processes)."""


class Recorder(Protocol):
    """Carries events to the run's tracker and store: in-process (engine/local.py) or the progress actor."""

    def add_videos(self, records: Sequence[Any]) -> None: ...

    def emit(self, *events: ProgressEvent) -> None: ...

    def set_inputs(self, resolved: int, total: int) -> None: ...

    def cancel_requested(self) -> bool:
        """Someone else (the dashboard of another process, a second CLI) asked this run to stop."""

    def snapshot(self) -> Snapshot: ...

    def finish(self) -> None:
        """A barrier: every event sent so far is applied (and in SQLite) when this returns."""


class Intake(Protocol):
    """Videos as they become known: resolved, registered in the store, shown in the table (see engine/intake.py)."""

    def take(self, timeout: float = 0.0) -> list[VideoItem]:
        """Videos to schedule that arrived since the last call (already registered and recorded)."""

    def cancel(self) -> list[tuple[str, str]]:
        """Stop taking inputs; returns (video_id, reason) of videos registered but never run."""

    @property
    def finished(self) -> bool: ...

    def close(self) -> None: ...


# ---- the loop -----------------------------------------------------------------------------------------------

class Driver:
    """One run: take videos from the intake, keep every worker busy, turn every answer into one outcome.

    Every video that enters ends with exactly one terminal event (done, failed or cancelled) from here."""

    def __init__(self, config: RunConfig, intake: Intake, executor: Executor, recorder: Recorder, *,
                 folders: dict[str, str], cancel_event: threading.Event | None = None,
                 on_phase: Callable[[str | None], None] | None = None,
                 scheduler: Scheduler | None = None, archive: DownloadArchive | None = None,
                 claim: Claim | None = None,
                 on_delivered: Callable[[VideoItem, Transcript], None] | None = None) -> None:
        self.config = config
        self.intake = intake
        self.executor = executor
        self.recorder = recorder
        self.folders = folders
        """video_id -> its output folder name, filled by the intake as videos are registered."""
        self.cancel_event = cancel_event or threading.Event()
        self.on_phase = on_phase or (lambda phase: None)
        self.scheduler = scheduler or new_scheduler(config)
        self.archive = archive
        """yt-dlp's download archive, when the run keeps one: each video is appended as it is delivered."""
        self.claim = claim
        """Keeps each transcript file one video's (the store's claim_outputs), whatever the output template."""
        self.on_delivered = on_delivered
        """Called with each transcript once its outputs are written, before it is recorded done (runs.py indexes it
        for search there, so a done video is always searchable)."""
        self.safer: set[str] = set()
        self.cancelling = False
        self.started = 0
        self.deaths: list[str] = []

    # ---- outcomes ------------------------------------------------------------------------------------------
    def _on_finished(self, report: Finished) -> None:
        for assignment, result in zip(report.assignments, report.results):
            if isinstance(result, BaseException):
                self._on_failure(report.worker, assignment, result)
            else:
                self._on_transcript(report.worker, assignment, result)

    def _on_transcript(self, worker: str, assignment: Assignment, transcript: Transcript) -> None:
        video_id = assignment.item.video_id
        if not self.scheduler.holds(video_id, worker):
            return  # a late answer from a worker declared dead: the video was re-queued and is another's now
        try:
            event = deliver(self.config, self.folders[video_id], assignment.item, transcript, assignment.attempt,
                            worker, claim=self.claim)
        except VideoError as exc:  # the outputs cannot be written (disk full): retrying elsewhere will not help
            self._on_failure(worker, assignment, exc)
            return
        if self.on_delivered is not None:
            try:
                self.on_delivered(assignment.item, transcript)
            except Exception:  # noqa: BLE001 — the outputs are written: the video is done, its index rebuildable
                log.warning("%s: not indexed for search (`bulk-transcribe index OUT` rebuilds the index)", video_id,
                            exc_info=True)
        self.scheduler.complete(video_id, worker)
        self.recorder.emit(event)
        if self.archive is not None:
            self.archive.record(assignment.item.kind, assignment.item.meta)

    def _on_failure(self, worker: str, assignment: Assignment, exc: BaseException) -> None:
        video_id, attempt = assignment.item.video_id, assignment.attempt
        if self.cancelling or isinstance(exc, Cancelled):
            if self.scheduler.mark_cancelled(video_id, worker):
                self.recorder.emit(ProgressEvent(video_id, EventKind.CANCELLED, worker=worker, error="cancelled",
                                                 attempt=attempt))
            return
        reason = failure_reason(exc)
        decision = self.scheduler.fail(video_id, worker, reason, retryable=retry_may_help(exc))
        if decision is None:
            return  # a late answer for a video already re-queued elsewhere
        if decision.retry:
            if needs_safer_retry(exc):
                self.safer.add(video_id)
            kind = EventKind.RETRYING
        else:
            kind = EventKind.FAILED
        # Whether a later retry may help, whatever this run's attempts: bad input never, a timeout or 5xx may.
        retryable = exc.retryable if isinstance(exc, VideoError) else False
        self.recorder.emit(ProgressEvent(video_id, kind, worker=worker, error=reason, attempt=attempt,
                                         retryable=retryable))

    def _on_lost(self, report: WorkerLost) -> None:
        """A dead worker's videos go back to the queue (a death is rarely the video's fault), and a fresh worker
        takes its place while the replacement budget lasts."""
        self.deaths.append(report.worker)
        log.warning("%s died (%s); re-queuing its videos", report.worker, report.why)
        before = len(self.scheduler.lost_failures())
        running = self._active_on(report.worker) or self.scheduler.first_unit(report.worker)
        requeued = self.scheduler.worker_lost(report.worker, running=running)
        # What it was working on is retried and says why; what it only held ahead goes back to waiting, untouched.
        events = [ProgressEvent(v, EventKind.RETRYING, worker=report.worker,
                                error=f"{report.worker} died ({report.why}); re-queued") if v in running
                  else ProgressEvent(v, EventKind.QUEUED) for v in requeued]
        for video_id in self.scheduler.lost_failures()[before:]:
            reason = self.scheduler.tasks[video_id].error or "worker died"
            events.append(ProgressEvent(video_id, EventKind.FAILED, worker=report.worker, error=reason,
                                        retryable=False))  # it would take another worker down with it
        if events:
            self.recorder.emit(*events)
        budget = self.executor.planned * (1 + REPLACEMENTS_PER_WORKER)
        if not self.cancelling and self.started < budget:
            self._start_worker()

    def _active_on(self, worker: str) -> list[str] | None:
        """The suspects of `worker`'s death, as the run's tracker last saw it: what it was transcribing, else what
        it was downloading or probing (a file that crashes the decoder dies there). None when the tracker cannot
        tell or saw nothing active: the scheduler's guess (its first unit) stands."""
        try:
            snapshot = self.recorder.snapshot()
        except Exception:  # noqa: BLE001 — the progress actor unreachable
            return None
        mine = [v for v in snapshot.videos if v.worker == worker and v.status.is_active]
        transcribing = [v.video_id for v in mine if v.status is VideoStatus.TRANSCRIBING]
        return transcribing or [v.video_id for v in mine] or None

    # ---- workers and dispatch ------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        name = self.executor.start_worker()
        self.started += 1
        # Known to the scheduler before it can ask: while a planned worker holds nothing, nobody gets a prefetch,
        # so the first workers to load their model cannot take the longest videos two at a time.
        self.scheduler.register(name)

    def _start_workers_for_queue(self) -> None:
        """Workers start when there is work for them, up to the plan: a rerun with nothing left never loads a
        model, one video never loads two, and a list that resolves a line at a time still gets every planned
        worker (one more each time the queue outgrows the workers holding nothing, loading ones included)."""
        if self.started >= self.executor.planned or not self.scheduler.queue_length:
            return  # the usual case, every loop: no count of idle workers needed
        count = min(self.executor.planned - self.started, self.scheduler.queue_length - self.scheduler.idle_workers)
        if count <= 0:
            return
        if not self.started:
            self.on_phase(f"loading the model on {count} worker{'' if count == 1 else 's'}")
        for _ in range(count):
            self._start_worker()

    def _fill(self) -> None:
        """Hand work to every ready worker the scheduler wants to give some (it decides how far ahead)."""
        if self.cancelling:
            return
        ready = self.executor.ready_workers()
        if not ready:
            return
        for worker in ready:  # a worker that will hand over (engine/handover.py) takes the shortest, none ahead
            if not self.executor.takes_ahead(worker):
                self.scheduler.handing_over(worker)  # idempotent: the scheduler keeps the set
        for group in _bundles(self.scheduler.dispatch(ready)):
            safer = any(a.item.video_id in self.safer for a in group)
            self.executor.submit(group[0].worker, group, safer)

    def _admit(self, timeout: float) -> None:
        items = [i for i in self.intake.take(timeout) if not i.error]
        if not items:
            return
        if self.cancelling:
            self.recorder.emit(*[ProgressEvent(i.video_id, EventKind.CANCELLED, error="cancelled before it started")
                                 for i in items])
            return
        self.scheduler.add(items)

    def _cancel(self) -> None:
        if self.cancelling:
            return
        self.cancelling = True
        never_ran = self.intake.cancel()
        never_ran += [(v, "cancelled before it started") for v in self.scheduler.cancel()]
        self.executor.cancel()
        if never_ran:
            self.recorder.emit(*[ProgressEvent(v, EventKind.CANCELLED, error=why) for v, why in never_ran])

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.intake.close()
            self.executor.close()

    def _loop(self) -> None:
        while True:
            if self.cancel_event.is_set() or self.recorder.cancel_requested():
                self._cancel()
            self._admit(0.0)
            self._start_workers_for_queue()
            self._fill()
            drained = (self.intake.finished or self.cancelling) and (self.scheduler.finished or self.cancelling)
            if drained and not self.executor.working():
                break  # a replacement worker still waiting for resources has nothing left to do
            busy = self.executor.busy()
            if not busy:
                if self.started and self.scheduler.queue_length and not self.executor.ready_workers():
                    # Every worker is gone and none is starting: nothing could ever run what is queued.
                    raise RuntimeError("no workers left: every worker died and the replacement budget is spent")
            # Wake early only for a backed-off video coming due; "ready now" (0) means dispatch just offered it
            # and no worker could take it, which only an answer changes (and `wait` returns on those).
            ready_in = self.scheduler.ready_in()
            timeout = min(POLL_S, max(0.01, ready_in)) if ready_in else POLL_S
            if not busy:
                # Nothing can answer: wait on the inputs instead (returns as soon as a video is resolved).
                if self.intake.finished or self.cancelling:
                    time.sleep(timeout)
                else:
                    self._admit(timeout)
                continue
            for report in self.executor.wait(timeout):
                if isinstance(report, Finished):
                    self._on_finished(report)
                elif isinstance(report, WorkerReady):
                    self.on_phase(None)  # videos flow from here: the table and cards say the rest
                    log.info("%s ready: %s", report.worker, report.info)
                elif isinstance(report, WorkerLost):
                    self._on_lost(report)
                elif isinstance(report, WorkerRetired):
                    self.scheduler.retire(report.worker)
                    log.info("%s retired", report.worker)
        self._finish_cancelled()

    def _finish_cancelled(self) -> None:
        """After a cancel, every video not yet terminal ends as cancelled (one terminal event each)."""
        if not self.cancelling:
            return
        left = [v for v, state in self.scheduler.states().items() if state in ("pending", "assigned")]
        if left:
            self.recorder.emit(*[ProgressEvent(v, EventKind.CANCELLED, error="cancelled") for v in left])


def new_scheduler(config: RunConfig) -> Scheduler:
    """The run's scheduler. With an explicit batch size above 1, short videos go to a worker in bundles whose
    chunks share the model's batches (a video shorter than batch_size x 30 s fills only part of one alone). A
    parallel run's second worker starts with the shortest video: its first transcript comes early."""
    batch_size = config.transcribe.batch_size
    bundles = batch_size > 1
    return Scheduler(max_attempts=config.max_attempts, backoff_s=RETRY_BACKOFF_S,
                     bundle_max_s=batch_size * CHUNK_S if bundles else 0.0,
                     bundle_max_items=batch_size if bundles else 8, early_first=config.parallel)


def _bundles(assignments: Sequence[Assignment]) -> list[list[Assignment]]:
    """Consecutive assignments with the same nonzero `bundle` number run together on one worker."""
    groups: list[list[Assignment]] = []
    for assignment in assignments:
        if assignment.bundle and groups and groups[-1][0].bundle == assignment.bundle:
            groups[-1].append(assignment)
        else:
            groups.append([assignment])
    return groups
