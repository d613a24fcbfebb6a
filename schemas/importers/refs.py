"""Multi-file API descriptions: local file `$ref`s bundled into one document.

Why: large public specs are split over many files (DigitalOcean's keeps every operation in a
file of its own, `paths: {/v2/x: {$ref: "resources/x/list.yml"}}`). Imported as they were, those
operations came out as tools with no description and no parameters. `bundle` reads every file a
`$ref` names, relative to the file the `$ref` is in, and gives the importer one document whose
references are all local (`#/...`): each external target is copied once under
`x-imaginarium-bundled/<n>`, so a target used many times (or a cycle across files) is still one
copy. Remote references (`http://...`) are refused: an import never reaches the network.

Errors inside a bundled part name the file it came from (`origin`), not the synthetic place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from imaginarium.errors import InputError
from imaginarium.schemas import jsonpointer

BUNDLED = "x-imaginarium-bundled"
MAX_FILES = 20_000


def has_external_refs(document: Any) -> bool:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class Bundle:
    """One document with every file `$ref` made local; `origin(pointer)` says where a part came from."""

    def __init__(self, document: Any, file: str):
        self.root_file = Path(file).resolve() if file else None
        self.file = file
        self.documents: dict[Path, Any] = {}
        self.copies: dict[tuple[Path, str], str] = {}  # (file, pointer) -> bundled key
        self.origins: dict[str, str] = {}  # bundled key -> "file#pointer"
        self.parts: dict[str, Any] = {}
        if self.root_file is not None:
            self.documents[self.root_file] = document
        self.document = self._walk(document, self.root_file, "") if has_external_refs(document) else document
        if self.parts:
            self.document = {**self.document, BUNDLED: self.parts}

    def origin(self, pointer: str) -> str:
        """`file#pointer` in the source files for a pointer into the bundled document."""
        prefix = f"/{BUNDLED}/"
        if pointer.startswith(prefix):
            key, _, rest = pointer[len(prefix):].partition("/")
            if key in self.origins:
                return self.origins[key] + (f"/{rest}" if rest else "")
        return f"{self.file}#{pointer}"

    def _walk(self, node: Any, base: Path | None, pointer: str) -> Any:
        if isinstance(node, list):
            return [self._walk(item, base, f"{pointer}/{i}") for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and (not ref.startswith("#") or base != self.root_file):
            local = self._local(ref, base, pointer)
            return {**{k: self._walk(v, base, f"{pointer}/{k}") for k, v in node.items() if k != "$ref"},
                    "$ref": local}
        return {key: self._walk(value, base, jsonpointer.join(pointer, key)) for key, value in node.items()}

    def _local(self, ref: str, base: Path | None, pointer: str) -> str:
        """The local `#/...` reference standing for `ref` (found in file `base` at `pointer`)."""
        where = f"{self.file if base == self.root_file else base}#{pointer}/$ref"
        location, _, fragment = ref.partition("#")
        if "://" in location or location.startswith("//"):
            raise InputError(f"remote $ref {ref!r} is refused (imports do not reach the network); "
                             "download it and refer to the local copy", where=where)
        target_file: Path | None
        if location:
            if base is None:
                raise InputError(f"file $ref {ref!r} needs the spec's own path", where=where)
            try:
                target_file = (base.parent / unquote(location)).resolve()
            except (OSError, ValueError) as exc:  # a NUL byte, a name too long
                raise InputError(f"$ref {ref[:200]!r} names no usable path ({exc})", where=where) from None
        else:
            target_file = base
        if target_file == self.root_file:
            return "#" + fragment
        assert target_file is not None
        key = (target_file, fragment)
        if key not in self.copies:
            document = self._read(target_file, where)
            try:
                target = jsonpointer.resolve(document, "#" + fragment) if fragment else document
            except (KeyError, IndexError, ValueError, TypeError):
                raise InputError(f"$ref {ref!r} does not resolve in {target_file}", where=where) from None
            name = str(len(self.copies))
            self.copies[key] = name
            self.origins[name] = f"{target_file}#{fragment}"
            self.parts[name] = None  # placed before walking: a cycle finds its key
            self.parts[name] = self._walk(target, target_file, fragment)
        return f"#/{BUNDLED}/{self.copies[key]}"

    def _read(self, path: Path, where: str) -> Any:
        if path not in self.documents:
            if len(self.documents) >= MAX_FILES:
                raise InputError(f"more than {MAX_FILES} files referenced", where=where)
            try:
                found = path.is_file()
            except OSError as exc:  # a name too long, a loop of links
                raise InputError(f"$ref to an unreadable path ({exc.strerror or exc})", where=where) from None
            if not found:
                raise InputError(f"$ref to a missing file {str(path)[:300]}", where=where)
            from imaginarium.schemas.importers import read_document

            self.documents[path] = read_document(path)
        return self.documents[path]
