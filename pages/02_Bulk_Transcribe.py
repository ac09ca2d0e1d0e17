"""The working page: submit videos, watch every one of them, collect the transcripts.

Widgets and calls only: checks live in bulk_transcribe.dashboard.submit, the run lives in the shared registry
(outside this script, so reloads and closed tabs do not touch it), rendering in dashboard.render.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bulk_transcribe.config import BUNDLED_MODEL, DEFAULT_FORMATS, DEFAULT_WORKERS, MEDIA_EXTENSIONS
from bulk_transcribe.dashboard import render, uploads
from bulk_transcribe.dashboard.history import run_query, run_settings
from bulk_transcribe.dashboard.settings import DashboardSettings
from bulk_transcribe.dashboard.submit import MAX_WORKERS, RunSettings, Submission, build_run, settings_of_run
from bulk_transcribe.dashboard.text import plain

render.page_setup("Transcribe")
st.title("Bulk Transcribe")

try:
    settings = DashboardSettings.from_env()
except ValueError as exc:
    st.error(f"Dashboard settings: {plain(exc)}")
    st.stop()
registry = render.shared_registry()


def opened_run() -> tuple[str, Path] | None:
    """The run the URL names (?run=, ?out= inside the output root), or None."""
    run_id = st.query_params.get("run")
    if not run_id:
        return None
    try:
        return run_id, settings.output_folder(st.query_params.get("out", settings.default_output))
    except ValueError as exc:
        st.error(f"Cannot open that run: {plain(exc)}")
        st.stop()


if opened := opened_run():  # a reload beside a run: the form shows what that run used (when it holds nothing)
    render.seed_form_from_run(settings_of_run(run_settings(opened[1], opened[0]).config or {}, settings.output_root))

# ---- settings (sidebar) -------------------------------------------------------------------------------------
# Each widget keeps the visitor's last value for the whole browser session, across pages and reopened runs
# (render.remember); a reopened run shows its own settings in its header, never these.
with st.sidebar:
    st.header("Settings")
    parallel = st.toggle("Parallel processing", help="Run on Ray workers instead of in this process.",
                         **render.remember("parallel", False))
    workers = st.number_input("Workers", min_value=1, max_value=MAX_WORKERS, disabled=not parallel,
                              help="Model-holding Ray workers (parallel mode).",
                              **render.remember("workers", DEFAULT_WORKERS))
    model = st.text_input("Model", help="`bundled` (tiny.en, offline), a faster-whisper model name, or a model folder.",
                          **render.remember("model", BUNDLED_MODEL))
    language = st.text_input("Language", placeholder=render.language_placeholder(model),
                             help=render.language_help(model), **render.remember("language", ""))
    batch_size = st.number_input("Batch size", min_value=0, max_value=64,
                                 help="30 s chunks decoded together (GPU speed-up; VAD chunking). "
                                      "1 = unbatched; 0 = per device (1 on CPU, 8 on CUDA).",
                                 **render.remember("batch_size", 0))
    recheck = st.toggle("Recheck flagged transcripts",
                        help="A transcript flagged as doubtful (wrong language, a loop, low confidence, speech "
                             "missing, text on silence) is transcribed again with safer options; the better is kept.",
                        **render.remember("recheck", False))
    recheck_model = st.text_input("Recheck model", placeholder="same as Model",
                                  help="A larger or multilingual model for rechecks (name or model folder); also used "
                                       "by a finished run's Redo flagged.", **render.remember("recheck_model", ""))
    formats = st.multiselect("Output formats", list(DEFAULT_FORMATS), **render.remember("formats", list(DEFAULT_FORMATS)))
    rate_limit = st.number_input("Download rate limit (KiB/s)", min_value=0, step=100,
                                 help="Per download; 0 = unlimited.", **render.remember("rate_limit", 0))
    pause = st.number_input("Pause between downloads (s)", min_value=0.0, step=0.5, **render.remember("pause", 0.0))
    ray_address = st.text_input("Ray address", placeholder="local", disabled=not parallel,
                                help="Blank starts a local Ray; or auto, HOST:PORT, ray://HOST:10001.",
                                **render.remember("ray_address", ""))
    output_folder = st.text_input("Output folder", help=f"Inside {settings.output_root}.",
                                  **render.remember("output_folder", settings.default_output))

# ---- submit -------------------------------------------------------------------------------------------------
st.caption("Paste video, playlist, channel or feed URLs, or local paths under "
           f"`{settings.media_root}`, one per line.")
videos = st.text_area("Videos", height=140, placeholder="https://www.youtube.com/watch?v=...\nlectures/week1.mp4")
up_left, up_right = st.columns(2)
list_file = up_left.file_uploader("List file", type=["txt", "list", "csv"], key="list-file",
                                  max_upload_size=settings.max_upload_mb, help="One URL or path per line.")
media_files = up_right.file_uploader("Media files", type=sorted(e.lstrip(".") for e in MEDIA_EXTENSIONS),
                                     accept_multiple_files=True, key="media-files",
                                     max_upload_size=settings.max_upload_mb)

if st.button("Start transcription", type="primary", icon=":material/play_arrow:"):
    problems: list[str] = []
    list_texts: list[tuple[str, str]] = []
    if list_file is not None:
        try:
            list_texts.append((list_file.name, uploads.read_list_upload(list_file.name, list_file.getvalue(),
                                                                          settings.max_upload_bytes)))
        except uploads.UploadError as exc:
            problems.append(str(exc))
    saved = []
    for f in media_files or []:
        try:
            saved.append(uploads.save_upload(f.name, f.getvalue(), settings.upload_dir, settings.max_upload_bytes).path)
        except (uploads.UploadError, OSError) as exc:
            problems.append(str(exc))
    submission = Submission(
        videos_text=videos,
        list_files=list_texts,
        uploaded_paths=saved,
        settings=RunSettings(parallel=parallel, workers=int(workers), model=model, language=language,
                             batch_size=int(batch_size),
                             formats=tuple(formats), rate_limit_kib=int(rate_limit), pause_s=float(pause),
                             ray_address=ray_address, output_folder=output_folder, recheck=recheck,
                             recheck_model=recheck_model),
    )
    checked = build_run(submission, settings)
    for problem in problems:
        st.warning(plain(problem))
    for warning in checked.warnings:
        st.warning(plain(warning))
    for error in checked.errors:
        st.error(plain(error))
    if checked.ok:
        starting = render.starting_text(checked.config, len(checked.inputs))
        with st.spinner(starting, show_time=True):
            outcome = registry.start(checked.config)
        if outcome.error:
            st.error(plain(outcome.error))
        else:
            st.query_params.from_dict(run_query(outcome.entry.run_id, outcome.entry.out_dir, settings.output_root))

# ---- monitor ------------------------------------------------------------------------------------------------
if opened := opened_run():  # read again: Start has just named a new run
    run_id, out_dir = opened
    st.divider()
    render.run_view(registry, run_id, out_dir, settings.output_root, render.recheck_model(recheck_model, settings))
