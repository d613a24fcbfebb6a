"""A strict, in-memory, Hub-compatible HTTP server for tests (stdlib only).

The Hugging Face Hub cannot be reached from here, and a mock of `HfApi` would test nothing of
what matters (the wire protocol, LFS, parent commits, tags). So the tests talk to this real
HTTP server on 127.0.0.1 with the real `huggingface_hub` and `datasets` clients. It implements
the routes those clients call when they create a repo, commit (preupload, LFS batch / upload /
verify, NDJSON commit), tag, list refs and trees, read paths-info and repo info, and download
(resolve with ETag / X-Repo-Commit / X-Linked-Etag and Range). It is strict where the Hub is:
LFS uploads must match their sha256 and size, a stale `parentCommit` gets 412, an existing tag
409, and errors carry the Hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound).

Not implemented (a request for them gets 501 and is listed in `unhandled`): Xet storage, pull
requests (`create_pr`), gated repos, branches other than `main`, copies between repos, spaces'
runtime, and the datasets-server API.

Every request is recorded (method, path, query, status, never the Authorization header) so tests
can assert what the clients really did; `fail(...)` injects server errors for fault tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

REPO_TYPES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Files the Hub stores with LFS by default (its initial .gitattributes), plus anything large or binary.
LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".bin", ".safetensors", ".zip", ".gz", ".zst")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:
        """The git blob id: of the content, or of the LFS pointer for LFS files (as git stores it)."""
        return git_blob_oid(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    title: str
    date: str


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, X-Error-Code, JSON body)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Fault:
    route: str  # "commit", "lfs_upload", "tag", ...
    times: int
    status: int


@dataclass
class Request:
    method: str
    route: str
    path: str
    query: str
    status: int


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _front_matter(text: str) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    return yaml.safe_load(match.group(1)) or {}


class HubState:
    """Repos, LFS objects, tags, the token, injected faults and the request log."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.unhandled: list[Request] = []
        self.lock = threading.RLock()
        self._secret = hashlib.sha256(f"{token}-{time.time()}".encode()).hexdigest()

    # -- helpers used by the handler ------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str, authorized: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        revision = unquote(revision)
        oid = repo.branches.get(revision) or repo.tags.get(revision)
        if oid is None and revision.startswith("refs/heads/"):
            oid = repo.branches.get(revision.removeprefix("refs/heads/"))
        if oid is None and revision.startswith("refs/tags/"):
            oid = repo.tags.get(revision.removeprefix("refs/tags/"))
        if oid is None and revision in repo.commits:
            oid = revision
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def add_commit(self, repo: Repo, parent: str | None, files: dict[str, Blob], title: str) -> Commit:
        seed = json.dumps([parent, sorted((p, b.oid) for p, b in files.items()), title, len(repo.commits), time.time()])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, files, title, _now())
        repo.commits[commit.oid] = commit
        return commit

    def take_fault(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def sign(self, repo: Repo, oid: str) -> str:
        return hashlib.sha256(f"{self._secret}/{repo.type}/{repo.id}/{oid}".encode()).hexdigest()[:32]


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing --------------------------------------------------------------------------
    def log_message(self, *args) -> None:  # keep test output quiet; requests go to state.requests
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def state(self) -> HubState:
        return self.server.state

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        route, status = "unknown", 500
        try:
            for pattern, route_method, name in ROUTES:
                match = pattern.fullmatch(url.path)
                if match and method in (route_method, "HEAD" if route_method == "GET" else None):
                    route = name
                    fault = self.state.take_fault(name)
                    if fault is not None:
                        raise HubError(fault.status, f"injected fault on {name}")
                    with self.state.lock:
                        status = getattr(self, f"_{name}")(**match.groupdict())
                    break
            else:
                raise HubError(501, f"not implemented by the test Hub: {method} {url.path}")
        except HubError as exc:
            status = exc.status
            self._send_json(exc.status, {"error": exc.message}, {"X-Error-Code": exc.code, "X-Error-Message": exc.message})
        record = Request(method, route, url.path, url.query, status)
        self.state.requests.append(record)
        if status == 501:
            self.state.unhandled.append(record)

    def _send(self, status: int, body: bytes, headers: dict[str, str | None] | None = None, content_type: str = "application/json") -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            if value is not None:
                self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _send_json(self, status: int, value: Any, headers: dict[str, str | None] | None = None) -> int:
        return self._send(status, json.dumps(value).encode(), headers)

    @property
    def authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.state.token}"

    def _require_write(self) -> None:
        if not self.headers.get("Authorization"):
            raise HubError(401, "You must be authenticated to do this")
        if not self.authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"body is not JSON: {exc}") from None

    def _repo(self, type: str, repo_id: str) -> Repo:
        return self.state.repo(type.removesuffix("s") if type else "model", repo_id, self.authorized)

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # -- repos -----------------------------------------------------------------------------
    def _create_repo(self) -> int:
        self._require_write()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        if not payload.get("organization") or not payload.get("name"):
            raise HubError(400, "this test Hub needs an explicit namespace (OWNER/NAME)")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self._base()}/{REPO_TYPES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.state.repos:  # the Hub's 409 still names the repo's url
            return self._send_json(409, {"error": "You already created this repo", "url": url},
                                   {"X-Error-Message": "You already created this repo"})
        repo = Repo(repo_type, repo_id, payload.get("visibility") == "private" or bool(payload.get("private")), _now())
        initial = self.state.add_commit(repo, None, {".gitattributes": Blob(GITATTRIBUTES, False)}, "initial commit")
        repo.branches["main"] = initial.oid
        self.state.repos[(repo_type, repo_id)] = repo
        return self._send_json(200, {"url": url, "name": repo_id})

    def _repo_info(self, type: str, repo_id: str, revision: str | None = None) -> int:
        repo = self._repo(type, repo_id)
        commit = self.state.resolve(repo, revision or "main")
        blobs = "blobs" in self.query
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=len(blob.data), blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        readme = commit.files.get("README.md")
        card = _front_matter(readme.data.decode("utf-8", "replace")) if readme else None
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": repo.id.split("/")[0],
            "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            **({"cardData": card} if card is not None else {}),
        }
        return self._send_json(200, info)

    def _validate_yaml(self) -> int:
        payload = self._json_body()
        try:
            metadata = _front_matter(payload.get("content", ""))
        except yaml.YAMLError as exc:
            return self._send_json(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
        errors = []
        if metadata is not None and not isinstance(metadata, dict):
            errors.append({"message": "metadata must be a mapping"})
        elif metadata:
            for config in metadata.get("configs", []) or []:
                if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
                    errors.append({"message": f"configs: each entry needs config_name and data_files: {config!r}"})
        if errors:
            return self._send_json(400, {"errors": errors})
        warnings = [] if metadata else [{"message": "empty or missing yaml metadata in repo card"}]
        return self._send_json(200, {"errors": [], "warnings": warnings})

    def _agent_harnesses(self) -> int:
        """The registry huggingface_hub fetches once a day to name AI agents: empty here."""
        return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})

    # -- refs, tree, paths-info ------------------------------------------------------------
    def _refs(self, type: str, repo_id: str) -> int:
        repo = self._repo(type, repo_id)

        def refs(kind: str, names: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(names.items())]

        return self._send_json(200, {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags),
                                     "converts": [], "pullRequests": []})

    @staticmethod
    def _entry(path: str, commit: Commit) -> dict[str, Any]:
        blob = commit.files.get(path)
        if blob is not None:
            entry = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
            return entry
        children = sorted(p for p in commit.files if p.startswith(path + "/"))
        tree = hashlib.sha1("\n".join(f"{p} {commit.files[p].oid}" for p in children).encode()).hexdigest()
        return {"type": "directory", "oid": tree, "size": 0, "path": path}

    @staticmethod
    def _folders(commit: Commit) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in commit.files for i in range(1, p.count("/") + 1)}

    def _tree(self, type: str, repo_id: str, revision: str, path: str | None = None) -> int:
        commit = self.state.resolve(self._repo(type, repo_id), revision)
        path = unquote(path or "").strip("/")
        folders = self._folders(commit)
        if path and path not in folders:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        names = {p for p in set(commit.files) | folders if p.startswith(prefix)}
        if not recursive:
            names = {p for p in names if "/" not in p[len(prefix):]}
        return self._send_json(200, [self._entry(p, commit) for p in sorted(names)])

    def _paths_info(self, type: str, repo_id: str, revision: str) -> int:
        commit = self.state.resolve(self._repo(type, repo_id), revision)
        form = parse_qs(self.body.decode())
        folders = self._folders(commit)
        paths = [p.strip("/") for p in form.get("paths", [])]
        return self._send_json(200, [self._entry(p, commit) for p in paths if p in commit.files or p in folders])

    # -- commits and LFS -------------------------------------------------------------------
    def _preupload(self, type: str, repo_id: str, revision: str) -> int:
        self._require_write()
        repo = self._repo(type, repo_id)
        if "create_pr" in self.query:
            raise HubError(501, "pull requests are not implemented by the test Hub")
        commit = self.state.resolve(repo, revision)
        files = []
        for item in self._json_body()["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE or b"\0" in sample
            existing = commit.files.get(item["path"])
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._send_json(200, {"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, prefix: str, repo_id: str) -> int:
        self._require_write()
        repo = self._repo(prefix.rstrip("/"), repo_id)
        payload = self._json_body()
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "this test Hub supports only basic LFS uploads")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
                objects.append({"oid": str(oid), "size": int(size or 0), "error": {"code": 422, "message": "bad oid or size"}})
            elif oid in repo.lfs:
                objects.append({"oid": oid, "size": size})
            else:
                href = f"{self._base()}/__lfs/{repo.type}/{repo.id}/{oid}"
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{href}?size={size}&sig={self.state.sign(repo, oid)}"},
                    "verify": {"href": f"{href}/verify", "header": {}},
                }})
        return self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                          content_type="application/vnd.git-lfs+json")

    def _lfs_upload(self, type: str, repo_id: str, oid: str) -> int:
        repo = self.state.repos.get((type, repo_id))
        if repo is None or self.query.get("sig", [""])[0] != self.state.sign(repo, oid):
            raise HubError(403, "bad or missing upload signature")
        if str(len(self.body)) != self.query.get("size", [""])[0]:
            raise HubError(400, f"size mismatch: got {len(self.body)} bytes")
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "sha256 mismatch: the uploaded content does not match its oid")
        repo.lfs[oid] = self.body
        return self._send(200, b"", content_type="text/plain")

    def _lfs_verify(self, type: str, repo_id: str, oid: str) -> int:
        self._require_write()
        repo = self.state.repo(type, repo_id, True)
        payload = self._json_body()
        data = repo.lfs.get(oid)
        if payload.get("oid") != oid or data is None:
            raise HubError(404, f"LFS object {oid} not found")
        if len(data) != payload.get("size"):
            raise HubError(422, "LFS object size does not match")
        return self._send_json(200, {"success": True})

    def _commit(self, type: str, repo_id: str, revision: str) -> int:
        self._require_write()
        repo = self._repo(type, repo_id)
        if "create_pr" in self.query:
            raise HubError(501, "pull requests are not implemented by the test Hub")
        branch = unquote(revision)
        if branch not in repo.branches:
            raise HubError(404, f"branch {branch} not found (only existing branches can be committed to)", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head.oid):
            raise HubError(412, f"parentCommit {header['parentCommit']} is not the head of {branch} ({head.oid})")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                files[path] = Blob(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                data = repo.lfs.get(value.get("oid"))
                if data is None or ("size" in value and value["size"] != len(data)):
                    raise HubError(422, f"{path}: LFS object {value.get('oid')} was not uploaded")
                files[path] = Blob(data, True)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(501, f"commit operation {key!r} is not implemented by the test Hub")
        if files == head.files:
            raise HubError(400, "No files have been modified since last commit")
        commit = self.state.add_commit(repo, head.oid, files, header.get("summary", ""))
        repo.branches[branch] = commit.oid
        url = f"{self._base()}/{REPO_TYPES[repo.type]}{repo.id}/commit/{commit.oid}"
        return self._send_json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": ""})

    def _create_tag(self, type: str, repo_id: str, revision: str) -> int:
        self._require_write()
        repo = self._repo(type, repo_id)
        commit = self.state.resolve(repo, revision)
        tag = self._json_body().get("tag")
        if not tag or not re.fullmatch(r"[A-Za-z0-9._\-]+", tag):
            raise HubError(400, f"invalid tag name {tag!r}")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.oid
        return self._send_json(200, {"name": tag, "targetCommit": commit.oid})

    def _delete_tag(self, type: str, repo_id: str, tag: str) -> int:
        self._require_write()
        repo = self._repo(type, repo_id)
        if repo.tags.pop(unquote(tag), None) is None:
            raise HubError(404, f"Tag {tag} not found", "RevisionNotFound")
        return self._send_json(200, {})

    # -- downloads -------------------------------------------------------------------------
    def _resolve_file(self, prefix: str, repo_id: str, revision: str, path: str) -> int:
        repo = self._repo(prefix.rstrip("/"), repo_id)
        commit = self.state.resolve(repo, revision)
        blob = commit.files.get(unquote(path))
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {
            "ETag": f'"{blob.etag}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes",
            **({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.data))} if blob.lfs else {}),
        }
        data, status = blob.data, 200
        requested = self.headers.get("Range")
        if requested:
            start, end = _parse_range(requested, len(data))
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return self._send(status, data, headers, content_type="application/octet-stream")


def _parse_range(header: str, size: int) -> tuple[int, int]:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.groups() == ("", ""):
        raise HubError(416, f"unsupported Range {header!r}")
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise HubError(416, f"Range {header!r} not satisfiable for {size} bytes")
    return start, end


_TYPE = r"(?P<type>models|datasets|spaces)"
_REPO = r"(?P<repo_id>[\w.\-]+/[\w.\-]+)"
_PREFIX = r"(?P<prefix>datasets/|spaces/)?"
ROUTES = [(re.compile(pattern), method, name) for pattern, method, name in [
    (r"/api/repos/create", "POST", "create_repo"),
    (r"/api/validate-yaml", "POST", "validate_yaml"),
    (r"/api/agent-harnesses", "GET", "agent_harnesses"),
    (rf"/api/{_TYPE}/{_REPO}/preupload/(?P<revision>[^/]+)", "POST", "preupload"),
    (rf"/api/{_TYPE}/{_REPO}/commit/(?P<revision>[^/]+)", "POST", "commit"),
    (rf"/api/{_TYPE}/{_REPO}/tag/(?P<revision>[^/]+)", "POST", "create_tag"),
    (rf"/api/{_TYPE}/{_REPO}/tag/(?P<tag>[^/]+)", "DELETE", "delete_tag"),
    (rf"/api/{_TYPE}/{_REPO}/refs", "GET", "refs"),
    (rf"/api/{_TYPE}/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", "GET", "tree"),
    (rf"/api/{_TYPE}/{_REPO}/paths-info/(?P<revision>[^/]+)", "POST", "paths_info"),
    (rf"/api/{_TYPE}/{_REPO}(?:/revision/(?P<revision>[^/]+))?", "GET", "repo_info"),
    (rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch", "POST", "lfs_batch"),
    (r"/__lfs/(?P<type>model|dataset|space)/" + _REPO + r"/(?P<oid>[0-9a-f]{64})", "PUT", "lfs_upload"),
    (r"/__lfs/(?P<type>model|dataset|space)/" + _REPO + r"/(?P<oid>[0-9a-f]{64})/verify", "POST", "lfs_verify"),
    (rf"/{_PREFIX}{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", "GET", "resolve_file"),
]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubServer:
    """The server in a background thread: `with HubServer(token) as hub: hub.url ...`."""

    def __init__(self, token: str):
        self.state = HubState(token)
        self._httpd = _Server(("127.0.0.1", 0), HubHandler)  # port 0: the OS picks a free port
        self._httpd.state = self.state
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- test helpers ----------------------------------------------------------------------
    def fail(self, route: str, *, times: int = 1, status: int = 500) -> None:
        """Answer the next `times` requests of `route` (a handler name, e.g. "commit") with `status`."""
        self.state.faults.append(Fault(route, times, status))

    def routes(self, status: int | None = None) -> list[str]:
        return [r.route for r in self.state.requests if status is None or r.status == status]

    def tags(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        return dict(self.state.repos[(repo_type, repo_id)].tags)

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        repo = self.state.repos[(repo_type, repo_id)]
        return {p: b.data for p, b in self.state.resolve(repo, quote(revision, safe="")).files.items()}

    def commits(self, repo_id: str, repo_type: str = "dataset") -> list[Commit]:
        return list(self.state.repos[(repo_type, repo_id)].commits.values())
