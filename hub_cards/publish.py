"""Publish a release directory to a Hub dataset repo: one commit, then the tag vX.Y.Z on it.

Semantics (why): users pin training to a tag, so a tag must never move and must never point to
a half-made release. Hence:
- the whole release goes in ONE commit on `main` (files of the previous version that this one
  lacks are deleted in the same commit), made against the head we planned from (`parent_commit`),
  and only after it succeeded is the tag created on that exact commit;
- an existing tag is never moved: same content is a no-op, other content is refused;
- content equal to the latest tagged release (file hashes; the card and the version field of
  release.json, which only name the version, are left out) makes no commit and no tag:
  re-publishing must not create noise;
- an interrupted publish (commit failed, or commit made but tag not) is completed by running the
  same command again: the plan then finds `main` already holding the content and only tags it.

Every failure of a Hub request (an HTTP error, a refused or dropped connection, a timeout) is
raised as `HubFailure`, an InputError (one line, exit 2) that says which step failed, what state
the repo is left in and whether running the same command again completes the release (transient
failures) or will not help (a refused token, a wrong repo name). Its text never holds the token:
messages of huggingface_hub may echo headers, so anything shaped like a token is masked.

The token comes from HF_TOKEN or the huggingface_hub login; it is passed to `HfApi` and never
printed, logged or written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.hub_cards.release import RELEASE_FILE, read_release

log = logging.getLogger(__name__)

REPO_TYPE = "dataset"
BRANCH = "main"
# Files the Hub manages itself in every repo; a release never deletes them.
HUB_OWNED = {".gitattributes"}
VERSION_TAG = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_REPO_ID = re.compile(r"[\w.\-]+/[\w.\-]+")
# What a token looks like in a message (Hub tokens start with hf_), and credentials in a URL.
_TOKEN_LIKE = re.compile(r"\bhf_[A-Za-z0-9_\-]{4,}")
_BEARER = re.compile(r"(?i)\b(bearer|token)(\s*[:=]?\s*)[^\s'\",;]{8,}")
_URL_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")
# HTTP statuses a later identical request can succeed on: timeouts, conflicts with a concurrent
# writer (the re-run plans again), rate limits, and every server error (507 included).
_TRANSIENT_STATUS = {408, 409, 412, 423, 425, 429}
_UPLOAD_WRAPPER = re.compile(r"Error while uploading '(?P<path>.+)' to the Hub")


class HubFailure(InputError):
    """A Hub request of `publish` failed; the text says what failed and whether a re-run helps."""

    def __init__(self, message: str, *, rerun_completes: bool, status: int | None = None):
        super().__init__(message)
        self.rerun_completes = rerun_completes
        self.status = status


@dataclass
class Plan:
    """What publishing would do: the file changes against `main` and the action."""

    repo_id: str
    tag: str
    action: str  # "commit and tag" | "tag" | "nothing"
    reason: str
    head: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    commit: str | None = None


def local_files(release: Path) -> dict[str, Path]:
    """Every file of the release directory by its path in the repo."""
    return {p.relative_to(release).as_posix(): p for p in sorted(release.rglob("*")) if p.is_file()}


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _same(local: Path, remote) -> bool:
    """Whether a local file equals a remote one: sha256 for LFS files, git blob id otherwise."""
    data = local.read_bytes()
    if remote.lfs is not None:
        return hashlib.sha256(data).hexdigest() == remote.lfs.sha256
    return _git_blob_oid(data) == remote.blob_id


def _remote_files(api, repo_id: str, revision: str) -> dict[str, Any]:
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=revision, recursive=True)
    return {entry.path: entry for entry in tree if isinstance(entry, RepoFile) and entry.path not in HUB_OWNED}


def _equal(files: dict[str, Path], remote: dict[str, Any]) -> bool:
    return set(files) == set(remote) and all(_same(files[p], remote[p]) for p in files)


def _same_content(api, repo_id: str, revision: str, files: dict[str, Path], remote: dict[str, Any]) -> bool:
    """Whether a release holds the same data as a published one, whatever its version number.

    The card and release.json name the version, so they are compared without it: the card not
    at all (it is rendered from the rest), release.json with its version field removed.
    """
    from huggingface_hub import hf_hub_download

    stamped = {"README.md", RELEASE_FILE}
    if set(files) != set(remote) or not all(_same(files[p], remote[p]) for p in files if p not in stamped):
        return False
    if RELEASE_FILE not in remote:
        return False
    theirs = json.loads(Path(hf_hub_download(repo_id, RELEASE_FILE, repo_type=REPO_TYPE, revision=revision)).read_text("utf-8"))
    ours = json.loads(files[RELEASE_FILE].read_text("utf-8"))
    return {**theirs, "version": None} == {**ours, "version": None}


def version_key(tag: str) -> tuple[int, ...]:
    match = VERSION_TAG.fullmatch(tag)
    return tuple(int(x) for x in match.groups()) if match else ()


def plan_publish(api, release: Path, repo_id: str) -> Plan:
    """Compare the release with the repo (tags and `main`) and decide what to do."""
    from huggingface_hub.errors import RepositoryNotFoundError

    info = read_release(release)
    tag = f"v{info['version']}"
    files = local_files(release)
    try:
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    except RepositoryNotFoundError:
        return Plan(repo_id, tag, "commit and tag", "the repo does not exist yet (it will be created)",
                    added=sorted(files))
    tags = {t.name: t.target_commit for t in refs.tags}
    if tag in tags:
        if _equal(files, _remote_files(api, repo_id, tags[tag])):
            return Plan(repo_id, tag, "nothing", f"{tag} is already published with this content", commit=tags[tag])
        raise InputError(f"tag {tag} already exists on {repo_id} with other content; tags are never moved: "
                         "build the release with a new --version", where=str(release))
    released = sorted((t for t in tags if VERSION_TAG.fullmatch(t)), key=version_key)
    if released and _same_content(
        api, repo_id, tags[released[-1]], files, _remote_files(api, repo_id, tags[released[-1]])
    ):
        return Plan(repo_id, tag, "nothing",
                    f"the content equals the latest release {released[-1]}; no commit and no tag made",
                    commit=tags[released[-1]])
    head = next((b.target_commit for b in refs.branches if b.name == BRANCH), None)
    remote = _remote_files(api, repo_id, head) if head else {}
    plan = Plan(repo_id, tag, "commit and tag", f"new release {tag}", head=head)
    for path, local in files.items():
        if path not in remote:
            plan.added.append(path)
        elif _same(local, remote[path]):
            plan.unchanged.append(path)
        else:
            plan.changed.append(path)
    plan.deleted = sorted(set(remote) - set(files))
    if not (plan.added or plan.changed or plan.deleted):
        plan.action, plan.reason = "tag", f"{BRANCH} already holds this content (an earlier publish stopped before tagging)"
    return plan


def publish(release: str | Path, repo_id: str, *, private: bool = False, dry_run: bool = False,
            token: str | None = None) -> Plan:
    """Publish `release` to the dataset repo `repo_id` and tag it; with `dry_run` only plan.

    Raises InputError for a bad release directory, repo id or missing token (before any request)
    and HubFailure for a failed Hub request; in no case is a tag moved, or made on a partial commit.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    release = Path(release)
    if not _REPO_ID.fullmatch(repo_id):
        raise InputError(f"repo {repo_id!r} must be OWNER/NAME", where="--repo")
    info = read_release(release)
    version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, str) or not VERSION_TAG.fullmatch(f"v{version}"):
        raise InputError(f"{RELEASE_FILE} has no version X.Y.Z; build the release again with "
                         "`imaginarium release build`", where=str(release))
    tag = f"v{version}"
    secret = token or get_token()
    if not dry_run and not secret:
        raise InputError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`", where="--repo")
    api = HfApi(token=token)
    hub = _Steps(f"planning {tag} for {repo_id}" if dry_run else f"publishing {tag} to {repo_id}",
                 repo_id, api.endpoint, secret)
    untouched = "nothing was uploaded or tagged"
    if dry_run:
        with hub.step("reading the repo's tags and files", untouched, ""):
            return plan_publish(api, release, repo_id)
    with hub.step("creating the repo", untouched, ""):
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    with hub.step("reading the repo's tags and files", untouched, ""):
        plan = plan_publish(api, release, repo_id)
    if plan.action == "nothing":
        return plan
    commit = plan.head
    if plan.action == "commit and tag":
        files = local_files(release)
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(files[p])) for p in plan.added + plan.changed]
        operations += [CommitOperationDelete(path_in_repo=p) for p in plan.deleted]
        with hub.step("uploading the files", "nothing was committed or tagged",
                      "the upload resumes (files already uploaded are skipped)", commit_step=True):
            commit_info = api.create_commit(repo_id, operations, repo_type=REPO_TYPE, revision=BRANCH,
                                     commit_message=f"Release {plan.tag}", parent_commit=plan.head,
                                     commit_description=f"{len(plan.added)} added, {len(plan.changed)} changed, "
                                                        f"{len(plan.deleted)} deleted")
        commit = commit_info.oid
    with hub.step(f"tagging commit {str(commit)[:12]} as {plan.tag}",
                  f"commit {str(commit)[:12]} holds the release but is not tagged yet", "it only tags that commit"):
        api.create_tag(repo_id, repo_type=REPO_TYPE, tag=plan.tag, revision=commit, tag_message=f"Release {plan.tag}")
    plan.commit = commit
    log.info("published %s to %s at %s", plan.tag, repo_id, commit)
    return plan


class _Steps:
    """Turns a failed Hub request of one step of `publish` into a one-line HubFailure."""

    def __init__(self, action: str, repo_id: str, endpoint: str, secret: str | None):
        self.action, self.repo_id, self.endpoint, self.secret = action, repo_id, endpoint, secret

    @contextmanager
    def step(self, what: str, state: str, resume: str, *, commit_step: bool = False) -> Iterator[None]:
        """Run one step; `state` says what a failure leaves, `resume` what a re-run then does."""
        try:
            yield
        except InputError:
            raise
        except Exception as exc:
            failure = self.failure(exc, what, state, resume, commit_step)
            if failure is None:
                raise
            raise failure from exc

    def failure(self, exc: BaseException, what: str, state: str, resume: str, commit_step: bool) -> HubFailure | None:
        """The HubFailure for `exc`, or None when it is no Hub failure (a bug: it keeps its traceback)."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

        any_transport, connect, timeout = _transport_errors()
        cause, uploading = None, None
        for error in _chain(exc):
            match = _UPLOAD_WRAPPER.search(str(error)) if isinstance(error, RuntimeError) else None
            uploading = uploading or (match.group("path") if match else None)
            if isinstance(error, (HfHubHTTPError, OfflineModeIsEnabled, *any_transport)):
                cause = error
                break
        if cause is None:
            if isinstance(exc, OSError) and exc.filename:  # a local file went missing: not the Hub
                problem = f"cannot read {self._clean(str(exc.filename))} ({self._clean(exc.strerror or str(exc))})"
                return HubFailure(f"{self.action} failed while {what}: {problem}; {state}", rerun_completes=False)
            return None
        url = _request_url(cause)
        if commit_step:  # create_commit: preupload and LFS uploads, then the commit request itself
            if uploading:
                what = f"uploading {self._clean(uploading)!r}"
            elif url and "/commit/" in url:
                what = "making the commit"
                state, resume = "no commit was made and nothing was tagged", "it commits and tags"
                if not isinstance(cause, HfHubHTTPError):  # the request may have reached the Hub
                    state = "the commit may or may not have been made; nothing was tagged"
                    resume = "it tags the commit if it was made, or makes it and tags it"
        head = f"{self.action} failed while {what}"
        left = f"{state} and earlier tags are untouched"
        again = "run the same command again to finish" + (f": {resume}" if resume else "")
        if isinstance(cause, OfflineModeIsEnabled):
            return HubFailure(f"{head}: HF_HUB_OFFLINE is set, so no request may reach the Hub; {left}; "
                              "run it again with HF_HUB_OFFLINE=0", rerun_completes=False)
        if not isinstance(cause, HfHubHTTPError):
            where = self._clean(_origin(url) or self.endpoint)
            detail = self._clean(str(cause) or type(cause).__name__)
            if isinstance(cause, connect):
                problem = f"cannot reach the Hub at {where} ({detail}): check HF_ENDPOINT and the network"
            elif isinstance(cause, timeout):
                problem = f"the Hub at {where} did not answer in time ({detail})"
            else:
                problem = f"the connection to the Hub at {where} dropped ({detail})"
            return HubFailure(f"{head}: {problem}; {left}; {again}", rerun_completes=True)
        status = cause.response.status_code if cause.response is not None else None
        answer = self._clean(_http_answer(cause, status))
        if status in (401, 403) and not isinstance(cause, RepositoryNotFoundError):
            return HubFailure(f"{head}: the token was refused ({answer}); {left}; a re-run will not help; check "
                              f"HF_TOKEN (or `hf auth login`): the token must be valid and allowed to write to "
                              f"{self.repo_id}", rerun_completes=False, status=status)
        if isinstance(cause, RepositoryNotFoundError) or (status == 404 and not commit_step):
            return HubFailure(f"{head}: repo {self.repo_id} was not found ({answer}); {left}; a re-run will not "
                              "help; check the repo name given to --repo (OWNER/NAME) and that the token may see it",
                              rerun_completes=False, status=status)
        if status is not None and (status >= 500 or status in _TRANSIENT_STATUS):
            return HubFailure(f"{head}: the Hub answered {answer}; {left}; {again}", rerun_completes=True, status=status)
        return HubFailure(f"{head}: the Hub refused the request ({answer}); {left}; a re-run will not help until "
                          "that is fixed", rerun_completes=False, status=status)

    def _clean(self, text: str) -> str:
        """Text that comes from the Hub, the client or the network: one short line, no credentials."""
        return _short(redact(text, self.secret))


def redact(text: str, secret: str | None = None) -> str:
    """`text` without the token `secret`, anything shaped like a Hub token, or URL credentials."""
    if secret:
        text = text.replace(secret, "***")
    text = _TOKEN_LIKE.sub("hf_***", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _URL_USERINFO.sub("***@", text)


def _transport_errors() -> tuple[tuple[type[Exception], ...], type[Exception], type[Exception]]:
    """(every transport error, connect errors, timeouts) of the HTTP client huggingface_hub uses."""
    try:
        import httpx2 as client
    except ImportError:  # older huggingface_hub releases use httpx, older still requests
        try:
            import httpx as client  # type: ignore[no-redef]
        except ImportError:
            import requests

            exceptions = requests.exceptions
            return ((exceptions.ConnectionError, exceptions.Timeout, exceptions.ChunkedEncodingError),
                    exceptions.ConnectionError, exceptions.Timeout)
    return (client.TransportError,), client.ConnectError, client.TimeoutException


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _request_url(error: BaseException) -> str | None:
    for source in (lambda: error.response.request.url, lambda: error.request.url):  # type: ignore[attr-defined]
        try:
            return str(source())
        except Exception:  # no response, or a request that was never set
            continue
    return None


def _origin(url: str | None) -> str | None:
    match = re.match(r"[a-z][a-z0-9+.\-]*://[^/?#]+", url or "")
    return match.group(0) if match else None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _http_answer(error, status: int | None) -> str:
    """'HTTP 507 Insufficient Storage: <the Hub's message>'."""
    phrase = getattr(error.response, "reason_phrase", "") if error.response is not None else ""
    lines = dict.fromkeys(line.strip() for line in (error.server_message or "").splitlines() if line.strip())
    message = "; ".join(lines)
    return " ".join(x for x in ("HTTP", str(status or "?"), phrase) if x) + (f": {message}" if message else "")
