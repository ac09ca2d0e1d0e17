"""Links to the moment a hit was said: the video's own URL made to start there, or the local file and the time.

Sites that take a start time in the URL get it in their own form (checked against each site's share links):

    youtube.com/watch, youtu.be, /shorts/, /live/, /embed/   ?t=83 (or &t=83)      seconds
    vimeo.com/ID, player.vimeo.com/video/ID                  #t=83s
    twitch.tv/videos/ID                                      ?t=0h1m23s
    dailymotion.com/video/ID, dai.ly/ID                      ?start=83
    a direct link to a media file (.mp3, .mp4, ...)          #t=83           W3C media fragment: browsers seek to it

Any other page is linked as it is (there is no portable way to say "start at"); a local file is its path and the
time, `/talks/a.mp4 @ 1:23`. Times are whole seconds rounded down, so playback starts at or just before the words.

Sources are stored with any password already masked (`https://user:***@host/...`, redact.py); a link drops the
user name and password altogether: a masked password is useless in a browser, and the name alone can be a token.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

WEB_SCHEMES = ("http", "https")

_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}
_YOUTUBE_ID_PATHS = re.compile(r"^/(?:shorts|live|embed|v)/([\w-]{6,})")
_VIMEO_HOSTS = {"vimeo.com", "www.vimeo.com", "player.vimeo.com"}
_TWITCH_HOSTS = {"twitch.tv", "www.twitch.tv", "m.twitch.tv"}
_DAILYMOTION_HOSTS = {"dailymotion.com", "www.dailymotion.com", "dai.ly"}


def clock(seconds: float) -> str:
    """`1:23`, `1:02:03`: whole seconds, rounded down (a link to 83.9 s starts at 83)."""
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def moment_link(source: str, kind: str, start: float) -> str:
    """Where to watch `source` from `start` seconds: a URL (http/https only) or `PATH @ M:SS` for a local file;
    "" when the source is neither (nothing safe to offer)."""
    if kind == "file":
        return f"{source} @ {clock(start)}"
    try:
        parts = urlsplit(source.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return ""
    if parts.scheme.lower() not in WEB_SCHEMES or not host:
        return ""
    port = parts.port if _has_valid_port(parts) else None
    netloc = host if port is None else f"{host}:{port}"  # user name and password dropped (see above)
    if ":" in host:  # an IPv6 literal goes back into brackets
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    parts = parts._replace(scheme=parts.scheme.lower(), netloc=netloc)
    seconds = int(max(0.0, start))
    path = parts.path
    if host in _YOUTUBE_HOSTS:
        match = _YOUTUBE_ID_PATHS.match(path)
        if match:  # /shorts/ID ignores t=; the watch page plays the same video and honours it
            return urlunsplit(("https", "www.youtube.com", "/watch", urlencode({"v": match.group(1), "t": seconds}),
                               ""))
        if path == "/watch":
            return _with_query(parts, "t", str(seconds))
    if host == "youtu.be" and len(path) > 1:
        return _with_query(parts, "t", str(seconds))
    if host in _VIMEO_HOSTS and re.search(r"/\d+/?$", path):
        return urlunsplit(parts._replace(fragment=f"t={seconds}s"))
    if host in _TWITCH_HOSTS and re.match(r"^/videos/\d+/?$", path):
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return _with_query(parts, "t", f"{hours}h{minutes}m{secs}s")
    if host in _DAILYMOTION_HOSTS and (path.startswith("/video/") or host == "dai.ly") and len(path) > 1:
        return _with_query(parts, "start", str(seconds))
    if is_direct_media(source):
        return urlunsplit(parts._replace(fragment=f"t={seconds}"))
    return urlunsplit(parts)


def is_web_link(link: str) -> bool:
    """True for the http(s) links moment_link builds (what a page may show as a live link)."""
    return urlsplit(link).scheme.lower() in WEB_SCHEMES if "://" in link else False


def is_direct_media(url: str) -> bool:
    # media.urls holds the project's one rule; imported here only when needed (it loads yt-dlp, ~0.7 s).
    from ..media.urls import is_direct_media_url

    return is_direct_media_url(url)


def _with_query(parts, key: str, value: str) -> str:
    """The URL with `key` set to `value` (an earlier value replaced, every other parameter kept in order)."""
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != key]
    query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _has_valid_port(parts) -> bool:
    try:
        parts.port
    except ValueError:
        return False
    return True
