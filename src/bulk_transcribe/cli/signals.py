"""Graceful stop on the first SIGINT / SIGTERM / SIGHUP, immediate exit on the second; output that survives a
closed terminal or pipe.

A terminal's Ctrl-C, GNU `timeout`, `kill -- -PGID`, systemd's stop and a closed SSH session all mean "stop": the
first one asks the batch to cancel (videos in flight stop within seconds, queued ones are cancelled, the manifest is
written, the run is recorded as cancelled); a second one means "now" and exits at once with 130 (the store then
shows the run as stopped, and a rerun resumes it). Ray's own processes run in a process group of their own
(parallel.cluster), so these signals reach this driver only.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Callable, TextIO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

EXIT_INTERRUPTED = 130


class GracefulStop:
    """Context manager for the main thread: `event` is set by the first stop signal; the second exits at once."""

    def __init__(self, on_first: Callable[[str], None] | None = None, *, raise_first: bool = False,
                 exit_now: Callable[[int], None] = os._exit) -> None:
        self.raise_first = raise_first
        """While True, the first signal raises KeyboardInterrupt (abandon a start-up) instead of only asking."""
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._on_first = on_first
        self._exit_now = exit_now
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            # Second signal: no more waiting. os._exit skips cleanup that could block; the kernel drops the
            # folder lock and Ray's daemons die with this process (they share its fate).
            self._exit_now(EXIT_INTERRUPTED)
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        if self.raise_first:
            raise KeyboardInterrupt(self.signal_name)
        if self._on_first is not None:
            self._on_first(self.signal_name)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()


class SafeStream:
    """A text stream that goes quiet, instead of raising, once its reader is gone.

    `bulk-transcribe run … | head -3` closes the pipe after three lines, and a closed terminal turns writes into
    EIO: neither may stop the batch. After the first failed write everything is dropped, and the underlying file
    descriptor is pointed at /dev/null so the interpreter's own flush at exit stays quiet too.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            written = self._stream.write(text)
            return written if written is not None else len(text)
        except (BrokenPipeError, OSError, ValueError):
            self._go_quiet()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._go_quiet()

    def isatty(self) -> bool:
        try:
            return not self.broken and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def _go_quiet(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (a test's StringIO): dropping writes is enough

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
