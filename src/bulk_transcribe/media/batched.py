"""Batched inference: 30-second chunks of one file, or of several short files, decoded together in one model call.

faster-whisper's `BatchedInferencePipeline` batches the VAD chunks of ONE file, so a 40-second video fills two
slots of a batch of 16 and leaves a GPU mostly idle. This module reuses the pipeline's own pieces (its feature
extraction, `forward` and segment splitting, reached through `transcribe(clip_timestamps=...)`) and adds what it
lacks: chunks of several files pooled into one batch, and the results split back per file with file-relative
timestamps.

How a batch is built: each file's speech, as Silero VAD finds it, is cut into chunks of at most 30 s the way the
pipeline cuts one file (speech pieces joined back to back, silence left out: a chunk that kept a long pause inside
lost the sentences after it in a test). A batch of up to `batch_size` chunks, from one file or several, is laid
into one array with chunk k at k x 30 s, and handed to the pipeline with one clip per chunk: the pipeline extracts
features for the clips only, runs the encoder and `generate` once for the whole batch, and returns segments whose
`seek` names the clip they came from (k x 3000 frames, exact because the slots start on whole seconds). Each
segment's times are then taken back from its slot to its file with faster-whisper's `SpeechTimestampsMap` (the
left-out silence put back).

Trade-offs (faster-whisper's own, documented in the README): chunking by VAD, so audio VAD calls silence is not
transcribed; one segment per chunk (its timestamps are the chunk's) unless word timestamps are on; no temperature
fallback and no conditioning on the previous chunk's text (the chunks of a batch are decoded at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.vad import SpeechTimestampsMap, VadOptions, get_speech_timestamps

from .. import models
from ..config import TranscribeOptions

SAMPLE_RATE = 16000
CHUNK_S = 30
"""Whisper's window: no chunk is longer, and batch slots are this far apart."""

CPU_BATCH_SIZE = 1
"""Default batch size on CPU: batching is a GPU lever. Measured here (benchmarks/bench_batching.py, 2 threads,
tiny.en int8) it does not beat unbatched decoding by enough to pay for its trade-offs."""

CUDA_BATCH_SIZE = 8
"""Default batch size on CUDA: faster-whisper documents 8-16; 8 leaves room for two actors on one GPU."""

_VAD = VadOptions(max_speech_duration_s=CHUNK_S, min_silence_duration_ms=160)
"""What BatchedInferencePipeline itself uses to cut a file (pauses of 160 ms, pieces of at most 30 s)."""


def default_batch_size(device: str) -> int:
    return CUDA_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE


@dataclass(frozen=True)
class Chunk:
    """At most 30 s of one file's speech: `file` indexes the bundle; `pieces` are (start, end) samples in that
    file, the speech VAD found, decoded back to back with the silence between them left out."""

    file: int
    pieces: tuple[tuple[int, int], ...]

    @property
    def start(self) -> int:
        return self.pieces[0][0]

    @property
    def end(self) -> int:
        return self.pieces[-1][1]

    @property
    def samples(self) -> int:
        return sum(e - s for s, e in self.pieces)

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


def plan_chunks(audio: np.ndarray, file: int = 0) -> list[Chunk]:
    """The speech of `audio` in chunks of at most 30 s, as BatchedInferencePipeline cuts it (`collect_chunks`):
    speech pieces joined in order while their total fits in 30 s. Silence alone gives none."""
    limit = CHUNK_S * SAMPLE_RATE
    pieces: list[tuple[int, int]] = []
    for piece in get_speech_timestamps(audio, _VAD):
        s, e = int(piece["start"]), int(piece["end"])
        # VAD caps its pieces just under 30 s; should one still be longer, cut it rather than lose its tail.
        pieces += [(x, min(x + limit, e)) for x in range(s, e, limit)]
    chunks: list[Chunk] = []
    current: list[tuple[int, int]] = []
    for s, e in pieces:
        if current and sum(b - a for a, b in current) + (e - s) > limit:
            chunks.append(Chunk(file, tuple(current)))
            current = []
        current.append((s, e))
    if current:
        chunks.append(Chunk(file, tuple(current)))
    return chunks


def batches(chunks: Sequence[Chunk], languages: Sequence[str], batch_size: int) -> list[list[Chunk]]:
    """Chunks grouped into batches of `batch_size`, in file order; one language per batch (the prompt is shared)."""
    out: list[list[Chunk]] = []
    for language in dict.fromkeys(languages):
        same = [c for c in chunks if languages[c.file] == language]
        out += [same[i:i + batch_size] for i in range(0, len(same), batch_size)]
    return out


class BatchedDecoder:
    """The batched pipeline over one already-loaded WhisperModel (which it shares with sequential decoding)."""

    def __init__(self, model: WhisperModel) -> None:
        self.model = model
        self.pipeline = BatchedInferencePipeline(model)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        language, probability, _ = self.model.detect_language(audio)
        return language, float(probability)

    def decode(
        self, audios: Sequence[np.ndarray], batch: Sequence[Chunk], language: str, opts: TranscribeOptions
    ) -> list[tuple[Chunk, list[models.Segment]]]:
        """One model call for the whole batch: each chunk with its segments, in file time."""
        slots = np.zeros(len(batch) * CHUNK_S * SAMPLE_RATE, dtype=np.float32)
        clips = []
        for k, chunk in enumerate(batch):
            at = k * CHUNK_S * SAMPLE_RATE
            slots[at:at + chunk.samples] = np.concatenate([audios[chunk.file][s:e] for s, e in chunk.pieces])
            clips.append({"start": float(k * CHUNK_S), "end": k * CHUNK_S + chunk.samples / SAMPLE_RATE})
        segments, _ = self.pipeline.transcribe(
            slots,
            language=language,
            task=opts.task,
            beam_size=opts.beam_size,
            word_timestamps=opts.word_timestamps,
            clip_timestamps=clips,
            batch_size=len(batch),
            vad_filter=False,
        )
        by_slot: list[list[models.Segment]] = [[] for _ in batch]
        frames_per_slot = CHUNK_S * self.model.frames_per_second
        maps = [SpeechTimestampsMap([{"start": s, "end": e} for s, e in c.pieces], SAMPLE_RATE, 3) for c in batch]
        for seg in segments:
            k = int(seg.seek) // frames_per_slot
            by_slot[k].append(_to_file_time(seg, batch[k], maps[k], k * CHUNK_S, opts.word_timestamps))
        return list(zip(batch, by_slot))


def _to_file_time(seg, chunk: Chunk, speech: SpeechTimestampsMap, slot_s: float, with_words: bool) -> models.Segment:
    """A segment moved from its batch slot to its file (the silence VAD left out put back, as faster-whisper's
    restore_speech_timestamps does), kept inside its chunk so timestamps never leave the file's audio."""

    def place(t: float, is_end: bool = False) -> float:
        rel = max(0.0, float(t) - slot_s)
        return min(max(speech.get_original_time(rel, is_end=is_end), chunk.start_s), chunk.end_s)

    start = place(seg.start)
    end = max(place(seg.end, is_end=True), start)
    words = None
    if with_words:
        words = []
        for w in seg.words or []:
            ws = min(max(place(w.start), start), end)
            words.append(models.Word(ws, min(max(place(w.end, is_end=True), ws), end), w.word, float(w.probability)))
        if words:  # like restore_speech_timestamps: with words, the segment spans its words
            start, end = words[0].start, max(words[-1].end, words[0].start)
    return models.Segment(start, end, seg.text, words, **model_view(seg))


def model_view(seg) -> dict[str, float | None]:
    """A faster-whisper segment's own scores, as models.Segment keeps them."""
    def number(name: str) -> float | None:
        value = getattr(seg, name, None)
        return None if value is None else float(value)

    return {name: number(name) for name in ("avg_logprob", "no_speech_prob", "compression_ratio", "temperature")}


def decode_in_batches(
    decoder: BatchedDecoder,
    audios: Sequence[np.ndarray],
    chunks: Sequence[Chunk],
    languages: Sequence[str],
    opts: TranscribeOptions,
    batch_size: int,
) -> Iterator[list[tuple[Chunk, list[models.Segment]]]]:
    """Each batch's results as soon as the model returns them (`chunks` from plan_chunks, for every file).

    Lazy like faster-whisper's own segment generator: the caller checks cancel and its time limit between batches
    (one batch's decoding cannot be interrupted).
    """
    for batch in batches(chunks, languages, batch_size):
        yield decoder.decode(audios, batch, languages[batch[0].file], opts)


__all__ = ["BatchedDecoder", "Chunk", "plan_chunks", "batches", "decode_in_batches", "default_batch_size"]
