"""Streamlit rendering of the view models: the monitor (global progress, current cards, status table) and the
results block. Only `st` calls over data prepared in views.py / results.py; no decisions about the run itself."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from ..models import Snapshot
from . import results, views
from .registry import RunRegistry
from .text import plain

HOME_SCRIPT = "streamlit_app.py"
TRANSCRIBE_SCRIPT = "pages/02_Bulk_Transcribe.py"
SEARCH_SCRIPT = "pages/03_Search.py"
"""Page scripts, relative to the entry script's folder (what st.page_link expects)."""

REFRESH_S = 1.0
"""How often the live monitor polls the run's snapshot."""

CARDS_PER_ROW = 3


@st.cache_resource(show_spinner=False)
def shared_registry() -> RunRegistry:
    """One registry per server process: runs outlive the browser sessions that started them."""
    return RunRegistry()


def page_setup(title: str) -> None:
    """What every page starts with: wide layout and our own page links.

    Streamlit's automatic menu is switched off (.streamlit/config.toml) because it names the entry script after
    its file ("streamlit app"); these links say Home, Bulk Transcribe and Search whichever page a visitor lands on.
    """
    st.set_page_config(page_title=f"{title} · Bulk Transcribe", page_icon=":material/subtitles:", layout="wide")
    with st.sidebar:
        st.page_link(HOME_SCRIPT, label="Home", icon=":material/home:")
        st.page_link(TRANSCRIBE_SCRIPT, label="Bulk Transcribe", icon=":material/subtitles:")
        st.page_link(SEARCH_SCRIPT, label="Search", icon=":material/search:")
        st.divider()


def remember(name: str, default) -> dict:
    """Widget arguments that keep the visitor's last value for the whole browser session.

    Streamlit forgets a widget's value once a page without it runs (a visit to Home); a shadow copy outside the
    widget's own key survives that and seeds the widget when it is drawn again.
    """
    key, shadow = f"form-{name}", f"_form-{name}"
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)

    def keep() -> None:
        st.session_state[shadow] = st.session_state[key]

    keep()
    return {"key": key, "on_change": keep}


FORM_FIELDS = {"parallel": "parallel", "workers": "workers", "model": "model", "language": "language",
               "batch_size": "batch_size", "formats": "formats", "rate_limit_kib": "rate_limit", "pause_s": "pause",
               "ray_address": "ray_address", "output_folder": "output_folder", "recheck": "recheck",
               "recheck_model": "recheck_model"}
"""RunSettings field -> the name its widget is remembered under (remember())."""


def seed_form_from_run(values: dict[str, object]) -> None:
    """A page opened (or reloaded) on a run, in a browser session whose form holds nothing yet: the form takes
    that run's settings, so Start beside a running parallel run is not a sequential run into `transcripts`."""
    if any(f"_form-{name}" in st.session_state for name in FORM_FIELDS.values()):
        return  # the visitor's own values win
    for field, name in FORM_FIELDS.items():
        if field in values:
            st.session_state[f"_form-{name}"] = values[field]


def recheck_model(text: str, settings) -> str | None:
    """The sidebar's Recheck model for a finished run's "Redo N flagged", checked as a new run's would be: None
    when blank, or (with a warning on the page) when it cannot be used."""
    from ..config import TranscribeOptions
    from .submit import recheck_model_of

    problems: list[str] = []
    model = recheck_model_of(text, TranscribeOptions(), settings, problems)
    for problem in problems:
        st.warning(plain(problem))
    return model


def starting_text(config, inputs: int) -> str:
    """What the page is waiting for while a run registers: joining a cluster takes seconds, resolution more. An
    embedded Ray starts in the background while the run works in this process (engine/handover.py): nothing
    waits for it here."""
    from ..parallel.cluster import is_connected

    what = f"Resolving {inputs} input{'' if inputs == 1 else 's'}…"
    effective = config.with_env_overrides()
    if effective.parallel and effective.ray_address and not is_connected():
        return plain(f"Joining the Ray cluster at {effective.ray_address}, then {what[0].lower()}{what[1:]}")
    return plain(what)


def language_placeholder(model: str) -> str:
    from ..media.model_check import english_only

    return "en (this model is English-only)" if english_only(model) else "detect"


def language_help(model: str) -> str:
    from ..media.model_check import english_only

    if english_only(model):
        return ("The bundled model (tiny.en) and other *.en models transcribe English only: leave blank or use en. "
                "Use a multilingual model (e.g. a local `small` folder) for other languages.")
    return "ISO code such as en, de or fr; blank = detect."


def column_config() -> dict:
    cc = st.column_config
    return {
        "Title": cc.TextColumn("Title", width="large"),
        "Status": cc.TextColumn("Status", width="small"),
        "Progress": cc.ProgressColumn("Progress", min_value=0, max_value=100, format="%d%%", width="small",
                                      help="Of the current stage (download, then transcription)"),
        "Error": cc.TextColumn("Error", width="large", help="Why it failed, was cancelled, or is being retried"),
        "Quality": cc.TextColumn("Quality", width="large",
                                 help="How far to trust a finished transcript: ok, or why it needs review"),
        "Note": cc.TextColumn("Note", width="medium", help="What to know about a finished transcript"),
        "Duration": cc.TextColumn("Duration", help="Length of the audio"),
        "Language": cc.TextColumn("Language", width="small", help="The finished transcript's language"),
        "Worker": cc.TextColumn("Worker"),
        "Speed": cc.TextColumn("Speed", help="Audio seconds per second of transcription"),
        "Elapsed": cc.TextColumn("Elapsed"),
        "ETA": cc.TextColumn("ETA"),
        "Attempts": cc.TextColumn("Attempts"),
        "Source": cc.TextColumn("Source", width="medium"),
    }


TABLE_ROW_PX = 35
TABLE_MAX_PX = 640
"""The table grows with the run up to ~17 rows visible, so a failed row is rarely below the fold."""


def monitor(snapshot: Snapshot, batch_error: str | None = None, phase: tuple[str, float] | None = None) -> None:
    """Everything about a run's progress, in the same layout for both modes."""
    s = views.summary(snapshot)
    if batch_error:
        st.error(f"The batch stopped: {plain(batch_error)}")
    if phase is not None:
        what, since = phase
        st.info(f"{plain(what[:1].upper() + what[1:])}… ({time.time() - since:.0f} s)",
                icon=":material/hourglass_top:")
    with st.container(key="global-progress"):
        st.progress(s.progress, text=f"Overall: {plain(s.label)}")
        figures = [("Done", s.done)]
        if s.needs_review:
            figures.append(("Need review", s.needs_review))
        figures += [("Failed", s.failed), ("Cancelled", s.cancelled)]
        if s.skipped:
            figures.append(("Skipped", s.skipped))
        figures += [("In progress", s.in_progress), ("Waiting", s.waiting)]
        figures += [("Throughput", s.throughput), ("ETA", s.eta)]
        for col, (label, value) in zip(st.columns(len(figures)), figures):
            col.metric(label, value, help=_METRIC_HELP.get(label))
    current = views.cards(snapshot)
    if current:
        st.subheader(f"Now processing ({len(current)})")
        for start in range(0, len(current), CARDS_PER_ROW):
            row = current[start:start + CARDS_PER_ROW]
            for col, card in zip(st.columns(CARDS_PER_ROW), row):
                with col.container(border=True, key=f"card-{card.video_id}"):
                    st.markdown(f"**{plain(card.title)}**")
                    st.caption(plain(card.stage + (f" · {card.worker}" if card.worker else "")))
                    st.progress(card.progress, text=plain(card.progress_text))
                    st.caption(f"“{plain(card.line)}”" if card.line else "…")
                    if card.next_up:
                        st.caption("Next up: " + plain(", ".join(card.next_up)))
    st.subheader("Videos")
    show = st.segmented_control("Show", views.FILTERS, default="All", key="table-filter",
                                label_visibility="collapsed") or "All"
    frame = views.status_frame(snapshot, show)
    st.dataframe(frame, column_config=column_config(), hide_index=True, width="stretch", key="status-table",
                 height=min(TABLE_MAX_PX, TABLE_ROW_PX * (len(frame) + 1) + 3))


_METRIC_HELP = {
    "Need review": "Done, but the transcript earned a quality flag (wrong language, a loop, low confidence, speech "
                   "missing, text on silence): see the Quality column, or show Needs review",
    "Waiting": "Queued, or downloaded ahead for a worker (next up); not yet being transcribed",
    "In progress": "One per worker: the video it is downloading or transcribing now",
    "Throughput": "Audio this run transcribed per second of wall time since it started (start-up included; "
                  "videos done by an earlier run left out)",
    "ETA": "Shown once the speed is measured; ~ marks an estimate while some lengths are unknown",
}


def run_header(snapshot: Snapshot, out_dir: Path, settings: dict | None, duplicates: int = 0) -> str:
    """One line with the run's own settings (not the form's): what a reopened run really used."""
    parts = [snapshot.mode.capitalize()]
    if settings:
        transcribe = settings.get("transcribe") or {}
        download = settings.get("download") or {}
        if settings.get("parallel"):
            parts.append(f"{settings.get('workers')} workers")
            if settings.get("ray_address"):
                parts.append(f"Ray {settings['ray_address']}")
        parts.append(f"model {transcribe.get('model', '?')}")
        parts.append(f"language {transcribe.get('language') or 'auto'}")
        parts.append(", ".join(settings.get("formats") or []))
        if download.get("rate_limit"):
            parts.append(f"≤ {int(download['rate_limit']) // 1024} KiB/s per download")
        if download.get("sleep_s"):
            parts.append(f"{download['sleep_s']:g} s between downloads")
    if duplicates:
        parts.append(f"{duplicates} duplicate input(s) listed once")
    parts.append(f"output in {out_dir}")
    return plain(" · ".join(parts))


def results_block(snapshot: Snapshot, out_dir: Path) -> None:
    """Downloads (each format of each transcript, or everything as a zip) and an in-page viewer."""
    files = results.transcript_files(snapshot, out_dir)
    if not files:
        return
    st.subheader("Transcripts")
    st.download_button(
        "Download all transcripts (zip)",
        data=lambda: results.run_zip(snapshot, out_dir),
        file_name=results.zip_name(snapshot, out_dir),
        mime="application/zip",
        icon=":material/folder_zip:",
        key="download-zip",
        on_click="ignore",
    )
    titles = {v.video_id: v.title for v in snapshot.videos}
    chosen = st.selectbox("Transcript", list(files), format_func=lambda vid: titles.get(vid, vid),
                          key="transcript-choice")
    if chosen is None:
        return
    cols = st.columns(len(files[chosen]) + 1)
    text_file = None
    for col, f in zip(cols, files[chosen]):
        col.download_button(f".{f.format}", data=results.read_file(f.path, out_dir), file_name=f.download_name,
                            mime=f.mime, key=f"download-{chosen}-{f.format}", icon=":material/download:",
                            on_click="ignore")
        if f.format == "txt":
            text_file = f
    shown = text_file or files[chosen][0]
    st.caption(f"Transcript text · {plain(shown.download_name)}")
    with st.container(height=240, border=True, key="transcript-view"):
        st.text(results.read_file(shown.path, out_dir).decode("utf-8", "replace"))


def run_view(registry: RunRegistry, run_id: str, out_dir: Path, output_root: Path,
             recheck_model: str | None = None) -> None:
    """One run: header with its own settings, controls, the monitor (live while it runs) and its results.
    `recheck_model`: the form's checked Recheck model, for "Redo N flagged" (None: the run's own choice)."""
    from .history import run_query, run_settings

    snapshot = registry.snapshot(run_id, out_dir)
    if snapshot is None:
        st.warning(f"Run {plain(run_id)} was not found in {plain(out_dir)}.")
        return
    entry = registry.get(run_id)
    stored = run_settings(out_dir, run_id)
    # Ours: poll while our handle runs. Someone else's (CLI, an earlier server): poll while a live process owns the
    # folder (its lock), else the run was stopped and can only be resumed.
    orphaned = entry is None and not snapshot.finished and stored.stopped
    live = registry.is_live(run_id) if entry is not None else not (snapshot.finished or orphaned)
    head, cancel_col, retry_col, recheck_col = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    head.subheader(f"Run {plain(run_id)}")
    head.caption(run_header(snapshot, out_dir, stored.config, stored.duplicates))
    if registry.is_live(run_id):
        if cancel_col.button("Cancel run", icon=":material/stop:", key="cancel-run"):
            registry.cancel(run_id)
            st.toast("Cancelling: videos in progress stop within seconds; finished ones are kept.")
    s = views.summary(snapshot)
    if orphaned:
        st.warning("This run stopped without finishing (the process running it ended). Resume it: finished "
                   "videos are kept, the rest run again.")
    label = retry_label(s, orphaned)
    if not live and s.failed_for_good:
        st.caption(f"{s.failed_for_good} failed for good: the input itself is wrong (see the Error column); fix it "
                   "and start a new run. A retry would fail the same way.")
    if not live and label:
        if retry_col.button(label, icon=":material/replay:", key="retry-failed"):
            outcome = registry.retry_failed(run_id, out_dir)
            if outcome.error:
                st.error(plain(outcome.error))
            else:
                st.query_params.from_dict(run_query(outcome.entry.run_id, outcome.entry.out_dir, output_root))
                st.rerun()
    if not live and s.recheckable:
        model = recheck_model or (stored.config or {}).get("recheck_model") or "the run's own model"
        if recheck_col.button(f"Redo {s.recheckable} flagged", icon=":material/fact_check:", key="recheck-flagged",
                              help=f"Transcribe the flagged transcripts again with safer options (VAD, no "
                                   f"conditioning on earlier text) on {model}, and keep the better of each pair; "
                                   "set Recheck model in the sidebar for a larger or multilingual one."):
            outcome = registry.recheck_flagged(run_id, out_dir, recheck_model)
            if outcome.error:
                st.error(plain(outcome.error))
            else:
                st.query_params.from_dict(run_query(outcome.entry.run_id, outcome.entry.out_dir, output_root))
                st.rerun()
    if live:
        live_monitor(run_id, str(out_dir))
    else:
        monitor(snapshot, registry.error(run_id))
        results_block(snapshot, out_dir)


def retry_label(s: views.Summary, orphaned: bool) -> str | None:
    """The button says what it will do: resume a stopped run, or run the failed and/or cancelled videos again."""
    if orphaned:
        return "Resume run"
    failed = s.retryable_failed  # a retry offers only what it can change
    if failed and s.cancelled:
        return f"Retry {failed} failed and {s.cancelled} cancelled"
    if failed:
        return f"Retry {failed} failed"
    if s.cancelled:
        return f"Resume {s.cancelled} cancelled"
    return None


@st.fragment(run_every=REFRESH_S)
def live_monitor(run_id: str, out_dir: str) -> None:
    """Re-rendered about once a second on its own, without rerunning (or blocking) the rest of the page."""
    registry = shared_registry()
    snapshot = registry.snapshot(run_id, Path(out_dir))
    if snapshot is None:
        st.warning(f"Run {plain(run_id)} is no longer readable.")
        return
    monitor(snapshot, registry.error(run_id), registry.phase(run_id))
    entry = registry.get(run_id)
    finished = (entry is not None and entry.done) or (entry is None and snapshot.finished)
    if finished:
        st.rerun()  # the whole page: controls and results follow the finished run
