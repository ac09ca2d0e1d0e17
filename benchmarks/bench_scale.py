"""Cost at scale: does the per-video cost of the engine's bookkeeping stay flat from 1,000 to 10,000 videos?

Simulated videos (no media, no model); for each batch size:

  dispatch   the Scheduler (plain class, in the driver as engine/driver.py runs it: every worker offered each
             turn), queue + hand out + complete every video over 8 workers: us/video
  snapshot   ProgressTracker.snapshot() latency while a run is in flight (one progress event, then a snapshot,
             as a polling screen sees it), and the same snapshot fetched from the real progress actor over Ray
  memory     resident memory the progress actor gains when it holds the run's videos (bytes/video)
  store      the SQLite session store: register every video and record it done; file size (bytes/video) and
             write cost (us/video)
  dashboard  (1,000 rows) the status table's view model (views.status_frame) and a real Streamlit render of it
             with AppTest

    python -m benchmarks.bench_scale [--quick] [--sizes 1000,10000] [--no-ray] [--no-dashboard]
"""

from __future__ import annotations

import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import common

WORKERS = 8
ACTIVE = 8  # videos in flight while snapshots are polled
DASHBOARD_ROWS = 1000


def items(n: int, tag: str = "v"):
    from bulk_transcribe.models import SourceKind, VideoItem

    return [VideoItem(source=f"https://example.invalid/watch?v={tag}{i:06d}", kind=SourceKind.URL,
                      input=f"{tag}{i}", title=f"Simulated video number {i} about nothing in particular",
                      duration_s=30.0 + (i * 7919) % 3600) for i in range(n)]


def flatness(per_video: dict[int, float]) -> float:
    """Per-video cost at the largest size over the smallest: 1.0 = perfectly flat (linear total cost)."""
    sizes = sorted(per_video)
    return common.ratio(per_video[sizes[-1]], per_video[sizes[0]])


# ---- dispatch ------------------------------------------------------------------------------------------------

def dispatch_cost(n: int) -> float:
    """Microseconds per video to queue, hand out and complete n videos over WORKERS workers, driven the way
    engine/driver.py drives the scheduler: every ready worker offered each turn, the scheduler deciding depth."""
    from bulk_transcribe.engine.scheduler import Scheduler

    batch = items(n)
    t0 = time.perf_counter()
    sched = Scheduler()
    sched.add(batch)
    workers = [f"w{k}" for k in range(WORKERS)]
    sched.register(*workers)
    held: dict[str, list[str]] = {w: [] for w in workers}
    for a in sched.dispatch(workers):
        held[a.worker].append(a.item.video_id)
    while any(held.values()):
        for w in workers:
            if held[w]:
                sched.complete(held[w].pop(0), w)
        for a in sched.dispatch(workers):
            held[a.worker].append(a.item.video_id)
    return (time.perf_counter() - t0) / n * 1e6


# ---- progress tracker ------------------------------------------------------------------------------------------

def tracker_with(n: int):
    from bulk_transcribe.models import EventKind, ProgressEvent
    from bulk_transcribe.progress import ProgressTracker

    tracker = ProgressTracker("bench-scale", "parallel")
    batch = items(n)
    tracker.add_videos(batch)
    # Half the run done, ACTIVE videos transcribing: the shape a screen polls most of the time.
    for it in batch[: n // 2]:
        tracker.apply(ProgressEvent(it.video_id, EventKind.TRANSCRIBE_STARTED, worker="w0"))
        tracker.apply(ProgressEvent(it.video_id, EventKind.DONE, worker="w0", speed_x=20.0))
    active = batch[n // 2: n // 2 + ACTIVE]
    for it in active:
        tracker.apply(ProgressEvent(it.video_id, EventKind.TRANSCRIBE_STARTED, worker="w1"))
    return tracker, active


def snapshot_latency(n: int, polls: int = 200) -> dict[str, float]:
    """Median ms of snapshot() right after one progress event (a cache miss), and of a repeat poll (a hit)."""
    from bulk_transcribe.models import EventKind, ProgressEvent

    tracker, active = tracker_with(n)
    t = time.perf_counter()
    tracker.snapshot()
    first = time.perf_counter() - t
    miss, hit = [], []
    for i in range(polls):
        it = active[i % len(active)]
        tracker.apply(ProgressEvent(it.video_id, EventKind.TRANSCRIBE_PROGRESS, transcribed_s=float(i % 30),
                                    text="and so on"))
        t = time.perf_counter()
        tracker.snapshot()
        miss.append(time.perf_counter() - t)
        t = time.perf_counter()
        tracker.snapshot()
        hit.append(time.perf_counter() - t)
    return {"first_ms": first * 1e3, "after_event_ms": statistics.median(miss) * 1e3,
            "cached_ms": statistics.median(hit) * 1e3}


# ---- the progress actor over Ray -------------------------------------------------------------------------------

def actor_figures(sizes: list[int], polls: int = 20, log=print) -> dict[int, dict[str, float]]:
    """Per size: progress actor RSS growth per video and remote snapshot() latency (pickled over Ray)."""
    import ray

    from bulk_transcribe.models import EventKind, ProgressEvent
    from bulk_transcribe.parallel.progress_actor import AsyncProgressActor

    class MeasuredProgressActor(AsyncProgressActor):
        """The engine's progress actor plus a way to read its own memory."""

        async def rss(self) -> int:
            import gc as _gc

            _gc.collect()
            for line in open(f"/proc/{os.getpid()}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
            return 0

    common.start_local_ray(2, namespace="bench_scale")
    out = {}
    try:
        cls = ray.remote(MeasuredProgressActor).options(num_cpus=0)
        for n in sizes:
            # Two actor processes of the same class: one empty, one holding the run; the difference in resident
            # memory is what the run's videos cost (an actor cannot be asked to forget its state to compare).
            empty = cls.remote(f"bench-{n}-empty", "parallel", [], None)
            ray.get(empty.snapshot.remote())
            base = ray.get(empty.rss.remote())
            ray.kill(empty)
            batch = items(n)
            actor2 = cls.remote(f"bench-{n}", "parallel", batch, None)
            events = []
            for it in batch[: n // 2]:
                events.append(ProgressEvent(it.video_id, EventKind.TRANSCRIBE_STARTED, worker="w0"))
                events.append(ProgressEvent(it.video_id, EventKind.DONE, worker="w0", speed_x=20.0))
            for start in range(0, len(events), 2000):
                ray.get(actor2.apply_events.remote(events[start:start + 2000]))
            grown = ray.get(actor2.rss.remote())
            lat = []
            for i in range(polls):
                ray.get(actor2.apply_events.remote([ProgressEvent(batch[n // 2].video_id,
                                                                  EventKind.TRANSCRIBE_PROGRESS,
                                                                  transcribed_s=float(i))]))
                t = time.perf_counter()
                ray.get(actor2.snapshot.remote())
                lat.append(time.perf_counter() - t)
            out[n] = {"rss_per_video_bytes": (grown - base) / n, "rss_total_mb": grown / 1e6,
                      "remote_snapshot_ms": statistics.median(lat) * 1e3}
            log(f"  progress actor n={n}: +{(grown - base) / 1e6:.1f} MB, remote snapshot "
                f"{out[n]['remote_snapshot_ms']:.1f} ms")
            ray.kill(actor2)
    finally:
        ray.shutdown()
    return out


# ---- SQLite store -------------------------------------------------------------------------------------------

def store_figures(n: int) -> dict[str, float]:
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.models import EventKind, ProgressEvent
    from bulk_transcribe.session_manager import SessionStore

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        db = Path(tmp) / "state.sqlite"
        store = SessionStore(db)
        run_id = store.begin_run(RunConfig(out_dir=Path(tmp)), "parallel")
        batch = items(n)
        t = time.perf_counter()
        store.register_videos(run_id, batch)
        register_s = time.perf_counter() - t
        t = time.perf_counter()
        for it in batch:
            store.apply_event(ProgressEvent(it.video_id, EventKind.TRANSCRIBE_STARTED, worker="w0"))
            store.apply_event(ProgressEvent(
                it.video_id, EventKind.DONE, worker="w0", speed_x=20.0,
                outputs={f: f"{tmp}/{it.video_id}/transcript.{f}" for f in ("txt", "srt", "vtt", "json")}))
        events_s = time.perf_counter() - t
        t = time.perf_counter()
        store.snapshot(run_id)
        snapshot_s = time.perf_counter() - t
        store.close()
        size = sum(p.stat().st_size for p in Path(tmp).glob("state.sqlite*"))
    return {"bytes_per_video": size / n, "size_mb": size / 1e6, "register_us_per_video": register_s / n * 1e6,
            "events_us_per_video": events_s / n * 1e6, "store_snapshot_ms": snapshot_s * 1e3}


# ---- dashboard ----------------------------------------------------------------------------------------------

_APP = '''
import pickle
import streamlit as st
from bulk_transcribe.dashboard import views
with open({path!r}, "rb") as f:
    snapshot = pickle.load(f)
st.dataframe(views.status_frame(snapshot), hide_index=True)
'''


def dashboard_figures(rows: int = DASHBOARD_ROWS, repeats: int = 5) -> dict[str, float] | None:
    try:
        from bulk_transcribe.dashboard import views
    except ImportError:
        return None
    tracker, _ = tracker_with(rows)
    snapshot = tracker.snapshot()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        views.status_frame(snapshot)
        times.append(time.perf_counter() - t)
    out = {"view_model_ms": statistics.median(times) * 1e3}
    try:
        from streamlit.testing.v1 import AppTest
    except ImportError:
        return out
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        pkl = Path(tmp) / "snapshot.pkl"
        pkl.write_bytes(pickle.dumps(snapshot))
        script = Path(tmp) / "table_app.py"
        script.write_text(_APP.format(path=str(pkl)))
        runs = []
        for _ in range(3):
            at = AppTest.from_file(str(script), default_timeout=60)
            t = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - t)
            if at.exception:
                raise RuntimeError(f"dashboard table failed to render: {at.exception[0].message}")
            if len(at.dataframe) != 1 or len(at.dataframe[0].value) != rows:
                raise RuntimeError("dashboard table did not render every row")
        out["apptest_render_ms"] = statistics.median(runs) * 1e3
    return out


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--no-dashboard", action="store_true")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"scale: {', '.join(f'{n:,}' for n in sizes)} simulated videos", flush=True)
    dispatch_cost(10)  # warm up (imports)
    store_figures(10)
    per: dict[int, dict[str, float]] = {}
    for n in sizes:
        row = {"dispatch_us_per_video": dispatch_cost(n)}
        row.update(snapshot_latency(n))
        row.update(store_figures(n))
        per[n] = row
        print(f"  n={n:,}: dispatch {row['dispatch_us_per_video']:.0f} us/video, snapshot {row['after_event_ms']:.2f} ms, "
              f"store {row['bytes_per_video']:.0f} B/video", flush=True)
    if not args.no_ray:
        for n, fig in actor_figures(sizes, log=lambda s: print(s, flush=True)).items():
            per[n].update(fig)
    dash = None if args.no_dashboard else dashboard_figures()
    keys = list(per[sizes[0]])
    print(common.table(["figure"] + [f"n={n:,}" for n in sizes], [[k] + [per[n][k] for n in sizes] for k in keys]))
    if dash:
        print(f"dashboard, {DASHBOARD_ROWS:,} rows: view model {dash['view_model_ms']:.1f} ms"
              + (f", AppTest render {dash['apptest_render_ms']:.0f} ms" if "apptest_render_ms" in dash else ""))
    big = max(sizes)
    ratios = {
        "dispatch_flatness": flatness({n: per[n]["dispatch_us_per_video"] for n in sizes}),
        "store_write_flatness": flatness({n: per[n]["events_us_per_video"] for n in sizes}),
        "store_bytes_flatness": flatness({n: per[n]["bytes_per_video"] for n in sizes}),
        f"dispatch_us_per_video_{big}": per[big]["dispatch_us_per_video"],
        f"snapshot_ms_{big}": per[big]["after_event_ms"],
        f"store_bytes_per_video_{big}": per[big]["bytes_per_video"],
    }
    if "rss_per_video_bytes" in per[big]:
        ratios[f"actor_rss_bytes_per_video_{big}"] = per[big]["rss_per_video_bytes"]
        ratios[f"remote_snapshot_ms_{big}"] = per[big]["remote_snapshot_ms"]
    if dash:
        ratios.update({f"dashboard_{k}": v for k, v in dash.items()})
    print("goal: per-video figures flat (flatness ~1.0; > 2 means the cost grows with the batch)")
    result = {"sizes": sizes, "per_size": {str(n): v for n, v in per.items()}, "dashboard": dash, "ratios": ratios}
    return common.finish("scale", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
