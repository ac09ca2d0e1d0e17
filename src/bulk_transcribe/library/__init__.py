"""Search across transcripts: an FTS5 index in each output folder's own store, and the search over many folders.

    schema.py   the index's tables (ensure_schema: created when missing, whenever the store opens)
    index.py    writing it: one video as it is delivered (index_video), its removal
    rebuild.py  a whole folder rebuilt from the transcripts it holds (rebuild, reindex)
    query.py    what a person types -> an FTS5 match that cannot fail
    lookup.py   search one or many folders read-only, hits merged by bm25 (Hit, search, find)
    highlight.py  the words a query matched, marked in a hit's text
    links.py    a link to the moment: the site's own start-time URL, a media fragment, or "PATH @ M:SS"

Nothing here imports Ray, the model or yt-dlp at import time: the store imports `schema` whenever it opens.
"""

from __future__ import annotations

from .index import index_video, remove_video
from .rebuild import Reindexed, rebuild, reindex
from .links import moment_link
from .query import Query, QueryError, parse
from .schema import ensure_schema, has_index
from .lookup import Hit, SearchResult, facets, find, search

__all__ = [
    "Hit", "Query", "QueryError", "Reindexed", "SearchResult", "ensure_schema", "facets", "find", "has_index",
    "index_video", "moment_link", "parse", "rebuild", "reindex", "remove_video", "search",
]
