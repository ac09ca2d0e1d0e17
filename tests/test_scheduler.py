"""The scheduler as a plain class: a fake clock and fake costs, no Ray, no model."""

from __future__ import annotations

import heapq
import itertools
import random

import av
import pytest

from bulk_transcribe.models import SourceKind, VideoItem
from bulk_transcribe.engine.scheduler import Scheduler, TaskState, estimate_cost


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def items_with(costs, name: str = "v") -> list[VideoItem]:
    return [VideoItem(f"http://127.0.0.1/{name}{i}.mp3", SourceKind.URL, "x", duration_s=c)
            for i, c in enumerate(costs)]


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
    # Depth is decided by time now (it was one video): 5 s of work queued ahead is enough here, and one video
    # ahead before anything is timed.
    sched = Scheduler(clock=clock, prefetch_ahead_s=5, cold_ahead=1)
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


# ---- prefetch by time ----------------------------------------------------------------------------------------

def costs_of(assignments) -> list[float]:
    return [a.cost for a in assignments]


def test_a_busy_worker_prefetches_until_the_work_queued_ahead_reaches_prefetch_ahead_s():
    clock = FakeClock()
    sched = Scheduler(clock=clock, prefetch_ahead_s=20, max_held=8, cold_ahead=2)
    sched.add(items_with([100, 60] + [8] * 9))
    sched.register("w")
    assert costs_of(sched.dispatch(["w"])) == [100, 60, 8], "nothing timed yet: cold_ahead videos ahead"
    assert sched.dispatch(["w"]) == []
    clock.t = 50.0
    sched.complete(sched.held_by("w")[0], "w")  # 100 s of audio in 50 s: the worker runs at 2x
    clock.t = 80.0
    sched.complete(sched.held_by("w")[0], "w")  # 60 s in 30 s: still 2x
    # Each 8 s video is 4 s of compute: behind the one running, five queued reach 20 s.
    assert costs_of(sched.dispatch(["w"])) == [8, 8, 8, 8, 8]
    assert len(sched.held_by("w")) == 6
    assert sched.dispatch(["w"]) == [], "nothing more until the queued work drains"
    clock.t = 84.0
    sched.complete(sched.held_by("w")[0], "w")
    assert costs_of(sched.dispatch(["w"])) == [8], "one finished, one more: 20 s queued again"


def test_before_anything_is_timed_depth_goes_by_count():
    """Speed is unknown until a video completes (and an unknown video's cost is a guess too), so a cold worker
    keeps cold_ahead videos queued; the default reached the best replayed span in bench_overlap's timings."""
    sched = Scheduler(clock=FakeClock())
    sched.add([VideoItem(f"http://127.0.0.1/u{i}", SourceKind.URL, "x") for i in range(10)])
    sched.register("w")
    assert len(sched.dispatch(["w"])) == 1 + sched.cold_ahead == 5


def test_max_held_bounds_a_worker_whatever_the_videos_weigh():
    sched = Scheduler(clock=FakeClock(), prefetch_ahead_s=1000, max_held=3)
    sched.add(items_with([1] * 10))
    sched.register("w")
    assert len(sched.dispatch(["w"])) == 3
    assert sched.dispatch(["w"]) == [] and sched.next_for("w", prefetch=True) is None


def test_the_old_fixed_depth_still_works():
    sched = Scheduler(clock=FakeClock(), prefetch_depth=2)
    sched.add(items_with([500, 400, 300, 200]))
    sched.register("w")
    assert costs_of(sched.dispatch(["w"])) == [500, 400, 300], "two ahead, however long they are"


def test_guessed_lengths_learn_seconds_per_video():
    """URLs with no known duration all cost the same guess; their pace is learned from that guess, so a run of
    short clips gets a deep enough queue even though no length is known."""
    clock = FakeClock()
    sched = Scheduler(clock=clock, prefetch_ahead_s=10, max_held=8, cold_ahead=1)
    urls = [VideoItem(f"http://127.0.0.1/u{i}", SourceKind.URL, "x") for i in range(10)]
    sched.add(urls)
    sched.register("w")
    assert len(sched.dispatch(["w"])) == 2, "nothing timed: cold_ahead (1) video ahead"
    clock.t = 3.0
    sched.complete(sched.held_by("w")[0], "w")  # a guessed video takes 3 s here
    # 3 s per video queued: 0, 3, 6, 9 s ahead are under 10 s, so four more join the one left.
    assert len(sched.dispatch(["w"])) == 4
    clock.t = 6.0
    sched.complete(sched.held_by("w")[0], "w")  # the next one takes 3 s too
    assert len(sched.dispatch(["w"])) == 1, "3 queued x 3 s = 9 s, one more reaches 10 s"
    assert sched.summary()["speed_x"] is None, "a guess teaches nothing about audio seconds per second"


def simulate_units(sched: Scheduler, costs, m, *, pace=1.0, on_turn=None):
    """Drive `sched` like a driver that offers every live worker each turn (the scheduler decides depth). A worker
    runs its held units in order; a unit (one video, or a bundle) takes pace x its total cost; all its members
    complete together. Returns (makespan, every assignment in dispatch order)."""
    clock = sched.clock
    sched.add(items_with(costs))
    workers = [f"w{i}" for i in range(m)]
    sched.register(*workers)
    held = {w: [] for w in workers}
    events = []
    handed = []

    def head(w):
        unit = held[w][:1]
        while unit[0].bundle and len(unit) < len(held[w]) and held[w][len(unit)].bundle == unit[0].bundle:
            unit.append(held[w][len(unit)])
        return unit

    def start(w):
        heapq.heappush(events, (clock.t + pace * sum(a.cost for a in head(w)), w))

    def turn():
        out = sched.dispatch(workers)
        if on_turn:
            on_turn(sched, held, out)
        for a in out:
            held[a.worker].append(a)
            handed.append(a)
        for w in workers:
            if held[w] and w not in running:
                running.add(w)
                start(w)
        for w in workers:
            assert len(held[w]) <= sched.max_held

    running = set()
    turn()
    makespan = 0.0
    while events:
        t, w = heapq.heappop(events)
        clock.t = makespan = t
        for a in head(w):
            held[w].remove(a)
            sched.complete(a.item.video_id, w)
        running.discard(w)
        if held[w]:
            running.add(w)
            start(w)
        turn()
    assert sched.finished
    assert all(t.state == TaskState.DONE for t in sched.tasks.values())
    return makespan, handed


def idle_first(sched, held, out):
    """No prefetch while a registered worker holds nothing: a turn that gives any worker a second unit (video or
    bundle) leaves no worker empty."""
    first_unit = {w: (h[0].bundle or -1) if h else None for w, h in held.items()}
    prefetched = False
    for a in out:
        if first_unit[a.worker] is None:
            first_unit[a.worker] = a.bundle or -1
        elif not (a.bundle and a.bundle == first_unit[a.worker]) or held[a.worker]:
            prefetched = True
    if prefetched:
        assert all(held[w] or any(a.worker == w for a in out) for w in held), (held, out)


@pytest.mark.parametrize("seed", range(12))
def test_prefetch_by_time_keeps_the_lpt_makespan_and_order(seed):
    rng = random.Random(400 + seed)
    m = rng.choice([1, 2, 3, 8])
    costs = [60.0 * rng.lognormvariate(0.0, 1.0) for _ in range(rng.randint(m + 1, 10 * m))]
    plain, plain_order = simulate(costs, m)  # pure pull, no prefetch: Graham's LPT
    fetched, handed = simulate_units(Scheduler(clock=FakeClock(), prefetch_ahead_s=rng.choice([5, 20, 200])),
                                     costs, m, on_turn=idle_first)
    assert costs_of(handed) == plain_order == sorted(costs, reverse=True)
    assert fetched == pytest.approx(plain)


# ---- bundles ---------------------------------------------------------------------------------------------------

def test_short_videos_go_in_bundles_longest_first_within_the_limits():
    sched = Scheduler(clock=FakeClock(), bundle_max_s=240, bundle_max_items=4)
    sched.add(items_with([300, 100, 60, 50, 40, 30, 20, 10, 5, 1]))
    sched.register("a", "b")
    out = sched.dispatch(["a", "b"])
    assert costs_of(out) == [300, 100, 60, 50, 40, 30, 20, 10, 5, 1], "longest first throughout"
    assert [(a.worker, a.bundle > 0) for a in out[:1]] == [("a", False)], "a long video goes alone"
    bundles: dict[int, list] = {}
    for a in out[1:]:
        assert a.bundle, a
        bundles.setdefault(a.bundle, []).append(a)
    groups = list(bundles.values())
    assert [costs_of(g) for g in groups] == [[100, 60, 50], [40, 30, 20, 10], [5, 1]]
    for g in groups:
        assert len({a.worker for a in g}) == 1
        assert sum(costs_of(g)) <= 240 and len(g) <= 4
    # Consecutive in the answer: a driver can cut the list into bundles without sorting it.
    numbers = [a.bundle for a in out[1:]]
    assert numbers == sorted(numbers, key=numbers.index)
    assert sched.max_held == 8 and all(len(sched.held_by(w)) <= 8 for w in "ab")


def test_bundles_stay_off_unless_asked_and_never_take_guessed_lengths():
    plain = Scheduler(clock=FakeClock())
    plain.add(items_with([10, 9, 8]))
    assert all(a.bundle == 0 for a in plain.dispatch(["w"]))
    sched = Scheduler(clock=FakeClock(), bundle_max_s=240)
    urls = [VideoItem(f"http://127.0.0.1/u{i}", SourceKind.URL, "x") for i in range(3)]
    sched.add(urls + items_with([10]))  # the guesses become the median: 10 s, "short", but not known to be
    assert sched.tasks[urls[0].video_id].cost == 10 and not sched.tasks[urls[0].video_id].cost_known
    out = sched.dispatch(["w"])
    assert all(a.bundle == 0 for a in out), "a guessed length may be hours: never decoded whole in a bundle"


def test_a_retry_goes_alone_and_each_member_is_accounted_on_its_own():
    clock = FakeClock()
    sched = Scheduler(clock=clock, max_attempts=2, backoff_s=1.0, bundle_max_s=100, bundle_max_items=4)
    sched.add(items_with([30, 20, 10]))
    sched.register("w")
    first = sched.dispatch(["w"])
    assert costs_of(first) == [30, 20, 10] and len({a.bundle for a in first}) == 1 and first[0].bundle
    clock.t = 5.0
    sched.complete(first[0].item.video_id, "w")
    decision = sched.fail(first[1].item.video_id, "w", "HTTP 503")
    assert decision.retry
    assert sched.held_by("w") == [first[2].item.video_id], "the bundle's last member is still running"
    sched.complete(first[2].item.video_id, "w")
    sched.add(items_with([15, 5, 4], name="more"))  # more short videos arrive
    clock.t = 10.0
    out = sched.dispatch(["w"])
    retry = [a for a in out if a.item.video_id == first[1].item.video_id]
    assert retry and retry[0].attempt == 2 and retry[0].bundle == 0, "a retry always goes alone"
    assert {a.cost for a in out if a.bundle} == {15, 5, 4}
    states = sched.states()
    assert states[first[0].item.video_id] == "done" and states[first[2].item.video_id] == "done"
    assert sched.tasks[first[1].item.video_id].attempts == 2


def test_a_dead_workers_bundle_is_requeued_and_its_videos_go_alone_next_time():
    sched = Scheduler(clock=FakeClock(), bundle_max_s=100, bundle_max_items=4)
    sched.add(items_with([30, 20, 10]))
    sched.register("a")
    bundle = sched.dispatch(["a"])
    assert len({a.bundle for a in bundle}) == 1 and bundle[0].bundle
    assert sorted(sched.worker_lost("a")) == sorted(a.item.video_id for a in bundle)
    again = sched.dispatch(["b"])
    assert [a.attempt for a in again][:1] == [1], "a death does not use up an attempt"
    assert all(a.bundle == 0 for a in again), "one of them may have killed the worker: none is bundled again"
    assert not sched._bundles and not sched._bundle_of


def test_a_bundle_teaches_the_speed_once_with_its_whole_work():
    clock = FakeClock()
    sched = Scheduler(clock=clock, bundle_max_s=240, bundle_max_items=4)
    sched.add(items_with([100, 60, 50]))
    out = sched.dispatch(["w"])
    assert len({a.bundle for a in out}) == 1
    clock.t = 21.0
    for a in out:  # the members end together
        sched.complete(a.item.video_id, "w")
    assert sched.summary()["speed_x"] == pytest.approx(210 / 21)
    assert sched.finished and not sched._bundles


def test_a_bundle_never_exceeds_max_held():
    sched = Scheduler(clock=FakeClock(), bundle_max_s=1000, bundle_max_items=16, max_held=3)
    sched.add(items_with([5] * 10))
    out = sched.dispatch(["w"])
    assert len(out) == 3 and len({a.bundle for a in out}) == 1


@pytest.mark.parametrize("seed", range(10))
def test_bundled_runs_keep_every_invariant(seed):
    rng = random.Random(500 + seed)
    m = rng.choice([1, 2, 4])
    limit = rng.choice([60.0, 240.0])
    costs = [rng.choice([rng.uniform(1, 30), rng.uniform(30, 600)]) for _ in range(rng.randint(m + 1, 40))]
    sched = Scheduler(clock=FakeClock(), bundle_max_s=limit, bundle_max_items=rng.choice([2, 4, 8]))
    # Bundles run faster than their parts (shared batches): pace 0.5 tests the learned speed too.
    _, handed = simulate_units(sched, costs, m, pace=0.5, on_turn=idle_first)
    assert costs_of(handed) == sorted(costs, reverse=True)
    assert sorted(a.item.video_id for a in handed) == sorted(sched.tasks), "each video handed out once"
    groups: dict[int, list] = {}
    for a in handed:
        if a.bundle:
            groups.setdefault(a.bundle, []).append(a)
    for g in groups.values():
        assert len(g) >= 2 and len({a.worker for a in g}) == 1
        assert sum(costs_of(g)) <= limit and len(g) <= sched.bundle_max_items
        assert all(a.cost < limit and a.attempt == 1 for a in g)
    assert not sched._bundles and not sched._bundle_of
