"""The Search page: where was something said, across every output folder, and play it from that moment.

Widgets and calls only: the folders, filters, table rows and what may be played come from
bulk_transcribe.dashboard.search; the index and the search itself from bulk_transcribe.library.
"""

from __future__ import annotations

import streamlit as st

from bulk_transcribe.dashboard import render, search
from bulk_transcribe.dashboard.settings import DashboardSettings
from bulk_transcribe.dashboard.text import plain

render.page_setup("Search")
st.title("Search transcripts")

try:
    settings = DashboardSettings.from_env()
except ValueError as exc:
    st.error(f"Dashboard settings: {plain(exc)}")
    st.stop()

where = search.scope(settings, [e.out_dir for e in render.shared_registry().entries()])
if not where.folders:
    st.info(f"No transcripts under {plain(settings.output_root)} yet: start a batch first.")
    st.stop()

if "search-query" not in st.session_state:  # a shared link (?q=...) opens with its search
    st.session_state["search-query"] = st.query_params.get("q", "")
query = st.text_input("Search", placeholder='words, "an exact phrase", prefix*  (OR, NOT and NEAR() work too)',
                      key="search-query")
run_col, language_col, flag_col = st.columns([2, 1, 1], vertical_alignment="bottom")
run = run_col.selectbox("Run", [search.ALL_RUNS, *where.runs], key="search-run")
language = language_col.selectbox("Language", [search.ANY_LANGUAGE, *where.languages], key="search-language")
flagged = flag_col.toggle(f"Flagged only ({where.flagged})", key="search-flagged") if where.flagged else False
st.caption(f"{len(where.folders)} output folder{'' if len(where.folders) == 1 else 's'} under "
           f"{plain(settings.output_root)}")

if query.strip():
    st.query_params["q"] = query
    result = search.search(where, query, run=run, language=language, flagged=flagged)
    if result.error:
        st.warning(plain(result.error))
        st.stop()
    for problem in result.problems:
        st.warning(plain(problem))
    for note in result.notes:
        st.caption(plain(note))
    if not result.hits:
        st.info("No hits.")
        st.stop()
    rows = search.table_rows(result.hits, settings.output_root)
    picked = st.dataframe(
        rows,
        column_config={
            "Title": st.column_config.TextColumn("Title", width="medium"),
            "At": st.column_config.TextColumn("At", width="small"),
            "Said": st.column_config.TextColumn("Said", width="large", help="The match is marked «like this»"),
            "Link": st.column_config.LinkColumn("Link", display_text=r"https?://(?:www\.)?([^/?#]+)",
                                                help="The video's own page, from that moment"),
            "File": st.column_config.TextColumn("File", width="medium", help="A local file and the moment"),
            "Folder": st.column_config.TextColumn("Folder", width="small"),
        },
        hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        # A new search is a new table: the row picked in the last one must not stay picked (and playing) here.
        key=search.results_key(query, run, language, flagged),
    )
    hit = result.hits[search.chosen_row(picked, len(result.hits))]
    st.divider()
    # Site text in text widgets only: a markdown widget turns a bare URL in a title into a live link even when
    # every character is escaped (GFM autolinks).
    st.text(hit.title)
    st.caption(plain(f"{hit.at} · {search.folder_label(hit.out_dir, settings.output_root)}"))
    st.text(hit.text)
    player = search.player_for(hit, settings)
    if player.kind == "video":
        st.video(str(player.path), format=player.mime, start_time=player.start)
    elif player.kind == "audio":
        st.audio(str(player.path), format=player.mime, start_time=player.start)
    elif player.kind == "link":
        st.link_button(f"Open at {hit.at}", player.url, icon=":material/open_in_new:")
    else:
        st.caption(plain(player.note))
