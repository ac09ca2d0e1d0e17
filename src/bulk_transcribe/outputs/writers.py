"""Transcript outputs (txt, srt, vtt, json) and the run manifest, each written atomically.

Every file is written to a temporary sibling, flushed to disk and renamed over the target, so a crash, a full
disk or a bad value never leaves a half-written transcript: readers see the old file or the new one.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import config, layout
from ..models import Segment, SourceKind, Transcript, VideoItem, Word
from ..quality import Quality
from ..config import DEFAULT_TEMPLATE, LineShape
from .subtitles import shape_cues
from .templates import render as render_template

MANIFEST_VERSION = 1


# --- atomic writes ---------------------------------------------------------------------------------------------


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` so that it is either fully replaced or left as it was.

    The temporary file lives in the same folder (os.replace is only atomic within one file system); it is removed
    again if anything fails (disk full, a value UTF-8 cannot encode, the target being a folder).
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """As atomic_write_text, for bytes."""
    path = Path(path)
    # The temporary name is cut so that even a 255-byte target name leaves room for the prefix and suffix.
    from ..naming import cut_bytes

    tmp = path.with_name(f".{cut_bytes(path.name, 200)}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the final mode, as a plain open() would (mkstemp forces 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every platform lets a folder be opened, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- rendering --------------------------------------------------------------------------------------------------


def _cues(t: Transcript) -> list[tuple[float, float, str]]:
    """Segments as subtitle cues: text on one line, empty segments dropped (a blank line ends an SRT cue), times
    never negative and never running backwards within a cue."""
    cues = []
    for seg in t.segments:
        text = " ".join(seg.text.split())
        if not text:
            continue
        start = max(0.0, seg.start)
        cues.append((start, max(start, seg.end), text))
    return cues


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def render_txt(t: Transcript) -> str:
    """Plain text, one line per segment."""
    return "".join(f"{text}\n" for _, _, text in _cues(t))


def _subtitle_cues(t: Transcript, shape: LineShape | None) -> list[tuple[float, float, str]]:
    return shape_cues(t, shape) if shape is not None and shape.active else _cues(t)


def render_srt(t: Transcript, shape: LineShape | None = None) -> str:
    """SubRip: numbered cues from 1, HH:MM:SS,mmm timestamps, a blank line after each cue; lines shaped by
    `shape` (width and count) when given."""
    return "".join(
        f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n\n"
        for i, (start, end, text) in enumerate(_subtitle_cues(t, shape), 1)
    )


def render_vtt(t: Transcript, shape: LineShape | None = None) -> str:
    """WebVTT: the WEBVTT header, numbered cues, HH:MM:SS.mmm timestamps; &, < and > escaped as the spec asks."""
    cues = "".join(
        f"{i}\n{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{html.escape(text, quote=False)}\n\n"
        for i, (start, end, text) in enumerate(_subtitle_cues(t, shape), 1)
    )
    return "WEBVTT\n\n" + cues


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def transcript_dict(t: Transcript, item: VideoItem, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the JSON output holds, as plain data. `extra` adds top-level keys; its "timings" merge in."""
    extra = dict(extra or {})
    timings = {"download_s": _r(t.download_s), "transcribe_s": _r(t.transcribe_s), "speed_x": _r(t.speed_x)}
    timings.update(extra.pop("timings", None) or {})
    segments = []
    for i, seg in enumerate(t.segments):
        entry: dict[str, Any] = {"id": i, "start": _r(seg.start), "end": _r(seg.end), "text": seg.text.strip()}
        for score in SEGMENT_SCORES:  # the model's own view of the segment, where it gave one
            if getattr(seg, score) is not None:
                entry[score] = _r(getattr(seg, score))
        if seg.words is not None:
            entry["words"] = [
                {"start": _r(w.start), "end": _r(w.end), "word": w.word, "probability": _r(w.probability)}
                for w in seg.words
            ]
        segments.append(entry)
    data: dict[str, Any] = {
        "video_id": t.video_id,
        "source": item.source,
        "input": item.input,
        "title": item.title,
        "language": t.language,
        "language_probability": _r(t.language_probability),
        "duration": _r(t.duration_s),
        "model": t.model,
        "batch_size": t.batch_size,
        "worker": t.worker,
        "timings": timings,
        "text": t.text,
        "segments": segments,
    }
    if t.notes:  # only when there is something to say, so ordinary transcripts keep their exact shape
        data["notes"] = list(t.notes)
    if t.quality is not None:  # how far to trust it: flags with reasons, the signals, a recheck
        data["quality"] = t.quality.to_dict()
    data.update(extra)
    return data


SEGMENT_SCORES = ("avg_logprob", "no_speech_prob", "compression_ratio", "temperature")
"""models.Segment's scores from the model, written per segment in the JSON output and read back from it."""


def render_json(t: Transcript, item: VideoItem, extra: dict[str, Any] | None = None) -> str:
    return json.dumps(transcript_dict(t, item, extra), ensure_ascii=False, indent=2, default=str) + "\n"


# --- files ------------------------------------------------------------------------------------------------------


def output_folder(out_dir: Path, folder: str) -> Path:
    """OUT/<folder> (or a relative path inside OUT), refusing any name that would land outside OUT (or on OUT
    itself, or on one of the tool's own files), symlinks included."""
    root = Path(out_dir).resolve()
    if not folder or not folder.strip() or Path(folder).is_absolute():
        raise ValueError(f"output folder name {folder!r} must be a non-empty relative name")
    from ..naming import is_reserved  # naming imports config only; kept local so writers stays a leaf module

    if is_reserved((Path(folder).parts or ("",))[0]):
        raise ValueError(f"output folder {folder!r} is one of the tool's own files or folders")
    target = (root / folder).resolve()
    if target == root or root not in target.parents:
        raise ValueError(f"output folder {folder!r} would be written outside {out_dir}")
    return target


def render(fmt: str, transcript: Transcript, item: VideoItem, *, extra: dict[str, Any] | None = None,
           shape: LineShape | None = None) -> str:
    if fmt == "json":
        return render_json(transcript, item, extra)
    if fmt == "txt":
        return render_txt(transcript)
    return {"srt": render_srt, "vtt": render_vtt}[fmt](transcript, shape)


def write_transcript(
    out_dir: Path,
    folder: str,
    item: VideoItem,
    transcript: Transcript,
    formats: Sequence[str],
    *,
    extra: dict[str, Any] | None = None,
    template: str = DEFAULT_TEMPLATE,
    shape: LineShape | None = None,
    claim: Claim | None = None,
) -> dict[str, str]:
    """Write each format where `template` says (default OUT/<folder>/transcript.<fmt>), each atomically; return
    {fmt: path relative to OUT}.

    `folder` should come from naming.safe_name; it is checked again here because a wrong name would write
    outside the output folder. `claim` (the store's claim_outputs) keeps a path one video's: a template that
    gives two videos the same file (`%(id)s.%(ext)s` for a.mp3 and dir2/a.mp3) makes the later one's ` (2)`.
    """
    formats = config.check_formats(formats)
    output_folder(out_dir, folder)  # the folder name itself must be safe, whatever the template does with it
    root = Path(out_dir).resolve()
    wanted = {fmt: render_template(template, item, folder, fmt) for fmt in formats}
    if len({p.lower() for p in wanted.values()}) < len(wanted):
        raise ValueError(f"the output template writes several formats to one file: {sorted(set(wanted.values()))}")
    paths = claim(item.video_id, wanted) if claim is not None else wanted
    written: dict[str, str] = {}
    for fmt in formats:
        path = output_folder(out_dir, paths[fmt])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, render(fmt, transcript, item, extra=extra, shape=shape))
        written[fmt] = path.relative_to(root).as_posix()
    return written


Claim = Callable[[str, dict[str, str]], dict[str, str]]
"""(video_id, {fmt: wanted path}) -> {fmt: the path this video may write}: SessionStore.claim_outputs."""



SUBTITLE_FORMATS = ("srt", "vtt")
BESIDE_SUFFIX = "@source"
"""Outputs key suffix for subtitles written beside a local source file (`srt@source`: an absolute path)."""


def write_beside_source(item: VideoItem, transcript: Transcript, formats: Sequence[str],
                        shape: LineShape | None = None) -> dict[str, str]:
    """`<name>.srt` / `<name>.vtt` next to a local `<name>.mp4`, so players load them; URLs have no such place.
    Returns {"srt@source": absolute path, ...}. An existing file of that name is replaced (it is what a rerun
    wrote before, or what the user asked to be replaced by choosing this option).

    Best effort: the transcripts in OUT are the outputs; a source folder that cannot be written (read-only media, a
    share) adds a note to the transcript naming the path and why, and the video is still done."""
    if item.kind != SourceKind.FILE:
        return {}
    source = Path(item.source)
    written = {}
    for fmt in (f for f in SUBTITLE_FORMATS if f in formats):
        path = source.with_name(f"{source.stem}.{fmt}")
        try:
            atomic_write_text(path, render(fmt, transcript, item, shape=shape))
        except OSError as exc:
            transcript.notes.append(f"could not write subtitles beside the source: {path}: "
                                    f"{exc.strerror or type(exc).__name__}")
            continue
        written[f"{fmt}{BESIDE_SUFFIX}"] = str(path)
    return written


# --- stored transcripts (later formats without transcribing again) ---------------------------------------------



def store_transcript(out_dir: Path, item: VideoItem, transcript: Transcript) -> Path:
    folder = layout.stored_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{item.video_id}.json.gz"
    data = json.dumps(transcript_dict(transcript, item), ensure_ascii=False, default=str).encode("utf-8")
    atomic_write_bytes(path, gzip.compress(data, compresslevel=6, mtime=0))
    return path


def transcript_from_dict(data: dict[str, Any]) -> Transcript:
    """The Transcript a JSON output (or a stored copy) was written from."""
    segments = []
    for seg in data.get("segments") or []:
        words = None
        if seg.get("words") is not None:
            words = [Word(w["start"], w["end"], w["word"], w.get("probability") or 0.0) for w in seg["words"]]
        segments.append(Segment(seg["start"], seg["end"], seg["text"], words,
                                **{score: seg.get(score) for score in SEGMENT_SCORES}))
    timings = data.get("timings") or {}
    return Transcript(
        video_id=data["video_id"], language=data.get("language") or "", duration_s=data.get("duration") or 0.0,
        language_probability=data.get("language_probability") or 0.0, segments=segments,
        model=data.get("model") or "", transcribe_s=timings.get("transcribe_s") or 0.0,
        download_s=timings.get("download_s") or 0.0, worker=data.get("worker") or "",
        notes=list(data.get("notes") or []), quality=Quality.from_dict(data.get("quality")),
    )


def load_transcript(out_dir: Path, video_id: str, outputs: dict[str, str] | None = None) -> Transcript | None:
    """The stored copy of a finished transcript, or its JSON output; None when neither is there (or readable)."""
    stored = layout.stored_dir(out_dir) / f"{video_id}.json.gz"
    candidates: list[tuple[Path, bool]] = [(stored, True)]
    if outputs and outputs.get("json"):
        candidates.append((Path(out_dir) / outputs["json"], False))
    for path, zipped in candidates:
        try:
            raw = path.read_bytes()
            data = json.loads(gzip.decompress(raw) if zipped else raw)
            if data.get("video_id") == video_id:
                return transcript_from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            continue
    return None


def write_manifest(out_dir: Path, entries: Sequence[dict[str, Any]], *, duplicates: Sequence[str] = ()) -> Path:
    """OUT/manifest.json: one entry per video, as the caller built them, and the input lines given more than once
    (listed once), written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = layout.manifest(out_dir)
    # Only files that are there: a folder deleted by hand (or a format dropped) is not listed as if it were.
    entries = [{**e, "outputs": {k: v for k, v in (e.get("outputs") or {}).items() if (out_dir / v).is_file()}}
               for e in entries]
    data = {
        "version": MANIFEST_VERSION,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "count": len(entries),
        "videos": entries,
        "duplicates": list(duplicates),
    }
    # default=str: Paths and other odd values become text; str Enums (VideoStatus) already serialise as values.
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    return path
