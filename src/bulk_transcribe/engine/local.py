"""The in-process executor and recorder: the default engine and the rollback path. No Ray is imported here.

One worker holds one model. Like a Ray worker it runs each video it is handed on its own thread, and only one of
them transcribes at a time (the worker's model lock): the others download meanwhile, so downloads hide behind
compute in sequential mode too, within the same download limiter rules (concurrency, spacing, 429 back-off).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig
from ..ledger import Ledger
from ..models import LOCAL_WORKER, ProgressEvent, Snapshot
from ..session_manager import SessionStore
from .driver import Finished, Report, WorkerReady
from .limiter import LocalLimiter
from .scheduler import Assignment

WORKER_NAME = LOCAL_WORKER

class LocalRecorder:
    """The run's ledger (tracker + store) in this process, behind a lock: the driver's thread, the worker's video
    threads and any screen's thread call it at once."""

    def __init__(self, run_id: str, mode: str, store: SessionStore) -> None:
        self.ledger = Ledger(run_id, mode, store)
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        self.emit(event)

    def emit(self, *events: ProgressEvent) -> None:
        with self._lock:
            self.ledger.apply(events)

    def add_videos(self, records: Sequence[Any]) -> None:
        with self._lock:
            self.ledger.add_videos(records)

    def set_inputs(self, resolved: int, total: int) -> None:
        with self._lock:
            self.ledger.set_inputs(resolved, total)

    def cancel_requested(self) -> bool:
        return False  # a local run is stopped through its own handle (BatchHandle.cancel)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self.ledger.snapshot()

    def finish(self) -> None:
        with self._lock:
            self.ledger.finish()

    def flush(self) -> None:
        """Every video's latest state in the store (the progress actor takes the run over from there)."""
        with self._lock:
            self.ledger.flush()

    def close(self) -> None:
        pass


class LocalExecutor:
    """One model-holding worker in this process; each video it runs gets a thread (the scheduler bounds how many)."""

    planned = 1

    def __init__(self, config: RunConfig, recorder: Any, work_dir: Path | None = None, *,
                 worker: Any = None) -> None:
        """`worker`: a Worker already loaded (tests share one model across runs); else one is loaded
        on a thread when the driver first has work."""
        self.config = config
        self.recorder = recorder
        self.work_dir = work_dir
        download = config.download
        self.limiter = LocalLimiter(download.max_concurrent, download.sleep_s, max_interval_s=download.max_sleep_s)
        self._given = worker
        self.worker: Any = None
        self._reports: queue.Queue[Report | BaseException] = queue.Queue()
        self._pending = 0  # submitted work and worker starts that have not reported back
        self._working = 0  # submitted work only
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def start_worker(self) -> str:
        if self.worker is not None:
            raise RuntimeError("the local executor runs one worker")
        self._add_pending()
        threading.Thread(target=self._load, name="bt-model-load", daemon=True).start()
        return WORKER_NAME

    def _load(self) -> None:
        from .worker import Worker  # loads faster-whisper: only when there is work

        if self._given is not None:
            self.worker = self._given
            self._given.resume()
            self._put(WorkerReady(WORKER_NAME, self._given.info()))
            return
        try:
            worker = Worker(self.config, WORKER_NAME, progress=self.recorder, limiter=self.limiter,
                                      work_dir=self.work_dir)
        except BaseException as exc:  # noqa: BLE001 — handed to the driver's thread, which ends the run with it
            self._put(RuntimeError(f"the model could not load: {exc}"))
            return
        self.worker = worker
        if self._cancelled.is_set():
            worker.cancel()
        self._put(WorkerReady(WORKER_NAME, worker.info()))

    def ready_workers(self) -> list[str]:
        return [WORKER_NAME] if self.worker is not None else []

    def takes_ahead(self, worker: str) -> bool:
        return True

    def submit(self, worker: str, assignments: Sequence[Assignment], safer: bool) -> None:
        self._add_pending()
        with self._lock:
            self._working += 1
        threading.Thread(target=self._run, args=(list(assignments), safer), daemon=True,
                         name=f"bt-video-{assignments[0].item.video_id}").start()

    def _run(self, assignments: list[Assignment], safer: bool) -> None:
        results: list[Any]
        try:
            if len(assignments) == 1:
                a = assignments[0]
                results = [self.worker.process(a.item, safer)]
            else:
                results = self.worker.process_bundle([a.item for a in assignments])
        except BaseException as exc:  # noqa: BLE001 — a video's failure is data for the driver
            results = [exc] * len(assignments)
        self._put(Finished(WORKER_NAME, assignments, results))

    def wait(self, timeout: float) -> list[Report]:
        reports: list[Report] = []
        try:
            reports.append(self._take(self._reports.get(timeout=timeout) if timeout > 0 else self._reports.get_nowait()))
            while True:
                reports.append(self._take(self._reports.get_nowait()))
        except queue.Empty:
            pass
        return reports

    def _take(self, report: Report | BaseException) -> Report:
        with self._lock:
            self._pending -= 1
            if isinstance(report, Finished):
                self._working -= 1
        if isinstance(report, BaseException):
            raise report
        return report

    def busy(self) -> bool:
        with self._lock:
            return self._pending > 0

    def working(self) -> bool:
        with self._lock:
            return self._working > 0

    def cancel(self) -> None:
        self._cancelled.set()
        if self.worker is not None:
            self.worker.cancel()

    def close(self) -> None:
        if self.worker is not None and self.worker is not self._given:
            self.worker.close()

    def _add_pending(self) -> None:
        with self._lock:
            self._pending += 1

    def _put(self, report: Report | BaseException) -> None:
        self._reports.put(report)
