"""Build a release directory: the Hub's dataset layout, a card, and the provenance to replay it.

    RELEASE/README.md                                   the card (YAML front matter + text)
    RELEASE/assets/<config>_rows_per_api.png            the card's chart of rows per API
    RELEASE/data/<config>/<split>-00000-of-00002.parquet    the rows, size-capped shards
    RELEASE/provenance/release.json                     name, version, per-config counts and sources
    RELEASE/provenance/provenance.json                  stage configs, models, backends, seeds, versions
    RELEASE/provenance/manifests/<config>.json          the input stages' manifests, verbatim
    RELEASE/provenance/reports/<config>/<file>          their report files (funnel.json, ...)
    RELEASE/provenance/recipe.yaml                      the recipe, when the input is a run directory
    RELEASE/provenance/response_cache/                  the response cache (a stage directory)

Why: users pin training to a version, so a release must say exactly what it holds and how it was
made, and replay offline (the response cache travels with it). The build is deterministic (no
clock, sorted inputs): the same inputs give byte-identical files, which is what lets `publish`
recognise "nothing changed" by file hashes.

Beside RELEASE while a build runs (never anything else, so a killed build leaves no half release):

    .RELEASE.lock                    held (flock) by the build; names its pid
    .RELEASE.staging-<pid>-<random>  the new release, renamed to RELEASE when complete
    .RELEASE.previous                the old release during the swap, removed right after

A build that was killed leaves these behind; the next build of the same RELEASE, once it holds
the lock (so no live build owns them), removes them, and puts `.RELEASE.previous` back when the
kill came between the two renames of the swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import track

from imaginarium.errors import InputError
from imaginarium.stage import MANIFEST, data_files, read_manifest, read_table

RELEASE_FILE = "provenance/release.json"
DEFAULT_SPLIT = "train"
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024
RECIPE_NAMES = ("recipe.yaml", "recipe.yml")
CACHE_STAGE = "cache-export"  # what `imaginarium cache export` writes (imaginarium.executor.cache)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_VERSION = re.compile(r"\d+\.\d+\.\d+")
# Keys of stage configs that say which model, backend and seed made the data (for provenance).
_PROVENANCE_KEYS = re.compile(r"(^|_)(model|model_id|revision|backend|seed|seeds)$")


@dataclass(frozen=True)
class ConfigSource:
    """One config of the release and the finished stage directory it comes from."""

    name: str
    directory: Path
    manifest: dict[str, Any]


def find_sources(inputs: Sequence[str | Path]) -> tuple[list[ConfigSource], Path | None, Path | None]:
    """The release's configs, its response cache and its recipe, from the command's inputs.

    An input is a stage directory (config name: `extra.release_config` of its manifest, else the
    directory's name), `NAME=DIR` to name the config, or a recipe run directory: a directory without
    a manifest whose stage directories with `extra.release_config` become the configs, whose cache
    export (stage `cache-export`, or `extra.release_role: response_cache`) is the response cache
    and whose recipe.yaml is kept.
    """
    sources: list[ConfigSource] = []
    cache = recipe = None
    for item in inputs:
        name, path = "", Path(item)
        if "=" in str(item) and not path.exists():
            name, path = str(item).split("=", 1)[0], Path(str(item).split("=", 1)[1])
        manifest = read_manifest(path) if path.is_dir() else None
        if manifest is not None:
            sources.append(ConfigSource(name or _config_name(manifest, path), path, manifest))
        elif path.is_dir():
            found = _run_directory(path)
            if not found[0]:
                raise InputError(
                    "neither a stage directory (no manifest.json) nor a run directory with built datasets "
                    "(stage directories whose manifest has extra.release_config)", where=str(path))
            sources += found[0]
            cache = cache or found[1]
            recipe = recipe or found[2]
        else:
            raise InputError("no such stage or run directory", where=str(path))
    names = Counter(s.name for s in sources)
    for source in sources:
        if not _NAME.fullmatch(source.name):
            raise InputError(f"config name {source.name!r} must be letters, digits, '_', '-' or '.'", where=str(source.directory))
        if names[source.name] > 1:
            raise InputError(f"two inputs give config {source.name!r}; name them with NAME=DIR", where=str(source.directory))
    return sorted(sources, key=lambda s: s.name), cache, recipe


def _config_name(manifest: dict[str, Any], path: Path) -> str:
    return (manifest.get("extra") or {}).get("release_config") or path.resolve().name


def _run_directory(run: Path) -> tuple[list[ConfigSource], Path | None, Path | None]:
    configs, cache = [], None
    for manifest_path in sorted(run.rglob(MANIFEST)):
        directory = manifest_path.parent
        if any(part.startswith(".") for part in directory.relative_to(run).parts):
            continue
        manifest = read_manifest(directory) or {}
        extra = manifest.get("extra") or {}
        if extra.get("release_config"):
            configs.append(ConfigSource(extra["release_config"], directory, manifest))
        elif extra.get("release_role") == "response_cache" or manifest.get("stage") == CACHE_STAGE:
            cache = directory
    recipe = next((run / n for n in RECIPE_NAMES if (run / n).is_file()), None)
    return configs, cache, recipe


def build_release(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    name: str,
    version: str,
    repo_id: str | None = None,
    cache: str | Path | None = None,
    license: str = "mit",
    pretty_name: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> dict[str, Any]:
    """Write the release directory `out` from stage or run directories; returns release.json.

    `repo_id` (OWNER/NAME) only shapes the card's loading instructions. The directory is built
    beside `out` and swapped in at the end, so a failed build leaves the previous one intact.
    """
    if not _VERSION.fullmatch(version):
        raise InputError(f"version {version!r} must be X.Y.Z (semantic versioning)", where="--version")
    if not _NAME.fullmatch(name):
        raise InputError(f"release name {name!r} must be letters, digits, '_', '-' or '.'", where="--name")
    if max_shard_bytes <= 0:
        raise InputError("must be positive", where="--max-shard-bytes")
    out = Path(out)
    if out.exists() and not (out / RELEASE_FILE).is_file() and any(out.iterdir()):
        raise InputError("exists and is not a release directory; refusing to overwrite it", where=str(out))
    sources, found_cache, recipe = find_sources(inputs)
    if not sources:
        raise InputError("no inputs: give stage directories or a run directory", where="IN")
    cache_dir = Path(cache) if cache is not None else found_cache
    if cache_dir is not None and (not cache_dir.is_dir() or read_manifest(cache_dir) is None):
        raise InputError("the response cache must be an exported cache directory: run "
                         "`imaginarium cache export CACHE -o DIR` and pass DIR", where=str(cache_dir))

    out.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out) as locked:
        _remove_leftovers(out, locked=locked)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(out)}{os.getpid()}-", dir=out.parent))
        try:
            release = _write_release(staging, sources, cache_dir, recipe, name, version, max_shard_bytes)
            from imaginarium.hub_cards.card import render_card

            card = render_card(staging, release, repo_id=repo_id, license=license, pretty_name=pretty_name)
            (staging / "README.md").write_text(card, encoding="utf-8")
            refuse_secrets(staging, out)
            previous = _previous(out)
            shutil.rmtree(previous, ignore_errors=True)
            if out.exists():
                out.rename(previous)
            staging.rename(out)
            shutil.rmtree(previous, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return release


def refuse_secrets(directory: Path, out: Path) -> None:
    """Refuse a release that holds a configured secret or a known token shape, in any file or row
    (imaginarium/secrets.py): what is published cannot be taken back.

    Raises:
        InputError: naming the file (and the row of a data shard) and what was found.
    """
    import pyarrow.parquet as pq

    from imaginarium import secrets

    for path in sorted((p for p in directory.rglob("*") if p.is_file()), key=lambda p: (p.suffix != ".parquet", p)):
        where = str(out / path.relative_to(directory))
        if path.suffix == ".parquet":
            for index, row in enumerate(pq.read_table(path).to_pylist()):
                found = secrets.scan(json.dumps(row, ensure_ascii=False, default=str))
                if found:
                    raise InputError(f"refusing to build the release: row {index} holds {found[0]} "
                                     "(the run that made it had a secret in its outputs)", where=where)
            continue
        found = secrets.scan(path.read_bytes().decode("utf-8", "replace"))
        if found:
            raise InputError(f"refusing to build the release: the file holds {found[0]}", where=where)


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.staging-"


def _previous(out: Path) -> Path:
    return out.parent / f".{out.name}.previous"


def _lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[bool]:
    """Hold the build lock of `out` (flock on .OUT.lock, let go by the OS when the process dies).

    Yields whether the lock is held: False where the file system has no flock, and the build
    goes on unlocked. Another live build of the same output is refused in one line.
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        yield False
        return
    path = _lock_file(out)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise InputError(f"another `imaginarium release build`{f' (pid {owner})' if owner.isdigit() else ''} "
                             "is writing this release now; run it again when that one has finished",
                             where=str(out)) from None
        except OSError:  # flock not supported here (some network file systems): build unlocked
            os.close(fd)
            fd = -1
            break
        try:  # the holder before us may have removed the file between our open and our flock
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    if fd < 0:
        yield False
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


_LEGACY_STAGING = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkdtemp's suffix: how earlier versions named staging
_RELEASE_ENTRIES = {"README.md", "assets", "data", "provenance"}


def _remove_leftovers(out: Path, *, locked: bool) -> None:
    """Remove what killed builds of `out` left beside it; put back a release a killed swap moved aside.

    With the lock held no live build owns a staging directory of `out`, so all go; without it
    (no flock) only those whose pid is no running process.
    """
    prefix = f".{out.name}."
    for entry in out.parent.iterdir():
        rest = entry.name[len(prefix):]
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        staging = re.fullmatch(r"staging-(\d+)-\w+", rest)
        if staging:
            stale = locked or not _alive(int(staging.group(1)))
        else:  # earlier versions: .OUT.<8 random chars>, holding nothing but a part of a release
            stale = (locked and rest != "previous" and bool(_LEGACY_STAGING.fullmatch(rest))
                     and {p.name for p in entry.iterdir()} <= _RELEASE_ENTRIES)
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
    previous = _previous(out)
    if locked and previous.is_dir() and not previous.is_symlink():
        if out.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:  # killed between `out -> previous` and `staging -> out`: the last complete release comes back
            previous.rename(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _write_release(staging: Path, sources: list[ConfigSource], cache: Path | None, recipe: Path | None,
                   name: str, version: str, max_shard_bytes: int) -> dict[str, Any]:
    configs = {}
    for source in track(sources, description="writing the release", transient=True):
        table = read_table(source.directory).replace_schema_metadata(None)
        configs[source.name] = _write_config(staging, source, table, max_shard_bytes)
        (staging / "provenance/manifests").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.directory / MANIFEST, staging / f"provenance/manifests/{source.name}.json")
        for report in _report_files(source.directory):
            target = staging / f"provenance/reports/{source.name}/{report.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, target)
    if cache is not None:
        target = staging / "provenance/response_cache"
        (target / "data").mkdir(parents=True)
        shutil.copyfile(cache / MANIFEST, target / MANIFEST)
        for shard in data_files(cache):
            shutil.copyfile(shard, target / "data" / shard.name)
    if recipe is not None:
        shutil.copyfile(recipe, staging / "provenance/recipe.yaml")
    _write_json(staging / "provenance/provenance.json", _provenance(sources, cache))
    release = {"name": name, "version": version, "configs": configs}
    _write_json(staging / RELEASE_FILE, release)
    return release


def _report_files(directory: Path) -> list[Path]:
    """Files a stage wrote beside its data (funnel.json, ...): everything but data and manifest."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def _write_config(staging: Path, source: ConfigSource, table: pa.Table, max_shard_bytes: int) -> dict[str, Any]:
    """Write one config's shards per split; return its counts and where it came from."""
    splits = _split_tables(table, source.directory)
    split_info = {}
    for split, part in splits.items():
        files = _write_shards(part, staging / "data" / source.name, split, max_shard_bytes)
        split_info[split] = {
            "rows": part.num_rows,
            "num_bytes": part.nbytes,
            "download_size": sum(f.stat().st_size for f in files),
            "files": [f.relative_to(staging).as_posix() for f in files],
        }
    apis = Counter(api or "(none)" for api in table.column("api").to_pylist()) if "api" in table.column_names else None
    kinds = None
    if "kind" in table.column_names and "api" in table.column_names:  # the scenario kinds (schemas/kinds.py)
        pairs = list(zip(table.column("api").to_pylist(), (k or "single" for k in table.column("kind").to_pylist())))
        if any(kind != "single" for _, kind in pairs):
            per_api: dict[str, Counter] = {}
            for api, kind in pairs:
                per_api.setdefault(api or "(none)", Counter())[kind] += 1
            kinds = {"overall": dict(sorted(Counter(kind for _, kind in pairs).items())),
                     "per_api": {api: dict(sorted(c.items())) for api, c in sorted(per_api.items())}}
    return {
        "stage": source.manifest.get("stage"),
        "content_hash": source.manifest.get("content_hash"),
        "fingerprint": source.manifest.get("fingerprint"),
        "rows": table.num_rows,
        "splits": split_info,
        **({"apis": dict(sorted(apis.items()))} if apis is not None else {}),
        **({"kinds": kinds} if kinds is not None else {}),
    }


def _split_tables(table: pa.Table, where: Path) -> dict[str, pa.Table]:
    """Rows per split: by the `split` column when there is one (then dropped), else all in train."""
    if "split" not in table.column_names:
        return {DEFAULT_SPLIT: table}
    labels = table.column("split").to_pylist()
    if any(not isinstance(label, str) or not re.fullmatch(r"\w+", label) for label in labels):
        raise InputError("column split: every value must be a split name (letters, digits, '_')", where=str(where))
    rest = table.drop_columns(["split"])
    order = sorted(set(labels), key=lambda s: (s != DEFAULT_SPLIT, s))
    return {split: rest.filter(pa.array([label == split for label in labels])) for split in order}


def _write_shards(table: pa.Table, directory: Path, split: str, max_shard_bytes: int) -> list[Path]:
    """Shards of at most `max_shard_bytes` of Arrow data each (one row at least), Hub naming."""
    directory.mkdir(parents=True, exist_ok=True)
    row_bytes = table.nbytes / table.num_rows if table.num_rows else 1
    rows_per_shard = max(1, int(max_shard_bytes // max(row_bytes, 1)))
    count = max(1, -(-table.num_rows // rows_per_shard))
    paths = []
    for index in range(count):
        path = directory / f"{split}-{index:05d}-of-{count:05d}.parquet"
        pq.write_table(table.slice(index * rows_per_shard, rows_per_shard), path)
        paths.append(path)
    return paths


def _provenance(sources: list[ConfigSource], cache: Path | None) -> dict[str, Any]:
    """What made each config: stage, full config, input fingerprints, models, seeds, versions."""
    stages = {}
    for source in sources:
        manifest = source.manifest
        stages[source.name] = {
            "stage": manifest.get("stage"),
            "config": manifest.get("config"),
            "inputs": manifest.get("inputs"),
            "fingerprint": manifest.get("fingerprint"),
            "content_hash": manifest.get("content_hash"),
            "versions": manifest.get("versions"),
            "settings": dict(_settings(manifest.get("config") or {})),
            **{k: v for k, v in (manifest.get("extra") or {}).items() if k in ("models", "backend", "seeds")},
        }
    cache_manifest = read_manifest(cache) if cache is not None else None
    return {
        "stages": stages,
        **({"response_cache": {"content_hash": cache_manifest["content_hash"], "counts": cache_manifest.get("counts")}}
           if cache_manifest else {}),
    }


def _settings(config: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Model ids, revisions, backends and seeds found anywhere in a stage config (dotted keys)."""
    if isinstance(config, dict):
        for key, value in sorted(config.items()):
            dotted = f"{prefix}{key}"
            if _PROVENANCE_KEYS.search(str(key)) and not isinstance(value, dict):
                yield dotted, value
            else:
                yield from _settings(value, dotted + ".")


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_release(directory: str | Path) -> dict[str, Any]:
    """release.json of a built release directory."""
    path = Path(directory) / RELEASE_FILE
    if not path.is_file():
        raise InputError(f"not a release directory (no {RELEASE_FILE}); build one with `imaginarium release build`",
                         where=str(directory))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"corrupt release file ({exc})", where=str(path)) from exc
