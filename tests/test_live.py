"""The live view and summary: bars and table sized to the window, plain lines off a terminal, quiet reruns."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from bulk_transcribe.cli import main
from bulk_transcribe.models import Snapshot, VideoProgress, VideoStatus
from bulk_transcribe.cli.live import PlainProgress, RichProgress, ray_log_file, summary_table

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG = "A rather long lecture title about transcription pipelines and distributed systems in practice"


def _snapshot(statuses: list[VideoStatus], *, eta: float | None = 112.0) -> Snapshot:
    videos = []
    for n, status in enumerate(statuses):
        videos.append(VideoProgress(
            video_id=f"v{n}", title=f"{LONG} {n}\x1b]0;pwned\x07", source=f"/m/{n}.mp4", duration_s=600.0,
            status=status, progress=0.4 if status.is_active else (1.0 if status.is_terminal else 0.0),
            speed_x=14.2 if status.is_active else None, current_text="and so my fellow Americans ask not",
            worker=f"worker-{n}" if status.is_active else "",
            error="download stalled: below 1 KB/s for 60 s" if status == VideoStatus.FAILED else None))
    counts = {s.value: sum(1 for v in videos if v.status == s) for s in VideoStatus}
    return Snapshot(run_id="r", videos=videos, counts=counts, audio_total_s=600.0 * len(videos),
                    audio_done_s=250.0 * len(videos), throughput_x=14.2, eta_s=eta, started_at=0.0,
                    finished_at=None)


def _lines(console_file: io.StringIO) -> list[str]:
    return [ANSI.sub("", line) for line in console_file.getvalue().replace("\r", "\n").split("\n")]


@pytest.mark.parametrize("width", [60, 130])
def test_live_view_fits_the_window_and_keeps_the_eta_whole(width):
    buffer = io.StringIO()
    view = RichProgress(Console(file=buffer, force_terminal=True, width=width, color_system=None))
    view(_snapshot([VideoStatus.DONE, VideoStatus.TRANSCRIBING, VideoStatus.DOWNLOADING, VideoStatus.QUEUED,
                    VideoStatus.FAILED]))
    view.close()
    lines = [line for line in _lines(buffer) if line.strip()]
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    text = " ".join(" ".join(lines).split())
    # The headline wraps between words rather than losing its end (the old view cut "…real time E…").
    assert "ETA 1:52" in text and "14.2x real time" in text and "1 of 5 done, 1 failed" in text
    assert sum("transcribing" in line or "downloading" in line for line in lines) == 2  # a bar per worker
    assert "\x1b]0;" not in buffer.getvalue() and "\x07" not in buffer.getvalue()  # no raw escape from a title


def test_summary_table_wraps_titles_at_words_within_the_width():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=70, color_system=None)
    console.print(summary_table(_snapshot([VideoStatus.DONE, VideoStatus.FAILED], eta=None)))
    lines = _lines(buffer)
    assert all(len(line) <= 70 for line in lines)
    words = " ".join(lines).split()
    for word in LONG.split():  # every word of the title is there whole
        assert word in words
    assert "stalled:" in words and "done" in words and "failed" in words


def test_plain_lines_say_only_what_changed_in_this_run():
    buffer = io.StringIO()
    settled = _snapshot([VideoStatus.DONE] * 12 + [VideoStatus.QUEUED])
    view = PlainProgress(buffer, {v.video_id for v in settled.videos[:12]})
    view(settled)
    assert buffer.getvalue() == ""  # twelve videos done in an earlier run: nothing to say about them
    settled.videos[-1].status = VideoStatus.TRANSCRIBING
    view(settled)
    settled.videos[-1].status = VideoStatus.DONE
    view(settled)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2 and "transcribing" in lines[0] and "done" in lines[1]
    assert "\x1b" not in buffer.getvalue() and "?" in lines[0]


def test_a_failure_found_before_the_first_redraw_still_gets_its_line():
    buffer = io.StringIO()
    PlainProgress(buffer)(_snapshot([VideoStatus.FAILED, VideoStatus.QUEUED]))
    assert "failed" in buffer.getvalue() and "download stalled" in buffer.getvalue()


def test_ray_log_file_lives_in_out(tmp_path):
    path = ray_log_file(tmp_path / "out")
    assert path == tmp_path / "out" / "logs" / "ray.log" and path.parent.is_dir()


def test_a_rerun_with_nothing_to_do_says_so_in_one_line(tmp_path, speech_clips):
    clips = [str(speech_clips["weather"].path), str(speech_clips["library"].path)]
    out = tmp_path / "out"
    first, err = io.StringIO(), io.StringIO()
    assert main(["run", *clips, "--out", str(out), "--formats", "txt", "--cpu-threads", "2"], stdout=first,
                stderr=err) == 0, err.getvalue()
    assert first.getvalue().count("] done") == 2 and "Manifest:" in first.getvalue()
    again = io.StringIO()
    assert main(["run", *clips, "--out", str(out), "--formats", "txt"], stdout=again, stderr=err) == 0
    lines = again.getvalue().splitlines()
    assert lines[-1].startswith("Nothing to do: all 2 videos are already done in")
    assert len(lines) == 2  # the run line and that one: no "[100.0%] done" per video, no table


def test_site_text_is_never_read_as_rich_markup():
    """'[/u/x]' in a title raised MarkupError mid-run; '[link=…]' would have made a terminal hyperlink."""
    buffer = io.StringIO()
    view = RichProgress(Console(file=buffer, force_terminal=True, width=120, color_system=None))
    snapshot = _snapshot([VideoStatus.TRANSCRIBING, VideoStatus.FAILED])
    snapshot.videos[0].title = "Talk [/u/x] part 2 [link=https://evil.test]click[/link]"
    snapshot.videos[1].error = "bad [bold]thing[/bold]"
    view(snapshot)
    view.close()
    text = ANSI.sub("", buffer.getvalue())
    assert "Talk [/u/x] part 2" in text  # shown as written (the bar may cut its end with …)
    assert "\x1b]8;" not in buffer.getvalue()  # no OSC 8 hyperlink
    table = io.StringIO()
    Console(file=table, force_terminal=True, width=200, color_system=None).print(summary_table(snapshot))
    assert "bad [bold]thing[/bold]" in table.getvalue()


def test_in_a_real_terminal_the_end_of_a_run_shows_its_headline_once(tmp_path, jfk_flac):
    """The CLI in a pseudo-terminal, its output replayed by a terminal emulator: what a person sees at the end is
    the table and one headline (the live view left its own copy above the table)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    import pyte

    columns, rows = 110, 60
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_transcribe", "run", str(jfk_flac), str(tmp_path / "missing.mp3"),
         "--out", str(tmp_path / "out"), "--formats", "txt", "--cpu-threads", "2"],
        stdin=follower, stdout=follower, stderr=follower, env={**os.environ, "TERM": "xterm-256color"},
    )
    os.close(follower)
    screen = pyte.Screen(columns, rows)
    terminal = pyte.ByteStream(screen)
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal.feed(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 1  # one input failed
    shown = [line.rstrip() for line in screen.display]
    headlines = [line for line in shown if line.startswith("1 of 2 done, 1 failed")]
    assert len(headlines) == 1, "\n".join(shown)
    assert any("file not found" in line for line in shown)  # the table is there
    assert not any(line.lstrip().startswith("2 videos") for line in shown)  # the live bars gave way to it
