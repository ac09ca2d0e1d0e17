"""A rerun that asks for more formats writes them for videos already done, from their stored transcript.

Done videos are never transcribed again (resume), so without this a rerun with `--formats txt,srt` after a
`--formats txt` run would add nothing. The transcript comes from OUT/.transcripts (kept for every finished video)
or, for videos finished by an older version, from their JSON output; no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .config import RunConfig
from .models import SourceKind, VideoStatus
from .session_manager import SessionStore, VideoRecord
from .writers import BESIDE_SUFFIX, SUBTITLE_FORMATS, load_transcript, write_beside_source, write_transcript


@dataclass
class BackfillResult:
    videos: int = 0
    """Done videos that got at least one new output."""
    files: int = 0
    """Files written."""
    unavailable: list[str] | None = None
    """Titles of done videos missing outputs whose transcript is not stored (rerun them to get those formats)."""


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
    result = BackfillResult(unavailable=[])
    for record in records:
        if record.status != VideoStatus.DONE:
            continue
        in_out, beside = _missing(config, record)
        if not in_out and not beside:
            continue
        transcript = load_transcript(config.out_dir, record.video_id, record.outputs)
        if transcript is None:
            result.unavailable.append(record.title)
            continue
        item = record.to_item()
        shape = config.output.shape
        try:
            outputs = dict(record.outputs)
            if in_out:
                outputs.update(write_transcript(config.out_dir, record.folder, item, transcript, in_out,
                                                template=config.output.template, shape=shape))
            if beside:
                outputs.update(write_beside_source(item, transcript, beside, shape))
        except (OSError, ValueError):
            result.unavailable.append(record.title)
            continue
        store.set_outputs(record.video_id, outputs)
        record.outputs = outputs
        result.videos += 1
        result.files += len(in_out) + len(beside)
    return result
