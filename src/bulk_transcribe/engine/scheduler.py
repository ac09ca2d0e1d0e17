"""Longest-first, pull-style dispatch of a run's videos to model-holding workers.

`Scheduler` is a plain class (unit-tested without Ray) that lives in the driver (engine/driver.py), whichever
executor runs the videos: the driver asks it for work whenever a worker has room and reports every outcome back.

Why longest-first and pull: with `m` workers that take the next longest video as soon as they are free (Graham's
LPT list scheduling) the batch ends within `4/3 - 1/(3m)` of the best possible makespan, and a slow or dead worker
never strands a fixed stripe of the queue.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable

from ..config import exponential_backoff
from ..models import SourceKind, VideoItem

DEFAULT_COST_S = 300.0
"""Cost given to a video whose duration nothing can tell us (and no other video's duration hints at)."""

BYTES_PER_AUDIO_S = 16_000
"""Rough bytes per second of media (128 kbit/s) used to guess a duration from a file's size."""

PREFETCH_AHEAD_S = 20.0
"""A busy worker takes more videos while those queued behind the one it transcribes hold less than this much
compute time (their cost / the learned speed). To hide a download, the audio queued ahead must last at least as
long as the next download takes. Chosen by replaying the overlap benchmark's clips (bench_overlap.replay: one
worker, one download at a time, download time ~ compute time) through this scheduler, 12 orders of 3 clip sets:
2 s reached the best span in 5, 10 s in 8, 20 s in 10 (and was within 0.025 of it in the other two), 40-80 s in
11; past 20 s each second ahead is a video committed early that a faster worker can no longer take. On a GPU the
same 20 s is minutes of audio, so MAX_HELD binds there."""

COLD_AHEAD = 4
"""Videos queued ahead of the running one before any completion has taught the scheduler a speed (compute time
cannot be told yet: the 1x prior is a guess, and so is an unknown video's cost). In the same replays 1 ahead (the
old rule) reached the best span in 3 of 12, 2 in 9, 4 in 10; 7 (everything max_held allows) in 12, but commits a
whole batch to the first workers before anything is known about the videos' lengths."""

MAX_HELD = 8
"""Most videos one worker holds at once (running + downloaded + downloading): bounds its disk and threads."""


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
    """A video handed to a worker; `attempt` counts from 1. `bundle` 0: the video goes alone; assignments with the
    same nonzero number (consecutive in one `dispatch` answer, same worker) are transcribed together in shared
    batches, each still completed, failed or lost on its own."""

    item: VideoItem
    attempt: int
    worker: str
    cost: float
    bundle: int = 0


@dataclass
class _Bundle:
    """A bundle in flight: what is left of it, and the work its finished members did (for the learned speed)."""

    left: int
    started: float | None = None
    known_cost: float = 0.0
    guessed_cost: float = 0.0


@dataclass
class _Mean:
    """Running mean of speed samples (cost units per wall second); `value` is `initial` until the first one."""

    initial: float = 1.0
    total: float = 0.0
    samples: int = 0

    def add(self, speed: float) -> None:
        self.total += speed
        self.samples += 1

    @property
    def value(self) -> float:
        return self.total / self.samples if self.samples else self.initial


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

    Worker names are opaque strings. A worker may hold more than one video (prefetch: the next videos' audio
    downloads while the current one transcribes). How many is decided by time, not count: a busy worker takes
    more while the videos queued behind the one it transcribes hold less than `prefetch_ahead_s` of compute
    (cost / learned speed), and never more than `max_held` videos. A prefetch is only granted to the worker
    projected to be free first, and never while a registered worker holds nothing, so committing a video early
    never changes the longest-first order it would get by pure pull. Register the planned workers before the first
    dispatch: a worker the scheduler does not know of cannot be waited for, and the first workers to ask would
    take the longest videos several at a time.

    Bundles (`bundle_max_s` > 0, for runs that decode in batches): when the longest ready video is short, the
    worker gets it with the next ready short ones (longest first, total cost <= bundle_max_s, at most
    bundle_max_items) to pool their chunks in shared batches. Only videos of known length on their first try
    go in a bundle: a guessed length may be hours, and a retry may need the safer unbatched decode.

    `early_first` (a parallel run's choice, engine/driver.new_scheduler): the first transcript comes early. While
    nothing is done yet, a worker that asks while another already runs a video takes the shortest ready one, once:
    people watching a parallel run see a transcript in seconds, and the makespan barely moves (one short video is
    done first instead of last). A sequential run's one worker starts with the longest either way.

    Speed is learned separately for videos of known length (audio seconds per second) and for guessed ones (the
    guess per second: all guesses of a run are the same median, so this learns seconds per unknown video).

    Every operation is O(log n) in the number of videos (heaps plus per-state counters); the per-worker checks
    are O(workers x max_held).
    """

    def __init__(
        self,
        *,
        max_attempts: int = 2,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        default_cost_s: float = DEFAULT_COST_S,
        prefetch_ahead_s: float = PREFETCH_AHEAD_S,
        max_held: int | None = None,
        bundle_max_s: float = 0.0,
        bundle_max_items: int = 8,
        cold_ahead: int = COLD_AHEAD,
        early_first: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_held` defaults to MAX_HELD, or room for two full bundles when bundles are larger. A fixed depth
        (k videos ahead, whatever their length) is `prefetch_ahead_s=inf, max_held=k + 1, cold_ahead=k`."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if bundle_max_s > 0 and bundle_max_items < 1:
            raise ValueError("bundle_max_items must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.default_cost_s = default_cost_s
        self.cold_ahead = cold_ahead
        self.prefetch_ahead_s = prefetch_ahead_s
        two_bundles = 2 * bundle_max_items if bundle_max_s > 0 else 0  # one running, one downloading
        self.max_held = max_held if max_held is not None else max(MAX_HELD, two_bundles)
        if self.max_held < 1:
            raise ValueError("max_held must be at least 1")
        self.bundle_max_s = bundle_max_s
        self.bundle_max_items = bundle_max_items
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
        self._handing_over: set[str] = set()
        self._first_short_given = not early_first  # see `early_first` above
        self._known_speed = _Mean()  # audio seconds per wall second, from videos of known length
        self._guess_speed = _Mean()  # guessed cost per wall second, from videos of unknown length
        self._bundle_ids = itertools.count(1)
        self._bundle_of: dict[str, int] = {}  # held video id -> its bundle (absent: alone)
        self._bundles: dict[int, _Bundle] = {}
        self.cancelled = False

    # ---- intake ----------------------------------------------------------------------------------------------
    def add(self, items: Iterable[VideoItem], *, probe: Callable[[Path], float] | None = None) -> None:
        """Queue videos. Unknown durations are probed first (local files); the rest get the median known cost."""
        fresh: list[tuple[VideoItem, float | None]] = []
        for item in items:
            if item.video_id in self.tasks:
                continue  # a video is scheduled once per run, however often it was listed
            fresh.append((item, estimate_cost(item, probe)))
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

    def handing_over(self, worker: str) -> None:
        """`worker` is about to hand over to others (engine/handover.py): it takes no video ahead of the one it runs
        (what it held ahead would wait for it instead of going to the workers that take over), and it takes the
        shortest ready video rather than the longest (it is done with it soon, so the first transcript comes early
        and the workers that take over never wait at the end on a long video it holds)."""
        self._handing_over.add(worker)

    def retire(self, worker: str) -> None:
        """A worker left on purpose, holding nothing: out of the rotation (an empty one would hold every prefetch
        back). Anything it still held would go back to the queue, as for a death but with no suspects."""
        held = self._held.get(worker)
        if held:
            self.worker_lost(worker, running=())
        self._held.pop(worker, None)
        self._busy_since.pop(worker, None)

    def dispatch(self, workers: Iterable[str]) -> list[Assignment]:
        """Fill `workers` (those that may take more) in one call: first a video (or bundle) for each one holding
        none, then prefetches, each to the worker projected to be free first, while that is one of `workers` and
        wants more (`prefetch_ahead_s`, `max_held`). A driver may offer every live worker: the scheduler decides
        how deep each one's queue is.

        This is what one driver turn needs, so it costs one actor call however many workers there are."""
        ready = list(dict.fromkeys(workers))
        self.register(*ready)
        out: list[Assignment] = []
        if self.cancelled:
            return out
        for worker in ready:
            if not self._held[worker]:
                unit = self._take_unit(worker)
                if not unit:
                    return out  # nothing ready: no prefetch either
                out.extend(unit)
        room = [w for w in ready if self._wants_more(w)]
        while room and self._has_ready():
            first = min(room, key=self._projected_free)
            if not self._may_prefetch(first):
                break  # the first free is a worker that cannot take more (full, or not asking): it pulls later
            unit = self._take_unit(first)
            if not unit:
                break
            out.extend(unit)
            if not self._wants_more(first):
                room.remove(first)
        return out

    def _may_prefetch(self, worker: str) -> bool:
        """More work for a busy worker: only when every registered worker holds some (an idle one would take it
        now), this worker wants more, and it should run out of work first (so the video starts as early as by
        pull)."""
        if not self._wants_more(worker):
            return False
        if any(not held for held in self._held.values()):
            return False
        return self._first_free(worker)

    def _wants_more(self, worker: str) -> bool:
        """Room under max_held, and less than prefetch_ahead_s of compute queued behind the running unit."""
        held = self._held.get(worker, [])
        if len(held) >= self.max_held or (held and worker in self._handing_over):
            return False
        if not held:
            return True
        if not (self._known_speed.samples or self._guess_speed.samples):
            # Nothing timed yet: compute time is unknown (the 1x prior is a guess, and so is an unknown video's
            # cost), so the depth goes by count until the first completion teaches the speed.
            return len(held) - self._head_size(held) < self.cold_ahead
        return self._ahead_s(held) < self.prefetch_ahead_s

    def _ahead_s(self, held: list[str]) -> float:
        """Compute seconds queued behind the unit (video or bundle) a worker is transcribing."""
        return sum(self._compute_s(self.tasks[v]) for v in held[self._head_size(held):])

    def _head_size(self, held: list[str]) -> int:
        """How many of `held` the worker transcribes now: its first video, or all of its first bundle."""
        if not held:
            return 0
        bundle = self._bundle_of.get(held[0], 0)
        size = 1
        while bundle and size < len(held) and self._bundle_of.get(held[size], 0) == bundle:
            size += 1
        return size

    def _compute_s(self, task: Task) -> float:
        """Wall seconds `task` should take, from the speed learned for videos like it (known or guessed length)."""
        mine, other = (self._known_speed, self._guess_speed) if task.cost_known else (self._guess_speed,
                                                                                       self._known_speed)
        speed = mine.value if mine.samples or not other.samples else other.value
        return task.cost / speed

    def _take_unit(self, worker: str) -> list[Assignment]:
        """The longest ready video for `worker`, with the next short ones when it is short enough to bundle."""
        first = self._take(worker)
        if first is None:
            return []
        room = min(self.bundle_max_items, self.max_held - len(self._held[worker]) + 1)
        if room < 2 or not self._bundles_with(self.tasks[first.item.video_id], first.attempt):
            return [first]
        unit, total = [first], first.cost
        while len(unit) < room and self._has_ready():
            task = self.tasks[self._ready[0][2]]
            if not self._bundles_with(task, task.attempts + 1) or total + task.cost > self.bundle_max_s:
                break  # stop at the first that cannot join: skipping it would break longest-first
            taken = self._take(worker)
            assert taken is not None
            unit.append(taken)
            total += taken.cost
        if len(unit) == 1:
            return unit
        number = next(self._bundle_ids)
        self._bundles[number] = _Bundle(left=len(unit))
        for a in unit:
            self._bundle_of[a.item.video_id] = number
        return [replace(a, bundle=number) for a in unit]

    def _bundles_with(self, task: Task, attempt: int) -> bool:
        """May go in a bundle: bundling is on, the video is short by a length we know, and this is its first
        attempt on a worker that never died under it (a retry goes alone: it may need the safer unbatched
        decode; a video a worker died with must not take a whole bundle down with it again)."""
        return (self.bundle_max_s > 0 and task.cost_known and task.cost < self.bundle_max_s
                and attempt == 1 and task.losses == 0)

    def _has_ready(self) -> bool:
        self._promote_delayed()
        while self._ready and self.tasks[self._ready[0][2]].state != TaskState.PENDING:
            heapq.heappop(self._ready)  # stale entry
        return bool(self._ready)

    def _pop_shortest(self) -> str:
        """The ready video of least cost (first queued among equals), out of the heap: a linear pass, taken only by
        a worker handing over, for the few videos it does before it leaves, and once for the run's first transcript."""
        live = [k for k, entry in enumerate(self._ready) if self.tasks[entry[2]].state == TaskState.PENDING]
        k = max(live, key=lambda i: (self._ready[i][0], -self._ready[i][1]))
        entry = self._ready[k]
        last = self._ready.pop()
        if k < len(self._ready):
            self._ready[k] = last
            heapq.heapify(self._ready)
        return entry[2]

    def _take(self, worker: str) -> Assignment | None:
        """Hand `worker` the longest ready video (the shortest to a worker handing over, or for an early first
        transcript)."""
        if not self._has_ready():
            return None
        if worker in self._handing_over or self._early_first(worker):
            video_id = self._pop_shortest()
        else:
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

    def _early_first(self, worker: str) -> bool:
        """Whether `worker` takes the shortest ready video for the run's first transcript (once, while nothing is
        done and another worker already runs something)."""
        if self._first_short_given or self._counts[TaskState.DONE]:
            return False
        if not any(held for other, held in self._held.items() if other != worker):
            return False
        self._first_short_given = True
        return True

    def _projected_free(self, worker: str) -> float:
        """When `worker` should run out of work, from the costs it holds and the speed seen so far."""
        now = self.clock()
        held = self._held.get(worker, [])
        if not held:
            return now
        work = sum(self._compute_s(self.tasks[v]) for v in held)
        return max(now, self._busy_since.get(worker, now) + work)

    def _first_free(self, worker: str) -> bool:
        mine = self._projected_free(worker)
        return all(mine <= self._projected_free(other) for other in self._held if other != worker)

    def _release(self, video_id: str, worker: str) -> Task:
        task = self.tasks[video_id]
        held = self._held.get(worker, [])
        if video_id in held:
            in_head = held.index(video_id) < self._head_size(held)
            held.remove(video_id)
            bundle = self._leave_bundle(video_id)
            if in_head and not (bundle and held and self._bundle_of.get(held[0]) == bundle):
                self._busy_since[worker] = self.clock()  # the running unit ended: the next one starts now
        return task

    def _leave_bundle(self, video_id: str, *, learn: bool = True) -> int:
        """Drop `video_id` from its bundle (0: it had none); the bundle's last member to leave teaches the speed
        with the whole bundle's finished work over its wall time (not when its worker died under it)."""
        number = self._bundle_of.pop(video_id, 0)
        bundle = self._bundles.get(number)
        if bundle is None:
            return number
        bundle.left -= 1
        if bundle.left <= 0:
            del self._bundles[number]
            if learn and bundle.started is not None:
                self._learn(bundle.known_cost, bundle.guessed_cost, self.clock() - bundle.started)
        return number

    def _learn(self, known_cost: float, guessed_cost: float, elapsed: float) -> None:
        """One speed sample. Work mixing known and guessed lengths teaches neither (its time cannot be split)."""
        if elapsed <= 0:
            return
        if known_cost > 0 and not guessed_cost:
            self._known_speed.add(known_cost / elapsed)
        elif guessed_cost > 0 and not known_cost:
            self._guess_speed.add(guessed_cost / elapsed)

    # ---- outcomes --------------------------------------------------------------------------------------------
    def first_unit(self, worker: str) -> list[str]:
        """The video (or bundle) `worker` took first of what it holds: the one it is presumably running."""
        held = self._held.get(worker, [])
        return held[: self._head_size(held)]

    def holds(self, video_id: str, worker: str) -> bool:
        """True while `worker` holds `video_id` (its answer is the one that counts)."""
        task = self.tasks.get(video_id)
        return task is not None and task.state == TaskState.ASSIGNED and task.worker == worker

    def complete(self, video_id: str, worker: str) -> None:
        task = self.tasks[video_id]
        if task.state != TaskState.ASSIGNED or task.worker != worker:
            return  # a late answer for a video already re-queued elsewhere: the first finisher owns it
        started = max(task.assigned_at, self._busy_since.get(worker, task.assigned_at))
        known, guessed = (task.cost, 0.0) if task.cost_known else (0.0, task.cost)
        bundle = self._bundles.get(self._bundle_of.get(video_id, 0))
        if bundle is not None:  # learnt once, when the whole bundle is through (its members end together)
            bundle.started = started if bundle.started is None else min(bundle.started, started)
            bundle.known_cost += known
            bundle.guessed_cost += guessed
        self._release(video_id, worker)
        self._set_state(task, TaskState.DONE)
        if bundle is None:
            self._learn(known, guessed, self.clock() - started)

    def fail(self, video_id: str, worker: str, reason: str, *, retryable: bool = True) -> FailureDecision | None:
        """Record a failed attempt; retry it (later, with back-off) while attempts remain and it may help. None for
        a late answer from a worker that no longer holds the video (it was re-queued elsewhere): nothing changes."""
        task = self.tasks[video_id]
        if task.state != TaskState.ASSIGNED or task.worker != worker:
            return None  # as in complete(): the worker that holds it now owns its outcome
        self._release(video_id, worker)
        task.error = reason
        if retryable and not self.cancelled and task.attempts < self.max_attempts:
            delay = exponential_backoff(self.backoff_s, task.attempts, self.max_backoff_s)
            self._set_state(task, TaskState.PENDING)
            task.worker = None
            task.not_before = self.clock() + delay
            heapq.heappush(self._delayed, (task.not_before, task.seq, video_id))
            return FailureDecision(video_id, True, task.attempts, delay, reason)
        self._set_state(task, TaskState.FAILED)
        return FailureDecision(video_id, False, task.attempts, 0.0, reason)

    def worker_lost(self, worker: str, *, running: Iterable[str] | None = None,
                    max_losses: int | None = None) -> list[str]:
        """Take a dead worker out of rotation and re-queue what it held.

        A death is not the video's fault as a rule (node removed, OOM elsewhere), so it does not use up an attempt.
        Only the videos it was running (`running`: those it was working on, as the driver's tracker saw them; by
        default its first unit, the video or bundle it took first) are suspects: one that was running on more than
        `max_losses` (default: max_attempts) dead workers is failed, so it cannot kill them all. What it had only
        queued or was downloading goes back untouched. Returns the re-queued ids; `lost_failures()` lists the ones
        given up.
        """
        limit = max_losses if max_losses is not None else self.max_attempts
        held = self._held.pop(worker, [])
        suspects = set(running) if running is not None else set(held[: self._head_size(held)])
        requeued = []
        for video_id in list(held):
            self._leave_bundle(video_id, learn=False)
            task = self.tasks[video_id]
            task.attempts -= 1
            if video_id in suspects:
                task.losses += 1
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

    def mark_cancelled(self, video_id: str, worker: str | None = None) -> bool:
        """A video held by `worker` (or still waiting) ends cancelled; False for one that already ended or is held
        by another worker (a late answer), which keeps its outcome."""
        task = self.tasks[video_id]
        if task.state not in (TaskState.PENDING, TaskState.ASSIGNED) or (
                worker is not None and task.state == TaskState.ASSIGNED and task.worker != worker):
            return False
        if worker is not None:
            self._release(video_id, worker)
        self._set_state(task, TaskState.CANCELLED)
        return True

    def lost_failures(self) -> list[str]:
        """Ids given up because they kept killing workers, in the order it happened."""
        return list(self._lost_failures)

    # ---- views -----------------------------------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        return self._counts[TaskState.PENDING]

    @property
    def workers(self) -> list[str]:
        """The workers in the rotation (registered, not lost or retired)."""
        return list(self._held)

    @property
    def idle_workers(self) -> int:
        """Workers in the rotation holding nothing (ones still loading their model included)."""
        return sum(1 for held in self._held.values() if not held)

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

    def assignments(self) -> dict[str, list[str]]:
        """video_id -> every worker it was handed to, in order (the last one is who ran it to the end)."""
        return {v: list(t.workers) for v, t in self.tasks.items()}

    def states(self) -> dict[str, str]:
        return {v: t.state.value for v, t in self.tasks.items()}
