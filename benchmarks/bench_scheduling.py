"""Scheduling against the lower bound: how close each dispatch policy gets to max(longest, total / m).

Heavy-tailed (lognormal) video durations, 8 videos per worker, for m = 2 ... 64 workers, three policies:

  ours     Bulk Transcribe's Scheduler: longest-first, pull (the next video goes to whichever worker is free),
           with the engine's one-deep prefetch
  fifo     pull in input order (a plain work queue)
  striped  sort longest-first, then deal round-robin into fixed per-worker lists (static striping, what NVIDIA's
           speech data processor does)

Two measurements of the same policies:
  sim  an exact event simulation (our Scheduler class driven by a simulated clock), median over many draws:
       the policy alone, no noise
  ray  a real local Ray: the engine's Scheduler, in the driver as engine/driver.py runs it, hands work to
       simulated workers that sleep cost x scale (fractional CPUs, several simulated workers per host actor so 64
       workers do not need 64 processes on a 2-core box); time is scaled down so a run lasts about a second

    python -m benchmarks.bench_scheduling [--quick] [--seeds N] [--no-ray]
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from . import common

WORKER_COUNTS = (2, 4, 8, 16, 32, 64)
POLICIES = ("ours", "fifo", "striped")
VIDEOS_PER_WORKER = 8
SIGMA = 1.0
"""Lognormal shape: with sigma 1 the longest of 500 videos is ~20x the median, like a real channel's uploads."""

WORKERS_PER_HOST = 8


# ---- pure helpers (unit-tested) -------------------------------------------------------------------------------

def durations(n: int, seed: int, sigma: float = SIGMA) -> list[float]:
    """n lognormal durations (median 60 s), in a random (input) order."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in 60.0 * rng.lognormal(0.0, sigma, n)]


def lower_bound(costs: list[float], m: int) -> float:
    """No schedule on m identical workers can finish sooner than the longest video or the average load."""
    return max(max(costs), sum(costs) / m)


def makespan_fifo(costs: list[float], m: int) -> float:
    """Pull in input order: each video goes to the worker that frees up first."""
    free = [0.0] * m
    for c in costs:
        t = heapq.heappop(free)
        heapq.heappush(free, t + c)
    return max(free)


def makespan_striped(costs: list[float], m: int) -> float:
    """Sorted longest-first, dealt round-robin: worker k runs videos k, k+m, k+2m, ..."""
    ordered = sorted(costs, reverse=True)
    return max(sum(ordered[k::m]) for k in range(m))


def stripes(costs: list[float], m: int) -> list[list[int]]:
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    return [order[k::m] for k in range(m)]


def _items(costs: list[float]):
    from bulk_transcribe.models import SourceKind, VideoItem

    return [VideoItem(source=f"https://example.invalid/v{i}", kind=SourceKind.URL, input=f"v{i}", duration_s=c)
            for i, c in enumerate(costs)]


def makespan_ours(costs: list[float], m: int) -> float:
    """Our Scheduler on a simulated clock, driven like engine/driver.py: every worker registered before the first
    dispatch, every worker offered after every completion (one `dispatch` call), the scheduler deciding how many
    videos each holds ahead (prefetch by time)."""
    from bulk_transcribe.engine.scheduler import Scheduler

    now = [0.0]
    sched = Scheduler(clock=lambda: now[0])
    sched.add(_items(costs))
    workers = [f"w{k}" for k in range(m)]
    sched.register(*workers)
    held: dict[str, deque] = {w: deque() for w in workers}
    running: dict[str, str] = {}
    events: list[tuple[float, int, str]] = []
    seq = 0

    def start(w: str) -> None:
        nonlocal seq
        if w not in running and held[w]:
            vid, cost = held[w].popleft()
            running[w] = vid
            seq += 1
            heapq.heappush(events, (now[0] + cost, seq, w))

    def fill() -> None:
        for a in sched.dispatch(workers):
            held[a.worker].append((a.item.video_id, a.cost))
            start(a.worker)

    fill()
    while events:
        end, _, w = heapq.heappop(events)
        now[0] = end
        sched.complete(running.pop(w), w)
        start(w)
        fill()
    if not sched.finished:
        raise RuntimeError("simulation ended with videos left: the scheduler stopped handing out work")
    return now[0]


MAKESPAN: dict[str, Callable[[list[float], int], float]] = {
    "ours": makespan_ours, "fifo": makespan_fifo, "striped": makespan_striped,
}
SIM_POLICIES = tuple(MAKESPAN)


def simulate(m: int, seeds: range) -> dict[str, float]:
    """Median makespan / lower bound per policy over several draws of durations."""
    out = {}
    for policy, fn in MAKESPAN.items():
        ratios = []
        for seed in seeds:
            costs = durations(VIDEOS_PER_WORKER * m, seed)
            ratios.append(fn(costs, m) / lower_bound(costs, m))
        out[policy] = common.median(ratios)
    return out


# ---- on a real Ray -------------------------------------------------------------------------------------------

class WorkerHost:
    """Several simulated workers in one actor process. Each worker runs its videos one after another: a call
    books the worker's next free slot and sleeps until it ends, so a prefetched video waits for the current one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy_until: dict[str, float] = {}

    def run(self, worker: str, seconds: float) -> str:
        with self._lock:
            start = max(time.monotonic(), self._busy_until.get(worker, 0.0))
            end = start + seconds
            self._busy_until[worker] = end
        time.sleep(max(0.0, end - time.monotonic()))
        return worker

    def ping(self) -> bool:
        return True


def time_scale(m: int, quick: bool) -> float:
    """Wall seconds per simulated second. A fixed dispatch rate (videos per second, all workers together) keeps
    the driver's few-ms round trips small next to each video on a busy 2-core machine."""
    rate = 100.0 if quick else 60.0  # videos per wall second across all workers
    mean_cost = 60.0 * np.exp(SIGMA**2 / 2)
    mean_wall = max(0.08 if quick else 0.12, m / rate)
    return mean_wall / mean_cost


def ray_makespans(m: int, seed: int, hosts: list, quick: bool, tag: str) -> dict[str, float]:
    import ray

    from bulk_transcribe.engine.scheduler import Scheduler

    costs = durations(VIDEOS_PER_WORKER * m, seed)
    scale = time_scale(m, quick)
    workers = [f"{tag}-m{m}-w{k}" for k in range(m)]
    host_of = {w: hosts[k // WORKERS_PER_HOST] for k, w in enumerate(workers)}
    out = {}

    # ours: the engine's Scheduler in this (driver) process, driven like engine/driver.py: every worker offered
    # each turn, the scheduler deciding how far ahead each one holds work.
    sched = Scheduler()
    items = _items(costs)
    sched.add(items)
    sched.register(*workers)
    cost_of = {it.video_id: c for it, c in zip(items, costs)}
    inflight: dict = {}
    t0 = time.monotonic()

    def fill() -> None:
        for a in sched.dispatch(workers):
            ref = host_of[a.worker].run.remote(a.worker, cost_of[a.item.video_id] * scale)
            inflight[ref] = (a.worker, a.item.video_id)

    fill()
    while inflight:
        done, _ = ray.wait(list(inflight), num_returns=1)
        w, vid = inflight.pop(done[0])
        sched.complete(vid, w)
        fill()
    out["ours"] = (time.monotonic() - t0) / scale

    # fifo: a plain queue in input order, pulled by whichever worker is free (no prefetch needed: no download).
    queue = deque(range(len(costs)))
    inflight = {}
    t0 = time.monotonic()
    for w in workers:
        if queue:
            inflight[host_of[w].run.remote(w, costs[queue.popleft()] * scale)] = w
    while inflight:
        done, _ = ray.wait(list(inflight), num_returns=1)
        w = inflight.pop(done[0])
        if queue:
            inflight[host_of[w].run.remote(w, costs[queue.popleft()] * scale)] = w
    out["fifo"] = (time.monotonic() - t0) / scale

    # striped: each worker gets its fixed list up front and works through it.
    t0 = time.monotonic()
    refs = [host_of[w].run.remote(w, sum(costs[i] for i in stripe) * scale)
            for w, stripe in zip(workers, stripes(costs, m))]
    ray.get(refs)
    out["striped"] = (time.monotonic() - t0) / scale
    lb = lower_bound(costs, m)
    return {p: v / lb for p, v in out.items()}


def run_ray(counts: tuple[int, ...], seeds: range, quick: bool, log=print) -> dict[int, dict[str, float]]:
    import ray

    from ray import cloudpickle

    # WorkerHost travels by value: Ray's worker processes need not find the benchmarks package on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    common.start_local_ray(2, namespace="bench_scheduling")
    try:
        n_hosts = -(-max(counts) // WORKERS_PER_HOST)
        host_cls = ray.remote(WorkerHost).options(num_cpus=0.01, max_concurrency=4 * WORKERS_PER_HOST)
        hosts = [host_cls.remote() for _ in range(n_hosts)]
        ray.get([h.ping.remote() for h in hosts])
        results = {}
        for m in counts:
            per_seed = [ray_makespans(m, seed, hosts, quick, f"s{seed}") for seed in seeds]
            results[m] = {p: common.median(r[p] for r in per_seed) for p in POLICIES}
            log(f"  ray m={m:>2}: " + "  ".join(f"{p} {results[m][p]:.3f}" for p in POLICIES))
        return results
    finally:
        ray.shutdown()


def ratios_from(sim: dict[int, dict[str, float]], real: dict[int, dict[str, float]] | None) -> dict[str, float]:
    """The RATIOS line: worst case over m of each policy (sim and ray), and ours' margin over the best rival."""
    out: dict[str, float] = {}
    for name, table in (("sim", sim), ("ray", real)):
        if not table:
            continue
        for p in (SIM_POLICIES if name == "sim" else POLICIES):
            out[f"{name}_{p}_max"] = max(row[p] for row in table.values())
        # < 1 everywhere means ours beat both alternatives at every m.
        out[f"{name}_ours_over_best_rival_max"] = max(row["ours"] / min(row["fifo"], row["striped"])
                                                      for row in table.values())
    return out


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=None, help="draws per m: sim default 200 (50 quick); ray 3 (1)")
    p.add_argument("--no-ray", action="store_true", help="simulation only")
    args = p.parse_args(argv)
    sim_seeds = range(args.seeds or (50 if args.quick else 200))
    ray_seeds = range(args.seeds or 1) if args.quick else range(args.seeds or 3)
    print(f"scheduling: lognormal(sigma={SIGMA}) durations, {VIDEOS_PER_WORKER} videos per worker, "
          f"m = {', '.join(map(str, WORKER_COUNTS))}; sim over {len(sim_seeds)} draws, ray over {len(ray_seeds)}",
          flush=True)
    sim = {m: simulate(m, sim_seeds) for m in WORKER_COUNTS}
    real = None if args.no_ray else run_ray(WORKER_COUNTS, ray_seeds, args.quick,
                                            log=lambda s: print(s, flush=True))
    headers = ["m"] + [f"sim {p}" for p in SIM_POLICIES] + ([f"ray {p}" for p in POLICIES] if real else [])
    rows = [[m] + [sim[m][p] for p in SIM_POLICIES] + ([real[m][p] for p in POLICIES] if real else [])
            for m in WORKER_COUNTS]
    print("makespan / max(longest, total/m), median over draws (1.000 = optimal):")
    print(common.table(headers, rows))
    print("goal: ours <= 1.05 at every m, and below both fifo and striped")
    ratios = ratios_from(sim, real)
    result = {"worker_counts": list(WORKER_COUNTS), "sim": {str(m): v for m, v in sim.items()},
              "ray": {str(m): v for m, v in real.items()} if real else None,
              "sim_draws": len(sim_seeds), "ray_draws": len(ray_seeds), "ratios": ratios}
    return common.finish("scheduling", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
