"""Run the real Driver on a real store with either executor, and watch it the way a screen does (snapshots).

Test-only: production code builds the same parts in batch.py; here the tests pick the executor, share one loaded
model across runs (`worker=`), and act on the run (cancel, kill) when a snapshot shows a given moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bulk_transcribe.config import RunConfig
from bulk_transcribe.engine.driver import Driver
from bulk_transcribe.engine.intake import StoreIntake
from bulk_transcribe.engine.local import LocalExecutor, LocalRecorder
from bulk_transcribe.models import EventKind, ProgressEvent, Snapshot, VideoItem
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
          action: Callable[[Snapshot, Driver], None] | None = None) -> DriverRun:
    """Run `items` through the Driver with the "local" or "ray" executor; `action` runs once, the first time a
    snapshot satisfies `when` (snapshots polled every 50 ms from another thread, as a dashboard would)."""
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
        if worker is not None:
            worker.relay.target = recorder
        executor = LocalExecutor(config, recorder, worker=worker)
    intake = StoreIntake(config, store, run_id, ListStream(items), recorder)
    driver = Driver(config, intake, executor, recorder, folders=intake.folders, on_phase=phases.append)
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
