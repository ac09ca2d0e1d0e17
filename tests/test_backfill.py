"""A rerun with more formats writes them for done videos from the stored transcript, with no model at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bulk_transcribe.media.model_check import locate_model
from bulk_transcribe.layout import STORED_DIR_NAME as STORED_DIR
from subtitle_files import parse_srt, parse_vtt


def _broken_model(tmp_path: Path) -> Path:
    """A folder the upfront check accepts (model.bin, English vocabulary) but CTranslate2 cannot load: any
    transcription in the rerun would fail, so a rerun that ends 0 proves none happened."""
    bundled = Path(locate_model("bundled").path)
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"not a model")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(bundled / name, folder / name)
    return folder


def test_more_formats_on_rerun_without_transcribing(run_cli, tmp_path, speech_clips, jfk_flac):
    out = tmp_path / "out"
    inputs = [str(jfk_flac), str(speech_clips["library"].path)]
    code, stdout, stderr = run_cli("run", *inputs, "--out", str(out), "--formats", "txt", "--cpu-threads", "2",
                                "--quiet")
    assert code == 0, stdout + stderr
    first = {e["source"]: e for e in json.loads((out / "manifest.json").read_text())["videos"]}
    assert all(set(e["outputs"]) == {"txt"} for e in first.values())
    assert len(list((out / STORED_DIR).glob("*.json.gz"))) == 2
    txt_stamp = {s: (out / e["outputs"]["txt"]).stat().st_mtime_ns for s, e in first.items()}

    broken = _broken_model(tmp_path)
    code, stdout, stderr = run_cli("run", *inputs, "--out", str(out), "--formats", "txt,srt,vtt,json",
                                "--max-line-width", "30", "--model", str(broken), "--cpu-threads", "2", "--quiet")
    assert code == 0, stdout + stderr
    assert "Wrote 6 missing output(s) for 2 finished video(s)" in stdout
    entries = {e["source"]: e for e in json.loads((out / "manifest.json").read_text())["videos"]}
    for source, entry in entries.items():
        assert set(entry["outputs"]) == {"txt", "srt", "vtt", "json"}
        assert entry["attempts"] == first[source]["attempts"]  # not run again
        assert (out / entry["outputs"]["txt"]).stat().st_mtime_ns == txt_stamp[source]  # not rewritten
        data = json.loads((out / entry["outputs"]["json"]).read_text())
        assert "tiny.en" in data["model"]  # the first run's transcript, not one from the broken model
        srt = parse_srt((out / entry["outputs"]["srt"]).read_text())
        assert " ".join(" ".join(c[2].split()) for c in srt) == " ".join(data["text"].split())
        assert all(len(line) <= 30 or " " not in line for c in srt for line in c[2].split("\n"))
        assert parse_vtt((out / entry["outputs"]["vtt"]).read_text())

    # Nothing missing: a third run writes nothing and says nothing about it.
    code, stdout, _ = run_cli("run", *inputs, "--out", str(out), "--formats", "srt", "--quiet")
    assert code == 0 and "missing output" not in stdout


def test_an_older_videos_json_output_serves_when_no_copy_is_stored(run_cli, tmp_path, speech_clips):
    out = tmp_path / "out"
    clip = str(speech_clips["weather"].path)
    assert run_cli("run", clip, "--out", str(out), "--formats", "json", "--cpu-threads", "2", "--quiet")[0] == 0
    shutil.rmtree(out / STORED_DIR)  # as a store written before copies were kept
    code, stdout, _ = run_cli("run", clip, "--out", str(out), "--formats", "json,txt", "--quiet")
    assert code == 0 and "Wrote 1 missing output(s)" in stdout
    entry = json.loads((out / "manifest.json").read_text())["videos"][0]
    assert "breeze" in (out / entry["outputs"]["txt"]).read_text()
    # With neither the copy nor a JSON output, the video is transcribed again (not "nothing to do").
    (out / entry["outputs"]["json"]).unlink()
    code, stdout, _ = run_cli("run", clip, "--out", str(out), "--formats", "json,txt,srt", "--cpu-threads", "2",
                              "--quiet")
    assert code == 0 and "1 finished video(s) lost outputs that no stored transcript could rewrite" in stdout
    entry = json.loads((out / "manifest.json").read_text())["videos"][0]
    assert entry["status"] == "done" and sorted(entry["outputs"]) == ["json", "srt", "txt"]
    assert all((out / path).is_file() for path in entry["outputs"].values())


def test_a_deleted_folder_is_written_again_and_never_listed_while_gone(run_cli, tmp_path, speech_clips):
    """rm -rf OUT/<video> then a rerun: the video's files come back (from its stored transcript, or by
    transcribing it again when that is gone too), and no manifest ever lists a file that is not there."""
    out = tmp_path / "out"
    clips = [str(speech_clips["weather"].path), str(speech_clips["garden"].path)]
    assert run_cli("run", *clips, "--out", str(out), "--formats", "txt,srt", "--cpu-threads", "2", "-q")[0] == 0
    entries = {e["title"]: e for e in json.loads((out / "manifest.json").read_text())["videos"]}
    shutil.rmtree(out / "garden")
    code, stdout, _ = run_cli("run", *clips, "--out", str(out), "--formats", "txt,srt", "--quiet")
    assert code == 0 and "Wrote 2 missing output(s) for 1 finished video(s)" in stdout
    assert "garden" in (out / entries["garden"]["outputs"]["txt"]).read_text().lower()
    shutil.rmtree(out / "garden")
    shutil.rmtree(out / STORED_DIR)
    code, stdout, _ = run_cli("run", *clips, "--out", str(out), "--formats", "txt,srt", "--cpu-threads", "2", "-q")
    assert code == 0 and "1 finished video(s) lost outputs" in stdout and "Nothing to do" not in stdout
    assert (out / "garden" / "transcript.txt").is_file()
    shutil.rmtree(out / "weather")  # and the manifest written now never names what is gone
    from bulk_transcribe.outputs.writers import write_manifest
    from bulk_transcribe.session_manager import SessionStore

    write_manifest(out, SessionStore(out / "bulk_transcribe.sqlite").manifest_entries(None))
    listed = [p for e in json.loads((out / "manifest.json").read_text())["videos"] for p in e["outputs"].values()]
    assert listed and all((out / p).is_file() for p in listed)
