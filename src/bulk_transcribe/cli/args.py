"""The command line's words: every option of `run` and `status`, grouped and explained, and the RunConfig they
make. Options follow yt-dlp's where both tools have one, so habits carry over."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .. import __version__
from ..config import (
    BUNDLED_MODEL,
    DEFAULT_FORMATS,
    DEFAULT_MAX_FILESIZE,
    DEFAULT_TEMPLATE,
    DEFAULT_WORKERS,
    PARALLEL_ENV,
    DownloadOptions,
    OutputOptions,
    RunConfig,
    TranscribeOptions,
    check_formats,
)


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
    out.add_argument("--output-template", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
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
                       help="spoken language as an ISO code such as de; 'auto' (the default) detects it per video "
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
    model.add_argument("--recheck", action="store_true",
                       help="transcribe flagged transcripts (wrong language, loops, low confidence, speech missing, "
                            "text on silence) again with safer options and keep the better; a rerun rechecks "
                            "videos flagged before")
    model.add_argument("--recheck-model", default=None, metavar="NAME",
                       help="the model a recheck uses, e.g. small or a local folder (implies --recheck; default: "
                            "the run's model)")
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
    status.add_argument("out", type=Path, metavar="OUT", nargs="?", help="the batch's output folder")
    status.add_argument("--out", "-o", dest="out_option", type=Path, default=None, metavar="OUT",
                        help="the same folder, spelled as `run` takes it")
    status.add_argument("--run", default=None, metavar="ID", help="a run id (default: the latest run)")
    status.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="read a live parallel run from this cluster")
    status.add_argument("--json", action="store_true", help="print the run and its videos as JSON, for scripts")
    from .search import add_parsers as add_search_parsers

    add_search_parsers(sub)  # search, index
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        inputs=tuple(args.inputs),
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
            beam_size=args.beam_size, language=None if args.language in (None, "auto") else args.language,
            task=args.task, vad_filter=args.vad,
            word_timestamps=args.word_timestamps, timeout_factor=args.timeout_factor, batch_size=args.batch_size,
        ),
        parallel=args.parallel,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        ray_address=args.ray_address,
        max_attempts=args.max_attempts,
        recheck=args.recheck or bool(args.recheck_model),
        recheck_model=args.recheck_model,
        download_archive=str(args.download_archive) if args.download_archive else None,
        output=OutputOptions(
            template=args.output_template, beside_source=args.subtitles_beside_source,
            max_line_width=args.max_line_width, max_line_count=args.max_line_count,
        ),
    )
