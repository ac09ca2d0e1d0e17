"""The in-process executor and recorder: the default engine and the rollback path. No Ray is imported here.

One worker holds one model; a sequential run has one, a parallel run starts with a plan's worth here while its
cluster boots (engine/handover.py; on this machine two one-thread models do ~1.5x the work of one two-thread model,
benchmarks/README.md, Start-up). Like a Ray worker, each runs every video it is handed on its own thread, and only
one of them transcribes at a time (the worker's model lock): the others download meanwhile, so downloads hide behind
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


def worker_name(index: int) -> str:
    """The in-process workers' names: "local" (the sequential run's one), then "local-2", "local-3"..."""
    return LOCAL_WORKER if index == 0 else f"{LOCAL_WORKER}-{index + 1}"


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
    """Model-holding workers in this process: one in a sequential run, a plan's worth while a parallel run starts
    (engine/handover.py). Each video a worker runs gets a thread; the scheduler bounds how many each holds."""

    def __init__(self, config: RunConfig, recorder: Any, work_dir: Path | None = None, *,
                 worker: Any = None, workers: int = 1) -> None:
        """`worker`: a Worker already loaded (tests share one model across runs), used as the first; the others
        are loaded on threads when the driver first has work for them. `workers`: how many this executor may
        start (each its own model; the config's cpu_threads is each one's share of the cores)."""
        self.config = config
        self.recorder = recorder
        self.work_dir = work_dir
        self.planned = max(1, workers)
        download = config.download
        # One limiter for every worker here: the download rules (concurrency, spacing, 429 back-off) are the run's.
        self.limiter = LocalLimiter(download.max_concurrent, download.sleep_s, max_interval_s=download.max_sleep_s)
        self._given = worker
        self.workers: dict[str, Any] = {}
        """Loaded workers by name, in the order they became ready."""
        self.names: list[str] = []
        """Every worker started, loaded or not."""
        self._reports: queue.Queue[Report | BaseException] = queue.Queue()
        self._pending = 0  # submitted work and worker starts that have not reported back
        self._working = 0  # submitted work only
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def owns(self, worker: str) -> bool:
        return worker in self.names

    def start_worker(self) -> str:
        if len(self.names) >= self.planned:
            raise RuntimeError(f"the in-process executor runs {self.planned} worker(s)")
        name = worker_name(len(self.names))
        self.names.append(name)
        self._add_pending()
        threading.Thread(target=self._load, args=(name,), name=f"bt-model-load-{name}", daemon=True).start()
        return name

    def _load(self, name: str) -> None:
        from .worker import Worker  # loads faster-whisper: only when there is work

        if self._given is not None and name == LOCAL_WORKER:
            self._given.resume()
            self._ready(name, self._given)
            return
        try:
            worker = Worker(self.config, name, progress=self.recorder, limiter=self.limiter, work_dir=self.work_dir)
        except BaseException as exc:  # noqa: BLE001 — handed to the driver's thread, which ends the run with it
            self._put(RuntimeError(f"the model could not load: {exc}"))
            return
        self._ready(name, worker)

    def _ready(self, name: str, worker: Any) -> None:
        with self._lock:
            self.workers[name] = worker
        if self._cancelled.is_set():
            worker.cancel()
        self._put(WorkerReady(name, worker.info()))

    def ready_workers(self) -> list[str]:
        with self._lock:
            return list(self.workers)

    def takes_ahead(self, worker: str) -> bool:
        return True

    def submit(self, worker: str, assignments: Sequence[Assignment], safer: bool) -> None:
        self._add_pending()
        with self._lock:
            self._working += 1
            target = self.workers[worker]
        threading.Thread(target=self._run, args=(worker, target, list(assignments), safer), daemon=True,
                         name=f"bt-video-{assignments[0].item.video_id}").start()

    def _run(self, name: str, worker: Any, assignments: list[Assignment], safer: bool) -> None:
        results: list[Any]
        try:
            if len(assignments) == 1:
                a = assignments[0]
                results = [worker.process(a.item, safer)]
            else:
                results = worker.process_bundle([a.item for a in assignments])
        except BaseException as exc:  # noqa: BLE001 — a video's failure is data for the driver
            results = [exc] * len(assignments)
        self._put(Finished(name, assignments, results))

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
        for worker in self._loaded():
            worker.cancel()

    def close(self) -> None:
        for worker in self._loaded():
            if worker is not self._given:
                worker.close()

    def _loaded(self) -> list[Any]:
        with self._lock:
            return list(self.workers.values())

    def _add_pending(self) -> None:
        with self._lock:
            self._pending += 1

    def _put(self, report: Report | BaseException) -> None:
        self._reports.put(report)
