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

The token comes from HF_TOKEN or the huggingface_hub login; it is passed to `HfApi` and never
printed, logged or written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
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
    """Publish `release` to the dataset repo `repo_id` and tag it; with `dry_run` only plan."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    release = Path(release)
    if not _REPO_ID.fullmatch(repo_id):
        raise InputError(f"repo {repo_id!r} must be OWNER/NAME", where="--repo")
    read_release(release)
    if not dry_run and not (token or get_token()):
        raise InputError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`", where="--repo")
    api = HfApi(token=token)
    if dry_run:
        return plan_publish(api, release, repo_id)
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    plan = plan_publish(api, release, repo_id)
    if plan.action == "nothing":
        return plan
    commit = plan.head
    if plan.action == "commit and tag":
        files = local_files(release)
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(files[p])) for p in plan.added + plan.changed]
        operations += [CommitOperationDelete(path_in_repo=p) for p in plan.deleted]
        info = api.create_commit(repo_id, operations, repo_type=REPO_TYPE, revision=BRANCH,
                                 commit_message=f"Release {plan.tag}", parent_commit=plan.head,
                                 commit_description=f"{len(plan.added)} added, {len(plan.changed)} changed, "
                                                    f"{len(plan.deleted)} deleted")
        commit = info.oid
    api.create_tag(repo_id, repo_type=REPO_TYPE, tag=plan.tag, revision=commit, tag_message=f"Release {plan.tag}")
    plan.commit = commit
    log.info("published %s to %s at %s", plan.tag, repo_id, commit)
    return plan
