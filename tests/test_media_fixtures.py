"""The fixtures themselves: real, decodable speech and a server that really misbehaves."""

import urllib.error
import urllib.request
import uuid

import av
import pytest


def test_clips_decode_with_audio(speech_clips):
    for clip in speech_clips.values():
        with av.open(str(clip.path)) as c:
            assert c.streams.audio, clip.path
            assert 1.5 < c.duration / 1e6 < 15


def test_server_serves_files_and_errors(media_server, speech_clips):
    clip = speech_clips["weather"].path.name
    with urllib.request.urlopen(media_server.url(clip)) as r:
        assert r.status == 200 and len(r.read()) == speech_clips["weather"].path.stat().st_size
    path = f"status/404/{uuid.uuid4().hex}"  # the server is shared by the session: count a path of our own
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(media_server.url(path))
    assert err.value.code == 404
    assert media_server.count(path) == 1
