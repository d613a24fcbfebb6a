"""Publishing scenarios against the local Hub server, run by tests/test_publish.py in a subprocess.

Not collected by the main pytest run (the name does not start with test_): huggingface_hub and
`datasets` read HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_DISABLE_XET when they are imported, and
other test modules import them first. test_publish.py starts a fresh interpreter per scenario with
those variables set (HF_ENDPOINT to a placeholder, replaced below before any import of them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import HubServer

TOKEN = os.environ["HF_TOKEN"]
_HUB = HubServer(TOKEN).__enter__()
os.environ["HF_ENDPOINT"] = _HUB.url  # before huggingface_hub / datasets are imported (below)
assert "huggingface_hub" not in sys.modules and "datasets" not in sys.modules

from fixtures_release import make_preference_stage, make_sft_stage, preference_rows, sft_rows  # noqa: E402

from imaginarium.errors import InputError  # noqa: E402
from imaginarium.hub_cards.publish import publish  # noqa: E402
from imaginarium.hub_cards.release import build_release  # noqa: E402
from imaginarium.hub_cards.releases import diff_releases, list_releases  # noqa: E402

REPO = "imaginarium-test/toy-tools"


@pytest.fixture
def hub():
    """The server, emptied between scenarios (one server per process: HF_ENDPOINT is fixed)."""
    _HUB.state.repos.clear()
    _HUB.state.requests.clear()
    _HUB.state.unhandled.clear()
    _HUB.state.faults.clear()
    yield _HUB


def _release(tmp: Path, version: str, sft: list[dict], pref: list[dict] | None = None, name: str = "rel") -> Path:
    run = tmp / f"run-{version}-{name}"
    make_sft_stage(run / "sft", sft)
    if pref is not None:
        make_preference_stage(run / "pref", pref)
    build_release([run], tmp / f"{name}-{version}", name="toy-tools", version=version, repo_id=REPO)
    return tmp / f"{name}-{version}"


def _rows(table) -> list[str]:
    return sorted(m[1]["content"] for m in table["messages"])


def test_round_trip_two_versions_load_each_revision(hub, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    v1 = _release(tmp_path, "1.0.0", sft_rows(6), preference_rows(2))
    v2 = _release(tmp_path, "1.1.0", sft_rows(6, offset=4))  # 2 rows kept, 4 new; preference config dropped
    first = publish(v1, REPO)
    second = publish(v2, REPO)
    assert (first.action, second.action) == ("commit and tag", "commit and tag")
    assert hub.tags(REPO) == {"v1.0.0": first.commit, "v1.1.0": second.commit}
    # v1.1.0 deleted the files v1.0.0 had and it lacks, in the same single commit
    assert not any(p.startswith("data/preference/") for p in hub.files(REPO, "v1.1.0"))
    assert "data/preference/train-00000-of-00001.parquet" in second.deleted
    assert [c.title for c in hub.commits(REPO)] == ["initial commit", "Release v1.0.0", "Release v1.1.0"]

    old = datasets.load_dataset(REPO, "sft", revision="v1.0.0", split="train")
    new = datasets.load_dataset(REPO, "sft", revision="v1.1.0", split="train")
    assert _rows(old) == sorted(r["messages"][1]["content"] for r in sft_rows(6))
    assert _rows(new) == sorted(r["messages"][1]["content"] for r in sft_rows(6, offset=4))
    default = datasets.load_dataset(REPO, revision="v1.0.0")  # no config name: the card's default (sft)
    assert list(default) == ["train"] and _rows(default["train"]) == _rows(old)
    pref = datasets.load_dataset(REPO, "preference", revision="v1.0.0", split="train")
    assert sorted(pref["question_id"]) == ["q0", "q1"]

    card = DatasetCard.load(REPO, repo_type="dataset")
    card.validate(repo_type="dataset")  # the metadata passes the Hub's validate-yaml
    assert card.data.license == "mit"
    assert [c["config_name"] for c in card.data.configs] == ["sft"]
    info = card.data.dataset_info
    assert (info if isinstance(info, dict) else info[0])["splits"][0]["num_examples"] == 6
    assert "v1.1.0" in card.text and "| `sft` | build-sft | train | 6 |" in card.text
    # the clients used ranges and ETags of the server, and nothing it does not implement
    assert hub.state.unhandled == []
    assert {"preupload", "lfs_batch", "lfs_upload", "lfs_verify", "commit", "create_tag", "resolve_file"} <= set(hub.routes())


def test_list_and_diff_releases(hub, tmp_path):
    v1 = _release(tmp_path, "1.0.0", sft_rows(6))
    v2 = _release(tmp_path, "1.1.0", sft_rows(7, offset=3))
    publish(v1, REPO)
    publish(v2, REPO)
    listed = list_releases(REPO)
    assert [(r["tag"], r["rows"], r["configs"]) for r in listed] == [("v1.0.0", 6, {"sft": 6}), ("v1.1.0", 7, {"sft": 7})]
    # rows 0-5 vs 3-9: removed 0,1,2 and added 6,7,8,9; i % 3 == 2 is convert_currency
    expected = {"added": 4, "removed": 3, "rows_a": 6, "rows_b": 7,
                "apis": {"convert_currency": {"added": 1, "removed": 1}, "get_weather": {"added": 3, "removed": 2}}}
    assert diff_releases(f"{REPO}@v1.0.0", f"{REPO}@v1.1.0")["configs"]["sft"] == expected
    assert diff_releases(str(v1), f"{REPO}@v1.1.0")["configs"]["sft"] == expected  # local against Hub
    with pytest.raises(InputError, match="no revision 'v3.0.0'"):
        diff_releases(f"{REPO}@v1.0.0", f"{REPO}@v3.0.0")
    with pytest.raises(InputError, match="no such dataset repo"):
        list_releases("nobody/nothing")


def test_republish_same_content_is_a_no_op(hub, tmp_path):
    v1 = _release(tmp_path, "1.0.0", sft_rows(4))
    publish(v1, REPO)
    commits, tags = len(hub.commits(REPO)), hub.tags(REPO)
    again = publish(v1, REPO)
    assert again.action == "nothing" and "already published" in again.reason
    # the same stages released as another version: content equals the latest tag -> no commit, no tag
    rebuilt = build_release([tmp_path / "run-1.0.0-rel"], tmp_path / "same", name="toy-tools", version="1.0.1", repo_id=REPO)
    assert rebuilt["version"] == "1.0.1"
    same = publish(tmp_path / "same", REPO)
    assert same.action == "nothing" and "equals the latest release v1.0.0" in same.reason
    assert (len(hub.commits(REPO)), hub.tags(REPO)) == (commits, tags)
    assert hub.routes().count("commit") == 1
    # one row more is new content
    assert publish(_release(tmp_path, "1.0.1", sft_rows(5), name="more"), REPO).action == "commit and tag"


def test_refuses_to_move_an_existing_tag(hub, tmp_path):
    publish(_release(tmp_path, "1.0.0", sft_rows(4)), REPO)
    tags = hub.tags(REPO)
    other = _release(tmp_path, "1.0.0", sft_rows(5), name="other")
    with pytest.raises(InputError, match="tags are never moved"):
        publish(other, REPO)
    assert hub.tags(REPO) == tags
    # and the server itself refuses: 409 on an existing tag
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as error:
        HfApi().create_tag(REPO, repo_type="dataset", tag="v1.0.0", revision="main")
    assert error.value.response.status_code == 409


def test_dry_run_prints_the_plan_and_changes_nothing(hub, tmp_path):
    v1 = _release(tmp_path, "1.0.0", sft_rows(4), preference_rows(2))
    plan = publish(v1, REPO, dry_run=True)
    assert plan.action == "commit and tag" and "README.md" in plan.added and plan.tag == "v1.0.0"
    assert hub.state.repos == {}
    publish(v1, REPO)
    v2 = _release(tmp_path, "2.0.0", sft_rows(5))
    routes_before = len(hub.state.requests)
    plan = publish(v2, REPO, dry_run=True)
    assert plan.deleted == ["data/preference/train-00000-of-00001.parquet", "provenance/manifests/preference.json"]
    assert "data/sft/train-00000-of-00001.parquet" in plan.changed and "README.md" in plan.changed
    assert hub.tags(REPO) == {"v1.0.0": hub.state.repos[("dataset", REPO)].tags["v1.0.0"]}
    writes = {"create_repo", "preupload", "lfs_batch", "lfs_upload", "commit", "create_tag"}
    assert not writes & {r.route for r in hub.state.requests[routes_before:]}


def test_stale_parent_commit_gets_412(hub, tmp_path):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    publish(_release(tmp_path, "1.0.0", sft_rows(3)), REPO)
    publish(_release(tmp_path, "1.1.0", sft_rows(4)), REPO)
    stale = hub.tags(REPO)["v1.0.0"]
    with pytest.raises(HfHubHTTPError) as error:
        HfApi().create_commit(REPO, [CommitOperationAdd("notes.txt", b"hello")], repo_type="dataset",
                              commit_message="late", parent_commit=stale)
    assert error.value.response.status_code == 412


def test_error_codes(hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    publish(_release(tmp_path, "1.0.0", sft_rows(3)), REPO)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().dataset_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "README.md", repo_type="dataset", revision="v9.9.9")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", repo_type="dataset", revision="v1.0.0")


def test_range_request_gets_206(hub, tmp_path):
    from huggingface_hub import HfFileSystem

    v1 = _release(tmp_path, "1.0.0", sft_rows(3))
    publish(v1, REPO)
    with HfFileSystem().open(f"datasets/{REPO}@v1.0.0/README.md", "rb", block_size=16) as handle:
        handle.seek(4)
        assert handle.read(8) == (v1 / "README.md").read_bytes()[4:12]
    assert any(r.route == "resolve_file" and r.status == 206 for r in hub.state.requests)


def test_commit_failure_leaves_tags_alone_and_rerun_completes(hub, tmp_path):
    publish(_release(tmp_path, "1.0.0", sft_rows(4)), REPO)
    before = hub.tags(REPO)
    v2 = _release(tmp_path, "1.1.0", sft_rows(5, offset=2))
    hub.fail("commit", times=1, status=500)
    with pytest.raises(Exception):
        publish(v2, REPO)
    assert hub.tags(REPO) == before
    assert len(hub.commits(REPO)) == 2
    result = publish(v2, REPO)
    assert result.action == "commit and tag"
    assert hub.tags(REPO) == {**before, "v1.1.0": result.commit}


def test_lfs_upload_failure_leaves_tags_alone_and_rerun_completes(hub, tmp_path):
    publish(_release(tmp_path, "1.0.0", sft_rows(4)), REPO)
    before = hub.tags(REPO)
    head = hub.state.repos[("dataset", REPO)].branches["main"]
    v2 = _release(tmp_path, "1.1.0", sft_rows(5, offset=2))
    # 507 is a server error the client does not retry (500/502/503/504 are retried with backoff)
    hub.fail("lfs_upload", times=1, status=507)
    with pytest.raises(Exception):
        publish(v2, REPO)
    assert hub.tags(REPO) == before and hub.state.repos[("dataset", REPO)].branches["main"] == head
    assert "commit" not in hub.routes()[-3:]
    result = publish(v2, REPO)
    assert hub.tags(REPO) == {**before, "v1.1.0": result.commit}


def test_retried_lfs_upload_and_tag_failure_then_rerun_only_tags(hub, tmp_path):
    v1 = _release(tmp_path, "1.0.0", sft_rows(4))
    hub.fail("lfs_upload", times=1, status=500)  # retried by the client: the publish goes through
    hub.fail("create_tag", times=1, status=500)  # commit made, tag not: no tag on the new commit
    with pytest.raises(Exception):
        publish(v1, REPO)
    assert hub.tags(REPO) == {}
    head = hub.state.repos[("dataset", REPO)].branches["main"]
    result = publish(v1, REPO)
    assert result.action == "tag" and result.commit == head
    assert hub.tags(REPO) == {"v1.0.0": head}
    assert hub.routes().count("commit") == 1


def test_private_repo_is_not_found_without_the_token(hub, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    publish(_release(tmp_path, "1.0.0", sft_rows(3)), REPO, private=True)
    assert HfApi().dataset_info(REPO).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).dataset_info(REPO)


def test_cli_publish_dry_run_publish_and_list(hub, tmp_path):
    from click.testing import CliRunner

    from imaginarium.cli import cli

    v1 = _release(tmp_path, "1.0.0", sft_rows(4), preference_rows(2))
    runner = CliRunner()
    dry = runner.invoke(cli, ["publish", str(v1), "--repo", REPO, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"plan for {REPO}: commit and tag v1.0.0" in dry.output and "  + README.md" in dry.output
    assert hub.state.repos == {}
    done = runner.invoke(cli, ["publish", str(v1), "--repo", REPO])
    assert done.exit_code == 0 and "published v1.0.0" in done.output
    again = runner.invoke(cli, ["publish", str(v1), "--repo", REPO])
    assert again.exit_code == 0 and "nothing published: v1.0.0 is already published" in again.output
    v2 = _release(tmp_path, "1.1.0", sft_rows(5))
    dry = runner.invoke(cli, ["publish", str(v2), "--repo", REPO, "--dry-run"])
    assert "  - data/preference/train-00000-of-00001.parquet" in dry.output
    assert "  ~ data/sft/train-00000-of-00001.parquet" in dry.output
    runner.invoke(cli, ["publish", str(v2), "--repo", REPO])
    listed = runner.invoke(cli, ["release", "list", "--repo", REPO])
    lines = listed.output.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["v1.0.0", "v1.1.0"]
    assert "6 rows\tpreference 2, sft 4" in lines[0] and "5 rows\tsft 5" in lines[1]
    assert TOKEN not in dry.output + done.output + again.output + listed.output


def test_publish_without_a_token_is_refused_before_any_write(hub, tmp_path, monkeypatch):
    v1 = _release(tmp_path, "1.0.0", sft_rows(2))
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match="no Hugging Face token"):
        publish(v1, REPO)
    assert hub.state.requests == []
    # the server refuses writes without credentials too
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as error:
        HfApi(token=False).create_repo(REPO, repo_type="dataset")
    assert error.value.response.status_code == 401


def test_paths_info_and_tree_describe_files_and_lfs(hub, tmp_path):
    import hashlib

    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    v1 = _release(tmp_path, "1.0.0", sft_rows(3))
    publish(v1, REPO)
    api = HfApi()
    info = api.get_paths_info(REPO, ["README.md", "data", "data/sft/train-00000-of-00001.parquet", "nope"],
                              repo_type="dataset", revision="v1.0.0")
    by_path = {entry.path: entry for entry in info}
    assert set(by_path) == {"README.md", "data", "data/sft/train-00000-of-00001.parquet"}
    readme, folder, shard = by_path["README.md"], by_path["data"], by_path["data/sft/train-00000-of-00001.parquet"]
    assert isinstance(readme, RepoFile) and readme.lfs is None and readme.size == (v1 / "README.md").stat().st_size
    assert isinstance(folder, RepoFolder)
    shard_bytes = (v1 / "data/sft/train-00000-of-00001.parquet").read_bytes()
    assert shard.lfs.sha256 == hashlib.sha256(shard_bytes).hexdigest() and shard.lfs.size == len(shard_bytes)
    top = {entry.path for entry in api.list_repo_tree(REPO, repo_type="dataset", revision="v1.0.0")}
    assert top == {".gitattributes", "README.md", "assets", "data", "provenance"}
    info = api.dataset_info(REPO, revision="v1.0.0", files_metadata=True)
    assert info.sha == hub.tags(REPO)["v1.0.0"] and info.card_data.license == "mit"
    assert {s.rfilename for s in info.siblings} >= {"README.md", "data/sft/train-00000-of-00001.parquet"}
    assert "paths_info" in hub.routes(status=200)


def _http(method: str, url: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A raw request (no client library), to check what the server itself enforces."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_server_verifies_lfs_content_and_commit_references(hub, tmp_path):
    import hashlib
    import json

    publish(_release(tmp_path, "1.0.0", sft_rows(3)), REPO)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    data = b"parquet bytes, pretend"
    oid = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"}
    status, _, body = _http("POST", f"{hub.url}/datasets/{REPO}.git/info/lfs/objects/batch", json.dumps(batch).encode(), auth)
    assert status == 200
    actions = json.loads(body)["objects"][0]["actions"]
    upload, verify = actions["upload"]["href"], actions["verify"]["href"]
    assert _http("PUT", upload, data[::-1])[0] == 400  # same size, other content: sha256 mismatch
    assert _http("PUT", upload.split("&sig=")[0] + "&sig=forged", data)[0] == 403
    assert _http("POST", verify, json.dumps({"oid": oid, "size": len(data)}).encode(), auth)[0] == 404  # not stored
    header = {"key": "header", "value": {"summary": "sneaky"}}
    line = {"key": "lfsFile", "value": {"path": "data/x.parquet", "algo": "sha256", "oid": oid, "size": len(data)}}
    ndjson = b"".join(json.dumps(item).encode() + b"\n" for item in (header, line))
    commit_url = f"{hub.url}/api/datasets/{REPO}/commit/main"
    assert _http("POST", commit_url, ndjson, {**auth, "Content-Type": "application/x-ndjson"})[0] == 422
    assert _http("PUT", upload, data)[0] == 200
    assert _http("POST", verify, json.dumps({"oid": oid, "size": len(data)}).encode(), auth)[0] == 200
    assert _http("POST", commit_url, ndjson, {**auth, "Content-Type": "application/x-ndjson"})[0] == 200
    assert _http("POST", commit_url, ndjson, {"Content-Type": "application/x-ndjson"})[0] == 401  # no credentials

    status, headers, body = _http("HEAD", f"{hub.url}/datasets/{REPO}/resolve/main/data/x.parquet")
    assert status == 200 and headers["X-Linked-Etag"] == f'"{oid}"' and headers["X-Linked-Size"] == str(len(data))
    assert headers["X-Repo-Commit"] == hub.state.repos[("dataset", REPO)].branches["main"]
    status, headers, body = _http("GET", f"{hub.url}/datasets/{REPO}/resolve/v1.0.0/data/x.parquet")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"  # not in the tagged release
    status, headers, body = _http("GET", f"{hub.url}/datasets/{REPO}/resolve/main/data/x.parquet", headers={"Range": "bytes=-4"})
    assert (status, body, headers["Content-Range"]) == (206, data[-4:], f"bytes {len(data) - 4}-{len(data) - 1}/{len(data)}")
    assert _http("GET", f"{hub.url}/datasets/{REPO}/resolve/main/data/x.parquet", headers={"Range": "bytes=999-"})[0] == 416


def test_cli_reports_a_hub_failure_in_one_message_and_rerun_completes(hub, tmp_path):
    from click.testing import CliRunner

    from imaginarium.cli import cli

    v1 = _release(tmp_path, "1.0.0", sft_rows(3))
    hub.fail("commit", times=1, status=500)
    failed = CliRunner().invoke(cli, ["publish", str(v1), "--repo", REPO])
    assert failed.exit_code == 2 and "run the same command again" in failed.output
    assert "Traceback" not in failed.output and TOKEN not in failed.output
    assert hub.tags(REPO) == {}
    done = CliRunner().invoke(cli, ["publish", str(v1), "--repo", REPO])
    assert done.exit_code == 0 and set(hub.tags(REPO)) == {"v1.0.0"}
