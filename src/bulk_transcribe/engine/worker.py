"""The model-holding worker, the same class in both modes: the in-process executor (engine/local.py) runs one in
this process, and the Ray executor wraps it with `ray.remote` (parallel/cluster.py `start_worker`), giving each the
resources `parallel.plan.plan_workers` chose.

A worker loads its model once and keeps it for life. It runs the videos the scheduler lets it hold (see
Scheduler.max_held) on separate threads, but only one of them transcribes at a time (a lock around the model): the
others are the prefetch, downloading their audio while the first transcribes, so download time hides behind
compute. A bundle of short videos (`process_bundle`) is one call: its videos share the model's batches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .. import layout
from ..config import RunConfig
from ..errors import Cancelled, VideoError
from ..models import ProgressEvent, Transcript, VideoItem


class Worker:
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
        from .pipeline import VideoProcessor  # heavy (loads faster-whisper): only inside the worker

        self.name = name
        self._cancel = threading.Event()
        self._model_lock = threading.Lock()
        if progress is None:
            self._emit: Callable[[ProgressEvent], None] = lambda event: None
            self._sender: Any = None
        elif callable(progress) and not hasattr(progress, "apply_events"):
            self._emit, self._sender = progress, None
        else:
            from ..parallel.events import EventSender  # a progress actor's handle: Ray is here anyway

            self._sender = EventSender(progress)
            self._emit = self._sender
        self.limiter = None
        if limiter is not None:
            from ..parallel.rate_limit import LimiterClient

            self.limiter = LimiterClient(limiter, name, self._cancel.is_set)
        options = config.transcribe
        if cpu_threads:
            options = replace(options, cpu_threads=cpu_threads)
        # Each worker downloads into its own folder: no shared disk is assumed, and two workers on one node
        # must not clean up each other's files.
        work = Path(work_dir) if work_dir else layout.work_dir(config.out_dir)
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
