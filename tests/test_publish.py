"""Publishing to a local Hub-compatible server: round trip, no-op, tags, dry run, faults, secrets.

The scenarios live in tests/hub_cases.py and run in a fresh interpreter: huggingface_hub and
`datasets` read HF_ENDPOINT / HF_HOME / HF_TOKEN / HF_HUB_DISABLE_XET at import, and other test
modules import them earlier in this process. The Makefile exports HF_HUB_OFFLINE=1; the child
process overrides it (it only talks to 127.0.0.1). After the run, every file the scenarios wrote
(releases, card, HF cache), its output and its DEBUG log of every request are scanned for the token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

TESTS = Path(__file__).parent
TOKEN = "hf_imaginariumTestToken0123456789abcdef"


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Run all scenarios once; return the child's exit code, its output and its temporary folders."""
    base = tmp_path_factory.mktemp("hub")
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",  # replaced by the child once its server has a port
        "HF_HOME": str(base / "hf_home"),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_DATASETS_CACHE": str(base / "datasets_cache"),
        "TORCHDYNAMO_DISABLE": "1",
    }
    command = [sys.executable, "-m", "pytest", str(TESTS / "hub_cases.py"), "-q", "-rA", "-p", "no:cacheprovider", "--noconftest",
               "--basetemp", str(base / "cases"), "--junitxml", str(base / "report.xml"),
               "--log-file", str(base / "debug.log"), "--log-file-level", "DEBUG"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    return result, base


def _passed(base: Path) -> set[str]:
    """Names of the scenarios that passed, from the child's JUnit report."""
    cases = ElementTree.parse(base / "report.xml").getroot().iter("testcase")
    return {case.get("name") for case in cases if not any(child.tag in ("failure", "error", "skipped") for child in case)}


CASES = [
    "test_round_trip_two_versions_load_each_revision",
    "test_list_and_diff_releases",
    "test_republish_same_content_is_a_no_op",
    "test_refuses_to_move_an_existing_tag",
    "test_dry_run_prints_the_plan_and_changes_nothing",
    "test_stale_parent_commit_gets_412",
    "test_error_codes",
    "test_range_request_gets_206",
    "test_commit_failure_leaves_tags_alone_and_rerun_completes",
    "test_lfs_upload_failure_leaves_tags_alone_and_rerun_completes",
    "test_retried_lfs_upload_and_tag_failure_then_rerun_only_tags",
    "test_private_repo_is_not_found_without_the_token",
    "test_cli_publish_dry_run_publish_and_list",
    "test_publish_without_a_token_is_refused_before_any_write",
    "test_paths_info_and_tree_describe_files_and_lfs",
    "test_server_verifies_lfs_content_and_commit_references",
    "test_cli_reports_a_hub_failure_in_one_message_and_rerun_completes",
]


@pytest.mark.parametrize("case", CASES)
def test_hub_scenario(scenarios, case):
    result, base = scenarios
    assert case in _passed(base), f"{case} did not pass:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_every_scenario_is_listed(scenarios):
    result, base = scenarios
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert _passed(base) == set(CASES)


def test_no_token_in_any_file_or_log(scenarios):
    result, base = scenarios
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    scanned = 0
    for path in base.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), f"token found in {path}"
            scanned += 1
    assert scanned > 20  # releases, cards, downloaded files: the scan looked at something
    log = (base / "debug.log").read_text()
    assert "HTTP Request: POST" in log and "/commit/main" in log  # the log has every request, no token
    assert any(p.name == "README.md" for p in base.rglob("README.md"))
