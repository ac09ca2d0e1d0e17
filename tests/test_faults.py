"""Fault injection with real processes and real errors: the guarantees in the README's "Guarantees" section.

- Disk full while writing outputs: a real 2 MB tmpfs filled up mid-run (or, where the container forbids mounting,
  a real kernel file-size limit, RLIMIT_FSIZE, in a subprocess): the batch ends with the cause, earlier outputs
  and the manifest stay intact, and a rerun after freeing space finishes the rest without redoing anything.
- Ray shut down under a running parallel batch (in a separate host process): the batch ends with an error instead
  of hanging, every video ends in exactly one state, and a rerun on the same OUT resumes.
- The process hosting the dashboard (Streamlit's page script and its shared run registry) SIGKILLed mid-run: the
  restarted page reads the run back from the session store and submitting the batch again resumes it.
- Hang guard: a transcription past its per-video time budget fails with that reason and is retried once with
  safer options (VAD on) before giving up.
- Memory soak (slow): 200 short clips in parallel; the workers' resident memory does not keep growing and the
  session store stays consistent.

Other faults are proven elsewhere: SIGKILL of the CLI then resume (test_cli.py), SIGKILL of a worker and node
removal (test_executor.py, test_cluster.py), the misbehaving-server cases (test_download.py, test_bad_input.py).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import media
from processes import sigkill_when
from bulk_transcribe.runs import RAY_GONE, prepare_batch, run_batch
from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.layout import MANIFEST_NAME, STATE_DB_NAME
from bulk_transcribe.models import EventKind, SourceKind, VideoItem, VideoStatus
from bulk_transcribe.session_manager import SessionStore
from engine_harness import drive, shared_worker

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
HOME = str(REPO / "streamlit_app.py")
PAGE = "pages/02_Bulk_Transcribe.py"  # entered through the entry script, as the server does: page links resolve
OUTPUT_FILES = {"transcript.txt", "transcript.srt", "transcript.vtt", "transcript.json"}
CEILING_S = 300  # a hang guard for the test itself, never an assertion on speed


@pytest.fixture(scope="module")
def long_clips(jfk_flac, tmp_path_factory) -> list[Path]:
    """Three copies of about 22 s of real speech (distinct paths, so distinct videos): long enough that a run is
    surely mid-video when the fault strikes."""
    samples, rate = media.read_pcm(jfk_flac)
    folder = tmp_path_factory.mktemp("long")
    return [media.write_wav(np.tile(samples, 2), folder / f"speech_{n}.wav", rate) for n in "abc"]


def _stamps(out: Path) -> dict[str, tuple[int, bytes]]:
    """Every transcript file under OUT: (mtime_ns, bytes), to prove a file was not rewritten."""
    return {p.relative_to(out).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.glob("*/transcript.*"))}


def _assert_exactly_once(out: Path, expected: int) -> None:
    """Every video done once: one record each, one folder each holding exactly the four outputs, no temp files."""
    records = SessionStore(out / STATE_DB_NAME).videos()
    assert len(records) == expected and {r.status for r in records} == {VideoStatus.DONE}
    folders = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert sorted(r.folder for r in records) == [p.name for p in folders]
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == OUTPUT_FILES, folder
    manifest = json.loads((out / MANIFEST_NAME).read_text())["videos"]
    assert len(manifest) == expected and {e["status"] for e in manifest} == {"done"}
    assert not [p for p in out.rglob("*.tmp")], "a temporary file was left behind"


# --------------------------------------------------------------------------------------------- disk full


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _fill(disk: Path) -> Path:
    """Write zeros until the file system says ENOSPC: the disk is now truly full."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC, nothing else
        try:
            while True:  # the last few bytes
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_mid_run_ends_clearly_keeps_outputs_and_resumes(make_config, tmp_path, speech_clips, long_clips):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        return _disk_full_by_rlimit(tmp_path, speech_clips, long_clips)
    try:
        out = disk / "out"
        first = run_batch(make_config(out, [speech_clips["weather"].path], cpu_threads=2))
        assert first.exit_code == 0
        before = _stamps(out)
        manifest_before = (out / MANIFEST_NAME).read_bytes()

        # Fill the disk as soon as a new video is being worked on: its outputs, the store and the manifest all
        # meet a real ENOSPC.
        filled = threading.Event()

        def fill_when_busy(snapshot):
            if not filled.is_set() and snapshot.active:
                filled.set()
                _fill(disk)

        inputs = [speech_clips["weather"].path, *long_clips[:2]]
        result = run_batch(make_config(out, inputs, cpu_threads=2), on_snapshot=fill_when_busy)
        assert filled.is_set(), "the disk was never filled: the fault did not happen"
        assert result.exit_code == 1
        assert result.error and ("disk is full" in result.error or "No space left" in result.error), result.error
        # Earlier outputs and the manifest are untouched, and no half-written or temporary file is left.
        assert _stamps(out) == before
        assert (out / MANIFEST_NAME).read_bytes() == manifest_before
        assert not [p for p in out.rglob("*.tmp")]
        assert not [p for p in out.glob("*/transcript.*") if p.stat().st_size == 0]

        (disk / "filler").unlink()
        rerun = run_batch(make_config(out, inputs, cpu_threads=2))
        assert rerun.exit_code == 0, rerun.error
        _assert_exactly_once(out, 3)
        after = _stamps(out)
        assert {k: after[k] for k in before} == before, "a video done before the fault was redone"
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _disk_full_by_rlimit(tmp_path, speech_clips, long_clips) -> None:
    """Fallback where mounting is forbidden: RLIMIT_FSIZE, a real kernel limit (writes past it fail with EFBIG,
    which SQLite reports as 'disk I/O error'), set in a CLI subprocess."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "bulk_transcribe.cli", "run", "--out", str(out), "--cpu-threads", "2", "--quiet"]
    first = subprocess.run(args + [str(speech_clips["weather"].path)], capture_output=True, text=True,
                           timeout=CEILING_S)
    assert first.returncode == 0, first.stderr
    before = _stamps(out)
    manifest_before = (out / MANIFEST_NAME).read_bytes()
    inputs = [str(speech_clips["weather"].path)] + [str(p) for p in long_clips[:2]]

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    limited = subprocess.run(args + inputs, capture_output=True, text=True, timeout=CEILING_S,
                             preexec_fn=limit_file_size)
    assert limited.returncode == 1, limited.stdout + limited.stderr
    # SQLite reports EFBIG as an I/O error, ENOSPC as "database or disk is full"; either names the disk.
    assert any(cause in limited.stderr for cause in ("disk I/O error", "disk is full", "File too large")), (
        limited.stderr)
    assert _stamps(out) == before and (out / MANIFEST_NAME).read_bytes() == manifest_before
    rerun = subprocess.run(args + inputs, capture_output=True, text=True, timeout=CEILING_S)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    _assert_exactly_once(out, 3)
    assert {k: v for k, v in _stamps(out).items() if k in before} == before


# --------------------------------------------------------------------------------------------- Ray shut down

RAY_HOST = textwrap.dedent("""
    import json, sys, time
    from dataclasses import replace
    import ray
    from pathlib import Path
    from bulk_transcribe.runs import prepare_batch, start_batch
    from bulk_transcribe.config import RunConfig, TranscribeOptions
    from bulk_transcribe.parallel import cluster

    out, inputs = Path(sys.argv[1]), sys.argv[2:]
    config = RunConfig(inputs=tuple(inputs), out_dir=out, parallel=True, workers=2,
                       transcribe=TranscribeOptions(cpu_threads=1))
    cluster.connect(None, num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    # The batch goes to this Ray's workers at once (its address given: no in-process start, engine/handover.py).
    config = replace(config, ray_address=ray.get_runtime_context().gcs_address)
    # Where Ray's core worker logs why it ended this process, if it does (see the test).
    print("SESSION " + ray._private.worker._global_node.get_session_dir_path(), flush=True)
    handle = start_batch(config, prepare_batch(config))
    while handle.snapshot().counts.get("done", 0) < 1 and not handle.done:
        time.sleep(0.2)
    shut_down_while_running = not handle.done
    ray.shutdown()  # the fault: Ray goes away under the running batch
    finished = handle.wait(240)
    print("RESULT " + json.dumps({"shut_down_while_running": shut_down_while_running, "finished": finished,
                                  "error": handle.error}), flush=True)
""")


def _ray_driver_log(stdout: str) -> str:
    """The end of the host's Ray core-driver log (from the session folder it printed), or ''."""
    session = next((line[len("SESSION "):] for line in stdout.splitlines() if line.startswith("SESSION ")), None)
    if session is None:
        return ""
    logs = sorted(Path(session, "logs").glob("python-core-driver-*.log"))
    return logs[-1].read_text(errors="replace")[-8000:] if logs else ""


@pytest.mark.slow  # starts its own Ray in a host process, then a rerun: about a minute on this machine
def test_ray_shutdown_under_a_running_parallel_batch_then_resume(make_config, tmp_path, speech_clips, long_clips):
    out = tmp_path / "out"
    inputs = [speech_clips["weather"].path, *long_clips]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0",
           # Without this, the engine's first Ray call after the shutdown would quietly start a whole new local
           # Ray (ray's auto-init) on this shared machine; with it, that call fails like a lost cluster does.
           "RAY_ENABLE_AUTO_CONNECT": "0",
           # A crash is never silent: an abort inside Ray's core worker prints its Python stacks.
           "PYTHONFAULTHANDLER": "1"}
    host = subprocess.run([sys.executable, "-c", RAY_HOST, str(out), *map(str, inputs)], env=env,
                          capture_output=True, text=True, timeout=CEILING_S)
    lines = [line for line in host.stdout.splitlines() if line.startswith("RESULT ")]
    records = SessionStore(out / STATE_DB_NAME).videos()
    done = [r for r in records if r.status == VideoStatus.DONE]
    assert 1 <= len(done) < 4, "every video finished before Ray was shut down (or none did): adjust the clips"
    if lines:
        result = json.loads(lines[-1][len("RESULT "):])
        assert result["shut_down_while_running"], "every video finished before Ray was shut down"
        assert result["finished"], "the batch hung after Ray went away"
        assert result["error"] == RAY_GONE, "losing Ray ends the batch with that error, not a silent success"
        # Every video is in exactly one terminal state; the ones cut off say why.
        assert len(records) == 4 and all(r.status.is_terminal for r in records), [r.status for r in records]
        for record in records:
            if record.status == VideoStatus.FAILED:
                assert record.error == f"batch stopped: {RAY_GONE}", record.error
    else:
        # Ray's core worker may abort the whole driver process when another thread touches Ray right after its
        # shutdown (a race inside Ray): that is a driver crash, and what must hold then is what holds after a
        # SIGKILL — finished work intact and a rerun that does only the rest (checked below). Only that crash is
        # accepted, said as Ray says it (its core worker's message, or faulthandler's stacks through ray's own
        # modules when it aborts): never a silent exit, and never one of ours.
        # When a thread calls into Ray just after the shutdown, Ray's core worker may also end the process with
        # status 1 and say so only in its own log ("The core worker process is not initialized yet or already
        # shutdown"), which is read here.
        detail = f"exit {host.returncode}: " + host.stdout[-2000:] + host.stderr[-4000:]
        core_log = _ray_driver_log(host.stdout)
        inside_ray = "core worker has already been shutdown" in host.stderr or (
            host.returncode < 0 and "Fatal Python error" in host.stderr and "/ray/" in host.stderr) or (
            host.returncode == 1 and "already shutdown" in core_log[-2000:])
        assert host.returncode != 0 and inside_ray, detail + "\n" + core_log[-2000:]
    before = _stamps(out)
    assert len(before) == 4 * len(done)

    # A rerun on the same OUT (the rollback path: sequential) does only what is left.
    rerun = run_batch(make_config(out, inputs, cpu_threads=2))
    assert rerun.exit_code == 0, rerun.error
    _assert_exactly_once(out, 4)
    after = _stamps(out)
    assert {k: after[k] for k in before} == before, "a video done before Ray went away was redone"


# --------------------------------------------------------------------------------------------- dashboard killed

DASHBOARD_HOST = textwrap.dedent("""
    import sys, time
    from streamlit.testing.v1 import AppTest

    home, page, videos = sys.argv[1], sys.argv[2], sys.argv[3]
    at = AppTest.from_file(home, default_timeout=120).switch_page(page).run()
    at.text_area[0].input(videos).run()
    next(b for b in at.button if b.label == "Start transcription").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    print("RUN " + at.query_params["run"], flush=True)
    time.sleep(600)  # the server lives on while its registry runs the batch in the background
""")


def _done_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return sum(1 for r in SessionStore(db).videos() if r.status == VideoStatus.DONE)
    except Exception:  # noqa: BLE001 — the store may be mid-creation
        return 0


def test_dashboard_process_killed_mid_run_then_resumed_from_the_store(tmp_path, speech_clips, long_clips,
                                                                      monkeypatch):
    """The page script and its shared RunRegistry run in a host process exactly as `streamlit run` runs them;
    that process is SIGKILLed mid-run. A restarted page finds the run in the store; submitting again resumes."""
    from streamlit.testing.v1 import AppTest

    media_root, output_root = tmp_path / "media", tmp_path / "outputs"
    media_root.mkdir()
    output_root.mkdir()
    for clip in [speech_clips["weather"].path, *long_clips]:
        (media_root / clip.name).write_bytes(clip.read_bytes())
    videos = "\n".join(sorted(p.name for p in media_root.iterdir()))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BULK_TRANSCRIBE_MEDIA_ROOT": str(media_root),
           "BULK_TRANSCRIBE_OUTPUT_ROOT": str(output_root)}
    env.pop("BULK_TRANSCRIBE_PARALLEL", None)
    out = output_root / "transcripts"
    db = out / STATE_DB_NAME

    host = subprocess.Popen([sys.executable, "-c", DASHBOARD_HOST, HOME, PAGE, videos], env=env, cwd=str(output_root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_line = host.stdout.readline()
        assert run_line.startswith("RUN "), run_line + host.stderr.read()[-3000:]
        run_id = run_line.split()[1]
        sigkill_when(host, lambda: _done_count(db) >= 1, timeout_s=CEILING_S)
    finally:
        if host.poll() is None:
            host.kill()
    done_before = _done_count(db)
    assert 1 <= done_before < 4, "the run finished before the kill: make the clips longer"
    before = _stamps(out)

    # The restarted server: a fresh page with the run's URL reads the run back from the store in OUT.
    monkeypatch.setenv("BULK_TRANSCRIBE_MEDIA_ROOT", str(media_root))
    monkeypatch.setenv("BULK_TRANSCRIBE_OUTPUT_ROOT", str(output_root))
    monkeypatch.delenv("BULK_TRANSCRIBE_PARALLEL", raising=False)
    monkeypatch.chdir(output_root)
    from bulk_transcribe.dashboard import render

    render.shared_registry.clear()
    page = AppTest.from_file(HOME, default_timeout=120).switch_page(PAGE)
    page.query_params.update({"run": run_id, "out": "transcripts"})
    page.run()
    assert not page.exception, page.exception
    statuses = [s.split()[-1] for s in page.dataframe[0].value["Status"]]
    assert len(statuses) == 4 and statuses.count("done") == done_before

    # Submitting the same videos again resumes: done ones stay done (not redone), the rest run once.
    again = AppTest.from_file(HOME, default_timeout=120).switch_page(PAGE).run()
    again.text_area[0].input(videos).run()
    next(b for b in again.button if b.label == "Start transcription").click().run()
    assert not again.exception and not again.error, [e.value for e in again.error]
    entry = render.shared_registry().get(again.query_params["run"])
    assert entry is not None and entry.wait_done(timeout=CEILING_S)
    assert entry.error is None, entry.error
    _assert_exactly_once(out, 4)
    after = _stamps(out)
    assert {k: after[k] for k in before} == before, "a video done before the kill was redone"


# --------------------------------------------------------------------------------------------- hang guard


def test_runaway_transcription_is_stopped_failed_with_reason_and_retried_once_with_vad(make_config, tmp_path, long_clips):
    """A real run whose time budget is made tiny (factor 0.001 and no grace: about 0.02 s for 22 s of audio)
    stands in for a decoding loop: the limit stops it after the first segment, the video is retried once with
    the safer options, and then it fails with the reason."""
    from faster_whisper import vad

    config = make_config(tmp_path / "out", [long_clips[0]], max_attempts=2,
                         transcribe=TranscribeOptions(cpu_threads=2, timeout_factor=0.001))
    worker = shared_worker(config)
    # The Transcriber's own setting; the default 60 s is for real runs.
    worker.processor.transcriber.timeout_grace_s = 0.0
    items = [VideoItem(str(long_clips[0]), SourceKind.FILE, str(long_clips[0]))]
    # faster-whisper looks its VAD model up once per transcription that uses VAD: counting lookups counts them.
    vad_uses = lambda: vad.get_vad_model.cache_info().hits + vad.get_vad_model.cache_info().misses  # noqa: E731
    vad_before = vad_uses()
    events = drive(config, items, "local", worker=worker).events

    kinds = [e.kind for e in events if e.kind in (EventKind.RETRYING, EventKind.FAILED, EventKind.DONE)]
    assert kinds == [EventKind.RETRYING, EventKind.FAILED]
    retry, failed = [e for e in events if e.kind in (EventKind.RETRYING, EventKind.FAILED)]
    assert retry.attempt == 1 and failed.attempt == 2
    for event in (retry, failed):
        assert event.error.startswith("transcription exceeded its time limit (0 s for 22 s of audio)"), event.error
    # Stopped early, not run to the end: no progress report reached the end of the audio.
    progress = [e.transcribed_s for e in events if e.kind == EventKind.TRANSCRIBE_PROGRESS]
    assert progress and max(progress) < 20
    assert vad_uses() == vad_before + 1, "the retry (and only the retry) must run with VAD on"
    assert not [p for p in config.out_dir.glob("*/transcript.*")]


# --------------------------------------------------------------------------------------------- memory soak


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.mark.slow
def test_soak_200_short_clips_in_parallel_memory_flat_and_store_consistent(tmp_path, speech_clips):
    import ray

    from bulk_transcribe.parallel import cluster

    folder = tmp_path / "clips"
    folder.mkdir()
    # The first 2 s of each speech clip, in its own container (mp3, m4a, ogg/opus, mp4 with video): every decoder
    # and resampler path is exercised, and per-clip overhead (where leaks live) dominates over model time.
    codecs = {".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libopus", ".mp4": "aac"}
    sources = []
    for clip in speech_clips.values():
        pcm, rate = media.read_pcm(clip.path)
        short = tmp_path / f"short_{clip.name}{clip.path.suffix}"
        sources.append(media.encode_audio(pcm[: 2 * rate], short, codec=codecs[clip.path.suffix], rate=rate,
                                          with_video=clip.path.suffix == ".mp4"))
    for n in range(200):  # real copies (a symlink would resolve to the same source and be de-duplicated)
        source = sources[n % len(sources)]
        (folder / f"clip_{n:03d}{source.suffix}").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    config = RunConfig(inputs=(str(folder),), out_dir=out, formats=("txt", "json"), parallel=True, workers=2,
                       transcribe=TranscribeOptions(cpu_threads=1))
    cluster.connect(None, num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    # The batch goes to this Ray's workers at once (its address given: no in-process start, engine/handover.py),
    # whose memory is what this test samples.
    import ray
    from dataclasses import replace

    config = replace(config, ray_address=ray.get_runtime_context().gcs_address)
    try:
        prepared = prepare_batch(config)
        samples: dict[int, list[tuple[int, int]]] = {}  # pid -> [(videos done, RSS kB)]

        def sample(snapshot):
            done = snapshot.counts.get("done", 0)
            for index in range(config.workers):
                try:
                    actor = ray.get_actor(cluster.actor_name(prepared.run_id, f"worker-{index}"),
                                          namespace=cluster.NAMESPACE)
                    pid = ray.get(actor.info.remote(), timeout=10)["pid"]
                    samples.setdefault(pid, []).append((done, _rss_kb(pid)))
                except Exception:  # noqa: BLE001 — not started yet, or already gone at the end
                    continue

        result = run_batch(config, prepared=prepared, on_snapshot=sample, poll_s=1.0)
    finally:
        cluster.shutdown()
    assert result.error is None and result.counts["done"] == 200, (result.error, result.counts)

    # The store is consistent: 200 records, each done once, each with its outputs on disk, the manifest agrees.
    records = SessionStore(out / STATE_DB_NAME).videos()
    assert len(records) == 200 and all(r.status == VideoStatus.DONE for r in records)
    assert len({r.folder for r in records}) == 200
    for record in records:
        assert set(record.outputs) == {"txt", "json"} and all((out / p).is_file() for p in record.outputs.values())
    assert len(json.loads((out / MANIFEST_NAME).read_text())["videos"]) == 200

    # Memory: RSS swings by tens of MB within each video (decoded audio, features) and settles back after it, so
    # compare like with like: the typical (median) and the peak RSS of the second quarter of the batch against
    # the last quarter. A leak of even 0.5 MB per clip (PyAV resampler graphs, faster-whisper issue #390) would
    # add about 50 MB between them.
    assert samples, "no worker could be sampled"
    for pid, series in samples.items():
        warm = sorted(rss for done, rss in series if 50 <= done < 100)
        late = sorted(rss for done, rss in series if done >= 150)
        assert len(warm) >= 5 and len(late) >= 5, (pid, series)
        median_growth_mb = (late[len(late) // 2] - warm[len(warm) // 2]) / 1024
        peak_growth_mb = (late[-1] - warm[-1]) / 1024
        assert median_growth_mb < 25 and peak_growth_mb < 25, (
            f"worker {pid} kept growing: median +{median_growth_mb:.0f} MB, peak +{peak_growth_mb:.0f} MB "
            f"from clips 50-100 to 150-200: {series}")
