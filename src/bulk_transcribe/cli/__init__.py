"""The command line: `bulk-transcribe run` (a batch, headless, resumable) and `bulk-transcribe status`.

args.py holds the options, main.py the commands, live.py what the terminal shows while a run goes, report.py what it
prints at the end (and `status --json`), signals.py how Ctrl-C and friends stop a run gracefully.
"""

from .main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]
