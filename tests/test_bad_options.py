"""Every command, every option: a bad value is one line on stderr, exit 2, and nothing written.

The bad values are derived from each option itself: a word where a number goes, numbers just
outside the bounds its typed config declares, an empty string, an unknown choice, a path that
does not exist where the stage reads one. No model is loaded: values are checked before any work.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import pytest

from imaginarium.cli import cli
from imaginarium.options import iter_commands

COMMANDS = dict(iter_commands(cli))
# Options whose empty value means something ("" = no system message).
EMPTY_ALLOWED = {"--system", "--license"}
# Options that are not values checked up front: they name where to write.
SKIPPED = {"-o", "--out", "--into", "--log", "--env"}


def baseline(path: tuple[str, ...], tmp: Path) -> list[str]:
    """Arguments that satisfy the command's required parameters (they need not be valid inputs:
    option values are checked first)."""
    file, folder = tmp / "in.jsonl", tmp / "in"
    file.write_text("{}\n")
    folder.mkdir(exist_ok=True)
    out = str(tmp / "out")
    table = {
        ("augment",): [str(folder), "-o", out],
        ("build", "bfcl"): [str(folder), "-o", out, "--tools", str(file)],
        ("build", "preference"): [str(folder), "-o", out, "--tools", str(file)],
        ("build", "continual"): [str(folder), "-o", out, "--batches", str(file), "--round", "0"],
        ("build", "sft"): [str(folder), "-o", out, "--tools", str(file)],
        ("cache", "export"): [str(file), "-o", out],
        ("cache", "import"): [str(file), "--into", out],
        ("cache", "stats"): [str(file)],
        ("eval",): [str(file)],
        ("explore",): ["--tools", str(file), "-o", out],
        ("filter",): [str(folder), "-o", out],
        ("generate",): [],
        ("model", "check"): [],
        ("model", "convert"): [],
        ("model", "show"): [],
        ("model", "tiny"): ["-o", out],
        ("predict",): ["--test", str(file), "-o", out],
        ("publish",): [str(folder), "--repo", "me/data"],
        ("rank",): [str(file), "-o", out],
        ("release", "build"): [str(folder), "-o", out, "--name", "x", "--version", "1.0.0"],
        ("release", "diff"): [str(folder), str(folder)],
        ("release", "list"): ["--repo", "me/data"],
        ("run",): [str(file), "-o", out],
        ("tools", "call"): [str(file), "t"],
        ("tools", "import"): [str(file), "-o", out],
        ("tools", "show"): [str(file)],
        ("tools", "validate"): [str(file)],
        ("train", "check"): [str(file)],
        ("train", "render"): ["--dataset", str(folder), "--template", "sft-lora", "--base-model", "m", "-o", out],
        ("train", "run"): [str(file)],
    }
    return table[path]


def bad_values(command: click.Command) -> list[tuple[str, str, str]]:
    """(option, bad value, what it shows) for every option of `command`."""
    from imaginarium.options import Options

    fields = {}
    config = getattr(command.callback, "options_config", None)
    if isinstance(config, type) and issubclass(config, Options):
        fields = {name: flat.info for name, flat in config.flat_fields().items()}
    cases = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        if flag in SKIPPED or param.hidden:
            continue
        info = fields.get(param.name)
        kind = param.type
        if isinstance(kind, click.Choice):
            cases.append((flag, "no-such-choice", "choice"))
        elif isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
            cases.append((flag, "abc", "word for a number"))
            for bound in _outside(info, kind):
                cases.append((flag, bound, "out of range"))
        else:
            if flag not in EMPTY_ALLOWED:
                cases.append((flag, "", "empty"))
            if info is not None and isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("exists"):
                cases.append((flag, "/no/such/place", "missing path"))
    return cases


def _outside(info, kind) -> list[str]:
    """Values just outside the bounds of a numeric option: its config field's, or click's range."""
    if info is None:
        if isinstance(kind, (click.IntRange, click.FloatRange)):
            step = 1 if isinstance(kind, click.IntRange) else 1e-3
            return [str(bound) for bound in (kind.min - step if kind.min is not None else None,
                                               kind.max + step if kind.max is not None else None) if bound is not None]
        return []
    integer = isinstance(kind, click.types.IntParamType)
    step = 1 if integer else 1e-3
    values = []
    for meta in info.metadata:
        for name, sign in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            bound = getattr(meta, name, None)
            if bound is None or (isinstance(bound, float) and math.isinf(bound)):
                continue
            value = bound + sign * step if sign else bound
            values.append(str(int(value)) if integer else repr(float(value)))
    return values


CASES = [(path, flag, value, why) for path, command in COMMANDS.items() for flag, value, why in bad_values(command)]


def test_every_command_is_covered():
    assert len(COMMANDS) >= 28 and len(CASES) > 250


@pytest.mark.parametrize("path, flag, value, why", CASES, ids=[f"{' '.join(c[0])} {c[1]}={c[2]!r}" for c in CASES])
def test_a_bad_option_is_one_line_and_exit_2(run, tmp_path, path, flag, value, why):
    code, out, err = run(*path, *baseline(path, tmp_path), flag, value)
    assert code == 2, (why, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: "), err
    assert flag.lstrip("-") in err or (value and value in err), err  # the message names the option or value
    assert not (tmp_path / "out").exists(), "something was written"


@pytest.mark.parametrize("path", list(COMMANDS), ids=[" ".join(p) for p in COMMANDS])
def test_a_missing_input_file_is_one_line_and_exit_2(run, tmp_path, path):
    args = [a.replace(str(tmp_path / "in"), str(tmp_path / "missing")) for a in baseline(path, tmp_path)]
    if args == baseline(path, tmp_path):
        pytest.skip("the command reads no input file")
    code, out, err = run(*path, *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
