"""Save media uploaded through the page: size-capped, media types only, under the upload folder, never overwritten.

Each upload lands in a folder named after a hash of its bytes, so uploading the same file twice gives the same
path (and so the same video id: resume and de-duplication work for uploads as for typed paths), while two
different files with the same name never overwrite each other.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import MEDIA_EXTENSIONS
from ..naming import safe_name
from .paths import within



class UploadError(ValueError):
    """An upload was refused (too large, not media, unreadable); the message names the file and the cause."""


@dataclass(frozen=True)
class SavedUpload:
    name: str
    path: Path
    size: int


def check_upload(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise UploadError(
            f"{name} is {size / 1024 / 1024:.1f} MB, over the {max_bytes / 1024 / 1024:.0f} MB upload limit"
        )
    if Path(name).suffix.lower() not in MEDIA_EXTENSIONS:
        raise UploadError(f"{name} is not a media file this tool reads (audio or video extensions only)")
    if size == 0:
        raise UploadError(f"{name} is empty")


def save_upload(name: str, data: bytes | BinaryIO, upload_dir: Path, max_bytes: int) -> SavedUpload:
    """Write one uploaded file under `upload_dir` and return where it went."""
    blob = data if isinstance(data, (bytes, bytearray, memoryview)) else data.read(max_bytes + 1)
    blob = bytes(blob)
    check_upload(name, len(blob), max_bytes)
    suffix = Path(name).suffix.lower()
    stem = safe_name(Path(name).stem) or "upload"
    digest = hashlib.sha256(blob).hexdigest()[:16]
    folder = Path(upload_dir) / digest
    target = folder / f"{stem}{suffix}"
    # The name is sanitised, but check anyway: an upload must never be written outside the upload folder.
    if not within(target.parent, Path(upload_dir)):
        raise UploadError(f"{name}: refused, the file name points outside the upload folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and target.stat().st_size == len(blob)):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, target)  # atomic: a half-written upload is never picked up as media
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return SavedUpload(name=name, path=target, size=len(blob))


def read_list_upload(name: str, data: bytes, max_bytes: int) -> str:
    """The text of an uploaded list file; refuses binary or oversized files with a clear reason."""
    if len(data) > max_bytes:
        raise UploadError(f"{name} is over the {max_bytes / 1024 / 1024:.0f} MB upload limit")
    if b"\x00" in data:
        raise UploadError(f"{name} is not a text file (one URL or path per line expected)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{name} is not UTF-8 text (one URL or path per line expected)") from None
