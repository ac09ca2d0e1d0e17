"""`bulk-transcribe`: run a batch headless, or show the state of one.

Exit codes: 0 every video done, 1 any video failed (the others still finished), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import sys
from dataclasses import replace
from typing import BinaryIO, Sequence, TextIO

from .. import layout
from ..config import PARALLEL_ENV, RunConfig
from ..folder_lock import FolderBusy
from .args import build_parser, config_from_args
from .live import RichProgress, live_view, nothing_to_do, print_summary, ray_log_file
from .report import backfill_line, handover_line, render_table
from .signals import GracefulStop, SafeStream, exit_on_signal

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def cmd_run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: BinaryIO) -> int:
    live = None

    def on_stop(name: str) -> None:
        message = (f"bulk-transcribe: {name}: stopping — videos in progress are cancelled, finished ones are kept; "
                   "press Ctrl-C again to quit at once")
        if isinstance(live, RichProgress):
            live.note(message)  # above the live bars, which would otherwise draw over it
        else:
            stderr.write(message + "\n")
            stderr.flush()

    # Signals are ours from the first moment (reading lists, checking the model and starting Ray take seconds):
    # before the batch runs, the first one abandons the start (nothing has been processed); once it runs, the first
    # one is a graceful stop and the second exits at once.
    def exit_now(code: int) -> None:
        if isinstance(live, RichProgress):
            live.console.show_cursor(True)  # rich hid it for the bars; os._exit skips rich's own cleanup
        os._exit(code)

    with GracefulStop(on_first=on_stop, raise_first=True, exit_now=exit_now) as stop:
        try:
            prepared = _start_up(args, stdout, stderr, stdin)
        except KeyboardInterrupt:
            stderr.write("bulk-transcribe: stopped before any video started; nothing was lost\n")
            return EXIT_INTERRUPTED
        if isinstance(prepared, int):
            return prepared
        config = prepared.config
        from ..runs import run_batch  # imported by the start-up already

        stop.raise_first = False
        if stop.requested:  # a signal landed between the start-up and here: nothing ran, the run is cancelled
            prepared.store.finish_run(prepared.run_id, "cancelled")
            prepared.release()
            return EXIT_INTERRUPTED
        _describe_start(config, prepared, stdout)
        live = None if args.quiet else live_view(stdout)
        announce = _cluster_announcer(args, stdout)

        def on_snapshot(snapshot) -> None:
            line = announce()
            if line and isinstance(live, RichProgress):
                live.note(line)  # above the live bars
            elif line:
                stdout.write(line + "\n")
            if live is not None:
                live(snapshot)

        try:
            result = run_batch(config, prepared=prepared, on_snapshot=on_snapshot, cancel_event=stop.event)
        finally:
            if live is not None:
                live.close()  # leave the terminal's cursor and last frame in place before anything else prints
                live = None
        tally = result.tally
        if prepared.duplicates:
            stdout.write(f"{len(prepared.duplicates)} duplicate input(s) ignored (each listed once)\n")
        if tally.archived:
            stdout.write(f"{tally.archived} video(s) skipped: already in the download archive\n")
        if tally.recheck:
            stdout.write(f"{tally.recheck} finished video(s) flagged before: transcribed again to recheck them\n")
        if tally.backfill.files or tally.backfill.redo:
            stdout.write(backfill_line(tally.backfill) + "\n")
        # A rerun with everything already done says so in one line (no table of finished videos).
        settled = tally.registered > 0 and tally.registered == tally.done_before + tally.archived
        if settled:
            stdout.write(nothing_to_do(tally.done_before, config.out_dir, tally.archived) + "\n")
        elif tally.done_before:
            stdout.write(f"{tally.done_before} already finished before this run (kept as they were)\n")
        start_up = handover_line(result.handover) if result.handover is not None else None
        if start_up:
            stdout.write(start_up + "\n")
        for warning in result.warnings:
            stderr.write(f"bulk-transcribe: {warning}\n")
        snapshot = prepared.store.snapshot(result.run_id)
        if not settled:
            print_summary(stdout, snapshot, render_table(snapshot, shutil.get_terminal_size((120, 20)).columns))
        if result.error:
            stderr.write(f"bulk-transcribe: the batch stopped: {result.error}\n")
        if not settled:
            stdout.write(f"Transcripts: {config.out_dir.resolve()}\nManifest:    {result.manifest.resolve()}\n")
        stdout.flush()
        if getattr(args, "owns_ray", False) and _ray_still_starting(args):
            # The run ended (a stop, or a short batch) while Ray was still starting: waiting for its start only to
            # stop it took up to a minute. The program leaves at once (see main); the reaper
            # (parallel/reaper.py) ends the Ray processes started so far.
            args.ray_still_starting = True
            stdout.write("Ray was still starting: it stops with this process\n")
            stdout.flush()
            # Closed now, so SQLite folds its write-ahead log into the file: after os._exit a reader opening the
            # store read-only could not replay it, and saw the run still "running".
            prepared.store.close()
        elif getattr(args, "owns_ray", False) and _ray_started(args):
            # Stopped here, while a signal is still a graceful stop: left to Ray's own exit hook, a signal landing
            # in its shutdown found the default handler and ended the CLI with a traceback.
            from ..parallel.cluster import shutdown

            shutdown()
    if stop.requested:
        return EXIT_INTERRUPTED
    return result.exit_code


def _start_up(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: BinaryIO):
    """Read the input lists, check the options and the model, join Ray (parallel), take OUT and register the run:
    the PreparedBatch, or an exit code after an error (said in one line)."""
    from ..inputs.lists import read_batch_files
    from ..runs import prepare_batch, start_cluster

    try:  # read once, up front: pipes, FIFOs and /dev/stdin cannot be read a second time
        args.inputs = [*args.inputs, *read_batch_files(args.input_file, stdin)]
    except ValueError as exc:
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_USAGE
    if args.out.exists() and not args.out.is_dir():
        stderr.write(f"bulk-transcribe: error: --out {args.out} is a file; give a folder (it is created if "
                     "missing)\n")
        return EXIT_USAGE
    if "%(" in str(args.out):  # yt-dlp's -o is the template; here it is the folder
        stderr.write(f"bulk-transcribe: error: --out/-o is the output folder here; {str(args.out)!r} looks like a "
                     "yt-dlp output template: pass it as --output-template\n")
        return EXIT_USAGE
    try:
        config = config_from_args(args).with_env_overrides()
    except ValueError as exc:
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_USAGE
    if not config.inputs:
        stderr.write("bulk-transcribe: error: give at least one INPUT or -a/--batch-file "
                     "(a batch file with no inputs counts as none)\n")
        return EXIT_USAGE

    from ..media.model_check import check_model

    problem = check_model(config.transcribe)  # before Ray or the store: a bad model fails no video
    if problem is None and config.recheck_model:
        problem = check_model(replace(config.transcribe, model=config.recheck_model))
        problem = problem and f"--recheck-model: {problem}"
    if problem:
        stderr.write(f"bulk-transcribe: error: {problem}\n")
        return EXIT_USAGE
    try:
        # Ray's own log lines (token warnings, start-up INFO) go to OUT/logs/ray.log and worker output stays in
        # Ray's session logs unless --verbose: they tore through the progress bars.
        quiet_ray = config.parallel and not getattr(args, "verbose", False)
        log_file = ray_log_file(config.out_dir) if quiet_ray else None
        was_connected = "ray" in sys.modules and sys.modules["ray"].is_initialized()
        # Ray starts in the background (an embedded one takes 15-25 s); an embedded run works in this process
        # meanwhile and hands over to Ray's workers once they are ready (engine/handover.py).
        args.cluster = start_cluster(config, log_file=log_file)
        args.owns_ray = config.parallel and config.ray_address is None and not was_connected
    except Exception as exc:  # noqa: BLE001 — any failure to reach Ray is reported, never a traceback
        where = config.ray_address or "an embedded local Ray"
        stderr.write(f"bulk-transcribe: error: cannot start or reach {where}: {' '.join(str(exc).split())}\n"
                     f"  (rerun without --parallel, or with {PARALLEL_ENV}=0, to run sequentially)\n")
        return EXIT_FAILED
    if args.owns_ray and args.cluster is not None:
        stdout.write("Starting an embedded local Ray in the background; videos start in this process meanwhile\n")
    elif args.owns_ray:
        stdout.write(f"Videos start in this process; an embedded local Ray starts once "
                     f"{_minutes(config.ray_min_audio_s)} of audio waits (it costs ~20 s of every core of a small "
                     f"machine)\n")

    try:
        prepared = prepare_batch(config)
    except FolderBusy as exc:  # two runs on one OUT would do the same work twice
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_FAILED
    except ValueError as exc:  # a download archive that cannot be read: nothing registered
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as exc:  # e.g. OUT is on a full disk: say so instead of a traceback
        stderr.write(f"bulk-transcribe: error: cannot prepare the batch in {config.out_dir}: "
                     f"{getattr(exc, 'strerror', None) or exc}\n")
        return EXIT_FAILED
    return prepared


def _ray_still_starting(args: argparse.Namespace) -> bool:
    from ..parallel import cluster

    future = getattr(args, "cluster", None)
    return (future is not None and not future.done()) or cluster.starting()


def _ray_started(args: argparse.Namespace) -> bool:
    return getattr(args, "cluster", None) is not None or "ray" in sys.modules


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _cluster_announcer(args: argparse.Namespace, stdout: TextIO):
    """Once a Ray this process starts is up (started in the background, or later by the run), one line: its
    dashboard's address; or why it could not start."""
    said = not getattr(args, "owns_ray", False)
    future = getattr(args, "cluster", None)

    def announce() -> str | None:
        nonlocal said
        if said:
            return None
        if future is not None and future.done() and future.exception() is not None:
            said = True
            return f"Ray could not start ({' '.join(str(future.exception()).split())}): the run goes on here"
        from ..parallel import cluster

        if not cluster.is_connected():
            return None
        said = True
        url = cluster.dashboard_url()
        return f"Ray is up; its dashboard: {url}" if url else "Ray is up"

    return announce


def _describe_start(config: RunConfig, prepared, stdout: TextIO) -> None:
    """The run's first line; videos join the live view as their inputs are resolved."""
    mode = config.mode.value
    n = len(config.inputs)
    what = f"{n} input{'' if n == 1 else 's'}"
    stdout.write(f"Run {prepared.run_id} ({mode}): resolving {what}; videos start as soon as they are known\n")
    stdout.flush()


def cmd_status(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..runs import attach_snapshot
    from ..session_manager import SessionStore

    if args.out is None and args.out_option is None:
        stderr.write("bulk-transcribe: error: status needs the batch's output folder: status OUT\n")
        return EXIT_USAGE
    args.out = args.out or args.out_option
    db = layout.state_db(args.out)
    if not db.is_file():
        stderr.write(f"bulk-transcribe: error: no batch in {args.out} (missing {db.name})\n")
        return EXIT_USAGE
    try:
        store = SessionStore(db, read_only=True)  # status never writes: it works on a read-only disk too
        runs = store.runs()
    except (sqlite3.Error, RuntimeError) as exc:
        stderr.write(f"bulk-transcribe: error: cannot read {db}: {exc}\n")
        return EXIT_FAILED
    if not runs:
        stderr.write(f"bulk-transcribe: error: no runs recorded in {args.out}\n")
        return EXIT_USAGE
    run_id = args.run or runs[0].run_id
    run = store.run(run_id)
    if run is None:
        stderr.write(f"bulk-transcribe: error: no run {run_id} in {args.out}\n")
        return EXIT_USAGE
    from .report import status_exit_code, status_json

    snapshot = attach_snapshot(args.out, run_id, args.ray_address)
    if args.json:
        records = store.videos(run_id)
        stdout.write(status_json(run, snapshot, {r.video_id: r.folder for r in records},
                                 {r.video_id: r.quality for r in records}))
    else:
        stdout.write(f"Run {run.run_id} ({run.mode}, {run.status})\n")
        print_summary(stdout, snapshot, render_table(snapshot, shutil.get_terminal_size((120, 20)).columns))
    return status_exit_code(run, snapshot)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: BinaryIO | None = None) -> int:
    # A closed pipe (`| head`) or terminal must never stop a batch: output just goes quiet.
    stdout, stderr = SafeStream(stdout or sys.stdout), SafeStream(stderr or sys.stderr)
    parser = build_parser()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    handler = getattr(args, "handler", None)
    if handler is not None:  # commands whose module registers them (cli/search.py)
        return handler(args, stdout, stderr)
    if args.command == "run":
        if argv is None:
            # The program itself (not a caller in this process): whenever the graceful stop is not listening (before
            # it starts, and in the interpreter's teardown after it, Ray's exit hook among it), a stop signal exits
            # at once, quietly. GracefulStop restores this when it is done.
            exit_on_signal(EXIT_INTERRUPTED)
        code = cmd_run(args, stdout, stderr, stdin or sys.stdin.buffer)
        if argv is None and getattr(args, "ray_still_starting", False):
            # Ray's start is on a thread inside its own C++ code: the interpreter's normal teardown around it can
            # abort ("terminate called without an active exception"). Everything of ours is written and closed.
            stdout.flush()
            stderr.flush()
            os._exit(code)
        return code
    return cmd_status(args, stdout, stderr)
