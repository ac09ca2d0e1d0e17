"""`bulk-transcribe`: run a batch headless, or show the state of one.

Exit codes: 0 every video done, 1 any video failed (the others still finished), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import contextlib
import re
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import BinaryIO, Sequence, TextIO

from .. import __version__, layout
from ..config import (
    BUNDLED_MODEL,
    DEFAULT_FORMATS,
    DEFAULT_MAX_FILESIZE,
    DEFAULT_WORKERS,
    PARALLEL_ENV,
    DownloadOptions,
    OutputOptions,
    RunConfig,
    TranscribeOptions,
    check_formats,
)
from .signals import GracefulStop, SafeStream
from ..models import Snapshot, VideoStatus
from ..session_manager import FolderBusy
from .live import RichProgress, live_view, nothing_to_do, print_summary, printable, ray_log_file

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """'500K', '2M', '1.5G' or plain bytes -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)i?[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use bytes, or a number with K, M or G)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_formats(text: str) -> tuple[str, ...]:
    try:
        return check_formats(text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


RUN_EPILOG = """\
examples:
  a playlist or channel (rerun the same command to resume after a stop):
    bulk-transcribe run "https://www.youtube.com/playlist?list=PL..." --out talks
  a list file with one URL or path per line, or a list on stdin:
    bulk-transcribe run -a urls.txt --out talks
    grep -h youtube.com notes/*.md | bulk-transcribe run -a - --out talks
  a folder of recordings, subtitles written next to each video:
    bulk-transcribe run ~/Videos/lectures --formats srt --subtitles-beside-source
  a podcast feed in parallel on a Ray cluster, four GPU workers:
    bulk-transcribe run https://example.com/feed.rss --parallel --ray-address auto --workers 4
  only what is new since last time (yt-dlp's archive format), politely:
    bulk-transcribe run CHANNEL_URL --download-archive seen.txt --sleep-requests 1 --min-sleep-interval 5
  see how a batch stands, or feed it to a script:
    bulk-transcribe status talks
    bulk-transcribe status talks --json | jq .run.counts

exit status: 0 every video done, 1 some video failed (the others finished), 2 bad usage, 130 interrupted.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wider option column than argparse's default, examples kept as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def _browser_spec(text: str) -> tuple[str, str | None, str | None, str | None]:
    """yt-dlp's BROWSER[+KEYRING][:PROFILE][::CONTAINER] -> its `cookiesfrombrowser` tuple, checked the same way."""
    from yt_dlp.cookies import SUPPORTED_BROWSERS, SUPPORTED_KEYRINGS

    match = re.fullmatch(r"(?P<name>[^+:]+)(?:\s*\+\s*(?P<keyring>[^:]+))?(?:\s*:\s*(?!:)(?P<profile>.+?))?"
                         r"(?:\s*::\s*(?P<container>.+))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a browser specification: {text!r}")
    name, keyring, profile, container = match.group("name", "keyring", "profile", "container")
    name = name.lower()
    if name not in SUPPORTED_BROWSERS:
        raise argparse.ArgumentTypeError(f"unsupported browser {name!r}; choose from "
                                         f"{', '.join(sorted(SUPPORTED_BROWSERS))}")
    if keyring is not None:
        keyring = keyring.upper()
        if keyring not in SUPPORTED_KEYRINGS:
            raise argparse.ArgumentTypeError(f"unsupported keyring {keyring!r}; choose from "
                                             f"{', '.join(sorted(SUPPORTED_KEYRINGS))}")
    return name, profile, keyring, container


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulk-transcribe", formatter_class=_HelpFormatter,
        description="Transcribe many videos at once: URLs (anything yt-dlp knows: videos, playlists, channels,\n"
                    "RSS feeds), files and folders, to txt/srt/vtt/json. `bulk-transcribe run --help` for options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="transcribe a batch (rerun the same command to resume)", formatter_class=_HelpFormatter,
        description="Transcribe a batch into OUT. State is kept in OUT: rerunning the same command resumes,\n"
                    "skipping what is done and retrying what failed.",
        epilog=RUN_EPILOG,
    )
    run.add_argument("inputs", nargs="*", metavar="INPUT",
                     help="a video, playlist, channel or feed URL, a media file, or a folder (searched recursively)")

    inp = run.add_argument_group("input")
    inp.add_argument("-a", "--batch-file", "--input-file", dest="input_file", action="append", default=[],
                     metavar="FILE",
                     help="more inputs from FILE, one per line ('-' reads stdin; lines starting with #, ; or ] "
                          "are comments); repeatable")
    inp.add_argument("--playlist-items", default=None, metavar="SPEC",
                     help="only these playlist entries, as yt-dlp takes them: '1,3,5-7', '-10:', '::2'")
    inp.add_argument("--match-filter", default=None, metavar="FILTER",
                     help="only entries matching a yt-dlp filter, e.g. \"duration > 600 & title ~= '(?i)talk'\"")
    inp.add_argument("--download-archive", default=None, type=Path, metavar="FILE",
                     help="skip videos listed in FILE and add each one that finishes (yt-dlp's archive format, "
                          "so both tools can share one)")

    out = run.add_argument_group("output")
    out.add_argument("-o", "--out", default="transcripts", type=Path, metavar="OUT",
                     help="output folder; it also holds the state that makes reruns resume (default: ./transcripts)")
    out.add_argument("--formats", default=",".join(DEFAULT_FORMATS), type=parse_formats, metavar="LIST",
                     help=f"comma-separated, from {', '.join(DEFAULT_FORMATS)} (default: all four); a rerun with "
                          "more formats writes them for finished videos without transcribing again")
    out.add_argument("--output-template", default=OutputOptions().template, metavar="TEMPLATE",
                     help="where each file goes inside OUT, in yt-dlp's -o style; fields: title, id, uploader, "
                          "upload_date, playlist, playlist_index, ext (default: '%%(title)s/transcript.%%(ext)s')")
    out.add_argument("--subtitles-beside-source", action="store_true",
                     help="also write NAME.srt / NAME.vtt next to a local NAME.mp4, where players look for them")
    out.add_argument("--max-line-width", type=_positive_int, default=None, metavar="N",
                     help="wrap srt/vtt lines at N characters (a word is never cut)")
    out.add_argument("--max-line-count", type=_positive_int, default=None, metavar="N",
                     help="at most N lines per srt/vtt cue; needs --max-line-width")

    model = run.add_argument_group("model")
    model.add_argument("--model", default=BUNDLED_MODEL, metavar="NAME",
                       help="'bundled' (tiny.en, English-only, works offline; the default), a local CTranslate2 "
                            "folder, or a faster-whisper name such as small or large-v3")
    model.add_argument("--language", default=None, metavar="CODE",
                       help="spoken language as an ISO code such as de; detected when not given "
                            "(English-only models accept only en)")
    model.add_argument("--task", default="transcribe", choices=["transcribe", "translate"],
                       help="translate: speech in any language to English text (multilingual models only)")
    model.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where the model runs; auto picks CUDA when a GPU is visible")
    model.add_argument("--compute-type", default="default", metavar="TYPE",
                       help="CTranslate2 precision: int8, int8_float16, float16, float32 "
                            "(default: int8 on CPU, float16 on CUDA)")
    model.add_argument("--cpu-threads", type=int, default=0, metavar="N",
                       help="threads per model on CPU (default: every core this process may use)")
    model.add_argument("--beam-size", type=_positive_int, default=1, metavar="N",
                       help="beam search width; 1 is greedy decoding, the fastest (default: 1)")
    model.add_argument("--vad", action="store_true", help="skip silence with the Silero VAD filter")
    model.add_argument("--word-timestamps", action="store_true",
                       help="time every word (in the JSON, and for shaping subtitle lines)")
    model.add_argument("--batch-size", type=int, default=0, metavar="N",
                       help="30 s chunks decoded together (faster-whisper's batched pipeline: a GPU speed-up); "
                            "1 = unbatched; 0 = per device: unbatched on CPU, 8 on CUDA (default: 0)")
    model.add_argument("--timeout-factor", type=float, default=TranscribeOptions().timeout_factor, metavar="X",
                       help="fail a transcription running longer than X times the audio's length plus a minute, "
                            f"then retry it with VAD; 0 = never (default: {TranscribeOptions().timeout_factor:g})")

    dl = run.add_argument_group("download (per video; pacing holds across the whole cluster in parallel mode)")
    dl.add_argument("--rate-limit", "-r", type=parse_size, default=None, metavar="RATE",
                    help="download speed cap per download in bytes per second, e.g. 500K or 2M (default: none)")
    dl.add_argument("--min-sleep-interval", "--sleep-interval", "--sleep", dest="sleep", type=_seconds, default=0.0,
                    metavar="S", help="pause at least S seconds between the starts of two downloads (default: 0)")
    dl.add_argument("--max-sleep-interval", type=_seconds, default=None, metavar="S",
                    help="with --min-sleep-interval: pause a random time between the two, as yt-dlp does")
    dl.add_argument("--sleep-requests", type=_seconds, default=0.0, metavar="S",
                    help="pause S seconds between the requests that list playlists and pages (default: 0)")
    dl.add_argument("--retries", type=int, default=3, metavar="N",
                    help="retries of a download after a transient error: reset, HTTP 5xx, 429 (default: 3)")
    dl.add_argument("--socket-timeout", type=_seconds, default=30.0, metavar="S",
                    help="give up on a connection silent for S seconds (default: 30)")
    dl.add_argument("--cookies", default=None, metavar="FILE", help="Netscape-format cookies file, as for yt-dlp")
    dl.add_argument("--cookies-from-browser", type=_browser_spec, default=None,
                    metavar="BROWSER[+KEYRING][:PROFILE][::CONTAINER]",
                    help="take cookies from a browser on this machine, as yt-dlp does (e.g. firefox, chrome:Profile 1)")
    dl.add_argument("--max-filesize", type=parse_size, default=DEFAULT_MAX_FILESIZE, metavar="SIZE",
                    help="refuse media larger than SIZE, e.g. 500M or 2G; 0 = no cap (default: 1G)")
    dl.add_argument("--keep-audio", action="store_true", help="keep the downloaded audio under OUT/audio")
    dl.add_argument("--max-attempts", type=_positive_int, default=2, metavar="N",
                    help="attempts per video, download and transcription together, before it fails (default: 2)")

    par = run.add_argument_group("parallel (Ray)")
    mode = par.add_mutually_exclusive_group()
    mode.add_argument("--parallel", dest="parallel", action="store_true", default=False,
                      help=f"run on Ray actors; the environment variable {PARALLEL_ENV}=0|1 overrides this flag")
    mode.add_argument("--sequential", dest="parallel", action="store_false",
                      help="one video at a time in this process (the default)")
    par.add_argument("--workers", type=_positive_int, default=DEFAULT_WORKERS, metavar="N",
                     help=f"workers each holding a model (default: {DEFAULT_WORKERS})")
    par.add_argument("--gpus-per-worker", type=float, default=1.0, metavar="X",
                     help="GPU share per worker; 0.5 packs two workers on one GPU (default: 1)")
    par.add_argument("--ray-address", default=None, metavar="ADDRESS",
                     help="join a cluster: auto, HOST:PORT or ray://HOST:10001 (default: start a local Ray)")

    show = run.add_argument_group("display")
    show.add_argument("-q", "--quiet", action="store_true", help="no live progress, only the summary")
    show.add_argument("-v", "--verbose", action="store_true",
                      help="show Ray's own log lines on the terminal (otherwise they go to OUT/logs/ray.log)")

    status = sub.add_parser("status", help="show the videos and state of a batch", formatter_class=_HelpFormatter,
                            description="Show a batch's latest run (or --run ID). Exit status: 0 when no video\n"
                                        "failed or was cancelled, 1 otherwise, 2 when OUT holds no batch.")
    status.add_argument("out", type=Path, metavar="OUT", help="the batch's output folder")
    status.add_argument("--run", default=None, metavar="ID", help="a run id (default: the latest run)")
    status.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="read a live parallel run from this cluster")
    status.add_argument("--json", action="store_true", help="print the run and its videos as JSON, for scripts")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        inputs=tuple(args.inputs),
        input_files=tuple(args.input_file),
        out_dir=args.out,
        formats=args.formats,
        download=DownloadOptions(
            rate_limit=args.rate_limit, sleep_s=args.sleep, max_sleep_s=args.max_sleep_interval,
            sleep_requests_s=args.sleep_requests, retries=args.retries,
            socket_timeout_s=args.socket_timeout, cookies_file=args.cookies,
            cookies_from_browser=args.cookies_from_browser, max_filesize=args.max_filesize or None,
            keep_audio=args.keep_audio, playlist_items=args.playlist_items, match_filter=args.match_filter,
        ),
        transcribe=TranscribeOptions(
            model=args.model, device=args.device, compute_type=args.compute_type, cpu_threads=args.cpu_threads,
            beam_size=args.beam_size, language=args.language, task=args.task, vad_filter=args.vad,
            word_timestamps=args.word_timestamps, timeout_factor=args.timeout_factor, batch_size=args.batch_size,
        ),
        parallel=args.parallel,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        ray_address=args.ray_address,
        max_attempts=args.max_attempts,
        download_archive=str(args.download_archive) if args.download_archive else None,
        output=OutputOptions(
            template=args.output_template, beside_source=args.subtitles_beside_source,
            max_line_width=args.max_line_width, max_line_count=args.max_line_count,
        ),
    )


# ---------------------------------------------------------------------------------------------------- rendering


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def render_table(snapshot: Snapshot, width: int = 120) -> str:
    """The final summary (and `status`): one line per video, then the totals."""
    title_w = max(16, width - 78)
    lines = [f"{'#':>3}  {'title':<{title_w}} {'duration':>8} {'status':<12} {'speed':>7} {'tries':>5}  error"]
    for n, v in enumerate(snapshot.videos, 1):
        speed = f"{v.speed_x:.1f}x" if v.speed_x else "-"
        lines.append(
            f"{n:>3}  {_shorten(printable(v.title), title_w):<{title_w}} {_clock(v.duration_s):>8} {v.status.value:<12} "
            f"{speed:>7} {v.attempts:>5}  {_shorten(printable(v.error or ''), 60)}"
        )
    lines.append(summary_line(snapshot))
    return "\n".join(lines)


def summary_line(snapshot: Snapshot) -> str:
    counts = snapshot.counts
    parts = [f"{counts.get(s.value, 0)} {s.value}" for s in VideoStatus if counts.get(s.value, 0)]
    speed = f", {snapshot.throughput_x:.1f}x real time" if snapshot.throughput_x else ""
    n = len(snapshot.videos)
    return (f"{n} video{'' if n == 1 else 's'}: {', '.join(parts) or 'none'}; "
            f"audio {_clock(snapshot.audio_done_s)} / {_clock(snapshot.audio_total_s)}{speed}")


def backfill_line(backfill) -> str:
    parts = []
    if backfill.files:
        parts.append(f"wrote {backfill.files} missing output(s) for {backfill.videos} finished video(s) "
                     "from their stored transcripts")
    if backfill.unavailable:
        parts.append(f"{len(backfill.unavailable)} finished video(s) have no stored transcript for the new "
                     "formats (delete their folder and rerun to transcribe them again)")
    return "; ".join(parts).capitalize()


# ---------------------------------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..runs import run_batch

    if "%(" in str(args.out):  # yt-dlp's -o is the template; here it is the folder
        stderr.write(f"bulk-transcribe: error: --out/-o is the output folder here; {str(args.out)!r} looks like a "
                     "yt-dlp output template: pass it as --output-template\n")
        return EXIT_USAGE
    try:
        config = config_from_args(args).with_env_overrides()
    except ValueError as exc:
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_USAGE
    if not config.inputs and not config.input_files:
        stderr.write("bulk-transcribe: error: give at least one INPUT or -a/--batch-file "
                     "(a batch file with no inputs counts as none)\n")
        return EXIT_USAGE

    from ..media.model_check import check_model

    problem = check_model(config.transcribe)  # before Ray or the store: a bad model fails no video
    if problem:
        stderr.write(f"bulk-transcribe: error: {problem}\n")
        return EXIT_USAGE

    live = None

    def on_stop(name: str) -> None:
        message = (f"bulk-transcribe: {name}: stopping — videos in progress are cancelled, finished ones are kept; "
                   "press Ctrl-C again to quit at once")
        if isinstance(live, RichProgress):
            live.note(message)  # above the live bars, which would otherwise draw over it
        else:
            stderr.write(message + "\n")
            stderr.flush()

    # Signals are ours from here on: before the batch runs, the first one abandons the start (nothing has been
    # processed); once it runs, the first one is a graceful stop and the second exits at once.
    def exit_now(code: int) -> None:
        if isinstance(live, RichProgress):
            live.console.show_cursor(True)  # rich hid it for the bars; os._exit skips rich's own cleanup
        os._exit(code)

    with GracefulStop(on_first=on_stop, raise_first=True, exit_now=exit_now) as stop:
        try:
            prepared = _start_up(config, args, stdout, stderr)
        except KeyboardInterrupt:
            stderr.write("bulk-transcribe: stopped before any video started; nothing was lost\n")
            return EXIT_INTERRUPTED
        if isinstance(prepared, int):
            return prepared
        stop.raise_first = False
        if stop.requested:  # a signal landed between the start-up and here: nothing ran, the run is cancelled
            prepared.store.finish_run(prepared.run_id, "cancelled")
            prepared.release()
            return EXIT_INTERRUPTED
        _describe_start(config, prepared, stdout)
        live = None if args.quiet else live_view(stdout)
        try:
            result = run_batch(config, prepared=prepared, on_snapshot=live, cancel_event=stop.event)
        finally:
            if live is not None:
                live.close()  # leave the terminal's cursor and last frame in place before anything else prints
                live = None
        tally = result.tally
        if prepared.duplicates:
            stdout.write(f"{len(prepared.duplicates)} duplicate input(s) ignored (each listed once)\n")
        if tally.archived:
            stdout.write(f"{tally.archived} video(s) skipped: already in the download archive\n")
        if tally.backfill.files or tally.backfill.unavailable:
            stdout.write(backfill_line(tally.backfill) + "\n")
        # A rerun with everything already done says so in one line (no table of finished videos).
        settled = tally.registered == tally.done_before and (tally.registered > 0 or tally.archived > 0)
        if settled:
            stdout.write(nothing_to_do(tally.registered, config.out_dir, tally.archived) + "\n")
        elif tally.done_before:
            stdout.write(f"{tally.done_before} already finished before this run (kept as they were)\n")

        if config.download_archive:
            from ..inputs.archive import record_finished

            try:
                record_finished(Path(config.download_archive), prepared.store.videos(result.run_id))
            except OSError as exc:
                stderr.write(f"bulk-transcribe: cannot update the download archive {config.download_archive}: "
                             f"{exc.strerror or exc}\n")
        snapshot = prepared.store.snapshot(result.run_id)
        if not settled:
            print_summary(stdout, snapshot, render_table(snapshot, shutil.get_terminal_size((120, 20)).columns))
        if result.error:
            stderr.write(f"bulk-transcribe: the batch stopped: {result.error}\n")
        if not settled:
            stdout.write(f"Transcripts: {config.out_dir.resolve()}\nManifest:    {result.manifest.resolve()}\n")
        stdout.flush()
    if stop.requested:
        return EXIT_INTERRUPTED
    return result.exit_code


def _start_up(config: RunConfig, args: argparse.Namespace, stdout: TextIO, stderr: TextIO):
    """Join Ray (parallel), take OUT and register the run: the PreparedBatch, or an exit code after an error."""
    from ..runs import join_cluster, prepare_batch

    try:
        # Ray's own log lines (token warnings, start-up INFO) go to OUT/logs/ray.log and worker output stays in
        # Ray's session logs unless --verbose: they tore through the progress bars.
        quiet_ray = config.parallel and not getattr(args, "verbose", False)
        log_file = ray_log_file(config.out_dir) if quiet_ray else None
        if config.parallel and not config.ray_address:
            stdout.write("Starting an embedded local Ray…\n")
            stdout.flush()
        info = join_cluster(config, log_file=log_file)
    except Exception as exc:  # noqa: BLE001 — any failure to reach Ray is reported, never a traceback
        where = config.ray_address or "an embedded local Ray"
        stderr.write(f"bulk-transcribe: error: cannot start or reach {where}: {' '.join(str(exc).split())}\n"
                     f"  (rerun without --parallel, or with {PARALLEL_ENV}=0, to run sequentially)\n")
        return EXIT_FAILED
    if info is not None and info.dashboard_url:
        stdout.write(f"Ray dashboard: {info.dashboard_url}\n")

    try:
        prepared = prepare_batch(config)
    except FolderBusy as exc:  # two runs on one OUT would do the same work twice
        stderr.write(f"bulk-transcribe: error: {exc}\n")
        return EXIT_FAILED
    except (OSError, sqlite3.Error) as exc:  # e.g. OUT is on a full disk: say so instead of a traceback
        stderr.write(f"bulk-transcribe: error: cannot prepare the batch in {config.out_dir}: "
                     f"{getattr(exc, 'strerror', None) or exc}\n")
        return EXIT_FAILED
    return prepared


def _describe_start(config: RunConfig, prepared, stdout: TextIO) -> None:
    """The run's first line; videos join the live view as their inputs are resolved."""
    mode = config.mode.value
    n = len(config.inputs) + len(config.input_files)
    what = f"{n} input{'' if n == 1 else 's'}" if not config.input_files else "inputs from batch files"
    stdout.write(f"Run {prepared.run_id} ({mode}): resolving {what}; videos start as soon as they are known\n")
    stdout.flush()


def cmd_status(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..runs import attach_snapshot
    from ..session_manager import SessionStore

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
        stdout.write(status_json(run, snapshot, {r.video_id: r.folder for r in store.videos(run_id)}))
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
    if args.command == "run":
        from ..inputs.lists import read_batch_files

        try:  # read once, up front: pipes, FIFOs and /dev/stdin cannot be read a second time
            args.inputs = [*args.inputs, *read_batch_files(args.input_file, stdin or sys.stdin.buffer)]
        except ValueError as exc:
            stderr.write(f"bulk-transcribe: error: {exc}\n")
            return EXIT_USAGE
        args.input_file = []
        return cmd_run(args, stdout, stderr)
    return cmd_status(args, stdout, stderr)


if __name__ == "__main__":
    sys.exit(main())
