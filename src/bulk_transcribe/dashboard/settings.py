"""Where the dashboard may read media, write uploads and write transcripts, read once from the environment.

The dashboard is a web page: anything typed into it comes from a browser, so every local path it touches is kept
inside folders the operator chose when starting the server (not folders a visitor names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MEDIA_ROOT_ENV = "BULK_TRANSCRIBE_MEDIA_ROOT"
"""Local media typed into the "Videos" box must lie under this folder (default: the home folder of the user who
runs the server: a person's videos live there, and nothing outside it is offered to a browser)."""

OUTPUT_ROOT_ENV = "BULK_TRANSCRIBE_OUTPUT_ROOT"
"""Output folders chosen in the page must lie under this folder (default: ~/BulkTranscribe, a folder of its own,
so transcripts never land inside a git checkout or wherever the server happened to start)."""

UPLOAD_DIR_ENV = "BULK_TRANSCRIBE_UPLOAD_DIR"
"""Where uploaded media and list files are saved (default: OUTPUT_ROOT/uploads)."""

DEFAULT_OUTPUT_ROOT = "~/BulkTranscribe"
"""Where transcripts go when the operator names no output root."""

MAX_UPLOAD_MB_ENV = "BULK_TRANSCRIBE_MAX_UPLOAD_MB"
"""Largest accepted upload, per file, in megabytes."""

DEFAULT_MAX_UPLOAD_MB = 500
"""Large enough for an hour of compressed audio, small enough that a visitor cannot fill the disk in one go."""

DEFAULT_OUTPUT_FOLDER = "transcripts"
"""The output folder offered in the settings, relative to the output root."""


@dataclass(frozen=True)
class DashboardSettings:
    media_root: Path
    output_root: Path
    upload_dir: Path
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    default_output: str = DEFAULT_OUTPUT_FOLDER

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def input_roots(self) -> tuple[Path, ...]:
        """Folders a local input may come from: the media root, and the upload folder if it lies elsewhere."""
        return (self.media_root, self.upload_dir)

    def output_folder(self, text: str) -> Path:
        """An output folder named in the page or its URL (`?out=`), kept inside the output root; a refusal names
        OUTPUT_ROOT_ENV, the setting that moves that root."""
        from .paths import confine

        return confine(text, [self.output_root], must_exist=False, setting=OUTPUT_ROOT_ENV)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, cwd: Path | None = None) -> "DashboardSettings":
        env = os.environ if environ is None else environ
        base = Path(cwd or Path.cwd())
        media_root = _folder(env.get(MEDIA_ROOT_ENV) or str(Path.home()), base)
        output_root = _folder(env.get(OUTPUT_ROOT_ENV) or DEFAULT_OUTPUT_ROOT, base)
        upload_dir = _folder(env.get(UPLOAD_DIR_ENV), base) if env.get(UPLOAD_DIR_ENV) else output_root / "uploads"
        raw_cap = env.get(MAX_UPLOAD_MB_ENV, "").strip()
        try:
            cap = int(raw_cap) if raw_cap else DEFAULT_MAX_UPLOAD_MB
        except ValueError:
            raise ValueError(f"{MAX_UPLOAD_MB_ENV} must be a whole number of megabytes, not {raw_cap!r}") from None
        if cap < 1:
            raise ValueError(f"{MAX_UPLOAD_MB_ENV} must be at least 1")
        return cls(media_root=media_root, output_root=output_root, upload_dir=upload_dir, max_upload_mb=cap)


def _folder(value: str | None, base: Path) -> Path:
    # Resolved once, here, so that every later containment check compares real paths (symlinks followed).
    path = Path(value).expanduser() if value and value.strip() else base
    if not path.is_absolute():
        path = base / path
    return path.resolve()
