"""Bad input contained, end to end through `bulk_transcribe.cli.main`: each bad item fails alone with a reason
that names the cause, while the good ones in the same batch finish. The README's "Bad input: what you see" table
lists these cases with the messages asserted here.

The core cases (missing, empty, text named .mp4, no audio track, 404, unreachable host, silence) are in
test_cli.py; the per-request behaviour of the downloader in test_download.py. Here: the cases the reliability
issue adds, each inside a real batch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest



def manifest(out_dir: Path) -> dict[str, dict]:
    return {e["source"]: e for e in json.loads((out_dir / "manifest.json").read_text())["videos"]}


@pytest.fixture
def broken_flac(tmp_path, jfk_flac) -> Path:
    """The first half of a FLAC whose header still declares all 11 s: it decodes for a while, then breaks."""
    data = jfk_flac.read_bytes()
    path = tmp_path / "half.flac"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def gone_feed(media_dir, media_server, speech_clips) -> str:
    """A podcast feed with one good entry, one private (403) and one removed (410)."""
    tag = uuid.uuid4().hex[:8]
    entries = [("Good episode", media_server.url(speech_clips["garden"].path.name)),
               ("Private episode", media_server.url(f"status/403/private-{tag}.mp3")),
               ("Removed episode", media_server.url(f"status/410/removed-{tag}.mp3"))]
    items = "".join(f'<item><title>{t}</title><enclosure url="{u}" type="audio/mpeg" length="1000"/>'
                    f"<guid>{t}-{tag}</guid><itunes:duration>3</itunes:duration></item>" for t, u in entries)
    name = f"feed-gone-{tag}.rss"
    (media_dir / name).write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>Gone</title>'
        f"<link>http://127.0.0.1/</link><description>x</description>{items}</channel></rss>")
    return media_server.url(name)


def test_network_and_media_faults_each_fail_alone_with_their_cause(run_cli, tmp_path, speech_clips, media_server,
                                                                    broken_flac, gone_feed):
    tag = uuid.uuid4().hex[:8]
    paths = {
        "huge": f"huge/two-gigabytes-{tag}.mp3",
        "hang": f"hang/{tag}.mp3",
        "loop": f"redirect-loop/{tag}.mp3",
        "403": f"status/403/{tag}.mp3",
        "410": f"status/410/{tag}.mp3",
        "500": f"status/500/{tag}.mp3",
        "storm": f"storm429/{tag}.mp3",
        "page": f"html/{tag}",
    }
    urls = {name: media_server.url(path) for name, path in paths.items()}
    good_file, good_url = speech_clips["weather"].path, media_server.url(speech_clips["library"].path.name)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        "run", str(good_file), good_url, str(broken_flac), gone_feed, *urls.values(), "--out", str(out),
        "--max-filesize", "500M", "--socket-timeout", "1", "--retries", "2", "--max-attempts", "2",
        "--cpu-threads", "2", "--quiet")
    assert code == 1, stdout + stderr
    entries = manifest(out)
    assert len(entries) == 3 + 3 + len(urls)  # the feed expanded to its three entries

    # The good ones finished in spite of everything around them.
    done = {source for source, e in entries.items() if e["status"] == "done"}
    assert done == {str(good_file), good_url, media_server.url(speech_clips["garden"].path.name)}
    error = {name: entries[url]["error"] for name, url in urls.items()}
    assert all(entries[url]["status"] == "failed" for url in urls.values())

    # A 2 GiB "video" is refused from its Content-Length, before its body is read, and not retried.
    assert error["huge"].startswith("file too large: 2.0 GiB > limit 500.0 MiB: "), error["huge"]
    assert media_server.count(paths["huge"]) == 1
    assert error["hang"] == f"timed out after 1 s: {urls['hang']} (after 2 attempts)"
    assert error["loop"] == f"too many redirects: {urls['loop']}"
    assert error["403"] == f"HTTP 403 Forbidden: {urls['403']}"
    assert error["410"] == f"HTTP 410 Gone: {urls['410']}"
    assert error["500"] == f"HTTP 500 Internal Server Error: {urls['500']} (after 2 attempts)"
    assert error["page"] == f"no media found (unsupported URL or page without video): {urls['page']}"
    # Client errors are asked once; server errors a bounded number of times (retries x attempts), never more.
    assert media_server.count(paths["403"]) == media_server.count(paths["410"]) == 1
    assert media_server.count(paths["500"]) == 2 * 2

    # A 429 storm: Retry-After is honoured and the video gives up after retries x attempts requests.
    assert error["storm"] == f"rate limited (HTTP 429) after 2 attempts: {urls['storm']}"
    assert media_server.count(paths["storm"]) == 2 * 2

    # The playlist's private and removed entries fail on their own; its good entry is done.
    feed_errors = sorted(e["error"] for e in entries.values() if e["input"] == gone_feed and e["error"])
    assert [msg.split(":")[0] for msg in feed_errors] == ["HTTP 403 Forbidden", "HTTP 410 Gone"]

    # A file that decodes for a while and then breaks fails (not a silent partial transcript).
    broken = entries[str(broken_flac)]
    assert broken["status"] == "failed"
    assert broken["error"].startswith("audio breaks off at ") and "of 11.0 s" in broken["error"]
    assert not [p for p in out.glob("*/transcript.*") if "half" in p.parent.name]


def test_ten_thousand_line_input_file_with_junk(run_cli, tmp_path, speech_clips):
    good = [speech_clips["weather"].path, speech_clips["train"].path]
    garbage = [f"garbage line {n} !!" for n in range(150)]
    garbage += ["ftp://127.0.0.1/clip.mp3", "javascript:alert(1)", "www.example.com/watch?v=x", "x" * 5000,
                "C:\\Videos\\clip.mp4", str(tmp_path / "missing" / "clip.mp4"), "http://127.0.0.1:9/none.mp3"]
    lines: list[bytes] = []
    while len(lines) < 10_000:
        n = len(lines)
        pick = n % 10
        if pick in (0, 1):
            lines.append(str(good[n % 2]).encode())  # the same two files again and again
        elif pick == 2:
            lines.append(b"")
        elif pick == 3:
            lines.append(b"   \t ")
        elif pick == 4:
            lines.append(f"# comment {n}".encode())
        elif pick == 5:
            lines.append(b"/videos/caf\xe9 \xff.mp4")  # a Latin-1 name in a list saved as Latin-1
        else:
            lines.append(garbage[n % len(garbage)].encode())
    listing = tmp_path / "inputs.txt"
    listing.write_bytes(b"\n".join(lines[:10_000]) + b"\n")
    assert listing.read_bytes().count(b"\n") == 10_000

    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", "--input-file", str(listing), "--out", str(out), "--cpu-threads", "2",
                                   "--retries", "1", "--max-attempts", "1", "--quiet")
    assert code == 1, stdout + stderr
    entries = list(manifest(out).values())
    # Each distinct input once: 2 good + every distinct junk line (+ the undecodable line, counted once).
    assert len(entries) == 2 + len(garbage) + 1
    assert sorted(e["source"] for e in entries if e["status"] == "done") == sorted(map(str, good))
    failed = [e for e in entries if e["status"] == "failed"]
    assert len(failed) == len(garbage) + 1 and all(e["error"] for e in failed)
    assert "duplicate input(s) ignored" in stdout
    reasons = {e["input"][:40]: e["error"] for e in failed}
    assert reasons["garbage line 7 !!"] == "not a URL or file: garbage line 7 !!"
    assert reasons["ftp://127.0.0.1/clip.mp3"].startswith("unsupported URL scheme ftp://")
    assert reasons["www.example.com/watch?v=x"].startswith("not a URL or file (URLs need http:// or https://)")
    assert "File name too long" in reasons["x" * 40]
    assert "connection refused" in reasons["http://127.0.0.1:9/none.mp3"]
    assert reasons["/videos/caf\ufffd \ufffd.mp4"] == (
        "file not found: /videos/caf\ufffd \ufffd.mp4 (the input list has bytes here that are not UTF-8; "
        "save it as UTF-8)")
    # The manifest and the store agree on every line's fate, one line of text each.
    assert all("\n" not in e["error"] for e in failed)


def test_non_utf8_file_names_fail_alone_with_a_readable_name(run_cli, tmp_path, speech_clips):
    folder = tmp_path / "in"
    folder.mkdir()
    weather = speech_clips["weather"].path
    (folder / "fine.mp3").write_bytes(weather.read_bytes())
    latin1 = os.path.join(os.fsencode(folder), b"caf\xe9 \xff.mp3")
    with open(latin1, "wb") as fh:
        fh.write(weather.read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_bytes(latin1 + b"\n")

    out = tmp_path / "out"
    # The name as the OS passes it (lone surrogates), the folder holding it, and a list naming it.
    code, stdout, stderr = run_cli("run", os.fsdecode(latin1), str(folder), "--input-file", str(listing),
                                   "--out", str(out), "--cpu-threads", "2", "--quiet")
    assert code == 1, stdout + stderr
    entries = manifest(out)
    readable = f"{folder}/caf\\xe9 \\xff.mp3"
    assert entries[str(folder / "fine.mp3")]["status"] == "done"
    assert entries[readable]["status"] == "failed"
    assert entries[readable]["error"] == f"name is not valid UTF-8 (rename it): {readable}"
    from_list = [e for s, e in entries.items() if "\ufffd" in s]
    assert len(from_list) == 1 and "not UTF-8; save it as UTF-8" in from_list[0]["error"]
    assert len(entries) == 3  # the argument and the folder's copy of the same file are one video
    # Nothing about the odd name leaked into a folder name or broke the status table.
    assert all(p.name.isprintable() for p in out.iterdir())
    code, table, _ = run_cli("status", str(out))
    assert code == 1 and "name is not valid UTF-8" in table


def test_credentials_in_a_url_are_sent_as_given_and_never_shown_or_stored(run_cli, tmp_path, media_dir, media_server,
                                                                           speech_clips):
    """`http://User:PassWord@host/...`: the server compares case-sensitively (a lower-cased netloc got 401), and
    the secret once landed in manifest.json, the store, the console and the dashboard."""
    user, secret = media_server.auth
    assert secret != secret.lower()  # mixed case, or this test could not tell
    name = f"members-{uuid.uuid4().hex[:8]}"
    clip = speech_clips["weather"].path
    (media_dir / f"{name}.mp3").write_bytes(clip.read_bytes())
    (media_dir / name).write_bytes(clip.read_bytes())  # no extension: through yt-dlp's extractor
    direct = media_server.url(f"auth/{name}.mp3").replace("http://", f"http://{user}:{secret}@")
    page = media_server.url(f"auth/{name}").replace("http://", f"http://{user}:{secret}@")
    shown = {url.replace(f":{secret}@", ":***@") for url in (direct, page)}

    out = tmp_path / "out"
    args = ("run", direct, page, "--out", str(out), "--formats", "txt", "--cpu-threads", "2")
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stdout + stderr
    entries = manifest(out)
    assert set(entries) == shown and all(e["status"] == "done" for e in entries.values())
    assert {e["input"] for e in entries.values()} == shown

    # A rerun resumes the same videos (their id is the redacted URL's) and the password is needed again.
    code, again, _ = run_cli(*args)
    assert code == 0 and "Nothing to do: all 2 videos are already done" in again
    _, table, _ = run_cli("status", str(out))

    screens = stdout + stderr + again + table
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.startswith("bulk_transcribe.sqlite") for p in files)
    for text in [screens] + [p.read_bytes().decode("utf-8", "replace") for p in files]:
        assert secret.lower() not in text.lower()


def test_output_folder_inside_the_input_folder_is_left_alone_and_partials_cleaned(run_cli, tmp_path, speech_clips):
    folder = tmp_path / "videos"
    out = folder / "transcripts"
    partial = out / ".work" / "dl-0123456789abcdef-deadbeef"
    partial.mkdir(parents=True)
    (out / "audio").mkdir()
    clip = speech_clips["weather"].path
    shutil.copy(clip, folder / "talk.mp3")
    shutil.copy(clip, out / "audio" / "kept.mp3")  # what --keep-audio leaves
    shutil.copy(clip, partial / "0123456789abcdef.mp3")  # a finished download a kill left behind
    (partial / "0123456789abcdef.m4a.part").write_bytes(b"\0" * 1000)

    code, stdout, stderr = run_cli("run", str(folder), "--out", str(out), "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    assert list(manifest(out)) == [str(folder / "talk.mp3")]
    assert not partial.exists()  # cut-off downloads cleaned at the start of the run
    assert (out / "audio" / "kept.mp3").is_file()  # kept audio is the user's: kept, just never an input


def _without_root_override(tmp_path) -> list[str]:
    """A command prefix under which file permissions apply even to root: tests run as root here, and root
    reads mode-000 files. Dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH keeps uid 0 (the venv under /root stays
    usable) but makes the owner bits count. Skips, saying why, where that cannot be had."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
              "--inh-caps", "-dac_override,-dac_read_search"]
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        check = subprocess.run(prefix + ["cat", str(probe)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("running as root without setpriv: root cannot be denied a read here")
    if check.returncode == 0 or "Permission denied" not in check.stderr:
        pytest.skip(f"running as root and setpriv could not drop the override ({check.stderr.strip()[:80]})")
    return prefix


def test_unreadable_files_and_folders_fail_alone_as_such(tmp_path, speech_clips):
    """A folder with one unsearchable subfolder failed entirely; an unreadable file read "not a media file"."""
    prefix = _without_root_override(tmp_path)
    folder = tmp_path / "videos"
    (folder / "locked").mkdir(parents=True)
    clip = speech_clips["weather"].path
    shutil.copy(clip, folder / "good.mp3")
    shutil.copy(clip, folder / "locked" / "hidden.mp3")
    shutil.copy(clip, folder / "secret.mp3")
    (folder / "secret.mp3").chmod(0)
    (folder / "locked").chmod(0)
    out = tmp_path / "out"
    try:
        run = subprocess.run(
            prefix + [sys.executable, "-m", "bulk_transcribe.cli", "run", str(folder), str(folder / "secret.mp3"),
                      "--out", str(out), "--cpu-threads", "2", "--quiet"],
            capture_output=True, text=True, timeout=300)
    finally:
        (folder / "locked").chmod(0o755)
    assert run.returncode == 1, run.stdout + run.stderr
    entries = manifest(out)
    assert entries[str(folder / "good.mp3")]["status"] == "done"
    assert entries[str(folder / "locked")]["error"] == f"cannot read folder {folder / 'locked'}: permission denied"
    assert entries[str(folder / "secret.mp3")]["error"] == f"cannot read {folder / 'secret.mp3'}: permission denied"
    assert len(entries) == 3


def test_messages_name_the_right_thing(run_cli, tmp_path, media_server, speech_clips):
    """Each says what is wrong with what the user gave, in one line, no Python class names: a page whose media is
    gone names the media (and the page), --playlist-items is checked up front, -o naming a file says so, a
    manifest path taken by a folder is named."""
    code, _, _ = run_cli("run", media_server.url("page/no-such-media"), "--out", str(tmp_path / "p"), "-q")
    [entry] = manifest(tmp_path / "p").values()
    assert entry["error"] == (f"HTTP 404 Not Found: {media_server.url('no-such-media')} "
                              f"(from {media_server.url('page/no-such-media')})")
    clip = str(speech_clips["weather"].path)
    code, _, stderr = run_cli("run", clip, "--playlist-items", "abc", "--out", str(tmp_path / "i"))
    assert code == 2 and "bad --playlist-items 'abc'" in stderr and not (tmp_path / "i").exists()
    (tmp_path / "a-file").write_text("not a folder")
    code, _, stderr = run_cli("run", clip, "--out", str(tmp_path / "a-file"))
    assert code == 2 and stderr == f"bulk-transcribe: error: --out {tmp_path / 'a-file'} is a file; give a folder " \
                                   "(it is created if missing)\n"
    (tmp_path / "m" / "manifest.json").mkdir(parents=True)
    code, _, stderr = run_cli("run", clip, "--out", str(tmp_path / "m"), "--cpu-threads", "2", "-q")
    assert code == 1 and f"{tmp_path / 'm' / 'manifest.json'}: is a directory" in stderr
    assert "Error" not in stderr and stderr.count("\n") == 1
