"""One video's journey — fetch, probe, transcribe, deliver — shared by every worker, in-process or on Ray.

Everything here reports through `emit(ProgressEvent)` and raises `errors.VideoError` subclasses; the driver turns
those into data (a FAILED event with the reason) so one bad video never stops the batch.
"""

from __future__ import annotations

import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from ..config import RunConfig, TranscribeOptions
from ..errors import Cancelled, TranscriptionError, VideoError
from ..media.audio import probe_media
from ..media.download import AudioDownloader, FetchedAudio
from ..media.transcribe import Transcriber
from ..models import LOCAL_WORKER, EventKind, ProgressEvent, SourceKind, Transcript, VideoItem
from ..outputs.writers import Claim, store_transcript, write_beside_source, write_transcript
from ..quality import OTHER_TEXT_MAX_CHARS, Quality, Recheck, better

Emit = Callable[[ProgressEvent], None]
ShouldCancel = Callable[[], bool]

PROGRESS_INTERVAL_S = 0.5
"""Least time between two progress events of one video: keeps actor calls and SQLite writes cheap."""


def _never() -> bool:
    return False


class _Throttle:
    """Lets an event through at most once per interval (the first always passes)."""

    def __init__(self, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = float("-inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


def safer_options(options: TranscribeOptions) -> TranscribeOptions:
    """Options for a retry after a runaway decode: VAD drops the silence that feeds repetition loops, and decoding
    is unbatched so the temperature fallback (which the batched pipeline lacks) can break a repetition loop."""
    return replace(options, vad_filter=True, batch_size=1)


def recheck_options(options: TranscribeOptions, model: str | None = None) -> TranscribeOptions:
    """Options for a flagged transcript's second try: VAD drops the silence and noise that hallucinations and loops
    feed on, no conditioning on the previous text (a wrong line no longer begets the next), unbatched so the
    temperature fallback is there to break a loop; `model` when the run names a recheck model."""
    return replace(options, vad_filter=True, condition_on_previous_text=False, batch_size=1,
                   model=model or options.model)


class VideoProcessor:
    """Holds one downloader and one loaded model for its whole life (a process, or a Ray actor)."""

    def __init__(
        self,
        config: RunConfig,
        work_dir: Path,
        worker: str = LOCAL_WORKER,
        *,
        before_download: Callable[[], None] | None = None,
        on_rate_limited: Callable[[float], None] | None = None,
        device_index: int = 0,
        transcribe_options: TranscribeOptions | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        self.options = transcribe_options or config.transcribe
        self.downloader = AudioDownloader(
            config.download, Path(work_dir), before_download=before_download, on_rate_limited=on_rate_limited
        )
        self.transcriber = Transcriber(self.options, device_index=device_index)
        self.device_index = device_index
        self._rechecker: Transcriber | None = None

    def fetch(self, item: VideoItem, emit: Emit, should_cancel: ShouldCancel = _never) -> FetchedAudio:
        """The video's audio on local disk, probed. A local file has nothing to download: it stays queued (not
        "downloading") until its transcription starts, and only its probed length is reported."""
        local = item.kind == SourceKind.FILE
        if not local:
            emit(ProgressEvent(item.video_id, EventKind.DOWNLOAD_STARTED, worker=self.worker))
        throttle = _Throttle()

        def on_progress(done: int, total: int | None, speed: float | None) -> None:
            if throttle.ready():
                emit(ProgressEvent(
                    item.video_id, EventKind.DOWNLOAD_PROGRESS, worker=self.worker,
                    progress=(done / total) if total else None, downloaded_bytes=done, total_bytes=total,
                    download_speed=speed,
                ))

        fetched = self.downloader.fetch(item, on_progress=on_progress, should_cancel=should_cancel)
        try:
            # Probed once, here: a file with no audio (or none that decodes) fails before it waits for the model,
            # and the audio stream's own length replaces the site's figure (the video's) as soon as the file is
            # here, so a prefetched video waits with its true length.
            fetched.duration_s = probe_media(fetched.path)
        except BaseException:
            self.downloader.release(fetched)
            raise
        if local:
            emit(ProgressEvent(item.video_id, EventKind.QUEUED, duration_s=fetched.duration_s or None))
        else:
            emit(ProgressEvent(
                item.video_id, EventKind.DOWNLOADED, worker=self.worker, progress=1.0,
                downloaded_bytes=fetched.size_bytes, duration_s=fetched.duration_s or None,
            ))
        return fetched

    def transcribe(
        self,
        item: VideoItem,
        fetched: FetchedAudio,
        emit: Emit,
        should_cancel: ShouldCancel = _never,
        *,
        safer: bool = False,
    ) -> Transcript:
        duration = _audio_length(fetched) or item.duration_s or 0.0
        emit(ProgressEvent(item.video_id, EventKind.TRANSCRIBE_STARTED, worker=self.worker, duration_s=duration))
        if item.recheck_of is not None:  # a finished transcript to recheck: the recheck is this run's one pass
            first = replace(item.recheck_of, transcribe_s=0.0, notes=list(item.recheck_of.notes))
            transcript = self.recheck_if_flagged(item, fetched, first, emit, should_cancel)
            transcript.download_s = fetched.download_s
            transcript.worker = self.worker
            return transcript
        throttle = _Throttle()

        def on_progress(transcribed_s: float, duration_s: float, text: str) -> None:
            if throttle.ready():
                emit(ProgressEvent(
                    item.video_id, EventKind.TRANSCRIBE_PROGRESS, worker=self.worker,
                    progress=(transcribed_s / duration_s) if duration_s else None,
                    transcribed_s=transcribed_s, duration_s=duration_s, text=text,
                ))

        options = safer_options(self.options) if safer else self.options
        transcript = self.transcriber.transcribe(
            fetched.path, item.video_id, duration_s=duration, options=options,
            on_progress=on_progress, should_cancel=should_cancel,
        )
        transcript = self.recheck_if_flagged(item, fetched, transcript, emit, should_cancel)
        transcript.download_s = fetched.download_s
        transcript.worker = self.worker
        return transcript

    def recheck_if_flagged(self, item: VideoItem, fetched: FetchedAudio, transcript: Transcript, emit: Emit,
                           should_cancel: ShouldCancel = _never) -> Transcript:
        """With the run's recheck on, a flagged transcript is transcribed again with recheck_options (on the
        recheck model when one is named); the better of the two by quality.better is kept, with both results'
        flags in its quality.recheck and a note saying which was kept."""
        judged = transcript.quality
        if not self.config.recheck or judged is None or not judged.needs_review:
            return transcript
        rechecker = self._recheck_transcriber()
        throttle = _Throttle()

        def on_progress(_done_s: float, _duration_s: float, text: str) -> None:
            if throttle.ready():  # the bar stays full: this is a second look at a finished transcription
                emit(ProgressEvent(item.video_id, EventKind.TRANSCRIBE_PROGRESS, worker=self.worker,
                                   text=f"(recheck) {text}" if text else "(recheck)"))

        on_progress(0.0, 0.0, "")
        second = rechecker.transcribe(
            fetched.path, item.video_id, duration_s=transcript.duration_s,
            options=recheck_options(self.options, self.config.recheck_model), on_progress=on_progress,
            should_cancel=should_cancel,
        )
        original, rechecked = judged.judged(), (second.quality or Quality()).judged()
        kept = second if better(original, rechecked) is rechecked else transcript
        kept.quality = Quality(
            kept.quality.signals if kept.quality else None, list(kept.quality.flags) if kept.quality else [],
            Recheck(model=rechecker.model_name, kept="recheck" if kept is second else "original",
                    original_flags=list(original.flags), recheck_flags=list(rechecked.flags),
                    original_logprob=original.signals.mean_logprob, recheck_logprob=rechecked.signals.mean_logprob,
                    other_text=(transcript if kept is second else second).text[:OTHER_TEXT_MAX_CHARS]),
        )
        kept.transcribe_s = transcript.transcribe_s + second.transcribe_s  # both passes were this video's work
        still = "; still flagged" if kept.quality.flags else ""
        kept.notes.append(f"rechecked with safer options ({rechecker.model_name}): kept the "
                          f"{'recheck' if kept is second else 'first transcript'}{still}")
        return kept

    def _recheck_transcriber(self) -> Transcriber:
        """The run's own model, or the recheck model, loaded once on first need and kept for later rechecks."""
        model = self.config.recheck_model
        if not model or model == self.options.model:
            return self.transcriber
        if self._rechecker is None:
            self._rechecker = Transcriber(replace(self.options, model=model), device_index=self.device_index)
        return self._rechecker

    def process(
        self, item: VideoItem, emit: Emit, should_cancel: ShouldCancel = _never, *, safer: bool = False
    ) -> Transcript:
        fetched = self.fetch(item, emit, should_cancel)
        try:
            return self.transcribe(item, fetched, emit, should_cancel, safer=safer)
        finally:
            self.downloader.release(fetched)

    def process_bundle(
        self,
        items: Sequence[VideoItem],
        emit: Emit,
        should_cancel: ShouldCancel = _never,
        *,
        fetch_guard: Callable[[VideoItem], AbstractContextManager[object]] | None = None,
        model_lock: AbstractContextManager[object] | None = None,
    ) -> list[Transcript | VideoError]:
        """Several short videos on one model pass: fetch each, then pool their 30 s chunks in shared batches
        (`Transcriber.transcribe_bundle`); returns, in order, each video's Transcript or the VideoError that ended
        it (a failed fetch or probe fails that video alone). Each video gets the events `process()` would give it
        (DOWNLOAD_*, TRANSCRIBE_STARTED with its probed length, TRANSCRIBE_PROGRESS per chunk, throttled per video).
        Raises Cancelled for the whole bundle. Downloads are released at the end, whatever happens.

        `fetch_guard(item)` wraps each fetch (a worker's download-slot limiter); `model_lock` wraps the model pass
        (a worker's lock, so the fetches overlap another video's transcription). A file longer than one window
        (a length the scheduler only guessed) is transcribed on its own, window by window, so memory stays bounded.
        """
        results: list[Transcript | VideoError | None] = [None] * len(items)
        fetched: dict[int, FetchedAudio] = {}
        try:
            for i, item in enumerate(items):
                if should_cancel():
                    raise Cancelled("cancelled before its download started")
                try:
                    with fetch_guard(item) if fetch_guard else nullcontext():
                        fetched[i] = self.fetch(item, emit, should_cancel)
                except Cancelled:
                    raise
                except VideoError as exc:
                    results[i] = exc
            with model_lock if model_lock is not None else nullcontext():
                if should_cancel():
                    raise Cancelled("cancelled before transcription")
                self._transcribe_fetched(items, fetched, results, emit, should_cancel)
        finally:
            for audio in fetched.values():
                self.downloader.release(audio)
        assert all(r is not None for r in results)  # every video ends with a transcript or its own error
        return results  # type: ignore[return-value]

    def _transcribe_fetched(
        self,
        items: Sequence[VideoItem],
        fetched: dict[int, FetchedAudio],
        results: list[Transcript | VideoError | None],
        emit: Emit,
        should_cancel: ShouldCancel,
    ) -> None:
        """process_bundle's model pass: probe each fetched file, then one transcribe_bundle over those that fit
        one window; fills `results` in place."""
        durations: dict[int, float] = {}
        for i, audio in fetched.items():
            try:
                durations[i] = _audio_length(audio) or items[i].duration_s or 0.0
            except VideoError as exc:
                results[i] = exc
        window = self.options.window_s
        # A recheck of a finished transcript is no ordinary pass: it goes on its own (transcribe()), as do files
        # longer than a window.
        pooled = [i for i in durations if (not window or window <= 0 or durations[i] <= window)
                  and items[i].recheck_of is None]
        for i in pooled:
            emit(ProgressEvent(items[i].video_id, EventKind.TRANSCRIBE_STARTED, worker=self.worker,
                               duration_s=durations[i]))
        throttles = {i: _Throttle() for i in pooled}

        def on_progress(index: int, transcribed_s: float, duration_s: float, text: str) -> None:
            i = pooled[index]
            if throttles[i].ready():
                emit(ProgressEvent(
                    items[i].video_id, EventKind.TRANSCRIBE_PROGRESS, worker=self.worker,
                    progress=(transcribed_s / duration_s) if duration_s else None,
                    transcribed_s=transcribed_s, duration_s=duration_s, text=text,
                ))

        if pooled:
            outcomes = self.transcriber.transcribe_bundle(
                [(fetched[i].path, items[i].video_id) for i in pooled], options=self.options,
                on_progress=on_progress, should_cancel=should_cancel,
            )
            for i, outcome in zip(pooled, outcomes):
                results[i] = outcome
        for i in durations:
            try:
                if i not in pooled:  # on its own: longer than a window (window by window: bounded memory), a recheck
                    results[i] = self.transcribe(items[i], fetched[i], emit, should_cancel)
                elif isinstance(results[i], Transcript) and not results[i].segments:
                    # No speech in the pooled pass: as process() does, the unbatched path tries the file's other
                    # audio tracks and says so in the transcript's notes.
                    results[i] = self.transcriber.transcribe(
                        fetched[i].path, items[i].video_id, duration_s=durations[i],
                        options=replace(self.options, batch_size=1), should_cancel=should_cancel,
                    )
                if i in pooled and isinstance(results[i], Transcript):
                    results[i] = self.recheck_if_flagged(items[i], fetched[i], results[i], emit, should_cancel)
            except Cancelled:
                raise
            except VideoError as exc:
                results[i] = exc
            if isinstance(results[i], Transcript):
                results[i].download_s = fetched[i].download_s
                results[i].worker = self.worker


def _audio_length(fetched: FetchedAudio) -> float:
    """The probed length (fetch probes every file), or a probe now for audio fetched some other way."""
    return fetched.duration_s if fetched.duration_s is not None else probe_media(fetched.path)


def deliver(config: RunConfig, folder: str, item: VideoItem, transcript: Transcript,
            attempt: int, worker: str | None = None, *, claim: Claim | None = None) -> ProgressEvent:
    """Write a finished transcript's outputs (on the driver: workers need no shared disk) and return its DONE event.

    Raises VideoError when the outputs cannot be written (disk full, permissions): the video fails, the files that
    were already there stay intact because every write is atomic.
    """
    try:
        outputs = write_outputs(config, folder, item, transcript, config.formats, claim=claim)
    except OSError as exc:
        raise VideoError(f"cannot write outputs: {exc.strerror or exc}", retryable=False) from exc
    return ProgressEvent(
        item.video_id, EventKind.DONE, worker=worker or transcript.worker, progress=1.0,
        duration_s=transcript.duration_s, transcribed_s=transcript.duration_s, outputs=outputs,
        speed_x=transcript.speed_x, attempt=attempt, note="; ".join(transcript.notes) or None,
        language=transcript.language or None, quality=transcript.quality,
    )


def write_outputs(config: RunConfig, folder: str, item: VideoItem, transcript: Transcript,
                  formats: tuple[str, ...] | list[str], *, claim: Claim | None = None) -> dict[str, str]:
    """The transcript where the output options say, the subtitles beside a local source when asked, and a stored
    copy (OUT/.transcripts) from which a later run can write other formats without the model."""
    output = config.output
    shape = output.shape
    outputs = write_transcript(config.out_dir, folder, item, transcript, formats, template=output.template,
                               shape=shape, claim=claim)
    if output.beside_source:
        outputs.update(write_beside_source(item, transcript, formats, shape))
    store_transcript(config.out_dir, item, transcript)
    return outputs


def failure_reason(exc: BaseException) -> str:
    """One clear line for the table and the manifest; unexpected errors keep their type so they can be traced."""
    if isinstance(exc, VideoError):
        return exc.reason
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}{where}"


def retry_may_help(exc: BaseException) -> bool:
    """Whether another attempt could end otherwise (a server error, a timeout), by the kind of failure alone; how
    many attempts a video gets, and when, is the scheduler's (Scheduler.fail)."""
    if isinstance(exc, Cancelled):
        return False
    return exc.retryable if isinstance(exc, VideoError) else False


def needs_safer_retry(exc: BaseException) -> bool:
    """A transcription that ran past its time budget is retried with safer options (see safer_options)."""
    return isinstance(exc, TranscriptionError)
