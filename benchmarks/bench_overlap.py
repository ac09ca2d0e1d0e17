"""Download overlap: does prefetch hide downloads behind transcription?

Media is served by tests/media_server.py's real HTTP server on 127.0.0.1 through its /slow/ route, throttled so
that downloading the whole set takes about as long as transcribing it. Measured, in one process:

  C  compute: the parallel engine (1 worker, every core) on the same files read locally (no download)
  D  download: every URL fetched one after another at the throttled rate (no model)
  P  pipeline: the parallel engine (1 worker) on the URLs; the worker downloads the next video while it
     transcribes the current one
  S  (full mode) the sequential runner on the URLs, which downloads then transcribes, one video at a time

C, P and S are spans from the first video's start to the last one's end (the manifest's times), so the worker's
start-up (process, model load) is in none of them; Ray starts once, before C. Perfect overlap gives
P = max(D, C) (plus the first download, which nothing can hide: `ideal_over_max`); none gives P = D + C.
Goal: P / max(D, C) <= 1.15.

Replay: the per-clip download times (D's) and compute times (C's manifest: duration / speed) are replayed through
the real Scheduler in a discrete-event model of one worker (downloads one at a time in the order handed out, the
model taking them as they arrive, a dispatch after every completion), for the old one-ahead rule and for several
`prefetch_ahead_s`: what each rule would give on this machine's own timings, which is how the default is chosen.

    python -m benchmarks.bench_overlap [--quick]
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import common
from .corpus import REPO, Clip, corpus, total_audio_s

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))


def overlap_ratios(pipeline_s: float, download_s: float, compute_s: float) -> dict[str, float]:
    """P / max(D, C) (1.0 = downloads fully hidden) and P / (D + C) (1.0 = no overlap at all)."""
    return {
        "pipeline_over_max": common.ratio(pipeline_s, max(download_s, compute_s)),
        "pipeline_over_sum": common.ratio(pipeline_s, download_s + compute_s),
        "download_over_compute": common.ratio(download_s, compute_s),
    }


def span(entries: list[dict]) -> float:
    """First video started to last video finished (manifest times): the run without its worker start-up."""
    return max(e["finished_at"] for e in entries) - min(e["started_at"] for e in entries)


def run_engine(inputs: list[str], out_dir: Path, *, parallel: bool, cores: int) -> tuple[float, float, list[dict]]:
    """(wall seconds of run_batch, span from the first video's start to the last one's end, manifest entries)."""
    import json

    from bulk_transcribe.runs import run_batch
    from bulk_transcribe.config import DownloadOptions, RunConfig, TranscribeOptions

    config = RunConfig(
        inputs=tuple(inputs), out_dir=out_dir, parallel=parallel, workers=1,
        transcribe=TranscribeOptions(beam_size=1, compute_type="int8", device="cpu", cpu_threads=cores),
        # One download at a time: the server throttles each connection, so this keeps D (downloads one after
        # another) the true cost of the downloads that prefetch must hide.
        download=DownloadOptions(retries=1, max_concurrent=1),
    )
    t0 = time.monotonic()
    result = run_batch(config)
    wall = time.monotonic() - t0
    if result.error or result.counts.get("done", 0) != len(inputs):
        raise RuntimeError(f"engine run failed: {result.error or result.counts}")
    entries = json.loads(result.manifest.read_text())["videos"]
    return wall, span(entries), entries


def fetch_each(urls: list[str]) -> list[float]:
    """Seconds each URL takes to download, one after another."""
    times = []
    for url in urls:
        t0 = time.monotonic()
        with urllib.request.urlopen(url, timeout=600) as response:
            while response.read(1 << 16):
                pass
        times.append(time.monotonic() - t0)
    return times


def compute_times(entries: list[dict], names: list[str]) -> list[float]:
    """Model seconds per clip (duration / speed), in the order of `names`, from a run's manifest entries."""
    by_name = {Path(e["source"]).name: (e["duration_s"] / e["speed_x"]) if e.get("speed_x") else e.get("elapsed_s")
               for e in entries}
    return [by_name.get(name) or 0.0 for name in names]


def replay(download_s: list[float], compute_s: list[float], **options) -> float:
    """Span of one worker under Scheduler(**options): downloads one at a time in the order handed out, the model
    taking downloaded videos in arrival order, a dispatch at the start and after every completion. Durations are
    unknown to the scheduler, as for the benchmark's URLs."""
    from bulk_transcribe.models import SourceKind, VideoItem
    from bulk_transcribe.engine.scheduler import Scheduler

    now = [0.0]
    sched = Scheduler(clock=lambda: now[0], **options)
    items = [VideoItem(f"http://127.0.0.1/replay/{i}", SourceKind.URL, "x") for i in range(len(download_s))]
    index = {item.video_id: i for i, item in enumerate(items)}
    sched.add(items)
    sched.register("w")
    to_fetch = [index[a.item.video_id] for a in sched.dispatch(["w"])]
    fetched: list[int] = []
    fetching: tuple[float, int] | None = None
    running: tuple[float, int] | None = None
    while to_fetch or fetched or fetching or running:
        if fetching is None and to_fetch:
            i = to_fetch.pop(0)
            fetching = (now[0] + download_s[i], i)
        if running is None and fetched:
            i = fetched.pop(0)
            running = (now[0] + compute_s[i], i)
        ends = [e for e in (fetching, running) if e is not None]
        now[0], i = min(ends)
        if fetching is not None and (now[0], i) == fetching:
            fetched.append(i)
            fetching = None
        else:
            running = None
            sched.complete(items[i].video_id, "w")
            to_fetch += [index[a.item.video_id] for a in sched.dispatch(["w"])]
    assert sched.finished
    return now[0]


def replay_all(download_s: list[float], compute_s: list[float], max_dc: float) -> dict[str, float]:
    """Every REPLAY_RULES span on these timings, printed beside its ratio to max(D, C)."""
    spans = {rule: replay(download_s, compute_s, **options) for rule, options in REPLAY_RULES.items()}
    print(common.table(["replay rule", "span s", "/ max(D, C)"],
                       [[rule, span_s, span_s / max_dc] for rule, span_s in spans.items()]))
    return spans


DEFAULT_RULE = "ahead 20 s"
"""The rule the Scheduler's defaults give (PREFETCH_AHEAD_S = 20, COLD_AHEAD = 4, MAX_HELD = 8)."""

REPLAY_RULES: dict[str, dict] = {
    "one ahead (old)": {"prefetch_ahead_s": float("inf"), "max_held": 2, "cold_ahead": 1},
    **{f"ahead {s:g} s": {"prefetch_ahead_s": float(s)} for s in (2, 5, 10, 20, 40)},
    **{f"ahead 20 s, cold {k}": {"cold_ahead": k} for k in (1, 2)},
}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    from media_server import MediaServer

    from bulk_transcribe.config import available_cpus
    from bulk_transcribe.parallel import cluster

    cores = available_cpus()
    clips: list[Clip] = corpus(True)
    if args.quick:
        clips = clips[2:]  # ~1.6 minutes of speech in 6 clips: enough to overlap, short enough for bench-quick
    # A neutral input order (durations of URLs are unknown before download, so the engine keeps input order).
    random.Random(3).shuffle(clips)
    audio = total_audio_s(clips)
    work = Path(tempfile.mkdtemp(prefix="bench-overlap-"))
    media = work / "media"
    media.mkdir()
    for c in clips:
        shutil.copy(c.path, media / c.path.name)
    total_bytes = sum((media / c.path.name).stat().st_size for c in clips)
    print(f"overlap: {len(clips)} clips, {audio:.0f} s of speech, {total_bytes / 1e6:.1f} MB, 1 worker x "
          f"{cores} threads", flush=True)
    common.start_local_ray(cores)
    cluster.connect()
    server = None
    try:
        compute_wall, compute, compute_entries = run_engine([str(media / c.path.name) for c in clips],
                                                            work / "out_c", parallel=True, cores=cores)
        rate = max(4096, int(total_bytes / compute))  # download of the whole set ~ its transcription
        server = MediaServer(media, slow_bytes_per_s=rate).start()
        urls = [server.url(f"slow/{c.path.name}") for c in clips]
        print(f"  C compute {compute:.1f} s -> throttle {rate / 1000:.0f} kB/s", flush=True)
        each_download = fetch_each(urls)
        download = sum(each_download)
        print(f"  D download {download:.1f} s", flush=True)
        pipeline_wall, pipeline, _ = run_engine(urls, work / "out_p", parallel=True, cores=cores)
        print(f"  P pipeline {pipeline:.1f} s", flush=True)
        first_download = (media / clips[0].path.name).stat().st_size / rate
        sequential = None
        if not args.quick:
            cluster.shutdown()  # the sequential runner needs no Ray; give its cores back
            _, sequential, _ = run_engine(urls, work / "out_s", parallel=False, cores=cores)
            print(f"  S sequential {sequential:.1f} s", flush=True)
    finally:
        if server is not None:
            server.stop()
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    each_compute = compute_times(compute_entries, [c.path.name for c in clips])
    replayed = replay_all(each_download, each_compute, max(download, compute))
    ratios = overlap_ratios(pipeline, download, compute)
    if sequential is not None:
        ratios["sequential_over_sum"] = common.ratio(sequential, download + compute)
    ratios["replay_old_over_max"] = common.ratio(replayed["one ahead (old)"], max(download, compute))
    ratios["replay_default_over_max"] = common.ratio(replayed[DEFAULT_RULE], max(download, compute))
    # Even perfect prefetch cannot hide the first download: nothing is transcribing yet.
    ratios["ideal_over_max"] = common.ratio(first_download + max(download - first_download, compute),
                                            max(download, compute))
    rows = [["C compute (local files)", compute], ["D download (throttled)", download],
            ["max(D, C)", max(download, compute)], ["D + C", download + compute], ["P pipeline (prefetch)", pipeline]]
    if sequential is not None:
        rows.append(["S sequential (no prefetch)", sequential])
    print(common.table(["what", "wall s"], rows))
    print("goal: P / max(D, C) <= 1.15")
    result = {"clips": len(clips), "audio_s": audio, "bytes": total_bytes, "rate_bytes_per_s": rate,
              "compute_s": compute, "download_s": download, "pipeline_s": pipeline, "sequential_s": sequential,
              "compute_wall_s": compute_wall, "pipeline_wall_s": pipeline_wall, "first_download_s": first_download,
              "download_each_s": each_download, "compute_each_s": each_compute, "replay_s": replayed,
              "ratios": ratios}
    return common.finish("overlap", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
