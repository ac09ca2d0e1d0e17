"""download.py with real yt-dlp against the misbehaving local media server.

Every count-sensitive test requests a path no other test uses (a fresh copy of a clip, or a uuid suffix), because
the server's hit counters and its "first N requests get 429" rule are per path for the whole session.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from pathlib import Path

import av
import pytest

from bulk_transcribe import errors
from bulk_transcribe.config import DownloadOptions
from bulk_transcribe.media.download import AudioDownloader, FetchedAudio
from bulk_transcribe.models import SourceKind, VideoItem
from bulk_transcribe.media.audio import probe_media

FAST = DownloadOptions(retries=2, backoff_s=0.01, socket_timeout_s=2)


def url_item(url: str) -> VideoItem:
    return VideoItem(url, SourceKind.URL, url)


def fresh_copy(media_dir: Path, clip: Path, suffix: str | None = None) -> str:
    """A uniquely named copy of `clip` in the served folder; returns its name."""
    name = f"{clip.stem}-{uuid.uuid4().hex[:8]}{clip.suffix if suffix is None else suffix}"
    shutil.copy(clip, media_dir / name)
    return name


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path / "out" / ".work"


def fetch_error(downloader: AudioDownloader, url: str, kind=errors.VideoError, **kwargs) -> errors.VideoError:
    with pytest.raises(kind) as caught:
        downloader.fetch(url_item(url), **kwargs)
    return caught.value


# --------------------------------------------------------------------------------------------- success paths


def test_direct_url_downloads_a_decodable_file_with_progress(media_server, speech_clips, work):
    clip = speech_clips["weather"].path
    progress: list[tuple] = []
    downloader = AudioDownloader(FAST, work)
    fetched = downloader.fetch(url_item(media_server.url(clip.name)), on_progress=lambda *a: progress.append(a))

    assert fetched.temporary and fetched.path.is_file() and work in fetched.path.parents
    assert fetched.path.read_bytes() == clip.read_bytes()
    assert fetched.size_bytes == clip.stat().st_size and fetched.download_s >= 0
    assert probe_media(fetched.path) > 1.0
    assert progress and progress[-1][0] == progress[-1][1] == clip.stat().st_size
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)

    downloader.release(fetched)
    assert not fetched.path.exists() and not fetched.path.parent.exists()


def test_page_url_goes_through_yt_dlp_extraction(media_server, media_dir, speech_clips, work):
    # No extension: yt-dlp's generic extractor must look at the response to find the media.
    name = fresh_copy(media_dir, speech_clips["garden"].path, suffix="")
    fetched = AudioDownloader(FAST, work).fetch(url_item(media_server.url(name)))
    with av.open(str(fetched.path)) as container:
        assert container.streams.audio
    assert fetched.size_bytes == speech_clips["garden"].path.stat().st_size


def test_feed_entry_downloads(media_server, speech_clips, work):
    from bulk_transcribe.inputs import resolve_inputs

    item = resolve_inputs([media_server.url("feed.rss")], options=FAST).items[2]
    fetched = AudioDownloader(FAST, work).fetch(item)
    assert fetched.path.read_bytes() == speech_clips["garden"].path.read_bytes()


def test_keep_audio_moves_the_file_to_the_audio_folder(media_server, speech_clips, work):
    downloader = AudioDownloader(DownloadOptions(keep_audio=True, retries=1), work)
    fetched = downloader.fetch(url_item(media_server.url(speech_clips["train"].path.name)))
    kept = downloader.release(fetched)
    assert kept == work.parent / "audio" / fetched.path.name and kept.is_file()
    assert not fetched.path.parent.exists()


def test_local_file_is_used_in_place(speech_clips, bad_media, work, tmp_path):
    clip = speech_clips["weather"].path
    downloader = AudioDownloader(FAST, work)
    fetched = downloader.fetch(VideoItem(str(clip), SourceKind.FILE, str(clip)))
    assert fetched == FetchedAudio(clip, False, clip.stat().st_size, 0.0)
    downloader.release(fetched)
    assert clip.is_file()  # never deleted: it is the user's file

    with pytest.raises(errors.InputError, match="^file not found: "):
        downloader.fetch(VideoItem(str(tmp_path / "gone.mp3"), SourceKind.FILE, "gone.mp3"))
    with pytest.raises(errors.MediaError, match="^file is empty$"):
        downloader.fetch(VideoItem(str(bad_media["empty"]), SourceKind.FILE, "empty.mp4"))


def test_unresolved_item_raises_its_own_error(work):
    item = VideoItem("nope", SourceKind.FILE, "nope", error="not a URL or file: nope")
    with pytest.raises(errors.InputError, match="^not a URL or file: nope$"):
        AudioDownloader(FAST, work).fetch(item)


# --------------------------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("status, phrase", [(404, "Not Found"), (403, "Forbidden"), (410, "Gone")])
def test_client_errors_are_not_retried(media_server, work, status, phrase, capfd):
    path = f"status/{status}/{uuid.uuid4().hex[:8]}"
    attempts = []
    downloader = AudioDownloader(DownloadOptions(retries=3, backoff_s=0.01), work,
                                 before_download=lambda: attempts.append(1))
    error = fetch_error(downloader, media_server.url(path), errors.DownloadError)
    assert str(error) == f"HTTP {status} {phrase}: {media_server.url(path)}"
    assert not error.retryable
    assert media_server.count(path) == 1 and len(attempts) == 1
    out, err = capfd.readouterr()
    assert out == "" and "ERROR" not in err  # yt-dlp kept quiet


def test_missing_direct_media_file_is_a_404_with_one_request(media_server, work):
    name = f"missing-{uuid.uuid4().hex[:8]}.mp3"
    error = fetch_error(AudioDownloader(FAST, work), media_server.url(name), errors.DownloadError)
    assert str(error) == f"HTTP 404 Not Found: {media_server.url(name)}"
    assert media_server.count(name) == 1


def test_server_errors_are_retried_with_backoff_up_to_the_limit(media_server, work):
    path = f"status/500/{uuid.uuid4().hex[:8]}"
    starts = []
    downloader = AudioDownloader(DownloadOptions(retries=3, backoff_s=0.01), work,
                                 before_download=lambda: starts.append(1))
    error = fetch_error(downloader, media_server.url(path), errors.DownloadError)
    assert str(error) == f"HTTP 500 Internal Server Error: {media_server.url(path)} (after 3 attempts)"
    assert media_server.count(path) == 3 and len(starts) == 3


def test_retry_after_is_honoured_then_the_download_succeeds(media_server, media_dir, speech_clips, work):
    name = fresh_copy(media_dir, speech_clips["weather"].path)
    waits: list[float] = []
    downloader = AudioDownloader(DownloadOptions(retries=3, backoff_s=0.01), work, on_rate_limited=waits.append)
    fetched = downloader.fetch(url_item(media_server.url(f"flaky429/{name}")))
    assert fetched.path.read_bytes() == speech_clips["weather"].path.read_bytes()
    assert waits == [1.0]  # the server's Retry-After: 1, shared with the caller
    assert media_server.count(f"flaky429/{name}") == 2


def test_rate_limit_storm_gives_up_after_a_bounded_number_of_requests(media_server, work):
    path = f"storm429/{uuid.uuid4().hex[:8]}.mp3"
    waits: list[float] = []
    downloader = AudioDownloader(DownloadOptions(retries=2, backoff_s=0.01), work, on_rate_limited=waits.append)
    error = fetch_error(downloader, media_server.url(path), errors.DownloadError)
    assert str(error) == f"rate limited (HTTP 429) after 2 attempts: {media_server.url(path)}"
    assert media_server.count(path) == 2 and waits == [1.0]


def test_retry_after_longer_than_allowed_fails_at_once(media_server, work):
    path = f"storm429/{uuid.uuid4().hex[:8]}"
    options = DownloadOptions(retries=5, backoff_s=0.01, max_retry_after_s=0.5)
    error = fetch_error(AudioDownloader(options, work), media_server.url(path), errors.DownloadError)
    assert str(error).startswith("rate limited (HTTP 429): server asks to wait 1 s, more than the 0.5 s allowed")
    assert media_server.count(path) == 1


# --------------------------------------------------------------------------------------------- network failures


@pytest.mark.parametrize("suffix", ["", ".mp3"])  # through the extractor, and straight to the file downloader
def test_hanging_server_times_out(media_server, work, suffix):
    path = f"hang/{uuid.uuid4().hex[:8]}{suffix}"
    options = DownloadOptions(retries=1, socket_timeout_s=0.5)
    error = fetch_error(AudioDownloader(options, work), media_server.url(path), errors.DownloadError)
    assert str(error) == f"timed out after 0.5 s: {media_server.url(path)}"
    assert error.retryable


@pytest.mark.parametrize("suffix", ["", ".mp3"])
def test_redirect_loop_fails_clearly(media_server, work, suffix):
    path = f"redirect-loop/{uuid.uuid4().hex[:8]}{suffix}"
    error = fetch_error(AudioDownloader(FAST, work), media_server.url(path), errors.DownloadError)
    assert str(error) == f"too many redirects: {media_server.url(path)}"
    assert not error.retryable


def test_unreachable_host_names_host_and_port(work):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/clip.mp3"
    error = fetch_error(AudioDownloader(DownloadOptions(retries=1), work), url, errors.DownloadError)
    assert str(error) == f"cannot connect to 127.0.0.1:{port} (connection refused): {url}"


def test_page_without_media_is_an_input_error(media_server, work):
    url = media_server.url(f"html/{uuid.uuid4().hex[:8]}")
    error = fetch_error(AudioDownloader(FAST, work), url, errors.InputError)
    assert str(error) == f"no media found (unsupported URL or page without video): {url}"


# --------------------------------------------------------------------------------------------- limits and cancel


def test_max_filesize_refuses_before_downloading(media_server, media_dir, speech_clips, work):
    clip = speech_clips["weather"].path
    name = fresh_copy(media_dir, clip)
    progress = []
    downloader = AudioDownloader(DownloadOptions(retries=3, max_filesize=1000), work)
    error = fetch_error(downloader, media_server.url(name), errors.InputError,
                        on_progress=lambda *a: progress.append(a))
    size = f"{clip.stat().st_size / 1024:.1f} KiB"
    assert str(error) == f"file too large: {size} > limit 1000 B: {media_server.url(name)}"
    assert progress == []  # not one byte of the body was taken
    assert media_server.count(name) == 1  # and not retried
    assert not any(p.is_file() for p in work.rglob("*"))


def test_cancel_during_download_stops_and_cleans_up(media_server, media_dir, speech_clips, work):
    name = fresh_copy(media_dir, speech_clips["weather"].path)
    progress = []
    downloader = AudioDownloader(FAST, work)
    with pytest.raises(errors.Cancelled):
        downloader.fetch(url_item(media_server.url(f"slow/{name}")), on_progress=lambda *a: progress.append(a),
                         should_cancel=lambda: bool(progress))
    assert len(progress) == 1 and progress[0][0] < speech_clips["weather"].path.stat().st_size
    assert list(work.iterdir()) == []


def test_cancel_before_start_makes_no_request(media_server, work):
    path = f"{uuid.uuid4().hex[:8]}.mp3"
    with pytest.raises(errors.Cancelled):
        AudioDownloader(FAST, work).fetch(url_item(media_server.url(path)), should_cancel=lambda: True)
    assert media_server.count(path) == 0


def test_cookies_file_is_used_without_being_rewritten(media_server, speech_clips, work, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n")
    before = cookies.read_bytes()
    downloader = AudioDownloader(DownloadOptions(cookies_file=str(cookies), retries=1), work)
    downloader.fetch(url_item(media_server.url(speech_clips["weather"].path.name)))
    assert cookies.read_bytes() == before

    missing = AudioDownloader(DownloadOptions(cookies_file=str(tmp_path / "none.txt")), work)
    with pytest.raises(errors.InputError, match="^cookies file not found: "):
        missing.fetch(url_item(media_server.url(speech_clips["weather"].path.name)))


def test_sleep_s_spaces_the_starts_of_downloads_through_the_runs_limiter(media_server, media_dir, speech_clips,
                                                                         work):
    """Spacing lives in one place, the limiter every worker downloads through (engine/limiter.py): the
    downloader asks it before each attempt and never sleeps on its own."""
    from bulk_transcribe.engine.limiter import LimiterClient, LocalLimiter

    names = [fresh_copy(media_dir, speech_clips["weather"].path) for _ in range(2)]
    limiter = LocalLimiter(max_concurrent=2, min_interval_s=0.3)
    client = LimiterClient(limiter, "local")
    downloader = AudioDownloader(DownloadOptions(retries=1), work, before_download=client.before_download)
    for name in names:
        item = url_item(media_server.url(name))
        with client.holding(item.video_id):
            downloader.release(downloader.fetch(item))
    starts = limiter.stats()["recent_starts"]
    # A lower bound only (sleeping can overshoot on a busy machine, never undershoot).
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.3
    assert sum(1 for _, path in media_server.request_log if path.lstrip("/") in names) == 2


# --------------------------------------------------------------------------------------------- trickles and stalls


def wait_for_hangups(media_server, path: str, count: int) -> list[int]:
    """The server notes a request's bytes once it sees the client gone (its next write fails)."""
    import time

    for _ in range(100):
        sent = media_server.bytes_sent(path)
        if len(sent) >= count:
            return sent
        time.sleep(0.1)
    return media_server.bytes_sent(path)


def test_trickling_download_is_stalled_retried_then_failed(media_server, media_dir, speech_clips, work):
    """A server sending a few bytes a second with the right Content-Length never trips the socket timeout; the
    low-speed guard must (the file would take minutes at this pace)."""
    name = fresh_copy(media_dir, speech_clips["weather"].path)
    path = f"trickle/{name}"
    options = DownloadOptions(retries=2, backoff_s=0.01, stall_bytes_per_s=200, stall_time_s=1)
    error = fetch_error(AudioDownloader(options, work), media_server.url(path), errors.DownloadError)
    assert str(error) == f"download stalled: below 200 bytes/s for 1 s: {media_server.url(path)} (after 2 attempts)"
    assert media_server.count(path) == 2  # retried once, then given up
    sent = wait_for_hangups(media_server, path, 2)
    assert len(sent) == 2 and all(n < 200 for n in sent)  # each attempt hung up early, not at the end
    assert list(work.iterdir()) == []


def test_rate_limit_below_the_stall_speed_lowers_the_guard():
    from bulk_transcribe.media.download import transfer_guard

    assert transfer_guard(DownloadOptions(stall_bytes_per_s=1000, rate_limit=600)).stall_bytes_per_s == 300
    assert transfer_guard(DownloadOptions(stall_bytes_per_s=1000, rate_limit=10**6)).stall_bytes_per_s == 1000
    assert transfer_guard(DownloadOptions(stall_bytes_per_s=0, rate_limit=600)).stall_bytes_per_s == 0


def test_cancel_lands_while_a_read_waits_on_a_trickle(media_server, media_dir, speech_clips, work):
    """yt-dlp reads 1 KiB blocks and calls its progress hook after each: at 20 bytes/s that is 50 s between
    chances to cancel. The guard's watchdog must shut the socket down at once instead."""
    name = fresh_copy(media_dir, speech_clips["weather"].path)
    path = f"trickle/{name}"
    options = DownloadOptions(retries=3, backoff_s=0.01, stall_bytes_per_s=0)  # only the cancel can stop it
    with pytest.raises(errors.Cancelled):
        AudioDownloader(options, work).fetch(url_item(media_server.url(path)),
                                             should_cancel=lambda: media_server.count(path) > 0)
    assert media_server.count(path) == 1  # a cancel is final: no retry
    (sent,) = wait_for_hangups(media_server, path, 1)
    assert sent < 100  # far from the 1,024 bytes yt-dlp's first block would wait for
    assert list(work.iterdir()) == []


def test_page_that_inflates_past_the_cap_is_refused(media_server, work):
    url = media_server.url(f"gzip-bomb/{uuid.uuid4().hex[:8]}")
    error = fetch_error(AudioDownloader(FAST, work), url, errors.InputError)
    assert str(error) == f"page refused: its gzip body inflates past 16.0 MiB (a decompression bomb?): {url}"


# --------------------------------------------------------------------------------------------- one extraction per video


def stream_items(urls: list[str], options: DownloadOptions = FAST) -> list[VideoItem]:
    from bulk_transcribe.inputs import InputStream

    with InputStream(urls, options=options) as stream:
        items = []
        while not stream.finished:
            items.extend(stream.take(timeout=0.5))
    return items


def test_a_video_page_is_requested_once_through_resolution_and_download(media_server, media_dir, speech_clips,
                                                                        work):
    names = [fresh_copy(media_dir, speech_clips["weather"].path, suffix="") for _ in range(5)]
    items = stream_items([media_server.url(f"page/{name}?delay=0.2") for name in names])
    assert len(items) == 5 and all(item.error is None and item.info is not None for item in items)
    downloader = AudioDownloader(FAST, work)
    for item in items:
        fetched = downloader.fetch(item)
        assert fetched.path.read_bytes() == speech_clips["weather"].path.read_bytes()
        downloader.release(fetched)
    assert [media_server.count(f"page/{name}") for name in names] == [1] * 5  # 10 before: once more to download
    assert [media_server.count(name) for name in names] == [1] * 5


def test_cached_info_is_small_plain_data_and_never_shown(media_server, media_dir, speech_clips):
    import pickle

    name = fresh_copy(media_dir, speech_clips["garden"].path, suffix="")
    (item,) = stream_items([media_server.url(f"page/{name}")])
    assert item.info["url"] == media_server.url(name) and item.info["formats"]
    assert len(pickle.dumps(item)) < 8_000  # shipped to Ray actors with the item
    assert "formats" not in repr(item) and pickle.loads(pickle.dumps(item)) == item


def test_old_info_is_extracted_afresh(media_server, media_dir, speech_clips, work):
    from bulk_transcribe.media.download import INFO_MAX_AGE_S

    name = fresh_copy(media_dir, speech_clips["train"].path, suffix="")
    (item,) = stream_items([media_server.url(f"page/{name}")])
    item.info["epoch"] -= INFO_MAX_AGE_S + 1  # resolved half an hour ago: its signed URLs may be dead
    fetched = AudioDownloader(FAST, work).fetch(item)
    assert fetched.path.read_bytes() == speech_clips["train"].path.read_bytes()
    assert media_server.count(f"page/{name}") == 2


def test_an_expired_media_url_is_extracted_afresh_once(media_server, media_dir, speech_clips, work):
    """A site's signed media URL died between resolution and download: one fresh page, then the new link."""
    name = fresh_copy(media_dir, speech_clips["library"].path, suffix="")
    (item,) = stream_items([media_server.url(f"page/{name}?sign=1")])
    expired = urlsplit_path(item.info["url"])
    media_server.expire_signed()
    starts = []
    downloader = AudioDownloader(FAST, work, before_download=lambda: starts.append(1))
    fetched = downloader.fetch(item)
    assert fetched.path.read_bytes() == speech_clips["library"].path.read_bytes()
    assert media_server.count(f"page/{name}") == 2 and media_server.count(expired) == 1
    assert len(starts) == 2  # the fresh extraction is a request too: paced and limited like any other

    # Expired again, and the video is gone meanwhile (its fresh link answers 404): re-extracted once, then failed.
    media_server.expire_signed()
    (media_dir / name).unlink()
    with pytest.raises(errors.DownloadError) as caught:
        AudioDownloader(DownloadOptions(retries=3, backoff_s=0.01), work).fetch(item)
    # It names the media link that is gone and the page it came from.
    message = str(caught.value)
    assert message.startswith("HTTP 404 Not Found: ") and message.endswith(f" (from {item.source})"), message
    assert "/signed/" in message, message
    assert media_server.count(f"page/{name}") == 3 and media_server.count(expired) == 2


def urlsplit_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def test_credentials_travel_with_the_item_to_the_request_and_never_to_the_store(media_server, media_dir,
                                                                               speech_clips, work, tmp_path):
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.session_manager import SessionStore

    user, secret = media_server.auth
    name = fresh_copy(media_dir, speech_clips["weather"].path, suffix="")  # a page request, not a direct link
    url = media_server.url(f"auth/{name}").replace("http://", f"http://{user}:{secret}@")
    (item,) = stream_items([url])
    shown = url.replace(secret, "***")
    assert (item.source, item.input, item.error, item.request_url) == (shown, shown, None, url)
    assert secret not in repr(item) and secret not in str(item.meta)

    # No url_credentials in the options: the item carries what its download needs, with or without cached info.
    for info in (item.info, None):
        item.info = info
        fetched = AudioDownloader(FAST, work).fetch(item)
        assert fetched.path.read_bytes() == speech_clips["weather"].path.read_bytes()
    assert media_server.count(f"auth/{name}") == 4  # resolution, download; page and download again without info

    db = tmp_path / "store.db"
    with SessionStore(db) as store:
        run_id = store.begin_run(RunConfig(inputs=(url,), out_dir=tmp_path), "sequential")
        store.register_videos(run_id, [item])
        (record,) = store.videos(run_id)
    assert record.source == shown and record.to_item().request_url is None
    assert not any(secret.encode() in path.read_bytes() for path in tmp_path.glob("store.db*"))
