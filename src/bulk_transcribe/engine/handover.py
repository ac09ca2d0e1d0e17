"""A parallel run that starts work at once: the in-process worker transcribes while the cluster boots, then hands
over to the cluster's workers. No Ray is imported here: the cluster arrives through a callable (runs.py).

Starting an embedded Ray and loading a model in each of its workers takes 15-25 s on a small machine, during which
a parallel run used to do nothing (and lost to a sequential one on every ordinary batch). Here the run's first
workers are the sequential path's own kind, in this process (engine/local.py: as many as the cluster would get on
this machine, each its share of the cores); the cluster opens on a thread meanwhile. Once it is open the run's
events go to its progress actor (HandoverRecorder.switch: the in-process ledger's rows are handed over through the
store), its workers start, and from the first of them that is ready the in-process workers take no new video: each
finishes what it holds and leaves (WorkerRetired), freeing its model. Nothing runs twice: a video is held by one
worker at a time (the scheduler), whichever executor runs it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .driver import Executor, Recorder, Report, WorkerRetired
from .local import LocalExecutor
from .scheduler import Assignment

log = logging.getLogger(__name__)

POLL_SLICE_S = 0.05
"""While both executors may answer, each is asked in turns of at most this long."""

WORTH_IT_EVERY_S = 1.0
"""How often the driver's thread asks whether the waiting work is worth starting the cluster for."""


@dataclass
class HandoverTimes:
    """How a hand-over went, in seconds from the executor's start (None: it did not happen): for the run's result,
    the CLI's last lines and the start-up benchmark."""

    cluster_asked_s: float | None = None
    """The cluster's start asked for (at once, or once enough audio was waiting); None: never needed."""
    cluster_open_s: float | None = None
    """Ray up and the run's actors created (their models still loading)."""
    first_cluster_worker_s: float | None = None
    """The first of the cluster's workers ready: from here the in-process workers take no new video."""
    in_process_videos: int = 0
    """Videos the in-process workers were given (ones they finished, or failed, before the cluster took over)."""


class HandoverRecorder:
    """The run's recorder through a hand-over: the in-process ledger first, the cluster's progress actor after
    `switch`. Writers (emit, add_videos, set_inputs) take a lock, so none lands in the old ledger once the new
    one has taken the run over; readers follow whichever is current."""

    def __init__(self, first: Recorder) -> None:
        self.current: Recorder = first
        self._lock = threading.Lock()

    def switch(self, new: Recorder, records: Callable[[], Sequence[Any]]) -> None:
        """From now on `new` holds the run: the current ledger writes out what its throttle held back, and `new`
        takes every video as the store has it (`records()`, read under the lock) and the inputs' count."""
        with self._lock:
            old = self.current
            flush = getattr(old, "flush", None)
            if flush is not None:
                flush()
            seen = old.snapshot()
            new.add_videos(list(records()))
            new.set_inputs(seen.inputs_resolved, seen.inputs_total)
            self.current = new

    def emit(self, *events) -> None:
        with self._lock:
            self.current.emit(*events)

    def __call__(self, event) -> None:  # what a Worker calls with its events
        self.emit(event)

    def add_videos(self, records: Sequence[Any]) -> None:
        with self._lock:
            self.current.add_videos(records)

    def set_inputs(self, resolved: int, total: int) -> None:
        with self._lock:
            self.current.set_inputs(resolved, total)

    def cancel_requested(self) -> bool:
        return self.current.cancel_requested()

    def snapshot(self):
        return self.current.snapshot()

    def finish(self) -> None:
        with self._lock:
            self.current.finish()

    def close(self) -> None:
        close = getattr(self.current, "close", None)
        if close is not None:
            close()


class HandoverExecutor:
    """The in-process workers at once, the cluster's workers as they come (see the module's docstring).

    `open_cluster` runs on its own thread from construction and returns the cluster's Executor and Recorder once
    the cluster is up; when it raises, the run goes on in this process alone and `problem` says why. The
    hand-over itself (the recorder's switch, the cluster's workers' start) happens on the driver's thread, and
    only while the run has work: a run that ends first never switches, and the cluster's actors go at close."""

    def __init__(self, local: LocalExecutor, open_cluster: Callable[[], tuple[Executor, Recorder]],
                 recorder: HandoverRecorder, records: Callable[[], Sequence[Any]],
                 worth_it: Callable[[], bool] | None = None) -> None:
        self.local = local
        self.recorder = recorder
        self.records = records
        self.later: Executor | None = None
        self._later_recorder: Recorder | None = None
        self.problem: str | None = None
        """Why the cluster could not be used (the run then stayed in this process), or None."""
        self.started_at = time.monotonic()
        self.times = HandoverTimes()
        self._opened = threading.Event()
        self._taken_over = False
        self._retired = False
        self._retire_reported = False
        self._cancelled = False
        self._closing = False
        self._lock = threading.Lock()
        self._opener = threading.Thread(target=self._open, args=(open_cluster,), name="bt-cluster-open",
                                        daemon=True)
        self._worth_it = worth_it
        self._asked_at = 0.0
        if worth_it is None:
            self._ask()

    def _ask(self) -> None:
        """Start opening the cluster (once)."""
        if not self._opener.is_alive() and not self._opened.is_set() and self.times.cluster_asked_s is None:
            self.times.cluster_asked_s = time.monotonic() - self.started_at
            self._opener.start()

    def _ask_if_worth_it(self) -> None:
        """On the driver's thread, at most once a second: open the cluster once the waiting work is worth it."""
        if self.times.cluster_asked_s is not None or self._worth_it is None or self._cancelled:
            return
        now = time.monotonic()
        if now - self._asked_at < WORTH_IT_EVERY_S:
            return
        self._asked_at = now
        if self._worth_it():
            log.info("enough audio is waiting: starting Ray for the run's workers")
            self._ask()

    def _open(self, open_cluster: Callable[[], tuple[Executor, Recorder]]) -> None:
        try:
            executor, recorder = open_cluster()
        except BaseException as exc:  # noqa: BLE001 — the run goes on in this process
            if not (self._closing or self._cancelled):  # else Ray was stopped with the run: nothing to say
                self.problem = " ".join(str(exc).split()) or type(exc).__name__
                log.warning("the cluster could not start (%s): the run goes on in this process", self.problem)
            self._opened.set()
            return
        with self._lock:
            abandoned = self._closing or self._cancelled
            if not abandoned:
                self.later, self._later_recorder = executor, recorder
                self.times.cluster_open_s = time.monotonic() - self.started_at
        if abandoned:  # the run ended before the cluster was up: its actors go at once
            _close_quietly(executor, recorder)
        self._opened.set()

    @property
    def planned(self) -> int:
        """The in-process plan at first (the driver starts those workers as work arrives); the cluster's once it
        has taken over (the driver's replacement budget for dead workers counts from it)."""
        return self.later.planned if self._taken_over and self.later is not None else self.local.planned

    # ---- workers -----------------------------------------------------------------------------------------------
    def start_worker(self) -> str:
        if not self._taken_over:
            return self.local.start_worker()
        assert self.later is not None
        return self.later.start_worker()

    def _take_over(self) -> None:
        """On the driver's thread, once: the cluster is open and there is work (an in-process worker started), so
        as many of its workers start as the driver started here (the driver starts the rest of the cluster's plan
        as work arrives, through `start_worker`); the cluster's reports come through `wait` from here."""
        started = len(self.local.names)
        if self._taken_over or self.later is None or not started or self._cancelled:
            return
        assert self._later_recorder is not None
        self.recorder.switch(self._later_recorder, self.records)
        self._taken_over = True
        for _ in range(min(started, self.later.planned)):
            self.later.start_worker()

    def ready_workers(self) -> list[str]:
        cluster = self.later.ready_workers() if self._taken_over and self.later is not None else []
        if cluster and not self._retired:
            self._retired = True  # from the first cluster worker on, the in-process ones take no new video
            self.times.first_cluster_worker_s = time.monotonic() - self.started_at
            log.info("the cluster's first worker is ready: the in-process workers finish what they hold and leave")
        own = [] if self._retired else self.local.ready_workers()
        return own + cluster

    def takes_ahead(self, worker: str) -> bool:
        # The in-process workers take videos ahead (downloads hidden behind transcription) as the sequential path
        # does until the cluster is asked for; from then on none: one fetched ahead would wait for its worker after
        # the cluster's workers are ready, instead of going to them.
        if self.local.owns(worker):
            return self.times.cluster_asked_s is None
        return self.later is None or self.later.takes_ahead(worker)

    def submit(self, worker: str, assignments: Sequence[Assignment], safer: bool) -> None:
        target = self.local if self.local.owns(worker) else self.later
        assert target is not None
        if target is self.local:
            self.times.in_process_videos += len(assignments)
        target.submit(worker, assignments, safer)

    # ---- answers -----------------------------------------------------------------------------------------------
    def wait(self, timeout: float) -> list[Report]:
        self._ask_if_worth_it()
        if self._opened.is_set():
            self._take_over()
        reports: list[Report] = self.local.wait(0.0)
        deadline = time.monotonic() + timeout
        while not reports:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._taken_over and self.later is not None:
                reports += self.later.wait(min(left, POLL_SLICE_S) if self.local.busy() else left)
                reports += self.local.wait(0.0)
            else:
                reports += self.local.wait(min(left, POLL_SLICE_S))
                if self._opened.is_set() and not self._taken_over:
                    self._take_over()
                    if self._taken_over:
                        break  # the driver offers the new workers their first videos as they are ready
        if self._retired and not self._retire_reported and not self.local.busy():
            self._retire_reported = True
            self.local.close()  # their models' memory goes back to the cluster's workers
            reports += [WorkerRetired(name) for name in self.local.names]
        return reports

    def busy(self) -> bool:
        # A cancelled run does not wait for Ray to finish starting: the opener closes what it opens (see _open).
        opening = (self.times.cluster_asked_s is not None and not self._opened.is_set() and bool(self.local.names)
                   and not self._cancelled)
        local = self.local.busy() and not self._retire_reported
        return opening or local or (self._taken_over and self.later is not None and self.later.busy())

    def working(self) -> bool:
        return self.local.working() or (self.later is not None and self._taken_over and self.later.working())

    def cancel(self) -> None:
        self._cancelled = True
        self.local.cancel()
        if self.later is not None:
            self.later.cancel()

    def close(self) -> None:
        """Free every worker; the recorder the run switched to is the caller's to close (after its last read). A
        cluster opened but never taken over is closed here whole (its actors and its progress actor)."""
        self.local.close()
        with self._lock:
            self._closing = True
            later, recorder, taken = self.later, self._later_recorder, self._taken_over
        if later is not None:
            later.close()
            if not taken and recorder is not None:
                _close_quietly(None, recorder)


def _close_quietly(executor: Executor | None, recorder: Recorder | None) -> None:
    for part in (executor, recorder):
        close = getattr(part, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception:  # noqa: BLE001 — actors of a run that is over: Ray may be going away too
            log.debug("closing an unused cluster part failed", exc_info=True)
