"""--download-archive round trip with yt-dlp itself, and yt-dlp's entry selection (--playlist-items,
--match-filter) on a real feed served locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yt_dlp

from bulk_transcribe.inputs.archive import DownloadArchive, archive_id, read_archive
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.models import SourceKind, VideoItem


def _titles(out: Path, status: str = "done") -> list[str]:
    return sorted(e["title"] for e in json.loads((out / "manifest.json").read_text())["videos"]
                  if e["status"] == status)


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, msg: str) -> None:
        self.lines.append(msg)

    info = warning = error = debug


def _ytdlp(feed: str, archive: Path, folder: Path, **params) -> _Log:
    log = _Log()
    with yt_dlp.YoutubeDL({"download_archive": str(archive), "outtmpl": str(folder / "%(id)s.%(ext)s"),
                           "logger": log, "quiet": True, "noprogress": True, "cachedir": False, **params}) as ydl:
        ydl.download([feed])
    return log


def test_archive_ids_are_yt_dlps():
    url = VideoItem("https://www.youtube.com/watch?v=abc", SourceKind.URL, "x",
                    meta={"id": "abc", "extractor_key": "Youtube"})
    local = VideoItem("/m/a.mp4", SourceKind.FILE, "/m/a.mp4", meta={"id": "a", "extractor_key": "Generic"})
    assert archive_id(url.kind, url.meta) == "youtube abc"
    assert archive_id(local.kind, local.meta) is None  # yt-dlp never archives local files
    archive = DownloadArchive("unused.txt", {"youtube abc", "generic a"})
    assert archive.lists(url.kind, url.meta) and not archive.lists(local.kind, local.meta)


def test_archive_round_trip_with_yt_dlp(run_cli, tmp_path, media_server):
    feed = media_server.url("feed.rss")
    archive = tmp_path / "archive.txt"
    # yt-dlp downloads the first episode and records it in its archive.
    _ytdlp(feed, archive, tmp_path / "ytdlp", playlist_items="1")
    assert read_archive(archive) == {"generic weather"}

    # We skip what yt-dlp recorded, transcribe the rest, and append them in the same format.
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", feed, "--download-archive", str(archive), "--out", str(out),
                                "--formats", "txt", "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    assert "1 video(s) skipped: already in the download archive" in stdout
    assert _titles(out) == ["Garden episode", "Library episode", "Train episode"]
    # The skipped one is a row of its own everywhere: manifest (with why), status --json's counts.
    [skipped] = [e for e in json.loads((out / "manifest.json").read_text())["videos"] if e["status"] == "skipped"]
    assert skipped["title"] == "Weather episode" and skipped["note"] == "already in the download archive"
    assert skipped["error"] is None and not skipped["outputs"]
    code, status, _ = run_cli("status", str(out), "--json")
    assert code == 0 and json.loads(status)["run"]["counts"]["skipped"] == 1
    lines = archive.read_text().splitlines()
    assert lines[0] == "generic weather" and sorted(lines[1:]) == ["generic garden", "generic library",
                                                                    "generic train"]

    # yt-dlp now finds every episode in the archive and downloads nothing.
    log = _ytdlp(feed, archive, tmp_path / "ytdlp2")
    assert sum("has already been recorded in the archive" in line for line in log.lines) == 4
    assert not (tmp_path / "ytdlp2").exists()

    # And a rerun of ours has nothing to do and adds no duplicates.
    code, stdout, _ = run_cli("run", feed, "--download-archive", str(archive), "--out", str(out), "--quiet")
    assert code == 0 and "1 video(s) skipped" in stdout
    assert "Nothing to do: all 3 videos are already done in" in stdout and "1 more in the download archive" in stdout
    assert len(archive.read_text().splitlines()) == 4
    # A fresh folder: every one is in the archive, so all four are skipped rows.
    code, stdout, _ = run_cli("run", feed, "--download-archive", str(archive), "--out", str(tmp_path / "o2"), "-q")
    assert code == 0 and "Nothing to do: every video is already in the download archive (4)." in stdout
    assert len(_titles(tmp_path / "o2", "skipped")) == 4


def test_recording_appends_each_finished_video_once_and_never_glues_lines(tmp_path):
    path = tmp_path / "a" / "archive.txt"
    archive = DownloadArchive(path)
    assert archive.record("url", {"id": "1", "extractor_key": "Vimeo"})
    assert not archive.record("url", {"id": "1", "extractor_key": "Vimeo"})  # once
    assert not archive.record("file", {"id": "3", "extractor_key": "Generic"})  # local files never
    assert path.read_text() == "vimeo 1\n"
    # A file whose last line has no newline (edited by hand): the next entry starts a line of its own.
    path.write_text("generic c")
    assert DownloadArchive(path).record("url", {"id": "a", "extractor_key": "Generic"})
    assert path.read_text().splitlines() == ["generic c", "generic a"]


def test_an_unusable_archive_is_refused_up_front_naming_it(run_cli, tmp_path, speech_clips):
    clip = str(speech_clips["weather"].path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"generic caf\xe9\n")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", clip, "--download-archive", str(bad), "--out", str(out))
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert f"the download archive {bad} is not UTF-8 text (byte 0xe9 on line 1)" in stderr
    assert "Traceback" not in stderr and not (out / STATE_DB_NAME).exists()  # nothing registered
    code, _, stderr = run_cli("run", clip, "--download-archive", str(tmp_path), "--out", str(out))
    assert code == 2 and f"the download archive {tmp_path} is a folder" in stderr
    with pytest.raises(ValueError, match="is a folder"):
        read_archive(tmp_path)


def test_playlist_items_and_match_filter_choose_entries_as_yt_dlp_does(run_cli, tmp_path, media_server):
    feed = media_server.url("feed.rss")
    out = tmp_path / "items"
    code, stdout, stderr = run_cli("run", feed, "--playlist-items", "2,4", "--out", str(out), "--formats", "txt",
                                "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    assert _titles(out) == ["Library episode", "Train episode"]
    out = tmp_path / "filter"
    code, stdout, stderr = run_cli("run", feed, "--match-filter", "title ~= '(?i)garden'", "--out", str(out),
                                "--formats", "txt", "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    assert _titles(out) == ["Garden episode"]
    out = tmp_path / "none"
    code, stdout, _ = run_cli("run", feed, "--match-filter", "duration > 99999", "--out", str(out), "--quiet")
    assert code == 1
    [entry] = json.loads((out / "manifest.json").read_text())["videos"]
    assert entry["error"].startswith("no entry matches --playlist-items/--match-filter")
    code, _, stderr = run_cli("run", feed, "--match-filter", "title ~= '(unclosed'", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--match-filter" in stderr
