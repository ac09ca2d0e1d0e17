"""`bulk-transcribe search` and `bulk-transcribe index` (cli/search.py): output on a terminal and in a pipe, JSON,
exit codes, and text from sites printed as text."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from pathlib import Path

import pytest

from bulk_transcribe import layout, library
from bulk_transcribe.cli import main
from bulk_transcribe.config import RunConfig
from bulk_transcribe.models import EventKind, ProgressEvent, Segment, SourceKind, VideoItem
from bulk_transcribe.session_manager import OwnerLock, SessionStore


class Terminal(io.StringIO):
    """What rich takes for a terminal: colours and styles on."""

    def isatty(self) -> bool:
        return True


def run_cli(*args: str, stdout: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


EVIL = "Evil \x1b]0;pwned\x07 [b]bold[/b] [link=http://evil.example]x[/link]"


def synthetic(out: Path, videos: list[tuple[VideoItem, list[Segment]]]) -> str:
    with SessionStore(layout.state_db(out)) as store:
        run_id = store.begin_run(RunConfig(inputs=("x",), out_dir=out), "sequential")
        store.register_videos(run_id, [item for item, _ in videos])
        conn = store.connection()
        for item, segments in videos:
            store.apply_event(ProgressEvent(item.video_id, EventKind.DONE, outputs={}))
            library.index_video(conn, item.video_id, run_id, segments, "en")
    return run_id


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "talks"
    synthetic(out, [
        (VideoItem("https://www.youtube.com/watch?v=dQw4w9WgXcQ", SourceKind.URL, "x", title=EVIL),
         [Segment(0.0, 3.0, "welcome everyone"), Segment(83.2, 88.0, "the harbour opens at dawn")]),
        (VideoItem("/media/talks/b.mp4", SourceKind.FILE, "y", title="Local talk"),
         [Segment(3725.0, 3730.0, "we sailed past the harbour")]),
    ])
    return out


def test_hits_in_a_pipe_are_three_plain_lines_each(folder):
    code, out, err = run_cli("search", "harbour", str(folder))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 6
    titles = {lines[0], lines[3]}
    assert "Local talk · 1:02:05" in titles
    evil = next(line for line in titles if line.startswith("Evil"))
    assert evil == "Evil ?]0;pwned? [b]bold[/b] [link=http://evil.example]x[/link] · 1:23"  # as text, escapes gone
    assert "  the «harbour» opens at dawn" in lines and "  we sailed past the «harbour»" in lines
    assert "  https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=83" in lines
    assert "  /media/talks/b.mp4 @ 1:02:05" in lines


def test_hits_on_a_terminal_are_styled_and_titles_stay_text(folder):
    code, out, _ = run_cli("search", "dawn", str(folder), stdout=Terminal())
    assert code == 0
    assert "\x1b[" in out  # styled
    assert "\x1b]0;pwned" not in out and "\x07" not in out  # the title's own escape sequence never reaches it
    assert "[b]bold[/b]" in out and "[link=http://evil.example]x[/link]" in out  # markup printed, not applied
    assert "\x1b]8;" not in out  # no terminal hyperlink was made from the title
    assert "«" not in out  # the match is styled instead of marked
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "Evil ?]0;pwned? [b]bold[/b]" in plain and "the harbour opens at dawn" in plain


def test_json_for_scripts(folder):
    code, out, _ = run_cli("search", "harbour", str(folder), "--json", "--limit", "1")
    data = json.loads(out)
    assert code == 0 and data["query"] == "harbour" and len(data["hits"]) == 1
    hit = data["hits"][0]
    assert set(hit) >= {"title", "video_id", "out_dir", "start", "end", "at", "snippet", "source", "kind", "link",
                        "score", "run_id", "language"}
    assert "«harbour»" in hit["snippet"]


def test_exit_codes_say_hits_none_or_bad_usage(folder, tmp_path):
    assert run_cli("search", "harbour", str(folder))[0] == 0
    code, out, err = run_cli("search", "zeppelin", str(folder))
    assert (code, out) == (1, "") and err == f"bulk-transcribe: no hits for 'zeppelin' in {folder}\n"
    code, _, err = run_cli("search", "harbour", str(tmp_path / "nowhere"))
    assert code == 2 and err == f"bulk-transcribe: error: no such folder: {tmp_path / 'nowhere'}\n"
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("search", "harbour", str(tmp_path / "empty"))
    assert code == 2 and err == f"bulk-transcribe: error: no batch in {tmp_path / 'empty'} (missing " \
                                "bulk_transcribe.sqlite)\n"
    code, _, err = run_cli("search", "-- &", str(folder))
    assert code == 2 and err == "bulk-transcribe: error: nothing to search for in '-- &': type a word or \"a phrase\"\n"
    for hostile in ('"', "c++", "AND", "NEAR(", "*", "foo:bar"):
        code, _, err = run_cli("search", hostile, str(folder))
        assert code in (1, 2) and "Traceback" not in err and "Error" not in err, (hostile, err)


def test_the_default_folder_is_transcripts_as_for_run(folder, tmp_path, monkeypatch):
    folder.rename(tmp_path / "transcripts")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("search", "harbour")
    assert code == 0 and out.count("«harbour»") == 2


def test_filters_and_several_folders(folder, tmp_path):
    other = tmp_path / "other"
    run_id = synthetic(other, [(VideoItem("https://example.org/c.mp3", SourceKind.URL, "z", title="Other"),
                                [Segment(1.0, 2.0, "harbour lights")])])
    code, out, _ = run_cli("search", "harbour", str(folder), str(other))
    assert code == 0 and out.count("«harbour»") == 3 and "· 0:01  (other)" in out
    code, out, _ = run_cli("search", "harbour", str(folder), str(other), "--run", run_id)
    assert code == 0 and out.count("«harbour»") == 1 and "https://example.org/c.mp3#t=1" in out
    assert run_cli("search", "harbour", str(folder), "--language", "de")[0] == 1
    assert run_cli("search", "harbour", str(folder), "--limit", "0")[0] == 2


def test_a_folder_without_an_index_says_how_to_make_one(tmp_path, speech_clips):
    out = tmp_path / "old"
    code, _, err = run_cli("run", str(speech_clips["garden"].path), "--out", str(out), "--cpu-threads", "2", "-q")
    assert code == 0, err
    conn = sqlite3.connect(layout.state_db(out))  # as a version before the index left it
    virtual = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")]
    for table in virtual + ["library_videos", "library_segments", "library_info"]:
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    code, _, err = run_cli("search", "tomatoes", str(out))
    assert code == 1 and f"has no search index yet: run `bulk-transcribe index {out}`" in err

    code, text, err = run_cli("index", str(out))
    assert (code, err) == (0, "") and text == f"{out}: indexed 1 finished video (1 segment)\n"
    code, text, _ = run_cli("search", "tomatoes", str(out))
    assert code == 0 and "«tomatoes»" in text and f"{speech_clips['garden'].path} @ 0:00" in text


def test_index_reports_what_it_could_not_do(folder, tmp_path):
    assert run_cli("index", str(tmp_path / "nowhere"))[0] == 2
    # The synthetic videos have no stored transcript: nothing to index them from.
    code, text, err = run_cli("index", str(folder))
    assert code == 1 and text == f"{folder}: indexed 0 finished videos (0 segments)\n"
    assert "2 finished video(s) in" in err and "Local talk" in err and "\x1b" not in err
    with OwnerLock(folder, "bulk-transcribe run"):
        code, _, err = run_cli("index", str(folder))
    assert code == 1 and "is in use by bulk-transcribe run" in err
