"""Streamlit rendering of the view models: the monitor (global progress, current cards, status table) and the
results block. Only `st` calls over data prepared in views.py / results.py; no decisions about the run itself."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..models import Snapshot
from . import results, views
from .registry import RunRegistry

HOME_SCRIPT = "streamlit_app.py"
TRANSCRIBE_SCRIPT = "pages/02_Bulk_Transcribe.py"
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
    its file ("streamlit app"); these links say Home and Bulk Transcribe whichever page a visitor lands on.
    """
    st.set_page_config(page_title=f"{title} · Bulk Transcribe", page_icon=":material/subtitles:", layout="wide")
    with st.sidebar:
        st.page_link(HOME_SCRIPT, label="Home", icon=":material/home:")
        st.page_link(TRANSCRIBE_SCRIPT, label="Bulk Transcribe", icon=":material/subtitles:")
        st.divider()


def column_config() -> dict:
    cc = st.column_config
    return {
        "Title": cc.TextColumn("Title", width="medium", pinned=True),
        "Source": cc.TextColumn("Source", width="medium"),
        "Duration": cc.NumberColumn("Duration", format="compact", help="Length of the audio"),
        "Status": cc.TextColumn("Status"),
        "Worker": cc.TextColumn("Worker"),
        "Progress": cc.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent", width="small"),
        "Speed": cc.NumberColumn("Speed", format="%.1f×", help="Audio seconds per second of transcription"),
        "Elapsed": cc.NumberColumn("Elapsed", format="compact"),
        "ETA": cc.NumberColumn("ETA", format="compact"),
        "Attempts": cc.NumberColumn("Attempts", format="%d"),
        "Error": cc.TextColumn("Error", width="large"),
    }


def monitor(snapshot: Snapshot, batch_error: str | None = None) -> None:
    """Everything about a run's progress, in the same layout for both modes."""
    s = views.summary(snapshot)
    if batch_error:
        st.error(f"The batch stopped: {batch_error}")
    with st.container(key="global-progress"):
        st.progress(s.progress, text=f"Overall: {s.label}")
        c = st.columns(6)
        c[0].metric("Done", s.done)
        c[1].metric("Failed", s.failed)
        c[2].metric("Remaining", s.remaining)
        c[3].metric("In progress", s.active)
        c[4].metric("Throughput", s.throughput, help="Audio seconds transcribed per second of wall time, whole run")
        c[5].metric("ETA", s.eta)
    current = views.cards(snapshot)
    if current:
        st.subheader(f"Now processing ({len(current)})")
        for start in range(0, len(current), CARDS_PER_ROW):
            row = current[start:start + CARDS_PER_ROW]
            for col, card in zip(st.columns(CARDS_PER_ROW), row):
                with col.container(border=True, key=f"card-{card.video_id}"):
                    st.markdown(f"**{card.title}**")
                    st.caption(f"{card.stage}" + (f" · {card.worker}" if card.worker else ""))
                    st.progress(card.progress, text=card.progress_text)
                    st.caption(f"“{card.line}”" if card.line else "…")
    st.subheader("Videos")
    st.dataframe(views.status_frame(snapshot), column_config=column_config(), hide_index=True, width="stretch",
                 key="status-table")


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
    st.caption(f"Transcript text · {shown.download_name}")
    with st.container(height=240, border=True, key="transcript-view"):
        st.text(results.read_file(shown.path, out_dir).decode("utf-8", "replace"))


def run_view(registry: RunRegistry, run_id: str, out_dir: Path, output_root: Path) -> None:
    """One run: header, controls, the monitor (live while it runs) and its results."""
    from .history import is_orphaned, run_query

    snapshot = registry.snapshot(run_id, out_dir)
    if snapshot is None:
        st.warning(f"Run {run_id} was not found in {out_dir}.")
        return
    entry = registry.get(run_id)
    # Ours: poll while our handle runs. Someone else's (CLI, an earlier server): poll until the store says finished,
    # unless the store has gone quiet: then the process that ran it is gone and the run can only be resumed.
    orphaned = entry is None and not snapshot.finished and is_orphaned(out_dir, run_id)
    live = registry.is_live(run_id) if entry is not None else not (snapshot.finished or orphaned)
    head, cancel_col, retry_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    head.subheader(f"Run {run_id}")
    head.caption(f"{snapshot.mode.capitalize()} · {len(snapshot.videos)} video(s) · output in `{out_dir}`")
    if registry.is_live(run_id):
        if cancel_col.button("Cancel run", icon=":material/stop:", key="cancel-run"):
            registry.cancel(run_id)
            st.toast("Cancelling: videos in progress stop at the next segment.")
    s = views.summary(snapshot)
    if orphaned:
        st.warning("This run stopped without finishing (the process running it ended). Resume it: finished "
                   "videos are kept, the rest run again.")
    if not live and (s.failed or snapshot.counts.get("cancelled", 0) or orphaned):
        label = "Resume run" if orphaned else "Retry failed"
        if retry_col.button(label, icon=":material/replay:", key="retry-failed"):
            outcome = registry.retry_failed(run_id, out_dir)
            if outcome.error:
                st.error(outcome.error)
            else:
                st.query_params.from_dict(run_query(outcome.entry.run_id, outcome.entry.out_dir, output_root))
                st.rerun()
    if live:
        live_monitor(run_id, str(out_dir))
    else:
        monitor(snapshot, registry.error(run_id))
        results_block(snapshot, out_dir)


@st.fragment(run_every=REFRESH_S)
def live_monitor(run_id: str, out_dir: str) -> None:
    """Re-rendered about once a second on its own, without rerunning (or blocking) the rest of the page."""
    registry = shared_registry()
    snapshot = registry.snapshot(run_id, Path(out_dir))
    if snapshot is None:
        st.warning(f"Run {run_id} is no longer readable.")
        return
    monitor(snapshot, registry.error(run_id))
    entry = registry.get(run_id)
    finished = (entry is not None and entry.done) or (entry is None and snapshot.finished)
    if finished:
        st.rerun()  # the whole page: controls and results follow the finished run
