"""Typed options: one declaration per option gives its default, its help, its check and its flag.

Why: every stage has settings that a user gives on the command line, in a recipe's `with:` block
or from Python. Declared once as a pydantic field (`Field(default, description=..., ge=...)`),
an option is at once the default, the `--help` text, the validation and the recipe key, so the
three ways in cannot drift apart (distilabel's `Field(description=...)` does the same for
pipeline files). Shared groups (how to generate, how to execute tools) are declared once and
nested in each stage's config; their fields appear flat everywhere a user sees them
(`--model`, `model:`), so a stage's flat names must be unique, which `flat_fields` checks.

Conventions for fields:
- the flag is `--` + the field name with `-` for `_` (`max_query_chars` -> `--max-query-chars`),
  unless `json_schema_extra={"flag": ...}` says otherwise (`"short"`: a one-letter alias);
- a bool that defaults to False is a plain flag (`--no-exec`); one that defaults to True gets
  an off switch (`--judge/--no-judge`);
- `"cli": False` keeps a field out of the command line (set from Python or a recipe only);
- `"multiple": True` makes a list option repeatable (`--api-key A --api-key B`); other lists
  take one comma-separated value on the command line and a YAML list in a recipe;
- `"fingerprint": False` leaves a field out of the stage fingerprint: it does not shape the data
  (a server's address, a timeout);
- `"exists": True` marks a path the stage reads: it must exist when the config is made, so a
  typo fails before any model loads. No path option may be empty.

A value that fails its check is one `InputError` line naming the flag (or the recipe key), which
the CLI prints with exit code 2.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self, get_args, get_origin

import click
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo

from imaginarium.errors import InputError


class Flat(NamedTuple):
    """Where a flat option lives: the nested groups' field names, its own name there, its field."""

    path: tuple[str, ...]
    key: str
    info: FieldInfo


class Options(BaseModel):
    """Base of every options group and stage config: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _check_paths(cls, value: Any, info: ValidationInfo) -> Any:
        """A path option is never empty, and one marked `"exists": True` (an input) must exist.
        (`@name`, a recipe's reference to an earlier stage's output, is checked by the runner.)"""
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None or _without_none(field.annotation) is not Path:
            return value
        if not str(value).strip():
            raise ValueError("must not be empty")
        if _extra(field).get("exists") and not str(value).startswith("@") and not Path(value).exists():
            raise ValueError("no such file or directory")
        return value

    # -- flat view ---------------------------------------------------------------------------
    @classmethod
    def flat_fields(cls) -> dict[str, Flat]:
        """Every leaf field by its flat name (a group field's `prefix` prefixes its leaves)."""
        return _flat_fields(cls)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], *, where: str | None = None, flags: bool = False) -> Self:
        """Build the config from flat `values` (CLI parameters or a recipe's `with:` block).

        Args:
            values: flat name -> value; None means "not given" (the default applies).
            where: what to name in errors (a recipe file and stage); None for the command line.
            flags: name options as flags (`--max-turns`) rather than keys (`max_turns`) in errors.

        Raises:
            InputError: an unknown name, or a value that fails its field's check (one line).
        """
        fields = cls.flat_fields()
        nested: dict[str, Any] = {}
        for name, value in values.items():
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise InputError(f"unknown key {name!r}; known: {known}", where=where)
            if value is None:
                continue
            flat = fields[name]
            target = nested
            for group in flat.path:
                target = target.setdefault(group, {})
            target[flat.key] = value
        try:
            return cls.model_validate(_with_group_defaults(cls, nested))
        except ValidationError as exc:
            raise InputError(validation_message(exc, cls, flags=flags), where=where) from None

    def flat(self) -> dict[str, Any]:
        """The config as flat name -> value (the inverse of `from_flat`)."""
        out: dict[str, Any] = {}
        for name, flat in self.flat_fields().items():
            value: Any = self
            for group in flat.path:
                value = getattr(value, group)
            out[name] = getattr(value, flat.key)
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The flat settings that shape a stage's output, as JSON (fields marked otherwise left out)."""
        fields = self.flat_fields()
        return {name: _jsonable(value) for name, value in self.flat().items()
                if _extra(fields[name].info).get("fingerprint", True)}


def _with_group_defaults(cls: type[Options], nested: dict[str, Any]) -> dict[str, Any]:
    """Merge given nested values into each group's own default (a stage may default a group's
    fields differently, e.g. its own temperature), so a partly given group keeps the rest."""
    merged = dict(nested)
    for name, info in cls.model_fields.items():
        group = _group_type(info.annotation)
        if group is None:
            continue
        default = info.get_default(call_default_factory=True)
        base = default.model_dump(exclude_unset=True) if isinstance(default, BaseModel) else {}
        given = merged.get(name, {})
        merged[name] = {**base, **_with_group_defaults(group, given)} if given or base else given
    return merged


@functools.cache
def _flat_fields(cls: type[Options]) -> dict[str, Flat]:
    found: dict[str, Flat] = {}
    for name, info in cls.model_fields.items():
        group = _group_type(info.annotation)
        if group is None:
            items = {name: Flat((), name, info)}
        else:
            prefix = _extra(info).get("prefix", "")
            items = {prefix + leaf: Flat((name, *flat.path), flat.key, flat.info)
                     for leaf, flat in _flat_fields(group).items()}
        for leaf, entry in items.items():
            if leaf in found:
                raise TypeError(f"{cls.__name__}: two options are both named {leaf!r}")
            found[leaf] = entry
    return found


def _group_type(annotation: Any) -> type[Options] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, Options) else None


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# -- messages ------------------------------------------------------------------------------------
def flag_name(name: str, info: FieldInfo | None = None) -> str:
    """The command-line flag of flat field `name`."""
    extra = _extra(info) if info is not None else {}
    return extra.get("flag") or "--" + name.replace("_", "-")


def validation_message(exc: ValidationError, cls: type[Options], *, flags: bool) -> str:
    """The first problem of a pydantic ValidationError as one line naming the option."""
    error = exc.errors(include_url=False)[0]
    leaf = _flat_name(cls, tuple(str(part) for part in error["loc"]))
    message = "is required" if error["type"] == "missing" else error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be"):
        message = "must be" + message[len("Input should be"):]
    message = message[:1].lower() + message[1:]
    if leaf is None:  # a check across fields (a model validator): its message names the options
        return _prefixed_flags(cls, tuple(str(part) for part in error["loc"]), message)
    name = flag_name(leaf, cls.flat_fields()[leaf].info) if flags else leaf
    if error["type"] == "missing":
        return f"{name} is required"
    shown = error.get("input")
    if error["type"] != "missing" and isinstance(shown, (str, int, float, Path)):
        text = repr(str(shown) if isinstance(shown, Path) else shown)
        message += f" (got {text[:60] + '...' if len(text) > 60 else text})"
    return f"{name}: {message}"


def _prefixed_flags(cls: type[Options], loc: tuple[str, ...], message: str) -> str:
    """A group validator's message with the flags it names as the stage spells them (a group
    nested with a prefix: `--base-url` -> `--judge-base-url`)."""
    if not loc or loc[0] not in cls.model_fields:
        return message
    prefix = _extra(cls.model_fields[loc[0]]).get("prefix", "")
    return message.replace("--", "--" + prefix.replace("_", "-")) if prefix else message


def _flat_name(cls: type[Options], loc: tuple[str, ...]) -> str | None:
    """The flat name of the field at pydantic location `loc` (list indices may follow it)."""
    for name, flat in cls.flat_fields().items():
        where = (*flat.path, flat.key)
        if loc[: len(where)] == where:
            return name
    return None


# -- command line ----------------------------------------------------------------------------------
def cli_options(cls: type[Options], *, exclude: tuple[str, ...] = (), show_defaults: bool = True) -> Callable:
    """A decorator adding a click option for every flat field of `cls` (except `exclude`).

    `show_defaults=False` for options that override something else's values (a recipe's), whose
    defaults would mislead in `--help`.
    """
    defaults = _flat_defaults(cls) if show_defaults else {}

    def decorate(function: Callable) -> Callable:
        for name, flat in reversed(list(cls.flat_fields().items())):
            if name in exclude or not _extra(flat.info).get("cli", True):
                continue
            function = _click_option(name, flat.info, defaults.get(name))(function)
        function.options_config = cls  # type: ignore[attr-defined]  # for --help tools and tests
        return function

    return decorate


def _flat_defaults(cls: type[Options]) -> dict[str, Any]:
    """Each flat field's default as the stage sees it (a nested group's default instance wins)."""
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        group = _group_type(info.annotation)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if group is None:
            values[name] = default
            continue
        prefix = _extra(info).get("prefix", "")
        leaves = default.flat() if isinstance(default, Options) else _flat_defaults(group)
        values.update({prefix + leaf: value for leaf, value in leaves.items()})
    return values


def _click_option(name: str, info: FieldInfo, default: Any) -> Callable:
    extra = _extra(info)
    flag = flag_name(name, info)
    annotation = _without_none(info.annotation)
    declarations = [flag] + ([extra["short"]] if extra.get("short") else [])
    kwargs: dict[str, Any] = {"help": info.description or "", "default": None}
    if annotation is bool:
        if default:
            declarations = [f"{flag}/--no-{flag[2:]}"]
            kwargs.update(default=True, show_default=True)
        else:
            kwargs.update(is_flag=True, default=None)
    else:
        kwargs["type"], kwargs["metavar"] = _click_type(annotation, extra)
        # The default stays None on the command line ("not given": the config's own default
        # applies, and a check can tell a value given from one defaulted); help shows it.
        if extra.get("multiple"):
            kwargs.update(multiple=True)
        elif default not in (None, [], ()):
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            kwargs["help"] = f"{kwargs['help']}  [default: {shown}]".strip()
        if info.is_required():
            kwargs["required"] = True
    return click.option(*declarations, name, **kwargs)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _literal_values(annotation: Any) -> list[str]:
    """The choices of a Literal, or of a union of Literals (empty for anything else)."""
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_literal_values(a) for a in get_args(annotation)]
        if parts and all(parts):
            return [c for part in parts for c in part]
    return []


def _click_type(annotation: Any, extra: dict[str, Any]) -> tuple[Any, str | None]:
    metavar = extra.get("metavar")
    choices = _literal_values(annotation)
    if choices:
        return click.Choice(choices), metavar
    if annotation is int:
        return click.INT, metavar
    if annotation is float:
        return click.FLOAT, metavar
    if annotation is Path:  # a string for pydantic to check: click would turn "" into "."
        return click.STRING, metavar or "PATH"
    if get_origin(annotation) in (list, tuple):
        return click.STRING, metavar or ("TEXT" if extra.get("multiple") else "A,B,...")
    return click.STRING, metavar


def parse_cli(cls: type[Options], params: dict[str, Any]) -> Any:
    """Pop the parameters of `cls`'s flat fields from `params` (click's keyword arguments) and
    build the config.

    Raises:
        InputError: a value fails its check (one line naming the flag).
    """
    values = {}
    for name in cls.flat_fields():
        if name in params:
            value = params.pop(name)
            values[name] = None if value == () else value
    return cls.from_flat(values, flags=True)


def check_values(cls: type[Options], values: Mapping[str, Any]) -> None:
    """Check flat `values` one field at a time, each against its own declaration only (for values
    that override part of a config made elsewhere, such as a recipe's generation block).

    Raises:
        InputError: a value fails its field's check (one line naming the flag).
    """
    from pydantic import TypeAdapter

    fields = cls.flat_fields()
    for name, value in values.items():
        info = fields[name].info
        try:
            TypeAdapter(Annotated[info.annotation, *info.metadata]).validate_python(value)  # type: ignore[arg-type]
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            message = error["msg"].replace("Input should be", "must be")
            raise InputError(f"{message[:1].lower()}{message[1:]} (got {value!r})", where=flag_name(name, info)) from None


def comma_list(value: Any) -> Any:
    """A before-validator: "a,b" (the command line) -> ["a", "b"]; lists pass as they are."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def named_list(value: Any) -> Any:
    """A before-validator for lists of names: as `comma_list`, but a blank value is an error
    (where an empty list is the default, giving the option empty is a mistake, not a choice)."""
    if isinstance(value, str) and not value.strip(" ,"):
        raise ValueError("give at least one name")
    return comma_list(value)


def iter_commands(group: click.Group, ctx: click.Context | None = None, path: tuple[str, ...] = ()
                  ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command of a click group with its path (for tests and docs)."""
    ctx = ctx or click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        if isinstance(command, click.Group):
            yield from iter_commands(command, ctx, (*path, name))
        else:
            yield (*path, name), command


def out_option(help: str, *, directory: bool = True, required: bool = True) -> Callable:
    """The `-o/--out` option, spelled the same on every command."""
    return click.option("-o", "--out", "out", required=required, type=PATH,
                        metavar="DIRECTORY" if directory else "FILE", help=help)


class _NonEmpty(click.ParamType):
    """Text that must not be empty: for plain click options and arguments (configs say min_length)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must not be empty", param, ctx)
        return value


class _PathArg(_NonEmpty):
    """A path given on the command line, never empty (click's Path would turn "" into ".")."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return Path(super().convert(value, param, ctx))


TEXT = _NonEmpty()
PATH = _PathArg()
