"""The CLI end to end: real files, real local-server URLs, the real model, a real SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import time
import sys
from pathlib import Path

import pytest

from bulk_transcribe.cli.args import build_parser, parse_size
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.session_manager import SessionStore
from processes import sigkill_when
from textmetrics import wer

CLI = [sys.executable, "-m", "bulk_transcribe.cli"]


def manifest(out_dir: Path) -> dict[str, dict]:
    """Manifest entries keyed by source (a folder input yields several videos with the same input)."""
    entries = json.loads((out_dir / "manifest.json").read_text())["videos"]
    return {e["source"]: e for e in entries}


def test_help_lists_every_option():
    text = build_parser().format_help()
    assert "run" in text and "status" in text
    run_help = subprocess.run(CLI + ["run", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--input-file", "--out", "--formats", "--model", "--device", "--compute-type", "--language",
                 "--rate-limit", "--sleep", "--keep-audio", "--parallel", "--sequential", "--workers", "--batch-size"):
        assert flag in run_help


def test_help_reads_like_yt_dlps():
    """Every option explained, no argparse '(default: None)', sizes in human units, groups and examples."""
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    for action in run._actions:
        assert action.help and len(action.help) > 10, action.option_strings
    env = {**os.environ, "COLUMNS": "100"}
    run_help = subprocess.run(CLI + ["run", "--help"], capture_output=True, text=True, check=True, env=env).stdout
    assert "(default: None)" not in run_help and "default: []" not in run_help
    assert "1073741824" not in run_help and "(default: 1G)" in run_help
    assert all(action.help.count("default") <= 1 for action in run._actions)  # no doubled defaults
    for group in ("input:", "output:", "model:", "download", "parallel (Ray):", "display:"):
        assert f"\n{group}" in run_help
    assert "-a FILE, --batch-file FILE, --input-file FILE" in run_help
    examples = run_help.split("examples:", 1)[1]
    for example in ("playlist", "run -a urls.txt", "-a -", "~/Videos/lectures", "--parallel --ray-address",
                    "status talks --json", "--download-archive"):
        assert example in examples
    status_help = subprocess.run(CLI + ["status", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--json" in status_help and "(default: None)" not in status_help


@pytest.mark.parametrize("args", [["run"], ["run", "x", "--formats", "doc"], ["run", "x", "--workers", "0"],
                                  ["bogus"], ["run", "x", "--input-file", "/no/such/list.txt"],
                                  ["run", "x", "--batch-size", "-1"]])
def test_bad_usage_exits_2(run_cli, args, tmp_path):
    code, _, err = run_cli(*args, *(["--out", str(tmp_path)] if args[0] == "run" and len(args) > 1 else []))
    assert code == 2
    assert err


def test_parse_size():
    assert parse_size("500K") == 500 * 1024
    assert parse_size("2M") == 2 * 1024**2
    assert parse_size("1234") == 1234


def test_mixed_batch_good_done_bad_failed_with_reasons(run_cli, tmp_path, jfk_flac, jfk_text, speech_clips, bad_media,
                                                       media_server):
    out = tmp_path / "out"
    good_url = media_server.url(speech_clips["library"].path.name)
    inputs = {
        "jfk": str(jfk_flac),
        "url": good_url,
        "silence": str(bad_media["silence"]),
        "missing": str(tmp_path / "nope.mp4"),
        "empty": str(bad_media["empty"]),
        "text": str(bad_media["text_as_mp4"]),
        "no_audio": str(bad_media["no_audio"]),
        "http404": media_server.url("status/404"),
        "unreachable": "http://127.0.0.1:9/video.mp4",
    }
    code, stdout, _ = run_cli("run", *inputs.values(), "--out", str(out), "--cpu-threads", "2",
                              "--max-attempts", "1", "--retries", "0", "--quiet")
    assert code == 1, stdout
    entries = manifest(out)
    status = {name: entries[value]["status"] for name, value in inputs.items()}
    assert status == {
        "jfk": "done", "url": "done", "silence": "done",
        "missing": "failed", "empty": "failed", "text": "failed", "no_audio": "failed",
        "http404": "failed", "unreachable": "failed",
    }
    errors = {name: entries[value]["error"].lower() for name, value in inputs.items() if status[name] == "failed"}
    assert "not found" in errors["missing"]
    assert "empty" in errors["empty"]
    assert "not a media file" in errors["text"] or "invalid data" in errors["text"]
    assert "no audio" in errors["no_audio"]
    assert "404" in errors["http404"]
    assert "127.0.0.1:9" in errors["unreachable"] or "refused" in errors["unreachable"]

    jfk = entries[str(jfk_flac)]
    text = (out / jfk["outputs"]["txt"]).read_text()
    assert wer(jfk_text, text) <= 0.15
    assert set(jfk["outputs"]) == {"txt", "srt", "vtt", "json"}
    assert jfk["duration_s"] == pytest.approx(11.0, abs=0.5)
    assert jfk["speed_x"] > 0
    silence = entries[str(bad_media["silence"])]
    assert (out / silence["outputs"]["txt"]).read_text().strip() == ""

    # The status command reads the same store and exits 1 because some videos failed.
    code, table, _ = run_cli("status", str(out))
    assert code == 1
    assert "done" in table and "failed" in table and "404" in table


def test_formats_subset_and_status_of_missing_folder(run_cli, tmp_path, speech_clips):
    out = tmp_path / "out"
    code, _, _ = run_cli("run", str(speech_clips["weather"].path), "--out", str(out), "--formats", "txt,json",
                         "--cpu-threads", "2", "--quiet")
    assert code == 0
    folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == ["transcript.json", "transcript.txt"]
    code, _, err = run_cli("status", str(tmp_path / "elsewhere"))
    assert code == 2 and "no batch" in err
    # `--out`, as `run` spells it, names the same folder; no folder at all is a one-line usage error.
    code, stdout, _ = run_cli("status", "--out", str(out))
    assert code == 0 and "1 video: 1 done" in stdout, stdout
    code, _, err = run_cli("status")
    assert code == 2 and err.strip() == "bulk-transcribe: error: status needs the batch's output folder: status OUT"


def _done_ids(db: Path) -> set[str]:
    if not db.exists():
        return set()
    return {r.video_id for r in SessionStore(db).videos() if r.status.value == "done"}


def test_sigkill_mid_batch_then_rerun_resumes_without_redoing(tmp_path, speech_clips, jfk_flac):
    """Kill -9 the CLI after the first video finished; the rerun finishes the rest and leaves done ones alone."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for clip in speech_clips.values():
        os.symlink(clip.path, folder / clip.path.name)
    os.symlink(jfk_flac, folder / "jfk.flac")
    out = tmp_path / "out"
    db = out / STATE_DB_NAME
    args = CLI + ["run", str(folder), "--out", str(out), "--cpu-threads", "1", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: bool(_done_ids(db)), too_soon="the batch finished before it could be killed")
    done_before = _done_ids(db)
    assert 1 <= len(done_before) < 5
    stamps = {}
    for record in SessionStore(db).videos():
        if record.video_id in done_before:
            stamps[record.video_id] = {f: (out / p).stat().st_mtime_ns for f, p in record.outputs.items()}
    # No temp files or half transcripts left behind by the kill.
    assert not [p for p in out.rglob("transcript.*") if p.suffix not in (".txt", ".srt", ".vtt", ".json")]

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(done_before)} already finished" in rerun.stdout
    records = SessionStore(db).videos()
    assert len(records) == 5 and all(r.status.value == "done" for r in records)
    for record in records:
        if record.video_id in stamps:  # finished before the kill: not redone
            assert {f: (out / p).stat().st_mtime_ns for f, p in record.outputs.items()} == stamps[record.video_id]
    entries = manifest(out)
    assert len(entries) == 5 and {e["status"] for e in entries.values()} == {"done"}
    # Each video exactly once on disk.
    assert len(list(out.rglob("transcript.txt"))) == 5


def test_status_reads_a_folder_on_a_read_only_disk(run_cli, tmp_path, speech_clips):
    """`status` is a reader: it opens the store read-only, so a folder on a read-only disk (a finished batch
    archived, a mount shared read-only) still shows its table instead of a traceback."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "out"
        done = subprocess.run(CLI + ["run", str(speech_clips["weather"].path), "--out", str(out), "--cpu-threads",
                                     "1", "--quiet"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, text, err = run_cli("status", str(out))
        assert code == 0, err
        assert "Traceback" not in err and "(sequential, finished)" in text and " done " in text
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_second_run_on_a_folder_a_live_run_owns_is_refused_naming_the_owner(tmp_path, speech_clips, jfk_flac):
    """Two identical commands started together used to transcribe everything twice; now the second says who owns
    the folder and does nothing."""
    out = tmp_path / "out"
    args = CLI + ["run", str(jfk_flac), *[str(c.path) for c in speech_clips.values()], "--out", str(out),
                  "--cpu-threads", "1", "--quiet"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = out / ".bulk_transcribe.lock"
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.stat().st_size) and time.monotonic() < deadline:
            assert first.poll() is None, "the first run ended before the second could start"
            time.sleep(0.1)
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert f"is in use by bulk-transcribe (process {first.pid} on" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0
    assert len(list(out.rglob("transcript.txt"))) == 5  # each video once


def test_cookies_from_browser_is_parsed_as_yt_dlp_does_and_handed_to_it(run_cli, tmp_path):
    from bulk_transcribe.cli.args import config_from_args
    from bulk_transcribe.media.download import ytdlp_params

    args = build_parser().parse_args(["run", "x", "--cookies-from-browser", "chrome+gnomekeyring:Profile 1::work"])
    options = config_from_args(args).download
    assert ytdlp_params(options)["cookiesfrombrowser"] == ("chrome", "Profile 1", "GNOMEKEYRING", "work")
    assert ytdlp_params(config_from_args(build_parser().parse_args(["run", "x"])).download).get(
        "cookiesfrombrowser") is None
    code, _, err = run_cli("run", "x", "--cookies-from-browser", "netscape", "--out", str(tmp_path))
    assert code == 2 and "unsupported browser 'netscape'" in err


def test_a_yt_dlp_template_given_as_out_is_pointed_to_output_template(run_cli, tmp_path):
    code, _, err = run_cli("run", "x", "-o", str(tmp_path / "%(title)s.%(ext)s"))
    assert code == 2 and "--output-template" in err
    assert not list(tmp_path.iterdir())


def test_status_reads_a_folder_whose_name_looks_like_a_uri(run_cli, tmp_path, speech_clips):
    """'talks #2': the read-only store is opened by URI, where an unquoted '#' would end the path."""
    out = tmp_path / "talks #2 ?x=1"
    code, _, err = run_cli("run", str(speech_clips["weather"].path), "--out", str(out), "--cpu-threads", "1", "-q")
    assert code == 0, err
    code, text, err = run_cli("status", str(out))
    assert code == 0, err
    assert "(sequential, finished)" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talks #2 ?x=1"]  # no stray database beside it


def test_a_mixed_language_batch_says_which_transcripts_not_to_trust(run_cli, tmp_path, mixed_languages):
    """The bundled English-only model on English, German, Spanish and silence: every video is done, and exactly
    the three bad transcripts are flagged, with a reason, in the table, the counts, the manifest, each
    transcript.json and `status --json`."""
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", *map(str, mixed_languages.values()), "--out", str(out), "--formats",
                                   "txt,json", "--cpu-threads", "2")
    assert code == 0, stdout + stderr  # a flag is a reason to look, not a failure
    assert "4 done, 3 need review" in stdout
    table = {line.split()[1]: line for line in stdout.splitlines() if line[:3].strip().isdigit()}
    # German through tiny.en falls back to sampling (random): its flags are low confidence, sometimes with a loop.
    assert "review: " in table["german"]  # the whole reason is in the manifest (below)
    assert "review: speech expected, none transcribed" in table["spanish"]
    assert "review: text on audio with no speech" in table["silence"]
    assert "review" not in table["english"]

    manifest = {v["title"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    codes = {title: [f["code"] for f in v["quality"]["flags"]] for title, v in manifest.items()}
    assert codes["english"] == [] and "low_confidence" in codes["german"]
    german_reasons = [f["reason"] for f in manifest["german"]["quality"]["flags"]]
    assert any("not English (bundled (tiny.en) is English-only)" in r for r in german_reasons), german_reasons
    assert "speech_missing" in codes["spanish"] and "no_speech_text" in codes["silence"]
    assert manifest["english"]["quality"]["signals"]["mean_logprob"] > -0.75
    assert {v["language"] for v in manifest.values()} == {"en"}
    german = json.loads((out / manifest["german"]["outputs"]["json"]).read_text())
    assert "low_confidence" in [f["code"] for f in german["quality"]["flags"]]
    assert german["segments"][0]["avg_logprob"] < -0.75  # the doubtful stretch, per segment

    code, stdout, _ = run_cli("status", str(out), "--json")
    status = json.loads(stdout)
    assert status["run"]["needs_review"] == 3
    by_title = {v["title"]: v for v in status["videos"]}
    assert "speech_missing" in [f["code"] for f in by_title["spanish"]["flags"]]
    assert by_title["spanish"]["quality"]["signals"]["vad_speech_s"] > 3
