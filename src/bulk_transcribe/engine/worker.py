"""The model-holding worker, the same class in both modes: the in-process executor (engine/local.py) runs one in
this process (a plan's worth while a parallel run starts), and the Ray executor runs it as an actor
(parallel/remote_worker.py), giving each the resources `parallel.plan.plan_workers` chose.

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
from typing import Any, Callable, Protocol

from .. import layout
from ..config import RunConfig
from ..errors import Cancelled, VideoError
from ..models import ProgressEvent, Transcript, VideoItem
from .limiter import Limiter, LimiterClient


class EventSink(Protocol):
    """Where a worker's progress events go: the in-process recorder, or (on Ray) a sender to the progress actor."""

    def __call__(self, event: ProgressEvent) -> None: ...


class Worker:
    """One model, one worker, for the worker's whole life.

    `progress` takes each ProgressEvent (an EventSink; one with a `flush()` is flushed before every answer, so the
    events of a video land before its outcome). `limiter` paces its downloads (engine/limiter.py), or None for no
    limits. Both are plain objects here: parallel/remote_worker.py hands in the Ray-backed ones.
    """

    def __init__(
        self,
        config: RunConfig,
        name: str,
        *,
        progress: EventSink | None = None,
        limiter: Limiter | None = None,
        work_dir: str | Path | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        from .pipeline import VideoProcessor  # heavy (loads faster-whisper): only inside the worker

        self.name = name
        self._cancel = threading.Event()
        self._model_lock = threading.Lock()
        self._emit: EventSink = progress if progress is not None else (lambda event: None)
        self._flush: Callable[[], None] = getattr(progress, "flush", None) or (lambda: None)
        self.limiter = LimiterClient(limiter, name, self._cancel.is_set) if limiter is not None else None
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
        """Who this worker is; calling it also proves the model is loaded (the constructor loads it)."""
        transcriber = self.processor.transcriber
        return {
            "name": self.name,
            "pid": os.getpid(),
            "device": getattr(transcriber, "device", None),
            "compute_type": getattr(transcriber, "compute_type", None),
            "cpu_threads": self.processor.options.cpu_threads,
            "videos_done": self.videos_done,
        }

    def process(self, item: VideoItem, safer: bool = False) -> Transcript:
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
            self._flush()  # the driver reports the outcome right after this returns: our progress lands first

    def process_bundle(self, items: list[VideoItem]) -> list[Transcript | VideoError]:
        """Several short videos in shared batches (a scheduler bundle): each fetched through the limiter, then
        one model pass under the model lock. Returns each video's Transcript or its VideoError, in order (one
        bad video fails alone); raises Cancelled for the whole bundle."""
        limiter = self.limiter

        def fetch_guard(item: VideoItem):
            return limiter.holding(item.video_id) if limiter else nullcontext()

        try:
            results = self.processor.process_bundle(items, self._emit, self._cancel.is_set,
                                                    fetch_guard=fetch_guard, model_lock=self._model_lock)
            self.videos_done += sum(isinstance(r, Transcript) for r in results)
            return results
        finally:
            self._flush()  # the driver reports each outcome right after this returns: our progress lands first

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
