"""The cluster-wide download limiter: the plain core with a fake clock, then the real actor shared by real
downloads (yt-dlp in Ray tasks) against the local media server, counting what the server saw."""

from __future__ import annotations

import sys
import time

import pytest

from bulk_transcribe.engine.limiter import POLL_S, LimiterClient, LocalLimiter, RateLimitCore


def test_core_bounds_concurrent_starts(clock):
    core = RateLimitCore(max_concurrent=2, clock=clock)
    assert core.try_start("a") == 0.0
    assert core.try_start("b") == 0.0
    assert core.try_start("c") == POLL_S, "a third download waits for a free slot"
    assert core.try_start("a") == 0.0, "a retry inside a held download does not need a second slot"
    core.finish("a")
    assert core.try_start("c") == 0.0
    assert core.peak == 2 and core.starts == 4


def test_core_spaces_starts(clock):
    core = RateLimitCore(max_concurrent=5, min_interval_s=1.0, clock=clock)
    assert core.try_start("a") == 0.0
    clock.t += 0.25
    assert core.try_start("b") == pytest.approx(0.75)
    clock.t += 0.75
    assert core.try_start("b") == 0.0


def test_core_shared_back_off_is_capped_and_never_shortened(clock):
    core = RateLimitCore(max_concurrent=5, max_backoff_s=30.0, clock=clock)
    core.back_off(10.0)
    assert core.back_off(2.0) == pytest.approx(10.0), "a shorter Retry-After never cuts an earlier one"
    assert core.try_start("a") == pytest.approx(10.0)
    core.back_off(1000.0)
    assert core.stats()["blocked_for_s"] == pytest.approx(30.0)
    clock.t += 30.0
    assert core.try_start("a") == 0.0


def test_core_frees_a_dead_workers_slots(clock):
    core = RateLimitCore(max_concurrent=2, clock=clock)
    core.try_start("worker-0:v1")
    core.try_start("worker-1:v2")
    assert core.finish_all("worker-0:") == 1
    assert core.try_start("worker-2:v3") == 0.0


# ---- the real actor, real downloads ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_tasks(ray_local):
    """The module's Ray, able to run this module's helper functions as tasks (shipped by value: workers cannot
    import a test module)."""
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_local


def _download(limiter, name: str, url: str, work_dir: str, retries: int = 1) -> dict:
    """Runs inside a Ray task: one real AudioDownloader whose hooks go through the shared limiter."""
    from pathlib import Path

    from bulk_transcribe.config import DownloadOptions
    from bulk_transcribe.media.download import AudioDownloader
    from bulk_transcribe.errors import VideoError
    from bulk_transcribe.models import SourceKind, VideoItem
    from bulk_transcribe.engine.limiter import LimiterClient
    from bulk_transcribe.parallel.rate_limit import RayLimiter

    client = LimiterClient(RayLimiter(limiter), name)
    marks = {}

    def before():
        client.before_download()
        marks.setdefault("start", time.monotonic())

    downloader = AudioDownloader(DownloadOptions(retries=retries, backoff_s=0.1), Path(work_dir),
                                 before_download=before, on_rate_limited=client.on_rate_limited)
    item = VideoItem(url, SourceKind.URL, url)
    with client.holding(item.video_id):
        try:
            fetched = downloader.fetch(item)
            marks["bytes"] = fetched.size_bytes
            downloader.release(fetched)
        except VideoError as exc:
            marks["error"] = exc.reason
    marks["end"] = time.monotonic()
    return marks


def test_actor_bounds_concurrency_and_spacing_across_processes(ray_tasks, media_server, speech_clips, tmp_path):
    ray = ray_tasks
    from bulk_transcribe.parallel.rate_limit import RateLimiterActor

    limiter = ray.remote(RateLimiterActor).options(num_cpus=0).remote(2, 0.3)
    media_server.reset_counts()
    clips = list(speech_clips.values())
    task = ray.remote(num_cpus=0)(_download)
    # num_cpus=0: Ray itself would let all four run at once; only the limiter holds them back.
    marks = ray.get([task.remote(limiter, f"w{i}", media_server.url(f"slow/{c.path.name}"), str(tmp_path))
                     for i, c in enumerate(clips)])
    assert all("error" not in m and m["bytes"] > 0 for m in marks), marks
    stats = ray.get(limiter.stats.remote())
    assert stats["starts"] == 4 and stats["peak"] <= 2 and stats["active"] == 0
    # What the server saw: each clip fetched, and never more than two bodies in flight at once.
    for c in clips:
        assert media_server.count(f"slow/{c.path.name}") >= 1
    spans = sorted((m["start"], m["end"]) for m in marks)
    for start, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= start < e)
        assert overlapping <= 2
    # Starts are spaced by the limiter's clock (the server's arrival times add the clients' own jitter, which on
    # a busy machine can bunch two requests granted 0.3 s apart, so they cannot show the spacing).
    starts = stats["recent_starts"]
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.3, f"download starts closer than the 0.3 s minimum: {gaps}"
    assert len({p for _, p in media_server.request_log if p.startswith("/slow/")}) == 4


def test_a_429_backs_off_everyone(ray_tasks, media_server, speech_clips, tmp_path):
    ray = ray_tasks
    from bulk_transcribe.parallel.rate_limit import RateLimiterActor

    limiter = ray.remote(RateLimiterActor).options(num_cpus=0).remote(4, 0.0)
    clip = speech_clips["weather"].path.name
    media_server.reset_counts()
    marks = ray.get(ray.remote(num_cpus=0)(_download).remote(
        limiter, "w0", media_server.url(f"storm429/{clip}"), str(tmp_path), 2))
    assert "rate limited" in marks["error"]
    assert media_server.count(f"storm429/{clip}") == 2
    stats = ray.get(limiter.stats.remote())
    assert stats["backoffs"] >= 1, "the worker's 429 reached the shared limiter"
    # While a back-off is in force nobody starts: a fresh Retry-After of 30 s blocks a short wait outright.
    ray.get(limiter.back_off.remote(30.0))
    assert ray.get(limiter.start.remote("other", 0.3)) is False
    assert ray.get(limiter.stats.remote())["starts"] == stats["starts"]


def test_max_sleep_interval_draws_each_gap_between_min_and_max():
    """yt-dlp's --min/--max-sleep-interval, cluster-wide: every gap between two starts lies in [min, max] and
    the gaps are not all the same."""
    now = [0.0]
    core = RateLimitCore(max_concurrent=100, min_interval_s=2.0, max_interval_s=5.0, clock=lambda: now[0])
    starts = []
    for n in range(30):
        while (wait := core.try_start(f"v{n}")) > 0:
            now[0] += wait
        starts.append(now[0])
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(2.0 <= g <= 5.0 + 1e-9 for g in gaps)
    assert max(gaps) - min(gaps) > 0.5


def test_page_requests_pause_by_the_same_rule():
    from bulk_transcribe.config import DownloadOptions

    pauses = {DownloadOptions(sleep_s=1.0, max_sleep_s=3.0).draw_pause() for _ in range(20)}
    assert all(1.0 <= p <= 3.0 for p in pauses) and len(pauses) > 1
    assert DownloadOptions(sleep_s=1.5).draw_pause() == 1.5
    with pytest.raises(ValueError, match="maximum sleep"):
        DownloadOptions(sleep_s=3.0, max_sleep_s=1.0)


def test_local_limiter_bounds_threads_of_one_process_as_the_actor_bounds_workers():
    """The in-process executor's prefetching threads share one LocalLimiter: never more than max_concurrent
    downloads at once, starts spaced, a waiter that times out told so (it then checks for a cancel)."""
    import threading

    limiter = LocalLimiter(max_concurrent=2, min_interval_s=0.05)
    client = LimiterClient(limiter, "local")
    active, peak, starts = [0], [0], []
    lock = threading.Lock()

    def download(video_id: str) -> None:
        with client.holding(video_id):
            client.before_download()
            with lock:
                starts.append(time.monotonic())
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.15)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=download, args=(f"v{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and len(starts) == 6
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert min(gaps) >= 0.045
    assert limiter.stats()["active"] == 0  # every slot given back
    full = LocalLimiter(max_concurrent=1)
    assert full.start("a") is True and full.start("b", max_wait_s=0.1) is False  # a full house: told, not stuck
