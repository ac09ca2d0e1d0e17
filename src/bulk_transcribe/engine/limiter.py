"""Download politeness for one run, whichever executor runs it: at most N downloads at once, a gap between two
starts (drawn between --min- and --max-sleep-interval, as yt-dlp does), and a shared back-off when any server says
slow down (HTTP 429/503 with Retry-After).

`RateLimitCore` is the plain, clock-driven rule (unit-tested with a fake clock). `LocalLimiter` serves it to the
threads of this process (the in-process executor); parallel/rate_limit.py serves the same core from an actor to a
whole cluster. Either is a `Limiter`, and a worker talks to it through `LimiterClient`, which names each download
per thread. This is the one place downloads are spaced: the downloader itself never sleeps between starts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Protocol

from ..config import draw_pause
from ..errors import Cancelled

POLL_S = 0.05
"""How often a waiter blocked on a full house looks again (a freed slot is noticed within this)."""

CLIENT_WAIT_S = 1.0
"""Longest single wait inside the actor, so a worker can notice a cancel between waits."""


class RateLimitCore:
    """Slots held by named holders (one per video being downloaded); starts spaced by `min_interval_s`.

    A holder that already has a slot (a retry inside the same download) does not take a second one, but its new
    start still respects the spacing and any back-off.
    """

    def __init__(self, max_concurrent: int = 2, min_interval_s: float = 0.0, *, max_backoff_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, max_interval_s: float | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.min_interval_s = max(0.0, min_interval_s)
        # yt-dlp's --max-sleep-interval: each gap is drawn between the two, so starts do not tick like a clock.
        self.max_interval_s = max(self.min_interval_s, max_interval_s) if max_interval_s is not None else None
        self.interval_s = self._draw()
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.holders: set[str] = set()
        self.last_start: float | None = None
        self.blocked_until = 0.0
        self.starts = 0
        self.peak = 0
        self.backoffs = 0
        self.recent_starts: deque[float] = deque(maxlen=100)  # for tests and the dashboard: when starts happened

    def try_start(self, holder: str) -> float:
        """0.0 when `holder` may start now (and the start is recorded); otherwise seconds to wait before asking again."""
        now = self.clock()
        if holder not in self.holders and len(self.holders) >= self.max_concurrent:
            return POLL_S
        wait = self.blocked_until - now
        if self.last_start is not None:
            wait = max(wait, self.last_start + self.interval_s - now)
        if wait > 0:
            return wait
        self.holders.add(holder)
        self.last_start = now
        self.interval_s = self._draw()
        self.starts += 1
        self.recent_starts.append(now)
        self.peak = max(self.peak, len(self.holders))
        return 0.0

    def pause_before_start(self, holder: str, deadline: float) -> float | None:
        """One step of a caller waiting for a start until `deadline` (on this core's clock): 0.0 when `holder`
        started now, None when the deadline has passed, else the seconds to sleep before asking again."""
        wait = self.try_start(holder)
        if wait == 0.0:
            return 0.0
        left = deadline - self.clock()
        return None if left <= 0 else min(wait, left)

    def _draw(self) -> float:
        return draw_pause(self.min_interval_s, self.max_interval_s)

    def finish(self, holder: str) -> None:
        self.holders.discard(holder)

    def finish_all(self, prefix: str) -> int:
        """Free every slot whose holder starts with `prefix` (a worker that died mid-download holds them)."""
        gone = {h for h in self.holders if h.startswith(prefix)}
        self.holders -= gone
        return len(gone)

    def back_off(self, seconds: float) -> float:
        """Everyone waits at least `seconds` (capped) before the next start; returns the wait now in force."""
        seconds = min(max(0.0, float(seconds)), self.max_backoff_s)
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)
        self.backoffs += 1
        return self.blocked_until - self.clock()

    def stats(self) -> dict[str, Any]:
        return {
            "active": len(self.holders),
            "peak": self.peak,
            "starts": self.starts,
            "backoffs": self.backoffs,
            "blocked_for_s": max(0.0, self.blocked_until - self.clock()),
            "max_concurrent": self.max_concurrent,
            "min_interval_s": self.min_interval_s,
            "recent_starts": list(self.recent_starts),
        }


class Limiter(Protocol):
    """What a worker needs from a limiter (LocalLimiter here, parallel.rate_limit.RayLimiter on a cluster)."""

    def start(self, holder: str, max_wait_s: float = ...) -> bool:
        """Wait (up to `max_wait_s`) for a start; True when `holder` may download now."""

    def finish(self, holder: str) -> None:
        """`holder`'s download is over: its slot is free."""

    def back_off(self, seconds: float) -> Any:
        """Everyone waits at least `seconds` before the next start."""


class LocalLimiter:
    """The same limiter for workers in this process (the sequential engine's prefetching threads): no Ray."""

    def __init__(self, max_concurrent: int = 2, min_interval_s: float = 0.0, max_backoff_s: float = 300.0,
                 max_interval_s: float | None = None) -> None:
        self.core = RateLimitCore(max_concurrent, min_interval_s, max_backoff_s=max_backoff_s,
                                  max_interval_s=max_interval_s)
        self._lock = threading.Lock()

    def start(self, holder: str, max_wait_s: float = CLIENT_WAIT_S) -> bool:
        deadline = self.core.clock() + max_wait_s
        while True:
            with self._lock:
                pause = self.core.pause_before_start(holder, deadline)
            if not pause:
                return pause == 0.0
            time.sleep(pause)

    def finish(self, holder: str) -> None:
        with self._lock:
            self.core.finish(holder)

    def back_off(self, seconds: float) -> float:
        with self._lock:
            return self.core.back_off(seconds)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self.core.stats()


class LimiterClient:
    """A worker's side of the limiter, shaped for `AudioDownloader(before_download=..., on_rate_limited=...)`.

    `limiter` is any Limiter: a LocalLimiter in this process, or the cluster's limiter actor behind its adapter
    (parallel/rate_limit.py). The downloader's hooks take no video, so the worker names the download in progress
    per thread with `holding(video_id)`; `before_download` then waits for that holder's start, and `release` frees
    its slot.
    """

    def __init__(self, limiter: "Limiter", worker: str, should_cancel: Callable[[], bool] | None = None) -> None:
        self.limiter = limiter
        self.worker = worker
        self.should_cancel = should_cancel or (lambda: False)
        self._local = threading.local()

    def holder(self, video_id: str) -> str:
        return f"{self.worker}:{video_id}"

    def holding(self, video_id: str) -> "_Holding":
        return _Holding(self, self.holder(video_id))

    def before_download(self) -> None:
        holder = getattr(self._local, "holder", None) or self.holder("?")
        while not self.limiter.start(holder):
            if self.should_cancel():
                raise Cancelled("cancelled while waiting for a download slot")

    def on_rate_limited(self, seconds: float) -> None:
        self.limiter.back_off(seconds)  # the actor's adapter does not wait: this worker sleeps on its own meanwhile

    def release(self, holder: str) -> None:
        self.limiter.finish(holder)


class _Holding:
    def __init__(self, client: LimiterClient, holder: str) -> None:
        self.client = client
        self.holder = holder

    def __enter__(self) -> "_Holding":
        self.client._local.holder = self.holder
        return self

    def __exit__(self, *exc: object) -> None:
        self.client._local.holder = None
        self.client.release(self.holder)
