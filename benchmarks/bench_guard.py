"""The transfer guard's cost and what it buys, side by side in one run, against tests/media_server.py on 127.0.0.1.

  download  a large direct media URL fetched by yt-dlp with the same params through GuardedYDL (every response
            guarded: read1, byte counts, a watchdog thread) and through a plain YoutubeDL (what ran before the
            guard); medians of 5, alternating which goes first. Goal: guarded / plain wall <= 1.05.
  pages     peak RSS growth of a process resolving one page, with the 16 MiB page cap and without it
            (`max_page_bytes=0`): a 400 MB page, and (full mode) a 400 KB gzip body that inflates to 400 MB.
            Each in its own process (ru_maxrss). Goal: capped growth well under 300 MB.
  cancel    seconds from a cancel to the fetch returning, on a file trickled at 20 bytes/s (before the guard
            the first chance to cancel came after yt-dlp's first 1 KiB block: ~51 s here).

    python -m benchmarks.bench_guard [--quick]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import common
from .corpus import REPO

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

_PAGE_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from media_server import MediaServer
from bulk_transcribe.config import DownloadOptions
from bulk_transcribe.inputs import resolve_inputs
import tempfile, pathlib
server = MediaServer(pathlib.Path(tempfile.mkdtemp())).start()
route, cap = sys.argv[2], int(sys.argv[3])
if route == "gzip-bomb":
    server.gzip_bomb()
resolve_inputs([server.url("html/warm-up")])  # yt-dlp's imports, outside the figure
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(item,) = resolve_inputs([server.url(route + "/x")], options=DownloadOptions(max_page_bytes=cap)).items
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (peak - base) / 1024, "error": item.error}))
server.stop()
"""


def page_growth(route: str, cap: int) -> tuple[float, str]:
    run = subprocess.run([sys.executable, "-c", _PAGE_CHILD, str(REPO / "tests"), route, str(cap)],
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    data = json.loads(run.stdout.strip().splitlines()[-1])
    return data["growth_mb"], data["error"] or ""


def plain_fetch(url: str, folder: Path) -> float:
    import yt_dlp

    from bulk_transcribe.config import DownloadOptions
    from bulk_transcribe.media.download import AUDIO_FORMAT, ytdlp_params

    params = ytdlp_params(DownloadOptions(), format=AUDIO_FORMAT, outtmpl={"default": str(folder / "x.%(ext)s")},
                          overwrites=True, continuedl=False)
    t0 = time.monotonic()
    with yt_dlp.YoutubeDL(params) as ydl:
        ydl.process_ie_result({"id": "x", "title": "x", "url": url, "ext": "mp3"}, download=True)
    return time.monotonic() - t0


def guarded_fetch(url: str, folder: Path) -> float:
    """The same download through GuardedYDL (what AudioDownloader uses): the guard's cost alone."""
    from bulk_transcribe.config import DownloadOptions
    from bulk_transcribe.media.download import AUDIO_FORMAT, transfer_guard, ytdlp_params
    from bulk_transcribe.media.guard import GuardedYDL

    params = ytdlp_params(DownloadOptions(), format=AUDIO_FORMAT, outtmpl={"default": str(folder / "x.%(ext)s")},
                          overwrites=True, continuedl=False)
    guard = transfer_guard(DownloadOptions(), should_cancel=lambda: False)
    guard.page_cap = None
    t0 = time.monotonic()
    with GuardedYDL(params, guard) as ydl:
        ydl.process_ie_result({"id": "x", "title": "x", "url": url, "ext": "mp3"}, download=True)
    return time.monotonic() - t0


_SET_AT: dict[str, float] = {}
"""When the cancel was raised (monotonic), set by the timer thread."""


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    from media_server import MediaServer

    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    media = work / "media"
    media.mkdir()
    size = (64 if args.quick else 256) * 1024**2
    with open(media / "big.mp3", "wb") as fh:
        block = bytes(range(256)) * 4096
        for _ in range(size // len(block)):
            fh.write(block)
    (media / "small.mp3").write_bytes(b"\xff" * 4000)
    server = MediaServer(media, trickle_bytes_per_s=20).start()
    try:
        url = server.url("big.mp3")
        plain, guarded = [], []
        for i in range(5):  # alternating which goes first: the disk's write-back of one slows the next
            order = [(plain, plain_fetch), (guarded, guarded_fetch)]
            for walls, fetch in order if i % 2 == 0 else order[::-1]:
                walls.append(fetch(url, work / f"run{i}"))
                shutil.rmtree(work / f"run{i}", ignore_errors=True)
        print(f"download {size / 1024**2:.0f} MiB: plain {common.median(plain):.2f} s, "
              f"guarded {common.median(guarded):.2f} s", flush=True)

        flag = threading.Event()
        started = time.monotonic()

        def cancel() -> None:
            flag.set()
            _SET_AT["t"] = time.monotonic()

        threading.Timer(2.0, cancel).start()
        from bulk_transcribe import errors
        from bulk_transcribe.config import DownloadOptions
        from bulk_transcribe.media.download import AudioDownloader
        from bulk_transcribe.models import SourceKind, VideoItem

        trickle = server.url("trickle/small.mp3")
        try:
            AudioDownloader(DownloadOptions(retries=1, stall_bytes_per_s=0), work / "c" / ".work").fetch(
                VideoItem(trickle, SourceKind.URL, trickle), should_cancel=flag.is_set)
        except errors.Cancelled:
            pass
        cancel_s = time.monotonic() - _SET_AT.get("t", started)
        print(f"cancel on a 20 bytes/s trickle: returned {cancel_s:.2f} s after the cancel", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    cases = [("huge-page", "400 MB page")] + ([] if args.quick else [("gzip-bomb", "gzip bomb -> 400 MB")])
    pages = {}
    for route, label in cases:
        capped, capped_error = page_growth(route, 16 * 1024**2)
        uncapped, _ = page_growth(route, 0)
        pages[route] = {"capped_mb": capped, "uncapped_mb": uncapped, "capped_error": capped_error}
        print(f"{label}: peak RSS growth capped {capped:.0f} MB ({capped_error[:40]}...), "
              f"uncapped {uncapped:.0f} MB", flush=True)

    rows = [["download, plain yt-dlp (s)", common.median(plain)], ["download, guarded (s)", common.median(guarded)],
            ["cancel on a trickle (s)", cancel_s]]
    for route, figures in pages.items():
        rows += [[f"{route} RSS growth, capped (MB)", figures["capped_mb"]],
                 [f"{route} RSS growth, uncapped (MB)", figures["uncapped_mb"]]]
    print(common.table(["what", "value"], rows))
    print("goals: guarded / plain <= 1.05; capped page growth < 300 MB; cancel within ~1 s")
    ratios = {"guarded_over_plain": common.ratio(common.median(guarded), common.median(plain)),
              "cancel_s": cancel_s}
    for route, figures in pages.items():
        key = route.replace("-", "_")
        ratios[f"{key}_capped_over_uncapped"] = common.ratio(figures["capped_mb"], figures["uncapped_mb"])
    result = {"bytes": size, "plain_s": plain, "guarded_s": guarded, "cancel_s": cancel_s, "pages": pages,
              "ratios": ratios}
    return common.finish("guard", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
