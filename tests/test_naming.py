"""Transcript names from hostile titles: limited in bytes, never the tool's own files, stable across reruns."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from bulk_transcribe.layout import MANIFEST_NAME, STATE_DB_NAME
from bulk_transcribe.naming import MAX_NAME_BYTES, cut_bytes, is_reserved, is_safe, safe_name

EMOJI_TITLE = "🎉" * 80  # 320 bytes: over the 255-byte limit of most file systems


def test_cut_bytes_cuts_on_a_character_boundary():
    assert cut_bytes("abc", 10) == "abc"
    assert cut_bytes("é" * 10, 5) == "éé"  # 2 bytes each: never half a character
    assert cut_bytes("🎉" * 3, 7) == "🎉"


@pytest.mark.parametrize("title", [MANIFEST_NAME, STATE_DB_NAME, "Manifest.JSON", "BULK_TRANSCRIBE.sqlite-wal",
                                   "bulk_transcribe.lock", "audio", "AUDIO", ".work", "..", ""])
def test_tool_names_are_never_given_to_a_transcript(title):
    name = safe_name(title)
    assert not is_reserved(name) and name.lower() != title.lower() and name in ("video", "work")


def test_names_are_limited_in_bytes_even_with_suffixes():
    taken: set[str] = set()
    for _ in range(12):
        taken.add(safe_name(EMOJI_TITLE, taken))
    assert len(taken) == 12
    assert all(len(n.encode()) <= MAX_NAME_BYTES + 12 for n in taken)
    assert all(is_safe(n) for n in taken)
    assert not is_safe(EMOJI_TITLE) and not is_safe("manifest.json") and is_safe("talk (3)")


def _feed(media_dir: Path, media_server, clip_name: str, titles: list[str]) -> str:
    tag = uuid.uuid4().hex[:8]
    clip = media_server.url(clip_name)
    items = "".join(f'<item><title>{t}</title><enclosure url="{clip}?n={n}-{tag}" type="audio/mpeg" '
                    f'length="1000"/><guid>{tag}-{n}</guid></item>' for n, t in enumerate(titles))
    name = f"names-{tag}.rss"
    (media_dir / name).write_text('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                                  f"<title>t</title><link>http://127.0.0.1/</link><description>d</description>"
                                  f"{items}</channel></rss>", encoding="utf-8")
    return media_server.url(name)


def test_hostile_titles_through_the_cli_and_every_rerun(run_cli, tmp_path, media_dir, media_server, speech_clips):
    """Titles equal to the tool's own files, and 320 bytes of emoji: both runs end 0 and OUT stays usable."""
    titles = [MANIFEST_NAME, STATE_DB_NAME, EMOJI_TITLE, "Audio", f"{STATE_DB_NAME}-wal"]
    url = _feed(media_dir, media_server, speech_clips["weather"].path.name, titles)
    out = tmp_path / "out"
    args = ("run", url, "--out", str(out), "--formats", "txt,json", "--cpu-threads", "2", "--quiet")
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stdout + stderr
    assert (out / MANIFEST_NAME).is_file() and (out / STATE_DB_NAME).is_file()
    entries = json.loads((out / MANIFEST_NAME).read_text())["videos"]
    assert sorted(e["title"] for e in entries) == sorted(titles)
    for entry in entries:
        folder = Path(entry["outputs"]["txt"]).parts[0]
        assert not is_reserved(folder) and len(folder.encode()) <= 255
        assert "breeze" in (out / entry["outputs"]["txt"]).read_text().lower()

    # A later run on the same OUT still records its end and writes the manifest (it used to fail forever).
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stdout + stderr
    assert "Nothing to do: all 5 videos are already done" in stdout
    assert json.loads((out / MANIFEST_NAME).read_text())["count"] == 5


def test_a_folder_named_by_an_older_version_is_renamed_on_rerun(run_cli, tmp_path, media_dir, media_server, speech_clips):
    """A store from before the byte limit holds a 320-byte folder for a failed video: the rerun renames it."""
    url = _feed(media_dir, media_server, speech_clips["train"].path.name, [EMOJI_TITLE])
    out = tmp_path / "out"
    args = ("run", url, "--out", str(out), "--formats", "txt", "--cpu-threads", "2", "--quiet")
    assert run_cli(*args)[0] == 0
    with sqlite3.connect(out / STATE_DB_NAME) as db:  # what the older version stored after its failure
        db.execute("UPDATE videos SET folder = ?, status = 'failed', error = 'File name too long'", (EMOJI_TITLE,))
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stdout + stderr
    entry = json.loads((out / MANIFEST_NAME).read_text())["videos"][0]
    assert entry["status"] == "done" and len(Path(entry["outputs"]["txt"]).parts[0].encode()) <= MAX_NAME_BYTES


def test_a_done_video_in_a_folder_named_manifest_json_is_moved_and_the_manifest_written(run_cli, 
        tmp_path, media_dir, media_server, speech_clips):
    """OUT as an older version left it: a finished video's folder is OUT/manifest.json, so no manifest could be
    written ('IsADirectoryError' on every run). The rerun moves the folder and writes the manifest."""
    url = _feed(media_dir, media_server, speech_clips["library"].path.name, [MANIFEST_NAME])
    out = tmp_path / "out"
    args = ("run", url, "--out", str(out), "--formats", "txt", "--cpu-threads", "2", "--quiet")
    assert run_cli(*args)[0] == 0
    with sqlite3.connect(out / STATE_DB_NAME) as db:
        folder, outputs = db.execute("SELECT folder, outputs_json FROM videos").fetchone()
        (out / MANIFEST_NAME).unlink()
        (out / folder).rename(out / MANIFEST_NAME)  # the older version's layout
        db.execute("UPDATE videos SET folder = ?, outputs_json = ?",
                   (MANIFEST_NAME, json.dumps({"txt": f"{MANIFEST_NAME}/transcript.txt"})))
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stdout + stderr
    assert (out / MANIFEST_NAME).is_file()
    entry = json.loads((out / MANIFEST_NAME).read_text())["videos"][0]
    assert entry["status"] == "done" and not is_reserved(Path(entry["outputs"]["txt"]).parts[0])
    assert "library" in (out / entry["outputs"]["txt"]).read_text().lower()


def test_cleaning_is_idempotent_and_always_safe():
    """clean(clean(x)) == clean(x), and what clean gives is_safe, for hostile and random titles alike."""
    import random

    from bulk_transcribe.naming import clean

    rng = random.Random(3)
    alphabet = list("ab. /\\:*?\"<>|\x00\t\n\u200b\u202e…ïé😀-_") + ["..", "../", " . "]
    titles = ["../../x", " .. x", ". .a", "a/.", "...", "x..", " . ", "a . . b", ".hidden", "manifest.json/..",
              "." * 300, "😀" * 100 + " .", "CON", "bulk_transcribe_x"]
    titles += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(2000)]
    for title in titles:
        once = clean(title)
        assert clean(once) == once, (title, once)
        assert is_safe(once), (title, once)
