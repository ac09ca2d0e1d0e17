"""The scheduler as a plain class: a fake clock and fake costs, no Ray, no model."""

from __future__ import annotations

import heapq
import itertools
import random

import av
import pytest

from bulk_transcribe.models import SourceKind, VideoItem
from bulk_transcribe.parallel.scheduler import Scheduler, TaskState, estimate_cost


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def items_with(costs) -> list[VideoItem]:
    return [VideoItem(f"http://127.0.0.1/v{i}.mp3", SourceKind.URL, "x", duration_s=c) for i, c in enumerate(costs)]


def simulate(costs, m, *, prefetch=False):
    """Run the scheduler against m serial workers whose video takes exactly its cost; return (makespan, order)."""
    clock = FakeClock()
    sched = Scheduler(clock=clock)
    sched.add(items_with(costs))
    workers = [f"w{i}" for i in range(m)]
    queue = {w: [] for w in workers}  # held assignments, the first one is running
    running_until = {w: None for w in workers}
    events = []  # (finish time, worker)
    order = []

    def start_next(w):
        if queue[w] and running_until[w] is None:
            running_until[w] = clock.t + queue[w][0].cost
            heapq.heappush(events, (running_until[w], w))

    def pull():
        for w in workers:
            if not queue[w]:
                a = sched.next_for(w)
                if a:
                    queue[w].append(a)
                    order.append(a.cost)
            start_next(w)
        if prefetch:
            for w in workers:
                if len(queue[w]) == 1:
                    a = sched.next_for(w, prefetch=True)
                    if a:
                        queue[w].append(a)
                        order.append(a.cost)

    pull()
    makespan = 0.0
    while events:
        t, w = heapq.heappop(events)
        clock.t = t
        makespan = t
        done = queue[w].pop(0)
        running_until[w] = None
        sched.complete(done.item.video_id, w)
        start_next(w)
        pull()
    assert sched.finished
    assert all(t.state == TaskState.DONE for t in sched.tasks.values())
    return makespan, order


def optimum(costs, m) -> float:
    best = float("inf")
    for assign in itertools.product(range(m), repeat=len(costs)):
        if assign[0] != 0:  # symmetry: the first job on machine 0
            continue
        loads = [0.0] * m
        for c, k in zip(costs, assign):
            loads[k] += c
        best = min(best, max(loads))
    return best


def test_dispatch_is_longest_first_and_pull_based():
    clock = FakeClock()
    sched = Scheduler(clock=clock)
    sched.add(items_with([30, 120, 5, 60]))
    a = sched.next_for("a")
    b = sched.next_for("b")
    assert (a.cost, b.cost) == (120, 60)
    assert sched.next_for("a") is None, "a busy worker gets nothing more without prefetch"
    # b finishes first: b pulls the next longest (no static striping).
    clock.t = 60
    sched.complete(b.item.video_id, "b")
    assert sched.next_for("b").cost == 30
    assert sched.assignments()[a.item.video_id] == ["a"]


@pytest.mark.parametrize("seed", range(40))
def test_makespan_within_graham_bound_of_optimum(seed):
    rng = random.Random(seed)
    m = rng.choice([2, 3])
    costs = [round(rng.uniform(1, 100), 1) for _ in range(rng.randint(m + 1, 8))]
    makespan, order = simulate(costs, m)
    assert order == sorted(costs, reverse=True)
    opt = optimum(costs, m)
    # Graham (1969): LPT <= (4/3 - 1/(3m)) * OPT. Note the bound is against OPT, not against the simple lower
    # bound max(longest, total/m): three equal videos on two workers already take 4/3 of that lower bound.
    assert makespan <= (4 / 3 - 1 / (3 * m)) * opt + 1e-9
    assert makespan >= max(max(costs), sum(costs) / m) - 1e-9


@pytest.mark.parametrize("seed", range(20))
def test_large_random_batches_within_bound_of_lower_bound(seed):
    rng = random.Random(100 + seed)
    m = rng.choice([2, 3, 4, 8])
    costs = [rng.uniform(10, 3600) for _ in range(rng.randint(6 * m, 80))]
    makespan, _ = simulate(costs, m)
    lower = max(max(costs), sum(costs) / m)
    # List scheduling ends by total/m + (1 - 1/m) * p_last, and the video that ends last is either one of the m
    # longest (makespan = its length <= lower) or no longer than the (m+1)-th longest. So whenever that one is at
    # most lower/3, the bound against the lower bound max(longest, total/m) holds: (4/3 - 1/(3m)) * lower.
    p_next = sorted(costs, reverse=True)[m]
    assert makespan <= lower + (1 - 1 / m) * p_next + 1e-6
    assert p_next <= lower / 3, "instance generator should give many videos per worker"
    assert makespan <= (4 / 3 - 1 / (3 * m)) * lower + 1e-6


@pytest.mark.parametrize("seed", range(15))
def test_prefetch_keeps_the_lpt_schedule(seed):
    rng = random.Random(200 + seed)
    m = rng.choice([2, 3])
    costs = [rng.uniform(1, 100) for _ in range(rng.randint(m + 1, 12))]
    plain, plain_order = simulate(costs, m)
    fetched, fetched_order = simulate(costs, m, prefetch=True)
    assert fetched_order == plain_order == sorted(costs, reverse=True)
    assert fetched == pytest.approx(plain)


def test_prefetch_goes_to_the_worker_that_frees_first():
    clock = FakeClock()
    # Depth is decided by time now (it was one video): 5 s of work queued ahead is enough here.
    sched = Scheduler(clock=clock, prefetch_ahead_s=5)
    sched.add(items_with([100, 10, 8, 5]))
    assert sched.next_for("long").cost == 100
    assert sched.next_for("short").cost == 10
    assert sched.next_for("long", prefetch=True) is None, "the long worker would strand the video behind itself"
    assert sched.next_for("short", prefetch=True).cost == 8
    assert sched.next_for("short", prefetch=True) is None, "8 s queued ahead is past prefetch_ahead_s"


def test_unknown_durations_are_probed_or_estimated(speech_clips, tmp_path):
    def probe(path):
        with av.open(str(path)) as c:
            return c.duration / 1e6

    clip = speech_clips["weather"].path
    local = VideoItem(str(clip), SourceKind.FILE, str(clip))
    assert estimate_cost(local, probe) == pytest.approx(probe(clip))
    # A file the probe cannot read is costed by its size; an unknown URL gets the median known cost.
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"x" * 160_000)
    junk_item = VideoItem(str(junk), SourceKind.FILE, str(junk))
    assert estimate_cost(junk_item, probe) == pytest.approx(10.0)
    url = VideoItem("http://127.0.0.1/unknown", SourceKind.URL, "x")
    assert estimate_cost(url) is None
    sched = Scheduler()
    sched.add([url, junk_item, local, *items_with([50])], probe=probe)
    assert sched.tasks[url.video_id].cost == pytest.approx(10.0)  # median of (10, ~4, 50)
    assert not sched.tasks[url.video_id].cost_known
    assert sched.next_for("w").cost == 50


def test_retries_with_backoff_then_fail():
    clock = FakeClock()
    sched = Scheduler(max_attempts=3, backoff_s=2.0, clock=clock)
    sched.add(items_with([10]))
    a = sched.next_for("w")
    out = sched.fail(a.item.video_id, "w", "HTTP 503", retryable=True)
    assert out.retry and out.delay_s == 2.0
    assert sched.next_for("w") is None, "the retry waits out its back-off"
    assert sched.ready_in() == pytest.approx(2.0)
    clock.t = 2.0
    b = sched.next_for("other")
    assert b.attempt == 2
    out = sched.fail(b.item.video_id, "other", "HTTP 503")
    assert out.retry and out.delay_s == 4.0
    clock.t = 10
    c = sched.next_for("w")
    assert c.attempt == 3
    out = sched.fail(c.item.video_id, "w", "HTTP 503")
    assert not out.retry
    assert sched.tasks[c.item.video_id].state == TaskState.FAILED
    assert sched.finished
    assert sched.assignments()[c.item.video_id] == ["w", "other", "w"]


def test_non_retryable_failure_is_final():
    sched = Scheduler(max_attempts=5)
    sched.add(items_with([10]))
    a = sched.next_for("w")
    assert not sched.fail(a.item.video_id, "w", "no audio stream", retryable=False).retry
    assert sched.finished


def test_dead_worker_videos_are_requeued_without_losing_an_attempt():
    sched = Scheduler(max_attempts=1)
    sched.add(items_with([40, 30, 20]))
    a = sched.next_for("a")
    sched.next_for("b")
    prefetched = sched.next_for("a", prefetch=True)
    assert prefetched is None or prefetched.cost == 20
    requeued = sched.worker_lost("a")
    assert a.item.video_id in requeued
    again = sched.next_for("c")
    assert again.item.video_id == a.item.video_id and again.attempt == 1
    assert sched.assignments()[a.item.video_id] == ["a", "c"]
    sched.complete(a.item.video_id, "a")  # a late answer from the dead worker does not count
    assert sched.tasks[a.item.video_id].state == TaskState.ASSIGNED
    sched.complete(a.item.video_id, "c")
    assert sched.tasks[a.item.video_id].state == TaskState.DONE


def test_a_video_that_keeps_killing_workers_is_failed():
    sched = Scheduler(max_attempts=1)
    sched.add(items_with([40]))
    video_id = sched.tasks.copy().popitem()[0]
    handed = 0
    for k in range(5):
        if sched.next_for(f"w{k}") is None:
            break
        handed += 1
        sched.worker_lost(f"w{k}")
    assert handed == 2, "one death is forgiven (max_attempts=1), the second ends it"
    a = sched.tasks[video_id]
    assert sched.tasks[a.item.video_id].state == TaskState.FAILED
    assert "worker died" in sched.tasks[a.item.video_id].error
    assert sched.finished


def test_cancel_stops_dispatch_and_drops_pending():
    sched = Scheduler()
    sched.add(items_with([40, 30, 20]))
    a = sched.next_for("a")
    dropped = sched.cancel()
    assert len(dropped) == 2 and a.item.video_id not in dropped
    assert sched.next_for("b") is None
    assert not sched.finished
    sched.mark_cancelled(a.item.video_id, "a")
    assert sched.finished
    assert sched.summary()["counts"] == {"cancelled": 3}


def test_duplicates_are_scheduled_once():
    sched = Scheduler()
    items = items_with([10])
    sched.add(items)
    sched.add(items)
    assert len(sched.tasks) == 1


def simulate_dispatch(costs, m, *, ready_order=None):
    """Drive the scheduler the way parallel/runner.py does: every planned worker registered first, then one
    `dispatch` per turn for the workers with room (one video running, one prefetched). Returns (makespan, first
    worker of each video by cost)."""
    clock = FakeClock()
    sched = Scheduler(clock=clock)
    sched.add(items_with(costs))
    workers = ready_order or [f"w{i}" for i in range(m)]
    sched.register(*workers)
    held = {w: [] for w in workers}
    events = []
    calls = 0

    def turn():
        nonlocal calls
        calls += 1
        for a in sched.dispatch([w for w in workers if len(held[w]) < 2]):
            held[a.worker].append(a)
            if len(held[a.worker]) == 1:
                heapq.heappush(events, (clock.t + a.cost, a.worker))

    turn()
    makespan = 0.0
    while events:
        t, w = heapq.heappop(events)
        clock.t = makespan = t
        done = held[w].pop(0)
        sched.complete(done.item.video_id, w)
        if held[w]:
            heapq.heappush(events, (t + held[w][0].cost, w))
        turn()
    assert sched.finished
    return makespan, calls


def test_registered_workers_each_get_one_of_the_longest_before_any_prefetch():
    # The benchmark's finding: a worker known only from its first request made the first workers "the only
    # ones, hence first free", and they took the longest videos two at a time.
    costs = [float(c) for c in range(10, 170, 10)]  # 16 videos
    sched = Scheduler(clock=FakeClock())
    sched.add(items_with(costs))
    workers = [f"w{i}" for i in range(8)]
    sched.register(*workers)
    first = sched.dispatch(workers[:1])
    assert [a.cost for a in first] == [160], "no prefetch while seven registered workers hold nothing"
    rest = sched.dispatch(workers)
    by_worker = {}
    for a in first + rest:
        by_worker.setdefault(a.worker, []).append(a.cost)
    firsts = sorted((v[0] for v in by_worker.values()), reverse=True)
    assert firsts == sorted(costs, reverse=True)[:8], "the 8 longest go to 8 distinct workers"
    # Prefetches follow in LPT order: the next longest to whoever holds the shortest work.
    assert by_worker["w7"][:2] == [90, 80]


def test_an_overdue_worker_gets_no_prefetch_while_another_is_idle():
    clock = FakeClock()
    sched = Scheduler(clock=clock)
    sched.add(items_with([100, 50, 40]))
    sched.register("a", "b")
    assert sched.next_for("a").cost == 100
    clock.t = 500  # a is past its estimate: projected free "now", as early as the idle b
    assert sched.next_for("a", prefetch=True) is None, "b holds nothing and would take it now"
    assert sched.next_for("b").cost == 50
    assert sched.next_for("a", prefetch=True).cost == 40


@pytest.mark.parametrize("seed", range(8))
def test_dispatch_keeps_the_lpt_makespan_with_many_workers(seed):
    rng = random.Random(300 + seed)
    m = rng.choice([8, 16, 32])
    costs = [60.0 * rng.lognormvariate(0.0, 1.0) for _ in range(8 * m)]
    fetched, calls = simulate_dispatch(costs, m)
    plain, _ = simulate(costs, m)  # pure pull, no prefetch: Graham's LPT
    assert fetched == pytest.approx(plain)
    assert calls == len(costs) + 1, "one dispatch call per completion, not one per worker"


def test_counts_follow_every_state_change():
    clock = FakeClock()
    sched = Scheduler(max_attempts=2, backoff_s=1.0, prefetch_depth=0, clock=clock)  # one video per worker
    sched.add(items_with([40, 30, 20, 10]))
    sched.register("a", "b")
    a, b = sched.dispatch(["a", "b"])
    assert (sched.queue_length, sched.in_flight, sched.finished) == (2, 2, False)
    sched.complete(a.item.video_id, "a")
    sched.fail(b.item.video_id, "b", "HTTP 503")
    assert (sched.queue_length, sched.in_flight) == (3, 0)
    assert sched.ready_in() == 0.0
    c, d = sched.dispatch(["a", "b"])
    sched.complete(c.item.video_id, "a")
    sched.complete(d.item.video_id, "b")
    assert sched.ready_in() == pytest.approx(1.0), "only the backed-off retry is left"
    clock.t = 1.0
    (e,) = sched.dispatch(["a"])
    assert e.item.video_id == b.item.video_id and e.attempt == 2
    sched.worker_lost("a")
    assert (sched.queue_length, sched.in_flight) == (1, 0)
    assert sched.summary()["counts"] == {"pending": 1, "done": 3}
    assert sched.cancel() == [b.item.video_id]
    assert sched.finished and sched.summary()["counts"] == {"done": 3, "cancelled": 1}
