"""What the CLI shows while a batch runs, drawn with rich.

On a terminal: one bar for the whole batch (with the counts, throughput and ETA above it, wrapped at word
boundaries when the window is narrow) and one bar per video in flight, then a summary table sized to the
window. Not on a terminal (a pipe, a log file, CI): one plain line per status change, and nothing for videos that
were already finished before this run started, so a resumed run does not repeat what is done.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from .. import layout
from ..models import LOCAL_WORKER, Snapshot, VideoStatus
from ..progress import clock, current_work, describe_eta, describe_inputs, describe_progress
from ..quality import review_line

def ray_log_file(out_dir: Path) -> Path:
    """OUT/logs/ray.log (its folder created): for the Ray start-up to send Ray's WARNING/INFO lines to."""
    path = layout.ray_log(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def printable(text: str) -> str:
    """Text safe to print: control characters (escape sequences that retitle the window, recolour the
    terminal or write the clipboard) become '?', and runs of whitespace one space."""
    return " ".join("".join("?" if unicodedata.category(ch)[0] == "C" else ch for ch in text).split())


def headline(snapshot: Snapshot) -> str:
    """'3 of 12 done, 1 failed · 41% of the audio (4:10 of 10:00 transcribed) · 14.2x real time since the start ·
    ETA 1:52': the same progress wording and ETA rule as the dashboard (progress.describe_progress / describe_eta)."""
    counts = snapshot.counts
    n = len(snapshot.videos)
    done = f"{counts.get(VideoStatus.DONE.value, 0)} of {n} done"
    if snapshot.needs_review:
        done += f" ({snapshot.needs_review} need{'s' if snapshot.needs_review == 1 else ''} review)"
    for status in (VideoStatus.FAILED, VideoStatus.CANCELLED, VideoStatus.SKIPPED):
        if counts.get(status.value):
            done += f", {counts[status.value]} {status.value}"
    items = [done, describe_progress(snapshot)]
    resolving = describe_inputs(snapshot)
    if resolving:
        items.insert(1, resolving)
    if snapshot.throughput_x:
        items.append(f"{snapshot.throughput_x:.1f}x real time since the start")  # wall clock, start-up included
    eta = describe_eta(snapshot)
    if eta != "–":
        items.append(f"ETA {eta}")
    return " · ".join(items)


class RichProgress:
    """The live view on a terminal; call it with each Snapshot, then `close()` before printing anything else."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            # markup=False: titles and transcript lines are site text ("Talk [/u/x] 2" would raise, "[link=…]"
            # would become a terminal hyperlink).
            TextColumn("{task.description}", markup=False,
                       table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=None, table_column=Column(ratio=2)),
            TextColumn("{task.percentage:>5.1f}%", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[detail]}", markup=False,
                       table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis")),
            console=console, expand=True, auto_refresh=False,
        )
        self.overall = self.progress.add_task("all videos", total=100, detail="")
        self.tasks: dict[str, TaskID] = {}
        self.head = Text("")
        # No refresh thread: the CLI's loop redraws on each snapshot, which keeps Ctrl-C handling in one thread.
        # Transient: the final table and its headline take the bars' place (left on screen, the headline showed
        # twice, once above the table and once below).
        self.live = Live(Group(self.head, self.progress), console=console, auto_refresh=False, transient=True)
        self._started = False

    def __call__(self, snapshot: Snapshot) -> None:
        if not self._started:
            self.live.start()
            self._started = True
        self.head.plain = headline(snapshot)
        n = len(snapshot.videos)
        self.progress.update(self.overall, completed=snapshot.progress * 100,
                             description=f"{n} video{'' if n == 1 else 's'}" if n else "resolving inputs")
        # One bar per worker's current video (a video fetched ahead is named on its worker's bar, not drawn as
        # work in progress), each at its stage's progress: the figures the dashboard's cards show.
        current, next_up = current_work(snapshot)
        active = {v.video_id: v for v in current}
        for video_id in list(self.tasks):
            if video_id not in active:
                self.progress.remove_task(self.tasks.pop(video_id))
        for video_id, v in active.items():
            speed = f" {v.speed_x:.1f}x" if v.speed_x else ""
            text = printable(v.current_text)
            ahead = next_up.get(v.worker or LOCAL_WORKER, [])
            detail = f"{v.status.value}{speed}" + (f" · {text}" if text else "") + \
                (f" · next: {printable(ahead[0].title)}" if ahead else "")
            if video_id not in self.tasks:
                self.tasks[video_id] = self.progress.add_task(f"  {printable(v.title)}", total=100,
                                                               detail=detail)
            self.progress.update(self.tasks[video_id], completed=(v.stage_progress or 0.0) * 100, detail=detail)
        self.live.refresh()

    def note(self, message: str) -> None:
        """A line printed above the live bars (a stop request), which would otherwise draw over it."""
        self.console.print(printable(message), markup=False, highlight=False)
        if self._started:
            self.live.refresh()

    def close(self) -> None:
        if self._started:
            for task in list(self.tasks.values()):
                self.progress.remove_task(task)
            self.tasks.clear()
            self.live.stop()
            self._started = False


class PlainProgress:
    """One line per status change, for pipes and logs. Videos already finished when the run began are quiet."""

    def __init__(self, stream: TextIO, done_before: frozenset[str] | set[str] = frozenset()) -> None:
        self.stream = stream
        # Videos finished by an earlier run say nothing; everything else (failures found while resolving
        # included) gets its line. Videos join as they are resolved: one first seen done, and done before this
        # view began, was finished by an earlier run.
        self._seen: dict[str, VideoStatus] = {video_id: VideoStatus.DONE for video_id in done_before}
        self._since = time.time()

    def __call__(self, snapshot: Snapshot) -> None:
        lines = []
        for v in snapshot.videos:
            if self._seen.get(v.video_id) == v.status:
                continue
            if (v.video_id not in self._seen and v.status == VideoStatus.DONE and v.finished_at is not None
                    and v.finished_at < self._since):
                self._seen[v.video_id] = v.status
                continue
            self._seen[v.video_id] = v.status
            if v.status == VideoStatus.QUEUED:
                continue
            detail = f": {printable(v.error)}" if v.status == VideoStatus.FAILED and v.error else ""
            if v.status == VideoStatus.DONE and v.note:
                detail = f" (note: {printable(v.note)})"
            title = printable(v.title)
            lines.append(f"[{snapshot.progress:6.1%}] {v.status.value:<12} {title}{detail}\n")
        if lines:
            self.stream.write("".join(lines))
            self.stream.flush()

    def close(self) -> None:
        pass


def console_for(stream: TextIO) -> Console:
    """A console on `stream`: colours and live redraws only on a terminal, width from the window."""
    return Console(file=stream, highlight=False, soft_wrap=False, markup=False)  # site text is never markup


def live_view(stream: TextIO, done_before: frozenset[str] | set[str] = frozenset()) -> RichProgress | PlainProgress:
    console = console_for(stream)
    return RichProgress(console) if console.is_terminal else PlainProgress(stream, done_before)


def summary_table(snapshot: Snapshot, width: int | None = None) -> Table:
    """One row per video (title, duration, status, speed, tries, error), sized to the window: titles and errors
    wrap at word boundaries instead of being cut."""
    table = Table(expand=False, show_edge=False, pad_edge=False, header_style="bold", width=width)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("title", ratio=3, overflow="fold")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("speed", justify="right", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    languages = any(v.language for v in snapshot.videos)
    if languages:
        table.add_column("lang", no_wrap=True)
    table.add_column("error", ratio=3, overflow="fold")
    review = snapshot.needs_review > 0
    if review:
        table.add_column("needs review", ratio=3, overflow="fold", style="magenta")
    notes = any(v.note for v in snapshot.videos)
    if notes:
        table.add_column("note", ratio=2, overflow="fold", style="dim")
    styles = {VideoStatus.DONE: "green", VideoStatus.FAILED: "red", VideoStatus.CANCELLED: "yellow"}
    for n, v in enumerate(snapshot.videos, 1):
        cells = [str(n), Text(printable(v.title)), clock(v.duration_s), Text(v.status.value, style=styles.get(v.status, "")),
                 f"{v.speed_x:.1f}x" if v.speed_x else "-", str(v.attempts),
                 *([v.language or ""] if languages else []), Text(printable(v.error or ""))]
        if review:
            cells.append(Text(printable(review_line(v.flags) if v.needs_review else "")))
        table.add_row(*cells, *([Text(printable(v.note or ""))] if notes else []))
    return table


def print_summary(stream: TextIO, snapshot: Snapshot, plain_table: str) -> None:
    """The final table: rich on a terminal, the plain one otherwise (stable for logs and scripts)."""
    console = console_for(stream)
    if console.is_terminal:
        console.print()
        console.print(summary_table(snapshot))
        console.print(headline(snapshot))
    else:
        stream.write("\n" + plain_table + "\n")


def nothing_to_do(done_before: int, out_dir: Path, archived: int = 0) -> str:
    """The one line a rerun prints when every video is done already (or in the download archive)."""
    if not done_before:
        return f"Nothing to do: every video is already in the download archive ({archived})."
    what = "the video is" if done_before == 1 else f"all {done_before} videos are"
    aside = f", {archived} more in the download archive" if archived else ""
    them = "it" if done_before + archived == 1 else "them"
    return f"Nothing to do: {what} already done in {out_dir}{aside} (bulk-transcribe status {out_dir} shows {them})."
