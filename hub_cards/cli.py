"""`imaginarium release ...` and `imaginarium publish`: thin shells over hub_cards' functions.

`release build` -> release.build_release, `release list` -> releases.list_releases,
`release diff` -> releases.diff_releases, `publish` -> publish.publish. Bad input raises
InputError (one line, exit 2). The Hub token is never taken as an option (it would land in shell
history): it comes from HF_TOKEN or the huggingface_hub login.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from imaginarium.errors import InputError
from imaginarium.hub_cards.release import DEFAULT_MAX_SHARD_BYTES, build_release
from imaginarium.options import PATH, TEXT


class CommandError(InputError, click.ClickException):
    """An InputError that click's own standalone mode (CliRunner) also shows as one line, exit 2."""

    exit_code = 2


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """Without -v, and with stderr not a terminal, keep huggingface_hub's progress bars and retry
    warnings off, so that a failed publish is one line on stderr (its HubFailure)."""
    import logging
    import sys
    import warnings

    if sys.stderr.isatty() or logging.getLogger().getEffectiveLevel() < logging.WARNING:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hub_logging

    hub_logger = hub_logging.get_logger()
    level, bars = hub_logger.level, not are_progress_bars_disabled()
    hub_logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS=0 wins, with a warning
        warnings.simplefilter("ignore")
        disable_progress_bars()
    try:
        yield
    finally:
        hub_logger.setLevel(level)
        if bars:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                enable_progress_bars()


class RepoId(click.ParamType):
    """A Hub repo id, OWNER/NAME, checked as the Hub checks it (a bad one is one line, exit 2)."""

    name = "OWNER/NAME"

    def convert(self, value, param, ctx):
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(value)
        except HFValidationError as exc:
            self.fail(str(exc).split(":")[0] + f": {value!r}", param, ctx)
        return value


REPO_ID = RepoId()


@click.group()
def release() -> None:
    """Build versioned releases (parquet + card + provenance), list and diff them."""


@release.command("build")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "output", required=True, type=PATH,
              help="Release directory to write.")
@click.option("--name", type=TEXT, required=True, help="Release name (the dataset's name).")
@click.option("--version", "version", type=TEXT, required=True, help="Semantic version X.Y.Z; published as tag vX.Y.Z.")
@click.option("--repo", "repo_id", type=REPO_ID, default=None, help="OWNER/NAME the card's loading instructions name.")
@click.option("--cache", type=PATH, default=None,
              help="Response cache stage directory to ship in provenance/ (found automatically in a run directory).")
@click.option("--license", "license_", type=TEXT, default="mit", show_default=True, help="License id for the card.")
@click.option("--pretty-name", type=TEXT, default=None, help="Human-readable title of the card.")
@click.option("--max-shard-bytes", type=click.IntRange(min=1024), default=DEFAULT_MAX_SHARD_BYTES, show_default=True,
              help="Cap on the Arrow size of one parquet shard.")
def build_command(inputs, output, name, version, repo_id, cache, license_, pretty_name, max_shard_bytes) -> None:
    """Build a release directory from INPUTS in the Hub's dataset layout.

    INPUTS are stage directories (DIR or CONFIG=DIR) or a recipe run directory, whose stage
    directories with `extra.release_config` in their manifest become the configs.

    \b
    Example:
      imaginarium release build out/run -o out/release --name weather-tools --version 1.0.0 --repo me/weather-tools
      imaginarium release build sft=out/sft prefs=out/pref -o out/release --name toy --version 0.1.0
    """
    try:
        info = build_release(inputs, output, name=name, version=version, repo_id=repo_id, cache=cache,
                             license=license_, pretty_name=pretty_name, max_shard_bytes=max_shard_bytes)
    except InputError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:  # a full disk, a read-only folder: one line naming the file, not a traceback
        where = exc.filename or output
        raise CommandError(f"cannot write the release ({exc.strerror or exc}); the previous release, if any, is "
                           "intact: fix that and run the same command again", where=str(where)) from exc
    for config, counts in info["configs"].items():
        splits = ", ".join(f"{split} {s['rows']}" for split, s in counts["splits"].items())
        click.echo(f"{config}: {counts['rows']} rows ({splits})")
    click.echo(f"wrote release {name} {version} to {output}")


@release.command("list")
@click.option("--repo", "repo_id", type=REPO_ID, required=True, help="Dataset repo OWNER/NAME on the Hub.")
def list_command(repo_id: str) -> None:
    """List the version tags of a Hub dataset repo with their row counts."""
    from imaginarium.hub_cards.releases import list_releases

    for item in list_releases(repo_id):
        rows = "?" if item["rows"] is None else item["rows"]
        configs = ", ".join(f"{c} {n}" for c, n in (item["configs"] or {}).items())
        click.echo(f"{item['tag']}\t{item['commit'][:12]}\t{rows} rows\t{configs}")


@release.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
def diff_command(a: str, b: str, as_json: bool) -> None:
    """Rows added and removed from release A to release B, per config and per API.

    A and B are release directories or OWNER/NAME@vX.Y.Z on the Hub.
    """
    from imaginarium.hub_cards.releases import diff_releases

    diff = diff_releases(a, b)
    if as_json:
        click.echo(json.dumps(diff, indent=2))
        return
    for config, change in diff["configs"].items():
        click.echo(f"{config}: +{change['added']} -{change['removed']} ({change['rows_a']} -> {change['rows_b']} rows)")
        for api, counts in change.get("apis", {}).items():
            click.echo(f"  {api}: +{counts['added']} -{counts['removed']}")


@click.command()
@click.argument("release_dir", metavar="RELEASE", type=PATH)
@click.option("--repo", "repo_id", type=REPO_ID, required=True, help="Dataset repo OWNER/NAME (created if needed).")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--dry-run", is_flag=True, help="Print the plan (files added / changed / deleted, the tag) and change nothing.")
def publish(release_dir: Path, repo_id: str, private: bool, dry_run: bool) -> None:
    """Publish RELEASE to the Hub in one commit and tag it vX.Y.Z.

    An existing tag is never moved; content equal to the latest tagged release publishes
    nothing. The token comes from HF_TOKEN or `hf auth login`.
    """
    from imaginarium.hub_cards.publish import publish as publish_release

    try:  # every Hub failure is a HubFailure (an InputError): one line, what failed, whether a re-run helps
        with _quiet_hub():
            plan = publish_release(release_dir, repo_id, private=private, dry_run=dry_run)
    except InputError as exc:
        raise CommandError(str(exc)) from exc
    if dry_run:
        click.echo(f"plan for {repo_id}: {plan.action} {plan.tag} ({plan.reason})")
        for kind, sign in (("added", "+"), ("changed", "~"), ("deleted", "-")):
            for path in getattr(plan, kind):
                click.echo(f"  {sign} {path}")
        click.echo(f"  {len(plan.unchanged)} unchanged")
    elif plan.action == "nothing":
        click.echo(f"nothing published: {plan.reason}")
    else:
        click.echo(f"published {plan.tag} to {repo_id} at commit {plan.commit}")
