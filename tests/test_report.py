"""`status` for scripts: exit code by outcome, `--json` with the run and its videos (real runs, real store)."""

from __future__ import annotations

import json
import subprocess
import sys



def test_status_exit_code_and_json_follow_the_run(run_cli, tmp_path, speech_clips):
    good = str(speech_clips["garden"].path)
    missing = str(tmp_path / "missing.mp3")
    bad_out, good_out = tmp_path / "bad", tmp_path / "good"
    assert run_cli("run", good, missing, "--out", str(bad_out), "--formats", "txt", "--cpu-threads", "2", "--quiet")[0] == 1
    assert run_cli("run", good, "--out", str(good_out), "--formats", "txt", "--cpu-threads", "2", "--quiet")[0] == 0

    code, table, _ = run_cli("status", str(bad_out))
    assert code == 1 and "failed" in table
    assert run_cli("status", str(good_out))[0] == 0

    # The JSON is the whole stdout (a script pipes it), in a separate process as a script would run it.
    proc = subprocess.run([sys.executable, "-m", "bulk_transcribe.cli", "status", str(bad_out), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["version"] == 1
    assert data["run"]["status"] == "finished" and data["run"]["videos"] == 2
    assert data["run"]["counts"]["done"] == 1 and data["run"]["counts"]["failed"] == 1
    by_source = {v["source"]: v for v in data["videos"]}
    assert by_source[good]["status"] == "done" and by_source[good]["outputs"]["txt"].endswith("transcript.txt")
    assert (bad_out / by_source[good]["outputs"]["txt"]).is_file()
    assert by_source[good]["folder"] == by_source[good]["outputs"]["txt"].split("/")[0]
    assert by_source[missing]["status"] == "failed" and "not found" in by_source[missing]["error"]

    code, text, _ = run_cli("status", str(good_out), "--json")
    assert code == 0 and json.loads(text)["run"]["counts"]["done"] == 1


def test_summary_line_gives_the_wall_clock_speed_and_names_the_processing_one():
    """The run's speed is its audio over the wall clock from its start; the processing-only figure stands beside it
    only when start-up made a difference, and says what it is."""
    from bulk_transcribe.cli.report import summary_line
    from bulk_transcribe.models import Snapshot

    def snapshot(throughput_x, processing_x):
        return Snapshot("r", [], {"done": 3}, 600.0, 600.0, throughput_x, None, 0.0, 60.0,
                        processing_x=processing_x)

    line = summary_line(snapshot(10.0, 15.0))
    assert line.endswith("audio 10:00 / 10:00, 10.0x real time from the run's start (15.0x from its first video's)")
    assert "first video" not in summary_line(snapshot(10.0, 10.2))  # within 5 %: one figure is the truth


def test_handover_line_says_how_a_parallel_run_started():
    from bulk_transcribe.cli.report import handover_line
    from bulk_transcribe.engine.handover import HandoverTimes

    def times(asked, up, ready, videos):
        return HandoverTimes(cluster_asked_s=asked, cluster_open_s=up, first_cluster_worker_s=ready,
                             in_process_videos=videos)

    assert handover_line(times(0.0, 14.2, 21.6, 3)) == (
        "Ray's first worker was ready 22 s after the start (Ray up at 14 s); 3 video(s) started in this process "
        "meanwhile")
    assert handover_line(times(0.0, None, None, 5)) == (
        "Ray was still starting when the run ended; 5 video(s) started in this process")
    assert handover_line(times(0.0, None, None, 0)) is None  # stopped before anything started: nothing to say
    assert handover_line(times(0.0, 9.0, None, 2)).startswith("Ray was up after 9 s, its workers were not ready")
    assert handover_line(times(None, None, None, 7)) == (
        "Ray was not started: too little audio waited to pay for its start; 7 video(s) started in this process")


def test_status_of_a_run_that_died_before_any_video_joined_is_not_success(run_cli, tmp_path):
    """A CLI ended at once (a second Ctrl-C, a kill) before its inputs were resolved leaves a run with no rows:
    `status` says it stopped, and its exit code is not the success of a finished run."""
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.layout import state_db
    from bulk_transcribe.session_manager import SessionStore

    out = tmp_path / "out"
    out.mkdir()
    with SessionStore(state_db(out)) as store:
        store.begin_run(RunConfig(inputs=("http://127.0.0.1:9/never",), out_dir=out), "parallel")
    code, table, _ = run_cli("status", str(out))
    assert code == 1 and "stopped" in table, table
