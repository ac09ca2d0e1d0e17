"""Bulk Transcribe dashboard: entry script and home page.

`make run` serves it (127.0.0.1 only). The working page is pages/02_Bulk_Transcribe.py (Streamlit's pages/
folder: each page is its own script, so a link or reload straight to a page runs only that page); logic lives in
bulk_transcribe.dashboard, so both pages only draw widgets and call into it.
"""

from __future__ import annotations

import streamlit as st

from bulk_transcribe.dashboard import render
from bulk_transcribe.dashboard.cluster_info import cluster_info
from bulk_transcribe.dashboard.history import recent_runs, run_url, when
from bulk_transcribe.dashboard.settings import DashboardSettings
from bulk_transcribe.dashboard.text import plain


def home() -> None:
    st.title("Bulk Transcribe")
    st.markdown(
        "Transcribe many videos at once. Paste URLs (single videos, playlists, channels, podcast feeds) or local "
        "files; the tool downloads the audio politely, transcribes it with faster-whisper and writes **txt, srt, "
        "vtt and json** transcripts. It runs one video at a time in this process by default, or in parallel on "
        "Ray workers (on this machine or a GPU cluster) when you switch on *Parallel processing*."
    )
    st.page_link(render.TRANSCRIBE_SCRIPT, label="Start a batch", icon=":material/play_circle:")

    try:
        settings = DashboardSettings.from_env()
    except ValueError as exc:
        st.error(f"Dashboard settings: {plain(exc)}")
        return
    st.subheader("Recent runs")
    extra = [e.out_dir for e in render.shared_registry().entries()]
    runs, problems = recent_runs(settings.output_root, extra)
    for problem in problems:
        st.warning(f"Could not read runs in {plain(problem)}")
    if runs:
        st.dataframe(
            [{
                "Run": run_url(r.run_id, r.out_dir, settings.output_root),
                "Name": r.name,
                "Status": r.status,
                "Mode": r.mode,
                "Videos": r.total,
                "Done": r.counts.get("done", 0) + r.counts.get("skipped", 0),
                "Failed": r.counts.get("failed", 0),
                "Cancelled": r.counts.get("cancelled", 0),
                "Started": when(r.created_at),
                "Finished": when(r.finished_at),
            } for r in runs],
            column_config={"Run": st.column_config.LinkColumn("Run", display_text=r"run=([^&]+)")},
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption(f"No runs yet under {plain(settings.output_root)}.")

    st.subheader("Ray cluster")
    info = cluster_info()
    if info is None:
        st.caption("Not connected. A parallel run starts a local Ray on this machine, or joins the address you give.")
    elif info.error:
        st.error(f"Ray cluster unreachable: {plain(info.error)}")
    else:
        for col, (label, value) in zip(st.columns(max(1, len(info.metrics))), info.metrics):
            col.metric(label, value)
        if info.dashboard_url:
            st.link_button("Open the Ray dashboard", info.dashboard_url, icon=":material/open_in_new:")


render.page_setup("Home")
home()
