"""Input lists, one rule everywhere: -a/--batch-file as yt-dlp users type it (a file, `-` (stdin), /dev/stdin, a
process substitution), lists given as inputs, and what the dashboard's boxes hold."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bulk_transcribe.inputs.lists import numbered_lines, parse_lines, read_batch_files, read_list_file
from bulk_transcribe.cli import main

CLI = f"{shlex.quote(sys.executable)} -m bulk_transcribe.cli"


def test_lines_follow_yt_dlps_rules():
    raw = [b"\xef\xbb\xbf# comment\n", b"  a.mp4  \n", b"; also a comment\n", b"] and this\n", b"\n",
           b"b\xff.mp4\n", b"https://x/y"]
    assert parse_lines(raw) == ["a.mp4", "b\ufffd.mp4", "https://x/y"]


def test_a_list_file_skips_comments_and_blanks_and_survives_bad_bytes(tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_bytes(
        b"\xef\xbb\xbfhttp://example.invalid/a.mp3\r\n"
        b"# a comment\n"
        b"   \n"
        b"\n"
        b"   /videos/b.mp4   \n"
        b"  # indented comment\n"
        b"bad \xff\xfe bytes\n"
        b"http://example.invalid/page#fragment-kept\n"
    )
    assert read_list_file(listing) == [
        "http://example.invalid/a.mp3",
        "/videos/b.mp4",
        "bad \ufffd\ufffd bytes",
        "http://example.invalid/page#fragment-kept",
    ]


def test_a_list_file_handles_a_large_list(tmp_path):
    listing = tmp_path / "many.txt"
    listing.write_text("".join(f"/media/clip{i}.mp3\n# note {i}\n\n" for i in range(50_000)))
    lines = read_list_file(listing)
    assert len(lines) == 50_000 and lines[-1] == "/media/clip49999.mp3"


def test_text_from_the_dashboard_follows_the_same_rule_with_line_numbers():
    text = "\ufeff# pasted\n  https://x/y  \n\n; note\nclip.mp4\n] too\n"
    assert numbered_lines(text) == [(2, "https://x/y"), (5, "clip.mp4")]


def test_files_and_stdin_are_each_read_once(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("one\n#x\ntwo\n")
    stdin = io.BytesIO(b"three\n")
    assert read_batch_files([str(listing), "-", "-"], stdin) == ["one", "two", "three"]
    with pytest.raises(ValueError, match="batch file not found"):
        read_batch_files([str(tmp_path / "none.txt")], io.BytesIO())
    with pytest.raises(ValueError, match="is a folder"):
        read_batch_files([str(tmp_path)], io.BytesIO())


def _sources(out: Path) -> list[str]:
    return sorted(e["source"] for e in json.loads((out / "manifest.json").read_text())["videos"])


@pytest.mark.parametrize("how", ["dash", "dev_stdin", "process_substitution", "long_alias"])
def test_a_list_piped_in_runs_like_yt_dlp(tmp_path, speech_clips, how):
    clips = [str(speech_clips["weather"].path), str(speech_clips["garden"].path)]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(["# my list", *clips]) + "\n")
    out = tmp_path / "out"
    tail = f"--out {shlex.quote(str(out))} --formats txt --cpu-threads 2 --quiet"
    command = {
        "dash": f"cat {shlex.quote(str(listing))} | {CLI} run -a - {tail}",
        "dev_stdin": f"{CLI} run -a /dev/stdin {tail} < {shlex.quote(str(listing))}",
        "process_substitution": f"{CLI} run -a <(grep -v '^#' {shlex.quote(str(listing))}) {tail}",
        "long_alias": f"{CLI} run --input-file {shlex.quote(str(listing))} {tail}",
    }[how]
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _sources(out) == sorted(clips)
    assert "2 videos: 2 done" in proc.stdout


def test_dash_i_no_longer_means_input_file(tmp_path):
    err = io.StringIO()
    code = main(["run", "-i", str(tmp_path / "list.txt"), "--out", str(tmp_path / "o")], stdout=io.StringIO(),
                stderr=err)
    assert code == 2 and "-i" in err.getvalue()


def test_an_empty_list_is_bad_usage(tmp_path):
    err = io.StringIO()
    code = main(["run", "-a", "-", "--out", str(tmp_path / "o")], stdout=io.StringIO(), stderr=err,
                stdin=io.BytesIO(b"# nothing here\n\n"))
    assert code == 2 and "batch file" in err.getvalue()
    assert not (tmp_path / "o").exists()
