"""Output templates (yt-dlp's -o style) and subtitles beside local sources, through the real CLI."""

from __future__ import annotations

import json
import shutil
import uuid


import pytest

from bulk_transcribe.models import SourceKind, VideoItem
from bulk_transcribe.config import DEFAULT_TEMPLATE, check_template
from bulk_transcribe.outputs.templates import render
from subtitle_files import parse_srt, parse_vtt

ITEM = VideoItem("http://127.0.0.1/a.mp3", SourceKind.URL, "x", title="A talk",
                 meta={"id": "abc123", "uploader": "Ann/../B", "upload_date": "20240131", "playlist": "Talks",
                       "playlist_index": 7})


def test_fields_render_like_yt_dlp_and_values_cannot_make_folders():
    assert render(DEFAULT_TEMPLATE, ITEM, "A talk", "srt") == "A talk/transcript.srt"
    assert render("%(uploader)s/%(upload_date)s %(playlist_index)03d - %(title)s [%(id)s].%(ext)s",
                  ITEM, "A talk", "vtt") == "Ann .. B/20240131 007 - A talk [abc123].vtt"
    # A field the site did not give is NA, as in yt-dlp; a local file's id is its stable video id.
    local = VideoItem("/m/x.mp4", SourceKind.FILE, "/m/x.mp4")
    assert render("%(uploader)s/%(id)s.%(ext)s", local, "x", "txt") == f"NA/{local.video_id}.txt"


def test_rendered_names_are_limited_in_bytes_and_never_the_tools_files():
    long_item = VideoItem("u", SourceKind.URL, "u", meta={"id": "i", "uploader": "🎉" * 200})
    path = render("%(uploader)s - %(uploader)s - %(uploader)s/%(title)s.%(ext)s", long_item, "t", "json")
    assert all(len(part.encode()) <= 255 for part in path.split("/"))
    # `%(title)s.%(ext)s` for a video titled 'manifest' must not become OUT/manifest.json.
    clash = render("%(title)s.%(ext)s", ITEM, "manifest", "json")
    assert clash != "manifest.json" and clash.endswith(".json") and ITEM.video_id in clash


@pytest.mark.parametrize("template, words", [
    ("%(uploader)s.%(ext)s", "%(title)s or %(id)s"),
    ("%(title)s/transcript.txt", "%(ext)s"),
    ("/abs/%(title)s.%(ext)s", "relative"),
    ("../%(title)s.%(ext)s", "'..'"),
    ("audio/%(title)s.%(ext)s", "tool's own"),
    ("%(title)s/%(views)s.%(ext)s", "unknown output template field(s): views"),
])
def test_bad_templates_are_refused_before_the_run(run_cli, tmp_path, template, words):
    with pytest.raises(ValueError) as info:
        check_template(template)
    assert words in str(info.value)
    code, _, err = run_cli("run", "x", "--out", str(tmp_path / "o"), "--output-template", template)
    assert code == 2 and words in err


def test_a_feed_through_a_template_and_subtitles_beside_a_local_file(run_cli, tmp_path, media_server, speech_clips):
    out = tmp_path / "out"
    local_dir = tmp_path / "videos"
    local_dir.mkdir()
    local = local_dir / "my talk.mp4"
    shutil.copyfile(speech_clips["train"].path, local)
    code, stdout, stderr = run_cli(
        "run", media_server.url("feed.rss"), str(local), "--out", str(out), "--formats", "srt,vtt,json",
        "--output-template", "%(playlist)s/%(playlist_index)02d - %(title)s.%(ext)s",
        "--subtitles-beside-source", "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    entries = {e["source"]: e for e in json.loads((out / "manifest.json").read_text())["videos"]}
    feed = sorted(e["outputs"]["srt"] for e in entries.values() if e["source"] != str(local))
    assert feed == ["Test podcast/01 - Weather episode.srt", "Test podcast/02 - Library episode.srt",
                    "Test podcast/03 - Garden episode.srt", "Test podcast/04 - Train episode.srt"]
    garden = parse_vtt((out / "Test podcast/03 - Garden episode.vtt").read_text())
    assert "garden" in " ".join(c[2] for c in garden).lower()
    # The local file: its own transcript in OUT (no playlist: NA), and subtitles where a player looks for them.
    mine = entries[str(local)]
    assert mine["outputs"]["srt"] == "NA/NA - my talk.srt"
    beside = local_dir / "my talk.srt"
    assert mine["outputs"]["srt@source"] == str(beside)
    assert beside.read_text() == (out / mine["outputs"]["srt"]).read_text()
    assert "train" in " ".join(c[2] for c in parse_srt(beside.read_text())).lower()
    assert parse_vtt((local_dir / "my talk.vtt").read_text())
    assert not (local_dir / "my talk.json").exists()  # only subtitles go beside the video


def test_two_videos_never_share_a_file_whatever_the_template(run_cli, tmp_path, media_dir, media_server,
                                                              speech_clips):
    """`%(id)s.%(ext)s` for a.mp3 and dir2/a.mp3 (both yt-dlp id `a`), and `%(title).3s/t.%(ext)s` for two titles
    that start alike: the later video gets ` (2)`, as folder names do; each file holds its own transcript, the
    manifest points each video at its own, and a rerun keeps every file where it was."""
    name = f"same-{uuid.uuid4().hex[:6]}.mp3"
    (media_dir / "dir2").mkdir(exist_ok=True)
    shutil.copy(speech_clips["weather"].path, media_dir / name)
    shutil.copy(speech_clips["train"].path, media_dir / "dir2" / name)
    urls = [media_server.url(name), media_server.url(f"dir2/{name}")]
    out = tmp_path / "ids"
    args = ["--out", str(out), "--output-template", "%(id)s.%(ext)s", "--cpu-threads", "2", "-q"]
    assert run_cli("run", *urls, *args, "--formats", "txt,srt")[0] == 0
    videos = {v["source"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    stem = name[:-4]
    # Whichever is delivered first keeps the plain name; the other is numbered, all its formats alike.
    first, second = sorted(urls, key=lambda u: videos[u]["outputs"]["txt"] != f"{stem}.txt")
    assert videos[first]["outputs"] == {"txt": f"{stem}.txt", "srt": f"{stem}.srt"}
    assert videos[second]["outputs"] == {"txt": f"{stem} (2).txt", "srt": f"{stem} (2).srt"}
    said = {u: (out / videos[u]["outputs"]["txt"]).read_text().lower() for u in urls}
    assert "breeze" in said[urls[0]] and "train" in said[urls[1]]  # each file holds its own video
    assert run_cli("run", *reversed(urls), *args, "--formats", "txt,srt,vtt")[0] == 0  # more formats, later
    again = {v["source"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    assert again[second]["outputs"]["vtt"] == f"{stem} (2).vtt" and again[first]["outputs"]["vtt"] == f"{stem}.vtt"

    feed = media_dir / f"alike-{uuid.uuid4().hex[:6]}.rss"
    feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>Alike</title>' + "".join(
        f'<item><title>{t}</title><enclosure url="{media_server.url(c.path.name)}?v={t[-4:]}" type="audio/mpeg"/>'
        f'<guid>{t}</guid></item>' for t, c in (("Hello Alpha", speech_clips["garden"]),
                                              ("Hello Beta", speech_clips["library"]))) + "</channel></rss>")
    out = tmp_path / "titles"
    code, stdout, stderr = run_cli("run", media_server.url(feed.name), "--out", str(out), "--formats", "txt",
                                   "--output-template", "%(title).3s/t.%(ext)s", "--cpu-threads", "2", "-q")
    assert code == 0, stdout + stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.glob("Hel/*.txt"))
    assert files == ["Hel/t (2).txt", "Hel/t.txt"]
    texts = {(out / f).read_text() for f in files}
    assert any("garden" in t for t in texts) and any("library" in t for t in texts)


def test_a_template_that_cuts_the_extension_is_refused_up_front(run_cli, tmp_path, speech_clips):
    code, _, stderr = run_cli("run", str(speech_clips["weather"].path), "--out", str(tmp_path / "o"),
                              "--output-template", "%(title)s/transcript.%(ext).0s")
    assert code == 2 and "cuts the format's extension (%(ext).0s)" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_subtitles_beside_a_read_only_source_are_best_effort(run_cli, tmp_path, speech_clips):
    """The source folder cannot be written (a real read-only mount; where mounting is forbidden, a folder where the
    subtitle's name should be): the video is still done with all its transcripts in OUT, stored for later
    formats, and a note names the path that could not be written. A rerun has nothing to redo."""
    import subprocess

    media = tmp_path / "media"
    media.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(media)],
                             capture_output=True).returncode == 0
    try:
        shutil.copy(speech_clips["weather"].path, media / "talk.mp3")
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,ro", str(media)], capture_output=True).returncode == 0
        else:
            (media / "talk.srt").mkdir()
        out = tmp_path / "out"
        code, stdout, stderr = run_cli("run", str(media / "talk.mp3"), "--out", str(out), "--formats", "txt,srt",
                                       "--subtitles-beside-source", "--cpu-threads", "2", "-q")
        assert code == 0, stdout + stderr
        [entry] = json.loads((out / "manifest.json").read_text())["videos"]
        assert entry["status"] == "done" and set(entry["outputs"]) == {"txt", "srt"}
        assert entry["note"].startswith(f"could not write subtitles beside the source: {media / 'talk.srt'}: ")
        assert (out / ".transcripts").is_dir()
        code, stdout, _ = run_cli("run", str(media / "talk.mp3"), "--out", str(out), "--formats", "txt,srt", "-q")
        assert code == 0 and "Nothing to do" in stdout
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(media)], capture_output=True)
