"""Security guarantees, with the project's own functions and real servers:

- local paths from the dashboard (Videos box, uploaded lists, uploads, model box, output folder) stay inside the
  configured roots: no `../`, no symlink escape, no /etc/passwd;
- transcript folder names built from hostile titles cannot escape OUT;
- no shell command is built anywhere (AST scan of every source file);
- uploads are capped without reading more than the cap;
- the Streamlit server (with the repository's config) and the embedded Ray dashboard listen on 127.0.0.1 only.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.request import urlopen

import pytest

from bulk_transcribe.runs import run_batch
from bulk_transcribe.config import RunConfig, TranscribeOptions
from bulk_transcribe.dashboard import paths, uploads
from bulk_transcribe.dashboard.settings import DashboardSettings
from bulk_transcribe.dashboard.submit import RunSettings, Submission, build_run

REPO = Path(__file__).resolve().parents[1]
CEILING_S = 120  # a hang guard for the test itself, never an assertion on speed


@pytest.fixture
def roots(tmp_path) -> DashboardSettings:
    media, out = tmp_path / "media", tmp_path / "out"
    (media / "talks").mkdir(parents=True)
    out.mkdir()
    (media / "talks" / "ok.mp3").write_bytes(b"fake audio")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "private.mp3").write_bytes(b"not yours")
    os.symlink(secret / "private.mp3", media / "talks" / "link.mp3")  # a file link out of the root
    os.symlink(secret, media / "escape")  # a folder link out of the root
    return DashboardSettings(media_root=media.resolve(), output_root=out.resolve(),
                             upload_dir=(media / "uploads").resolve(), max_upload_mb=1)


# --------------------------------------------------------------------------------------------- confinement


def test_no_dashboard_input_reaches_outside_the_media_root(roots):
    escapes = ["/etc/passwd", "../../../../etc/passwd", "talks/../../secret/private.mp3",
               "talks/link.mp3", "escape/private.mp3", "escape", "/proc/self/environ", "talks/\x00.mp3"]
    submission = Submission(
        videos_text="\n".join(["talks/ok.mp3", *escapes]),
        list_files=[("list.txt", "/etc/passwd\n../secret/private.mp3\n")],
        uploaded_paths=[Path("/etc/passwd"), roots.media_root / "escape" / "private.mp3"],
        settings=RunSettings(model="/etc", output_folder="../../../tmp/evil"),
    )
    result = build_run(submission, roots)
    # The one good line is kept; every escape is refused by name (a failed row with its reason, never read).
    assert result.inputs == [str(roots.media_root / "talks" / "ok.mp3")]
    warning = " ".join(result.warnings)
    assert warning.startswith("12 input line(s) cannot be used and are listed as failed")
    assert "/etc/passwd is outside the allowed folder" in warning
    assert "NUL byte" in warning
    assert len(result.rejected) == 12 and all(reason for _, reason in result.rejected)
    # The settings boxes obey the same rule: no model read from /etc, no output written outside the root.
    errors = " ".join(result.errors)
    assert "Model folder: /etc is outside the allowed folder" in errors
    assert "Output folder '../../../tmp/evil' must be inside" in errors
    assert result.config is None  # nothing starts while any of that stands

    # Fix the settings and the run starts with only the confined input.
    fixed = build_run(Submission(videos_text=submission.videos_text), roots)
    assert fixed.ok and fixed.config.inputs == (str(roots.media_root / "talks" / "ok.mp3"),)
    assert paths.within(fixed.config.out_dir, roots.output_root)
    for value in fixed.config.inputs:
        assert paths.within(Path(value), roots.media_root)


def test_output_names_from_hostile_titles_stay_inside_out(tmp_path, media_dir, media_server, speech_clips):
    """Titles come from the site (here an RSS feed): whatever they say, every file lands inside OUT."""
    tag = uuid.uuid4().hex[:8]
    hostile = ["../../../escaped", "/etc/cron.d/evil", "..", ".", "CON", "a/../../b", "~root/.ssh/x",
               "$(touch pwned)", "a\\..\\..\\b", "x" * 500]
    clip = media_server.url(speech_clips["weather"].path.name)
    items = "".join(
        f'<item><title>{title.replace("&", "&amp;").replace("<", "&lt;")}</title>'
        f'<enclosure url="{clip}?n={n}" type="audio/mpeg" length="1000"/><guid>{tag}-{n}</guid></item>'
        for n, title in enumerate(hostile))
    name = f"hostile-{tag}.rss"
    (media_dir / name).write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://127.0.0.1/</link><description>d</description>{items}</channel></rss>")
    base = tmp_path / "deep" / "er"
    base.mkdir(parents=True)
    out = base / "out"
    before = set(tmp_path.rglob("*"))
    result = run_batch(RunConfig(inputs=(media_server.url(name),), out_dir=out, formats=("txt",),
                                 transcribe=TranscribeOptions(cpu_threads=2)))
    assert result.error is None and result.counts["done"] == len(hostile), result.counts
    created = set(tmp_path.rglob("*")) - before
    outside = [p for p in created if not paths.within(p, out)]
    assert outside == [], outside
    folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]  # .work, .transcripts
    assert len(folders) == len(hostile)  # collisions got suffixes, none overwrote another
    for folder in folders:
        assert folder.parent == out and "/" not in folder.name and "\\" not in folder.name
        assert folder.name not in (".", "..") and len(folder.name) <= 90
    assert not (Path.cwd() / "pwned").exists()


# --------------------------------------------------------------------------------------------- no shell

SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execl"), ("os", "execlp"), ("os", "execv"),
               ("os", "execvp"), ("os", "spawnl"), ("os", "spawnlp"), ("pty", "spawn"),
               ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}
SUBPROCESS_RUNNERS = {"run", "Popen", "call", "check_call", "check_output"}


def _python_sources() -> list[Path]:
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "pages").glob("*.py"))
    files.append(REPO / "streamlit_app.py")
    return [f for f in files if f.is_file()]


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def test_no_shell_is_ever_built_from_input():
    """No os.system/popen/exec, no eval/exec, and every subprocess call takes an argument list with no shell."""
    problems = []
    sources = _python_sources()
    assert len(sources) > 20, "the scan found too few files to mean anything"
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "pty"):
                for alias in node.names:
                    if (node.module, alias.name) in SHELL_CALLS:
                        problems.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name[-2:] in SHELL_CALLS:
                problems.append(f"{where} calls {'.'.join(name)}")
            if name in (("eval",), ("exec",)):
                problems.append(f"{where} calls {name[0]}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where} passes shell=...")
            if name[-1:] and name[-1] in SUBPROCESS_RUNNERS and name[:-1] in (("subprocess",), ()) and node.args:
                if isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{where} passes a command string to {name[-1]}")
    assert problems == []


# --------------------------------------------------------------------------------------------- uploads


def test_upload_cap_refuses_without_reading_past_the_cap(roots, tmp_path):
    """A visitor's 3 GB upload costs the server at most cap + 1 bytes of memory, and nothing on disk."""
    huge = tmp_path / "huge.mp4"
    with open(huge, "wb") as fh:
        fh.truncate(3 * 1024**3)  # sparse: 3 GB long, no disk used
    with open(huge, "rb") as stream:
        with pytest.raises(uploads.UploadError, match=r"over the 1 MB upload limit"):
            uploads.save_upload("huge.mp4", stream, roots.upload_dir, roots.max_upload_bytes)
        assert stream.tell() == roots.max_upload_bytes + 1
    assert not roots.upload_dir.exists() or not any(roots.upload_dir.rglob("*"))
    # The default cap is finite and the page hands it to Streamlit's uploader as well.
    assert 0 < DashboardSettings.from_env({}, cwd=tmp_path).max_upload_mb <= 2048
    page = (REPO / "pages" / "02_Bulk_Transcribe.py").read_text()
    assert page.count("max_upload_size=settings.max_upload_mb") == page.count("file_uploader(")


# --------------------------------------------------------------------------------------------- binding


def _listening(port: int) -> set[str]:
    """Addresses with a socket in LISTEN state on `port`, read from the kernel (/proc/net/tcp, tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamlit_server_with_the_repository_config_listens_on_loopback_only(tmp_path):
    """`streamlit run streamlit_app.py` with no address flag: the repository's .streamlit/config.toml decides."""
    port = _free_port()
    env = {**os.environ, "BULK_TRANSCRIBE_MEDIA_ROOT": str(tmp_path), "BULK_TRANSCRIBE_OUTPUT_ROOT": str(tmp_path),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.headless", "true"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + CEILING_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        assert _listening(port) == {"127.0.0.1"}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


RAY_PROBE = textwrap.dedent("""
    import json
    from bulk_transcribe.parallel import cluster
    info = cluster.connect(None, num_cpus=1, object_store_memory=100 * 1024**2, include_dashboard=True)
    print("URL " + json.dumps(info.dashboard_url), flush=True)
    input()  # keep Ray up until the test has looked at the sockets
    cluster.shutdown()
""")


def test_embedded_ray_dashboard_listens_on_loopback_only():
    probe = subprocess.Popen([sys.executable, "-c", RAY_PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        line = probe.stdout.readline()
        assert line.startswith("URL "), probe.stderr.read()[-3000:] if probe.poll() is not None else line
        url = json.loads(line[4:])
        assert url and url.startswith("http://127.0.0.1:"), url
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert _listening(port) == {"127.0.0.1"}
    finally:
        try:
            probe.communicate("\n", timeout=60)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait()


def test_only_http_and_https_are_ever_requested_and_link_local_is_refused(run_cli, tmp_path, media_dir,
                                                                         media_server):
    """A feed whose enclosures are ftp:// and a cloud metadata address: those entries fail with one line naming
    the link, nothing connects to the FTP server (a real listener counts), no request leaves for 169.254.x, and the
    feed's good entry is done."""
    import json
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn)
            conn.sendall(b"220 ready\r\n")

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    good = media_server.url("weather.mp3")
    feed = media_dir / "schemes.rss"
    entries = [("By FTP", f"ftp://127.0.0.1:{port}/a.mp3"), ("Metadata", "http://169.254.169.254/latest/a.mp3"),
               ("Fine", good)]
    feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>Schemes</title>' + "".join(
        f'<item><title>{t}</title><enclosure url="{u}" type="audio/mpeg"/><guid>{t}</guid></item>'
        for t, u in entries) + "</channel></rss>")
    out = tmp_path / "out"
    try:
        code, stdout, stderr = run_cli("run", media_server.url("schemes.rss"), "--out", str(out), "--formats",
                                       "txt", "--cpu-threads", "2", "-q")
    finally:
        stop.set()
        listener.close()
    videos = {v["title"]: v for v in json.loads((out / "manifest.json").read_text())["videos"]}
    assert code == 1 and videos["Fine"]["status"] == "done", stdout + stderr
    assert videos["By FTP"]["error"] == f"unsupported URL scheme ftp:// (use http or https): ftp://127.0.0.1:{port}/a.mp3"
    assert videos["Metadata"]["error"].startswith("refused a link-local address (169.254.169.254")
    assert "BULK_TRANSCRIBE_ALLOW_LINK_LOCAL" in videos["Metadata"]["error"]
    assert connections == []


def test_the_request_policy_itself(monkeypatch):
    from bulk_transcribe.media.guard import ALLOW_LINK_LOCAL_ENV, request_problem

    assert request_problem("http://127.0.0.1:9/a.mp3") is None and request_problem("https://[::1]/x") is None
    assert request_problem("ftp://example.invalid/a").startswith("refused a link that is not http or https")
    assert request_problem("file:///etc/passwd").startswith("refused a link that is not http or https")
    assert request_problem("http://169.254.169.254/").startswith("refused a link-local address")
    assert request_problem("http://[fe80::1]/").startswith("refused a link-local address")
    monkeypatch.setenv(ALLOW_LINK_LOCAL_ENV, "1")  # the operator's choice, never the default
    assert request_problem("http://169.254.169.254/") is None
