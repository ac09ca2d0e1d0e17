"""sources.py against real inputs: input lists on disk, folders, and real yt-dlp against the local media server."""

from __future__ import annotations

import shutil
import socket
import uuid
from pathlib import Path

import av
import pytest

from bulk_transcribe import errors
from bulk_transcribe.config import DownloadOptions
from bulk_transcribe.models import SourceKind
from bulk_transcribe.sources import probe_media, read_input_file, resolve_inputs

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


def test_read_input_file_skips_comments_and_blanks_and_survives_bad_bytes(tmp_path):
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
    assert read_input_file(listing) == [
        "http://example.invalid/a.mp3",
        "/videos/b.mp4",
        "bad \ufffd\ufffd bytes",
        "http://example.invalid/page#fragment-kept",
    ]


def test_read_input_file_handles_a_large_list(tmp_path):
    listing = tmp_path / "many.txt"
    listing.write_text("".join(f"/media/clip{i}.mp3\n# note {i}\n\n" for i in range(50_000)))
    lines = read_input_file(listing)
    assert len(lines) == 50_000 and lines[-1] == "/media/clip49999.mp3"


def test_input_list_dedupes_and_reports_each_duplicate_once(tmp_path, speech_clips, media_server):
    clip = speech_clips["weather"].path
    url = media_server.url(speech_clips["train"].path.name)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip}\n{url}\n# comment\n{clip}\n{url}\n{clip}\nnot a url or file\n")
    resolved = resolve_inputs([str(clip)], [listing], options=FAST)
    assert [i.source for i in resolved.items] == [str(clip.resolve()), url, "not a url or file"]
    assert resolved.duplicates == [str(clip.resolve()), url]
    assert resolved.items[0].kind == SourceKind.FILE and resolved.items[0].error is None
    assert resolved.items[1].kind == SourceKind.URL and resolved.items[1].error is None
    assert resolved.items[2].error == "not a URL or file: not a url or file"


def test_missing_input_list_is_an_error_item_not_an_exception(tmp_path, speech_clips):
    resolved = resolve_inputs([str(speech_clips["weather"].path)], [tmp_path / "nope.txt"])
    assert len(resolved.items) == 2
    assert resolved.items[0].error is None
    assert resolved.items[1].error == f"input list not found: {tmp_path / 'nope.txt'}"


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
