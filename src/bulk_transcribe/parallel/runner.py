"""The parallel driver loop: start the run's actors, keep every worker busy, write outputs here on the head node.

Workers return transcripts; this process writes the files (workers need no shared disk) and reports DONE to the
progress actor, which writes the SQLite store through. Failures are data: a FAILED (or RETRYING) event with the
reason. A worker that dies is taken out of rotation, its videos go back to the queue and a fresh actor replaces it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import RunConfig
from ..errors import Cancelled, VideoError
from ..models import EventKind, ProgressEvent, Snapshot
from ..pipeline import deliver, failure_reason, needs_safer_retry, should_retry
from ..session_manager import SessionStore, VideoRecord
from . import cluster
from .scheduler import Assignment
from .workers import WorkerPlan, plan_workers

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 1.0
"""Pause before a failed video's next attempt; doubles per attempt (as in the sequential runner)."""

POLL_S = 0.5
"""Longest the loop sleeps between looks at cancel requests and snapshots."""

WORKER_START_TIMEOUT_S = 600.0
"""Give up when no worker has been able to start (load its model, find resources) for this long."""

REPLACEMENTS_PER_WORKER = 3
"""How many times, per planned worker, a dead worker is replaced before the run stops replacing them."""


@dataclass
class _Worker:
    name: str
    handle: Any
    ready_ref: Any
    ready: bool = False
    alive: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    inflight: dict[Any, Assignment] = field(default_factory=dict)  # ObjectRef -> assignment, oldest first


class ParallelRun:
    """One parallel run's driver state. `run_parallel` is the function callers use."""

    def __init__(self, config: RunConfig, run_id: str, records: list[VideoRecord], *,
                 cancel_event: threading.Event | None = None,
                 on_snapshot: Callable[[Snapshot], None] | None = None,
                 store: SessionStore | None = None,
                 on_phase: Callable[[str | None], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.run_id = run_id
        self.records = {r.video_id: r for r in records}
        self.cancel_event = cancel_event or threading.Event()
        self.on_snapshot = on_snapshot
        self.on_phase = on_phase or (lambda phase: None)
        self.workers: dict[str, _Worker] = {}
        self.actors: dict[str, Any] = {}
        self.safer: set[str] = set()
        self.reported: set[str] = set()  # videos that got their terminal event from this driver
        self.cancelling = False
        self.started_workers = 0
        self.plan: WorkerPlan | None = None
        self._last_snapshot = 0.0
        self._no_worker_since: float | None = None
        self.deaths: list[str] = []
        self.assignments: dict[str, list[str]] = {}  # video_id -> workers it was handed to (read at teardown)

    # ---- events ------------------------------------------------------------------------------------------------
    def _emit(self, *events: ProgressEvent) -> None:
        import ray

        ray.get(self.actors["progress"].apply_events.remote(list(events)))

    def _terminal(self, event: ProgressEvent) -> None:
        self.reported.add(event.video_id)
        self._emit(event)

    # ---- workers -----------------------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        import ray

        assert self.plan is not None
        index = self.started_workers
        self.started_workers += 1
        name = f"worker-{index}"
        # Known to the scheduler before it can ask: while a planned worker holds nothing, nobody gets a prefetch,
        # so the first workers to load their model cannot take the longest videos two at a time.
        ray.get(self.actors["scheduler"].register.remote([name]))
        handle = cluster.start_worker(self.config, self.run_id, index, self.plan,
                                      progress=self.actors["progress"], limiter=self.actors["limiter"])
        worker = _Worker(name, handle, handle.info.remote())
        self.workers[worker.name] = worker

    def _worker_died(self, worker: _Worker, why: str) -> None:
        """Take a dead worker out of rotation: its calls can never answer, so its videos go back to the queue."""
        import ray

        if not worker.alive:
            return
        worker.alive = False
        worker.inflight.clear()
        self.deaths.append(worker.name)
        log.warning("%s died (%s); re-queuing its videos", worker.name, why)
        requeued, given_up = ray.get(self.actors["scheduler"].worker_lost.remote(worker.name))
        # A worker killed mid-download may still hold a download slot: free it or the run would stall.
        self.actors["limiter"].finish_all.remote(f"{worker.name}:")
        events = [ProgressEvent(v, EventKind.RETRYING, worker=worker.name,
                                error=f"{worker.name} died ({why}); re-queued") for v in requeued]
        if events:
            self._emit(*events)
        for video_id, reason in given_up:
            self._terminal(ProgressEvent(video_id, EventKind.FAILED, worker=worker.name, error=reason))
        assert self.plan is not None
        if not self.cancelling and self.started_workers < self.plan.workers * (1 + REPLACEMENTS_PER_WORKER):
            self._start_worker()

    # ---- dispatch ----------------------------------------------------------------------------------------------
    def _fill(self) -> None:
        """Give each ready worker a video when it has none, and a prefetch when the scheduler says it is worth it.

        One actor call per turn whatever the number of workers (a call per worker made dispatch O(workers) round
        trips per video); the scheduler decides who gets what from what each worker holds."""
        import ray

        if self.cancelling:
            return
        # Every live worker is offered: the scheduler decides how deep each one's queue is (prefetch by time,
        # capped by its max_held, which the actor's max_concurrency leaves room for).
        room = [w.name for w in self.workers.values() if w.ready and w.alive]
        if not room:
            return
        for assignment in ray.get(self.actors["scheduler"].dispatch.remote(room)):
            worker = self.workers[assignment.worker]
            video_id = assignment.item.video_id
            ref = worker.handle.process.remote(assignment.item, assignment.attempt, video_id in self.safer)
            worker.inflight[ref] = assignment

    def _on_result(self, worker: _Worker, ref: Any, assignment: Assignment) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        video_id = assignment.item.video_id
        scheduler = self.actors["scheduler"]
        try:
            transcript = ray.get(ref)
        except RayActorError as exc:
            # The actor process is gone (killed, OOM, node removed): nothing it held will ever answer.
            self._worker_died(worker, type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 — one video's failure is data, never the run's end
            worker.inflight.pop(ref, None)
            cause = exc.cause if isinstance(exc, RayTaskError) and getattr(exc, "cause", None) else exc
            if self.cancelling or isinstance(cause, Cancelled):
                ray.get(scheduler.mark_cancelled.remote(video_id, worker.name))
                self._terminal(ProgressEvent(video_id, EventKind.CANCELLED, worker=worker.name, error="cancelled",
                                             attempt=assignment.attempt))
                return
            reason = failure_reason(cause)
            retry = should_retry(cause, assignment.attempt, self.config.max_attempts)
            outcome = ray.get(scheduler.fail.remote(video_id, worker.name, reason, retry))
            if outcome.retry:
                if needs_safer_retry(cause):
                    self.safer.add(video_id)
                self._emit(ProgressEvent(video_id, EventKind.RETRYING, worker=worker.name, error=reason,
                                         attempt=assignment.attempt))
            else:
                self._terminal(ProgressEvent(video_id, EventKind.FAILED, worker=worker.name, error=reason,
                                             attempt=assignment.attempt))
            return
        worker.inflight.pop(ref, None)
        record = self.records[video_id]
        try:
            event = deliver(self.config, record.folder, assignment.item, transcript, assignment.attempt, worker.name)
        except VideoError as exc:
            ray.get(scheduler.fail.remote(video_id, worker.name, exc.reason, False))
            self._terminal(ProgressEvent(video_id, EventKind.FAILED, worker=worker.name, error=exc.reason,
                                         attempt=assignment.attempt))
            return
        ray.get(scheduler.complete.remote(video_id, worker.name))
        self._terminal(event)

    def _on_ready(self, worker: _Worker) -> None:
        import ray
        from ray.exceptions import RayActorError

        try:
            worker.info = ray.get(worker.ready_ref)
        except RayActorError as exc:
            # The model could not load (bad path, no memory): a replacement would fail the same way.
            worker.alive = False
            cause = getattr(exc, "cause", None) or exc
            raise RuntimeError(f"{worker.name} could not start: {failure_reason(cause)}") from exc
        worker.ready = True
        self.on_phase(None)  # videos flow from here: the table and cards say the rest
        log.info("%s ready: %s", worker.name, worker.info)

    def _cancel(self) -> None:
        import ray

        if self.cancelling:
            return
        self.cancelling = True
        dropped = ray.get(self.actors["scheduler"].cancel.remote())
        for worker in self.workers.values():
            if worker.alive:
                worker.handle.cancel.remote()
        events = [ProgressEvent(v, EventKind.CANCELLED, error="cancelled before it started") for v in dropped]
        self.reported.update(dropped)
        if events:
            self._emit(*events)

    def _snapshot(self, force: bool = False) -> None:
        import ray

        if self.on_snapshot is None:
            return
        now = time.monotonic()
        if force or now - self._last_snapshot >= POLL_S:
            self._last_snapshot = now
            self.on_snapshot(ray.get(self.actors["progress"].snapshot.remote()))

    # ---- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        import ray

        self.on_phase("starting Ray")
        info = cluster.connect(self.config.ray_address)
        self.plan = plan_workers(self.config, ray.cluster_resources())
        log.info("parallel run %s: %s; Ray dashboard: %s", self.run_id, self.plan.note, info.dashboard_url)
        self.actors = cluster.start_run_actors(
            self.run_id, videos=self._all_videos(), db_path=self.config.state_db.resolve(),
            max_attempts=self.config.max_attempts, backoff_s=RETRY_BACKOFF_S,
            max_concurrent=self.config.download.max_concurrent, min_interval_s=self.config.download.sleep_s,
            max_interval_s=self.config.download.max_sleep_s,
        )
        try:
            self._run_loop()
        except SystemExit as exc:
            # Ray answers a call made after its shutdown (or the loss of its cluster) with SystemExit; in this
            # driver thread that is a failed batch to report, not a reason to end the process.
            raise RuntimeError("Ray shut down under the run (the cluster was stopped or lost)") from exc
        finally:
            self._teardown()

    def _all_videos(self) -> list[Any]:
        """Every video of the run for the progress actor (done-before and unusable ones too, as the sequential
        screen shows them); only `records` are scheduled."""
        store = self.store or SessionStore(self.config.state_db)
        everything = store.videos(self.run_id)
        known = {v.video_id for v in everything}
        return everything + [r for r in self.records.values() if r.video_id not in known]

    def _run_loop(self) -> None:
        import ray

        items = []
        for record in self.records.values():
            item = record.to_item()
            if item.error:  # resolved as unusable: recorded, never scheduled
                self._terminal(ProgressEvent(item.video_id, EventKind.FAILED, error=item.error))
            else:
                items.append(item)
        scheduler = self.actors["scheduler"]
        ray.get(scheduler.add.remote(items))
        assert self.plan is not None
        starting = min(self.plan.workers, max(1, len(items)))
        self.on_phase(f"loading the model on {starting} worker{'' if starting == 1 else 's'}")
        for _ in range(starting):
            self._start_worker()
        while True:
            poll = ray.get(scheduler.poll.remote())
            if self.cancel_event.is_set() or poll["cancel_requested"]:
                self._cancel()
            self._fill()
            inflight = {ref: w for w in self.workers.values() if w.alive for ref in w.inflight}
            starting = {w.ready_ref: w for w in self.workers.values() if w.alive and not w.ready}
            if poll["finished"] and not inflight:
                break
            if self.cancelling and not inflight:
                break
            self._check_stalled(starting)
            # Wake early only for a backed-off video coming due. "Ready now" (0) means _fill just offered it and
            # no worker could take it: only a completion changes that, and ray.wait returns on those. Waking at
            # once here spun this loop (and the scheduler actor) at ~100 Hz, stealing a tenth of a 2-core machine
            # from the niced workers.
            ready_in = poll["ready_in"]
            timeout = min(POLL_S, max(0.01, ready_in)) if ready_in else POLL_S
            refs = list(inflight) + list(starting)
            if not refs:
                time.sleep(timeout)
                self._snapshot()
                continue
            done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            for ref in done:
                if ref in starting:
                    self._on_ready(starting[ref])
                elif ref in inflight and inflight[ref].alive:
                    worker = inflight[ref]
                    assignment = worker.inflight.get(ref)
                    if assignment is not None:
                        self._on_result(worker, ref, assignment)
            self._snapshot()
        self._finish_cancelled()

    def _check_stalled(self, starting: dict[Any, _Worker]) -> None:
        ready = [w for w in self.workers.values() if w.alive and w.ready]
        if ready:
            self._no_worker_since = None
            return
        if not starting:
            raise RuntimeError("no workers left: every worker died and the replacement budget is spent")
        now = time.monotonic()
        self._no_worker_since = self._no_worker_since or now
        if now - self._no_worker_since > WORKER_START_TIMEOUT_S:
            raise RuntimeError(
                f"no worker could start in {WORKER_START_TIMEOUT_S:.0f} s: the cluster lacks the resources asked "
                f"for ({self.plan.note if self.plan else ''})"
            )

    def _finish_cancelled(self) -> None:
        """After a cancel, every video not yet terminal ends as cancelled (one terminal event each)."""
        if not self.cancelling:
            return
        import ray

        states = ray.get(self.actors["scheduler"].states.remote())
        events = [ProgressEvent(v, EventKind.CANCELLED, error="cancelled")
                  for v, s in states.items() if s in ("pending", "assigned", "cancelled") and v not in self.reported]
        self.reported.update(e.video_id for e in events)
        if events:
            self._emit(*events)

    def _teardown(self) -> None:
        import ray

        if not ray.is_initialized():
            # Ray was shut down under us: any call now would auto-start a brand-new local Ray just to fail.
            return
        try:
            self.assignments = ray.get(self.actors["scheduler"].assignments.remote())
        except Exception:  # noqa: BLE001
            log.exception("could not read the assignments")
        try:
            # Every event sent so far is applied (and in SQLite) once this barrier returns.
            ray.get(self.actors["progress"].mark_finished.remote())
            self._snapshot(force=True)
        except Exception:  # noqa: BLE001 — teardown must free the actors whatever happened
            log.exception("could not read the final snapshot")
        alive = [w for w in self.workers.values() if w.alive and w.ready]
        try:
            ray.get([w.handle.close.remote() for w in alive], timeout=30)
        except Exception:  # noqa: BLE001 — a scratch folder left behind is not worth failing the run
            log.warning("some workers could not clean their scratch folders")
        for worker in self.workers.values():
            ray.kill(worker.handle, no_restart=True)
        for handle in self.actors.values():
            ray.kill(handle, no_restart=True)


def run_parallel(
    config: RunConfig,
    store: SessionStore,
    run_id: str,
    records: list[VideoRecord],
    *,
    cancel_event: threading.Event | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    on_phase: Callable[[str | None], None] | None = None,
) -> None:
    """Run `records` on Ray actors; every video ends with exactly one terminal event in the store.

    `store` is the caller's SessionStore for this OUT: the progress actor opens the same SQLite file
    (`config.state_db`) on this node and writes every event through, so when this returns the store is complete.
    """
    if not records:
        return
    ParallelRun(config, run_id, list(records), cancel_event=cancel_event, on_snapshot=on_snapshot, store=store,
                on_phase=on_phase).run()
