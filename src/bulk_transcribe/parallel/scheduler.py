"""Longest-first, pull-style dispatch of a run's videos to model-holding workers.

`Scheduler` is a plain class (unit-tested without Ray); `cluster.py` wraps it with `ray.remote` as the run's named
scheduler actor, so another process can read its state or cancel the run. The driver loop in `runner.py` asks it
for work whenever a worker has room and reports every outcome back.

Why longest-first and pull: with `m` workers that take the next longest video as soon as they are free (Graham's
LPT list scheduling) the batch ends within `4/3 - 1/(3m)` of the best possible makespan, and a slow or dead worker
never strands a fixed stripe of the queue.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable

from ..models import SourceKind, VideoItem

DEFAULT_COST_S = 300.0
"""Cost given to a video whose duration nothing can tell us (and no other video's duration hints at)."""

BYTES_PER_AUDIO_S = 16_000
"""Rough bytes per second of media (128 kbit/s) used to guess a duration from a file's size."""


class TaskState(str, Enum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Task:
    """The scheduler's view of one video. `workers` records every worker that ran (or was handed) it."""

    item: VideoItem
    cost: float
    cost_known: bool
    seq: int
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    losses: int = 0
    worker: str | None = None
    workers: list[str] = field(default_factory=list)
    not_before: float = 0.0
    assigned_at: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A video handed to a worker; `attempt` counts from 1."""

    item: VideoItem
    attempt: int
    worker: str
    cost: float


@dataclass(frozen=True)
class FailureDecision:
    """What the scheduler decided about a failed attempt: try again after `delay_s`, or give up."""

    video_id: str
    retry: bool
    attempt: int
    delay_s: float
    reason: str


def estimate_cost(item: VideoItem, probe: Callable[[Path], float] | None = None) -> float | None:
    """Seconds of audio in `item`, or None when nothing can tell before downloading it.

    Local files are probed (cheap: PyAV reads the container header); when probing fails the size gives a guess.
    """
    if item.duration_s and item.duration_s > 0:
        return float(item.duration_s)
    if item.kind == SourceKind.FILE:
        path = Path(item.source)
        if probe is not None:
            try:
                seconds = probe(path)
                if seconds and seconds > 0:
                    return float(seconds)
            except Exception:  # noqa: BLE001 — a bad file fails later with a clear reason; here it is only a cost
                pass
        try:
            return max(1.0, path.stat().st_size / BYTES_PER_AUDIO_S)
        except OSError:
            return None
    return None


class Scheduler:
    """Hands out videos longest-first to whichever worker asks; retries, re-queues and cancels.

    Worker names are opaque strings. A worker may hold more than one video (`prefetch=True`: the next video's
    audio downloads while the current one transcribes); a prefetch is only granted to the worker projected to be
    free first, and never while a registered worker holds nothing, so committing a video early never changes the
    longest-first order it would get by pure pull. Register the planned workers before the first dispatch: a
    worker the scheduler does not know of cannot be waited for, and the first workers to ask would take the
    longest videos two at a time.

    Every operation is O(log n) in the number of videos (heaps plus per-state counters); the per-worker checks
    are O(workers).
    """

    def __init__(
        self,
        *,
        max_attempts: int = 2,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        default_cost_s: float = DEFAULT_COST_S,
        prefetch_depth: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.default_cost_s = default_cost_s
        self.prefetch_depth = prefetch_depth
        self.clock = clock
        self.tasks: dict[str, Task] = {}
        # Tasks per state, kept as states change: the views below (read on every dispatch) must not scan tasks.
        self._counts: dict[TaskState, int] = {state: 0 for state in TaskState}
        self._lost_failures: list[str] = []  # ids given up because they kept killing workers, in order
        self._ready: list[tuple[float, int, str]] = []  # heap of (-cost, seq, video_id)
        self._delayed: list[tuple[float, int, str]] = []  # heap of (not_before, seq, video_id)
        self._seq = itertools.count()
        self._held: dict[str, list[str]] = {}  # worker -> video ids it holds, oldest first
        self._busy_since: dict[str, float] = {}
        self._speed = 1.0  # cost units per second of wall time, learned from completions
        self._speed_samples = 0
        self.cancelled = False

    # ---- intake ----------------------------------------------------------------------------------------------
    def add(self, items: Iterable[VideoItem], *, probe: Callable[[Path], float] | None = None,
            costs: dict[str, float] | None = None) -> None:
        """Queue videos. Unknown durations are probed first (local files); the rest get the median known cost."""
        fresh: list[tuple[VideoItem, float | None]] = []
        for item in items:
            if item.video_id in self.tasks:
                continue  # a video is scheduled once per run, however often it was listed
            cost = (costs or {}).get(item.video_id)
            fresh.append((item, cost if cost is not None else estimate_cost(item, probe)))
        fallback = self.default_cost_s
        if any(c is None for _, c in fresh):  # only then is the median worth a pass over every known cost
            known = [c for _, c in fresh if c is not None] + [t.cost for t in self.tasks.values() if t.cost_known]
            fallback = statistics.median(known) if known else self.default_cost_s
        for item, cost in fresh:
            task = Task(item, cost if cost is not None else fallback, cost is not None, next(self._seq))
            self._counts[task.state] += 1
            self.tasks[item.video_id] = task
            self._push_ready(task)

    def _set_state(self, task: Task, state: TaskState) -> None:
        self._counts[task.state] -= 1
        self._counts[state] += 1
        task.state = state

    def _push_ready(self, task: Task) -> None:
        self._set_state(task, TaskState.PENDING)
        task.worker = None
        heapq.heappush(self._ready, (-task.cost, task.seq, task.item.video_id))

    def _promote_delayed(self) -> None:
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, video_id = heapq.heappop(self._delayed)
            task = self.tasks[video_id]
            if task.state == TaskState.PENDING:
                heapq.heappush(self._ready, (-task.cost, task.seq, video_id))

    # ---- dispatch --------------------------------------------------------------------------------------------
    def register(self, *workers: str) -> None:
        """Workers joined the rotation (planned or starting: a prefetch now waits until each holds a video)."""
        for worker in workers:
            self._held.setdefault(worker, [])

    def next_for(self, worker: str, *, prefetch: bool = False) -> Assignment | None:
        """The longest ready video for `worker`, or None (nothing ready, cancelled, or prefetch not worth it)."""
        self.register(worker)
        if self.cancelled:
            return None
        if self._held[worker]:
            if not prefetch or not self._may_prefetch(worker):
                return None
        return self._take(worker)

    def dispatch(self, workers: Iterable[str]) -> list[Assignment]:
        """Fill `workers` (those ready for more) in one call: first a video for each one holding none, then
        prefetches, each to the worker projected to be free first, while that is one of `workers`.

        This is what one driver turn needs, so it costs one actor call however many workers there are."""
        ready = list(dict.fromkeys(workers))
        self.register(*ready)
        out: list[Assignment] = []
        if self.cancelled:
            return out
        for worker in ready:
            if not self._held[worker]:
                assignment = self._take(worker)
                if assignment is None:
                    return out  # nothing ready: no prefetch either
                out.append(assignment)
        room = [w for w in ready if len(self._held[w]) <= self.prefetch_depth]
        while room and self._has_ready():
            first = min(room, key=self._projected_free)
            if not self._may_prefetch(first):
                break  # the first free is a worker that cannot take more (full, or not asking): it pulls later
            assignment = self._take(first)
            if assignment is None:
                break
            out.append(assignment)
            if len(self._held[first]) > self.prefetch_depth:
                room.remove(first)
        return out

    def _may_prefetch(self, worker: str) -> bool:
        """A second video for a busy worker: only when every registered worker holds one (an idle one would
        take it now) and this worker should run out of work first (so the video starts as early as by pull)."""
        if len(self._held[worker]) > self.prefetch_depth:
            return False
        if any(not held for held in self._held.values()):
            return False
        return self._first_free(worker)

    def _has_ready(self) -> bool:
        self._promote_delayed()
        while self._ready and self.tasks[self._ready[0][2]].state != TaskState.PENDING:
            heapq.heappop(self._ready)  # stale entry
        return bool(self._ready)

    def _take(self, worker: str) -> Assignment | None:
        """Hand `worker` the longest ready video."""
        if not self._has_ready():
            return None
        _, _, video_id = heapq.heappop(self._ready)
        task = self.tasks[video_id]
        now = self.clock()
        self._set_state(task, TaskState.ASSIGNED)
        task.worker = worker
        task.workers.append(worker)
        task.attempts += 1
        task.assigned_at = now
        if not self._held[worker]:
            self._busy_since[worker] = now
        self._held[worker].append(video_id)
        return Assignment(task.item, task.attempts, worker, task.cost)

    def _projected_free(self, worker: str) -> float:
        """When `worker` should run out of work, from the costs it holds and the speed seen so far."""
        now = self.clock()
        held = self._held.get(worker, [])
        if not held:
            return now
        work = sum(self.tasks[v].cost for v in held) / self._speed
        return max(now, self._busy_since.get(worker, now) + work)

    def _first_free(self, worker: str) -> bool:
        mine = self._projected_free(worker)
        return all(mine <= self._projected_free(other) for other in self._held if other != worker)

    def _release(self, video_id: str, worker: str) -> Task:
        task = self.tasks[video_id]
        held = self._held.get(worker, [])
        if video_id in held:
            was_first = held[0] == video_id
            held.remove(video_id)
            if was_first:
                self._busy_since[worker] = self.clock()
        return task

    # ---- outcomes --------------------------------------------------------------------------------------------
    def complete(self, video_id: str, worker: str) -> None:
        task = self.tasks[video_id]
        if task.state != TaskState.ASSIGNED or task.worker != worker:
            return  # a late answer for a video already re-queued elsewhere: the first finisher owns it
        started = max(task.assigned_at, self._busy_since.get(worker, task.assigned_at))
        elapsed = self.clock() - started
        self._release(video_id, worker)
        self._set_state(task, TaskState.DONE)
        if elapsed > 0 and task.cost_known:
            speed = task.cost / elapsed
            self._speed_samples += 1
            self._speed += (speed - self._speed) / self._speed_samples

    def fail(self, video_id: str, worker: str, reason: str, *, retryable: bool = True) -> FailureDecision:
        """Record a failed attempt; retry it (later, with back-off) while attempts remain and it may help."""
        task = self.tasks[video_id]
        self._release(video_id, worker)
        task.error = reason
        if retryable and not self.cancelled and task.attempts < self.max_attempts:
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (task.attempts - 1))
            self._set_state(task, TaskState.PENDING)
            task.worker = None
            task.not_before = self.clock() + delay
            heapq.heappush(self._delayed, (task.not_before, task.seq, video_id))
            return FailureDecision(video_id, True, task.attempts, delay, reason)
        self._set_state(task, TaskState.FAILED)
        return FailureDecision(video_id, False, task.attempts, 0.0, reason)

    def worker_lost(self, worker: str, *, max_losses: int | None = None) -> list[str]:
        """Take a dead worker out of rotation and re-queue what it held.

        A death is not the video's fault as a rule (node removed, OOM elsewhere), so it does not use up an attempt;
        but a video that kills `max_losses` workers (default: max_attempts) is failed so it cannot kill them all.
        Returns the re-queued ids; `lost_failures()` lists the ones given up.
        """
        limit = max_losses if max_losses is not None else self.max_attempts
        requeued = []
        for video_id in list(self._held.pop(worker, [])):
            task = self.tasks[video_id]
            task.losses += 1
            task.attempts -= 1
            if task.losses >= limit + 1 or self.cancelled:
                self._set_state(task, TaskState.FAILED if not self.cancelled else TaskState.CANCELLED)
                task.error = f"worker died {task.losses} times while running it" if not self.cancelled else "cancelled"
                if not self.cancelled:
                    self._lost_failures.append(video_id)
                continue
            self._push_ready(task)
            requeued.append(video_id)
        self._busy_since.pop(worker, None)
        return requeued

    def cancel(self) -> list[str]:
        """Stop handing out work; returns the ids that never started (now cancelled). Held ones end on their own."""
        self.cancelled = True
        dropped = []
        for task in self.tasks.values():
            if task.state == TaskState.PENDING:
                self._set_state(task, TaskState.CANCELLED)
                dropped.append(task.item.video_id)
        self._ready.clear()
        self._delayed.clear()
        return dropped

    def mark_cancelled(self, video_id: str, worker: str | None = None) -> None:
        if worker is not None:
            self._release(video_id, worker)
        self._set_state(self.tasks[video_id], TaskState.CANCELLED)

    def lost_failures(self) -> list[str]:
        """Ids given up because they kept killing workers, in the order it happened."""
        return list(self._lost_failures)

    # ---- views -----------------------------------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        return self._counts[TaskState.PENDING]

    @property
    def in_flight(self) -> int:
        return self._counts[TaskState.ASSIGNED]

    @property
    def finished(self) -> bool:
        """True when every video reached done, failed or cancelled."""
        return self._counts[TaskState.PENDING] == 0 and self._counts[TaskState.ASSIGNED] == 0

    def ready_in(self) -> float | None:
        """Seconds until a backed-off video becomes ready (0 when one is ready now, None when none waits)."""
        if self._has_ready():
            return 0.0
        while self._delayed and self.tasks[self._delayed[0][2]].state != TaskState.PENDING:
            heapq.heappop(self._delayed)  # stale entry
        return max(0.0, self._delayed[0][0] - self.clock()) if self._delayed else None

    def held_by(self, worker: str) -> list[str]:
        return list(self._held.get(worker, []))

    def assignments(self) -> dict[str, list[str]]:
        """video_id -> every worker it was handed to, in order (the last one is who ran it to the end)."""
        return {v: list(t.workers) for v, t in self.tasks.items()}

    def states(self) -> dict[str, str]:
        return {v: t.state.value for v, t in self.tasks.items()}

    def summary(self) -> dict[str, object]:
        """Small and cheap: what the dashboard or `status` prints about the scheduler."""
        counts = {state.value: n for state, n in self._counts.items() if n}
        return {
            "queue_length": self.queue_length,
            "in_flight": self.in_flight,
            "counts": counts,
            "workers": {w: list(h) for w, h in self._held.items()},
            "cancelled": self.cancelled,
            "speed_x": self._speed if self._speed_samples else None,
        }


class SchedulerActor:
    """The run's named scheduler actor body (`cluster.py` wraps it with ray.remote): the Scheduler plus a cancel
    request any process may send, and the queue-length metric for the Ray dashboard."""

    def __init__(self, run_id: str, *, max_attempts: int = 2, backoff_s: float = 1.0) -> None:
        from .metrics import RunMetrics

        self.run_id = run_id
        self.scheduler = Scheduler(max_attempts=max_attempts, backoff_s=backoff_s)
        self.metrics = RunMetrics(run_id)
        self.cancel_requested = False

    def _gauge(self) -> None:
        self.metrics.queue_length(self.scheduler.queue_length)

    def add(self, items: list[VideoItem], costs: dict[str, float] | None = None) -> int:
        from ..sources import probe_media  # this actor runs on the driver's node, where local inputs are

        self.scheduler.add(items, probe=probe_media, costs=costs)
        self._gauge()
        return len(self.scheduler.tasks)

    def register(self, workers: list[str]) -> None:
        """The run's planned workers (and each replacement as it starts), before they ask for work."""
        self.scheduler.register(*workers)

    def next_for(self, worker: str, prefetch: bool = False) -> Assignment | None:
        assignment = self.scheduler.next_for(worker, prefetch=prefetch)
        if assignment is not None:
            self._gauge()
        return assignment

    def dispatch(self, workers: list[str]) -> list[Assignment]:
        """Every assignment for the workers ready for more, in one call (see Scheduler.dispatch)."""
        assignments = self.scheduler.dispatch(workers)
        if assignments:
            self._gauge()
        return assignments

    def complete(self, video_id: str, worker: str) -> None:
        self.scheduler.complete(video_id, worker)

    def fail(self, video_id: str, worker: str, reason: str, retryable: bool = True) -> FailureDecision:
        return self.scheduler.fail(video_id, worker, reason, retryable=retryable)

    def worker_lost(self, worker: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Re-queued ids, and (id, reason) of the videos given up because they kept killing workers."""
        before = len(self.scheduler.lost_failures())
        requeued = self.scheduler.worker_lost(worker)
        given_up = [(v, self.scheduler.tasks[v].error or "worker died")
                    for v in self.scheduler.lost_failures()[before:]]
        self._gauge()
        return requeued, given_up

    def request_cancel(self) -> list[str]:
        """Anyone may ask (the dashboard, a second CLI); the driver sees it on its next poll."""
        self.cancel_requested = True
        return self.cancel()

    def cancel(self) -> list[str]:
        dropped = self.scheduler.cancel()
        self._gauge()
        return dropped

    def mark_cancelled(self, video_id: str, worker: str | None = None) -> None:
        self.scheduler.mark_cancelled(video_id, worker)

    def poll(self) -> dict[str, object]:
        """What the driver loop needs each turn, in one call (O(1): it runs after every completion)."""
        return {
            "cancel_requested": self.cancel_requested,
            "finished": self.scheduler.finished,
            "ready_in": self.scheduler.ready_in(),
            "queue_length": self.scheduler.queue_length,
        }

    def assignments(self) -> dict[str, list[str]]:
        return self.scheduler.assignments()

    def states(self) -> dict[str, str]:
        return self.scheduler.states()

    def summary(self) -> dict[str, object]:
        return self.scheduler.summary()
