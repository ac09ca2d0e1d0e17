"""Streaming: how soon the first transcript appears, and how often each video page is fetched.

N video pages, each a distinct URL on tests/media_server.py's `/page/<file>` route that answers after
PAGE_DELAY_S (a slow site), each playing its own file (hard links of a few one-sentence clips). For each N and
mode (sequential; parallel with 2 workers on a local Ray, started once before any parallel run is timed),
`run_batch` runs over the N page URLs into a fresh OUT, and we measure:

  first_transcript_s  from run_batch's call to the first transcript file in OUT (a thread polls OUT every 50 ms;
                      `first_done_s` beside it is the same moment read back from the store: the first done
                      video's finished_at in the manifest)
  makespan_s          run_batch's wall
  resolve_s           from the call to the moment every page had been answered once (the server logs each
                      request's arrival; a page answers PAGE_DELAY_S later)
  page_requests_per_page   /page/ requests / N (goal 1.0: each page fetched once)
  compute_s           the same N files given as local files, same mode (no pages): the makespan's floor
                      (`compute_first_s`: that run's first transcript, the floor of first_transcript_s)
  first_download_s    from the call to the first request for a media file (the first download began)
  floor_s             max(resolve floor, compute_s); the resolve floor is ceil(N / c) x PAGE_DELAY_S, c = the
                      most first fetches of pages the engine had open at once (its resolver's concurrency)

Today's engine resolves every input one after another, then extracts each page again at download: N = 36 gives
a first transcript after ~44 s and 2 requests per page. Goal of the streaming engine: the first transcript a
few seconds after the first page answers, 1.0 requests per page, makespan / floor near 1.

    python -m benchmarks.bench_streaming [--quick] [--sizes 36,500] [--modes sequential,parallel]

Slow (N = 500 on today's engine takes ~20 min per mode): not in run_all.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import common
from .corpus import REPO, Clip, short_clips

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

SIZES = (36, 500)
QUICK_SIZES = (36,)
MODES = ("sequential", "parallel")
PARALLEL_WORKERS = 2
PAGE_DELAY_S = 1.0
"""How long each video page takes to answer: a slow site, so that resolving dominates the short clips' compute."""
WATCH_POLL_S = 0.05
PAGE_PREFIX = "/page/"


@dataclass
class PageStats:
    """What the server saw of one run's page requests."""

    page_requests: int
    """Every /page/ request, repeats included."""
    pages: int
    """Distinct pages requested at least once."""
    resolve_s: float
    """From the run's start to the moment every page had been answered once (NaN when none was asked)."""
    concurrency: int
    """Most first fetches of pages open at once: how many pages the engine resolves side by side."""
    media_requests: int = 0
    """Requests for the media files themselves (the downloads)."""
    first_download_s: float = float("nan")
    """From the run's start to the first media request."""


@dataclass
class Row:
    n: int
    mode: str
    first_transcript_s: float
    first_done_s: float
    makespan_s: float
    resolve_s: float
    first_download_s: float
    compute_s: float
    compute_first_s: float
    floor_s: float
    page_requests_per_page: float
    media_requests_per_page: float
    resolve_concurrency: int
    pages_peak: int


# --- pure helpers (tests/test_benchmarks_smoke.py) ----------------------------------------------------------------


def page_names(n: int, clips: list[Clip]) -> list[tuple[str, Path]]:
    """(served file name, clip it links to) for N distinct pages, dealing the clips round-robin.

    The names carry no extension: the page's URL is /page/<name>, and a URL path ending in a media extension is a
    direct link to the engine (download.is_direct_media_url), never resolved as a page. The files are probed by
    content (PyAV), so the missing extension costs nothing downstream.
    """
    return [(f"p{i:04d}", clips[i % len(clips)].path) for i in range(n)]


def peak_open(starts: list[float], duration_s: float) -> int:
    """Most intervals [start, start + duration) open at once (an end at the same instant as a start comes first)."""
    events = sorted([(s, 1) for s in starts] + [(s + duration_s, -1) for s in starts], key=lambda e: (e[0], e[1]))
    peak = open_now = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def page_stats(log: list[tuple[float, str]], t0: float, delay_s: float, names: list[str]) -> PageStats:
    """Page and media requests of one run from the server's (monotonic arrival time, path) log; times relative to
    `t0`. The log has arrivals only: a page is answered `delay_s` after it arrived."""
    first: dict[str, float] = {}
    total = 0
    media = {"/" + name for name in names}
    media_times = []
    for at, path in log:
        if path.startswith(PAGE_PREFIX):
            total += 1
            first.setdefault(path, at)
        elif path in media:
            media_times.append(at)
    resolve_s = max(first.values()) + delay_s - t0 if first else float("nan")
    first_download_s = min(media_times) - t0 if media_times else float("nan")
    return PageStats(total, len(first), resolve_s, peak_open(list(first.values()), delay_s), len(media_times),
                     first_download_s)


def resolve_floor_s(n: int, delay_s: float, concurrency: int) -> float:
    """The least time N pages of `delay_s` take with `concurrency` of them in flight at once."""
    return math.ceil(n / max(1, concurrency)) * delay_s


def first_done_s(entries: list[dict], t0_wall: float) -> float:
    """The first done video's finished_at (the store's clock: time.time) relative to the call."""
    done = [e["finished_at"] for e in entries if e.get("status") == "done" and e.get("finished_at")]
    return min(done) - t0_wall if done else float("nan")


def find_transcript(out_dir: Path) -> Path | None:
    """A finished transcript in OUT, if any: a visible file in a visible subfolder (OUT/<title>/transcript.txt).

    Outputs are written under a hidden temporary name and renamed (writers.atomic_write_bytes), and downloads live
    in OUT/.work, so a visible file there is a whole transcript; OUT's own files (manifest, store) are at the top.
    """
    try:
        with os.scandir(out_dir) as top:
            folders = [e.path for e in top if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return None
    for folder in folders:
        try:
            with os.scandir(folder) as inner:
                for entry in inner:
                    if entry.is_file() and not entry.name.startswith("."):
                        return Path(entry.path)
        except OSError:
            continue
    return None


def streaming_ratios(rows: list[Row]) -> dict[str, float]:
    """Per N and mode: first transcript seconds, page requests per page, makespan over its floor."""
    ratios: dict[str, float] = {}
    for r in rows:
        key = f"{'seq' if r.mode == 'sequential' else 'par'}_{r.n}"
        ratios[f"first_transcript_s_{key}"] = r.first_transcript_s
        ratios[f"page_requests_per_page_{key}"] = r.page_requests_per_page
        ratios[f"makespan_over_floor_{key}"] = common.ratio(r.makespan_s, r.floor_s)
    return ratios


# --- measuring ----------------------------------------------------------------------------------------------------


class TranscriptWatch:
    """A thread polling OUT until the first transcript appears; `seconds` is then its time since `t0`."""

    def __init__(self, out_dir: Path, t0: float, poll_s: float = WATCH_POLL_S) -> None:
        self.out_dir, self.t0, self.poll_s = out_dir, t0, poll_s
        self.seconds = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="transcript-watch", daemon=True)

    def start(self) -> "TranscriptWatch":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.seconds

    def _watch(self) -> None:
        # Ends on the first transcript or when the run is over (stop), so it never outlives its run.
        while not self._stop.wait(self.poll_s):
            if find_transcript(self.out_dir) is not None:
                self.seconds = time.monotonic() - self.t0
                return


@dataclass
class EngineRun:
    wall_s: float
    first_transcript_s: float
    first_done_s: float
    t0: float


def run_engine(inputs: list[str], out_dir: Path, *, parallel: bool, cores: int) -> EngineRun:
    """One run_batch over `inputs`, watched from a thread; raises unless every input ends done."""
    from bulk_transcribe.runs import run_batch
    from bulk_transcribe.config import RunConfig, TranscribeOptions

    config = RunConfig(
        inputs=tuple(inputs), out_dir=out_dir, parallel=parallel, workers=PARALLEL_WORKERS,
        # Sequential: one model with every core. Parallel: 0 lets the engine split the cores between its workers.
        transcribe=TranscribeOptions(beam_size=1, compute_type="int8", device="cpu",
                                     cpu_threads=0 if parallel else cores),
    )
    out_dir.mkdir(parents=True)
    t0, t0_wall = time.monotonic(), time.time()
    watch = TranscriptWatch(out_dir, t0).start()
    try:
        result = run_batch(config)
    finally:
        wall = time.monotonic() - t0
        first = watch.stop()
    if result.error or result.counts.get("done", 0) != len(inputs):
        raise RuntimeError(f"engine run failed: {result.error or result.counts}")
    entries = json.loads(result.manifest.read_text())["videos"]
    return EngineRun(wall, first, first_done_s(entries, t0_wall), t0)


def link_media(folder: Path, clips: list[Clip], n: int) -> list[str]:
    """N distinct files in `folder`, hard links of the clips (copied in first: a link cannot cross file systems)."""
    sources = folder / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    local = {c.path: shutil.copy(c.path, sources / c.path.name) for c in clips}
    names = []
    for name, clip in page_names(n, clips):
        target = folder / name
        if not target.exists():
            os.link(local[clip], target)
        names.append(name)
    return names


def measure(n: int, mode: str, media: Path, names: list[str], work: Path, cores: int) -> Row:
    from media_server import MediaServer

    parallel = mode == "parallel"
    compute = run_engine([str(media / name) for name in names], work / f"out_{mode}_{n}_files",
                         parallel=parallel, cores=cores)
    print(f"  {mode} N={n}: compute (local files) {compute.wall_s:.1f} s, first transcript "
          f"{compute.first_transcript_s:.1f} s", flush=True)
    server = MediaServer(media, page_delay_s=PAGE_DELAY_S).start()  # one per run: its counts are this run's
    try:
        run = run_engine([server.url(f"page/{name}") for name in names], work / f"out_{mode}_{n}_pages",
                         parallel=parallel, cores=cores)
        log = list(server.request_log)  # a copy: the run is over, but a handler thread could still append
        pages_peak = server.pages_peak
    finally:
        server.stop()
    stats = page_stats(log, run.t0, PAGE_DELAY_S, names)
    floor = max(resolve_floor_s(n, PAGE_DELAY_S, stats.concurrency), compute.wall_s)
    row = Row(n=n, mode=mode, first_transcript_s=run.first_transcript_s, first_done_s=run.first_done_s,
              makespan_s=run.wall_s, resolve_s=stats.resolve_s, first_download_s=stats.first_download_s,
              compute_s=compute.wall_s, compute_first_s=compute.first_transcript_s, floor_s=floor,
              page_requests_per_page=common.ratio(stats.page_requests, n),
              media_requests_per_page=common.ratio(stats.media_requests, n),
              resolve_concurrency=stats.concurrency, pages_peak=pages_peak)
    print(f"  {mode} N={n}: first transcript {row.first_transcript_s:.1f} s, makespan {row.makespan_s:.1f} s, "
          f"resolved {row.resolve_s:.1f} s, {row.page_requests_per_page:.2f} page requests per page", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated N (default 36,500; --quick: 36)")
    p.add_argument("--modes", default=",".join(MODES), help="sequential, parallel or both")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        p.error(f"unknown mode(s) {', '.join(sorted(set(modes) - set(MODES)))}; choose from {', '.join(MODES)}")
    from bulk_transcribe.config import available_cpus

    cores = available_cpus()
    clips = short_clips()
    work = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    media = work / "media"
    names = link_media(media, clips, max(sizes))
    print(f"streaming: N in {sizes}, modes {modes}, pages answer after {PAGE_DELAY_S:.1f} s, {len(clips)} clips of "
          f"{min(c.duration_s for c in clips):.1f}-{max(c.duration_s for c in clips):.1f} s linked, {cores} cores",
          flush=True)
    rows: list[Row] = []
    ray_started = False
    try:
        # Sequential first: it needs no Ray, so no idle Ray takes CPU from it; Ray then starts once, untimed.
        for mode in [m for m in MODES if m in modes]:
            if mode == "parallel" and not ray_started:
                from bulk_transcribe.parallel import cluster

                common.start_local_ray(cores)
                cluster.connect()
                ray_started = True
            for n in sizes:
                rows.append(measure(n, mode, media, names[:n], work, cores))
    finally:
        if ray_started:
            from bulk_transcribe.parallel import cluster

            cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(common.table(
        ["N", "mode", "first transcript s", "(store)", "(local files)", "resolved s", "first download s",
         "makespan s", "compute s", "floor s", "makespan / floor", "page req / page", "media req / page",
         "resolve conc.", "pages peak"],
        [[r.n, r.mode, r.first_transcript_s, r.first_done_s, r.compute_first_s, r.resolve_s, r.first_download_s,
          r.makespan_s, r.compute_s, r.floor_s, common.ratio(r.makespan_s, r.floor_s), r.page_requests_per_page,
          r.media_requests_per_page, r.resolve_concurrency, r.pages_peak] for r in rows]))
    print("goal: 1.0 page requests per page; first transcript a few seconds after the first page; makespan / floor ~1")
    result = {"sizes": sizes, "modes": modes, "page_delay_s": PAGE_DELAY_S, "workers": PARALLEL_WORKERS,
              "clips": [{"file": c.path.name, "duration_s": c.duration_s} for c in clips],
              "rows": [asdict(r) for r in rows], "ratios": streaming_ratios(rows)}
    return common.finish("streaming", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
