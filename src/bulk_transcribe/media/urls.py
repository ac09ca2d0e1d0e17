"""What an input line is, and what a URL is made of: the one set of URL rules for inputs, downloads and the
dashboard (scheme, host, the politeness key, direct media links, cleaning).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from yt_dlp.utils import unsmuggle_url

from ..config import MEDIA_EXTENSIONS
from ..models import SourceKind

WEB_SCHEMES = frozenset({"http", "https"})
"""The only schemes ever requested, from any source (typed lines, feeds, pages, redirects)."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DOMAIN_LIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(/|$)")


def scheme_of(text: str) -> str | None:
    """The lower-cased scheme of `text` when it is written as a URL (`scheme://...`), else None (a path)."""
    match = _SCHEME.match(text.strip())
    return match.group(1).lower() if match else None


def kind_of(line: str) -> SourceKind:
    """The one URL-or-file rule: a line written `scheme://...` is a URL (usable or not), anything else a path."""
    return SourceKind.URL if scheme_of(line) else SourceKind.FILE


def looks_like_a_domain(text: str) -> bool:
    """`www.example.com/watch?v=1`: a URL typed without its scheme (and no local file of that name)."""
    return bool(_DOMAIN_LIKE.match(text)) and " " not in text and Path(text).suffix.lower() not in MEDIA_EXTENSIONS


def not_a_url_or_file(text: str) -> str:
    """The reason for a line that names neither an existing file nor a URL."""
    if looks_like_a_domain(text):
        return f"not a URL or file (URLs need http:// or https://): {text}"
    return f"not a URL or file: {text}"


def web_url_problem(text: str) -> str | None:
    """Why the URL line `text` can never be requested (a scheme other than http/https, a malformed URL), in one
    line naming it; None when it can be."""
    text = text.strip()
    scheme = scheme_of(text)
    if scheme not in WEB_SCHEMES:
        return f"unsupported URL scheme {scheme}:// (use http or https): {text}"
    problem = url_problem(text)
    return f"malformed URL ({problem}): {text}" if problem else None


def url_problem(url: str) -> str | None:
    """What makes `url` unusable before any request (None when fine), so the user reads "malformed URL (no host
    name)" instead of whatever the HTTP library happens to raise."""
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port out of range
    except ValueError as exc:
        text = str(exc)
        return "port out of range" if "port" in text.lower() else text[:1].lower() + text[1:]
    host = parts.hostname
    if not host:
        return "no host name"
    try:
        host.encode("idna")
    except UnicodeError:
        return f"invalid host name {host!r}"
    if any(c.isspace() or c in "<>\"{}|\\^`" for c in host):
        return f"invalid host name {host!r}"
    return None


def is_direct_media_url(url: str) -> bool:
    """A link straight to a media file: yt-dlp's generic extractor would only confirm it with an extra request."""
    return Path(unquote(urlsplit(url).path)).suffix.lower() in MEDIA_EXTENSIONS


def direct_media_title(url: str) -> str:
    name = Path(unquote(urlsplit(url).path)).stem
    return name or url


def direct_media_meta(url: str) -> dict:
    """The id and extractor yt-dlp's generic extractor gives a direct media link (what its archive records)."""
    return {"id": unquote(Path(urlsplit(url).path).stem) or url, "extractor_key": "Generic"}


def clean_url(url: str) -> str:
    """The URL without yt-dlp's smuggled data (RSS entries carry some), scheme and host lower-cased. User name and
    password stay as given: servers compare them case-sensitively (see redact.py for how they are hidden)."""
    url, _ = unsmuggle_url(url.strip())
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    return parts._replace(scheme=parts.scheme.lower(), netloc=userinfo + at + host.lower()).geturl()


TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "_gl",
})
"""Query parameters that say who shared a link, never which resource it is (with every utm_*)."""

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def canonical_url(url: str) -> str:
    """One spelling per resource, to tell duplicates apart (never what is requested): scheme and host lower-case,
    this machine's names as one, default ports, the fragment and tracking parameters dropped, the query sorted.
    `c.mp4`, `c.mp4#t=1`, `c.mp4?utm_source=x` and `C.MP4` on `localhost` or `127.0.0.1` are one resource."""
    try:
        parts = urlsplit(clean_url(url))
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:  # a malformed URL is only ever equal to itself
        return url
    if host in _LOOPBACK:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    if port and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if k.lower() not in TRACKING_PARAMS and not k.lower().startswith("utm_"))
    return urlunsplit((parts.scheme, f"{userinfo}@{host}" if userinfo else host, parts.path or "/",
                       urlencode(query), ""))


GENERIC_EXTRACTORS = frozenset({"generic", "html5mediaembed"})
"""yt-dlp's extractors for sites it does not know: their ids come from a page's or file's name, so they tell
nothing apart (a.mp3 and dir2/a.mp3 are both `generic a`)."""


def identity_of(source: str, kind: SourceKind | str, meta: dict | None = None) -> str:
    """What makes two items one video: a file's path; a site's own id (yt-dlp's extractor and id, as its archive
    records it) when the site is known; else the media URL's canonical spelling."""
    if SourceKind(kind) != SourceKind.URL:
        return source
    extractor, video = (meta or {}).get("extractor_key"), (meta or {}).get("id")
    if extractor and video not in (None, "") and str(extractor).lower() not in GENERIC_EXTRACTORS:
        return f"{str(extractor).lower()} {video}"
    return canonical_url(source)


def host_key(url: str) -> str:
    """Whom politeness is owed, and what an error names: the host and port (a user:password is no part of it)."""
    parts = urlsplit(url)
    if parts.port:
        return f"{parts.hostname}:{parts.port}"
    return parts.hostname or url
