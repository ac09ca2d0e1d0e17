"""OUT's own names: every file and folder the tool keeps in an output folder, in one leaf module.

Transcripts go wherever the output template says; everything else the tool writes into OUT is named here, so the
store, the writers, the workers and the name sanitiser (which keeps titles off these names) agree on one list.
"""

from __future__ import annotations

from pathlib import Path

STATE_DB_NAME = "bulk_transcribe.sqlite"
"""The SQLite session store: every run and every video's state (what makes a rerun resume)."""

MANIFEST_NAME = "manifest.json"
"""The summary of every video the folder holds, rewritten at the end of each run."""

LOCK_NAME = ".bulk_transcribe.lock"
"""The lock file that makes one live process the owner of the folder (folder_lock.OwnerLock)."""

WORK_DIR_NAME = ".work"
"""Downloads in progress (emptied when a run starts: what is there was cut off by a crash)."""

AUDIO_DIR_NAME = "audio"
"""Downloaded audio kept with --keep-audio."""

LOG_DIR_NAME = "logs"
"""Ray's own log lines when they are kept off the terminal (logs/ray.log)."""

STORED_DIR_NAME = ".transcripts"
"""Every finished transcript as `<video_id>.json.gz`, so a rerun writes more formats without the model."""

TOOL_PREFIX = "bulk_transcribe"
"""Names starting with this are kept for the tool's own files (the store and its SQLite side files, the lock)."""

TOOL_NAMES = frozenset(
    name.lower() for name in (
        MANIFEST_NAME, STATE_DB_NAME, f"{STATE_DB_NAME}-wal", f"{STATE_DB_NAME}-shm", f"{STATE_DB_NAME}-journal",
        LOCK_NAME, WORK_DIR_NAME, AUDIO_DIR_NAME, LOG_DIR_NAME, STORED_DIR_NAME,
    )
)
"""Every name above (lower-cased): a transcript folder named like one of them would break every later run."""


def state_db(out_dir: Path | str) -> Path:
    return Path(out_dir) / STATE_DB_NAME


def manifest(out_dir: Path | str) -> Path:
    return Path(out_dir) / MANIFEST_NAME


def work_dir(out_dir: Path | str) -> Path:
    return Path(out_dir) / WORK_DIR_NAME


def audio_dir(out_dir: Path | str) -> Path:
    return Path(out_dir) / AUDIO_DIR_NAME


def stored_dir(out_dir: Path | str) -> Path:
    return Path(out_dir) / STORED_DIR_NAME


def ray_log(out_dir: Path | str) -> Path:
    return Path(out_dir) / LOG_DIR_NAME / "ray.log"
