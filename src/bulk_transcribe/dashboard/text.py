"""Text from sites, file names and URLs, made safe for Streamlit's markdown-rendering widgets.

st.markdown, st.caption, st.subheader, st.warning and the rest render markdown (links, images, emphasis, ":red[…]"
colours, "$…$" maths): a feed entry titled `![px](http://host/pixel.png)` would make every visitor's browser fetch
that image, and `[click me](https://…)` would become a real link. Every untrusted string goes through `plain`
before it reaches such a widget, so it shows exactly as written.
"""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
"""Every ASCII punctuation character: CommonMark lets a backslash escape each of them, so escaping all is safe."""

_AUTOLINK_START = re.compile(r"(?i)\b(https?|ftp|www)(?=[:.])|(@)")
"""Where GitHub-flavoured markdown starts a link of its own in plain text (`http://…`, `www.…`, `a@b.c`):
escaping cannot stop that (it runs on the text after escapes), so an invisible word joiner breaks the pattern."""

WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` as literal characters in markdown: punctuation backslash-escaped, line breaks as spaces, and no
    bare URL or address turned into a live link (it reads the same; it is not a link)."""
    flat = " ".join(str(text).split())
    unlinked = _AUTOLINK_START.sub(lambda m: m.group(0) + WORD_JOINER, flat)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked)
