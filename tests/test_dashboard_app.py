"""The pages through Streamlit's AppTest: submit validation, settings, and the monitor/results of a small real run
(real yt-dlp download from the local media server, real bundled model, real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bulk_transcribe.dashboard import render
from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, VideoItem

REPO = Path(__file__).resolve().parents[1]
PAGE_REL = "pages/02_Bulk_Transcribe.py"
HOME = str(REPO / "streamlit_app.py")
TIMEOUT = 120  # a generous ceiling for one script run (the start resolves URLs), not an assertion on speed


@pytest.fixture
def roots(tmp_path, monkeypatch):
    media, out = tmp_path / "media", tmp_path / "out"
    media.mkdir()
    out.mkdir()
    monkeypatch.setenv("BULK_TRANSCRIBE_MEDIA_ROOT", str(media))
    monkeypatch.setenv("BULK_TRANSCRIBE_OUTPUT_ROOT", str(out))
    monkeypatch.delenv("BULK_TRANSCRIBE_PARALLEL", raising=False)
    return media, out


def page() -> AppTest:
    # Entered through the entry script, as the server does, so page links resolve like in the browser.
    return AppTest.from_file(HOME, default_timeout=TIMEOUT).switch_page(PAGE_REL)


def labelled(widgets, label):
    return next(w for w in widgets if w.label == label)


def shown(element) -> str:
    """What a person reads: outside text reaches markdown widgets backslash-escaped (dashboard.text.plain)."""
    return element.value.replace("\\", "")


def test_settings_start_with_safe_defaults(roots):
    at = page().run()
    assert not at.exception
    parallel = labelled(at.sidebar.toggle, "Parallel processing")
    assert parallel.value is False
    assert labelled(at.sidebar.number_input, "Workers").disabled  # only meaningful in parallel mode
    assert labelled(at.sidebar.text_input, "Model").value == "bundled"
    assert labelled(at.sidebar.number_input, "Batch size").value == 0  # the device's measured default
    assert labelled(at.sidebar.multiselect, "Output formats").value == ["txt", "srt", "vtt", "json"]
    assert labelled(at.sidebar.text_input, "Output folder").value == "transcripts"
    parallel.set_value(True).run()
    assert not labelled(at.sidebar.number_input, "Workers").disabled
    assert not labelled(at.sidebar.text_input, "Ray address").disabled
    assert labelled(at.button, "Start transcription")


def test_an_empty_submission_is_a_message_not_a_run(roots):
    at = page().run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception
    assert any("Nothing to transcribe" in e.value for e in at.error)
    assert "run" not in at.query_params
    assert not at.dataframe


def test_paths_outside_the_media_root_never_reach_the_engine(roots):
    at = page().run()
    at.text_area[0].input("/etc/passwd\n../../etc/hosts\n").run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception
    assert any("outside the allowed folder" in shown(w) for w in at.warning)
    assert any("None of the inputs can be used" in e.value for e in at.error)
    assert "run" not in at.query_params


def test_bad_settings_are_shown_as_errors(roots):
    at = page().run()
    at.text_area[0].input("https://example.com/a.mp3").run()
    labelled(at.sidebar.text_input, "Output folder").input("../../escape").run()
    labelled(at.sidebar.text_input, "Language").input("klingon!").run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "must be inside" in errors and "not an ISO code" in errors
    assert "run" not in at.query_params


def test_a_small_real_run_from_submit_to_results(roots, media_server, speech_clips, request):
    """Three inputs: a clip, a clip whose site answers 500 for now (a retry may help), and a 404 (it cannot)."""
    media, out = roots
    weather, later = speech_clips["weather"], speech_clips["library"]
    media_server.closed.add(later.path.name)
    request.addfinalizer(lambda: media_server.closed.discard(later.path.name))
    at = page().run()
    at.text_area[0].input(
        f"{media_server.url(weather.path.name)}\n{media_server.url('gate/' + later.path.name)}\n"
        f"{media_server.url('status/404')}\n"
    ).run()
    labelled(at.sidebar.multiselect, "Output formats").set_value(["txt", "srt"]).run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    run_id = at.query_params["run"]
    assert at.query_params["out"] == "transcripts"

    # The start returns at once; the inputs resolve in the run, each video joining the table when known.
    assert len(at.dataframe[0].value) <= 3

    entry = render.shared_registry().get(run_id)
    assert entry is not None and entry.wait_done(timeout=TIMEOUT)

    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    rows = {r["Title"]: r for r in table.to_dict("records")}
    done = next(r for t, r in rows.items() if weather.name in t)
    down = next(r for t, r in rows.items() if later.name in t)
    gone = next(r for t, r in rows.items() if weather.name not in t and later.name not in t)
    assert done["Status"] == "done" and done["Progress"] == 100
    assert done["Duration"] not in ("", None) and done["Speed"].endswith("×")
    assert down["Status"] == "failed" and "500" in down["Error"]
    assert gone["Status"] == "failed" and "404" in gone["Error"]
    figures = {m.label: m.value for m in at.metric}
    assert [figures[k] for k in ("Done", "Failed", "Cancelled", "In progress", "Waiting")] == ["1", "2", "0", "0", "0"]

    # Results: a zip of the run and each chosen format of the transcript, and the text shown in the page.
    downloads = [b.label for b in at.get("download_button")]
    assert "Download all transcripts (zip)" in downloads and ".txt" in downloads and ".srt" in downloads
    assert ".vtt" not in downloads
    assert "breeze" in " ".join(t.value for t in at.text).lower()
    # A 404 is not something a retry changes: Retry offers only the 500, and the page says the 404 failed for good.
    assert [b.label for b in at.button if b.label.startswith("Retry")] == ["Retry 1 failed"]
    assert any("1 failed for good" in c.value for c in at.caption)

    # Reopening the URL in a new session (same server) shows the same run.
    again = page()
    again.query_params.update({"run": run_id, "out": "transcripts"})
    again.run()
    assert not again.exception
    assert again.dataframe[0].value["Title"].tolist() == table["Title"].tolist()

    # After a server restart the registry is empty: the run is read back from the store in OUT.
    render.shared_registry.clear()
    fresh = page()
    fresh.query_params.update({"run": run_id, "out": "transcripts"})
    fresh.run()
    assert not fresh.exception
    reread = {r["Title"]: r["Status"] for r in fresh.dataframe[0].value.to_dict("records")}
    assert reread == {t: r["Status"] for t, r in rows.items()}

    # Retry failed once the site is back: a new run; the done video stays done, the 500 is done now, the 404 is
    # still failed.
    media_server.closed.discard(later.path.name)
    labelled(fresh.button, "Retry 1 failed").click().run()
    assert not fresh.exception and not fresh.error
    retry_id = fresh.query_params["run"]
    assert retry_id != run_id
    assert render.shared_registry().get(retry_id).wait_done(timeout=TIMEOUT)
    fresh.run()
    statuses = sorted(r["Status"] for r in fresh.dataframe[0].value.to_dict("records"))
    assert statuses == ["done", "done", "failed"]

    # The home page lists both runs with a link that reopens each.
    home = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not home.exception
    listed = home.dataframe[0].value
    assert {run_id, retry_id} <= {link.split("run=")[1].split("&")[0] for link in listed["Run"]}


def test_an_unknown_run_in_the_url_is_a_warning(roots):
    at = page()
    at.query_params.update({"run": "no-such-run", "out": "transcripts"})
    at.run()
    assert not at.exception
    assert any("was not found" in w.value for w in at.warning)
    at = page()
    at.query_params.update({"run": "x", "out": "../../etc"})
    at.run()
    assert not at.exception and any("Cannot open that run" in e.value for e in at.error)


def test_an_unreachable_ray_cluster_is_a_message_and_nothing_starts(roots):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    at = page().run()
    at.text_area[0].input("https://example.com/a.mp3").run()
    labelled(at.sidebar.toggle, "Parallel processing").set_value(True).run()
    labelled(at.sidebar.text_input, "Ray address").input(f"127.0.0.1:{port}").run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception
    message = " ".join(shown(e) for e in at.error)
    assert f"127.0.0.1:{port}" in message and "cannot be reached" in message
    assert "switch off Parallel processing" in message
    assert "run" not in at.query_params


def test_history_shows_each_runs_own_outcome_and_a_killed_run_as_stopped(roots):
    """Two runs into one folder: the first cancelled with 1 of 3 done, the second finishing the rest; a third
    recorded as running whose process is gone. The home page shows each run's own counts and 'stopped'."""
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.session_manager import SessionStore

    _, out = roots
    folder = out / "shared"
    store = SessionStore(RunConfig(out_dir=folder).state_db)
    items = [VideoItem(f"https://example.com/{n}.mp3", SourceKind.URL, n, title=n, duration_s=5.0) for n in "abc"]
    first = store.begin_run(RunConfig(out_dir=folder), "sequential")
    store.register_videos(first, items)
    store.apply_event(ProgressEvent(items[0].video_id, EventKind.DONE))
    for item in items[1:]:
        store.apply_event(ProgressEvent(item.video_id, EventKind.CANCELLED))
    store.finish_run(first, "cancelled")
    second = store.begin_run(RunConfig(out_dir=folder), "sequential")
    store.register_videos(second, items)
    for item in items[1:]:
        store.apply_event(ProgressEvent(item.video_id, EventKind.DONE))
    store.finish_run(second, "finished")
    killed = store.begin_run(RunConfig(out_dir=folder), "sequential")  # never finished, nobody owns the folder

    home = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not home.exception
    rows = {link.split("run=")[1].split("&")[0]: r for link, r in
            zip(home.dataframe[0].value["Run"], home.dataframe[0].value.to_dict("records"))}
    assert (rows[first]["Status"], rows[first]["Done"], rows[first]["Cancelled"]) == ("cancelled", 1, 2)
    assert (rows[second]["Status"], rows[second]["Done"], rows[second]["Cancelled"]) == ("finished", 3, 0)
    assert rows[killed]["Status"] == "stopped"


def test_a_page_opened_on_a_run_shows_that_runs_settings_in_the_form(roots):
    """A reload (a fresh browser session) beside a running parallel run into `talks`: the form holds that run's
    settings, not the defaults, so Start does what the run on screen does; a visitor's own values still win."""
    from bulk_transcribe.config import DownloadOptions, RunConfig, TranscribeOptions
    from bulk_transcribe.session_manager import SessionStore

    _, out_root = roots
    out = out_root / "talks"
    config = RunConfig(inputs=("https://example.com/v/1",), out_dir=out, parallel=True, workers=3,
                       formats=("txt", "srt"), transcribe=TranscribeOptions(language="en", batch_size=4),
                       download=DownloadOptions(rate_limit=300 * 1024, sleep_s=2.0))
    run_id = SessionStore(config.state_db).begin_run(config, "parallel")
    at = page()
    at.query_params["run"], at.query_params["out"] = run_id, "talks"
    at.run()
    assert not at.exception
    assert labelled(at.sidebar.toggle, "Parallel processing").value is True
    assert labelled(at.sidebar.number_input, "Workers").value == 3
    assert labelled(at.sidebar.text_input, "Output folder").value == "talks"
    assert labelled(at.sidebar.text_input, "Language").value == "en"
    assert labelled(at.sidebar.multiselect, "Output formats").value == ["txt", "srt"]
    assert labelled(at.sidebar.number_input, "Batch size").value == 4
    assert labelled(at.sidebar.number_input, "Download rate limit (KiB/s)").value == 300
    assert labelled(at.sidebar.number_input, "Pause between downloads (s)").value == 2.0
    labelled(at.sidebar.number_input, "Workers").set_value(2).run()  # the visitor's choice, kept on rerun
    at.run()
    assert labelled(at.sidebar.number_input, "Workers").value == 2


def test_the_search_page_finds_a_moment_and_plays_it_from_there(roots, speech_clips):
    """A real transcript (bundled model) of a clip under the media root, searched on the Search page: the table
    shows the hit, the player starts at it, site text stays text."""
    from bulk_transcribe.config import RunConfig, TranscribeOptions
    from bulk_transcribe.runs import run_batch

    media, out = roots
    clip = media / "garden.ogg"
    clip.write_bytes(speech_clips["garden"].path.read_bytes())
    result = run_batch(RunConfig(inputs=(str(clip),), out_dir=out / "talks",
                                 transcribe=TranscribeOptions(cpu_threads=2)))
    assert result.exit_code == 0

    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).switch_page("pages/03_Search.py").run()
    assert not at.exception
    assert [s.label for s in at.selectbox] == ["Run", "Language"] and not at.toggle  # nothing flagged: no switch
    at.text_input(key="search-query").input("tomatoes").run()
    assert not at.exception
    rows = at.dataframe[0].value.to_dict("records")
    assert len(rows) == 1 and rows[0]["Title"] == "garden" and rows[0]["At"] == "0:00"
    assert "«tomatoes»" in rows[0]["Said"] and rows[0]["File"] == f"{clip} @ 0:00" and rows[0]["Folder"] == "talks"
    assert at.query_params["q"] == "tomatoes"
    assert at.get("audio")[0].proto.start_time == 0  # the local file, from the hit
    assert "garden" in [t.value for t in at.text] and not at.subheader  # the title as text, never markdown
    at.text_input(key="search-query").input('"').run()
    assert not at.exception and any("nothing to search for" in shown(w) for w in at.warning)
    at.text_input(key="search-query").input("zeppelin").run()
    assert any(i.value == "No hits." for i in at.info)


def test_flagged_transcripts_are_shown_and_redo_flagged_fixes_what_it_can(roots, mixed_languages, whisper_base):
    """English and Spanish through the bundled English-only model: the Spanish row says why not to trust it,
    Need review counts it, the filter finds it; "Redo 1 flagged" with Whisper base as the recheck model (a folder
    in the media root) starts a new run that transcribes just that one again and keeps the better."""
    import os
    import shutil

    media, out = roots
    for name in ("english", "spanish"):
        shutil.copy(mixed_languages[name], media / mixed_languages[name].name)
    models = media / "models" / "whisper-base"
    models.mkdir(parents=True)
    for part in whisper_base.iterdir():  # hard links: the 145 MB model, inside the media root, for free
        os.link(part, models / part.name)

    at = page().run()
    at.text_area[0].input(f"{media / 'english.mp3'}\n{media / 'spanish.mp3'}").run()
    labelled(at.button, "Start transcription").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = at.query_params["run"]
    assert render.shared_registry().get(run_id).wait_done(timeout=TIMEOUT)
    at.run()
    rows = {r["Title"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["english"]["Quality"] == "ok" and rows["english"]["Language"] == "en"
    assert rows["spanish"]["Quality"].startswith("needs review: speech expected, none transcribed")
    figures = {m.label: m.value for m in at.metric}
    assert figures["Done"] == "2" and figures["Need review"] == "1"
    at.segmented_control(key="table-filter").set_value("Needs review").run()
    assert at.dataframe[0].value["Title"].tolist() == ["spanish"]

    labelled(at.sidebar.text_input, "Recheck model").input("models/whisper-base").run()
    assert not at.warning, [w.value for w in at.warning]
    labelled(at.button, "Redo 1 flagged").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    recheck_id = at.query_params["run"]
    assert recheck_id != run_id and render.shared_registry().get(recheck_id).wait_done(timeout=TIMEOUT)
    at.segmented_control(key="table-filter").set_value("All").run()
    rows = {r["Title"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["spanish"]["Quality"] == "ok" and rows["spanish"]["Language"] == "es"
    assert "rechecked with safer options (whisper-base): kept the recheck" in rows["spanish"]["Note"]
    assert rows["english"]["Quality"] == "ok"
    assert not [b for b in at.button if b.label.startswith("Redo")]  # nothing left to recheck
