"""--download-archive round trip with yt-dlp itself, and yt-dlp's entry selection (--playlist-items,
--match-filter) on a real feed served locally."""

from __future__ import annotations

import json
from pathlib import Path

import yt_dlp

from bulk_transcribe.inputs.archive import archive_id, read_archive, record_finished, split_archived
from bulk_transcribe.models import SourceKind, VideoItem


def _titles(out: Path) -> list[str]:
    return sorted(e["title"] for e in json.loads((out / "manifest.json").read_text())["videos"])


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
    keep, skipped = split_archived([url, local], {"youtube abc"})
    assert keep == [local] and skipped == [url]


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
    lines = archive.read_text().splitlines()
    assert lines[0] == "generic weather" and sorted(lines[1:]) == ["generic garden", "generic library",
                                                                    "generic train"]

    # yt-dlp now finds every episode in the archive and downloads nothing.
    log = _ytdlp(feed, archive, tmp_path / "ytdlp2")
    assert sum("has already been recorded in the archive" in line for line in log.lines) == 4
    assert not (tmp_path / "ytdlp2").exists()

    # And a rerun of ours has nothing to do and adds no duplicates.
    code, stdout, _ = run_cli("run", feed, "--download-archive", str(archive), "--out", str(out), "--quiet")
    assert code == 0 and "4 video(s) skipped" in stdout
    assert "Nothing to do: every video is already in the download archive (4)." in stdout
    assert len(archive.read_text().splitlines()) == 4


def test_record_finished_appends_only_new_done_videos(tmp_path):
    from bulk_transcribe.models import VideoStatus

    class R:  # the fields record_finished reads from a VideoRecord
        def __init__(self, vid: str, status: VideoStatus, kind: str = "url") -> None:
            self.status, self.kind, self.meta = status, kind, {"id": vid, "extractor_key": "Vimeo"}

    archive = tmp_path / "a" / "archive.txt"
    assert record_finished(archive, [R("1", VideoStatus.DONE), R("2", VideoStatus.FAILED)]) == 1
    assert record_finished(archive, [R("1", VideoStatus.DONE), R("3", VideoStatus.DONE, "file")]) == 0
    assert archive.read_text() == "vimeo 1\n"


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
