"""What a person types into a search box, made into an FTS5 match that cannot fail.

Words, "exact phrases", prefix* and FTS5's own operators (AND, OR, NOT, NEAR(...), parentheses) are passed through
as FTS5 reads them. Text FTS5 cannot parse (a stray quote, `c++`, `-foo`, a lone `AND`) is read again as plain
words instead: each term quoted, a trailing `*` kept as a prefix, a leading `-` as "without this word". Only a query
with nothing to search for at all is refused, with one line that says why.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from .schema import TOKENIZER

MAX_QUERY_CHARS = 500
"""Longer text is refused: a search box is for words and phrases, and every term costs a doclist to read."""


class QueryError(ValueError):
    """The query cannot be searched for; the message is one plain-English line for the person who typed it."""


@dataclass(frozen=True)
class Query:
    text: str
    """As typed (surrounding whitespace removed)."""
    match: str
    """The FTS5 expression to search the segment text for (without any filter)."""
    literal: bool = False
    """True when the text was not usable as FTS5 syntax and was read as plain words instead."""


def parse(text: str) -> Query:
    """The FTS5 expression for `text`; raises QueryError (one line) when there is nothing to search for."""
    text = " ".join(str(text).split())
    if not text:
        raise QueryError("type a word or \"a phrase\" to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})")
    if not text.startswith("*") and _parses(text):  # a leading '*' is FTS5's debugging syntax (`*reads`)
        return Query(text, text)
    match = literal(text)
    if match is None or not _parses(match):
        shown = text if len(text) <= 60 else text[:59] + "…"
        if any(term.startswith("-") and _has_word(term) for term in text.split()):
            raise QueryError(f"nothing to search for in {shown!r}: words starting with '-' only leave things out; "
                             "add a word to find")
        raise QueryError(f"nothing to search for in {shown!r}: type a word or \"a phrase\"")
    return Query(text, match, literal=True)


def literal(text: str) -> str | None:
    """`text` as plain words: every term a quoted phrase (all of them must occur), `word*` a prefix, `-word` left
    out; None when no term holds a letter or digit."""
    wanted, unwanted = terms(text)
    if not wanted:
        return None
    match = " ".join(_phrase(t) for t in wanted)
    if unwanted:
        match = f"({match}) NOT ({' OR '.join(_phrase(t) for t in unwanted)})"
    return match


def terms(text: str) -> tuple[list[str], list[str]]:
    """The terms to find and the terms to leave out (`-word`) of `text` read as plain words; punctuation alone is
    dropped (it has no word to find: "--", "&", "*")."""
    wanted: list[str] = []
    unwanted: list[str] = []
    for term in text.split():
        negative = term.startswith("-") and len(term) > 1
        if negative:
            term = term[1:]
        if _has_word(term.rstrip("*")):
            (unwanted if negative else wanted).append(term)
    return wanted, unwanted


def describe(query: Query) -> str:
    """How a query read as plain words was searched, for a note: `"c++" "rocks" without "java"`."""
    wanted, unwanted = terms(query.text)

    def quoted(items: list[str]) -> str:
        return " ".join('"' + t.replace('"', "") + '"' for t in items)

    return quoted(wanted) + (f" without {quoted(unwanted)}" if unwanted else "")


def _phrase(term: str) -> str:
    body = term.rstrip("*")
    return '"' + body.replace('"', '""') + '"' + ("*" if term.endswith("*") else "")


def on_text(match: str) -> str:
    """The expression limited to the transcript text (the index's other column holds the language)."""
    return f"text : ({match})"


def _has_word(term: str) -> bool:
    return any(ch.isalnum() for ch in term)


_probe = threading.local()


def _parses(match: str) -> bool:
    """FTS5 parses the expression only when it runs it: run it once against an empty in-memory index of the same
    shape, so a query is checked before any store is opened (and without any store at all)."""
    conn = getattr(_probe, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, language, tokenize='{TOKENIZER}')")
        _probe.conn = conn
    try:
        conn.execute("SELECT rowid FROM probe WHERE probe MATCH ? LIMIT 1", (on_text(match),)).fetchall()
    except sqlite3.Error:
        return False
    return True
