"""sources.py against real inputs: input lists on disk, folders, and real yt-dlp against the local media server."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import av
import pytest

from bulk_transcribe import errors
from bulk_transcribe.config import DownloadOptions
from bulk_transcribe.models import SourceKind
from bulk_transcribe.inputs import resolve_inputs
from bulk_transcribe.inputs.lists import read_list_file
from bulk_transcribe.media.audio import probe_media

FAST = DownloadOptions(socket_timeout_s=2, retries=1, backoff_s=0.01)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_seconds(path) -> int:
    with av.open(str(path)) as c:
        return int(round(c.duration / 1e6))


# --------------------------------------------------------------------------------------------- input lists


def test_input_list_dedupes_and_reports_each_duplicate_once(tmp_path, speech_clips, media_server):
    clip = speech_clips["weather"].path
    url = media_server.url(speech_clips["train"].path.name)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip}\n{url}\n# comment\n{clip}\n{url}\n{clip}\nnot a url or file\n")
    resolved = resolve_inputs([str(clip), *read_list_file(listing)], options=FAST)
    assert [i.source for i in resolved.items] == [str(clip.resolve()), url, "not a url or file"]
    assert resolved.duplicates == [str(clip.resolve()), url]
    assert resolved.items[0].kind == SourceKind.FILE and resolved.items[0].error is None
    assert resolved.items[1].kind == SourceKind.URL and resolved.items[1].error is None
    assert resolved.items[2].error == "not a URL or file: not a url or file"


# --------------------------------------------------------------------------------------------- local files


def test_folder_expands_recursively_sorted_media_only(tmp_path, speech_clips):
    root = tmp_path / "library"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    shutil.copy(speech_clips["weather"].path, root / "b" / "deeper" / "z.mp3")
    shutil.copy(speech_clips["garden"].path, root / "a" / "clip.M4A")
    shutil.copy(speech_clips["train"].path, root / "top.mp4")
    (root / "notes.txt").write_text("not media")
    (root / "a" / "cover.jpg").write_bytes(b"\xff\xd8")

    resolved = resolve_inputs([str(root), str(root / "top.mp4")])
    expected = [root / "a" / "clip.M4A", root / "b" / "deeper" / "z.mp3", root / "top.mp4"]
    assert [i.source for i in resolved.items] == [str(p.resolve()) for p in expected]
    assert all(i.kind == SourceKind.FILE and i.error is None for i in resolved.items)
    assert [i.title for i in resolved.items] == ["clip", "z", "top"]
    assert resolved.duplicates == [str((root / "top.mp4").resolve())]


def test_local_files_know_their_duration_before_any_work(jfk_flac, bad_media):
    """The status table and the longest-first scheduler need lengths up front; reading the header is enough."""
    jfk, text_file = resolve_inputs([str(jfk_flac), str(bad_media["text_as_mp4"])]).items
    assert jfk.duration_s == pytest.approx(11.0, abs=0.2)
    assert text_file.duration_s is None and text_file.error is None  # judged (and failed) when processed


def test_missing_file_and_empty_folder_are_error_items(tmp_path):
    (tmp_path / "empty").mkdir()
    missing = tmp_path / "gone.mp4"
    resolved = resolve_inputs([str(missing), str(tmp_path / "empty")])
    assert [i.error for i in resolved.items] == [
        f"file not found: {missing}",
        f"no media files in folder: {(tmp_path / 'empty').resolve()}",
    ]
    assert all(i.kind == SourceKind.FILE for i in resolved.items)


def test_relative_path_resolves_to_absolute(tmp_path, speech_clips, monkeypatch):
    shutil.copy(speech_clips["weather"].path, tmp_path / "local.mp3")
    monkeypatch.chdir(tmp_path)
    (item,) = resolve_inputs(["local.mp3"]).items
    assert item.source == str((tmp_path / "local.mp3").resolve()) and item.input == "local.mp3"


# --------------------------------------------------------------------------------------------- URLs (real yt-dlp)


def test_rss_feed_expands_to_entries_with_titles_and_durations(media_server, speech_clips):
    resolved = resolve_inputs([media_server.url("feed.rss")], options=FAST)
    assert [i.error for i in resolved.items] == [None] * 4
    assert [i.source for i in resolved.items] == [media_server.url(c.path.name) for c in speech_clips.values()]
    assert [i.title for i in resolved.items] == [f"{name.title()} episode" for name in speech_clips]
    assert [i.duration_s for i in resolved.items] == [container_seconds(c.path) for c in speech_clips.values()]
    assert all(i.kind == SourceKind.URL and i.input == media_server.url("feed.rss") for i in resolved.items)


def test_page_with_video_tags_expands(media_server, speech_clips):
    resolved = resolve_inputs([media_server.url("videos.html")], options=FAST)
    clips = list(speech_clips.values())[:2]
    assert [i.source for i in resolved.items] == [media_server.url(c.path.name) for c in clips]
    assert all(i.error is None and i.title for i in resolved.items)


def test_direct_media_url_is_one_item_without_a_request(media_server, media_dir, speech_clips):
    name = f"direct-{uuid.uuid4().hex[:8]}.mp3"
    shutil.copy(speech_clips["weather"].path, media_dir / name)
    (item,) = resolve_inputs([media_server.url(name)], options=FAST).items
    assert (item.source, item.kind, item.title, item.duration_s, item.error) == (
        media_server.url(name), SourceKind.URL, name[:-4], None, None)
    # yt-dlp's generic extractor would only confirm what the extension says: no round trip for it.
    assert media_server.count(name) == 0


def test_feed_entries_and_direct_link_to_the_same_clip_are_deduped(media_server, speech_clips):
    direct = media_server.url(speech_clips["garden"].path.name)
    resolved = resolve_inputs([direct, media_server.url("feed.rss")], options=FAST)
    assert [i.source for i in resolved.items].count(direct) == 1
    assert resolved.duplicates == [direct]
    assert len(resolved.items) == 4


def test_unresolvable_inputs_become_error_items_and_the_rest_resolve(media_server, speech_clips, capfd):
    port = closed_port()
    missing = f"status/404/{uuid.uuid4().hex[:8]}"
    good = media_server.url(speech_clips["weather"].path.name)
    inputs = [
        media_server.url(missing),
        f"http://127.0.0.1:{port}/watch",
        media_server.url("html/plain-page"),
        "ftp://127.0.0.1/clip.mp3",
        "not a url or file",
        "www.example.com/watch?v=1",
        good,
    ]
    resolved = resolve_inputs(inputs, options=FAST)
    by_input = {i.input: i for i in resolved.items}
    assert by_input[media_server.url(missing)].error == f"HTTP 404 Not Found: {media_server.url(missing)}"
    assert by_input[f"http://127.0.0.1:{port}/watch"].error == (
        f"cannot connect to 127.0.0.1:{port} (connection refused): http://127.0.0.1:{port}/watch")
    assert by_input[media_server.url("html/plain-page")].error == (
        f"no media found (unsupported URL or page without video): {media_server.url('html/plain-page')}")
    assert by_input["ftp://127.0.0.1/clip.mp3"].error.startswith("unsupported URL scheme ftp://")
    assert by_input["not a url or file"].error == "not a URL or file: not a url or file"
    assert "need http:// or https://" in by_input["www.example.com/watch?v=1"].error
    assert by_input[good].error is None
    assert media_server.count(missing) == 1
    out, err = capfd.readouterr()
    assert "ERROR" not in out + err  # yt-dlp stays quiet; the reasons live on the items


def test_hanging_page_times_out_with_the_socket_timeout(media_server):
    url = media_server.url(f"hang/{uuid.uuid4().hex[:8]}")
    (item,) = resolve_inputs([url], options=DownloadOptions(socket_timeout_s=0.5)).items
    assert item.error == f"timed out after 0.5 s: {url}"


# --------------------------------------------------------------------------------------------- probing


def test_probe_media_reads_durations(speech_clips, bad_media):
    for clip in speech_clips.values():
        assert abs(probe_media(clip.path) - container_seconds(clip.path)) <= 0.5
    assert probe_media(bad_media["silence"]) == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize(
    "name, error, reason",
    [
        ("empty", errors.MediaError, "file is empty"),
        ("text_as_mp4", errors.MediaError, "not a media file (Invalid data found when processing input)"),
        ("no_audio", errors.MediaError, "no audio track"),
        # Garbage after the header / 2% of an mp3: FFmpeg cannot even find the stream layout.
        ("corrupt", errors.MediaError, "not a media file ("),
    ],
)
def test_probe_media_names_what_is_wrong(bad_media, name, error, reason):
    with pytest.raises(error) as caught:
        probe_media(bad_media[name])
    if reason.endswith("("):
        assert caught.value.reason.startswith(reason) and caught.value.reason.endswith(")")
    else:
        assert caught.value.reason == reason


def test_probe_media_accepts_a_truncated_file_with_some_audio(tmp_path, speech_clips, bad_media):
    import media

    source = speech_clips["weather"].path
    full = probe_media(source)
    half = probe_media(media.truncated_copy(source, tmp_path / "half.mp3", 0.5))
    assert 0 < half <= full
    # 2% of the file: the header still claims the full length, the decoded samples tell the truth.
    assert 0 < probe_media(bad_media["truncated"]) < full / 2


def test_probe_media_missing_file(tmp_path):
    with pytest.raises(errors.InputError, match="file not found"):
        probe_media(tmp_path / "nothing.wav")


# --------------------------------------------------------------------------------------------- bounded resolution


def test_trickling_page_fails_alone_at_its_deadline_and_the_rest_resolve(media_server):
    """A page at a few bytes a second once held the whole batch before anything started."""
    slow = media_server.url(f"trickle-page/{uuid.uuid4().hex[:8]}")
    options = DownloadOptions(socket_timeout_s=2, resolve_timeout_s=1, stall_bytes_per_s=0)
    slow_item, *feed = resolve_inputs([slow, media_server.url("feed.rss")], options=options).items
    assert slow_item.error == f"resolution timed out after 1 s: {slow}"
    assert len(feed) == 4 and all(i.error is None for i in feed)
    assert all(n < 200 for n in _hangups(media_server, slow))  # hung up at the deadline, not at the page's end


def test_trickling_page_trips_the_low_speed_guard(media_server):
    slow = media_server.url(f"trickle-page/{uuid.uuid4().hex[:8]}")
    options = DownloadOptions(socket_timeout_s=2, stall_bytes_per_s=200, stall_time_s=1)
    (item,) = resolve_inputs([slow], options=options).items
    assert item.error == f"resolution stalled: below 200 bytes/s for 1 s: {slow}"


def _hangups(media_server, url: str) -> list[int]:
    import time
    from urllib.parse import urlsplit

    path = urlsplit(url).path
    for _ in range(100):
        if media_server.bytes_sent(path):
            break
        time.sleep(0.1)
    return media_server.bytes_sent(path)


def test_gzip_bomb_and_huge_page_fail_alone_in_bounded_memory(media_server, speech_clips):
    """400 MB pages (one sent as 400 KB of gzip) once took 1.3-1.7 GB of memory to be told "no media"."""
    import threading

    import psutil

    media_server.gzip_bomb()  # built before measuring: the server shares this process
    process = psutil.Process()
    base = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    bomb = media_server.url(f"gzip-bomb/{uuid.uuid4().hex[:8]}")
    huge = media_server.url(f"huge-page/{uuid.uuid4().hex[:8]}")
    good = media_server.url(speech_clips["weather"].path.name)
    try:
        items = resolve_inputs([bomb, huge, good], options=FAST).items
    finally:
        done.set()
        sampler.join()
    assert [i.error for i in items] == [
        f"page refused: its gzip body inflates past 16.0 MiB (a decompression bomb?): {bomb}",
        f"page too large: more than 16.0 MiB: {huge}",
        None,
    ]
    assert peak - base < 300 * 1024**2, f"resolution grew memory by {(peak - base) / 1024**2:.0f} MiB"


def test_credentials_are_masked_in_every_form_they_come_in():
    from bulk_transcribe.redact import redact_text, reveal

    assert redact_text("http://User:PassWord@host:8/a?b=c") == "http://User:***@host:8/a?b=c"
    assert redact_text("https://TOKEN123@host/x") == "https://***@host/x"  # a lone user name is often a token
    assert redact_text("http://u:p@ss@host/x") == "http://u:***@host/x"  # an @ in the password
    assert redact_text("error: http://a:b@h/x and https://c:d@i/y") == "error: http://a:***@h/x and https://c:***@i/y"
    assert redact_text("mail me: someone@example.com /tmp/a@b.mp3") == "mail me: someone@example.com /tmp/a@b.mp3"
    assert redact_text("http://User:***@host/x") == "http://User:***@host/x"
    real = "http://User:PassWord@host/x"
    assert reveal("http://User:***@host/x", [("http://User:***@host/x", real)]) == real
    assert reveal("http://User:***@host/y", [("http://User:***@host/x", real)]) == "http://User:***@host/y"


def test_resolution_keeps_credentials_as_given_for_the_request_only(media_server, media_dir, speech_clips):
    user, secret = media_server.auth
    name = f"members-{uuid.uuid4().hex[:8]}"
    shutil.copy(speech_clips["weather"].path, media_dir / name)
    url = media_server.url(f"auth/{name}").replace("http://", f"http://{user}:{secret}@")
    resolved = resolve_inputs([url], options=FAST)
    (item,) = resolved.items
    shown = url.replace(secret, "***")
    assert (item.source, item.input, item.error) == (shown, shown, None)  # yt-dlp got in: the case was kept
    assert resolved.credentials == {shown: url}


# --------------------------------------------------------------------------------------------- readable reasons


def test_odd_urls_get_a_specific_short_reason(media_server):
    long_url = media_server.url("status/404/" + "a" * 100_000)
    silent = media_server.url(f"no-answer/{uuid.uuid4().hex[:8]}")
    to_ftp = media_server.url(f"redirect-ftp/{uuid.uuid4().hex[:8]}")
    inputs = ["http://", "http://[::1/x", "http://127.0.0.1:99999/x", "http://exa mple.com/x", "http://a..b/x",
              long_url, silent, to_ftp]
    items = {i.input: i for i in resolve_inputs(inputs, options=FAST).items}
    assert items["http://"].error == "malformed URL (no host name): http://"
    assert items["http://[::1/x"].error == "malformed URL (invalid IPv6 URL): http://[::1/x"
    assert items["http://127.0.0.1:99999/x"].error == "malformed URL (port out of range): http://127.0.0.1:99999/x"
    assert items["http://exa mple.com/x"].error.startswith("malformed URL (invalid host name 'exa mple.com')")
    assert items["http://a..b/x"].error.startswith("malformed URL (invalid host name 'a..b')")
    port = media_server.port
    assert items[silent].error == f"127.0.0.1:{port} closed the connection without answering: {silent}"
    ftp = "ftp://127.0.0.1/" + to_ftp.rsplit("/", 1)[1]
    assert items[to_ftp].error == f"leads to a link that is not http or https ({ftp}): {to_ftp}"
    # A 100 KB URL is the item's identity, but its reason stays short and readable at both ends.
    long_error = items[long_url].error
    assert long_error.startswith(f"HTTP 414 Request-URI Too Long: http://127.0.0.1:{port}/status/404/aaa")
    assert long_error.endswith("aaaa") and "…" in long_error and len(long_error) < 300
    assert items[long_url].source == long_url


def test_odd_local_inputs_are_named_for_what_they_are(tmp_path, speech_clips):
    os.mkfifo(tmp_path / "pipe.mp3")
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    os.symlink("nowhere.mp3", tmp_path / "dangling.mp3")
    inputs = [tmp_path / "pipe.mp3", "/dev/zero", tmp_path / "loop-a", tmp_path / "dangling.mp3", tmp_path]
    items = resolve_inputs([str(p) for p in inputs]).items
    assert [i.error for i in items] == [
        f"not a regular file (a named pipe): {tmp_path / 'pipe.mp3'}",
        "not a regular file (a device): /dev/zero",
        f"symbolic link loop: {tmp_path / 'loop-a'}",
        f"broken symbolic link: {tmp_path / 'dangling.mp3'} -> nowhere.mp3 (not found)",
        f"no media files in folder: {tmp_path}",  # the pipe and the links inside are skipped, never opened
    ]


def test_output_folder_inside_an_input_folder_is_never_an_input(tmp_path, speech_clips):
    """OUT inside the folder being transcribed: its kept audio and a partial download left by a kill were
    transcribed as extra videos on the rerun."""
    folder = tmp_path / "videos"
    out = folder / "transcripts"
    (out / ".work" / "dl-x").mkdir(parents=True)
    (out / "audio").mkdir()
    clip = speech_clips["weather"].path
    shutil.copy(clip, folder / "talk.mp3")
    shutil.copy(clip, out / "audio" / "kept.mp3")
    shutil.copy(clip, out / ".work" / "dl-x" / "cut-off.mp3")
    items = resolve_inputs([str(folder), str(out / "audio" / "kept.mp3")], out_dir=out).items
    assert [(i.source, i.error) for i in items] == [
        (str(folder / "talk.mp3"), None),
        (str(out / "audio" / "kept.mp3"),
         f"one of the tool's own working files in {out} (never an input): {out / 'audio' / 'kept.mp3'}"),
    ]
    # OUT being the input folder itself (`--out .`, input `.`): only its working folders are skipped.
    shutil.copy(clip, out / "mine.mp3")
    assert [i.source for i in resolve_inputs([str(out)], out_dir=out).items] == [str(out / "mine.mp3")]


def test_response_headers_trickling_in_cannot_hold_resolution_either(media_server):
    """No response object exists yet while headers arrive, so no guard can read along: the input is left behind
    at its deadline and the next one resolves on a fresh client."""
    warm_up = media_server.url("html/warm-up")  # yt-dlp's first extraction imports for seconds on a busy machine
    stuck = media_server.url(f"trickle-headers/{uuid.uuid4().hex[:8]}")
    options = DownloadOptions(socket_timeout_s=2, resolve_timeout_s=3, stall_bytes_per_s=0)
    _, stuck_item, *feed = resolve_inputs([warm_up, stuck, media_server.url("feed.rss")], options=options).items
    assert stuck_item.error == f"resolution timed out after 3 s: {stuck}"
    assert len(feed) == 4 and all(i.error is None for i in feed)
# The audio's own length, whatever the container says (30 s of video over ~4 s of speech; audio from 1:00:00).
LISTED_LAYOUTS = ["video_longer.mkv", "video_longer.webm", "video_longer.mov", "video_longer.ts",
                  "late_audio.mkv", "late_audio.webm", "late_audio.m4a"]


@pytest.mark.parametrize("name", LISTED_LAYOUTS + ["late_audio_video.mkv"])
def test_probe_media_gives_the_audio_streams_length(odd_layouts, name):
    layout = odd_layouts[name]
    assert probe_media(layout.path) == pytest.approx(layout.audio_s, abs=0.15)


def test_local_files_are_listed_with_their_audio_length(odd_layouts):
    folder = odd_layouts["video_longer.mkv"].path.parent
    listed = {Path(item.source).name: item.duration_s for item in resolve_inputs([str(folder)]).items}
    for name in LISTED_LAYOUTS:
        assert listed[name] == pytest.approx(odd_layouts[name].audio_s, abs=0.15), name
    # A Matroska track that starts at 1:00:00 behind a video from 0: FFmpeg's header read cannot see the start,
    # so the listing (headers only, a few ms per file) is an over-estimate until probe_media decodes (above).
    assert listed["late_audio_video.mkv"] >= odd_layouts["late_audio_video.mkv"].audio_s


# --------------------------------------------------------------------------------------------- live and upcoming

LIVE_MPD = """<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z"
     minimumUpdatePeriod="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
 <Period id="0" start="PT0S">
  <AdaptationSet mimeType="audio/mp4" contentType="audio">
   <Representation id="a" bandwidth="64000" codecs="mp4a.40.2" audioSamplingRate="48000">
    <SegmentTemplate media="seg-$Number$.m4s" initialization="init.mp4" duration="2" timescale="1" startNumber="1"/>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


def test_a_live_stream_ends_alone_with_a_clear_reason(media_server, media_dir, speech_clips):
    """A live DASH stream (type="dynamic": yt-dlp says live_status is_live) would download until the size cap;
    it fails alone, before any download, and the other input goes ahead."""
    (media_dir / "live.mpd").write_text(LIVE_MPD)
    live, good = media_server.url("live.mpd"), media_server.url(speech_clips["weather"].path.name)
    items = resolve_inputs([live, good], options=FAST).items
    assert [i.error for i in items] == [
        "live stream: not transcribed (it has no end; transcribe its recording once the stream is over)", None]


def test_channel_entries_that_are_upcoming_or_just_ended_are_listed_with_their_reason():
    """A channel's flat listing marks entries as yt-dlp's YouTube extractor does (live_status per entry)."""
    from bulk_transcribe.inputs.resolve import _items_from_info

    listing = {"_type": "playlist", "title": "A channel", "entries": [
        {"url": "https://www.youtube.com/watch?v=aaaaaaaaaaa", "title": "Old talk", "duration": 600,
         "live_status": "not_live"},
        {"url": "https://www.youtube.com/watch?v=bbbbbbbbbbb", "title": "Premiere", "live_status": "is_upcoming"},
        {"url": "https://www.youtube.com/watch?v=ccccccccccc", "title": "Now live", "live_status": "is_live"},
        {"url": "https://www.youtube.com/watch?v=ddddddddddd", "title": "Just ended", "live_status": "post_live"},
    ]}
    items = _items_from_info(listing, "https://www.youtube.com/@a", "https://www.youtube.com/@a")
    assert [i.title for i in items] == ["Old talk", "Premiere", "Now live", "Just ended"]
    assert items[0].error is None
    assert items[1].error.startswith("premiere or scheduled stream not yet available")
    assert items[2].error.startswith("live stream: not transcribed")
    assert items[3].error.startswith("live stream just ended")


# --------------------------------------------------------------------------------------------- streaming


def page_urls(media_server, media_dir, clip, delays) -> list[str]:
    """One slow video page per delay, each playing its own fresh copy of `clip` (counts stay per test). The copy
    has no extension: /page/talk.mp3 would look like a direct media link, which is listed without a request."""
    urls = []
    for delay in delays:
        name = f"talk-{uuid.uuid4().hex[:8]}"
        shutil.copy(clip, media_dir / name)
        urls.append(media_server.url(f"page/{name}?delay={delay}"))
    return urls


def drain(stream, limit_s: float = 60.0) -> list[tuple[float, object]]:
    """(seconds since the stream started, item) for everything it hands out, as a driver loop would take them."""
    import time

    began = time.monotonic()
    got = []
    while not stream.finished and time.monotonic() - began < limit_s:
        for item in stream.take(timeout=0.5):
            got.append((time.monotonic() - began, item))
    return got


def test_stream_hands_out_fast_pages_long_before_slow_ones(media_server, media_dir, speech_clips):
    from bulk_transcribe.inputs import InputStream

    clip = speech_clips["weather"].path
    # yt-dlp's first page in a process imports every embed extractor (seconds here, where no .pyc is written).
    resolve_inputs(page_urls(media_server, media_dir, clip, [0]), options=FAST)
    slow = page_urls(media_server, media_dir, clip, [4, 4])
    fast = page_urls(media_server, media_dir, clip, [0, 0, 0, 0])
    options = DownloadOptions(socket_timeout_s=10, max_concurrent=8)
    with InputStream(slow + fast, options=options) as stream:  # slow ones listed first
        assert stream.total == 6 and stream.resolved == 0
        got = drain(stream)
        assert stream.finished and stream.resolved == 6
    arrival = {item.input: t for t, item in got}
    assert set(arrival) == set(slow + fast) and all(item.error is None for _, item in got)
    assert max(arrival[u] for u in fast) < min(arrival[u] for u in slow) - 2  # not held behind the slow pages
    assert min(arrival[u] for u in slow) >= 4


def test_stream_bounds_concurrency_in_all_and_per_host(media_server, media_dir, speech_clips):
    from bulk_transcribe.inputs import InputStream

    clip = speech_clips["garden"].path
    for concurrency, per_host, bound in [(3, 10, 3), (8, 2, 2)]:
        urls = page_urls(media_server, media_dir, clip, [1.5] * 6)  # long enough for every thread to get going
        media_server.reset_pages_peak()
        options = DownloadOptions(socket_timeout_s=10, max_concurrent=per_host)
        with InputStream(urls, options=options, concurrency=concurrency) as stream:
            got = drain(stream)
        assert len(got) == 6 and all(item.error is None for _, item in got)
        assert media_server.pages_peak == bound, (concurrency, per_host)  # reached, never passed


def test_stream_spaces_the_starts_to_one_host_by_sleep_s(media_server, media_dir, speech_clips):
    from urllib.parse import urlsplit

    from bulk_transcribe.inputs import InputStream

    urls = page_urls(media_server, media_dir, speech_clips["train"].path, [0, 0, 0])
    options = DownloadOptions(socket_timeout_s=10, max_concurrent=8, sleep_s=0.4)
    with InputStream(urls, options=options) as stream:
        assert len(drain(stream)) == 3
    paths = {urlsplit(u).path for u in urls}
    starts = sorted(t for t, path in media_server.request_log if path in paths)
    # Counted from the host's answer, so the host never sees two closer than sleep_s (a lower bound only).
    assert len(starts) == 3 and all(b - a >= 0.4 for a, b in zip(starts, starts[1:]))


def test_stream_holds_a_host_for_its_retry_after_then_tries_again(media_server, media_dir, speech_clips):
    from urllib.parse import urlsplit

    from bulk_transcribe.inputs import InputStream

    name = f"limited-{uuid.uuid4().hex[:8]}"  # no extension: a page request, not a direct link
    shutil.copy(speech_clips["weather"].path, media_dir / name)
    limited = media_server.url(f"flaky429/{name}")  # 429 with Retry-After: 1 once, then the media
    (other,) = page_urls(media_server, media_dir, speech_clips["garden"].path, [0])
    options = DownloadOptions(socket_timeout_s=10, max_concurrent=1, retries=2)
    with InputStream([limited, other], options=options) as stream:
        got = drain(stream)
    assert [(item.input, item.error) for _, item in got] == [(limited, None), (other, None)]
    log = [(t, path) for t, path in media_server.request_log if path in (f"/flaky429/{name}", urlsplit(other).path)]
    assert [path for _, path in log] == [f"/flaky429/{name}", f"/flaky429/{name}", urlsplit(other).path]
    assert log[1][0] - log[0][0] >= 1.0  # the host was left alone for its Retry-After, the other page too


def test_close_during_a_stuck_resolution_returns_at_once(media_server):
    import threading
    import time

    from bulk_transcribe.inputs import InputStream

    path = f"hang/{uuid.uuid4().hex[:8]}"  # the server never answers: no guard reads along
    options = DownloadOptions(socket_timeout_s=60, resolve_timeout_s=120)
    stream = InputStream([media_server.url(path)], options=options).start()
    for _ in range(200):
        if media_server.count(path):
            break
        time.sleep(0.05)
    assert media_server.count(path) == 1 and stream.take() == [] and not stream.finished
    began = time.monotonic()
    stream.close()
    stream.close()  # idempotent
    assert time.monotonic() - began < 0.5
    assert stream.take(timeout=5) == [] and stream.finished
    assert time.monotonic() - began < 1.0  # take() does not wait on a closed stream
    for _ in range(20):  # the resolving thread gives up its stuck request within a tick or two
        if not any(t.name.startswith("bt-resolve-") for t in threading.enumerate()):
            break
        time.sleep(0.1)
    assert not any(t.name.startswith("bt-resolve-") for t in threading.enumerate())


def test_stream_dedupes_the_first_copy_that_arrives_and_keeps_items_of_an_input_in_order(
        media_server, media_dir, speech_clips, tmp_path):
    from urllib.parse import urlsplit

    from bulk_transcribe.inputs import InputStream

    (slow_page,) = page_urls(media_server, media_dir, speech_clips["weather"].path, [2])
    direct = media_server.url(speech_clips["garden"].path.name)  # also an entry of the feed
    listing = tmp_path / "more.txt"
    listing.write_text(f"{speech_clips['train'].path}\n\n# note\n{tmp_path / 'gone.mp3'}\n")
    inputs = [slow_page, media_server.url("feed.rss"), direct, slow_page, "  "]
    with InputStream(inputs + read_list_file(listing), options=FAST) as stream:
        # Blank lines are not inputs, the list's lines are counted up front, and the page given twice is one
        # input: it is requested once.
        assert stream.total == 5
        got = [item for _, item in drain(stream)]
    feed = [media_server.url(c.path.name) for c in speech_clips.values()]
    sources = [item.source for item in got]
    assert sources.index(direct) < sources.index(slow_page)  # offline inputs do not wait for pages
    feed_items = [item for item in got if item.input == media_server.url("feed.rss")]
    assert [item.source for item in feed_items] == [f for f in feed if f != direct]  # listed order
    assert sorted(stream.duplicates) == sorted([direct, slow_page])
    assert len(got) == 1 + 3 + 1 + 2  # page, feed minus the direct link, the link, the list's two lines
    assert media_server.count(urlsplit(slow_page).path) == 1
