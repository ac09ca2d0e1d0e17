"""One live process owns an output folder at a time: an exclusive lock on OUT/.bulk_transcribe.lock, and who holds
it (written into the lock file) so a refusal can name the owner."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .layout import LOCK_NAME


class FolderBusy(RuntimeError):
    """Another live process owns the output folder."""

    def __init__(self, out_dir: Path, owner: "Owner | None") -> None:
        self.owner = owner
        who = owner.describe() if owner else "another process"
        super().__init__(f"{out_dir} is in use by {who}; wait for it to finish, stop it, or choose another output "
                         "folder")


@dataclass(frozen=True)
class Owner:
    """Who holds an output folder: written into the lock file so a refusal can name it."""

    pid: int
    host: str
    command: str
    started_at: float
    run_id: str | None = None

    def describe(self) -> str:
        since = time.strftime("%H:%M", time.localtime(self.started_at))
        run = f", run {self.run_id}" if self.run_id else ""
        return f"{self.command} (process {self.pid} on {self.host}, since {since}{run})"


class OwnerLock:
    """One live process owns an output folder at a time: an exclusive flock on OUT/.bulk_transcribe.lock.

    The kernel drops the lock when its process dies however it dies (SIGKILL, OOM, power loss on reboot), so
    "owned" means a live owner, never a guess from how long the store has been quiet (a stalled download can be
    quiet for minutes). Within one process a second lock on the same folder is refused too (flock locks belong
    to the open file), so a dashboard cannot start two runs into one folder either.
    """

    def __init__(self, out_dir: Path | str, command: str = "") -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self.command = command or _command_name()
        self._fd: int | None = None

    def acquire(self, run_id: str | None = None) -> "OwnerLock":
        """Take the folder or raise FolderBusy naming the owner."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for attempt in range(3):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reader probing with a shared lock holds it for microseconds: look twice before refusing.
                if attempt == 2:
                    owner = _read_owner(fd)
                    os.close(fd)
                    raise FolderBusy(self.out_dir, owner) from None
                time.sleep(0.05)
        self._fd = fd
        try:
            self.record(run_id)
        except BaseException:  # a full disk: never keep a lock nobody will release
            self.release()
            raise
        return self

    def record(self, run_id: str | None) -> None:
        """Write who owns the folder (and, once known, which run) into the lock file."""
        if self._fd is None:
            return
        owner = Owner(os.getpid(), socket.gethostname(), self.command, time.time(), run_id)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(asdict(owner)).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass  # a full or read-only disk: the lock still goes with the close
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "OwnerLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def holder(out_dir: Path | str) -> Owner | None:
        """The live owner of `out_dir`, or None when no process holds it (also on a read-only folder)."""
        path = Path(out_dir) / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_owner(fd) or Owner(0, "?", "another process", time.time())
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_owner(fd: int) -> Owner | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Owner(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _command_name() -> str:
    """How a person would call this process: the CLI however it was started, the dashboard, or the program."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = Path(argv0).name
    if "streamlit" in name:
        return "the dashboard"
    if "bulk" in name or "bulk_transcribe" in argv0:  # the script, or `python -m bulk_transcribe.cli`
        return "bulk-transcribe"
    return name
