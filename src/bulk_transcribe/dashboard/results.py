"""A run's transcripts as the page offers them: per-file downloads, a viewer, and one zip of the whole run.

Output paths come from the store; they are still checked to lie inside the run's output folder before a byte is
read, so a tampered or stale store can never make the page serve another file from the server.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_FORMATS
from ..layout import MANIFEST_NAME
from ..models import Snapshot, VideoStatus
from .paths import within

MIME_TYPES = {
    "txt": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
}


@dataclass(frozen=True)
class TranscriptFile:
    video_id: str
    title: str
    format: str
    path: Path

    @property
    def mime(self) -> str:
        return MIME_TYPES.get(self.format, "application/octet-stream")

    @property
    def download_name(self) -> str:
        return f"{self.path.parent.name}.{self.format}"


def transcript_files(snapshot: Snapshot, out_dir: Path) -> dict[str, list[TranscriptFile]]:
    """Per done video (by id, in table order), its existing transcript files in the usual format order."""
    order = {fmt: i for i, fmt in enumerate(DEFAULT_FORMATS)}
    found: dict[str, list[TranscriptFile]] = {}
    for v in snapshot.videos:
        if v.status != VideoStatus.DONE or not v.outputs:
            continue
        files = []
        for fmt, raw in sorted(v.outputs.items(), key=lambda kv: order.get(kv[0], 99)):
            path = Path(raw) if Path(raw).is_absolute() else Path(out_dir) / raw
            if within(path, out_dir) and path.is_file():
                files.append(TranscriptFile(v.video_id, v.title, fmt, path.resolve()))
        if files:
            found[v.video_id] = files
    return found


def read_file(path: Path, out_dir: Path) -> bytes:
    if not within(path, out_dir):
        raise PermissionError(f"{path} is outside the run's output folder")
    return Path(path).read_bytes()


def run_zip(snapshot: Snapshot, out_dir: Path) -> bytes:
    """Every transcript of the run (as OUT/<video>/<file>) plus the manifest, in one zip."""
    out_dir = Path(out_dir).resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for files in transcript_files(snapshot, out_dir).values():
            for f in files:
                archive.write(f.path, arcname=str(f.path.relative_to(out_dir)))
        manifest = out_dir / MANIFEST_NAME
        if manifest.is_file():
            archive.write(manifest, arcname=MANIFEST_NAME)
    return buffer.getvalue()


def zip_name(snapshot: Snapshot, out_dir: Path) -> str:
    return f"{Path(out_dir).name or 'transcripts'}-{snapshot.run_id}.zip"
