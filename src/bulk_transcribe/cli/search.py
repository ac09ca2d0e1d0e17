"""`bulk-transcribe search` and `bulk-transcribe index`: where was something said, across output folders.

    search QUERY [OUT...]   each hit: title, time, the words around the match (marked), a link to the moment
    index OUT...            build the index of folders transcribed before it existed (runs index as they go)

Exit codes (search): 0 hits, 1 no hits, 2 bad usage (no such OUT, no batch in it, nothing to search for).
Exit codes (index): 0 every finished video indexed, 1 some could not be (busy folder, transcripts gone), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Sequence, TextIO

from rich.text import Text

from .. import layout
from ..library import lookup
from ..library.rebuild import Reindexed, reindex
from .live import console_for, printable

EXIT_HITS, EXIT_NONE, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = Path("transcripts")
"""The folder searched when none is named: `run -o`'s default."""

MATCH_STYLE = "bold yellow"
"""How a match stands out on a terminal (in a pipe it is marked «like this» instead)."""

SEARCH_EPILOG = """\
query syntax:
  climate change          both words, anywhere in the segment
  "climate change"        the exact phrase
  climat*                 any word starting with climat
  climate OR weather, climate NOT politics, NEAR(climate change, 5), (a OR b) AND c
  Anything else is read as plain words: c++, -politics (left out), a stray " are fine
  (a query that is one word starting with '-' goes after --: bulk-transcribe search -- -x).

examples:
  bulk-transcribe search "interest rates"                  # in ./transcripts
  bulk-transcribe search budget talks podcasts --limit 50  # in two output folders
  bulk-transcribe search 'NEAR(tax cut, 3)' talks --json | jq -r '.hits[].link'
  bulk-transcribe index old-talks                          # a folder transcribed before search existed

exit status: 0 hits found, 1 none, 2 bad usage (no such OUT, no batch in it, nothing to search for).
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=34)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= lookup.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {lookup.MAX_LIMIT}")
    return value


def add_parsers(subparsers) -> None:
    """Register `search` and `index` on the CLI's subparsers; each sets `handler` to its command function."""
    search = subparsers.add_parser(
        "search", help="find where something was said, across output folders", formatter_class=_formatter,
        description="Search the transcripts of one or more output folders. Each hit: the video's title, the time,\n"
                    "the words around the match, and a link that starts playing there.",
        epilog=SEARCH_EPILOG,
    )
    search.add_argument("query", metavar="QUERY", help="what to look for (quote it when it has spaces)")
    search.add_argument("outs", nargs="*", type=Path, metavar="OUT",
                        help=f"output folders to search (default: ./{DEFAULT_OUT})")
    search.add_argument("--limit", "-n", type=_limit, default=lookup.DEFAULT_LIMIT, metavar="N",
                        help=f"show at most N hits, best first (default: {lookup.DEFAULT_LIMIT})")
    search.add_argument("--run", default=None, metavar="ID", help="only videos transcribed by this run")
    search.add_argument("--language", default=None, metavar="CODE", help="only transcripts in this language, e.g. de")
    search.add_argument("--json", action="store_true", help="print the hits as JSON, for scripts")
    search.set_defaults(handler=cmd_search)

    index = subparsers.add_parser(
        "index", help="build the search index of folders transcribed before it existed", formatter_class=_formatter,
        description="Build (or rebuild) the search index of each OUT from the transcripts it holds. Runs index\n"
                    "each video as it finishes; this is for folders transcribed before that, or to start over.",
    )
    index.add_argument("outs", nargs="+", type=Path, metavar="OUT", help="output folders to index")
    index.set_defaults(handler=cmd_index)


def _batch_problem(out: Path) -> str | None:
    """Why `out` is not an output folder to search or index (one line), or None."""
    if not out.exists():
        return f"no such folder: {out}"
    if not out.is_dir():
        return f"not a folder: {out}"
    db = layout.state_db(out)
    if not db.is_file():
        return f"no batch in {out} (missing {db.name})"
    return None


# ---- search -------------------------------------------------------------------------------------------------------

def cmd_search(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    outs = list(args.outs) or [DEFAULT_OUT]
    for out in outs:
        problem = _batch_problem(out)
        if problem:
            stderr.write(f"bulk-transcribe: error: {problem}\n")
            return EXIT_USAGE
    result = lookup.find(outs, args.query, limit=args.limit, run=args.run, language=args.language)
    if result.error:
        stderr.write(f"bulk-transcribe: error: {result.error}\n")
        return EXIT_USAGE
    for line in result.problems:
        stderr.write(f"bulk-transcribe: {printable(line)}\n")
    for line in result.notes:
        stderr.write(f"bulk-transcribe: note: {printable(line)}\n")
    if args.json:
        stdout.write(json.dumps({"query": result.query.text if result.query else args.query,
                                 "hits": [hit.to_dict() for hit in result.hits],
                                 "notes": result.notes, "problems": result.problems},
                                ensure_ascii=False, indent=2) + "\n")
    else:
        write_hits(stdout, result.hits, several=len(outs) > 1)
    if not result.hits:
        if not args.json:
            where = f"{len(outs)} folders" if len(outs) > 1 else str(outs[0])
            stderr.write(f"bulk-transcribe: no hits for {printable(args.query)!r} in {where}\n")
        return EXIT_NONE
    return EXIT_HITS


def write_hits(stream: TextIO, hits: Sequence[lookup.Hit], *, several: bool = False) -> None:
    """Each hit as three lines: `title · 1:23`, the snippet, the link. On a terminal the matches are styled; in a
    pipe they are marked «like this». Everything from outside (titles, words, paths) goes through `printable`."""
    console = console_for(stream)
    for hit in hits:
        where = f"  ({printable(hit.out_dir.name)})" if several else ""
        head = f"{printable(hit.title)} · {hit.at}{where}"
        link = printable(hit.link) if hit.link else printable(hit.source)
        if console.is_terminal:
            snippet = Text("  ")
            for piece, matched in hit.parts:
                snippet.append(_piece(piece), style=MATCH_STYLE if matched else "")
            console.print(Text(head, style="bold"), highlight=False)
            console.print(snippet, highlight=False)
            console.print(Text(f"  {link}", style="cyan"), highlight=False)
        else:
            stream.write(f"{head}\n  {printable(hit.snippet)}\n  {link}\n")
    stream.flush()


def _piece(text: str) -> str:
    """`printable` for a piece of a snippet: the space at either edge kept (it separates it from the next piece)."""
    inner = printable(text)
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() and inner else ""
    return lead + inner + trail


# ---- index --------------------------------------------------------------------------------------------------------

def cmd_index(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..folder_lock import FolderBusy

    for out in args.outs:
        problem = _batch_problem(out)
        if problem:
            stderr.write(f"bulk-transcribe: error: {problem}\n")
            return EXIT_USAGE
    code = EXIT_HITS
    for out in args.outs:
        try:
            done = reindex(out)
        except FolderBusy as exc:
            stderr.write(f"bulk-transcribe: error: {exc}\n")
            code = EXIT_NONE
            continue
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
            stderr.write(f"bulk-transcribe: error: cannot index {out}: {reason}\n")
            code = EXIT_NONE
            continue
        stdout.write(index_line(done) + "\n")
        if done.missing:
            code = EXIT_NONE
            titles = ", ".join(printable(title) for _, title in done.missing[:5])
            more = f" and {len(done.missing) - 5} more" if len(done.missing) > 5 else ""
            stderr.write(f"bulk-transcribe: {len(done.missing)} finished video(s) in {out} have no transcript left "
                         f"to index (neither {layout.STORED_DIR_NAME}/ nor a json output): {titles}{more}\n")
    stdout.flush()
    return code


def index_line(done: Reindexed) -> str:
    n = done.videos
    return (f"{done.out_dir}: indexed {n} finished video{'' if n == 1 else 's'} "
            f"({done.segments} segment{'' if done.segments == 1 else 's'})")
