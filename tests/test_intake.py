"""Videos join a run as their inputs resolve; a cancel still leaves a row for every input line (resolved videos,
and a stand-in for each line not resolved yet), and a later run replaces the stand-ins with the real videos."""

from __future__ import annotations

import shutil
import uuid

import pytest

from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.runs import run_batch, start_batch
from bulk_transcribe.models import VideoStatus
from bulk_transcribe.session_manager import SessionStore
from media_server import MediaServer


@pytest.fixture
def own_server(media_dir):
    """A server of this test's own: pages it leaves waiting must not count in other tests' open requests."""
    server = MediaServer(media_dir).start()
    yield server
    server.stop()


def test_a_cancel_leaves_a_row_per_input_and_a_rerun_replaces_the_stand_ins(tmp_path, own_server, media_dir,
                                                                             speech_clips):
    media_server = own_server
    slow = [media_server.url(f"page/{name}") for name in _copies(media_dir, speech_clips["weather"].path, 3)]
    media_server.page_delay_s = 30.0
    local = speech_clips["garden"].path
    out = tmp_path / "out"
    config = RunConfig(inputs=(str(local), *slow), out_dir=out, formats=("txt",),
                       transcribe=TranscribeOptions(cpu_threads=2))
    handle = start_batch(config)
    try:
        _cancel_once_the_file_is_in(handle)
    finally:
        media_server.page_delay_s = 0.0
    rows = SessionStore(out / "bulk_transcribe.sqlite").videos(handle.run_id)
    assert len(rows) == 4, rows  # every input line has its row
    by_input = {r.input: r for r in rows}
    for url in slow:
        assert by_input[url].status == VideoStatus.CANCELLED
        assert by_input[url].error == "cancelled before its input was resolved"
    assert by_input[str(local)].status in (VideoStatus.DONE, VideoStatus.CANCELLED)

    # The next run resolves the lines: their real videos take the stand-ins' places (one row per page).
    result = run_batch(config)
    assert result.counts.get("done") == 4, result.counts
    everything = SessionStore(out / "bulk_transcribe.sqlite").videos()
    assert not [r for r in everything if r.meta.get("unresolved")], "the stand-ins are gone"
    assert len(everything) == 4


def _copies(media_dir, clip, n: int) -> list[str]:
    """Names of `n` fresh copies of `clip` (distinct media: a page is the video it plays). No extension: a page
    named /page/talk.mp3 would look like a direct media link."""
    names = [f"talk-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    for name in names:
        shutil.copy(clip, media_dir / name)
    return names


def _cancel_once_the_file_is_in(handle) -> None:
    for _ in range(600):  # the local file is in the table: the pages are still being fetched
        if handle.snapshot().videos:
            break
        handle.wait(0.05)
    handle.cancel()
    assert handle.wait(60)


def test_a_rerun_lists_finished_pages_without_asking_their_site_again(tmp_path, own_server, media_dir,
                                                                        speech_clips):
    pages = [own_server.url(f"page/{name}") for name in _copies(media_dir, speech_clips["train"].path, 2)]
    config = RunConfig(inputs=tuple(pages), out_dir=tmp_path / "out", formats=("txt",),
                       transcribe=TranscribeOptions(cpu_threads=2))
    assert run_batch(config).counts.get("done") == 2
    requests = len(own_server.request_log)
    again = run_batch(config)
    assert again.tally.registered == 2 and again.tally.done_before == 2
    assert len(own_server.request_log) == requests, "a finished page was fetched again"


def test_one_video_given_many_ways_is_transcribed_once(tmp_path, own_server, media_dir, speech_clips, run_cli):
    """The same file as a link, with a fragment, with tracking parameters, through `localhost`, and through pages
    that embed it (their query reordered, or reached by a redirect): one video, one transcript; every other line
    is a duplicate, also in a later run given yet another way."""
    import json

    (name,) = _copies(media_dir, speech_clips["library"].path, 1)
    direct = own_server.url(name)
    lines = [direct, f"{direct}#t=1", f"{direct}?utm_source=feed&utm_medium=mail",
             direct.replace("127.0.0.1", "localhost"), own_server.url(f"page/{name}"),
             own_server.url(f"page/{name}?b=2&a=1"), own_server.url(f"page/{name}?a=1&b=2"),
             own_server.url(f"redirect/page/{name}")]
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", *lines, "--out", str(out), "--formats", "txt", "--cpu-threads", "2", "-q")
    assert code == 0, stdout + stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 1 and manifest["videos"][0]["status"] == "done", manifest["videos"]
    assert len(manifest["duplicates"]) == len(lines) - 1
    assert f"{len(lines) - 1} duplicate input(s) ignored" in stdout
    assert len(list(out.glob("*/transcript.txt"))) == 1
    code, stdout, _ = run_cli("run", f"{direct}?fbclid=xyz", "--out", str(out), "--cpu-threads", "2", "-q")
    assert code == 0 and "Nothing to do: the video is already done" in stdout


def test_a_line_that_failed_is_replaced_by_its_videos_and_they_take_their_titles(tmp_path, own_server, media_dir,
                                                                                speech_clips, run_cli, media_server):
    """(`media_server` writes the feed this test's own server also serves.) A feed and a page that were down in the
    first run: their failed rows stood for the lines; once the lines
    resolve, their videos replace those rows everywhere (table, history, manifest) and a video not done yet takes
    the title the site gives (and a folder of that name) instead of one made from its URL."""
    import json

    (name,) = _copies(media_dir, speech_clips["weather"].path, 1)
    page, feed = own_server.url(f"gate/page/{name}"), own_server.url("gate/feed.rss")
    own_server.closed |= {f"page/{name}", "feed.rss"}
    out = tmp_path / "out"
    common = ["--out", str(out), "--formats", "txt", "--cpu-threads", "2", "-q"]
    code, _, _ = run_cli("run", page, feed, *common)
    first = json.loads((out / "manifest.json").read_text())["videos"]
    assert code == 1 and [(v["status"], v["error"].split(":")[0]) for v in first] == \
        [("failed", "HTTP 500 Internal Server Error")] * 2
    assert next(v["title"] for v in first if v["source"] == page) == name  # named after its URL for now
    own_server.closed.clear()
    code, stdout, stderr = run_cli("run", page, feed, *common)
    assert code == 0, stdout + stderr
    videos = json.loads((out / "manifest.json").read_text())["videos"]
    assert len(videos) == 5 and all(v["status"] == "done" for v in videos), videos  # the page's video + 4 episodes
    assert not [v for v in videos if v["source"] == feed]
    talk = next(v for v in videos if v["input"] == page)
    assert talk["title"].startswith(f"Talk {name}")  # the page's own title (yt-dlp's generic adds " (1)")
    assert talk["outputs"]["txt"] == f"{talk['title']}/transcript.txt"
    assert not (out / name).exists()
    code, status, _ = run_cli("status", str(out), "--json")
    assert json.loads(status)["run"]["counts"]["failed"] == 0
