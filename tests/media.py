"""Real media for tests, made on the spot: speech from espeak-ng, containers encoded with PyAV.

No ffmpeg binary is needed: PyAV's wheels carry the codecs.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16000


def espeak_wav(text: str, path: Path, *, speed: int = 160, voice: str = "en-us") -> Path:
    """Speak `text` into a WAV file with espeak-ng (a real speech signal the model can transcribe)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing: `make setup` installs it (apt-get install espeak-ng)")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return path


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """Decode any audio file to mono int16 samples with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16), SAMPLE_RATE


def write_wav(samples: np.ndarray, path: Path, rate: int = SAMPLE_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def _write_audio(container, astream, resampler, samples: np.ndarray, rate: int, first_pts: int = 0) -> None:
    """Mono int16 `samples` at `rate` into `astream`, a tenth of a second per frame, then flush the encoder."""
    block = rate // 10

    def frames():
        for start in range(0, len(samples), block):
            chunk = samples[start:start + block].astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, first_pts + start, Fraction(1, rate)
            yield frame
        yield None  # flushes the resampler

    for frame in frames():
        for resampled in resampler.resample(frame):
            for packet in astream.encode(resampled):
                container.mux(packet)
    for packet in astream.encode(None):
        container.mux(packet)


def encode_audio(samples: np.ndarray, path: Path, *, codec: str, rate: int = SAMPLE_RATE,
                 with_video: bool = False) -> Path:
    """Encode mono int16 samples into `path` (container from the suffix), optionally beside a tiny video track."""
    out_rate = 44100 if codec == "libmp3lame" else (48000 if codec == "libopus" else rate)
    with av.open(str(path), "w") as container:
        vstream = None
        if with_video:
            vstream = container.add_stream("libx264" if path.suffix in (".mp4", ".mkv") else "mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = container.add_stream(codec, rate=out_rate)
        astream.layout = "mono"
        resampler = av.AudioResampler(format=astream.format.name if astream.format else "fltp",
                                      layout="mono", rate=out_rate)
        _write_audio(container, astream, resampler, samples, rate)
        if vstream is not None:
            seconds = max(1, int(len(samples) / rate))
            for i in range(seconds * 5):
                img = np.full((48, 64, 3), (i * 10) % 255, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


def mux(path: Path, tracks: list[np.ndarray], *, video_s: float = 0.0, audio_start_s: float = 0.0,
        rate: int = SAMPLE_RATE) -> Path:
    """A container (from the suffix) holding `tracks` (mono int16 at `rate`, one audio stream each) and, when
    video_s > 0, a tiny video track of that length, which may outlast the audio. audio_start_s puts the audio's
    first timestamp there (a recording cut from a live stream: the audio starts at 1:00:00).

    Codecs follow the container: Opus + VP8 for .webm, AAC + H.264 otherwise (MPEG-4 part 2 for .ts)."""
    webm = path.suffix == ".webm"
    acodec, arate = ("libopus", 48000) if webm else ("aac", rate)
    vcodec = "libvpx" if webm else ("mpeg4" if path.suffix == ".ts" else "libx264")
    with av.open(str(path), "w") as container:
        vstream = None
        if video_s > 0:
            vstream = container.add_stream(vcodec, rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astreams = []
        for _ in tracks:
            astream = container.add_stream(acodec, rate=arate)
            astream.layout = "mono"
            astreams.append(astream)
        first = int(audio_start_s * rate)
        for astream, samples in zip(astreams, tracks):
            resampler = av.AudioResampler(format=astream.format.name, layout="mono", rate=arate)
            _write_audio(container, astream, resampler, samples, rate, first_pts=first)
        if vstream is not None:
            for i in range(int(video_s * 5)):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10 % 255, np.uint8), format="rgb24")
                frame.pts = i
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


def spaced_speech(texts: list[str], path: Path, *, gap_s: float = 3.0) -> tuple[Path, list[float]]:
    """One file of espeak-ng sentences with `gap_s` of silence before each; returns it and each sentence's start."""
    pieces, starts, at = [], [], 0
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.int16)
    for i, text in enumerate(texts):
        pcm, _ = read_pcm(espeak_wav(text, path.with_suffix(f".{i}.wav")))
        path.with_suffix(f".{i}.wav").unlink()
        pieces += [gap, pcm]
        starts.append((at + len(gap)) / SAMPLE_RATE)
        at += len(gap) + len(pcm)
    pieces.append(gap)
    samples = np.concatenate(pieces)
    if path.suffix == ".wav":
        return write_wav(samples, path), starts
    codec = {".ogg": "libopus", ".opus": "libopus", ".m4a": "aac", ".mp3": "libmp3lame"}[path.suffix]
    return encode_audio(samples, path, codec=codec), starts


def video_without_audio(path: Path, seconds: int = 2) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * 5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20 % 255, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def speech(text: str, path: Path, *, speed: int = 160, voice: str = "en-us") -> Path:
    """Speech in whatever container `path` names (.wav, .mp3, .m4a, .ogg/.opus, .flac, .mp4 with video), in
    espeak-ng's `voice` (a language: de, es, fr ...)."""
    wav = espeak_wav(text, path.with_suffix(".src.wav"), speed=speed, voice=voice)
    if path.suffix == ".wav":
        wav.rename(path)
        return path
    samples, rate = read_pcm(wav)
    wav.unlink()
    codec = {".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libopus", ".opus": "libopus",
             ".flac": "flac", ".mp4": "aac", ".mkv": "aac"}[path.suffix]
    return encode_audio(samples, path, codec=codec, rate=rate, with_video=path.suffix in (".mp4", ".mkv"))


def silence(path: Path, seconds: float = 3.0) -> Path:
    return write_wav(np.zeros(int(seconds * SAMPLE_RATE), np.int16), path)


def truncated_copy(src: Path, dst: Path, fraction: float = 0.4) -> Path:
    """A file cut short mid-stream, the way an interrupted download leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupt_copy(src: Path, dst: Path) -> Path:
    """Valid header, garbage body: decodes for a moment then breaks."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(7)
    start = min(len(data) // 3, 4096)
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst
