"""Model-holding workers. `TranscriberActor` is a plain class (usable in-process, as the tests do); `cluster.py`
wraps it with `ray.remote` and gives each one the resources `plan_workers` chose.

A worker loads its model once and keeps it for life. It runs the videos the scheduler lets it hold (see
Scheduler.max_held) on separate threads, but only one of them transcribes at a time (a lock around the model): the
others are the prefetch, downloading their audio while the first transcribes, so download time hides behind
compute. A bundle of short videos (`process_bundle`) is one call: its videos share the model's batches.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..config import RunConfig
from ..errors import Cancelled, VideoError
from ..models import ProgressEvent, Transcript, VideoItem

EVENT_BATCH_S = 0.2
"""Longest a worker holds progress events before sending them to the progress actor in one call."""


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and what each asks Ray for. `cpu_threads` is what faster-whisper gets."""

    workers: int
    num_cpus: float
    num_gpus: float
    cpu_threads: int
    use_gpu: bool
    note: str = ""


def plan_workers(config: RunConfig, resources: dict[str, float]) -> WorkerPlan:
    """Resources per worker from the cluster's totals (`ray.cluster_resources()`).

    GPUs present and device auto/cuda: one `gpus_per_worker` share each (0.5 packs two per GPU). Otherwise CPU
    workers: `num_cpus` = threads per worker and faster-whisper's `cpu_threads` set to match, never more workers x
    threads than cores (oversubscribed decoders run slower than fewer ones).
    """
    cpus = int(resources.get("CPU", 0))
    gpus = float(resources.get("GPU", 0))
    device = config.transcribe.device.strip().lower()
    if gpus > 0 and device in ("auto", "cuda"):
        share = config.gpus_per_worker if config.gpus_per_worker > 0 else 1.0
        capacity = int(gpus / share + 1e-9)
        if capacity < 1:
            raise ValueError(f"gpus_per_worker {share} is more than the cluster's {gpus:g} GPU(s)")
        workers = min(config.workers, capacity)
        threads = config.transcribe.cpu_threads or 1
        note = f"{workers} GPU worker(s), {share:g} GPU each" + (
            f" (asked for {config.workers}, the cluster fits {capacity})" if workers < config.workers else "")
        return WorkerPlan(workers, 1.0 if cpus >= workers else 0.0, share, threads, True, note)
    if device == "cuda":
        raise ValueError("device cuda was asked for but the Ray cluster has no GPUs; use --device cpu or auto")
    if cpus < 1:
        raise ValueError("the Ray cluster has no CPUs to run workers on")
    workers = min(config.workers, cpus)
    threads = config.transcribe.cpu_threads or max(1, cpus // workers)
    if workers * threads > cpus:
        threads = max(1, cpus // workers)
    note = f"{workers} CPU worker(s) x {threads} thread(s)" + (
        f" (asked for {config.workers}; capped at {cpus} cores)" if workers < config.workers else "")
    return WorkerPlan(workers, float(threads), 0.0, threads, False, note)


class EventSender:
    """Ships a worker's events to the progress actor in order, batched, off the transcription thread.

    Each batch is sent and awaited before the next, so the progress actor sees one worker's events in the order
    they happened; `flush()` returns once everything emitted so far has been applied.
    """

    def __init__(self, target: Any, interval_s: float = EVENT_BATCH_S) -> None:
        self.target = target
        self.interval_s = interval_s
        self._queue: queue.Queue[ProgressEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="event-sender", daemon=True)
        self._thread.start()

    def __call__(self, event: ProgressEvent) -> None:
        self._queue.put(event)

    def _loop(self) -> None:
        import ray

        while True:
            first = self._queue.get()
            batch = [first]
            deadline = time.monotonic() + self.interval_s
            while True:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            events = [e for e in batch if e is not None]
            try:
                if events:
                    ray.get(self.target.apply_events.remote(events))
            except Exception:  # noqa: BLE001 — progress is advisory; the driver reports every outcome itself
                pass
            finally:
                for _ in batch:
                    self._queue.task_done()

    def flush(self) -> None:
        self._queue.join()


class TranscriberActor:
    """One model, one worker, for the worker's whole life.

    `progress` is the progress actor's handle (events are batched to it) or any callable taking a ProgressEvent
    (in-process use). `limiter` is the cluster-wide download limiter's handle, or None.
    """

    def __init__(
        self,
        config: RunConfig,
        name: str,
        *,
        progress: Any = None,
        limiter: Any = None,
        work_dir: str | Path | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        from ..pipeline import VideoProcessor  # heavy (loads faster-whisper): only inside the worker

        self.name = name
        self._cancel = threading.Event()
        self._model_lock = threading.Lock()
        if progress is None:
            self._emit: Callable[[ProgressEvent], None] = lambda event: None
            self._sender: EventSender | None = None
        elif callable(progress) and not hasattr(progress, "apply_events"):
            self._emit, self._sender = progress, None
        else:
            self._sender = EventSender(progress)
            self._emit = self._sender
        self.limiter = None
        if limiter is not None:
            from .rate_limit import LimiterClient

            self.limiter = LimiterClient(limiter, name, self._cancel.is_set)
        options = config.transcribe
        if cpu_threads:
            options = replace(options, cpu_threads=cpu_threads)
        # Each worker downloads into its own folder: no shared disk is assumed, and two workers on one node
        # must not clean up each other's files.
        work = Path(work_dir) if work_dir else Path(config.out_dir) / ".work"
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError:  # a node without the head's folder layout: any local scratch space will do
            work = Path(tempfile.gettempdir()) / "bulk_transcribe"
        work = work / f"{name}-{os.getpid()}"
        self.work_dir = work
        self.processor = VideoProcessor(
            config, work, name,
            before_download=self.limiter.before_download if self.limiter else None,
            on_rate_limited=self.limiter.on_rate_limited if self.limiter else None,
            transcribe_options=options,
        )
        self.videos_done = 0

    def info(self) -> dict[str, Any]:
        """Who and where this worker is; calling it also proves the model is loaded (the constructor loads it)."""
        node_id, gpu_ids = None, []
        try:
            import ray

            if ray.is_initialized():
                ctx = ray.get_runtime_context()
                node_id = ctx.get_node_id()
                gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # noqa: BLE001 — in-process use has no Ray
            pass
        transcriber = self.processor.transcriber
        return {
            "name": self.name,
            "pid": os.getpid(),
            "node_id": node_id,
            "gpu_ids": gpu_ids,
            "device": getattr(transcriber, "device", None),
            "compute_type": getattr(transcriber, "compute_type", None),
            "cpu_threads": self.processor.options.cpu_threads,
            "videos_done": self.videos_done,
        }

    def pid(self) -> int:
        return os.getpid()

    def process(self, item: VideoItem, attempt: int = 1, safer: bool = False) -> Transcript:
        """Fetch (through the limiter), then transcribe under the model lock; raises VideoError subclasses."""
        should_cancel = self._cancel.is_set
        try:
            holding = self.limiter.holding(item.video_id) if self.limiter else nullcontext()
            with holding:
                fetched = self.processor.fetch(item, self._emit, should_cancel)
            try:
                with self._model_lock:
                    if should_cancel():
                        raise Cancelled("cancelled before transcription")
                    transcript = self.processor.transcribe(item, fetched, self._emit, should_cancel, safer=safer)
            finally:
                self.processor.downloader.release(fetched)
            self.videos_done += 1
            return transcript
        finally:
            # The driver reports the outcome right after this returns: our progress must land before it.
            if self._sender is not None:
                self._sender.flush()

    def process_bundle(self, items: list[VideoItem], attempts: list[int]) -> list[Transcript | VideoError]:
        """Several short videos in shared batches (a scheduler bundle): each fetched through the limiter, then
        one model pass under the model lock. Returns each video's Transcript or its VideoError, in order (one
        bad video fails alone); raises Cancelled for the whole bundle. `attempts` (each video's attempt, all 1 as
        the scheduler bundles only first tries) is checked against `items` so a driver cannot misalign them."""
        if len(attempts) != len(items):
            raise ValueError(f"{len(items)} videos but {len(attempts)} attempts")
        limiter = self.limiter

        def fetch_guard(item: VideoItem):
            return limiter.holding(item.video_id) if limiter else nullcontext()

        try:
            results = self.processor.process_bundle(items, self._emit, self._cancel.is_set,
                                                    fetch_guard=fetch_guard, model_lock=self._model_lock)
            self.videos_done += sum(isinstance(r, Transcript) for r in results)
            return results
        finally:
            # The driver reports each outcome right after this returns: our progress must land before it.
            if self._sender is not None:
                self._sender.flush()

    def cancel(self) -> None:
        """Stop: downloads and transcriptions in flight end at their next check with Cancelled."""
        self._cancel.set()

    def resume(self) -> None:
        self._cancel.clear()

    def close(self) -> None:
        """Remove this worker's scratch folder (and the shared `.work` when it is left empty)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        try:
            self.work_dir.parent.rmdir()
        except OSError:  # another worker (or a kept download) still uses it
            pass
