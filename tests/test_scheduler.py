"""The scheduler as a plain class: a fake clock and fake costs, no Ray, no model.

Every test drives it the way engine/driver.py does: register the workers, offer a list of workers to `dispatch`,
report each outcome back (`complete`, `fail`, `worker_lost`, `cancel`), and read what the driver reads (`tasks`,
`states()`, `assignments()`, `queue_length`, `in_flight`, `finished`, `ready_in()`). A test that wants a worker
to get exactly one video configures the scheduler so (`max_held=1`, or `cold_ahead=0`) rather than asking for it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from typing import NamedTuple

import av
import pytest

from bulk_transcribe.models import SourceKind, VideoItem
from conftest import FakeClock
from bulk_transcribe.engine.scheduler import COLD_AHEAD, MAX_HELD, Scheduler, TaskState, estimate_cost


@pytest.fixture
def clock() -> FakeClock:
    """Runs start at time zero here, so a run's makespan is its clock's reading at the end."""
    return FakeClock(0.0)


def items_with(costs, name: str = "v") -> list[VideoItem]:
    return [VideoItem(f"http://127.0.0.1/{name}{i}.mp3", SourceKind.URL, "x", duration_s=c)
            for i, c in enumerate(costs)]


def urls(n: int, name: str = "u") -> list[VideoItem]:
    """Videos whose length nothing can tell before downloading them."""
    return [VideoItem(f"http://127.0.0.1/{name}{i}", SourceKind.URL, "x") for i in range(n)]


def costs_of(assignments) -> list[float]:
    return [a.cost for a in assignments]


def ids_of(assignments) -> list[str]:
    return [a.item.video_id for a in assignments]


def finish_first(sched: Scheduler, held: list) -> None:
    """The worker holding `held` (assignments, oldest first) finishes the video it runs."""
    a = held.pop(0)
    sched.complete(a.item.video_id, a.worker)


def tally(sched: Scheduler) -> dict[str, int]:
    """Tasks per state, after checking that the scheduler's counters agree with every task's state."""
    counts = Counter(sched.states().values())
    assert (sched.queue_length, sched.in_flight) == (counts["pending"], counts["assigned"])
    assert sched.finished == (not counts["pending"] and not counts["assigned"])
    return dict(counts)


# ---- a simulated run -----------------------------------------------------------------------------------------

class Run(NamedTuple):
    makespan: float
    handed: list  # every assignment, in dispatch order
    calls: int  # dispatch calls
    sched: Scheduler


def simulate(costs, m, *, pace=1.0, offer=None, on_turn=None, **options) -> Run:
    """Run `Scheduler(**options)` on a fake clock against m workers, driven like engine/driver.py: every worker
    registered before the first dispatch, then one `dispatch` at the start and after each unit ends, offering
    `offer(held)` (default: every worker; the scheduler decides how deep each one's queue is). A worker runs its
    held units in order; a unit (one video, or a bundle) takes pace x its total cost; all its members complete
    together."""
    clock = FakeClock(0.0)
    sched = Scheduler(clock=clock, **options)
    # The documented max_held: as given, else MAX_HELD or room for two full bundles.
    two_bundles = 2 * options.get("bundle_max_items", 8) if options.get("bundle_max_s") else 0
    held_limit = options.get("max_held") or max(MAX_HELD, two_bundles)
    sched.add(items_with(costs))
    workers = [f"w{i}" for i in range(m)]
    sched.register(*workers)
    held = {w: [] for w in workers}
    events = []
    handed = []
    running = set()
    calls = 0

    def head(w):
        unit = held[w][:1]
        while unit[0].bundle and len(unit) < len(held[w]) and held[w][len(unit)].bundle == unit[0].bundle:
            unit.append(held[w][len(unit)])
        return unit

    def start(w):
        running.add(w)
        heapq.heappush(events, (clock.t + pace * sum(a.cost for a in head(w)), w))

    def turn():
        nonlocal calls
        calls += 1
        out = sched.dispatch(offer(held) if offer else workers)
        if on_turn:
            on_turn(held, out)
        for a in out:
            held[a.worker].append(a)
            handed.append(a)
        for w in workers:
            if held[w] and w not in running:
                start(w)
        assert sched.in_flight == sum(len(h) for h in held.values())
        assert all(len(h) <= held_limit for h in held.values())

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
            start(w)
        turn()
    assert sched.finished
    assert all(t.state == TaskState.DONE for t in sched.tasks.values())
    return Run(makespan, handed, calls, sched)


def pure_pull(costs, m) -> Run:
    """Graham's LPT list scheduling: one video per worker, the next longest to whoever frees first."""
    return simulate(costs, m, max_held=1)


def idle_first(held, out):
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


# ---- longest first, by pull ----------------------------------------------------------------------------------

def test_early_first_gives_the_second_worker_the_shortest_once(clock):
    """A parallel run's option: the first transcript comes early (the second worker starts with the shortest),
    then every pull is longest-first again; alone, a worker starts with the longest either way."""
    sched = Scheduler(clock=clock, max_held=1, early_first=True)
    sched.add(items_with([30, 120, 5, 60]))
    sched.register("a", "b")
    a, b = sched.dispatch(["a", "b"])
    assert [(a.worker, a.cost), (b.worker, b.cost)] == [("a", 120), ("b", 5)]
    clock.t = 5
    sched.complete(b.item.video_id, "b")
    assert [(x.worker, x.cost) for x in sched.dispatch(["a", "b"])] == [("b", 60)]

    alone = Scheduler(clock=clock, max_held=1, early_first=True)
    alone.add(items_with([30, 120, 5]))
    alone.register("a")
    assert [x.cost for x in alone.dispatch(["a"])] == [120]


def test_dispatch_is_longest_first_and_pull_based(clock):
    sched = Scheduler(clock=clock, max_held=1)  # no prefetch: pure pull
    sched.add(items_with([30, 120, 5, 60]))
    sched.register("a", "b")
    a, b = sched.dispatch(["a", "b"])
    assert [(a.worker, a.cost), (b.worker, b.cost)] == [("a", 120), ("b", 60)]
    assert sched.dispatch(["a", "b"]) == [], "a busy worker gets nothing more without prefetch"
    # b finishes first: b pulls the next longest (no static striping).
    clock.t = 60
    sched.complete(b.item.video_id, "b")
    assert [(x.worker, x.cost) for x in sched.dispatch(["a", "b"])] == [("b", 30)]
    assert sched.assignments()[a.item.video_id] == ["a"]


def test_a_worker_handing_over_takes_the_shortest_one_at_a_time_and_the_others_the_longest(clock):
    """The in-process worker of a parallel run's first seconds (engine/handover.py): the shortest ready video, none
    ahead, so the first transcript comes early and the workers taking over never wait on a long one it holds."""
    sched = Scheduler(clock=clock)
    sched.add(items_with([30, 120, 5, 60, 5]))
    sched.register("local")
    sched.handing_over("local")
    (first,) = sched.dispatch(["local"])
    assert (first.worker, first.cost) == ("local", 5)
    assert first.item.source.endswith("v2.mp3")  # of two equal, the first queued
    assert sched.dispatch(["local"]) == [], "nothing ahead while it holds one"
    (ray,) = [a for a in sched.dispatch(["worker-0"]) if a.worker == "worker-0"][:1]
    assert ray.cost == 120  # the others still take the longest
    sched.complete(first.item.video_id, "local")
    assert [a.cost for a in sched.dispatch(["local"])] == [5]


@pytest.mark.parametrize("seed", range(40))
def test_makespan_within_graham_bound_of_optimum(seed):
    rng = random.Random(seed)
    m = rng.choice([2, 3])
    costs = [round(rng.uniform(1, 100), 1) for _ in range(rng.randint(m + 1, 8))]
    run = pure_pull(costs, m)
    assert costs_of(run.handed) == sorted(costs, reverse=True)
    opt = optimum(costs, m)
    # Graham (1969): LPT <= (4/3 - 1/(3m)) * OPT. Note the bound is against OPT, not against the simple lower
    # bound max(longest, total/m): three equal videos on two workers already take 4/3 of that lower bound.
    assert run.makespan <= (4 / 3 - 1 / (3 * m)) * opt + 1e-9
    assert run.makespan >= max(max(costs), sum(costs) / m) - 1e-9


@pytest.mark.parametrize("seed", range(20))
def test_large_random_batches_within_bound_of_lower_bound(seed):
    rng = random.Random(100 + seed)
    m = rng.choice([2, 3, 4, 8])
    costs = [rng.uniform(10, 3600) for _ in range(rng.randint(6 * m, 80))]
    makespan = pure_pull(costs, m).makespan
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
    plain = pure_pull(costs, m)
    fetched = simulate(costs, m, max_held=2, on_turn=idle_first)  # one video prefetched behind the running one
    assert costs_of(fetched.handed) == costs_of(plain.handed) == sorted(costs, reverse=True)
    assert fetched.makespan == pytest.approx(plain.makespan)


def test_prefetch_goes_to_the_worker_that_frees_first(clock):
    # 5 s of compute queued ahead is enough once a speed is known; one video ahead before anything is timed.
    sched = Scheduler(clock=clock, prefetch_ahead_s=5, cold_ahead=1)
    sched.add(items_with([100, 10, 8, 5]))
    sched.register("long", "short")
    assert costs_of(sched.dispatch(["long"])) == [100], "no prefetch while short holds nothing"
    short = sched.dispatch(["short"])
    assert costs_of(short) == [10, 8], "short frees first: it takes the next one too"
    assert sched.dispatch(["long"]) == [], "the long worker would strand the video behind itself"
    assert sched.dispatch(["long", "short"]) == [], "nothing timed yet: short has its cold_ahead (1) video queued"
    assert sched.queue_length == 1
    clock.t = 10.0
    finish_first(sched, short)
    # 10 s in 10 s: 1x. short runs the 8 (8 s, ends at 18), long runs the 100 (ends at 100): short is first free.
    assert [(a.worker, a.cost) for a in sched.dispatch(["long", "short"])] == [("short", 5)]


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
    assert sched.dispatch(["w"])[0].cost == 50


# ---- failures, deaths, cancel ----------------------------------------------------------------------------------

def test_retries_with_backoff_then_fail(clock):
    sched = Scheduler(max_attempts=3, backoff_s=2.0, clock=clock)
    sched.add(items_with([10]))
    (a,) = sched.dispatch(["w"])
    out = sched.fail(a.item.video_id, "w", "HTTP 503", retryable=True)
    assert out.retry and out.delay_s == 2.0
    assert sched.dispatch(["w"]) == [], "the retry waits out its back-off"
    assert sched.ready_in() == pytest.approx(2.0)
    clock.t = 1.9
    assert sched.dispatch(["w", "other"]) == [] and sched.ready_in() == pytest.approx(0.1)
    clock.t = 2.0
    (b,) = sched.dispatch(["other"])
    assert b.attempt == 2
    out = sched.fail(b.item.video_id, "other", "HTTP 503")
    assert out.retry and out.delay_s == 4.0
    clock.t = 10
    (c,) = sched.dispatch(["w"])
    assert c.attempt == 3
    out = sched.fail(c.item.video_id, "w", "HTTP 503")
    assert not out.retry
    assert sched.tasks[c.item.video_id].state == TaskState.FAILED
    assert sched.finished and sched.ready_in() is None
    assert sched.assignments()[c.item.video_id] == ["w", "other", "w"]


def test_non_retryable_failure_is_final():
    sched = Scheduler(max_attempts=5)
    sched.add(items_with([10]))
    (a,) = sched.dispatch(["w"])
    assert not sched.fail(a.item.video_id, "w", "no audio stream", retryable=False).retry
    assert sched.finished


def test_dead_worker_videos_are_requeued_without_losing_an_attempt(clock):
    sched = Scheduler(max_attempts=1, clock=clock)
    sched.add(items_with([40, 30, 20, 10]))
    sched.register("a", "b")
    out = sched.dispatch(["a", "b"])
    # b frees first (30 < 40) and takes the 20; then a (40 < 50) takes the 10.
    assert [(x.worker, x.cost) for x in out] == [("a", 40), ("b", 30), ("b", 20), ("a", 10)]
    a_held = [x.item.video_id for x in out if x.worker == "a"]
    assert sorted(sched.worker_lost("a")) == sorted(a_held), "everything a held goes back, prefetch included"
    again = sched.dispatch(["c"])
    assert [(x.item.video_id, x.attempt) for x in again] == [(v, 1) for v in a_held]
    forty = a_held[0]
    assert sched.assignments()[forty] == ["a", "c"]
    sched.complete(forty, "a")  # a late answer from the dead worker does not count
    assert sched.tasks[forty].state == TaskState.ASSIGNED
    sched.complete(forty, "c")
    assert sched.tasks[forty].state == TaskState.DONE


def test_a_video_that_keeps_killing_workers_is_failed():
    sched = Scheduler(max_attempts=1)
    sched.add(items_with([40]))
    (video_id,) = sched.tasks
    handed = 0
    for k in range(5):
        if not sched.dispatch([f"w{k}"]):
            break
        handed += 1
        sched.worker_lost(f"w{k}")
    assert handed == 2, "one death is forgiven (max_attempts=1), the second ends it"
    assert sched.tasks[video_id].state == TaskState.FAILED
    assert "worker died" in sched.tasks[video_id].error
    assert sched.lost_failures() == [video_id]
    assert sched.finished


def test_only_what_was_running_is_suspected_when_a_worker_dies():
    """A short video queued behind a crashing one is never failed as a killer: it never ran."""
    sched = Scheduler(max_attempts=1, cold_ahead=3)
    sched.add(items_with([40, 5]))
    long_id, short_id = (a.item.video_id for a in sched.dispatch(["w0"]))
    for k in range(1, 4):
        sched.worker_lost(f"w{k - 1}", running=[long_id])
        if sched.tasks[long_id].state == TaskState.FAILED:
            break
        assert {a.item.video_id for a in sched.dispatch([f"w{k}"])} == {long_id, short_id}
    assert sched.tasks[long_id].state == TaskState.FAILED and sched.lost_failures() == [long_id]
    assert sched.tasks[short_id].losses == 0 and sched.tasks[short_id].state == TaskState.PENDING
    # Without word from the tracker, the worker's first unit is the suspect, not everything it held.
    other = Scheduler(max_attempts=1, cold_ahead=3)
    other.add(items_with([40, 5], name="x"))
    first, second = (a.item.video_id for a in other.dispatch(["a"]))
    other.worker_lost("a")
    assert (other.tasks[first].losses, other.tasks[second].losses) == (1, 0)


def test_late_answers_change_nothing():
    """A failure or cancel reported by a worker that no longer holds the video (it died, the video went to
    another) is stale; a finished video is never cancelled after the fact."""
    sched = Scheduler(max_attempts=3, max_held=1)
    sched.add(items_with([40]))
    (a,) = sched.dispatch(["a"])
    sched.worker_lost("a")
    (b,) = sched.dispatch(["b"])
    vid = a.item.video_id
    assert sched.fail(vid, "a", "HTTP 500") is None and sched.tasks[vid].state == TaskState.ASSIGNED
    assert not sched.mark_cancelled(vid, "a") and sched.tasks[vid].worker == "b"
    sched.complete(vid, "b")
    assert not sched.mark_cancelled(vid) and sched.tasks[vid].state == TaskState.DONE


def test_cancel_stops_dispatch_and_drops_pending():
    sched = Scheduler(max_held=1)
    sched.add(items_with([40, 30, 20]))
    (a,) = sched.dispatch(["a"])
    dropped = sched.cancel()
    assert len(dropped) == 2 and a.item.video_id not in dropped
    assert sched.dispatch(["a", "b"]) == []
    assert not sched.finished
    sched.mark_cancelled(a.item.video_id, "a")
    assert sched.finished
    assert tally(sched) == {"cancelled": 3}


def test_duplicates_are_scheduled_once():
    sched = Scheduler()
    items = items_with([10])
    sched.add(items)
    sched.add(items)
    assert len(sched.tasks) == 1 and sched.queue_length == 1
    assert len(sched.dispatch(["w", "x"])) == 1


def test_counts_follow_every_state_change(clock):
    sched = Scheduler(max_attempts=2, backoff_s=1.0, max_held=1, clock=clock)  # one video per worker
    sched.add(items_with([40, 30, 20, 10]))
    sched.register("a", "b")
    a, b = sched.dispatch(["a", "b"])
    assert (sched.queue_length, sched.in_flight, sched.finished) == (2, 2, False)
    assert tally(sched) == {"pending": 2, "assigned": 2}
    sched.complete(a.item.video_id, "a")
    sched.fail(b.item.video_id, "b", "HTTP 503")
    assert (sched.queue_length, sched.in_flight) == (3, 0)
    assert tally(sched) == {"pending": 3, "done": 1}
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
    assert tally(sched) == {"pending": 1, "done": 3}
    assert sched.cancel() == [b.item.video_id]
    assert sched.finished and tally(sched) == {"done": 3, "cancelled": 1}


# ---- prefetch: only to the first free, never past an idle worker ----------------------------------------------

def test_registered_workers_each_get_one_of_the_longest_before_any_prefetch():
    # The benchmark's finding: a worker known only from its first request made the first workers "the only
    # ones, hence first free", and they took the longest videos two at a time.
    costs = [float(c) for c in range(10, 170, 10)]  # 16 videos
    sched = Scheduler(clock=FakeClock(0.0))
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


def test_an_overdue_worker_gets_no_prefetch_while_another_is_idle(clock):
    sched = Scheduler(clock=clock)
    sched.add(items_with([100, 50, 40]))
    sched.register("a", "b")
    assert costs_of(sched.dispatch(["a"])) == [100], "b holds nothing: no prefetch for a"
    clock.t = 500  # a is past its estimate: projected free "now", as early as the idle b
    assert sched.dispatch(["a"]) == [], "b holds nothing and would take it now"
    assert costs_of(sched.dispatch(["b"])) == [50], "b is busy till 550, a is free 'now': no prefetch for b"
    assert costs_of(sched.dispatch(["a"])) == [40]


@pytest.mark.parametrize("seed", range(8))
def test_dispatch_keeps_the_lpt_makespan_with_many_workers(seed):
    rng = random.Random(300 + seed)
    m = rng.choice([8, 16, 32])
    costs = [60.0 * rng.lognormvariate(0.0, 1.0) for _ in range(8 * m)]
    # A driver that offers the workers with room for one more (one video running, one prefetched).
    fetched = simulate(costs, m, offer=lambda held: [w for w, h in held.items() if len(h) < 2])
    plain = pure_pull(costs, m)
    assert fetched.makespan == pytest.approx(plain.makespan)
    assert fetched.calls == len(costs) + 1, "one dispatch call per completion, not one per worker"


# ---- prefetch by time ----------------------------------------------------------------------------------------

def test_a_busy_worker_prefetches_until_the_work_queued_ahead_reaches_prefetch_ahead_s(clock):
    sched = Scheduler(clock=clock, prefetch_ahead_s=20, max_held=8, cold_ahead=2)
    sched.add(items_with([100, 60] + [8] * 9))
    sched.register("w")
    held = sched.dispatch(["w"])
    assert costs_of(held) == [100, 60, 8], "nothing timed yet: cold_ahead videos ahead"
    assert sched.dispatch(["w"]) == []
    clock.t = 50.0
    finish_first(sched, held)  # 100 s of audio in 50 s: the worker runs at 2x
    clock.t = 80.0
    finish_first(sched, held)  # 60 s in 30 s: still 2x
    # Each 8 s video is 4 s of compute: behind the one running, five queued reach 20 s.
    more = sched.dispatch(["w"])
    assert costs_of(more) == [8, 8, 8, 8, 8]
    held += more
    assert sched.in_flight == len(held) == 6
    assert sched.dispatch(["w"]) == [], "nothing more until the queued work drains"
    clock.t = 84.0
    finish_first(sched, held)
    assert costs_of(sched.dispatch(["w"])) == [8], "one finished, one more: 20 s queued again"


def test_before_anything_is_timed_depth_goes_by_count():
    """Speed is unknown until a video completes (and an unknown video's cost is a guess too), so a cold worker
    keeps cold_ahead videos queued; the default reached the best replayed span in bench_overlap's timings."""
    sched = Scheduler(clock=FakeClock(0.0))
    sched.add(urls(10))
    sched.register("w")
    assert len(sched.dispatch(["w"])) == 1 + COLD_AHEAD == 5


def test_max_held_bounds_a_worker_whatever_the_videos_weigh(clock):
    sched = Scheduler(clock=clock, prefetch_ahead_s=1000, max_held=3, cold_ahead=100)
    sched.add(items_with([1] * 10))
    sched.register("w")
    held = sched.dispatch(["w"])
    assert len(held) == 3
    assert sched.dispatch(["w"]) == [] and sched.in_flight == 3
    clock.t = 1.0
    finish_first(sched, held)  # timed now: 1000 s ahead would take every video, max_held still binds
    assert len(sched.dispatch(["w"])) == 1 and sched.in_flight == 3


def test_max_held_defaults_to_MAX_HELD_or_two_full_bundles():
    plain = Scheduler(clock=FakeClock(0.0), cold_ahead=100)
    plain.add(items_with([1] * 20))
    assert len(plain.dispatch(["w"])) == MAX_HELD == 8
    # Bundles of 6: one running, one downloading.
    bundled = Scheduler(clock=FakeClock(0.0), cold_ahead=100, bundle_max_s=1000, bundle_max_items=6)
    bundled.add(items_with([1] * 20))
    out = bundled.dispatch(["w"])
    assert len(out) == 12 and len({a.bundle for a in out}) == 2


def test_a_fixed_depth_is_max_held_with_no_time_limit(clock):
    """The old fixed rule (that many videos ahead, whatever their length): bench_overlap still replays it."""
    sched = Scheduler(clock=clock, prefetch_ahead_s=float("inf"), max_held=3, cold_ahead=2)
    sched.add(items_with([500, 400, 300, 200, 100]))
    sched.register("w")
    held = sched.dispatch(["w"])
    assert costs_of(held) == [500, 400, 300], "two ahead, however long they are"
    clock.t = 1.0
    finish_first(sched, held)  # timed: 500x, yet still two ahead
    assert costs_of(sched.dispatch(["w"])) == [200]


def test_guessed_lengths_learn_seconds_per_video(clock):
    """URLs with no known duration all cost the same guess; their pace is learned from that guess, so a run of
    short clips gets a deep enough queue even though no length is known."""
    sched = Scheduler(clock=clock, prefetch_ahead_s=10, max_held=8, cold_ahead=1)
    sched.add(urls(10))
    sched.register("w")
    held = sched.dispatch(["w"])
    assert len(held) == 2, "nothing timed: cold_ahead (1) video ahead"
    clock.t = 3.0
    finish_first(sched, held)  # a guessed video takes 3 s here
    # 3 s per video queued: 0, 3, 6, 9 s ahead are under 10 s, so four more join the one left.
    more = sched.dispatch(["w"])
    assert len(more) == 4
    held += more
    clock.t = 6.0
    finish_first(sched, held)  # the next one takes 3 s too
    assert len(sched.dispatch(["w"])) == 1, "3 queued x 3 s = 9 s, one more reaches 10 s"


def test_a_guess_teaches_nothing_about_audio_seconds_per_second(clock):
    """Known and guessed lengths learn separate speeds: a guessed video's pace must not count as a known one's."""
    sched = Scheduler(clock=clock, default_cost_s=300, prefetch_ahead_s=25, cold_ahead=0)
    sched.add(urls(1))
    held = sched.dispatch(["w"])
    clock.t = 3.0
    finish_first(sched, held)  # a 300 s guess in 3 s: 100 guessed seconds per second
    sched.add(items_with([60], name="k"))
    held = sched.dispatch(["w"])
    assert costs_of(held) == [60]
    clock.t = 63.0
    finish_first(sched, held)  # 60 s of audio in 60 s: 1x (a speed that also counted the guess would be 50x)
    sched.add(items_with([10] * 6, name="s"))
    # At 1x each 10 s video is 10 s of compute: 0, 10, 20 s ahead are under 25 s, so three queue behind the first.
    assert costs_of(sched.dispatch(["w"])) == [10] * 4


@pytest.mark.parametrize("seed", range(12))
def test_prefetch_by_time_keeps_the_lpt_makespan_and_order(seed):
    rng = random.Random(400 + seed)
    m = rng.choice([1, 2, 3, 8])
    costs = [60.0 * rng.lognormvariate(0.0, 1.0) for _ in range(rng.randint(m + 1, 10 * m))]
    plain = pure_pull(costs, m)
    fetched = simulate(costs, m, prefetch_ahead_s=rng.choice([5, 20, 200]), on_turn=idle_first)
    assert costs_of(fetched.handed) == costs_of(plain.handed) == sorted(costs, reverse=True)
    assert fetched.makespan == pytest.approx(plain.makespan)


# ---- bundles ---------------------------------------------------------------------------------------------------

def test_short_videos_go_in_bundles_longest_first_within_the_limits():
    sched = Scheduler(clock=FakeClock(0.0), bundle_max_s=240, bundle_max_items=4)
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
    assert sched.in_flight == 10 and all(n <= MAX_HELD for n in Counter(a.worker for a in out).values())


def test_bundles_stay_off_unless_asked_and_never_take_guessed_lengths():
    plain = Scheduler(clock=FakeClock(0.0))
    plain.add(items_with([10, 9, 8]))
    out = plain.dispatch(["w"])
    assert len(out) == 3 and all(a.bundle == 0 for a in out)
    sched = Scheduler(clock=FakeClock(0.0), bundle_max_s=240)
    guessed = urls(3)
    sched.add(guessed + items_with([10]))  # the guesses become the median: 10 s, "short", but not known to be
    assert sched.tasks[guessed[0].video_id].cost == 10 and not sched.tasks[guessed[0].video_id].cost_known
    out = sched.dispatch(["w"])
    assert len(out) == 4, "all four handed out (cold_ahead), so the check below sees the guesses"
    assert all(a.bundle == 0 for a in out), "a guessed length may be hours: never decoded whole in a bundle"


def test_a_retry_goes_alone_and_each_member_is_accounted_on_its_own(clock):
    sched = Scheduler(clock=clock, max_attempts=2, backoff_s=1.0, bundle_max_s=100, bundle_max_items=4)
    sched.add(items_with([30, 20, 10]))
    sched.register("w")
    first = sched.dispatch(["w"])
    assert costs_of(first) == [30, 20, 10] and len({a.bundle for a in first}) == 1 and first[0].bundle
    clock.t = 5.0
    sched.complete(first[0].item.video_id, "w")
    decision = sched.fail(first[1].item.video_id, "w", "HTTP 503")
    assert decision.retry
    # The bundle's last member is still running; the failed one waits out its back-off.
    assert sched.states()[first[2].item.video_id] == "assigned"
    assert (sched.in_flight, sched.queue_length) == (1, 1)
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


def test_a_dead_workers_bundle_is_requeued_and_its_videos_go_alone_next_time(clock):
    sched = Scheduler(clock=clock, bundle_max_s=100, bundle_max_items=4, prefetch_ahead_s=15, cold_ahead=0)
    sched.add(items_with([30, 20, 10]))
    sched.register("a")
    bundle = sched.dispatch(["a"])
    assert len(bundle) == 3 and len({a.bundle for a in bundle}) == 1 and bundle[0].bundle
    assert sorted(sched.worker_lost("a")) == sorted(ids_of(bundle))
    again = sched.dispatch(["b"])
    assert [(a.cost, a.attempt) for a in again] == [(30, 1)], "a death does not use up an attempt"
    assert again[0].bundle == 0, "one of them may have killed the worker: none is bundled again"
    clock.t = 30.0
    sched.complete(again[0].item.video_id, "b")
    # The 30 ran alone, so its completion taught the speed (1x) at once (were it still counted in the dead
    # bundle, nothing would be timed yet and cold_ahead 0 would hold the 10 back): 10 s of compute queues behind
    # the 20, under 15 s.
    rest = sched.dispatch(["b"])
    assert [(a.cost, a.attempt, a.bundle) for a in rest] == [(20, 1, 0), (10, 1, 0)]


def test_a_bundle_teaches_the_speed_once_with_its_whole_work(clock):
    sched = Scheduler(clock=clock, bundle_max_s=240, bundle_max_items=4, prefetch_ahead_s=70, cold_ahead=1)
    sched.add(items_with([100, 60, 50]))
    out = sched.dispatch(["w"])
    assert len(out) == 3 and len({a.bundle for a in out}) == 1
    clock.t = 21.0
    for a in out:  # the members end together
        sched.complete(a.item.video_id, "w")
    assert sched.finished
    # 210 s of audio in 21 s: 10x. Each 300 s video (too long to bundle) is then 30 s of compute: 0, 30, 60 s
    # ahead are under 70 s, so three queue behind the first. (Untimed, cold_ahead would give one; each member
    # timed alone, 100/21, 60/21 and 50/21, would average 3.3x: 90 s each, one.)
    sched.add(items_with([300] * 6, name="long"))
    assert costs_of(sched.dispatch(["w"])) == [300] * 4


def test_a_bundle_never_exceeds_max_held():
    sched = Scheduler(clock=FakeClock(0.0), bundle_max_s=1000, bundle_max_items=16, max_held=3)
    sched.add(items_with([5] * 10))
    out = sched.dispatch(["w"])
    assert len(out) == 3 and len({a.bundle for a in out}) == 1


@pytest.mark.parametrize("seed", range(10))
def test_bundled_runs_keep_every_invariant(seed):
    rng = random.Random(500 + seed)
    m = rng.choice([1, 2, 4])
    limit = rng.choice([60.0, 240.0])
    items = rng.choice([2, 4, 8])
    costs = [rng.choice([rng.uniform(1, 30), rng.uniform(30, 600)]) for _ in range(rng.randint(m + 1, 40))]
    # Bundles run faster than their parts (shared batches): pace 0.5 tests the learned speed too.
    run = simulate(costs, m, pace=0.5, on_turn=idle_first, bundle_max_s=limit, bundle_max_items=items)
    handed = run.handed
    assert costs_of(handed) == sorted(costs, reverse=True)
    assert sorted(ids_of(handed)) == sorted(run.sched.tasks), "each video handed out once"
    groups: dict[int, list] = {}
    for a in handed:
        if a.bundle:
            groups.setdefault(a.bundle, []).append(a)
    for g in groups.values():
        assert len(g) >= 2 and len({a.worker for a in g}) == 1
        assert sum(costs_of(g)) <= limit and len(g) <= items
        assert all(a.cost < limit and a.attempt == 1 for a in g)
