"""Audio files with PyAV: how long the audio is, whether it decodes, and the samples, streamed in bounded windows.

One rule for lengths, used everywhere (listing local files, probing downloads, judging truncation): a file's length
is its *audio stream's* own extent, never the container's. A video whose picture outlasts its sound (60 s of video,
12.8 s of audio) is 12.8 s long here, and an audio track that starts at 3600 s in a Matroska file is as long as its
samples, not 3612 s.

Decoding streams: the samples of a long file are never all held at once. `AudioWindows` decodes and resamples to
16 kHz mono incrementally and hands out windows of at most `window_s` seconds, each cut at the quietest moment
near its end so no word is split; the model transcribes one window at a time, so memory is bounded by the window,
not by the file (faster-whisper computes features for all the audio it is given at once).
"""

from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np

from .. import errors

SAMPLE_RATE = 16000
"""What Whisper models expect: mono float32 at 16 kHz."""

TRUNCATION_TOLERANCE = 0.10
"""Decoded audio may fall this far short of the audio stream's declared length (bitrate estimates for VBR files
without a header are approximate) before the file counts as truncated."""

TRUNCATION_MIN_S = 1.0
"""...and must miss at least this many seconds (codec priming and padding differ by tens of milliseconds)."""

CUT_SEARCH_S = 30.0
"""A window is cut at the quietest moment in its last CUT_SEARCH_S seconds (or its last third, if shorter)."""

CUT_FRAME_S = 0.1
"""Energy is measured in frames of this length..."""

CUT_SMOOTH_FRAMES = 5
"""...averaged over this many frames (half a second), so the cut lands in a pause, not between two syllables."""

CANCEL_CHECK_FRAMES = 200
"""Decoded frames between two cancel checks (a few seconds of audio; milliseconds of work)."""

PROBE_DECODE_PACKETS = 50
"""Audio packets decoded by `probe_media` to prove the audio is decodable (a second or so, not the whole file)."""

_MATROSKA_DURATION = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


# --------------------------------------------------------------------------------------------- lengths


def audio_extent(container: Any, stream: Any) -> float | None:
    """Seconds the audio stream itself declares, read from headers only (no decoding); None when it cannot tell.

    In order: the stream's own duration (MP4/MOV, MPEG-TS, Ogg, MP3...); Matroska/WebM's per-track DURATION tag
    (FFmpeg, mkvmerge and browsers write it; it holds the track's end time, so the track's start is taken off);
    the container's duration only when the audio is the file's one timed stream (then they are the same thing).
    A container that also holds a longer video track and says nothing about its audio gives None: its length is
    the video's, and taking it for the audio's would both mislead progress and make a valid file look truncated.
    """
    start = _seconds(stream.start_time, stream.time_base) or 0.0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
        if seconds > 0:
            return seconds
    tag = _matroska_duration(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tag is not None and tag - start > 0:
        return tag - start
    timed = [s for s in container.streams if s.type in ("audio", "video") and not _is_cover_art(s)]
    if len(timed) == 1 and container.duration and container.duration > 0:
        seconds = container.duration / av.time_base
        if _is_matroska(container):
            seconds -= start  # Matroska's segment duration runs from time 0, not from the first packet
        return seconds if seconds > 0 else None
    return None


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """The first audio track's declared length without decoding (a few ms): lets the table and the longest-first
    scheduler know local files' lengths before any work starts. None when it cannot tell; probe_media still
    validates the file before transcription."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return audio_extent(container, container.streams.audio[0])
    except (av.FFmpegError, OSError, UnicodeError, ValueError):
        return None


def probe_media(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in `path`: the audio stream's declared length, or counted by decoding when it has none.

    A few packets are always decoded, so a file that opens but cannot produce audio is caught here, before a model
    spends time on it. Raises MediaError ("file is empty", "not a media file (...)", "no audio track",
    "cannot decode audio: ...") or InputError ("file not found: ...").
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise errors.InputError(f"file not found: {path}") from None
    if size == 0:
        raise errors.MediaError("file is empty")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise errors.MediaError(f"not a media file ({_av_reason(exc).rstrip('.')})") from None
    with container:
        if not container.streams.audio:
            raise errors.MediaError("no audio track")
        stream = container.streams.audio[0]
        declared = audio_extent(container, stream)
        decoded_s, complete, first_s = _decode_seconds(
            container, stream, limit=None if declared is None else PROBE_DECODE_PACKETS
        )
        if decoded_s <= 0:
            raise errors.MediaError("cannot decode audio: no audio frames could be decoded")
        start = _seconds(stream.start_time, stream.time_base) or 0.0
        if declared is not None and first_s is not None and first_s - start > TRUNCATION_MIN_S:
            # The audio starts later than FFmpeg saw when it opened the file (a Matroska track at 1:00:00 behind
            # a video track that starts at 0): its declared end stays, its start is the first frame's.
            declared = max(start + declared - first_s, decoded_s)
        # Trust the declared length unless decoding already reached the end: then the samples counted are the
        # truth (a truncated mp3 keeps the full length in its header).
        return decoded_s if complete or declared is None else declared


def _decode_seconds(container: Any, stream: Any, limit: int | None) -> tuple[float, bool, float | None]:
    """Decode up to `limit` packets (all when None); return (seconds decoded, reached the end, first frame's
    time on the stream's timeline or None)."""
    samples = 0.0
    packets = 0
    first_error: str | None = None
    first_s: float | None = None
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    if first_s is None and frame.pts is not None and frame.time_base is not None:
                        first_s = float(frame.pts * frame.time_base)
                    samples += frame.samples / (frame.sample_rate or stream.rate or 1)
            except av.FFmpegError as exc:
                # A damaged packet in the middle is tolerable (the decoder resyncs); a file of nothing else is not.
                first_error = first_error or _av_reason(exc).rstrip(".")
            packets += 1
            if limit is not None and packets >= limit:
                return samples, False, first_s
    except av.FFmpegError as exc:
        first_error = first_error or _av_reason(exc).rstrip(".")
        if samples <= 0:
            raise errors.MediaError(f"cannot decode audio: {first_error}") from None
        return samples, True, first_s  # a truncated tail: keep what decoded
    if samples <= 0 and first_error:
        raise errors.MediaError(f"cannot decode audio: {first_error}")
    return samples, True, first_s


def _seconds(value: Any, time_base: Any) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _matroska_duration(text: Any) -> float | None:
    match = _MATROSKA_DURATION.match(str(text).strip()) if text else None
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _is_matroska(container: Any) -> bool:
    return "matroska" in (container.format.name or "") or "webm" in (container.format.name or "")


def _is_cover_art(stream: Any) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


# --------------------------------------------------------------------------------------------- decoding


@dataclass
class AudioWindow:
    """A stretch of one audio track, ready for the model."""

    offset_s: float
    """Where the window starts in the decoded audio (the sum of the windows before it)."""
    samples: np.ndarray
    """Mono float32 at 16 kHz in [-1, 1)."""
    last: bool
    """No audio follows: offset_s + duration_s is the track's decoded length."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.offset_s + self.duration_s


class AudioWindows:
    """Decodes one audio track of a file into windows of at most `window_s` seconds, cut at quiet moments.

    Open it (the file's problems raise errors.MediaError here, with the reason the user can act on), then iterate.
    Only one window (plus the tail decoded past its cut) is held at a time. A file that decodes for a while and
    then breaks (a cut-off download, a corrupt tail) FAILS at its end rather than giving a partial transcript that
    would look complete; single damaged packets are skipped (as faster-whisper and ffmpeg do); only audio that ends
    well short of the audio stream's own declared length counts as broken. `should_cancel` is polled while
    decoding; when it turns true, errors.Cancelled is raised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        window_s: float | None = None,
        track: int = 0,
        should_cancel: Callable[[], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.window_samples = int(window_s * SAMPLE_RATE) if window_s and window_s > 0 else None
        self.should_cancel = should_cancel or (lambda: False)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise errors.MediaError(f"audio file not found: {self.path}") from None
        if size == 0:
            raise errors.MediaError("file is empty (0 bytes)")
        try:
            self._container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except av.error.EOFError as exc:
            raise errors.MediaError("cannot decode audio: the file ends inside its header (truncated)") from exc
        except av.error.InvalidDataError as exc:
            raise errors.MediaError("cannot decode audio: not a media file, or a damaged one (invalid data)") from exc
        except av.error.FFmpegError as exc:
            raise errors.MediaError(f"cannot decode audio: {_av_reason(exc)}") from exc
        audio = self._container.streams.audio
        if not audio:
            kinds = sorted({s.type for s in self._container.streams}) or ["no streams"]
            self.close()
            raise errors.MediaError(f"no audio track in the file (it holds: {', '.join(kinds)})")
        self.tracks = len(audio)
        """How many audio tracks the file holds (this object decodes one of them)."""
        self.track = track
        self._stream = audio[track]
        self.declared_s = audio_extent(self._container, self._stream)
        """The track's declared length (None when its headers do not say): progress until the end is known."""
        self.decoded_s = 0.0
        """Seconds decoded so far."""
        self._start_s = _seconds(self._stream.start_time, self._stream.time_base) or 0.0
        self._timeline_end: float | None = None

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()
            # PyAV's resampler graphs are only freed by a collection (faster-whisper issue #390).
            gc.collect()

    def __enter__(self) -> "AudioWindows":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[AudioWindow]:
        pending: list[np.ndarray] = []  # int16 blocks not yet handed out
        buffered = 0
        offset = 0
        try:
            for block in self._blocks():
                pending.append(block)
                buffered += len(block)
                if self.window_samples is None or buffered <= self.window_samples:
                    continue
                joined = np.concatenate(pending)
                cut = quiet_cut(joined, self.window_samples)
                head = _to_float(joined[:cut])
                pending, buffered = [joined[cut:].copy()], len(joined) - cut
                del joined  # only the tail past the cut is kept while the model works on this window
                start, offset = offset, offset + cut
                yield AudioWindow(start / SAMPLE_RATE, head, last=False)
                del head
            self._check_complete()
            if buffered or offset == 0:
                joined = np.concatenate(pending) if pending else np.zeros(0, np.int16)
                pending = []
                head = _to_float(joined)
                del joined
                yield AudioWindow(offset / SAMPLE_RATE, head, last=True)
        finally:
            self.close()

    def _blocks(self) -> Iterator[np.ndarray]:
        """16 kHz mono int16 blocks, as they come out of the resampler."""
        stream = self._stream
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames = self._container.decode(stream)
        count = 0
        total = 0
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                frame = None
            except av.error.InvalidDataError:
                continue  # one damaged packet: skip it, like faster-whisper's own decoder
            except av.error.FFmpegError as exc:
                raise errors.MediaError(
                    f"cannot decode audio after {total / SAMPLE_RATE:.1f} s: {_av_reason(exc)}"
                ) from exc
            if frame is not None:
                if frame.pts is not None and frame.time_base is not None and frame.sample_rate:
                    end = float(frame.pts * frame.time_base) + frame.samples / frame.sample_rate
                    self._timeline_end = max(self._timeline_end or end, end)
                frame.pts = None  # a gap or jump in timestamps must not stop the resampler
                count += 1
                if count % CANCEL_CHECK_FRAMES == 0 and self.should_cancel():
                    raise errors.Cancelled(f"cancelled while decoding, at {total / SAMPLE_RATE:.1f} s")
            for out in resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1)
                if len(pcm):
                    total += len(pcm)
                    self.decoded_s = total / SAMPLE_RATE
                    yield pcm
            if frame is None:
                break

    def _check_complete(self) -> None:
        seconds = self.decoded_s
        if seconds == 0:
            raise errors.MediaError("cannot decode audio: the audio track holds no decodable samples")
        declared = self.declared_s
        # How far the audio reached, on the stream's own timeline when its frames carry timestamps: a track that
        # starts late (at 1:00:00 in a cut from a live stream, or whose start FFmpeg could not see and took as 0)
        # ends where its headers say even though fewer seconds were decoded.
        reached = seconds
        if self._timeline_end is not None:
            reached = max(reached, self._timeline_end - self._start_s)
        if declared and declared - reached > max(TRUNCATION_MIN_S, TRUNCATION_TOLERANCE * declared):
            raise errors.MediaError(
                f"audio breaks off at {reached:.1f} s of {declared:.1f} s: the file is truncated or corrupt"
            )


def decode_audio(path: str | os.PathLike[str], *, track: int = 0) -> np.ndarray:
    """One whole audio track as mono float32 at 16 kHz, or errors.MediaError with the reason.

    Holds the whole track in memory: for short clips and tests. Transcription streams with AudioWindows.
    """
    windows = list(AudioWindows(path, track=track))
    return windows[0].samples if len(windows) == 1 else np.concatenate([w.samples for w in windows])


def quiet_cut(samples: np.ndarray, end: int) -> int:
    """Where to end a window that may hold at most `end` samples: the quietest moment in its last stretch.

    Energy is averaged over half-second spans so the cut lands in a pause between words; among equally quiet
    spans (digital silence) the latest wins, keeping windows as long as allowed.
    """
    search = int(min(CUT_SEARCH_S * SAMPLE_RATE, end / 3))
    frame = int(CUT_FRAME_S * SAMPLE_RATE)
    start = max(0, end - search)
    region = samples[start:end].astype(np.float32)
    n = len(region) // frame
    if n < 1:
        return end
    energy = np.square(region[: n * frame].reshape(n, frame)).mean(axis=1)
    width = min(CUT_SMOOTH_FRAMES, n)
    smooth = np.convolve(energy, np.ones(width) / width, mode="valid")
    best = len(smooth) - 1 - int(np.argmin(smooth[::-1]))
    return start + (best + width // 2) * frame + frame // 2


def _to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def _av_reason(exc: BaseException) -> str:
    # PyAV messages end with the file name; the user already knows which file, keep the cause.
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


__all__ = [
    "SAMPLE_RATE", "AudioWindow", "AudioWindows", "audio_duration", "audio_extent", "decode_audio",
    "probe_media", "quiet_cut",
]
