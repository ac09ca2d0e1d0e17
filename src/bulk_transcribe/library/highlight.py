"""The words and phrases a query looks for, found again in a segment's text: counted (for bm25, rank.py) and marked
(for the snippet), with the index's own rules for what a word is: letters and digits, case and accents ignored
(schema.TOKENIZER).

FTS5 can mark matches (its snippet() function), but only by running the match again for every hit: half a
millisecond per hit for a common phrase. Segments are a sentence or two and the query's words are known, so it is
done here. Every occurrence of each word or phrase the query looks for counts (a prefix* counts the words it
starts); words the query leaves out (NOT, -word) never occur in a hit.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from .query import Query, terms

SNIPPET_TOKENS = 24
"""Words shown around the first match of a longer segment; most segments fit whole."""

_WORD = re.compile(r"[^\W_]+")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
_SYNTAX = re.compile(r'"((?:[^"]|"")*)"(\*?)|(\{[^}]*\}|[^\s(){}":^+*,]+)\s*:|([^\s(){}":^+*,]+)(\*?)')


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    """Folded words, in order."""
    prefix: bool = False
    """The last word is a prefix (`climat*`)."""


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
"""Combining marks (accents) as decomposition leaves them: what remove_diacritics drops."""


def fold(text: str) -> str:
    """Text as the index compares words: accents removed, lower case."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).lower()


def words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, folded word) for each word of `text`."""
    return [(m.start(), m.end(), fold(m.group())) for m in _WORD.finditer(text)]


def folded(text: str) -> str:
    """`text` folded as a whole (fast for plain ASCII, the usual case): what `count` and `folded_words` read."""
    return text.lower() if text.isascii() else fold(text)


def folded_words(text: str) -> list[str]:
    """The folded words of `text`, faster than `words` (no positions)."""
    return _WORD.findall(folded(text))


def count(folded_text: str, phrase: Phrase) -> int:
    """How often `phrase` occurs in `folded_text` (see `folded`): its words in order, anything but letters and
    digits between them, as FTS5 matches a phrase. A regular expression: bm25 counts for thousands of segments."""
    return len(_pattern(phrase.words, phrase.prefix).findall(folded_text))


@functools.lru_cache(maxsize=256)
def _pattern(words_: tuple[str, ...], prefix: bool) -> re.Pattern[str]:
    body = r"[\W_]+".join(re.escape(w) for w in words_)
    return re.compile(r"(?<![^\W_])" + body + (r"[^\W_]*" if prefix else r"(?![^\W_])"))


def _occurrences(tokens: list[str], phrase: Phrase):
    """Indexes in `tokens` where `phrase` starts."""
    n = len(phrase.words)
    head, last = phrase.words[:-1], phrase.words[-1]
    for i in range(len(tokens) - n + 1):
        if all(tokens[i + j] == w for j, w in enumerate(head)) and (
                tokens[i + n - 1].startswith(last) if phrase.prefix else tokens[i + n - 1] == last):
            yield i


def phrases(query: Query) -> tuple[Phrase, ...]:
    """The words and phrases `query` looks for (operators, column names, NEAR distances left out)."""
    found: list[Phrase] = []
    if query.literal:
        wanted, _ = terms(query.text)
        sources = [(t.rstrip("*").replace('"', " "), t.endswith("*")) for t in wanted]
    else:
        sources = []
        for m in _SYNTAX.finditer(query.text):
            quoted, quoted_star, _column, bare, bare_star = m.groups()
            if quoted is not None:
                sources.append((quoted.replace('""', '"'), bool(quoted_star)))
            elif bare is not None and bare not in _OPERATORS and not bare.isdigit():
                sources.append((bare, bool(bare_star)))
    for text, prefix in sources:
        folded = tuple(w for _, _, w in words(text))
        if folded:
            found.append(Phrase(folded, prefix))
    return tuple(found)


def marked(text: str, wanted: tuple[Phrase, ...],
           max_words: int = SNIPPET_TOKENS) -> tuple[tuple[str, bool], ...]:
    """`text` as (piece, is_match) pieces, each occurrence of a wanted phrase a match; cut to `max_words` words
    around the first match ('…' where cut) when longer."""
    tokens = words(text)
    folded = [t[2] for t in tokens]
    spans = _merged([(tokens[i][0], tokens[i + len(phrase.words) - 1][1])
                     for phrase in wanted for i in _occurrences(folded, phrase)])
    begin, end, head, tail = 0, len(text), "", ""
    if len(tokens) > max_words:
        first = next((k for k, t in enumerate(tokens) if spans and t[0] >= spans[0][0]), 0)
        start = max(0, min(first - max_words // 3, len(tokens) - max_words))
        stop = start + max_words
        if start > 0:
            begin, head = tokens[start][0], "…"
        if stop < len(tokens):
            end, tail = tokens[stop - 1][1], "…"
    parts: list[tuple[str, bool]] = [(head, False)] if head else []
    at = begin
    for a, b in spans:
        a, b = max(a, begin), min(b, end)
        if a >= b:
            continue
        if a > at:
            parts.append((text[at:a], False))
        parts.append((text[a:b], True))
        at = b
    if at < end:
        parts.append((text[at:end], False))
    if tail:
        parts.append((tail, False))
    return tuple(parts)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
