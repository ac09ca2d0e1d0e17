"""Which transcripts not to trust: per-video quality signals from Whisper's own outputs, flags with one-line reasons,
and the choice between a transcript and its recheck.

Pure: stdlib only, no faster-whisper import (`vad_speech_seconds` imports it lazily, when called). The transcriber
(media/transcribe.py) hands `signals_from_segments` what faster-whisper already returns (segments with avg_logprob,
compression_ratio, no_speech_prob, temperature; TranscriptionInfo's language) plus, when `needs_vad` says the flags
may depend on it, the seconds of speech Silero VAD finds in the audio; `assess` turns the signals into flags;
`better` picks the transcript to keep after a recheck (engine/pipeline.py). A transcript carries the result as its
`Quality`, which the store, the manifest, transcript.json and every screen show.

Every threshold below was chosen on the labelled set that `bench_quality.py` builds (English espeak-ng speech and
jfk.flac, German/French/Spanish/Italian/Dutch espeak-ng speech, provoked loops, synthetic noise, music and silence,
all through the default path: bundled tiny.en, beam 1, int8, no VAD); benchmarks/README.md (Quality) has the study and bench_quality.py its per-clip tables. faster-
whisper decodes audio in 30 s windows and gives every segment of a window the window's avg_logprob,
compression_ratio, no_speech_prob and temperature, so "per segment" below means "per window, weighted by the time
its segments cover".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Iterable, Protocol, Sequence

# ---- thresholds (each measured on the labelled set; see benchmarks/README.md, Quality) ---------------------------------------------

LOW_CONFIDENCE_LOGPROB = -0.75
"""Flag `low_confidence` when the duration-weighted mean avg_logprob is below this. Measured with tiny.en on the
54-clip set, two full runs: the 22 good English clips (8 espeak-ng voices at 130-200 wpm, jfk, light noise, music
intros and beds, -40 dBFS, whispered) lie between -0.61 and -0.14, and the hard English clip tiny.en still gets
right (music 10 dB louder than the speech, WER 0.13) at -0.64; every bad transcript of speech (non-English through
tiny.en, 0 dB SNR, 400 wpm, syllables) lies between -3.86 and -0.92. whisper-base: good English -0.51 to -0.20."""

LOOP_MIN_REPEATS = 3
"""Flag `loop` when one normalised line, or one word 4-gram, occurs at least this often and is not just the audio
repeating itself (see LOOP_CONFIDENT_LOGPROB). Measured: no good clip repeats a line or a 4-gram more than once
except the clip whose audio says its sentence four times (4); tiny.en's loops on German, French, Italian and
syllables repeat 3-5 times in these 5-22 s clips; whisper-base translating French repeats "I will not let you go."
3 times, a 22 s German paragraph repeats a 4-gram 6 times, and on 16-voice babble it writes "You see?" 5 times."""

LOOP_CONFIDENT_LOGPROB = -0.3
"""Repetition decoded above this mean avg_logprob is taken as repeated audio, not a loop: the good clip that says
its sentence four times decodes at -0.14 to -0.16 with tiny.en (faster-whisper's own compression check fires on it,
3.55-3.74 > 2.4, so compression ratio cannot tell it from a loop). All 34 repetitive transcripts that were wrong
(tiny.en, whisper-base, translate, rechecks; two full runs) decode at -0.77 or lower. A confident loop (Whisper's
"Thank you." x20 over silence) would be missed by this rule; VAD's no_speech_text is the net for that case."""

LOOP_SPEECH_MAX_WORDS_PER_S = 8.0
"""Confident repetition is excused as repeated audio only at a rate speech can have: good English here peaks at
4.7 words per second of speech and the 400 wpm clip is 6.7. A tiny.en recheck sampled at temperature 1.0 wrote
"Boy, boy, ..." 112 times at mean log-probability -0.11: 21 words per second of VAD speech."""

LOOP_SPEECH_MAX_COMPRESSION = 10.0
"""Nor above this window compression ratio: the clip whose audio says its sentence four times reaches 3.74, the
"Boy, boy, ..." loop 29.4."""

LOOP_NGRAM = 4
"""Words per n-gram when counting repeated phrases inside and across lines."""

NO_SPEECH_MAX_VAD_S = 1.0
"""Flag `no_speech_text` when text was written (even ".") but Silero VAD (VAD_OPTIONS) finds less than this many
seconds of speech in the whole audio. Measured: every speech clip (4.5-28 s long) has 2.9 s or more; silence,
noise, music, hum and sweeps 0 s; the vowel drone tiny.en writes "." on 0.18 s; 15 s of digital silence, on which
tiny.en writes " you", 0 s. An absolute amount rather than a share, so a long video that is mostly music still
counts its speech."""

NO_SPEECH_PROB = 0.6
"""Without a VAD measurement, flag `no_speech_text` when text was written although the mean no_speech_prob is
above this (faster-whisper's own no_speech_threshold). Measured with tiny.en: good English clips 0.03-0.42;
the vowel drone 0.92, the silence 0.95; but Italian speech also reads 0.70, which is why VAD, when measured,
decides instead."""

SPEECH_MISSING_MIN_S = 1.0
"""Seconds of VAD speech below which a short or empty transcript is never flagged `speech_missing`: a cough or a
click is not speech."""

SPEECH_MISSING_VAD_SHARE = 0.05
"""...nor when VAD speech is less than this share of the audio (a long video with a few seconds of voices)."""

SPEECH_MISSING_WORDS_PER_S = 1.0
"""Flag `speech_missing` when the transcript has fewer words than this per second of VAD speech. Measured: good
English clips give 2.32-4.67 words per speech second (espeak at 130-200 wpm, jfk 2.56); tiny.en writes nothing
for Spanish, fast French and 300 wpm English (0.0), whisper-base 0.33-0.62 for espeak French and syllables it
turns into Japanese."""

EN_PROBABILITY_MIN = 0.5
"""With an English-only model and a multilingual detector (whisper-base's detect_language on the first 30 s),
flag `wrong_language` when the detector gives English less than this probability. Measured: good English clips
get P(en) 0.60-0.97 (0.60: 8 s of speech then 20 s of music; 0.61: white noise at 20 dB SNR), hard English
0.53-0.75; German, French, Spanish, Italian and Dutch espeak-ng speech 0.01-0.46 (Dutch the highest). The top
language is sometimes wrong (espeak French reads as Thai) but English is never likely. A narrow margin: see
benchmarks/README.md, Quality."""

LANGUAGE_PROBABILITY_MIN = 0.5
"""With a multilingual model that detected the language itself, flag `wrong_language` when the detected
language's probability is below this: the model was unsure which language it transcribed. Measured with
whisper-base: good English 0.60-0.97, Spanish and German it transcribed right 0.72-0.98; the clips it put in the
wrong language (German as English, Italian as Spanish, French as Japanese, Dutch as English) 0.18-0.46, except
espeak French read as Thai at 0.71."""

BETTER_LOGPROB_MARGIN = 0.1
"""When a transcript and its recheck carry equally serious flags, the recheck is kept only if its mean avg_logprob
is higher by at least this much. Measured: rechecking the 22 unflagged good English clips with whisper-base, this
rule keeps 10 rechecks and each has an equal or lower WER (largest change 0.41 -> 0.23); with tiny.en it keeps 1
(0.10 -> 0.05). Greedy decodes repeat exactly; a decode under temperature fallback samples and moved by up to 0.19
between runs (German through tiny.en), which is why a tie is not decided on a smaller difference."""

SEVERITY = {
    "wrong_language": 3,
    "speech_missing": 3,
    "loop": 3,
    "no_speech_text": 2,
    "low_confidence": 1,
}
"""How much each flag counts against a transcript when `better` compares a transcript with its recheck: 3 when the
text is not the speech (another language, speech dropped, a loop), 2 for text on silence (a stray line, easy to
ignore), 1 for low confidence alone (the text may still be half right: English at 0 dB SNR, WER 0.5-0.6)."""

VAD_OPTIONS = {"threshold": 0.5, "min_silence_duration_ms": 500, "speech_pad_ms": 100}
"""Silero VAD settings for measuring the share of speech (tighter than faster-whisper's vad_filter defaults,
whose 2 s silence merge and 400 ms padding count pauses as speech)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")

LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch",
    "pt": "Portuguese", "ru": "Russian", "pl": "Polish", "tr": "Turkish", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "nn": "Nynorsk", "fi": "Finnish", "cs": "Czech", "ro": "Romanian", "hu": "Hungarian",
    "el": "Greek", "uk": "Ukrainian", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "ja": "Japanese",
    "ko": "Korean", "zh": "Chinese", "th": "Thai", "vi": "Vietnamese", "id": "Indonesian", "ms": "Malay",
    "la": "Latin", "cy": "Welsh", "ca": "Catalan", "gl": "Galician", "af": "Afrikaans",
}
"""Names for the reasons; a code not listed is shown as the code."""


class SegmentLike(Protocol):
    start: float
    end: float
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


# ---- signals ----------------------------------------------------------------------------------------------------


@dataclass
class QualitySignals:
    """What the model itself says about one transcript. JSON-friendly (numbers, strings, None).

    Log-probabilities, compression ratios, no-speech probabilities and temperatures are faster-whisper's per-window
    values, weighted by the seconds their segments cover. None means "not measured" (no segments, no VAD run, no
    language detector), never zero.
    """

    duration_s: float
    """Seconds of audio."""
    n_segments: int = 0
    n_words: int = 0
    """Words in the transcript (runs of letters or digits)."""
    text_chars: int = 0
    """Non-space characters in the transcript: "." alone is text."""
    mean_logprob: float | None = None
    """avg_logprob weighted by segment duration."""
    min_logprob: float | None = None
    """The worst segment's (window's) avg_logprob."""
    max_compression_ratio: float | None = None
    mean_no_speech_prob: float | None = None
    max_no_speech_prob: float | None = None
    fallback_share: float | None = None
    """Share of the transcribed time decoded at temperature > 0 (None when segments carry no temperature)."""
    max_temperature: float | None = None
    max_line_repeats: int = 0
    """How often the most frequent normalised line occurs."""
    max_line_run: int = 0
    """The longest run of consecutive identical normalised lines."""
    max_ngram_repeats: int = 0
    """How often the most frequent word LOOP_NGRAM-gram occurs, across line breaks."""
    words_per_s: float = 0.0
    """Words per second of audio."""
    vad_speech_s: float | None = None
    """Seconds Silero VAD calls speech (VAD_OPTIONS)."""
    speech_share: float | None = None
    """vad_speech_s / duration_s."""
    words_per_speech_s: float | None = None
    """Words per second of VAD speech."""
    language: str | None = None
    language_probability: float | None = None
    english_probability: float | None = None
    """P(en) from a multilingual detector's full distribution, when one ran."""
    detector_language: str | None = None
    """The most likely language other than English by that detector (for the reason text)."""
    mean_word_probability: float | None = None
    """Mean word probability (only with word_timestamps=True)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "QualitySignals":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def signals_from_segments(
    segments: Sequence[SegmentLike],
    *,
    duration_s: float,
    language: str | None = None,
    language_probability: float | None = None,
    all_language_probs: Iterable[tuple[str, float]] | None = None,
    vad_speech_s: float | None = None,
) -> QualitySignals:
    """Signals of one transcript: faster-whisper segments (anything with .start .end .text .avg_logprob
    .compression_ratio .no_speech_prob; .temperature and .words are used when present), the audio's length, the
    language the model reported (pass None for an English-only model: its "en" is not a detection), and optionally
    a multilingual detector's full distribution and the seconds of VAD speech (`vad_speech_seconds`)."""
    kept = [s for s in segments if s.text.strip()]
    text = " ".join(s.text.strip() for s in kept)
    words = _words(text)
    signals = QualitySignals(
        duration_s=float(duration_s),
        n_segments=len(kept),
        n_words=len(words),
        text_chars=sum(1 for c in text if not c.isspace()),
        words_per_s=_ratio(len(words), duration_s) or 0.0,
        language=language,
        language_probability=_float(language_probability),
    )
    # Segments without the model's scores (a transcript stored before they were kept) count for text only.
    scored = [s for s in kept if getattr(s, "avg_logprob", None) is not None]
    if scored:
        weights = [_seconds(s) for s in scored]
        signals.mean_logprob = _weighted([s.avg_logprob for s in scored], weights)
        signals.min_logprob = min(float(s.avg_logprob) for s in scored)
        signals.max_compression_ratio = max(float(s.compression_ratio) for s in scored)
        signals.mean_no_speech_prob = _weighted([s.no_speech_prob for s in scored], weights)
        signals.max_no_speech_prob = max(float(s.no_speech_prob) for s in scored)
        temperatures = [getattr(s, "temperature", None) for s in scored]
        if all(t is not None for t in temperatures):
            signals.fallback_share = _weighted([1.0 if t > 0 else 0.0 for t in temperatures], weights)
            signals.max_temperature = max(float(t) for t in temperatures)
    if kept:
        signals.mean_word_probability = _mean_word_probability(kept)
    lines = [_normalised(s.text) for s in kept]
    lines = [line for line in lines if line]
    signals.max_line_repeats = max(Counter(lines).values(), default=0)
    signals.max_line_run = _longest_run(lines)
    signals.max_ngram_repeats = _max_ngram_repeats([w.lower() for w in words], LOOP_NGRAM)
    if vad_speech_s is not None:
        signals.vad_speech_s = float(vad_speech_s)
        signals.speech_share = _ratio(vad_speech_s, duration_s)
        signals.words_per_speech_s = _ratio(len(words), vad_speech_s)
    if all_language_probs is not None:
        signals.english_probability, signals.detector_language = _english_and_other(all_language_probs)
    return signals


def with_detector(signals: QualitySignals, all_language_probs: Iterable[tuple[str, float]]) -> QualitySignals:
    """The same signals plus a separate multilingual detector's verdict (e.g. whisper-base's
    `detect_language(audio)` for a tiny.en transcript)."""
    data = signals.to_dict()
    data["english_probability"], data["detector_language"] = _english_and_other(all_language_probs)
    return QualitySignals.from_dict(data)


def vad_speech_seconds(audio, sampling_rate: int = 16000) -> float:
    """Seconds of speech Silero VAD finds in mono float32 `audio` (VAD_OPTIONS). Imports faster-whisper when
    called; 3-8 ms per second of decoded audio on 2 CPU cores, 10-12 ms with the file's second decode that the
    transcriber does for it (benchmarks/README.md, Quality)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    chunks = get_speech_timestamps(audio, VadOptions(**VAD_OPTIONS), sampling_rate=sampling_rate)
    return sum(c["end"] - c["start"] for c in chunks) / sampling_rate


VAD_ALWAYS_BELOW_S = 30.0
"""Audio shorter than this is always measured with VAD (a few hundredths of a second)."""


def needs_vad(signals: QualitySignals) -> bool:
    """Whether a VAD measurement can change this transcript's flags. VAD costs 10-12 ms per second of audio on 2 CPU
    cores with its decode (8% of tiny.en's own time on fluent English, 12% on one long clip; most of a GPU's), so it runs only where it decides something: short
    audio, few words for the audio (speech dropped, or text on silence), or the model itself doubting there was
    speech. Otherwise there are at least SPEECH_MISSING_WORDS_PER_S words per second of audio, so as many per
    second of speech (speech_missing cannot fire), and fluent text the model is sure stands on speech is taken as
    such (no_speech_text then reads the model's no-speech probability, as without VAD)."""
    return (signals.duration_s < VAD_ALWAYS_BELOW_S or signals.words_per_s < SPEECH_MISSING_WORDS_PER_S
            or (signals.mean_no_speech_prob or 0.0) > NO_SPEECH_PROB)


def with_vad(signals: QualitySignals, vad_speech_s: float) -> QualitySignals:
    """The same signals with the seconds of speech VAD found."""
    data = signals.to_dict()
    data["vad_speech_s"] = float(vad_speech_s)
    data["speech_share"] = _ratio(vad_speech_s, signals.duration_s)
    data["words_per_speech_s"] = _ratio(signals.n_words, vad_speech_s)
    return QualitySignals.from_dict(data)


# ---- flags ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """Why a transcript is doubtful: `code` is a short stable id (wrong_language, loop, low_confidence,
    no_speech_text, speech_missing), `reason` one line for a person."""

    code: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Flag":
        return cls(data["code"], data["reason"])


def assess(
    signals: QualitySignals,
    *,
    english_only_model: bool,
    model_name: str,
    detected_language: str | None = None,
) -> list[Flag]:
    """The flags one transcript earns, most serious first; an empty list means nothing looks wrong.

    `english_only_model`: the model that wrote the transcript knows only English (tiny.en). `detected_language`:
    what a separate multilingual detector found, when one ran (its English probability, if known, is read from
    `signals.english_probability`)."""
    checks = (
        _wrong_language(signals, english_only_model, model_name, detected_language),
        _speech_missing(signals),
        _loop(signals),
        _no_speech_text(signals),
        _low_confidence(signals, english_only_model, model_name),
    )
    return [flag for flag in checks if flag is not None]


def _wrong_language(signals: QualitySignals, english_only: bool, model_name: str,
                    detected: str | None) -> Flag | None:
    if not _has_speech(signals):
        return None  # a detector run on silence or music names some language; nothing was said in it
    if english_only:
        p_en = signals.english_probability
        if p_en is not None:
            if p_en >= EN_PROBABILITY_MIN:
                return None
        elif detected is None or detected == "en":
            return None
        other = signals.detector_language or detected
        looks = f"speech looks like {language_name(other)}" if other and other != "en" else "speech looks not English"
        odds = f", English {p_en:.0%}" if p_en is not None else ""
        return Flag("wrong_language", f"wrong language for this model ({looks}{odds}; {model_name} is English-only)")
    p = signals.language_probability
    if signals.language and p is not None and p < LANGUAGE_PROBABILITY_MIN and signals.n_words:
        return Flag("wrong_language", f"language unsure (transcribed as {language_name(signals.language)}, "
                                      f"probability {p:.2f})")
    return None


def _has_speech(signals: QualitySignals) -> bool:
    """Words were written, or VAD found speech (SPEECH_MISSING_MIN_S seconds, SPEECH_MISSING_VAD_SHARE of the
    audio); without a VAD measurement, only words count."""
    if signals.n_words:
        return True
    speech_s, share = signals.vad_speech_s, signals.speech_share
    return (speech_s is not None and share is not None and speech_s >= SPEECH_MISSING_MIN_S
            and share >= SPEECH_MISSING_VAD_SHARE)


def _speech_missing(signals: QualitySignals) -> Flag | None:
    if signals.n_words and not signals.vad_speech_s:
        return None
    if not _has_speech(signals) or (signals.words_per_speech_s or 0.0) >= SPEECH_MISSING_WORDS_PER_S:
        return None
    share = signals.speech_share or 0.0
    got = "none transcribed" if signals.n_words == 0 else f"only {signals.n_words} word(s) transcribed"
    return Flag("speech_missing", f"speech expected, {got} (VAD: {share:.0%} speech)")


def _loop(signals: QualitySignals) -> Flag | None:
    lines, ngrams = signals.max_line_repeats, signals.max_ngram_repeats
    if max(lines, ngrams) < LOOP_MIN_REPEATS:
        return None
    if (signals.mean_logprob is not None and signals.mean_logprob > LOOP_CONFIDENT_LOGPROB
            and _speech_like_rate(signals)):
        return None
    if lines >= LOOP_MIN_REPEATS:
        return Flag("loop", f"repetition loop (one line {lines} times)")
    return Flag("loop", f"repetition loop (one phrase {ngrams} times)")


def _speech_like_rate(signals: QualitySignals) -> bool:
    """Whether the text's density is one speech can have (see LOOP_SPEECH_MAX_WORDS_PER_S, ..._COMPRESSION)."""
    rate = signals.words_per_speech_s if signals.words_per_speech_s is not None else signals.words_per_s
    return (rate <= LOOP_SPEECH_MAX_WORDS_PER_S
            and (signals.max_compression_ratio or 0.0) <= LOOP_SPEECH_MAX_COMPRESSION)


def _no_speech_text(signals: QualitySignals) -> Flag | None:
    if signals.text_chars == 0:
        return None
    if signals.vad_speech_s is not None:
        if signals.vad_speech_s >= NO_SPEECH_MAX_VAD_S:
            return None
        return Flag("no_speech_text", f"text on audio with no speech (VAD: {signals.vad_speech_s:.1f} s of speech)")
    p = signals.mean_no_speech_prob
    if p is not None and p > NO_SPEECH_PROB:
        return Flag("no_speech_text", f"text on audio with no speech (no-speech probability {p:.2f})")
    return None


def _low_confidence(signals: QualitySignals, english_only: bool, model_name: str) -> Flag | None:
    lp = signals.mean_logprob
    if lp is None or lp >= LOW_CONFIDENCE_LOGPROB:
        return None
    if english_only:
        return Flag("low_confidence", f"low confidence (mean log-probability {lp:.2f}); speech may be noisy or "
                                      f"not English ({model_name} is English-only)")
    return Flag("low_confidence", f"low confidence (mean log-probability {lp:.2f})")


# ---- recheck ----------------------------------------------------------------------------------------------------


@dataclass
class Judged:
    """One transcript's signals and the flags `assess` gave it."""

    signals: QualitySignals
    flags: list[Flag]

    @property
    def severity(self) -> int:
        return sum(SEVERITY.get(f.code, 1) for f in self.flags)


def better(a: Judged, b: Judged) -> Judged:
    """Which transcript to keep: `a` the original, `b` its recheck. The one with less serious flags wins; on a tie
    `b` wins only if its mean avg_logprob is higher by BETTER_LOGPROB_MARGIN, so the original stays unless the
    recheck is clearly better."""
    if a.severity != b.severity:
        return a if a.severity < b.severity else b
    la, lb = a.signals.mean_logprob, b.signals.mean_logprob
    if la is not None and lb is not None and lb >= la + BETTER_LOGPROB_MARGIN:
        return b
    return a


# ---- what a transcript carries -------------------------------------------------------------------------------------


OTHER_TEXT_MAX_CHARS = 4000
"""How much of the transcript a recheck did not keep is kept beside the one it did (the manifest holds it for
every rechecked video, so it stays small)."""


@dataclass
class Recheck:
    """A flagged transcript done again with safer options (and the recheck model, when given): both results'
    flags, and which one was kept (`better`)."""

    model: str
    """The model the recheck ran with."""
    kept: str
    """"recheck" or "original"."""
    original_flags: list[Flag] = field(default_factory=list)
    recheck_flags: list[Flag] = field(default_factory=list)
    original_logprob: float | None = None
    recheck_logprob: float | None = None
    other_text: str = ""
    """The text of the one not kept, so a reader can still compare the two (cut at OTHER_TEXT_MAX_CHARS)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recheck":
        return cls(
            model=str(data.get("model") or ""), kept=str(data.get("kept") or "original"),
            original_flags=[Flag.from_dict(f) for f in data.get("original_flags") or []],
            recheck_flags=[Flag.from_dict(f) for f in data.get("recheck_flags") or []],
            original_logprob=_float(data.get("original_logprob")), recheck_logprob=_float(data.get("recheck_logprob")),
            other_text=str(data.get("other_text") or ""),
        )


@dataclass
class Quality:
    """How far to trust one transcript: the signals measured, the flags they earned (empty: nothing looks wrong),
    and the recheck when one ran (the flags are then the kept transcript's)."""

    signals: QualitySignals | None = None
    flags: list[Flag] = field(default_factory=list)
    recheck: Recheck | None = None

    @property
    def needs_review(self) -> bool:
        return bool(self.flags)

    def judged(self) -> Judged:
        return Judged(self.signals or QualitySignals(duration_s=0.0), list(self.flags))

    def to_dict(self) -> dict:
        data: dict = {"flags": [f.to_dict() for f in self.flags],
                      "signals": self.signals.to_dict() if self.signals else None}
        if self.recheck is not None:
            data["recheck"] = self.recheck.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict | None) -> "Quality | None":
        if not data:
            return None
        signals = data.get("signals")
        recheck = data.get("recheck")
        return cls(QualitySignals.from_dict(signals) if signals else None,
                   [Flag.from_dict(f) for f in data.get("flags") or []],
                   Recheck.from_dict(recheck) if recheck else None)


def review_line(flags: Sequence[Flag]) -> str:
    """The flags as one line for a table cell ("" when there are none)."""
    return "; ".join(f.reason for f in flags)


# ---- helpers ----------------------------------------------------------------------------------------------------


def language_name(code: str | None) -> str:
    return LANGUAGE_NAMES.get(code or "", code or "unknown")


def _english_and_other(all_language_probs: Iterable[tuple[str, float]]) -> tuple[float, str | None]:
    probs = sorted(((str(c), float(p)) for c, p in all_language_probs), key=lambda cp: -cp[1])
    english = next((p for c, p in probs if c == "en"), 0.0)
    other = next((c for c, _ in probs if c != "en"), None)
    return english, other


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _normalised(text: str) -> str:
    return " ".join(w.lower() for w in _words(text))


def _longest_run(items: list[str]) -> int:
    best = run = 0
    previous = None
    for item in items:
        run = run + 1 if item == previous else 1
        best, previous = max(best, run), item
    return best


def _max_ngram_repeats(words: list[str], n: int) -> int:
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return max(grams.values(), default=0)


def _mean_word_probability(segments) -> float | None:
    probs = [float(w.probability) for s in segments for w in (getattr(s, "words", None) or [])]
    return sum(probs) / len(probs) if probs else None


def _seconds(segment) -> float:
    """A segment's weight: its length, at least 10 ms (faster-whisper can return zero-length segments)."""
    return max(float(segment.end) - float(segment.start), 0.01)


def _weighted(values, weights) -> float:
    return sum(float(v) * w for v, w in zip(values, weights)) / sum(weights)


def _ratio(a: float, b: float | None) -> float | None:
    return float(a) / float(b) if b and b > 0 else None


def _float(x) -> float | None:
    return None if x is None else float(x)


__all__ = [
    "QualitySignals", "Flag", "Judged", "Quality", "Recheck", "signals_from_segments", "with_detector", "with_vad",
    "vad_speech_seconds", "needs_vad", "assess", "better", "language_name", "review_line",
]
