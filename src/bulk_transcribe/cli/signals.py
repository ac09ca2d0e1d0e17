"""Graceful stop on the first SIGINT / SIGTERM / SIGHUP, immediate exit on the second; output that survives a
closed terminal or pipe.

A terminal's Ctrl-C, GNU `timeout`, `kill -- -PGID`, systemd's stop and a closed SSH session all mean "stop": the
first one asks the batch to cancel (videos in flight stop within seconds, queued ones are cancelled, the manifest is
written, the run is recorded as cancelled); a second one means "now" and exits at once with 130 (the store then
shows the run as stopped, and a rerun resumes it). Ray's own processes run in sessions of their own
(parallel.cluster), so these signals reach this driver only, and a reaper ends them however the driver ends.
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
    """Context manager for the main thread: `event` is set by the first stop signal; the second exits at once.

    The signal handler itself does next to nothing and takes no lock: a signal can land while the code it interrupts
    holds a lock, and a repeated signal (GNU `timeout` forwards one to the group it already signalled) can land
    inside the handler of the first. Both were seen to deadlock the CLI for good when the handler set an Event
    (Event.set takes a lock). Instead Python's wakeup fd (signal.set_wakeup_fd) writes one byte per signal into a
    pipe, and a watcher thread reads it and does the rest: sets `event`, says "stopping" (on_first), and on the
    second signal exits at once. The handler only raises KeyboardInterrupt in the main thread while `raise_first`
    (abandoning a start-up, when nothing has run yet).
    """

    def __init__(self, on_first: Callable[[str], None] | None = None, *, raise_first: bool = False,
                 exit_now: Callable[[int], None] = os._exit) -> None:
        self.raise_first = raise_first
        """While True, the first signal raises KeyboardInterrupt (abandon a start-up) instead of only asking."""
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._on_first = on_first
        self._exit_now = exit_now
        self._previous: dict[int, object] = {}
        self._raised = 0  # signals the main thread's handler has seen (a plain int: no lock, handlers nest)
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1
        self._watcher: threading.Thread | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes, possibly inside another handler: no locks, no I/O.
        self._raised += 1
        if self.raise_first and self._raised == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def _watch(self, read_fd: int) -> None:
        seen = 0
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return  # the pipe was closed on exit
            for signum in data:
                seen += 1
                if seen >= 2:
                    # Second signal: no more waiting. os._exit skips cleanup that could block; the kernel drops the
                    # folder lock, and Ray's processes go with this one (parallel.cluster's reaper).
                    self._exit_now(EXIT_INTERRUPTED)
                    return
                self.signal_name = signal.Signals(signum).name
                self.event.set()
                if self._on_first is not None and not self.raise_first:
                    self._on_first(self.signal_name)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # a full pipe drops a byte rather than block the handler
        self._pipe = (read_fd, write_fd)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        self._old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd,), name="bt-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
        read_fd, write_fd = self._pipe
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        if self._watcher is not None:
            self._watcher.join(1.0)
        os.close(read_fd)
        self._pipe = None


def exit_on_signal(code: int) -> None:
    """From here to the end of the process, a stop signal exits at once with `code`: what is left is the
    interpreter's own teardown (Ray's exit hook among it), and a signal landing there found the default handler and
    printed a traceback. The handler only calls os._exit: no lock, nothing to interrupt."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: os._exit(code))


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
