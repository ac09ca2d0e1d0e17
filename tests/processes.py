"""Killing a real process at a chosen moment, the way a crash would."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Callable


def sigkill_when(proc: subprocess.Popen, ready: Callable[[], bool], *, timeout_s: float = 300,
                 poll_s: float = 0.1, too_soon: str = "the process finished before it could be killed") -> None:
    """Wait until `ready()` (e.g. a first video is done), then SIGKILL `proc`; fail if it ended by itself first."""
    try:
        deadline = time.monotonic() + timeout_s
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(poll_s)
        alive = proc.poll() is None
        detail = proc.stderr.read()[-3000:] if not alive and proc.stderr else ""
        assert alive, f"{too_soon}\n{detail}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
