"""Search across transcripts (bulk_transcribe.library): real transcripts from the bundled model on espeak-ng speech,
indexed as each video is delivered, searched through real SQLite FTS5.

The model runs once for the module (a few clips, sequential): a two-sentence talk as a local file and as a direct
link with a password on the local media server, and one clip per later run. Tests that change a folder work on a
copy of it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import media
from bulk_transcribe import layout, library
from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.library import links, lookup, query
from bulk_transcribe.models import EventKind, ProgressEvent, Segment, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.runs import run_batch
from bulk_transcribe.folder_lock import FolderBusy, OwnerLock
from bulk_transcribe.session_manager import SessionStore

FIRST = "The weather today is sunny with a light breeze from the west."
SECOND = "My grandmother grows tomatoes and beans in her small garden."
GAP_S = 3.0


@dataclass(frozen=True)
class Talk:
    path: Path
    starts: list[float]
    """When each sentence starts in the file (seconds)."""


@pytest.fixture(scope="module")
def talk(media_dir) -> Talk:
    """Two sentences with 3 s of silence before each: two segments, the second one well into the file."""
    path, starts = media.spaced_speech([FIRST, SECOND], media_dir / "library_talk.mp3", gap_s=GAP_S)
    return Talk(path, starts)


def transcribe(out: Path, *inputs: str):
    result = run_batch(RunConfig(inputs=tuple(inputs), out_dir=out, transcribe=TranscribeOptions(cpu_threads=2)))
    assert result.exit_code == 0, result
    return result


@pytest.fixture(scope="module")
def library_out(tmp_path_factory, talk, media_server) -> tuple[Path, str]:
    """OUT with the talk as a local file and as `http://User:PassWord@.../auth/library_talk.mp3`, indexed by the
    run itself (nothing here calls the index); returns OUT and the password-carrying URL as given."""
    user, secret = media_server.auth
    url = media_server.url(f"auth/{talk.path.name}").replace("http://", f"http://{user}:{secret}@")
    out = tmp_path_factory.mktemp("library") / "out"
    transcribe(out, str(talk.path), url)
    return out, url


def stored_segments(out: Path, video_id: str) -> list[dict]:
    data = json.loads(gzip.decompress((layout.stored_dir(out) / f"{video_id}.json.gz").read_bytes()))
    return data["segments"]


def copy_of(out: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(out, target)
    return target


# ---- found where it was said ----------------------------------------------------------------------------------------

def test_a_sentence_said_in_the_talk_is_found_at_its_own_segment_with_a_link_to_that_moment(library_out, talk):
    out, _ = library_out
    hits = library.search([out], "tomatoes")
    local = [h for h in hits if h.kind == "file"]
    assert len(local) == 1, hits
    hit = local[0]
    assert hit.source == str(talk.path) and hit.title == talk.path.stem
    # The hit is the second sentence's segment, as the transcript stored it (not the file's start).
    segment = next(s for s in stored_segments(out, hit.video_id) if "tomatoes" in s["text"].lower())
    assert (hit.start, hit.end) == (segment["start"], segment["end"])
    assert hit.start <= talk.starts[1] + 1.0 and hit.end >= talk.starts[1]
    assert hit.start >= talk.starts[0] + 2.0  # well past the first sentence
    assert "«tomatoes»" in hit.snippet.lower() and ("tomatoes", True) in [(p.lower(), m) for p, m in hit.parts]
    assert hit.link == f"{talk.path} @ 0:{int(hit.start):02d}"
    assert hit.out_dir == out and hit.score > 0
    # The first sentence is found at its own, earlier segment.
    breeze = next(h for h in library.search([out], "breeze") if h.kind == "file")
    assert breeze.start < hit.start and breeze.end <= hit.start + 0.5


def test_the_run_indexes_every_video_it_delivers(library_out):
    out, _ = library_out
    with SessionStore(layout.state_db(out), read_only=True) as store:
        conn = store.connection()
        done = {r.video_id for r in store.videos() if r.status is VideoStatus.DONE}
        indexed = {row[0] for row in conn.execute("SELECT video_id FROM library_videos")}
        per_video = dict(conn.execute("SELECT video_id, count(*) FROM library_segments GROUP BY video_id"))
        run_ids = {row[0] for row in conn.execute("SELECT DISTINCT run_id FROM library_segments")}
        languages = {row[0] for row in conn.execute("SELECT DISTINCT language FROM library_segments")}
    assert len(done) == 2 and indexed == done
    for video_id in done:
        assert per_video[video_id] == len([s for s in stored_segments(out, video_id) if s["text"].strip()])
    assert run_ids == {store_run(out)} and languages == {"en"}


def store_run(out: Path) -> str:
    with SessionStore(layout.state_db(out), read_only=True) as store:
        return store.runs()[0].run_id


def test_a_direct_link_with_a_password_links_to_the_moment_without_it(library_out, media_server):
    out, url = library_out
    user, secret = media_server.auth
    hit = next(h for h in library.search([out], "grandmother") if h.kind == "url")
    assert hit.source == url.replace(f":{secret}@", ":***@")  # stored redacted
    assert hit.link == media_server.url("auth/library_talk.mp3") + f"#t={int(hit.start)}"
    assert secret not in hit.link and "***" not in hit.link and user not in hit.link
    assert int(hit.start) > 0


def test_phrases_prefixes_and_operators_are_fts5s(library_out):
    out, _ = library_out
    assert {h.kind for h in library.search([out], '"tomatoes and beans"')} == {"file", "url"}
    assert library.search([out], '"beans and tomatoes"') == []  # a phrase is in order
    assert len(library.search([out], "tomat*")) == 2
    assert len(library.search([out], "grandmother NOT tomatoes")) == 0
    assert len(library.search([out], "breeze OR tomatoes")) == 4
    assert len(library.search([out], "TOMATOES")) == 2  # case-folded


def test_only_finished_videos_are_found(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    local = next(h for h in library.search([out], "tomatoes") if h.kind == "file")
    with SessionStore(layout.state_db(out)) as store:
        store.requeue(local.run_id, [local.video_id], [])  # queued again: its old transcript is no answer any more
    assert [h.kind for h in library.search([out], "tomatoes")] == ["url"]


# ---- redo, remove, rebuild -------------------------------------------------------------------------------------------

def test_a_redone_video_replaces_its_rows(library_out, tmp_path, talk):
    out = copy_of(library_out[0], tmp_path)
    with SessionStore(layout.state_db(out)) as store:
        conn = store.connection()
        video_id = next(h for h in library.search([out], "tomatoes") if h.kind == "file").video_id
        before = conn.execute("SELECT max(seg_id) FROM library_segments").fetchone()[0]
        assert library.index_video(conn, video_id, "run-2", [Segment(1.0, 2.5, "Completely different words."),
                                                             {"start": 4.0, "end": 5.0, "text": " "}], "en") == 1
        rows = conn.execute("SELECT seg_id, run_id, text FROM library_segments WHERE video_id = ?",
                            (video_id,)).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("run-2", "Completely different words.")]
    assert rows[0][0] > before  # new rows come after every existing one
    assert [h.kind for h in library.search([out], "tomatoes")] == ["url"]
    hit = library.search([out], "different")[0]
    assert (hit.video_id, hit.start, hit.run_id) == (video_id, 1.0, "run-2")


def test_a_video_redone_by_a_real_rerun_is_indexed_again_by_that_run(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    local = next(h for h in library.search([out], "tomatoes") if h.kind == "file")
    with SessionStore(layout.state_db(out)) as store:
        store.requeue(local.run_id, [local.video_id], [])
    second = transcribe(out, local.source)
    again = [h for h in library.search([out], "tomatoes") if h.kind == "file"]
    assert len(again) == 1 and again[0].run_id == second.run_id != local.run_id
    with SessionStore(layout.state_db(out), read_only=True) as store:
        conn = store.connection()
        count = conn.execute("SELECT count(*) FROM library_segments WHERE video_id = ?", (local.video_id,))
        assert count.fetchone()[0] == len(stored_segments(out, local.video_id))


def test_a_video_whose_indexing_fails_is_still_done_and_search_says_it_is_not_indexed(tmp_path, speech_clips):
    """The index is rebuildable, the transcript is not: a failed index write never fails the video."""
    out = tmp_path / "out"
    SessionStore(layout.state_db(out)).close()
    conn = sqlite3.connect(layout.state_db(out))
    conn.execute("CREATE TRIGGER broken BEFORE INSERT ON library_segments BEGIN SELECT RAISE(ABORT, 'broken'); END")
    conn.commit()
    conn.close()
    result = transcribe(out, str(speech_clips["garden"].path))
    assert result.counts["done"] == 1 and (out / "garden" / "transcript.txt").is_file()
    found = library.find([out], "tomatoes")
    assert found.hits == [] and found.notes == [
        f"{out}: 1 finished video not indexed yet: run `bulk-transcribe index {out}`"]
    assert library.rebuild(out) == 1 and len(library.search([out], "tomatoes")) == 1  # a rebuild drops the trigger


def test_removing_a_video_removes_its_rows(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    with SessionStore(layout.state_db(out)) as store:
        conn = store.connection()
        video_id = library.search([out], "tomatoes")[0].video_id
        assert library.remove_video(conn, video_id) >= 2
        left = conn.execute("SELECT count(*) FROM library_segments WHERE video_id = ?", (video_id,)).fetchone()[0]
        assert left == 0
        assert conn.execute("SELECT count(*) FROM library_videos WHERE video_id = ?", (video_id,)).fetchone()[0] == 0
    assert [h.video_id for h in library.search([out], "tomatoes")] != [] and \
        video_id not in {h.video_id for h in library.search([out], "tomatoes")}


def drop_index(out: Path) -> None:
    """OUT as a version before the index left it: none of its tables."""
    conn = sqlite3.connect(layout.state_db(out))
    virtual = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")]
    for name in virtual + ["library_videos", "library_segments", "library_info"]:
        conn.execute(f"DROP TABLE {name}")
    conn.commit()
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'library%'").fetchall()
    conn.close()


def test_rebuild_indexes_a_folder_made_without_the_index(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    drop_index(out)
    result = library.find([out], "tomatoes")
    assert result.hits == [] and result.searched == 0
    assert result.notes == [f"{out} has no search index yet: run `bulk-transcribe index {out}`"]

    # One video keeps only its json output, the other nothing at all.
    with SessionStore(layout.state_db(out), read_only=True) as store:
        records = {r.kind: r for r in store.videos()}
    (layout.stored_dir(out) / f"{records['file'].video_id}.json.gz").unlink()
    (layout.stored_dir(out) / f"{records['url'].video_id}.json.gz").unlink()
    (out / records["url"].outputs["json"]).unlink()
    done = library.reindex(out)
    assert (done.videos, done.missing) == (1, ((records["url"].video_id, records["url"].title),))
    assert done.segments == 2
    hits = library.search([out], "tomatoes")
    assert [h.kind for h in hits] == ["file"] and hits[0].run_id == records["file"].run_id
    note = library.find([out], "tomatoes").notes
    assert note == [f"{out}: 1 finished video not indexed yet: run `bulk-transcribe index {out}`"]
    assert library.rebuild(out) == 1  # again: the same answer, nothing doubled
    assert len(library.search([out], "tomatoes")) == 1


def test_rebuild_refuses_a_folder_a_run_holds(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    with OwnerLock(out, "bulk-transcribe run"):
        with pytest.raises(FolderBusy, match="is in use by bulk-transcribe run"):
            library.rebuild(out)
    assert library.rebuild(out) == 2


def test_a_store_with_an_older_index_layout_has_it_dropped_and_made_again(library_out, tmp_path):
    out = copy_of(library_out[0], tmp_path)
    conn = sqlite3.connect(layout.state_db(out))
    conn.execute("UPDATE library_info SET value = '0' WHERE key = 'version'")
    conn.commit()
    conn.close()
    SessionStore(layout.state_db(out)).close()  # a writer opening the store brings the layout up to date
    assert library.search([out], "tomatoes") == []
    assert library.rebuild(out) == 2 and len(library.search([out], "tomatoes")) == 2


# ---- several folders, filters ------------------------------------------------------------------------------------

def test_several_folders_are_searched_and_merged_by_score(library_out, tmp_path, speech_clips):
    first = library_out[0]
    second = tmp_path / "second"
    transcribe(second, str(speech_clips["garden"].path))
    result = library.find([first, second, first], "tomatoes")
    assert result.problems == [] and result.searched == 2
    assert {h.out_dir for h in result.hits} == {first, second} and len(result.hits) == 3
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert len(library.search([first, second], "tomatoes", limit=2)) == 2


def test_a_missing_or_broken_folder_is_a_line_and_the_others_are_searched(library_out, tmp_path):
    out = library_out[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    layout.state_db(broken).write_bytes(b"this is not a database" * 100)
    result = library.find([tmp_path / "nowhere", broken, out], "tomatoes")
    assert len(result.hits) == 2
    assert result.problems[0] == f"{tmp_path / 'nowhere'}: no batch here (missing bulk_transcribe.sqlite)"
    assert result.problems[1].startswith(f"{broken}: cannot read bulk_transcribe.sqlite: ")
    assert all("\n" not in p and "Error" not in p for p in result.problems)


def synthetic(out: Path, videos: list[tuple[VideoItem, str, list[Segment]]], run: str | None = None) -> str:
    """A store holding `videos` as done, each indexed with (language, segments); returns the run id."""
    with SessionStore(layout.state_db(out)) as store:
        run_id = run or store.begin_run(RunConfig(inputs=("x",), out_dir=out), "sequential")
        store.register_videos(run_id, [item for item, _, _ in videos])
        conn = store.connection()
        for item, language, segments in videos:
            store.apply_event(ProgressEvent(item.video_id, EventKind.DONE, outputs={}))
            library.index_video(conn, item.video_id, run_id, segments, language)
    return run_id


def flag(out: Path, video_id: str) -> None:
    """A finished video's transcript as the store keeps it once quality.py flagged it (schema 5's flags_json)."""
    with SessionStore(layout.state_db(out)) as store:
        store.connection().execute("UPDATE videos SET flags_json = ? WHERE video_id = ?",
                                   (json.dumps([{"code": "loop", "reason": "repetition loop (one line 3 times)"}]),
                                    video_id))


def url_item(url: str, title: str) -> VideoItem:
    return VideoItem(url, SourceKind.URL, url, title=title)


def test_run_language_and_flagged_filters(tmp_path):
    out = tmp_path / "out"
    say = [Segment(10.0, 12.0, "the harbour at dawn")]
    first = synthetic(out, [(url_item("https://example.org/a.mp3", "A"), "en", say),
                            (url_item("https://example.org/b.mp3", "B"), "de", say)])
    second = synthetic(out, [(url_item("https://example.org/c.mp3", "C"), "en", say)])
    titles = lambda **kw: sorted(h.title for h in library.search([out], "harbour", **kw))  # noqa: E731
    assert titles() == ["A", "B", "C"]
    assert titles(run=first) == ["A", "B"] and titles(run=second) == ["C"] and titles(run="nope") == []
    assert titles(language="de") == ["B"] and titles(language="EN") == ["A", "C"] and titles(language="fr") == []
    assert titles(run=first, language="en") == ["A"]
    # Nothing flagged yet: the filter finds nothing. Once a transcript earns a flag, the filter follows it.
    assert titles(flagged=True) == [] and library.facets(out).flagged == 0
    flag(out, VideoItem("https://example.org/b.mp3", SourceKind.URL, "x").video_id)
    assert titles(flagged=True) == ["B"] and library.facets(out).flagged == 1
    facets = library.facets(out)
    assert facets.runs == (second, first) and facets.languages == ("en", "de")


def test_common_words_rank_their_newest_matches_and_filters_still_reach_old_ones(tmp_path, monkeypatch):
    """A word in more segments than a search ranks: the newest are ranked and the note says so. A filter keeping
    only the oldest video still finds it: seeking to its span, or (its videos too scattered to seek to) checking
    each match in batches that double until enough pass."""
    monkeypatch.setattr(lookup, "CANDIDATES", 4)
    out = tmp_path / "out"
    old = url_item("https://example.org/old.mp3", "Old")
    synthetic(out, [(old, "en", [Segment(float(i), i + 1.0, f"common word {i}") for i in range(3)])])
    synthetic(out, [(url_item(f"https://example.org/{n}.mp3", f"New {n}"), "en",
                     [Segment(float(i), i + 1.0, f"common word {i}") for i in range(3)]) for n in range(10)])
    result = library.find([out], "common", limit=1)
    assert len(result.hits) == 1 and result.hits[0].title in {"New 9", "New 8"}
    assert [n for n in result.notes if "more than 4 segments match; these are the best of the 4 most recent" in n]
    everything = library.find([out], "common", limit=40)
    assert len(everything.hits) == 33 and not [n for n in everything.notes if "most recent" in n]

    flag(out, old.video_id)
    assert [h.title for h in library.search([out], "common", flagged=True, limit=10)] == ["Old"] * 3
    monkeypatch.setattr(lookup, "MAX_SPANS", 0)  # too scattered to seek to: checked on each match
    assert [h.title for h in library.search([out], "common", flagged=True, limit=3)] == ["Old"] * 3
    first_run = library.search([out], "common", limit=40)[-1].run_id
    assert {h.title for h in library.search([out], "word", run=first_run, limit=5)} == {"Old"}


def test_scores_are_bm25_as_fts5_computes_it(tmp_path):
    """The ranking reproduces FTS5's own bm25() (rank.py): the same order and the same values (negated)."""
    out = tmp_path / "out"
    texts = ["the harbour at dawn", "harbour harbour harbour", "a long sentence that mentions the harbour once "
             "among many other words about ships", "no match here", "the harbour lights and the harbour wall"]
    synthetic(out, [(url_item(f"https://example.org/{i}.mp3", f"T{i}"), "en", [Segment(0.0, 1.0, t)])
                    for i, t in enumerate(texts)])
    conn = sqlite3.connect(layout.state_db(out))
    for text_query, found in (("harbour", 4), ("harbour the", 3), ('"the harbour" OR ships', 3), ("harb*", 4)):
        ours = {h.text: h.score for h in library.search([out], text_query)}
        theirs = dict(conn.execute(
            "SELECT s.text, -bm25(library_fts, 1.0, 0.0) FROM library_fts JOIN library_segments s "
            "ON s.seg_id = library_fts.rowid WHERE library_fts MATCH ?", (query.on_text(text_query),)))
        assert set(ours) == set(theirs) and len(ours) == found, text_query
        for text, score in theirs.items():
            assert ours[text] == pytest.approx(score, rel=1e-9), (text_query, text)
    conn.close()


# ---- what people type ------------------------------------------------------------------------------------------------

HOSTILE = ['"', '"unterminated', "c++", "-foo", "AND", "OR", "NOT", "NEAR(", "(", ")", "*", "**", "a*b*", "-", "--",
           "^", ":", "foo:bar", "text:", "language : en", "{text}", "'; DROP TABLE videos; --", "\x00", "\x1b[31m",
           "tomatoes AND", "AND tomatoes", "NOT tomatoes", "tomatoes -beans", "*reads", "NEAR(tomatoes beans, x)",
           "ünïcödé", "🍅", "a" * 600, "", "   ", "\"\"", "tomatoes\"", "c++ tomatoes", "()", "tomatoes OR"]


@pytest.mark.parametrize("text", HOSTILE)
def test_no_query_crashes_the_search_or_speaks_python(library_out, text):
    out, _ = library_out
    result = library.find([out], text)
    assert result.problems == []
    if result.error is not None:
        assert result.hits == [] and "\n" not in result.error and len(result.error) < 200
        assert not any(word in result.error for word in ("Error", "sqlite", "fts5", "Traceback", "syntax"))
        with pytest.raises(library.QueryError):
            library.search([out], text)
    else:
        for note in result.notes:
            assert "\n" not in note and "Error" not in note


def test_queries_fts5_cannot_parse_are_read_as_plain_words(library_out):
    out, _ = library_out
    assert len(library.search([out], '"tomatoes')) == 2  # a stray quote
    assert len(library.search([out], "tomatoes -breeze")) == 2  # "breeze" is said in the other segment
    assert library.search([out], "grandmother -tomatoes") == []
    result = library.find([out], "c++ tomatoes")
    assert len(result.hits) == 0 or all("tomatoes" in h.text.lower() for h in result.hits)
    assert result.notes == ['not search syntax, so read as plain words: "c++" "tomatoes"']
    assert library.find([out], "-tomatoes").error == \
        "nothing to search for in '-tomatoes': words starting with '-' only leave things out; add a word to find"
    assert library.find([out], "&&").error == "nothing to search for in '&&': type a word or \"a phrase\""
    assert library.find([out], "  ").error == 'type a word or "a phrase" to search for'
    assert library.find([out], "x" * 501).error == "the query is too long (501 characters; at most 500)"


def test_the_literal_reading_keeps_prefixes_and_exclusions():
    assert query.literal('c++ "tomat* -bean') == '("c++" """tomat"*) NOT ("bean")'  # a stray quote doubled
    assert query.literal("-- & *") is None
    assert query.parse("tomatoes").match == "tomatoes" and not query.parse("tomatoes").literal
    assert query.parse("tomatoes AND").literal


# ---- links -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, link", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=5&list=PL1",
     "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL1&t=83"),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=83"),
    ("https://youtu.be/dQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ?t=83"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83"),
    ("https://www.youtube.com/live/dQw4w9WgXcQ?si=x", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83"),
    ("https://vimeo.com/76979871", "https://vimeo.com/76979871#t=83s"),
    ("https://player.vimeo.com/video/76979871", "https://player.vimeo.com/video/76979871#t=83s"),
    ("https://www.twitch.tv/videos/1234567890", "https://www.twitch.tv/videos/1234567890?t=0h1m23s"),
    ("https://www.dailymotion.com/video/x8abcd", "https://www.dailymotion.com/video/x8abcd?start=83"),
    ("https://dai.ly/x8abcd", "https://dai.ly/x8abcd?start=83"),
    ("https://cdn.example.org/pod/ep1.mp3", "https://cdn.example.org/pod/ep1.mp3#t=83"),
    ("https://cdn.example.org/pod/ep1.MP4?sig=abc#old", "https://cdn.example.org/pod/ep1.MP4?sig=abc#t=83"),
    ("https://user:***@cdn.example.org/private/ep1.mp3", "https://cdn.example.org/private/ep1.mp3#t=83"),
    ("https://TOKEN@cdn.example.org:8443/ep1.mp3", "https://cdn.example.org:8443/ep1.mp3#t=83"),
    ("https://example.org/some/page", "https://example.org/some/page"),
    ("https://vimeo.com/channels/staffpicks", "https://vimeo.com/channels/staffpicks"),
    ("ftp://example.org/a.mp3", ""),
    ("javascript:alert(1)", ""),
])
def test_links_to_the_moment_take_each_sites_own_form(source, link):
    assert links.moment_link(source, "url", 83.9) == link


def test_local_files_link_as_path_and_time():
    assert links.moment_link("/talks/a.mp4", "file", 83.9) == "/talks/a.mp4 @ 1:23"
    assert links.moment_link("/talks/a.mp4", "file", 3723.0) == "/talks/a.mp4 @ 1:02:03"
    assert links.clock(59.99) == "0:59"


def test_a_youtube_shaped_source_is_found_with_a_link_that_starts_there(tmp_path):
    out = tmp_path / "out"
    synthetic(out, [(url_item("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "Talk"), "en",
                     [Segment(0.0, 4.0, "opening words"), Segment(125.4, 130.0, "the quarterly numbers")])])
    hit = library.search([out], "quarterly")[0]
    assert (hit.start, hit.at) == (125.4, "2:05")
    assert hit.link == "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=125"


# ---- where the folder lives ------------------------------------------------------------------------------------------

def test_a_folder_on_a_read_only_disk_is_searched(library_out, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "out"
        shutil.copytree(library_out[0], out)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = library.find([out], "tomatoes")
        assert result.problems == [] and len(result.hits) == 2
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in library_out[0].iterdir())
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_titles_are_data_control_characters_and_markup_kept_as_given(tmp_path):
    """The library hands titles and words on as they are; each front end shows them as text (cli, dashboard)."""
    out = tmp_path / "out"
    title = "Evil \x1b]0;pwned\x07 [b]bold[/b] ![x](http://evil.example/p.png)"
    synthetic(out, [(url_item("https://example.org/e.mp3", title), "en",
                     [Segment(1.0, 2.0, "hello \x1b[31mred\x1b[0m world")])])
    hit = library.search([out], "hello")[0]
    assert hit.title == title
    assert "\x1b" not in hit.text and "\x1b" not in hit.snippet  # indexed text holds no control characters
    assert hit.text == "hello [31mred [0m world"


# ---- marking the match -----------------------------------------------------------------------------------------------

def marks(query_text: str, text: str, max_words: int = 24) -> str:
    from bulk_transcribe.library.highlight import marked, phrases

    return "".join(f"[{p}]" if m else p for p, m in marked(text, phrases(query.parse(query_text)), max_words))


def test_the_words_a_query_matched_are_marked_as_the_index_reads_them():
    assert marks('"of the"', "Most of them, the rest of the day.") == "Most of them, the rest [of the] day."
    assert marks("climat*", "Climate, climatic; a climber.") == "[Climate], [climatic]; a climber."
    assert marks("cafe", "Un café au CAFÉ.") == "Un [café] au [CAFÉ]."
    assert marks("NEAR(tax cut, 5) OR text : budget", "The tax cut and the budget 5 times.") == \
        "The [tax] [cut] and the [budget] 5 times."
    assert marks("tomatoes NOT beans", "tomatoes") == "[tomatoes]"
    assert marks('c++ "beans', "C and beans, c++") == "[C] and [beans], [c]++"  # read as plain words
    assert marks("zeppelin", "nothing here") == "nothing here"


def test_a_long_segment_is_cut_around_its_first_match():
    text = " ".join(f"w{i}" for i in range(60)) + "."
    assert marks("w40", text, max_words=6) == "…w38 w39 [w40] w41 w42 w43…"
    assert marks("w1", text, max_words=6) == "w0 [w1] w2 w3 w4 w5…"
    assert marks("w59", text, max_words=6).endswith("[w59].") and marks("w59", text, max_words=6).startswith("…")
