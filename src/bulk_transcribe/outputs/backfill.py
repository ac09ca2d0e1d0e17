"""A rerun that asks for more formats writes them for videos already done, from their stored transcript.

Done videos are never transcribed again (resume), so without this a rerun with `--formats txt,srt` after a
`--formats txt` run would add nothing. The transcript comes from OUT/.transcripts (kept for every finished video)
or, for videos finished by an older version, from their JSON output; no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..config import RunConfig
from ..models import SourceKind, VideoStatus
from ..naming import is_safe, safe_name
from ..session_manager import SessionStore, VideoRecord
from .writers import BESIDE_SUFFIX, SUBTITLE_FORMATS, load_transcript, write_beside_source, write_transcript


@dataclass
class BackfillResult:
    videos: int = 0
    """Done videos that got at least one new output."""
    files: int = 0
    """Files written."""
    redo: list[str] = field(default_factory=list)
    """Ids of done videos whose outputs are gone (a deleted folder, formats asked for later) with no stored
    transcript to write them from: they are transcribed again."""


def _missing(config: RunConfig, record: VideoRecord) -> tuple[list[str], list[str]]:
    """(formats missing in OUT, subtitle formats missing beside the source)."""
    out = Path(config.out_dir)
    in_out = [f for f in config.formats if not (f in record.outputs and (out / record.outputs[f]).is_file())]
    beside: list[str] = []
    if config.output.beside_source and record.kind == SourceKind.FILE.value:
        for fmt in SUBTITLE_FORMATS:
            key = f"{fmt}{BESIDE_SUFFIX}"
            if fmt in config.formats and not (key in record.outputs and Path(record.outputs[key]).is_file()):
                beside.append(fmt)
    return in_out, beside


def write_missing_outputs(config: RunConfig, store: SessionStore, records: Sequence[VideoRecord]) -> BackfillResult:
    result = BackfillResult()
    for record in records:
        if record.status != VideoStatus.DONE:
            continue
        in_out, beside = _missing(config, record)
        if not in_out and not beside:
            continue
        transcript = load_transcript(config.out_dir, record.video_id, record.outputs)
        if transcript is None:
            result.redo.append(record.video_id)
            continue
        item = record.to_item()
        shape = config.output.shape
        try:
            outputs = dict(record.outputs)
            if in_out:
                outputs.update(write_transcript(config.out_dir, record.folder, item, transcript, in_out,
                                                template=config.output.template, shape=shape,
                                                claim=store.claim_outputs))
            if beside:
                outputs.update(write_beside_source(item, transcript, beside, shape))
        except (OSError, ValueError):
            result.redo.append(record.video_id)
            continue
        store.set_outputs(record.video_id, outputs)
        record.outputs = outputs
        result.videos += 1
        result.files += len(in_out) + len(beside)
    return result


def repair_unsafe_folders(config: RunConfig, store: SessionStore, records: Sequence[VideoRecord]) -> int:
    """Move finished videos out of folders an older version named unsafely (a title `manifest.json` became the
    folder OUT/manifest.json, and the manifest could never be written again). Returns how many were moved."""
    out = Path(config.out_dir)
    taken = {r.folder for r in store.videos()}
    moved = 0
    for record in records:
        if record.status != VideoStatus.DONE or is_safe(record.folder):
            continue
        new = safe_name(record.title, taken)
        taken.add(new)
        old_path = out / record.folder
        try:
            if old_path.is_dir() and not old_path.is_symlink():
                old_path.rename(out / new)
        except OSError:
            continue  # left as it was: the rest of the run goes on
        prefix = f"{record.folder}/"
        outputs = {k: (new + "/" + v[len(prefix):]) if v.startswith(prefix) else v for k, v in record.outputs.items()}
        store.set_folder(record.video_id, new, outputs)
        record.folder, record.outputs = new, outputs
        moved += 1
    return moved
