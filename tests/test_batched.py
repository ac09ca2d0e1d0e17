"""Batched and bundled transcription with the real bundled model on real speech.

Batched: one file's 30 s VAD chunks decoded in batches. Bundled: the chunks of several files pooled into the same
batches and split back per file. Both must give complete transcripts (WER guard against what was spoken),
timestamps that rise and stay inside each file's own length, progress per chunk, cancel, and the time limit.
"""

from __future__ import annotations

import numpy as np
import pytest

import media
from bulk_transcribe import errors
from bulk_transcribe.media import batched
from bulk_transcribe.config import TranscribeOptions
from bulk_transcribe.engine.pipeline import safer_options
from bulk_transcribe.media.transcribe import Transcriber, decode_audio
from textmetrics import wer

OPTIONS = TranscribeOptions(cpu_threads=1)
BATCHED = TranscribeOptions(cpu_threads=1, batch_size=4)

WER_MARGIN = 0.03
"""Batched decoding may add at most this much WER (absolute) over unbatched decoding of the same audio."""


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(OPTIONS)


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory, speech_clips, jfk_flac, jfk_text):
    """About 50 s of speech in two or more VAD chunks: jfk, a 6 s pause, the four espeak sentences with pauses, jfk.

    Returns (path, reference text, seconds at which the 'library' sentence starts).
    """
    rate = 16000
    jfk, _ = media.read_pcm(jfk_flac)
    parts, text, library_at = [jfk, np.zeros(6 * rate, dtype=jfk.dtype)], [jfk_text], None
    for name in ("weather", "library", "garden", "train"):
        if name == "library":
            library_at = sum(len(p) for p in parts) / rate
        parts += [media.read_pcm(speech_clips[name].path)[0], np.zeros(2 * rate, dtype=jfk.dtype)]
        text.append(speech_clips[name].text)
    parts.append(jfk)
    text.append(jfk_text)
    path = media.write_wav(np.concatenate(parts), tmp_path_factory.mktemp("long") / "long_speech.wav", rate)
    return path, " ".join(text), library_at


@pytest.fixture(scope="module")
def late_speech(tmp_path_factory, speech_clips):
    """35 s of silence, then the 'train' sentence: its timestamps must land after 35 s in its own file."""
    rate = 16000
    speech = media.read_pcm(speech_clips["train"].path)[0]
    samples = np.concatenate([np.zeros(35 * rate, dtype=speech.dtype), speech])
    return media.write_wav(samples, tmp_path_factory.mktemp("late") / "late_train.wav", rate)


def assert_timestamps_sound(transcript) -> None:
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts), starts
    for s in transcript.segments:
        assert 0.0 <= s.start <= s.end <= transcript.duration_s + 1e-6, (s, transcript.duration_s)
        for w in s.words or []:
            assert s.start <= w.start <= w.end <= s.end


def test_cpu_default_is_unbatched_and_options_refuse_negative_sizes(transcriber):
    assert transcriber.batch_size() == 1  # measured: batching does not pay on this CPU (benchmarks/README.md)
    assert transcriber.batch_size(BATCHED) == 4
    assert batched.default_batch_size("cuda") == batched.CUDA_BATCH_SIZE > 1
    with pytest.raises(ValueError, match="batch size -1"):
        TranscribeOptions(batch_size=-1)
    # The retry after a runaway decode drops batching: sequential decoding has the temperature fallback.
    assert safer_options(BATCHED).batch_size == 1 and safer_options(BATCHED).vad_filter


def test_chunks_cut_at_pauses_stay_within_30_s(long_speech):
    path, _, _ = long_speech
    audio = decode_audio(path)
    chunks = batched.plan_chunks(audio)
    assert len(chunks) >= 2
    assert all(0 < c.samples <= 30 * 16000 for c in chunks)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:])), "chunks do not overlap and keep their order"
    assert chunks[-1].end <= len(audio)
    assert batched.plan_chunks(np.zeros(5 * 16000, dtype=np.float32)) == []  # silence: nothing to decode


def test_batched_transcript_is_complete_with_chunk_progress(transcriber, long_speech):
    path, reference, library_at = long_speech
    plain = transcriber.transcribe(path, "long")
    calls = []
    t = transcriber.transcribe(path, "long", options=BATCHED, on_progress=lambda *a: calls.append(a))
    assert t.batch_size == 4 and plain.batch_size == 1
    assert wer(reference, t.text) <= wer(reference, plain.text) + WER_MARGIN, t.text
    assert wer(reference, t.text) <= 0.15
    assert t.duration_s == pytest.approx(plain.duration_s)
    assert_timestamps_sound(t)
    library = [s for s in t.segments if "library" in s.text.lower()]
    assert library and library[0].end > library_at, "timestamps are in the file's time, not the batch's"
    done = [c[0] for c in calls]
    assert len(calls) == len(batched.plan_chunks(decode_audio(path))) >= 2, "progress is reported per chunk"
    assert done == sorted(done) and done[-1] == pytest.approx(t.duration_s)
    assert all(c[1] == pytest.approx(t.duration_s) for c in calls)


def test_batched_word_timestamps_stay_inside_their_segments(transcriber, jfk_flac, jfk_text):
    opts = TranscribeOptions(cpu_threads=1, batch_size=2, word_timestamps=True)
    t = transcriber.transcribe(jfk_flac, "jfk", options=opts)
    assert wer(jfk_text, t.text) <= 0.15
    assert all(s.words for s in t.segments)
    assert_timestamps_sound(t)


def test_bundle_splits_results_back_per_video(transcriber, long_speech, late_speech, speech_clips, bad_media,
                                              jfk_flac, jfk_text):
    long_path, long_text, _ = long_speech
    files = [
        (long_path, "long"),
        (speech_clips["weather"].path, "weather"),
        (bad_media["text_as_mp4"], "bad"),
        (late_speech, "late"),
        (bad_media["silence"], "silence"),
        (jfk_flac, "jfk"),
    ]
    progress = []
    results = transcriber.transcribe_bundle(files, options=BATCHED, on_progress=lambda *a: progress.append(a))
    assert [getattr(r, "video_id", None) for r in results] == ["long", "weather", None, "late", "silence", "jfk"]
    long_t, weather, bad, late, silence, jfk = results

    # One bad file fails alone, with the same reason as unbatched; the others are complete.
    assert isinstance(bad, errors.MediaError) and "not a media file" in bad.reason
    assert silence.segments == [] and silence.duration_s == pytest.approx(3.0, abs=0.1)
    # Each video complete (a lost sentence would cost it far more than 0.3), and over the whole bundle no worse
    # than unbatched decoding of the same files + 0.03 (one 12-word clip moves by 0.08 per word: judged together).
    spoken = ((long_t, long_text), (weather, speech_clips["weather"].text), (late, speech_clips["train"].text),
              (jfk, jfk_text))
    for t, reference in spoken:
        assert wer(reference, t.text) <= 0.3, (t.video_id, t.text)
    path_of = {v: p for p, v in files}
    plain = " ".join(transcriber.transcribe(path_of[t.video_id], t.video_id).text for t, _ in spoken)
    reference = " ".join(r for _, r in spoken)
    bundled = " ".join(t.text for t, _ in spoken)
    assert wer(reference, bundled) <= wer(reference, plain) + WER_MARGIN, (bundled, plain)
    for t in (long_t, weather, late, silence, jfk):
        assert t.batch_size == 4
        assert t.duration_s == pytest.approx(len(decode_audio(path_of[t.video_id])) / 16000)
        assert_timestamps_sound(t)
    # The late speech sits in a later slot of a shared batch; its times are moved back into its own file.
    assert late.segments and late.segments[0].start >= 34.0
    assert late.segments[-1].end <= late.duration_s

    # Progress: per chunk, per file, rising to each file's length.
    for index, t in enumerate(results):
        if isinstance(t, errors.VideoError):
            assert not any(p[0] == index for p in progress)
            continue
        mine = [p[1] for p in progress if p[0] == index]
        assert mine and mine == sorted(mine) and mine[-1] == pytest.approx(t.duration_s)


def test_batched_bad_media_fails_with_the_unbatched_reason(transcriber, bad_media):
    for name in ("empty", "no_audio", "truncated"):
        with pytest.raises(errors.MediaError) as plain:
            transcriber.transcribe(bad_media[name], name)
        with pytest.raises(errors.MediaError) as batched_error:
            transcriber.transcribe(bad_media[name], name, options=BATCHED)
        assert batched_error.value.reason == plain.value.reason
    silence = transcriber.transcribe(bad_media["silence"], "silence", options=BATCHED)
    assert silence.segments == [] and silence.duration_s == pytest.approx(3.0, abs=0.1)


def test_bundle_cancel_stops_between_batches(transcriber, long_speech, jfk_flac):
    seen = []
    with pytest.raises(errors.Cancelled, match="cancelled at"):
        transcriber.transcribe_bundle(
            [(long_speech[0], "long"), (jfk_flac, "jfk")], options=TranscribeOptions(cpu_threads=1, batch_size=2),
            on_progress=lambda *a: seen.append(a), should_cancel=lambda: bool(seen),
        )
    assert 1 <= len(seen) <= 2, "stopped after the first batch (two chunks), not at the end"
    with pytest.raises(errors.Cancelled, match="before transcription"):
        transcriber.transcribe(jfk_flac, "jfk", options=BATCHED, should_cancel=lambda: True)


def test_time_limit_fails_only_the_unfinished_videos(jfk_flac, jfk_text, long_speech, tmp_path):
    """A bundle past its time limit keeps the videos already decoded and fails the rest, each on its own."""
    strict = Transcriber(OPTIONS, timeout_grace_s=0.0)
    opts = TranscribeOptions(cpu_threads=1, batch_size=1, timeout_factor=1e-6)
    done, cut = strict.transcribe_bundle([(jfk_flac, "jfk"), (long_speech[0], "long")], options=opts)
    assert wer(jfk_text, done.text) <= 0.15, "the first batch (all of jfk) finished before the limit was checked"
    assert isinstance(cut, errors.TranscriptionError) and "exceeded its time limit" in cut.reason
    # One long video, batched two chunks at a time: stopped after its first batch.
    samples, rate = media.read_pcm(long_speech[0])
    longer = media.write_wav(np.tile(samples, 2), tmp_path / "longer.wav", rate)
    assert len(batched.plan_chunks(decode_audio(longer))) > 2
    with pytest.raises(errors.TranscriptionError, match="exceeded its time limit"):
        strict.transcribe(longer, "longer", options=TranscribeOptions(cpu_threads=1, batch_size=2,
                                                                      timeout_factor=1e-6))


def test_media_longer_than_a_window_is_transcribed_in_windows_even_when_batched(transcriber, jfk_flac, jfk_text):
    """The batched pipeline takes a file's audio whole: past one window, memory would grow with the length, so such
    media goes window by window (unbatched) instead; within a window, batching applies."""
    from dataclasses import replace

    windowed = transcriber.transcribe(jfk_flac, "jfk", options=replace(BATCHED, window_s=5.0))
    assert windowed.batch_size == 1 and wer(jfk_text, windowed.text) <= 0.2
    assert all(a.end <= b.start + 0.01 for a, b in zip(windowed.segments, windowed.segments[1:]))
    whole = transcriber.transcribe(jfk_flac, "jfk", options=BATCHED)
    assert whole.batch_size == 4
