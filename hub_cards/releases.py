"""List the tagged releases of a Hub repo, and diff two releases row by row.

A row's identity is the hash of its canonical JSON, so a diff says which rows were added and
removed per config and per API, whatever the shard layout or row order. A release is named by
a local release directory or by `OWNER/NAME@vX.Y.Z` on the Hub.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.progress import track

from imaginarium.errors import InputError
from imaginarium.hub_cards.publish import REPO_TYPE, VERSION_TAG, version_key
from imaginarium.hub_cards.release import RELEASE_FILE, read_release
from imaginarium.jsonutil import content_hash

_HUB_REF = re.compile(r"(?P<repo>[\w.\-]+/[\w.\-]+)@(?P<revision>[\w.\-]+)")


def list_releases(repo_id: str, *, token: str | None = None) -> list[dict[str, Any]]:
    """The repo's version tags, oldest first, with their commit and row counts per config."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    except RepositoryNotFoundError as exc:
        raise InputError("no such dataset repo (or no access to it)", where=repo_id) from exc
    releases = []
    for ref in sorted((t for t in refs.tags if VERSION_TAG.fullmatch(t.name)), key=lambda t: version_key(t.name)):
        try:
            path = hf_hub_download(repo_id, RELEASE_FILE, repo_type=REPO_TYPE, revision=ref.target_commit, token=token)
            configs = {name: c["rows"] for name, c in json.loads(Path(path).read_text("utf-8"))["configs"].items()}
        except EntryNotFoundError:
            configs = None  # tagged by hand, not by `imaginarium publish`
        releases.append({"tag": ref.name, "commit": ref.target_commit, "configs": configs,
                         "rows": sum(configs.values()) if configs is not None else None})
    return releases


def fetch_release(spec: str, *, token: str | None = None) -> Path:
    """A local release directory for `spec`: a directory as is, or OWNER/NAME@TAG downloaded."""
    path = Path(spec)
    if path.is_dir():
        read_release(path)
        return path
    match = _HUB_REF.fullmatch(spec)
    if not match:
        raise InputError("neither a release directory nor OWNER/NAME@vX.Y.Z", where=spec)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(match["repo"], repo_type=REPO_TYPE, revision=match["revision"], token=token,
                                      allow_patterns=["data/**", RELEASE_FILE]))
    except RepositoryNotFoundError as exc:
        raise InputError("no such dataset repo (or no access to it)", where=spec) from exc
    except RevisionNotFoundError as exc:
        raise InputError(f"no revision {match['revision']!r} in {match['repo']}", where=spec) from exc


def row_hashes(release: Path) -> dict[str, Counter]:
    """Per config: a multiset of (api, row hash) over all its splits."""
    info = read_release(release)
    files = [(name, file) for name, config in info["configs"].items()
             for split in config["splits"].values() for file in split["files"]]
    configs: dict[str, Counter] = {name: Counter() for name in info["configs"]}
    for name, file in track(files, description=f"hashing rows of {release.name}", transient=True):
        for row in pq.read_table(release / file).to_pylist():
            configs[name][(row.get("api"), content_hash(row))] += 1
    return configs


def diff_releases(a: str, b: str, *, token: str | None = None) -> dict[str, Any]:
    """Rows added (in B, not A) and removed (in A, not B), per config and per API."""
    old, new = row_hashes(fetch_release(a, token=token)), row_hashes(fetch_release(b, token=token))
    configs = {}
    for name in sorted(set(old) | set(new)):
        added, removed = new.get(name, Counter()) - old.get(name, Counter()), old.get(name, Counter()) - new.get(name, Counter())
        apis: dict[str, dict[str, int]] = {}
        for (api, _), count in added.items():
            apis.setdefault(str(api), {"added": 0, "removed": 0})["added"] += count
        for (api, _), count in removed.items():
            apis.setdefault(str(api), {"added": 0, "removed": 0})["removed"] += count
        configs[name] = {
            "added": sum(added.values()), "removed": sum(removed.values()),
            "rows_a": sum(old.get(name, Counter()).values()), "rows_b": sum(new.get(name, Counter()).values()),
            **({"apis": dict(sorted(apis.items()))} if any(api is not None for api, _ in added | removed) else {}),
        }
    return {"a": a, "b": b, "configs": configs}
