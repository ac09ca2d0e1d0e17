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


def run_engine(inputs: list[str], out_dir: Path, *, parallel: bool, cores: int) -> tuple[float, float]:
    """(wall seconds of run_batch, span from the first video's start to the last one's end)."""
    import json

    from bulk_transcribe.batch import run_batch
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
    return wall, span(json.loads(result.manifest.read_text())["videos"])


def fetch_all(urls: list[str]) -> float:
    t0 = time.monotonic()
    for url in urls:
        with urllib.request.urlopen(url, timeout=600) as response:
            while response.read(1 << 16):
                pass
    return time.monotonic() - t0


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
        compute_wall, compute = run_engine([str(media / c.path.name) for c in clips], work / "out_c",
                                           parallel=True, cores=cores)
        rate = max(4096, int(total_bytes / compute))  # download of the whole set ~ its transcription
        server = MediaServer(media, slow_bytes_per_s=rate).start()
        urls = [server.url(f"slow/{c.path.name}") for c in clips]
        print(f"  C compute {compute:.1f} s -> throttle {rate / 1000:.0f} kB/s", flush=True)
        download = fetch_all(urls)
        print(f"  D download {download:.1f} s", flush=True)
        pipeline_wall, pipeline = run_engine(urls, work / "out_p", parallel=True, cores=cores)
        print(f"  P pipeline {pipeline:.1f} s", flush=True)
        first_download = (media / clips[0].path.name).stat().st_size / rate
        sequential = None
        if not args.quick:
            cluster.shutdown()  # the sequential runner needs no Ray; give its cores back
            _, sequential = run_engine(urls, work / "out_s", parallel=False, cores=cores)
            print(f"  S sequential {sequential:.1f} s", flush=True)
    finally:
        if server is not None:
            server.stop()
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    ratios = overlap_ratios(pipeline, download, compute)
    if sequential is not None:
        ratios["sequential_over_sum"] = common.ratio(sequential, download + compute)
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
              "ratios": ratios}
    return common.finish("overlap", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
