"""The Ray executor and recorder: the driver's typed view of the run's actors (the way `ray.util.ActorPool` wraps
its actors). Every `ray.get` / `ray.wait` of the driver lives in this module; the actor bodies (engine/worker.py's
Worker, progress_actor.py, rate_limit.py) stay plain classes that tests use without Ray.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from ..config import RunConfig
from ..engine.driver import Finished, Report, WorkerLost, WorkerReady
from ..engine.pipeline import failure_reason
from ..engine.scheduler import Assignment
from ..models import ProgressEvent, Snapshot
from . import cluster
from .plan import WorkerPlan, plan_workers

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 600.0
"""Give up when no worker has been able to start (load its model, find resources) for this long."""

CANCEL_POLL_S = 0.5
"""How often the driver asks the progress actor whether another process asked the run to stop."""

SNAPSHOT_MAX_AGE_S = 0.25
"""A screen polling faster than this gets the last snapshot again instead of another actor call."""

SNAPSHOT_TIMEOUT_S = 5.0
"""Longest a screen waits on the progress actor; past it (a node under load) it shows the last snapshot again."""

CLOSE_TIMEOUT_S = 30.0
"""Longest the teardown waits for workers to clean their scratch folders."""


class RayRecorder:
    """Events go to the run's progress actor, which applies them to its tracker and writes SQLite through."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self._cancel_checked = float("-inf")
        self._cancel = False
        self._snapshot: Snapshot | None = None
        self._snapshot_at = float("-inf")
        self._lock = threading.Lock()

    def add_videos(self, records: Sequence[Any]) -> None:
        ray.get(self.progress.add_videos.remote(list(records)))

    def emit(self, *events: ProgressEvent) -> None:
        if events:
            ray.get(self.progress.apply_events.remote(list(events)))

    def set_inputs(self, resolved: int, total: int) -> None:
        self.progress.set_inputs.remote(resolved, total)  # advisory: no need to wait

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._cancel_checked >= CANCEL_POLL_S:
            self._cancel_checked = now
            self._cancel = bool(ray.get(self.progress.cancel_requested.remote()))
        return self._cancel

    def snapshot(self) -> Snapshot:
        """Any thread may ask (the dashboard polls from its own); calls are spaced by SNAPSHOT_MAX_AGE_S."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._snapshot_at >= SNAPSHOT_MAX_AGE_S:
                try:
                    self._snapshot = ray.get(self.progress.snapshot.remote(), timeout=SNAPSHOT_TIMEOUT_S)
                except GetTimeoutError:
                    if self._snapshot is None:
                        raise
                self._snapshot_at = now
            return self._snapshot

    def finish(self) -> None:
        with self._lock:
            self._snapshot = ray.get(self.progress.mark_finished.remote())
            self._snapshot_at = time.monotonic()

    def close(self) -> None:
        ray.kill(self.progress, no_restart=True)


@dataclass
class _Worker:
    name: str
    handle: Any
    ready_ref: Any
    ready: bool = False
    alive: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    inflight: dict[Any, list[Assignment]] = field(default_factory=dict)  # ObjectRef -> its assignments


class RayExecutor:
    """Model-holding Workers (engine/worker.py) as actors on the cluster: starts them, hands them work, turns their answers (and
    their deaths) into the driver's reports."""

    def __init__(self, config: RunConfig, run_id: str, plan: WorkerPlan, *, progress: Any, limiter: Any) -> None:
        self.config = config
        self.run_id = run_id
        self.plan = plan
        self.planned = plan.workers
        self.progress = progress
        self.limiter = limiter
        self.workers: dict[str, _Worker] = {}
        self._started = 0
        self._no_worker_since: float | None = None

    def start_worker(self) -> str:
        index = self._started
        self._started += 1
        handle = cluster.start_worker(self.config, self.run_id, index, self.plan, progress=self.progress,
                                      limiter=self.limiter)
        worker = _Worker(f"worker-{index}", handle, handle.info.remote())
        self.workers[worker.name] = worker
        return worker.name

    def ready_workers(self) -> list[str]:
        return [w.name for w in self.workers.values() if w.ready and w.alive]

    def takes_ahead(self, worker: str) -> bool:
        return True

    def submit(self, worker: str, assignments: Sequence[Assignment], safer: bool) -> None:
        target = self.workers[worker]
        if len(assignments) == 1:
            a = assignments[0]
            ref = target.handle.process.remote(a.item, safer)
        else:
            ref = target.handle.process_bundle.remote([a.item for a in assignments])
        target.inflight[ref] = list(assignments)

    def busy(self) -> bool:
        return any(w.inflight or not w.ready for w in self.workers.values() if w.alive)

    def working(self) -> bool:
        return any(w.inflight for w in self.workers.values() if w.alive)

    def wait(self, timeout: float) -> list[Report]:
        inflight = {ref: w for w in self.workers.values() if w.alive for ref in w.inflight}
        starting = {w.ready_ref: w for w in self.workers.values() if w.alive and not w.ready}
        self._check_stalled(bool(starting))
        refs = list(inflight) + list(starting)
        if not refs:
            time.sleep(timeout)
            return []
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if done:  # whatever else is ready too, in the same turn
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        reports: list[Report] = []
        for ref in done:
            if ref in starting:
                reports.append(self._on_ready(starting[ref]))
            elif ref in inflight and inflight[ref].alive:
                report = self._on_answer(inflight[ref], ref)
                if report is not None:
                    reports.append(report)
        return reports

    def _on_ready(self, worker: _Worker) -> WorkerReady:
        try:
            worker.info = ray.get(worker.ready_ref)
        except RayActorError as exc:
            # The model could not load (bad path, no memory): a replacement would fail the same way.
            worker.alive = False
            cause = getattr(exc, "cause", None) or exc
            raise RuntimeError(f"{worker.name} could not start: {failure_reason(cause)}") from exc
        worker.ready = True
        return WorkerReady(worker.name, worker.info)

    def _on_answer(self, worker: _Worker, ref: Any) -> Report | None:
        assignments = worker.inflight.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError as exc:
            # The actor process is gone (killed, OOM, node removed): nothing it held will ever answer.
            return self._lost(worker, type(exc).__name__)
        except RayTaskError as exc:  # the video's own failure, raised in the worker
            cause = exc.cause if getattr(exc, "cause", None) else exc
            return Finished(worker.name, assignments, [cause] * len(assignments))
        except Exception as exc:  # noqa: BLE001 — e.g. an answer that cannot be unpickled: still the video's
            return Finished(worker.name, assignments, [exc] * len(assignments))
        results = list(value) if len(assignments) > 1 else [value]
        return Finished(worker.name, assignments, results)

    def _lost(self, worker: _Worker, why: str) -> WorkerLost:
        worker.alive = False
        worker.inflight.clear()
        # A worker killed mid-download may still hold a download slot: free it or the run would stall.
        self.limiter.finish_all.remote(f"{worker.name}:")
        return WorkerLost(worker.name, why)

    def _check_stalled(self, starting: bool) -> None:
        if any(w.alive and w.ready for w in self.workers.values()) or not starting:
            self._no_worker_since = None
            return
        now = time.monotonic()
        self._no_worker_since = self._no_worker_since or now
        if now - self._no_worker_since > WORKER_START_TIMEOUT_S:
            raise RuntimeError(
                f"no worker could start in {WORKER_START_TIMEOUT_S:.0f} s: the cluster lacks the resources asked "
                f"for ({self.plan.note})")

    def cancel(self) -> None:
        for worker in self.workers.values():
            if worker.alive:
                worker.handle.cancel.remote()

    def close(self) -> None:
        if not ray.is_initialized():
            return  # Ray was shut down under us: any call now would start a brand-new local Ray just to fail
        alive = [w for w in self.workers.values() if w.alive and w.ready]
        try:
            ray.get([w.handle.close.remote() for w in alive], timeout=CLOSE_TIMEOUT_S)
        except (GetTimeoutError, RayActorError, RayTaskError):  # a scratch folder left is not worth failing over
            log.warning("some workers could not clean their scratch folders")
        for worker in self.workers.values():
            ray.kill(worker.handle, no_restart=True)
        ray.kill(self.limiter, no_restart=True)

    def worker_info(self) -> dict[str, dict[str, Any]]:
        return {w.name: w.info for w in self.workers.values()}


def open_run(config: RunConfig, run_id: str, on_phase: Callable[[str | None], None]) -> tuple[RayExecutor,
                                                                                                 RayRecorder]:
    """Join (or start) Ray, plan the workers from the cluster's resources and create the run's named actors.

    All of it on Ray's owner thread (cluster.py), in turn with a shutdown: a run opening in the background (a
    hand-over) while its CLI stops Ray at exit finds Ray stopped and says so, where Ray's core worker, called
    during its shutdown from another thread, ended the whole process with status 1."""
    return cluster.on_owner_thread(lambda: _open_run(config, run_id, on_phase))


def _open_run(config: RunConfig, run_id: str, on_phase: Callable[[str | None], None]) -> tuple[RayExecutor,
                                                                                                  RayRecorder]:
    on_phase("starting Ray")
    info = cluster.connect(config.ray_address)
    if not ray.is_initialized():  # stopped in between (a start that was abandoned)
        raise RuntimeError("Ray was stopped before the run's actors could start")
    plan = plan_workers(config, ray.cluster_resources())
    log.info("parallel run %s: %s; Ray dashboard: %s", run_id, plan.note, info.dashboard_url)
    download = config.download
    actors = cluster.start_run_actors(run_id, db_path=config.state_db.resolve(),
                                      max_concurrent=download.max_concurrent, min_interval_s=download.sleep_s,
                                      max_interval_s=download.max_sleep_s)
    on_phase(None)
    executor = RayExecutor(config, run_id, plan, progress=actors["progress"], limiter=actors["limiter"])
    return executor, RayRecorder(actors["progress"])
