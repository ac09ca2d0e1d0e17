"""engine.worker.Worker as a Ray actor: the same worker, with its events and its downloads' pacing sent to the
run's actors instead of objects in this process."""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..engine.worker import Worker
from .events import EventSender
from .rate_limit import RayLimiter


class RemoteWorker(Worker):
    """Events go to the run's progress actor in ordered batches (EventSender), downloads wait for the cluster-wide
    limiter actor (RayLimiter), and `info` also says where on the cluster the worker runs."""

    def __init__(self, config: RunConfig, name: str, *, progress: Any, limiter: Any, **kwargs: Any) -> None:
        super().__init__(config, name, progress=EventSender(progress), limiter=RayLimiter(limiter), **kwargs)

    def info(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {**super().info(), "node_id": context.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
