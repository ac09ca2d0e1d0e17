"""-a/--batch-file as yt-dlp users type it: a file, `-` (stdin), /dev/stdin, and a process substitution."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bulk_transcribe.inputs.lists import parse_lines, read_batch_files
from bulk_transcribe.cli import main

CLI = f"{shlex.quote(sys.executable)} -m bulk_transcribe.cli"


def test_lines_follow_yt_dlps_rules():
    raw = [b"\xef\xbb\xbf# comment\n", b"  a.mp4  \n", b"; also a comment\n", b"] and this\n", b"\n",
           b"b\xff.mp4\n", b"https://x/y"]
    assert parse_lines(raw) == ["a.mp4", "b\ufffd.mp4", "https://x/y"]


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
