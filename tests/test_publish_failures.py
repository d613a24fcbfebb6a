"""`imaginarium publish` and `release build` when things go wrong: one line, exit 2, and a re-run completes.

Publishing runs the real entry point in a child process (`python -m imaginarium.cli publish ...`):
huggingface_hub reads HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET when it is
imported, and other test modules import it first in this process (see tests/test_publish.py). The
local Hub (tests/hub_server.py) runs in this process; failures come from its fault injection
(507 on an LFS upload, 403 on the tag), from a wrong token (401), from a closed port (refused),
and from `_DroppingProxy`, a small HTTP proxy in front of it that closes the connection on a
chosen request, before or after passing it on. After each failure: exit 2, one line on stderr
that says what failed and whether a re-run completes it, no traceback, no token; earlier tags
untouched; then the same command against a healthy Hub completes and makes the tag once.

A killed `release build` is reproduced with SIGKILL on a child process and by laying out what a
killed build leaves (staging directories, a stale lock, a swap cut in half); the next build removes
it and writes a complete release.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from fixtures_release import make_sft_stage, sft_rows
from hub_server import HubServer

from imaginarium.hub_cards.release import build_release, read_release

TOKEN = "hf_imaginariumFailureToken0123456789abcd"
WRONG = "hf_imaginariumWrongToken9876543210zyxwv"
REPO = "imaginarium-test/failures"
COMMIT = r"/api/datasets/[^/]+/[^/]+/commit/main"
TAG = r"/api/datasets/[^/]+/[^/]+/tag/[^/]+"
REFS = r"/api/datasets/[^/]+/[^/]+/refs"


# -- the local Hub, a proxy that drops connections, and the child process ------------------


@pytest.fixture
def hub():
    with HubServer(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """v1.0.0 and v1.1.0 (other rows: new parquet shard and chart, so LFS uploads), built once."""
    base = tmp_path_factory.mktemp("releases")
    make_sft_stage(base / "run1" / "sft", sft_rows(4))
    make_sft_stage(base / "run2" / "sft", sft_rows(5, offset=2))
    build_release([base / "run1"], base / "v1", name="toy-tools", version="1.0.0", repo_id=REPO)
    build_release([base / "run2"], base / "v2", name="toy-tools", version="1.1.0", repo_id=REPO)
    return base / "v1", base / "v2"


class _DroppingProxy:
    """HTTP proxy in front of the local Hub. `drop(method, path, when)` closes the connection on the
    next matching request without any response, before passing it on or after the Hub answered;
    `answer(method, path, status, message)` answers it with that error as the Hub would."""

    def __init__(self, target: str):
        host, port = urlsplit(target).hostname, urlsplit(target).port
        self.rules: list[tuple[str, re.Pattern, str | tuple[int, str]]] = []
        self.dropped: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = self._body()
                when = proxy._take(self.command, self.path)
                if when == "before":
                    return self._drop()
                if isinstance(when, tuple):
                    status, message = when
                    data = json.dumps({"error": message}).encode()
                    self.send_response(status)
                    for key, value in (("Content-Type", "application/json"), ("X-Error-Message", message),
                                       ("Content-Length", str(len(data)))):
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                upstream = http.client.HTTPConnection(host, port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length", "transfer-encoding")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if when == "after":  # the Hub did it; the client never hears of it
                    return self._drop()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _drop(self) -> None:
                proxy.dropped.append(f"{self.command} {self.path}")
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def drop(self, method: str, path: str, when: str) -> None:
        self.rules.append((method, re.compile(path), when))

    def answer(self, method: str, path: str, status: int, message: str) -> None:
        self.rules.append((method, re.compile(path), (status, message)))

    def _take(self, method: str, path: str) -> str | tuple[int, str] | None:
        for rule in self.rules:
            if rule[0] == method and rule[1].fullmatch(path.split("?")[0]):
                self.rules.remove(rule)
                return rule[2]
        return None

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def proxy(hub):
    server = _DroppingProxy(hub.url)
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _publish(release: Path, endpoint: str, home: Path, token: str = TOKEN, *extra: str) -> tuple[int, str, str]:
    """`imaginarium publish RELEASE --repo REPO` in a child process (stderr is no terminal)."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_TOKEN": token, "HF_HOME": str(home),
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TORCHDYNAMO_DISABLE": "1"}
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_VERBOSITY"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "imaginarium.cli", "publish", str(release), "--repo", REPO, *extra],
                            env=env, capture_output=True, text=True, timeout=180)
    return result.returncode, result.stdout, result.stderr


def _one_line_failure(result: tuple[int, str, str]) -> str:
    """The failure's single stderr line, after checking exit 2, no traceback and no token anywhere."""
    code, out, err = result
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text and TOKEN not in text and WRONG not in text, text
    assert not re.search(r"hf_[A-Za-z0-9]{6,}", text), text
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and out == "", text
    return lines[0]


def _published(result: tuple[int, str, str], tag: str) -> None:
    code, out, err = result
    assert code == 0 and f"published {tag} to {REPO}" in out, out + err
    assert TOKEN not in out + err


def _first_release(hub, releases, tmp_path) -> dict[str, str]:
    _published(_publish(releases[0], hub.url, tmp_path / "hf"), "v1.0.0")
    return hub.tags(REPO)


def _completed(hub, before: dict[str, str]) -> None:
    """v1.1.0 tagged once, on the head of main, earlier tags as they were, one release commit."""
    tags = hub.tags(REPO)
    head = hub.state.repos[("dataset", REPO)].branches["main"]
    assert tags == {**before, "v1.1.0": head}
    assert [c.title for c in hub.commits(REPO)].count("Release v1.1.0") == 1
    assert hub.routes(status=200).count("create_tag") == len(tags)


# -- publish failures ----------------------------------------------------------------------


def test_507_on_an_lfs_upload_is_one_line_and_a_rerun_resumes_the_upload(hub, releases, tmp_path):
    before = _first_release(hub, releases, tmp_path)
    head = hub.state.repos[("dataset", REPO)].branches["main"]
    hub.fail("lfs_upload", times=1, status=507)  # 507 is not retried by the client
    line = _one_line_failure(_publish(releases[1], hub.url, tmp_path / "hf"))
    assert "publishing v1.1.0 to imaginarium-test/failures failed while uploading '" in line
    assert "HTTP 507 Insufficient Storage" in line and "nothing was committed or tagged" in line
    assert "earlier tags are untouched" in line and "run the same command again to finish: the upload resumes" in line
    assert hub.tags(REPO) == before and hub.state.repos[("dataset", REPO)].branches["main"] == head
    _published(_publish(releases[1], hub.url, tmp_path / "hf"), "v1.1.0")
    _completed(hub, before)
    uploaded = [r.path for r in hub.state.requests if r.route == "lfs_upload" and r.status == 200]
    assert len(uploaded) == len(set(uploaded))  # what went up before the failure was not sent again


def test_a_refused_token_says_a_rerun_will_not_help_and_names_no_token(hub, proxy, releases, tmp_path):
    before = _first_release(hub, releases, tmp_path)
    line = _one_line_failure(_publish(releases[1], hub.url, tmp_path / "hf", WRONG))
    assert "the token was refused (HTTP 401" in line
    assert "a re-run will not help; check HF_TOKEN" in line and "run the same command again" not in line
    assert hub.tags(REPO) == before
    # the dry run reads with the token; the Hub refuses a bad token on reads too (the local one does not)
    proxy.answer("GET", REFS, 401, "Invalid credentials in Authorization header")
    line = _one_line_failure(_publish(releases[1], proxy.url, tmp_path / "hf", WRONG, "--dry-run"))
    assert line.startswith("error: planning v1.1.0") and "the token was refused" in line
    # a token that may commit but not tag (403 on the tag): the commit stays untagged, no tag anywhere
    hub.fail("create_tag", times=1, status=403)
    line = _one_line_failure(_publish(releases[1], hub.url, tmp_path / "hf"))
    assert "failed while tagging commit" in line and "the token was refused (HTTP 403 Forbidden" in line
    assert "holds the release but is not tagged yet" in line and "a re-run will not help; check HF_TOKEN" in line
    assert hub.tags(REPO) == before
    _published(_publish(releases[1], hub.url, tmp_path / "hf"), "v1.1.0")  # with rights: only the tag is made
    _completed(hub, before)


def test_a_refused_connection_is_one_line_and_a_rerun_completes(hub, releases, tmp_path):
    before = _first_release(hub, releases, tmp_path)
    closed = f"http://127.0.0.1:{_closed_port()}"
    line = _one_line_failure(_publish(releases[1], closed, tmp_path / "hf"))
    assert f"failed while creating the repo: cannot reach the Hub at {closed}" in line
    assert "check HF_ENDPOINT" in line and "run the same command again to finish" in line
    assert "nothing was uploaded or tagged" in line
    assert hub.tags(REPO) == before
    _published(_publish(releases[1], hub.url, tmp_path / "hf"), "v1.1.0")
    _completed(hub, before)


@pytest.mark.parametrize(("method", "path", "when", "expected"), [
    ("POST", COMMIT, "after", ["failed while making the commit", "the commit may or may not have been made",
                               "run the same command again to finish: it tags the commit if it was made"]),
    ("POST", TAG, "before", ["failed while tagging commit", "holds the release but is not tagged yet",
                             "run the same command again to finish: it only tags that commit"]),
])
def test_a_dropped_connection_is_one_line_and_a_rerun_completes(hub, proxy, releases, tmp_path, method, path, when,
                                                                expected):
    before = _first_release(hub, releases, tmp_path)
    proxy.drop(method, path, when)
    line = _one_line_failure(_publish(releases[1], proxy.url, tmp_path / "hf"))
    assert len(proxy.dropped) == 1 and f"the connection to the Hub at {proxy.url} dropped" in line
    assert all(part in line for part in expected), line
    assert hub.tags(REPO) == before
    commits = len(hub.commits(REPO))
    _published(_publish(releases[1], proxy.url, tmp_path / "hf"), "v1.1.0")
    _completed(hub, before)
    assert len(hub.commits(REPO)) == commits  # the commit the failed run made is tagged, not made again


def test_every_hub_answer_maps_to_its_advice_and_no_secret_leaks():
    """The classification on errors as huggingface_hub raises them (no server needed)."""
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.utils import hf_raise_for_status

    from imaginarium.hub_cards.publish import HubFailure, _Steps

    secret = "s3cret-not-shaped-like-a-token"

    def error(status: int, message: str, path: str = "/api/datasets/me/toy/commit/main", code: str | None = None):
        request = httpx2.Request("POST", f"https://hub.test{path}", headers={"authorization": f"Bearer {secret}"})
        headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
        with pytest.raises(Exception) as raised:
            hf_raise_for_status(httpx2.Response(status, headers=headers, json={"error": message}, request=request))
        return raised.value

    steps = _Steps("publishing v1.1.0 to me/toy", "me/toy", "https://hub.test", secret)
    cases = [
        (error(403, f"no rights for {secret} / {TOKEN}", "/api/repos/create"), "creating the repo", False,
         "the token was refused (HTTP 403"),
        (error(404, "Repository not found", "/api/datasets/me/toy/refs", "RepoNotFound"),
         "reading the repo's tags and files", False, "repo me/toy was not found"),
        (error(412, "parentCommit is not the head"), "uploading the files", True, "it commits and tags"),
        (error(409, "Tag v1.1.0 already exists", "/api/datasets/me/toy/tag/abc"), "tagging", True,
         "run the same command again to finish"),
        (error(503, "overloaded"), "uploading the files", True, "HTTP 503"),
        (error(400, "invalid payload"), "uploading the files", False, "a re-run will not help until that is fixed"),
        (RuntimeError("Error while uploading 'data/x.parquet' to the Hub."), None, None, None),  # no Hub error: a bug
    ]
    for exc, what, rerun, phrase in cases:
        with pytest.raises((HubFailure, RuntimeError)) as raised, steps.step(what or "x", "nothing was tagged", "",
                                                                              commit_step=what == "uploading the files"):
            raise exc
        if rerun is None:
            assert not isinstance(raised.value, HubFailure)
            continue
        text = str(raised.value)
        assert isinstance(raised.value, HubFailure) and raised.value.rerun_completes is rerun, text
        assert phrase in text and "\n" not in text and secret not in text and TOKEN not in text, text
    wrapped = RuntimeError("Error while uploading 'data/x.parquet' to the Hub.")
    wrapped.__cause__ = error(507, f"disk full (token {TOKEN})", "/lfs/upload")
    with pytest.raises(HubFailure) as raised, steps.step("uploading the files", "nothing was committed or tagged",
                                                         "the upload resumes", commit_step=True):
        raise wrapped
    assert "while uploading 'data/x.parquet'" in str(raised.value) and raised.value.rerun_completes
    assert TOKEN not in str(raised.value) and "hf_***" in str(raised.value)


def test_a_bad_release_directory_is_one_line_before_any_request(tmp_path):
    (tmp_path / "rel/provenance").mkdir(parents=True)
    (tmp_path / "rel/provenance/release.json").write_text('{"name": "x"}')
    line = _one_line_failure(_publish(tmp_path / "rel", f"http://127.0.0.1:{_closed_port()}", tmp_path / "hf"))
    assert "has no version X.Y.Z" in line
    line = _one_line_failure(_publish(tmp_path / "missing", f"http://127.0.0.1:{_closed_port()}", tmp_path / "hf"))
    assert "not a release directory" in line


# -- release build: killed builds --------------------------------------------------------------


def _build_args(stage: Path, out: Path, version: str, *extra: str) -> list[str]:
    return ["release", "build", str(stage), "-o", str(out), "--name", "toy", "--version", version, *extra]


def _complete(out: Path, rows: int, version: str) -> None:
    info = read_release(out)
    assert info["version"] == version and info["configs"]["sft"]["rows"] == rows
    files = info["configs"]["sft"]["splits"]["train"]["files"]
    assert sum(pq.read_metadata(out / f).num_rows for f in files) == rows
    assert (out / "README.md").is_file() and f"(v{version})" in (out / "README.md").read_text()


def _beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir())


def test_a_killed_build_leaves_the_old_release_and_a_rerun_removes_its_leftovers(tmp_path, run):
    make_sft_stage(tmp_path / "small", sft_rows(3))
    make_sft_stage(tmp_path / "big", sft_rows(800))
    out = tmp_path / "rel"
    code, _, err = run(*_build_args(tmp_path / "small", out, "1.0.0"))
    assert code == 0, err
    old = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # one row per shard: hundreds of parquet files, time enough to kill the build part-way
    args = _build_args(tmp_path / "big", out, "2.0.0", "--max-shard-bytes", "1024")
    child = subprocess.Popen([sys.executable, "-m", "imaginarium.cli", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "TORCHDYNAMO_DISABLE": "1"})
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        staging = list(tmp_path.glob(".rel.staging-*/data/sft"))
        if staging and len(list(staging[0].glob("*.parquet"))) >= 20:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the build ended before it was killed"
    assert any(n.startswith(".rel.staging-") for n in _beside(out))  # what the kill left behind
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == old  # no half release

    code, stdout, err = run(*args)
    assert code == 0 and "wrote release toy 2.0.0" in stdout, err
    assert _beside(out) == ["big", "rel", "small"]
    _complete(out, 800, "2.0.0")


def _leave_a_killed_build(out: Path, pid: int) -> None:
    """What builds killed at different moments leave beside `out`."""
    for staging in (f".{out.name}.staging-{pid}-k1ll3d_x", f".{out.name}.k3j4h5g6"):  # this and earlier versions
        (out.parent / staging / "data/sft").mkdir(parents=True)
        (out.parent / staging / "data/sft/train-00000-of-00009.parquet").write_bytes(b"PAR1 half")
    (out.parent / f".{out.name}.lock").write_text(f"{pid}\n")  # its lock file (the lock died with it)


def test_leftovers_of_killed_builds_go_and_a_release_moved_aside_comes_back(tmp_path, run):
    make_sft_stage(tmp_path / "good", sft_rows(3))
    out = tmp_path / "rel"
    assert run(*_build_args(tmp_path / "good", out, "1.0.0"))[0] == 0
    release = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # killed between the two renames of the swap: the release is aside, the new one in staging
    out.rename(tmp_path / ".rel.previous")
    _leave_a_killed_build(out, pid=4_000_000)
    (tmp_path / ".rel.notes").mkdir()  # not a build's: left alone
    (tmp_path / ".rel.abcdefgh").mkdir()
    (tmp_path / ".rel.abcdefgh/mine.txt").write_text("mine")
    # a build that fails after it took the lock still cleans up and puts the release back
    rows = [{**row, "split": "bad split!"} for row in sft_rows(2)]
    from imaginarium.stage import write_stage

    write_stage(tmp_path / "bad", "build-sft", {}, {}, rows, extra={"release_config": "sft"})
    code, _, err = run(*_build_args(tmp_path / "bad", out, "2.0.0"))
    assert code == 2 and "column split" in err and len(err.strip().splitlines()) == 1
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == release
    assert _beside(out) == [".rel.abcdefgh", ".rel.notes", "bad", "good", "rel"]
    # and after a kill that left staging next to a complete release, a re-run builds and leaves nothing
    _leave_a_killed_build(out, pid=4_000_001)
    code, _, err = run(*_build_args(tmp_path / "good", out, "1.1.0"))
    assert code == 0, err
    assert _beside(out) == [".rel.abcdefgh", ".rel.notes", "bad", "good", "rel"]
    _complete(out, 3, "1.1.0")


def test_a_live_build_of_the_same_output_is_refused_and_its_staging_kept(tmp_path, run):
    import fcntl

    make_sft_stage(tmp_path / "good", sft_rows(3))
    out = tmp_path / "rel"
    staging = tmp_path / f".rel.staging-{os.getpid()}-live1234"
    (staging / "data").mkdir(parents=True)
    with open(tmp_path / ".rel.lock", "w") as lock:  # a build in progress holds the lock
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        code, _, err = run(*_build_args(tmp_path / "good", out, "1.0.0"))
        assert code == 2 and f"another `imaginarium release build` (pid {os.getpid()})" in err, err
        assert staging.is_dir() and not out.exists()
    code, _, err = run(*_build_args(tmp_path / "good", out, "1.0.0"))  # its process died: the lock went with it
    assert code == 0, err
    assert _beside(out) == ["good", "rel"]
    _complete(out, 3, "1.0.0")
