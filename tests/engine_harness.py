"""Run the real Driver on a real store with either executor, and watch it the way a screen does (snapshots).

Test-only: production code builds the same parts in batch.py; here the tests pick the executor, share one loaded
model across runs (`worker=`), and act on the run (cancel, kill) when a snapshot shows a given moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bulk_transcribe.config import RunConfig
from bulk_transcribe.engine.driver import Driver, Finished, WorkerLost, WorkerReady
from bulk_transcribe.engine.scheduler import Scheduler
from bulk_transcribe.errors import Cancelled
from bulk_transcribe.engine.intake import StoreIntake
from bulk_transcribe.engine.local import LocalExecutor, LocalRecorder
from bulk_transcribe.models import EventKind, ProgressEvent, Segment, Snapshot, Transcript, VideoItem
from bulk_transcribe.session_manager import SessionStore

TERMINAL = {EventKind.DONE, EventKind.FAILED, EventKind.CANCELLED, EventKind.SKIPPED}


class ListStream:
    """A stream over videos already known (a test's list): all of them at the first take."""

    def __init__(self, items: Sequence[VideoItem], duplicates: Sequence[str] = ()) -> None:
        self._items = list(items)
        self.duplicates = list(duplicates)
        self.total = len(self._items)
        self.resolved = self.total

    def take(self, timeout: float = 0.0) -> list[VideoItem]:
        items, self._items = self._items, []
        return items

    def unresolved(self) -> list[str]:
        return []

    @property
    def finished(self) -> bool:
        return not self._items

    def close(self) -> None:
        self._items = []


class DripStream(ListStream):
    """A stream that resolves one video per take: a list whose lines become videos one at a time."""

    def take(self, timeout: float = 0.0) -> list[VideoItem]:
        items, self._items = self._items[:1], self._items[1:]
        return items


class Recording:
    """A recorder that keeps every event sent through it (the driver's, and in-process workers') in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: list[ProgressEvent] = []
        self._lock = threading.Lock()

    def emit(self, *events: ProgressEvent) -> None:
        with self._lock:
            self.events.extend(events)
        self.inner.emit(*events)

    def __call__(self, event: ProgressEvent) -> None:
        self.emit(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Relay:
    """The progress target of a worker shared across runs: each run points it at its own recorder."""

    def __init__(self) -> None:
        self.target: Callable[[ProgressEvent], None] = lambda event: None

    def __call__(self, event: ProgressEvent) -> None:
        self.target(event)


def shared_worker(config: RunConfig) -> Any:
    """One in-process worker (one loaded model) for a whole test module; `drive(..., worker=...)` uses it."""
    from bulk_transcribe.engine.worker import Worker

    relay = Relay()
    worker = Worker(config, "local", progress=relay)
    worker.relay = relay
    return worker


@dataclass
class DriverRun:
    store: SessionStore
    run_id: str
    driver: Driver
    events: list[ProgressEvent]
    phases: list[str | None] = field(default_factory=list)
    fired: bool = False
    submissions: list[list[str]] = field(default_factory=list)
    """The video ids of each call to a worker, in order (a bundle is one call with several)."""

    def terminal(self) -> dict[str, list[EventKind]]:
        ends: dict[str, list[EventKind]] = {}
        for e in self.events:
            if e.kind in TERMINAL:
                ends.setdefault(e.video_id, []).append(e.kind)
        return ends

    def statuses(self) -> dict[str, Any]:
        return {v.video_id: v.status for v in self.store.videos(self.run_id)}


def drive(config: RunConfig, items: Sequence[VideoItem], executor_kind: str, *, worker: Any = None,
          when: Callable[[Snapshot], bool] | None = None,
          action: Callable[[Snapshot, Driver], None] | None = None,
          executor: Any = None, scheduler: Scheduler | None = None, stream: Any = None) -> DriverRun:
    """Run `items` through the Driver with the "local" or "ray" executor, or `executor` (a ScriptedExecutor:
    `executor_kind` "scripted"); `action` runs once, the first time a snapshot satisfies `when` (snapshots polled
    every 50 ms from another thread, as a dashboard would)."""
    store = SessionStore(config.state_db)
    run_id = store.begin_run(config, "parallel" if executor_kind == "ray" else "sequential")
    phases: list[str | None] = []
    if executor_kind == "ray":
        from bulk_transcribe.parallel.executor import open_run

        executor, inner = open_run(config, run_id, phases.append)
        phases.clear()  # "starting Ray": not what these tests look at
        recorder = Recording(inner)
    else:
        recorder = Recording(LocalRecorder(run_id, "sequential", store))
        if executor is None:
            if worker is not None:
                worker.relay.target = recorder
            executor = LocalExecutor(config, recorder, worker=worker)
    intake = StoreIntake(config, store, run_id, stream or ListStream(items), recorder)
    driver = Driver(config, intake, executor, recorder, folders=intake.folders, on_phase=phases.append,
                    scheduler=scheduler, claim=store.claim_outputs)
    run = DriverRun(store, run_id, driver, recorder.events, phases)
    submit = executor.submit

    def counted_submit(worker_name, assignments, safer):
        run.submissions.append([a.item.video_id for a in assignments])
        submit(worker_name, assignments, safer)

    executor.submit = counted_submit
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            try:
                snapshot = recorder.snapshot()
            except Exception:  # noqa: BLE001 — the run's actors are going away
                return
            if when is not None and when(snapshot):
                run.fired = True
                action(snapshot, driver)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    if when is not None:
        watcher.start()
    try:
        driver.run()
    finally:
        stop.set()
        recorder.finish()
        if executor_kind == "ray":
            recorder.close()
    return run


# ---- an executor in memory, for the driver's policy ---------------------------------------------------------

OK, DIE, HANG = "ok", "die", "hang"
"""Scripted outcomes of one attempt: a transcript, the worker dying under it, or no answer until a cancel (a
threading.Event as the outcome: no answer until the test sets it, then a transcript)."""


class ScriptedExecutor:
    """The Executor protocol in memory: each video's attempts end as scripted (OK, DIE, HANG, or an exception such
    as DownloadError), at once. No model, no Ray: the driver's policy (retry and back-off, safer retries, cancel,
    dead workers and their replacements, delivery) runs in milliseconds, beside the real executors' tests."""

    def __init__(self, script: dict[str, list[Any]], *, planned: int = 2, starts_ok: int = 100,
                 name: Callable[[int], str] = "worker-{}".format) -> None:
        self.script = {video_id: list(outcomes) for video_id, outcomes in script.items()}
        self.planned = planned
        self.starts_ok = starts_ok
        self.name = name
        """The n-th started worker's name."""
        self.closed = False
        """Worker starts that succeed; past it a started worker never becomes ready (no resources left)."""
        self.started: list[str] = []
        self.alive: set[str] = set()
        self.calls: list[tuple[str, str, bool]] = []
        """(worker, video_id, safer) of each attempt, in order."""
        self._reports: list[Any] = []
        self._hanging: dict[str, list[Any]] = {}  # worker -> assignments with no answer yet
        self._released: list[tuple[threading.Event, str, Any]] = []
        self._starting = 0

    def start_worker(self) -> str:
        name = self.name(len(self.started))
        self.started.append(name)
        if len(self.started) <= self.starts_ok:
            self.alive.add(name)
            self._reports.append(WorkerReady(name))
        else:
            self._starting += 1
        return name

    @property
    def names(self) -> list[str]:
        """Every worker started (what an in-process executor tells a hand-over)."""
        return list(self.started)

    def owns(self, worker: str) -> bool:
        return worker in self.started

    def ready_workers(self) -> list[str]:
        return sorted(self.alive)

    def takes_ahead(self, worker: str) -> bool:
        return True

    def submit(self, worker: str, assignments: Sequence[Any], safer: bool) -> None:
        for a in assignments:
            video_id = a.item.video_id
            self.calls.append((worker, video_id, safer))
            outcome = self.script.get(video_id, [OK]).pop(0) if self.script.get(video_id) else OK
            if outcome == DIE:
                self.alive.discard(worker)
                self._hanging.pop(worker, None)  # what it held dies with it: only WorkerLost says so
                self._reports.append(WorkerLost(worker, "killed"))
                return
            if outcome == HANG or isinstance(outcome, threading.Event):
                self._hanging.setdefault(worker, []).append(a)
                if isinstance(outcome, threading.Event):  # answers OK once the test sets it
                    self._released.append((outcome, worker, a))
                continue
            result = _transcript(video_id) if outcome == OK else outcome
            self._reports.append(Finished(worker, [a], [result]))

    def wait(self, timeout: float) -> list[Any]:
        for held in [h for h in self._released if h[0].is_set()]:
            self._released.remove(held)
            _, worker, a = held
            if a in self._hanging.get(worker, []):
                self._hanging[worker].remove(a)
                if not self._hanging[worker]:
                    del self._hanging[worker]
                self._reports.append(Finished(worker, [a], [_transcript(a.item.video_id)]))
        reports, self._reports = self._reports, []
        if not reports and timeout > 0:
            import time

            time.sleep(min(timeout, 0.01))
        return reports

    def busy(self) -> bool:
        return bool(self._reports or self._hanging or self._starting)

    def working(self) -> bool:
        return bool(any(isinstance(r, Finished) for r in self._reports) or self._hanging)

    def cancel(self) -> None:
        for worker, held in self._hanging.items():
            self._reports += [Finished(worker, [a], [Cancelled("cancelled")]) for a in held]
        self._hanging.clear()
        self._released.clear()

    def close(self) -> None:
        self.closed = True


def _transcript(video_id: str) -> Transcript:
    return Transcript(video_id, "en", 1.0, 2.0, [Segment(0.0, 1.5, "scripted words")], "scripted")
