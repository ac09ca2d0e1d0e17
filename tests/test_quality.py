"""quality.py: the flags the tool gives real transcripts (espeak-ng speech in several languages, jfk.flac, silence, a
drone) through its own Transcriber and the bundled tiny.en, and small synthetic transcripts for each rule's edges.
Each test names the rule it guards and fails when that rule breaks. Thresholds and the labelled set behind them:
benchmarks/bench_quality.py and benchmarks/README.md (Quality).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import media
from bulk_transcribe import quality
from bulk_transcribe.config import TranscribeOptions

Flag, Judged, QualitySignals = quality.Flag, quality.Judged, quality.QualitySignals
assess, better, signals_from_segments = quality.assess, quality.better, quality.signals_from_segments

SR = 16000
TINY = dict(english_only_model=True, model_name="tiny.en")


# ---- real transcripts, as the tool makes them -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    """The bundled tiny.en as every run loads it (CPU, int8), on 2 threads."""
    from bulk_transcribe.media.transcribe import Transcriber

    return Transcriber(TranscribeOptions(cpu_threads=2))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Audio files made here: espeak-ng speech by voice, and samples written as WAV."""
    folder = tmp_path_factory.mktemp("quality")
    count = iter(range(1000))

    def say(text: str, voice: str = "en-us", speed: int = 150) -> Path:
        return media.espeak_wav(text, folder / f"{next(count)}.wav", voice=voice, speed=speed)

    def wav(samples: np.ndarray) -> Path:
        return media.write_wav((np.clip(samples, -1, 1) * 32767).astype(np.int16), folder / f"{next(count)}.wav")

    return SimpleNamespace(say=say, wav=wav)


def flags_of(transcriber, path: Path, **options):
    """A real transcription and the quality it leaves with: (signals, flags, text)."""
    transcript = transcriber.transcribe(path, "q", options=TranscribeOptions(cpu_threads=2, **options))
    return transcript.quality.signals, transcript.quality.flags, transcript.text


def test_real_english_speech_is_not_flagged(tiny, clips):
    """No rule fires on clean English: confident, enough words for the speech. With words enough for the audio,
    VAD is not even run (quality.needs_vad): its seconds could change no flag."""
    path = clips.say("The weather today is sunny with a light breeze from the west. Please return the library "
                     "books before the end of the month. The next train to the city leaves at seven in the "
                     "morning, and it is usually on time.", speed=160)
    signals, flags, text = flags_of(tiny, path)
    assert "library books" in text.lower()
    assert flags == [], text
    assert signals.mean_logprob > quality.LOW_CONFIDENCE_LOGPROB
    assert signals.words_per_s > quality.SPEECH_MISSING_WORDS_PER_S


def test_real_jfk_is_not_flagged(tiny, jfk_flac):
    signals, flags, text = flags_of(tiny, jfk_flac)
    assert "fellow americans" in text.lower()
    assert flags == [] and 0.5 < signals.speech_share < 1.0  # 11 s: short audio is always measured with VAD


def test_real_short_silence_is_not_flagged(tiny, clips):
    """An empty transcript of silence is right: neither speech_missing nor anything else."""
    signals, flags, text = flags_of(tiny, clips.wav(np.zeros(4 * SR)))
    assert text == "" and signals.vad_speech_s == 0.0 and flags == []


def test_real_silence_hallucination_is_no_speech_text_and_safer_options_fix_it(tiny, clips):
    """no_speech_text: tiny.en writes " you" on 15 s of digital silence (greedy, so every run); the recheck's
    options (VAD, no conditioning) write nothing, and better() keeps that."""
    path = clips.wav(np.zeros(15 * SR))
    signals, flags, text = flags_of(tiny, path)
    assert text and signals.vad_speech_s == 0.0
    assert "no_speech_text" in codes(flags)
    again = flags_of(tiny, path, vad_filter=True, condition_on_previous_text=False, batch_size=1)
    assert again[2] == "" and again[1] == []
    original, rechecked = Judged(signals, flags), Judged(again[0], again[1])
    assert better(original, rechecked) is rechecked


def test_real_drone_dot_is_no_speech_text(tiny, clips):
    """no_speech_text counts "." as text: tiny.en writes it on a vowel-like buzz with no speech in it."""
    t = np.arange(6 * SR) / SR
    phase = 2 * np.pi * np.cumsum(130 * (1 + 0.02 * np.sin(2 * np.pi * 0.3 * t))) / SR
    buzz = sum(np.sin(h * phase) / h * (1.5 if 5 <= h <= 8 else 1.0) for h in range(1, 30))
    signals, flags, text = flags_of(tiny, clips.wav(buzz / np.max(np.abs(buzz)) * 0.3))
    assert text.strip() == "." and signals.n_words == 0
    assert codes(flags) == ["no_speech_text"]


def test_real_german_through_tiny_en_is_low_confidence(tiny, clips):
    """low_confidence: German through the English-only model reads as fluent English to a person, but the model's
    own mean log-probability is about -1.0; the reason names the model and says it may not be English."""
    path = clips.say("Das Essen in diesem Restaurant ist sehr gut, aber leider auch sehr teuer.", "de")
    signals, flags, text = flags_of(tiny, path)
    assert text and signals.mean_logprob < quality.LOW_CONFIDENCE_LOGPROB
    assert "low_confidence" in codes(flags)
    assert "not English (bundled (tiny.en) is English-only)" in flags[codes(flags).index("low_confidence")].reason


def test_real_spanish_through_tiny_en_is_speech_missing(tiny, clips):
    """speech_missing: tiny.en drops Spanish speech altogether while VAD hears speech throughout."""
    path = clips.say("Hoy quiero hablar del tiempo. Mañana va a llover, y el fin de semana volverá a salir el sol.",
                     "es")
    signals, flags, text = flags_of(tiny, path)
    assert text == "" and signals.speech_share > 0.9
    assert codes(flags) == ["speech_missing"]
    assert flags[0].reason.startswith("speech expected, none transcribed (VAD: ")


def test_real_italian_loop_through_tiny_en(tiny, clips):
    """loop: tiny.en turns Italian into "I'm not sure if I can." three times (greedy, so every run)."""
    path = clips.say("Oggi voglio parlare del tempo. Domani pioverà, ma nel fine settimana tornerà il sole.", "it")
    signals, flags, text = flags_of(tiny, path)
    assert signals.max_line_repeats >= quality.LOOP_MIN_REPEATS, text
    assert "loop" in codes(flags)
    assert f"one line {signals.max_line_repeats} times" in flags[codes(flags).index("loop")].reason


def test_real_sentence_said_three_times_is_not_a_loop(tiny, clips):
    """loop spares audio that really repeats itself: tiny.en transcribes the sentence three times, confidently."""
    sentence = clips.say("Please return the library books before the end of the month.", speed=160)
    samples, _rate = media.read_pcm(sentence)
    once = np.concatenate([samples.astype(np.float32) / 32768, np.zeros(SR // 2, np.float32)])
    signals, flags, text = flags_of(tiny, clips.wav(np.concatenate([once] * 3)))
    assert signals.max_line_repeats == 3 or signals.max_ngram_repeats >= 3, text
    assert signals.mean_logprob > quality.LOOP_CONFIDENT_LOGPROB
    assert flags == []


def test_vad_runs_only_where_it_can_change_a_flag():
    """needs_vad: with a word per second of audio or more (so as many per second of speech), no high no-speech
    probability and more than VAD_ALWAYS_BELOW_S of audio, speech_missing cannot fire whatever VAD finds, and the
    text is taken to stand on speech: the flags are those VAD would give wherever it hears any."""
    import random

    rng = random.Random(0)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar".split()
    fluent = [seg(" " + " ".join(rng.sample(words, 6)) + ".", i * 3, i * 3 + 3, lp=-0.4) for i in range(20)]
    long_ok = signals_from_segments(fluent, duration_s=60.0)
    assert not quality.needs_vad(long_ok)
    for speech_s in (quality.NO_SPEECH_MAX_VAD_S, 20.0, 60.0):
        assert assess(quality.with_vad(long_ok, speech_s), **TINY) == assess(long_ok, **TINY) == []
    assert quality.needs_vad(signals_from_segments(fluent[:2], duration_s=60.0))  # 16 words in a minute
    assert quality.needs_vad(signals_from_segments(fluent[:2], duration_s=6.0))  # short: always measured
    doubted = [seg(" Words.", i * 3, i * 3 + 3, nsp=0.9) for i in range(40)]
    assert quality.needs_vad(signals_from_segments(doubted, duration_s=60.0))


def test_a_quality_record_round_trips_through_json():
    signals = signals_from_segments([seg(" Hello there.", 0, 2)], duration_s=5, vad_speech_s=3.0)
    record = quality.Quality(signals, [Flag("loop", "repetition loop (one line 3 times)")],
                             quality.Recheck("whisper-base", "recheck", [Flag("loop", "x")], [], -0.9, -0.4))
    assert quality.Quality.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert quality.Quality.from_dict(None) is None
    assert quality.review_line(record.flags) == "repetition loop (one line 3 times)"


def test_stored_segments_without_scores_count_for_text_only():
    """A transcript stored before segments kept the model's scores: words count, no log-probability is made up."""
    bare = [SimpleNamespace(start=0.0, end=2.0, text=" Hello there, how are you.", avg_logprob=None,
                            compression_ratio=None, no_speech_prob=None)]
    signals = signals_from_segments(bare, duration_s=3.0)
    assert signals.n_words == 5 and signals.mean_logprob is None and signals.mean_no_speech_prob is None


def seg(text: str, start: float = 0.0, end: float = 3.0, *, lp: float = -0.3, cr: float = 1.3, nsp: float = 0.1,
        temperature: float = 0.0):
    return SimpleNamespace(start=start, end=end, text=text, avg_logprob=lp, compression_ratio=cr,
                           no_speech_prob=nsp, temperature=temperature)


def codes(flags: list[Flag]) -> list[str]:
    return [f.code for f in flags]


# ---- synthetic transcripts: edges -------------------------------------------------------------------------------


def test_empty_transcript_on_silence_is_not_flagged():
    """speech_missing needs speech: an empty transcript of silence (VAD finds none) is right, not doubtful."""
    signals = signals_from_segments([], duration_s=10.0, vad_speech_s=0.0)
    assert signals.n_words == 0 and signals.mean_logprob is None
    assert assess(signals, **TINY) == []


def test_empty_transcript_without_vad_is_not_flagged():
    """Without a VAD measurement nothing says speech was expected: no speech_missing guess."""
    assert assess(signals_from_segments([], duration_s=10.0), **TINY) == []


def test_empty_transcript_of_speech_is_speech_missing():
    """speech_missing: VAD hears 8 s of 10 s, the model wrote nothing."""
    flags = assess(signals_from_segments([], duration_s=10.0, vad_speech_s=8.0), **TINY)
    assert codes(flags) == ["speech_missing"]
    assert flags[0].reason == "speech expected, none transcribed (VAD: 80% speech)"


def test_a_cough_is_not_missing_speech():
    """speech_missing ignores less than SPEECH_MISSING_MIN_S of VAD speech."""
    signals = signals_from_segments([], duration_s=2.0, vad_speech_s=0.5)  # a cough: 0.5 s of "speech"
    assert assess(signals, **TINY) == []


def test_two_words_for_twenty_seconds_of_speech_is_speech_missing():
    """speech_missing also covers a transcript far too short for the speech (tiny.en wrote " of the" for 22 s of
    German)."""
    signals = signals_from_segments([seg(" of the", 0, 20, lp=-2.2, temperature=1.0)], duration_s=22.0,
                                    vad_speech_s=21.7)
    flags = assess(signals, **TINY)
    assert "speech_missing" in codes(flags)
    assert "only 2 word(s) transcribed" in flags[codes(flags).index("speech_missing")].reason


def test_one_confident_segment_is_not_flagged():
    signals = signals_from_segments([seg(" The next train leaves early in the morning.", 0, 3)], duration_s=3.5,
                                    vad_speech_s=3.0)
    assert signals.n_segments == 1 and signals.n_words == 8
    assert assess(signals, **TINY) == []


def test_low_confidence_threshold():
    """low_confidence: the duration-weighted mean avg_logprob against LOW_CONFIDENCE_LOGPROB, either side."""
    above = quality.LOW_CONFIDENCE_LOGPROB + 0.05
    below = quality.LOW_CONFIDENCE_LOGPROB - 0.05
    text = " It must be a better situation."
    ok = signals_from_segments([seg(text, lp=above)], duration_s=3, vad_speech_s=3)
    bad = signals_from_segments([seg(text, lp=below)], duration_s=3, vad_speech_s=3)
    assert assess(ok, **TINY) == []
    flags = assess(bad, **TINY)
    assert codes(flags) == ["low_confidence"]
    assert f"mean log-probability {below:.2f}" in flags[0].reason
    assert "not English (tiny.en is English-only)" in flags[0].reason
    assert "not English" not in assess(bad, english_only_model=False, model_name="base")[0].reason


def test_low_confidence_weights_by_duration():
    """The mean is weighted by the seconds each segment covers: one short bad window does not sink a long good
    one."""
    segments = [seg(" A long good stretch of speech here.", 0, 27, lp=-0.3), seg(" Uh.", 27, 30, lp=-2.0)]
    signals = signals_from_segments(segments, duration_s=30, vad_speech_s=28)
    assert signals.mean_logprob == pytest.approx((-0.3 * 27 - 2.0 * 3) / 30)
    assert signals.min_logprob == -2.0
    assert "low_confidence" not in codes(assess(signals, **TINY))


def test_temperature_fallback_is_measured_not_flagged_alone():
    """Fallback alone is no flag (the good clip that repeats its sentence is decoded at temperature 1.0 because
    of its compression ratio); it is reported in the signals."""
    sampled = signals_from_segments([seg(" Some words here.", 0, 2, lp=-0.4, temperature=0.6),
                                     seg(" More words.", 2, 3, lp=-0.4, temperature=0.0)], duration_s=3,
                                    vad_speech_s=3)
    assert sampled.fallback_share == pytest.approx(2 / 3) and sampled.max_temperature == 0.6
    assert assess(sampled, **TINY) == []


def test_loop_of_identical_lines():
    """loop: one normalised line LOOP_MIN_REPEATS+ times at ordinary confidence ("I'm going to do it." ×6)."""
    segments = [seg(" I'm going to do it." if i % 2 else " I'm going to do it!", i, i + 1, lp=-0.6)
                for i in range(6)]
    signals = signals_from_segments(segments, duration_s=6, vad_speech_s=6)
    assert signals.max_line_repeats == 6 and signals.max_line_run == 6
    flags = assess(signals, **TINY)
    assert "loop" in codes(flags)
    assert flags[codes(flags).index("loop")].reason == "repetition loop (one line 6 times)"


def test_loop_inside_one_segment():
    """loop: a phrase repeated inside one line counts through word 4-grams ("ah, ah, ah, ..." from tiny.en)."""
    signals = signals_from_segments([seg(" Aah, ah, ah, ah, ah, ah, ah, ah, ah.", 0, 8, lp=-1.0, cr=2.4)],
                                    duration_s=8.4, vad_speech_s=8.4)
    assert signals.max_line_repeats == 1 and signals.max_ngram_repeats == 5  # "ah ah ah ah" at 5 places
    assert "repetition loop (one phrase 5 times)" in [f.reason for f in assess(signals, **TINY)]


def test_two_repeats_are_not_a_loop():
    signals = signals_from_segments([seg(" Thank you.", 0, 1, lp=-0.6), seg(" Thank you.", 1, 2, lp=-0.6)],
                                    duration_s=2, vad_speech_s=2)
    assert "loop" not in codes(assess(signals, **TINY))


def test_confident_repetition_is_not_a_loop():
    """loop spares repetition decoded above LOOP_CONFIDENT_LOGPROB: audio that says its sentence 4 times."""
    line = " Please return the library books before the end of the month."
    segments = [seg(line, 4 * i, 4 * i + 3.5, lp=-0.15, cr=3.7, temperature=1.0) for i in range(4)]
    assert "loop" not in codes(assess(signals_from_segments(segments, duration_s=16, vad_speech_s=13), **TINY))
    segments = [seg(line, 4 * i, 4 * i + 3.5, lp=quality.LOOP_CONFIDENT_LOGPROB - 0.05) for i in range(4)]
    assert "loop" in codes(assess(signals_from_segments(segments, duration_s=16, vad_speech_s=13), **TINY))


def test_confident_repetition_faster_than_speech_is_a_loop():
    """A confident loop is still a loop when no speech could say it: the tiny.en recheck that wrote "Boy, boy,
    ..." 112 times at mean log-probability -0.11, compression ratio 29.4, 21 words per second of VAD speech."""
    boys = " " + ", ".join(["Boy"] * 112) + "."
    looped = signals_from_segments([seg(boys, 0, 6.4, lp=-0.11, cr=29.4, temperature=1.0)], duration_s=8.0,
                                   vad_speech_s=5.3)
    assert looped.words_per_speech_s > quality.LOOP_SPEECH_MAX_WORDS_PER_S
    assert "repetition loop (one phrase 109 times)" in [f.reason for f in assess(looped, **TINY)]
    # The rate alone decides too, without a compression figure and without VAD (words per second of audio).
    fast = signals_from_segments([seg(boys, 0, 8, lp=-0.11)], duration_s=8.0)
    assert "loop" in codes(assess(fast, **TINY))


def test_text_where_vad_hears_nothing_is_no_speech_text():
    """no_speech_text: any text, even ".", on audio VAD finds no speech in."""
    signals = signals_from_segments([seg(" Thank you for watching!", 0, 2, lp=-0.4, nsp=0.3)], duration_s=8,
                                    vad_speech_s=0.0)
    flags = assess(signals, **TINY)
    assert codes(flags) == ["no_speech_text"]
    assert flags[0].reason == "text on audio with no speech (VAD: 0.0 s of speech)"


def test_vad_speech_overrides_the_no_speech_probability():
    """no_speech_text: when VAD hears speech, a high no_speech_prob (0.70 on Italian through tiny.en) is no
    reason to say nothing was spoken; below NO_SPEECH_MAX_VAD_S of speech, text is flagged."""
    segments = [seg(" I'm not sure if I can.", 0, 2, lp=-0.5, nsp=0.7)]
    assert assess(signals_from_segments(segments, duration_s=5, vad_speech_s=5.0), **TINY) == []
    short = signals_from_segments(segments, duration_s=5, vad_speech_s=quality.NO_SPEECH_MAX_VAD_S * 0.9)
    assert "no_speech_text" in codes(assess(short, **TINY))


def test_text_with_high_no_speech_probability_is_no_speech_text():
    """no_speech_text without VAD: the model's own mean no_speech_prob above NO_SPEECH_PROB."""
    flags = assess(signals_from_segments([seg(" .", 0, 7, lp=-0.67, cr=0.11, nsp=0.91)], duration_s=8), **TINY)
    assert codes(flags) == ["no_speech_text"]
    assert flags[0].reason == "text on audio with no speech (no-speech probability 0.91)"
    ok = signals_from_segments([seg(" Hello there.", 0, 2, nsp=quality.NO_SPEECH_PROB - 0.05)], duration_s=2)
    assert assess(ok, **TINY) == []


def test_wrong_language_from_a_detector():
    """wrong_language: an English-only model, and a multilingual detector gives English < EN_PROBABILITY_MIN."""
    signals = signals_from_segments([seg(" It must be a better situation.", lp=-0.6)], duration_s=3, vad_speech_s=3)
    german = quality.with_detector(signals, [("de", 0.62), ("en", 0.15), ("nl", 0.1)])
    flags = assess(german, **TINY)
    assert codes(flags) == ["wrong_language"]
    assert flags[0].reason == ("wrong language for this model (speech looks like German, English 15%; "
                               "tiny.en is English-only)")
    english = quality.with_detector(signals, [("en", 0.75), ("de", 0.1)])
    assert assess(english, **TINY) == []


def test_wrong_language_from_a_detected_code_alone():
    signals = signals_from_segments([seg(" Some words were written here.", lp=-0.3)], duration_s=3, vad_speech_s=3)
    flags = assess(signals, **TINY, detected_language="fr")
    assert codes(flags) == ["wrong_language"] and "looks like French" in flags[0].reason
    assert assess(signals, **TINY, detected_language="en") == []


def test_detector_on_silence_flags_nothing():
    """wrong_language needs speech: on silence a detector names some language with a low P(en)."""
    signals = quality.with_detector(signals_from_segments([], duration_s=4, vad_speech_s=0.0),
                                    [("nn", 0.5), ("en", 0.2)])
    assert assess(signals, **TINY) == []


def test_multilingual_model_unsure_of_its_language():
    """wrong_language for a multilingual model: the language it chose had probability < LANGUAGE_PROBABILITY_MIN."""
    segments = [seg(" เจ้ามากินว่า", lp=-0.5)]
    unsure = signals_from_segments(segments, duration_s=3, language="th", language_probability=0.44, vad_speech_s=3)
    sure = signals_from_segments(segments, duration_s=3, language="th", language_probability=0.9, vad_speech_s=3)
    assert codes(assess(unsure, english_only_model=False, model_name="base")) == ["wrong_language"]
    assert assess(sure, english_only_model=False, model_name="base") == []


def test_signals_round_trip_through_json():
    signals = signals_from_segments([seg(" Hello there.", 0, 2), seg(" Hello there.", 2, 4)], duration_s=5,
                                    language="en", language_probability=0.9,
                                    all_language_probs=[("en", 0.9), ("de", 0.05)], vad_speech_s=3.5)
    back = QualitySignals.from_dict(json.loads(json.dumps(signals.to_dict())))
    assert back == signals
    assert back.english_probability == 0.9 and back.detector_language == "de" and back.speech_share == 0.7
    flags = assess(signals_from_segments([], duration_s=5, vad_speech_s=4), **TINY)
    assert [Flag.from_dict(json.loads(json.dumps(f.to_dict()))) for f in flags] == flags


def test_from_dict_ignores_unknown_keys():
    """Stored signals from a newer version still load."""
    assert QualitySignals.from_dict({"duration_s": 3.0, "some_future_signal": 1}).duration_s == 3.0


def test_better_keeps_the_less_flagged_transcript():
    """better: fewer/less serious flags win, whichever came first."""
    loop = Judged(QualitySignals(5, mean_logprob=-0.4), [Flag("loop", "x")])
    clean = Judged(QualitySignals(5, mean_logprob=-0.9), [])
    assert better(loop, clean) is clean
    assert better(clean, loop) is clean
    weak = Judged(QualitySignals(5, mean_logprob=-0.8), [Flag("low_confidence", "x")])
    assert better(loop, weak) is weak  # a loop is worse than low confidence alone


def test_better_keeps_the_original_on_a_tie():
    """better: with equal flags the recheck must be clearly more confident (BETTER_LOGPROB_MARGIN) to win."""
    a = Judged(QualitySignals(5, mean_logprob=-0.90), [Flag("low_confidence", "x")])
    close = Judged(QualitySignals(5, mean_logprob=-0.90 + quality.BETTER_LOGPROB_MARGIN / 2),
                   [Flag("low_confidence", "y")])
    clear = Judged(QualitySignals(5, mean_logprob=-0.90 + quality.BETTER_LOGPROB_MARGIN * 2),
                   [Flag("low_confidence", "y")])
    assert better(a, close) is a
    assert better(a, clear) is clear
    empty = Judged(QualitySignals(5), [])
    assert better(empty, Judged(QualitySignals(5), [])) is empty
