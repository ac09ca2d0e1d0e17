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
    clip = speech_clips["weather"].path
    name = f"talk-{uuid.uuid4().hex[:8]}"  # no extension: a page, not a direct media link
    shutil.copy(clip, media_dir / name)
    slow = [media_server.url(f"page/{name}?n={n}") for n in range(3)]  # three distinct pages, slow for now
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


def _cancel_once_the_file_is_in(handle) -> None:
    for _ in range(600):  # the local file is in the table: the pages are still being fetched
        if handle.snapshot().videos:
            break
        handle.wait(0.05)
    handle.cancel()
    assert handle.wait(60)


def test_a_rerun_lists_finished_pages_without_asking_their_site_again(tmp_path, own_server, media_dir,
                                                                        speech_clips):
    name = f"talk-{uuid.uuid4().hex[:8]}"
    shutil.copy(speech_clips["train"].path, media_dir / name)
    pages = [own_server.url(f"page/{name}?n={n}") for n in range(2)]
    config = RunConfig(inputs=tuple(pages), out_dir=tmp_path / "out", formats=("txt",),
                       transcribe=TranscribeOptions(cpu_threads=2))
    assert run_batch(config).counts.get("done") == 2
    requests = len(own_server.request_log)
    again = run_batch(config)
    assert again.tally.registered == 2 and again.tally.done_before == 2
    assert len(own_server.request_log) == requests, "a finished page was fetched again"
