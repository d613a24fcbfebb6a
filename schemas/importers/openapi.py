"""OpenAPI 3.0 / 3.1 importer: one ToolSpec per operation.

A model calls a tool with one flat arguments object, but an HTTP operation spreads its inputs
over the path, the query string, headers, cookies and a request body. The importer merges them
into ONE `parameters` schema and records in `ToolSpec.http` where each argument goes, so a live
executor can rebuild the request later.

Merging rule (deterministic, no collisions): parameters are named first, in the order path,
query, header, cookie (spec order within each), then the body. A name already taken gets its
location as prefix (`body_id`, `query_id`, then `body_id_2`, ...). A JSON body that is a plain
object is flattened into its properties; any other body (array, string, composed schema,
free-form map) becomes one argument named `body` (original name "").

Schemas come out as JSON Schema Draft 2020-12: local `$ref`s are inlined (recursion is cut at
CUT_DEPTH with a permissive schema carrying `x-imaginarium-cut`), OpenAPI 3.0 dialect is
converted (`nullable`, `example`, boolean `exclusiveMinimum`/`exclusiveMaximum`), OpenAPI-only
keywords are dropped, and `readOnly` properties are not inputs (`writeOnly` ones not outputs).
Webhooks and callbacks are requests the API sends, not tools, and are not imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from imaginarium.errors import InputError
from imaginarium.schemas import jsonpointer
from imaginarium.schemas.importers.base import Skipped, load_each
from imaginarium.schemas.toolspec import HttpBinding, ToolSource, ToolSpec, safe_name

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("path", "query", "header", "cookie")
CUT_DEPTH = 3
CUT_KEY = "x-imaginarium-cut"

# Headers the spec says to ignore as parameters (they are set by the client/content negotiation).
_IGNORED_HEADERS = {"accept", "content-type", "authorization"}
# Keywords that exist only in OpenAPI's schema dialect, not in JSON Schema 2020-12.
_OPENAPI_ONLY = {"discriminator", "xml", "externalDocs", "nullable"}
_ANNOTATIONS = {"description", "summary", "title", "examples", "default", "deprecated", "readOnly", "writeOnly"}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties",
)
# A request body with only these keywords is a plain object whose properties can be flattened.
_FLATTENABLE = {"type", "properties", "required", "description", "title", "examples", "additionalProperties"}
_JSON_MEDIA = re.compile(r"^application/([\w.+-]+\+)?json\b")
_FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")
_RETURN_CODES = ("200", "201", "2XX", "2xx")


def detect(document: Any) -> bool:
    """True for an OpenAPI document (and for Swagger 2.0, so that `load` can say it is unsupported)."""
    return isinstance(document, dict) and ("openapi" in document or "swagger" in document)


def load(document: dict[str, Any], file: str, errors: list[Skipped] | None = None) -> list[ToolSpec]:
    """The ToolSpecs of every operation in an OpenAPI 3.0 or 3.1 `document` read from `file`.

    A broken operation raises InputError at its JSON pointer, or, given an `errors` list, is
    recorded there and skipped.
    """
    if "swagger" in document:
        raise InputError("Swagger 2.0 is not supported, convert it to OpenAPI 3", where=file)
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[01](\.|$)", version):
        raise InputError(f"OpenAPI version {version!r} is not supported (3.0.x and 3.1.x are)", where=file)
    return _Importer(document, file).tools(errors)


class _Importer:
    def __init__(self, document: dict[str, Any], file: str):
        self.doc = document
        self.file = file

    def error(self, message: str, pointer: str) -> InputError:
        return InputError(message, where=f"{self.file}#{pointer}")

    # -- operations -----------------------------------------------------------------------

    def tools(self, errors: list[Skipped] | None) -> list[ToolSpec]:
        names: set[str] = set()

        def build(entry: tuple[str, str, dict, dict], pointer: str) -> ToolSpec:
            path, method, item, operation = entry
            tool = self.tool(path, method, item, operation, pointer)
            if tool.name in names:
                if "operationId" in operation:
                    raise self.error(f"duplicate operationId {operation['operationId']!r}", pointer)
                tool = tool.model_copy(update={"name": safe_name(tool.source_name)})  # "GET /a-b": hashed
            names.add(tool.name)
            return tool

        return load_each(self.operations(), build, self.file, errors)

    def operations(self) -> Iterator[tuple[str, tuple[str, str, dict, dict]]]:
        """(pointer, (path, method, path item, operation)) for every operation under `paths`."""
        paths = self.doc.get("paths") or {}
        if not isinstance(paths, dict):
            raise self.error("`paths` must be an object", "/paths")
        for path, item in paths.items():
            item, _ = self.deref(item, jsonpointer.join("/paths", path))
            for method in METHODS:
                if isinstance(item.get(method), dict):
                    yield jsonpointer.join("/paths", path, method), (path, method, item, item[method])

    def tool(self, path: str, method: str, item: dict, operation: dict, pointer: str) -> ToolSpec:
        properties: dict[str, Any] = {}
        required: list[str] = []
        locations: dict[str, tuple[str, str]] = {}

        def add(name: str, location: str, original: str, schema: Any, is_required: bool) -> None:
            argument = _claim(name, location, properties)
            properties[argument] = schema
            locations[argument] = (location, original)
            if is_required:
                required.append(argument)

        for parameter, where in self.parameters(item, operation, pointer):
            add(parameter["name"], parameter["in"], parameter["name"], self.parameter_schema(parameter, where),
                parameter["in"] == "path" or bool(parameter.get("required")))

        content_type = None
        body = operation.get("requestBody")
        if body is not None:
            body, where = self.deref(body, jsonpointer.join(pointer, "requestBody"))
            content_type, schema = self.media_schema(body.get("content") or {}, jsonpointer.join(where, "content"),
                                                     "input", prefer_form=True)
            if content_type is not None:
                body_required = bool(body.get("required"))
                if _flattenable(schema):
                    inner_required = set(schema.get("required", []))
                    for name, sub in schema["properties"].items():
                        add(name, "body", name, sub, body_required and name in inner_required)
                else:
                    add("body", "body", "", schema, body_required)

        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        operation_id = operation.get("operationId")
        if operation_id is not None and not isinstance(operation_id, str):
            raise self.error("operationId must be a string", jsonpointer.join(pointer, "operationId"))
        tags = operation.get("tags") or []
        try:
            return ToolSpec(
                name=safe_name(operation_id or _name_from_path(method, path)),
                source_name=operation_id or f"{method.upper()} {path}",
                description=_description(operation),
                parameters=parameters,
                returns=self.returns(operation.get("responses") or {}, jsonpointer.join(pointer, "responses")),
                category=str(tags[0]) if tags else None,
                source=ToolSource(format="openapi", file=self.file, pointer=pointer),
                http=HttpBinding(method=method, server_url=self.server_url(item, operation), path=path,
                                 locations=locations, content_type=content_type),
            )
        except ValidationError as exc:
            raise self.error(exc.errors()[0]["msg"], pointer) from None

    def parameters(self, item: dict, operation: dict, pointer: str) -> list[tuple[dict, str]]:
        """Path-level then operation-level parameters; an operation one overrides (name, in)."""
        merged: dict[tuple[str, str], tuple[dict, str]] = {}
        item_pointer = pointer.rsplit("/", 1)[0]
        for owner, owner_pointer in ((item, item_pointer), (operation, pointer)):
            for index, raw in enumerate(owner.get("parameters") or []):
                parameter, where = self.deref(raw, jsonpointer.join(owner_pointer, "parameters", index))
                name, location = parameter.get("name"), parameter.get("in")
                if not isinstance(name, str) or location not in LOCATIONS:
                    raise self.error("a parameter needs a `name` and `in` (path, query, header or cookie)", where)
                if location == "header" and name.lower() in _IGNORED_HEADERS:
                    continue
                merged[(name, location)] = (parameter, where)
        return sorted(merged.values(), key=lambda entry: LOCATIONS.index(entry[0]["in"]))

    def parameter_schema(self, parameter: dict, pointer: str) -> Any:
        if "schema" in parameter:
            schema = self.schema(parameter["schema"], jsonpointer.join(pointer, "schema"), "input")
        elif "content" in parameter:
            _, schema = self.media_schema(parameter["content"], jsonpointer.join(pointer, "content"), "input")
        else:
            schema = {"type": "string"}
        if isinstance(schema, dict):
            schema = dict(schema)
            if parameter.get("description"):
                schema["description"] = parameter["description"]
            if parameter.get("deprecated"):
                schema["deprecated"] = True
        return schema

    def media_schema(self, content: dict, pointer: str, direction: str, prefer_form: bool = False):
        """(media type, converted schema) of the preferred media type: JSON, then forms, then the first."""
        if not content:
            return None, None
        types = list(content)
        json_types = [t for t in types if _JSON_MEDIA.match(t)]
        form_types = [t for t in types if t in _FORM_MEDIA] if prefer_form else []
        chosen = (json_types or form_types or types)[0]
        media = content[chosen] or {}
        if "schema" not in media:
            return chosen, {}
        return chosen, self.schema(media["schema"], jsonpointer.join(pointer, chosen, "schema"), direction)

    def returns(self, responses: dict, pointer: str) -> dict[str, Any] | None:
        other_2xx = sorted(code for code in map(str, responses) if re.fullmatch(r"2\d\d", code))
        for code in (*_RETURN_CODES, *other_2xx, "default"):
            if code not in responses:
                continue
            response, where = self.deref(responses[code], jsonpointer.join(pointer, code))
            content = response.get("content") or {}
            json_types = [t for t in content if _JSON_MEDIA.match(t)]
            if json_types and "schema" in (content[json_types[0]] or {}):
                _, schema = self.media_schema({json_types[0]: content[json_types[0]]},
                                              jsonpointer.join(where, "content"), "output")
                return schema if isinstance(schema, dict) else None
        return None

    def server_url(self, item: dict, operation: dict) -> str:
        servers = operation.get("servers") or item.get("servers") or self.doc.get("servers") or []
        if not servers or not isinstance(servers[0], dict):
            return ""
        server = servers[0]
        url = str(server.get("url", ""))
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace("{" + name + "}", str((variable or {}).get("default", "")))
        return url

    # -- references and schemas ---------------------------------------------------------------

    def check_ref(self, ref: Any, pointer: str) -> Any:
        """The target of a local `$ref` found at `pointer`; InputError if it is external or dangling."""
        where = jsonpointer.join(pointer, "$ref")
        if not isinstance(ref, str):
            raise self.error("$ref must be a string", where)
        if not ref.startswith("#"):
            raise self.error(f"external $ref {ref!r} is not supported; bundle the spec into one file first", where)
        try:
            return jsonpointer.resolve(self.doc, ref)
        except KeyError:
            raise self.error(f"$ref {ref!r} does not resolve", where) from None

    def deref(self, node: Any, pointer: str) -> tuple[dict, str]:
        """A non-schema object (parameter, body, response, path item) with its `$ref` chain followed."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise self.error(f"circular $ref {ref!r}", jsonpointer.join(pointer, "$ref"))
            seen.add(ref)
            node, pointer = self.check_ref(ref, pointer), ref[1:]
        if not isinstance(node, dict):
            raise self.error("expected an object", pointer)
        return node, pointer

    def schema(self, node: Any, pointer: str, direction: str, stack: tuple[str, ...] = ()) -> Any:
        """`node` as a self-contained JSON Schema 2020-12 (see the module docstring)."""
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.error("a schema must be an object", pointer)
        if "$ref" in node:
            return self.ref_schema(node, pointer, direction, stack)
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = jsonpointer.join(pointer, key)
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub, jsonpointer.join(here, name), direction, stack)
                            for name, sub in value.items()}
            elif (key in _SCHEMA_LISTS and isinstance(value, list)) or (key == "items" and isinstance(value, list)):
                converted = [self.schema(sub, jsonpointer.join(here, i), direction, stack) for i, sub in enumerate(value)]
                out["prefixItems" if key == "items" else key] = converted
            elif key in _SCHEMA_ONE:
                out[key] = self.schema(value, here, direction, stack)
            elif key == "example":
                out.setdefault("examples", [value])
            elif key not in _OPENAPI_ONLY and not key.startswith("x-"):
                out[key] = value
        _convert_exclusive_bounds(out)
        _drop_hidden_properties(out, "readOnly" if direction == "input" else "writeOnly")
        if node.get("nullable") is True:
            out = _nullable(out)
        return out

    def ref_schema(self, node: dict, pointer: str, direction: str, stack: tuple[str, ...]) -> Any:
        ref = node["$ref"]
        target = self.check_ref(ref, pointer)
        if stack.count(ref) >= CUT_DEPTH:
            return {
                "description": f"Recursive schema {ref} cut at depth {CUT_DEPTH}: any value is accepted here.",
                CUT_KEY: ref,
            }
        resolved = self.schema(target, ref[1:], direction, (*stack, ref))
        siblings = {key: value for key, value in node.items() if key not in ("$ref", "nullable")}
        if siblings:
            extra = self.schema(siblings, pointer, direction, stack)
            if isinstance(resolved, dict) and set(extra) <= _ANNOTATIONS:
                resolved = {**resolved, **extra}
            elif not str(self.doc.get("openapi", "")).startswith("3.0"):  # 3.0 ignores keywords beside a $ref
                resolved = {"allOf": [resolved, extra]}
        # `nullable` beside a $ref is not valid 3.0 but common; it can only mean "or null"
        if node.get("nullable") is True and isinstance(resolved, dict):
            resolved = _nullable(resolved)
        return resolved


def _claim(name: str, location: str, taken: dict[str, Any]) -> str:
    """`name`, or `location_name`, or `location_name_2`, ...: the first not yet taken."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{location}_{name}" if number == 2 else f"{location}_{name}_{number - 1}"
    return candidate


def _flattenable(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and set(schema) <= _FLATTENABLE
        and schema.get("type", "object") == "object"
        and isinstance(schema.get("properties"), dict)
        and bool(schema["properties"])
        and not isinstance(schema.get("additionalProperties"), dict)
    )


def _name_from_path(method: str, path: str) -> str:
    """`get /pets/{petId}` -> `get_pets_petId`."""
    return "_".join(filter(None, [method, re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")]))


def _description(operation: dict) -> str:
    parts = [str(operation.get(key) or "").strip() for key in ("summary", "description")]
    if parts[0] == parts[1]:
        parts = parts[:1]
    return "\n\n".join(part for part in parts if part)


def _convert_exclusive_bounds(schema: dict) -> None:
    """OpenAPI 3.0 `exclusiveMinimum: true` + `minimum: m` -> 2020-12 `exclusiveMinimum: m`."""
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(schema.get(exclusive), bool) and schema.pop(exclusive) and bound in schema:
            schema[exclusive] = schema.pop(bound)


def _drop_hidden_properties(schema: dict, flag: str) -> None:
    """Remove properties marked `flag` (readOnly for inputs, writeOnly for outputs)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    hidden = {name for name, sub in properties.items() if isinstance(sub, dict) and sub.get(flag) is True}
    if hidden:
        schema["properties"] = {name: sub for name, sub in properties.items() if name not in hidden}
        if isinstance(schema.get("required"), list):
            schema["required"] = [name for name in schema["required"] if name not in hidden]
            if not schema["required"]:
                del schema["required"]


def _nullable(schema: dict) -> dict:
    """OpenAPI 3.0 `nullable: true` -> "null" added to the type (and to an enum)."""
    schema = dict(schema)
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    if "null" not in kinds:
        schema["type"] = [*kinds, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema
