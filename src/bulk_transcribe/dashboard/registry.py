"""The runs this Streamlit server started, shared by every browser tab.

The page keeps one RunRegistry in `st.cache_resource`, so it lives as long as the server process, not as long as
a browser session: closing the tab or reloading the page leaves the run (a daemon thread here, or Ray actors)
untouched, and the page finds it again by the run id in the URL. Runs this process did not start (an earlier
server, the CLI, another dashboard) are read through `runs.attach_snapshot`, from the live progress actor or
the SQLite store.

Stopping the server (Ctrl-C on `make run`, SIGTERM) is the operator's stop: the runs it holds are cancelled, as
the CLI's Ctrl-C does, before the interpreter's exit hooks shut Ray down under them (which failed every unfinished
video with "Ray shut down under the run"). A rerun resumes them.

Every method returns data or a one-line error; nothing here lets an exception reach the page.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Callable
from pathlib import Path

from ..config import DownloadOptions, OutputOptions, RunConfig, TranscribeOptions
from ..models import Snapshot


@dataclass
class RunEntry:
    run_id: str
    out_dir: Path
    config: RunConfig
    handle: object | None = None
    """The runs.BatchHandle when this process runs it."""

    @property
    def done(self) -> bool:
        return self.handle is None or bool(getattr(self.handle, "done", True))

    @property
    def error(self) -> str | None:
        return getattr(self.handle, "error", None) if self.handle is not None else None

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until the batch ends (True) or `timeout` passes (False); for scripts and tests, not the page."""
        if self.handle is None:
            return True
        return bool(self.handle.wait(timeout))


@dataclass
class StartResult:
    """What a start or retry gave: the run, or the reason there is none."""

    entry: RunEntry | None = None
    error: str | None = None


SHUTDOWN_GRACE_S = 60.0
"""Longest the server's exit waits for its runs to record their cancel (a parallel cancel takes seconds)."""


class RunRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunEntry] = {}
        self._shutdown_watch: threading.Thread | None = None
        threading.Thread(target=_import_what_a_run_needs, name="bt-warm-imports", daemon=True).start()

    # -- starting -----------------------------------------------------------------------------------------------
    def start(self, config: RunConfig) -> StartResult:
        """Take OUT, register the run and start it in the background: its inputs resolve there, each video
        joining the table as soon as it is known (the page shows "resolved N of M inputs" meanwhile)."""
        from .. import runs  # imported on use: the page module stays importable (and fast) without the engine
        from ..folder_lock import FolderBusy

        try:
            runs.check_cluster(config)
            prepared = runs.prepare_batch(config)
        except FolderBusy as exc:
            return StartResult(error=f"Not started: {exc}.")
        except ConnectionError as exc:
            return StartResult(error=_ray_error(exc))
        except Exception as exc:  # noqa: BLE001 — shown as st.error, never as a traceback
            return StartResult(error=f"Could not read the inputs: {_one_line(exc)}")
        try:
            handle = runs.start_batch(config, prepared)
        except Exception as exc:  # noqa: BLE001
            return StartResult(error=f"Could not start the run: {_one_line(exc)}")
        entry = RunEntry(handle.run_id, Path(config.out_dir), prepared.config, handle)
        self._add(entry)
        return StartResult(entry=entry)

    def retry_failed(self, run_id: str, out_dir: Path) -> StartResult:
        """Start again over the run's inputs: failed and cancelled videos run again, done ones stay done."""
        return self._start_again(run_id, out_dir, lambda config: config, "retry")

    def recheck_flagged(self, run_id: str, out_dir: Path, recheck_model: str | None = None) -> StartResult:
        """Start again over the run's inputs with the recheck on: finished videos whose transcript was flagged
        (and never rechecked) are transcribed again with safer options and `recheck_model` (else the run's own
        recheck model, else its model); the better transcript of each is kept."""
        return self._start_again(
            run_id, out_dir,
            lambda config: replace(config, recheck=True, recheck_model=recheck_model or config.recheck_model),
            "recheck")

    def _start_again(self, run_id: str, out_dir: Path, adjust: Callable[[RunConfig], RunConfig],
                     what: str) -> StartResult:
        from .. import runs

        entry = self.get(run_id)
        if entry is not None and not entry.done:
            return StartResult(error=f"The run is still going; cancel it or wait for it to finish before a {what}.")
        config = entry.config if entry is not None else config_from_store(out_dir, run_id)
        if config is None:
            return StartResult(error=f"Run {run_id} is not in {out_dir}; nothing to {what}.")
        from ..folder_lock import FolderBusy

        config = adjust(config)
        try:
            runs.check_cluster(config)
            handle = runs.start_batch(config)
        except FolderBusy as exc:
            return StartResult(error=f"Not started: {exc}.")
        except ConnectionError as exc:
            return StartResult(error=_ray_error(exc))
        except Exception as exc:  # noqa: BLE001
            return StartResult(error=f"Could not start the {what}: {_one_line(exc)}")
        new = RunEntry(handle.run_id, Path(config.out_dir), config, handle)
        self._add(new)
        return StartResult(entry=new)

    def _add(self, entry: RunEntry) -> None:
        with self._lock:
            self._runs[entry.run_id] = entry
            if self._shutdown_watch is None:
                # Not a daemon (said outright: a thread inherits it from Streamlit's script thread, a daemon): the
                # interpreter's exit waits for it, and it runs before the exit hooks (Ray's shutdown among them),
                # because the main thread counts as finished when that wait begins.
                self._shutdown_watch = threading.Thread(target=self._cancel_at_exit, name="cancel-runs-at-exit",
                                                        daemon=False)
                self._shutdown_watch.start()

    def _cancel_at_exit(self) -> None:
        threading.main_thread().join()
        live = [e for e in self.entries() if not e.done]
        if not live:
            return
        print(f"Stopping: cancelling {len(live)} unfinished run(s); a rerun resumes them.", file=sys.stderr,
              flush=True)
        for entry in live:
            entry.handle.cancel()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for entry in live:
            entry.wait_done(max(0.0, deadline - time.monotonic()))
        if "ray" in sys.modules:  # an embedded Ray (perhaps still starting) stops in order, on its owner thread
            from ..parallel.cluster import shutdown

            shutdown()

    # -- watching -----------------------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunEntry | None:
        with self._lock:
            return self._runs.get(run_id)

    def entries(self) -> list[RunEntry]:
        with self._lock:
            return list(self._runs.values())

    def snapshot(self, run_id: str, out_dir: Path | None = None, ray_address: str | None = None) -> Snapshot | None:
        """The run's latest state: from our own handle when we run it, otherwise attached from OUT / Ray."""
        entry = self.get(run_id)
        if entry is not None and entry.handle is not None:
            return entry.handle.snapshot()
        folder = entry.out_dir if entry is not None else out_dir
        if folder is None:
            return None
        from .. import runs

        try:
            return runs.attach_snapshot(Path(folder), run_id, ray_address)
        except Exception:  # noqa: BLE001 — a missing or locked store reads as "no such run"
            return None

    def is_live(self, run_id: str) -> bool:
        """True while this process is running the batch (its page should keep refreshing)."""
        entry = self.get(run_id)
        return entry is not None and entry.handle is not None and not entry.done

    def error(self, run_id: str) -> str | None:
        entry = self.get(run_id)
        return entry.error if entry is not None else None

    def phase(self, run_id: str) -> tuple[str, float] | None:
        """What a run of ours is busy with before videos flow, and since when (None once they do)."""
        entry = self.get(run_id)
        handle = entry.handle if entry is not None else None
        phase, since = getattr(handle, "phase", None), getattr(handle, "phase_since", None)
        return (phase, since) if phase and since else None

    # -- steering -----------------------------------------------------------------------------------------------
    def cancel(self, run_id: str) -> bool:
        entry = self.get(run_id)
        if entry is None or entry.handle is None or entry.done:
            return False
        entry.handle.cancel()
        return True


def _import_what_a_run_needs() -> None:
    """Load, in the background while the visitor fills the form, what the first run of the server's life would
    otherwise import on Start (~3 s here: the engine, and pandas behind the status table's first draw), so its
    table shows as soon as a later run's does."""
    import importlib

    for module in ("pandas", "bulk_transcribe.runs", "bulk_transcribe.engine.pipeline"):
        importlib.import_module(module)


def config_from_store(out_dir: Path, run_id: str) -> RunConfig | None:
    """Rebuild a run's config from its store, to retry it after a server restart (this process never held it).

    The stored config is the run's own (its options, formats, mode); if it cannot be read back (an older or
    newer layout), the run's video sources with default options still let the failed ones run again.
    """
    from ..layout import state_db
    from ..session_manager import SessionStore

    db = state_db(out_dir)
    if not db.is_file():
        return None
    with SessionStore(db, read_only=True) as store:
        run = store.run(run_id)
        if run is None:
            return None
        sources = tuple(dict.fromkeys(v.source for v in store.videos(run_id)))
    try:
        return _config_from_dict(run.config, Path(out_dir))
    except (TypeError, ValueError, KeyError):
        return RunConfig(inputs=sources, out_dir=Path(out_dir)) if sources else None


def _config_from_dict(data: dict, out_dir: Path) -> RunConfig:
    def pick(cls, values: dict) -> dict:
        names = {f.name for f in fields(cls)}
        return {k: v for k, v in (values or {}).items() if k in names}

    top = pick(RunConfig, data)
    for key in ("inputs", "formats"):
        if key in top:
            top[key] = tuple(top[key])
    top["download"] = DownloadOptions(**pick(DownloadOptions, data.get("download", {})))
    top["transcribe"] = TranscribeOptions(**pick(TranscribeOptions, data.get("transcribe", {})))
    top["output"] = OutputOptions(**pick(OutputOptions, data.get("output", {})))
    top["out_dir"] = out_dir
    return RunConfig(**top)


def _ray_error(exc: ConnectionError) -> str:
    return (f"Could not reach Ray: {_one_line(exc)} Fix the address, or switch off Parallel processing to run "
            "here.")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
