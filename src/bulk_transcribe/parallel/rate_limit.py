"""The cluster-wide download limiter: engine/limiter.py's RateLimitCore in an async actor (one per run, on the
driver's node), and the adapter that makes that actor a `Limiter` for a worker's LimiterClient.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.limiter import CLIENT_WAIT_S, RateLimitCore


class RateLimiterActor:
    """Async actor body: waiting callers sleep in the actor's event loop, so a full house never blocks `finish`."""

    def __init__(self, max_concurrent: int = 2, min_interval_s: float = 0.0, max_backoff_s: float = 300.0,
                 max_interval_s: float | None = None) -> None:
        self.core = RateLimitCore(max_concurrent, min_interval_s, max_backoff_s=max_backoff_s,
                                  max_interval_s=max_interval_s)

    async def start(self, holder: str, max_wait_s: float = CLIENT_WAIT_S) -> bool:
        """Wait (up to `max_wait_s`) for a start; True when `holder` may download now."""
        deadline = self.core.clock() + max_wait_s
        while pause := self.core.pause_before_start(holder, deadline):
            await asyncio.sleep(pause)
        return pause == 0.0

    async def finish(self, holder: str) -> None:
        self.core.finish(holder)

    async def finish_all(self, prefix: str) -> int:
        return self.core.finish_all(prefix)

    async def back_off(self, seconds: float) -> float:
        return self.core.back_off(seconds)

    async def stats(self) -> dict[str, Any]:
        return self.core.stats()


class RayLimiter:
    """A Limiter over the run's limiter actor (what a Ray worker hands to its LimiterClient)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def start(self, holder: str, max_wait_s: float = CLIENT_WAIT_S) -> bool:
        import ray

        return bool(ray.get(self.handle.start.remote(holder, max_wait_s)))

    def finish(self, holder: str) -> None:
        import ray

        ray.get(self.handle.finish.remote(holder))

    def back_off(self, seconds: float) -> None:
        self.handle.back_off.remote(seconds)  # fire and forget: the worker that was told sleeps on its own
