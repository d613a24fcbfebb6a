"""OpenAPI 3.0 / 3.1 and Swagger 2.0 importer: one ToolSpec per operation.

Swagger 2.0 is converted to the equivalent 3.0 document first (swagger2.py); specs split over
several files are bundled first (refs.py), so both import like their single-file 3.0 form.

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

Inputs decide whether a tool exists; the response schema only helps (simulation, `returns`): a
broken one is dropped with a warning, and one larger than RETURNS_LIMIT is cut to its top levels.
Work is bounded: NODE_BUDGET schema nodes per tool and per response (`$ref` fan-out stops there
with a marker), `$ref` chains of at most MAX_REF_CHAIN; in a schema past SHARE_AFTER nodes, a
definition used again is kept once under the root's `$defs` and referred to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from imaginarium.errors import InputError
from imaginarium.schemas import jsonpointer
from imaginarium.schemas.importers.base import Skipped, bare_message, load_each
from imaginarium.schemas.importers.refs import Bundle
from imaginarium.schemas.importers.swagger2 import is_swagger2, source_pointer, to_openapi3
from imaginarium.schemas.toolspec import HttpBinding, ToolSource, ToolSpec, check_schema, safe_name

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("path", "query", "header", "cookie")
CUT_DEPTH = 3
CUT_KEY = "x-imaginarium-cut"
# Bounds on work: schema nodes produced per tool (inlined `$ref` fan-out stops there, with a
# marker), the longest `$ref` chain followed, the size of a kept response schema (bytes of JSON).
NODE_BUDGET = 5_000
# Past this many nodes, a definition met again becomes `{"$ref": "#/$defs/...}"` instead of a copy
# (small schemas stay fully inlined: simplest for models and constraint engines).
SHARE_AFTER = 500
MAX_REF_CHAIN = 64
RETURNS_LIMIT = 64 * 1024
PARAMETERS_LIMIT = 128 * 1024  # beyond it deeper levels go (a schema that size is no use to a model)

# Headers the spec says to ignore as parameters (they are set by the client/content negotiation).
_IGNORED_HEADERS = {"accept", "content-type", "authorization"}
# Keywords that exist only in OpenAPI's schema dialect, not in JSON Schema 2020-12.
_OPENAPI_ONLY = {"discriminator", "xml", "externalDocs", "nullable"}
# Draft 2019-09 keywords some 3.1 specs still write; 2020-12 has no place for them.
_OLDER_DRAFTS = {"$recursiveAnchor", "$recursiveRef"}
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
    """True for an OpenAPI 3 or Swagger 2.0 document."""
    return isinstance(document, dict) and ("openapi" in document or "swagger" in document)


def load(document: dict[str, Any], file: str, errors: list[Skipped] | None = None,
         warnings: list[Skipped] | None = None) -> list[ToolSpec]:
    """The ToolSpecs of every operation in an OpenAPI 3.0/3.1 or Swagger 2.0 `document` read from
    `file` (file `$ref`s resolved relative to it).

    A broken operation raises InputError at its JSON pointer, or, given an `errors` list, is
    recorded there and skipped. What is dropped but does not sink a tool (a broken response
    schema) goes to `warnings` as (where, why).
    """
    if not isinstance(document, dict):
        raise InputError("an OpenAPI document must be an object", where=file)
    bundle = Bundle(document, file)
    document = bundle.document
    translate = None
    if "swagger" in document:
        if not is_swagger2(document):
            raise InputError(f"Swagger version {document.get('swagger')!r} is not supported (2.0 is)", where=file)
        document = to_openapi3(document, file)
        translate = source_pointer
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[01](\.|$)", version):
        raise InputError(f"OpenAPI version {version!r} is not supported (3.0.x, 3.1.x and Swagger 2.0 are)", where=file)
    return _Importer(document, file, bundle, translate, warnings).tools(errors)


class _Importer:
    def __init__(self, document: dict[str, Any], file: str, bundle: Bundle | None = None,
                 translate: Any = None, warnings: list[Skipped] | None = None):
        self.doc = document
        self.file = file
        self.bundle = bundle
        self.translate = translate  # converted-document pointer -> source pointer (Swagger 2.0)
        self.warnings = warnings
        self.start_root()

    def where(self, pointer: str) -> str:
        """`file#pointer` in the source files."""
        if self.translate is not None:
            pointer = self.translate(pointer)
        return self.bundle.origin(pointer) if self.bundle is not None else f"{self.file}#{pointer}"

    def error(self, message: str, pointer: str) -> InputError:
        return InputError(message, where=self.where(pointer))

    def warn(self, message: str, pointer: str, where: str | None = None) -> None:
        if self.warnings is not None:
            self.warnings.append((where or self.where(pointer), message))

    # -- operations -----------------------------------------------------------------------

    def tools(self, errors: list[Skipped] | None) -> list[ToolSpec]:
        names: set[str] = set()

        def build(entry: tuple[str, str, dict, dict], pointer: str) -> ToolSpec:
            path, method, item, operation = entry
            self.start_root()
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
            item, where = self.deref(item, jsonpointer.join("/paths", path))
            for method in METHODS:
                if isinstance(item.get(method), dict):
                    # A `$ref` on an operation is not OpenAPI, but multi-file specs use it (Redocly's layout).
                    operation, _ = self.deref(item[method], jsonpointer.join(where, method))
                    yield jsonpointer.join("/paths", path, method), (path, method, item, operation)
                elif method in item and item[method] is not None:
                    raise self.error("an operation must be an object", jsonpointer.join(where, method))

    def tool(self, path: str, method: str, item: dict, operation: dict, pointer: str) -> ToolSpec:
        properties: dict[str, Any] = {}
        required: list[str] = []
        locations: dict[str, tuple[str, str]] = {}

        sources: dict[str, str] = {}  # argument -> the pointer of its schema in the source

        def add(name: str, location: str, original: str, schema: Any, is_required: bool, where: str) -> None:
            argument = _claim(name, location, properties)
            properties[argument] = schema
            locations[argument] = (location, original)
            sources[argument] = where
            if is_required:
                required.append(argument)

        for parameter, where in self.parameters(item, operation, pointer):
            add(parameter["name"], parameter["in"], parameter["name"], self.parameter_schema(parameter, where),
                parameter["in"] == "path" or bool(parameter.get("required")), jsonpointer.join(where, "schema"))

        content_type = None
        body = operation.get("requestBody")
        if body is not None:
            body, where = self.deref(body, jsonpointer.join(pointer, "requestBody"))
            content = _object(body.get("content"), self, jsonpointer.join(where, "content"))
            content_type, schema = self.media_schema(content, jsonpointer.join(where, "content"), "input",
                                                     prefer_form=True)
            if content_type is not None:
                body_required = bool(body.get("required"))
                at = jsonpointer.join(where, "content", content_type, "schema")
                if _flattenable(schema):
                    inner_required = set(schema.get("required", []))
                    for name, sub in schema["properties"].items():
                        add(name, "body", name, sub, body_required and name in inner_required,
                            jsonpointer.join(at, "properties", name))
                else:
                    add("body", "body", "", schema, body_required, at)

        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        parameters = self.finish_root(parameters)
        if len(json.dumps(parameters)) > PARAMETERS_LIMIT:
            parameters = cut_schema(parameters, PARAMETERS_LIMIT)
            self.warn(f"parameters cut to their top levels (larger than {PARAMETERS_LIMIT:,} bytes of JSON)", pointer)
        operation_id = operation.get("operationId")
        if operation_id is not None and not isinstance(operation_id, str):
            raise self.error("operationId must be a string", jsonpointer.join(pointer, "operationId"))
        tags = operation.get("tags") or []
        fields = dict(
            name=safe_name(operation_id or _name_from_path(method, path)),
            source_name=operation_id or f"{method.upper()} {path}",
            description=_description(operation),
            parameters=parameters,
            returns=self.safe_returns(operation, pointer),
            category=str(tags[0]) if isinstance(tags, list) and tags else None,
            source=ToolSource(format="openapi", file=self.file, pointer=pointer),
            http=HttpBinding(method=method, server_url=self.server_url(item, operation), path=path,
                             locations=locations, content_type=content_type, auth=self.auth(operation)),
        )
        for _ in range(2):
            try:
                return ToolSpec(**fields)
            except ValidationError as exc:
                error = exc.errors()[0]
                field = str(error["loc"][0]) if error["loc"] else ""
                message = error["msg"].removeprefix("Value error, ")
                if field == "returns" and fields["returns"] is not None:  # inputs decide; the response only helps
                    self.warn(f"response schema dropped: {message}", jsonpointer.join(pointer, "responses"))
                    fields["returns"] = None
                    continue
                if field == "parameters":
                    self.raise_for_argument(properties, sources)
                raise self.error(f"{field or 'operation'}: {message}", pointer) from None
        raise AssertionError("unreachable")

    def raise_for_argument(self, properties: dict[str, Any], sources: dict[str, str]) -> None:
        """Name the argument whose schema is invalid, at its place in the source (checked one
        by one only after the whole failed: the metaschema check is the slow part)."""
        for argument, schema in properties.items():
            if isinstance(schema, dict):
                try:
                    check_schema(schema)
                except ValueError as exc:
                    raise self.error(f"parameter {argument!r}: {exc}", sources[argument]) from None

    def safe_returns(self, operation: dict, pointer: str) -> dict[str, Any] | None:
        """The response schema, or None with a warning when it cannot be read (a tool's inputs do
        not depend on it); cut to its top levels when larger than RETURNS_LIMIT bytes of JSON."""
        where = jsonpointer.join(pointer, "responses")
        self.start_root()  # the response has a node budget and `$defs` of its own
        try:
            responses = _object(operation.get("responses"), self, where)
            returns = self.finish_root(self.returns(responses, where))
        except InputError as exc:
            self.warn(f"response schema dropped: {bare_message(exc)}", where, exc.where)
            return None
        return cut_schema(returns, RETURNS_LIMIT) if returns is not None else None

    def auth(self, operation: dict) -> list[dict[str, str]] | None:
        """Auth hints from the security requirements that apply to the operation."""
        requirements = operation.get("security", self.doc.get("security"))
        components = self.doc.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, dict) else None
        if not isinstance(requirements, list) or not isinstance(schemes, dict):
            return None
        hints = []
        for requirement in requirements:
            for name in requirement if isinstance(requirement, dict) else []:
                scheme = schemes.get(name)
                if isinstance(scheme, dict) and "$ref" not in scheme:
                    hint = {key: str(scheme[key]) for key in ("type", "in", "name", "scheme") if scheme.get(key)}
                    if hint and hint not in hints:
                        hints.append(hint)
        return hints or None

    def parameters(self, item: dict, operation: dict, pointer: str) -> list[tuple[dict, str]]:
        """Path-level then operation-level parameters; an operation one overrides (name, in)."""
        merged: dict[tuple[str, str], tuple[dict, str]] = {}
        item_pointer = pointer.rsplit("/", 1)[0]
        for owner, owner_pointer in ((item, item_pointer), (operation, pointer)):
            listed = owner.get("parameters") or []
            if not isinstance(listed, list):
                raise self.error("`parameters` must be a list", jsonpointer.join(owner_pointer, "parameters"))
            for index, raw in enumerate(listed):
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
            content = _object(parameter["content"], self, jsonpointer.join(pointer, "content"))
            _, schema = self.media_schema(content, jsonpointer.join(pointer, "content"), "input")
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
        if not isinstance(media, dict):
            raise self.error("a media type entry must be an object", jsonpointer.join(pointer, chosen))
        if "schema" not in media:
            return chosen, {}
        return chosen, self.schema(media["schema"], jsonpointer.join(pointer, chosen, "schema"), direction)

    def returns(self, responses: dict, pointer: str) -> dict[str, Any] | None:
        other_2xx = sorted(code for code in map(str, responses) if re.fullmatch(r"2\d\d", code))
        for code in (*_RETURN_CODES, *other_2xx, "default"):
            if code not in responses:
                continue
            response, where = self.deref(responses[code], jsonpointer.join(pointer, code))
            content = _object(response.get("content"), self, jsonpointer.join(where, "content"))
            json_types = [t for t in content if _JSON_MEDIA.match(t)]
            if json_types and "schema" in (content[json_types[0]] or {}):
                _, schema = self.media_schema({json_types[0]: content[json_types[0]]},
                                              jsonpointer.join(where, "content"), "output")
                return schema if isinstance(schema, dict) else None
        return None

    def server_url(self, item: dict, operation: dict) -> str:
        servers = operation.get("servers") or item.get("servers") or self.doc.get("servers") or []
        if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
            return ""
        server = servers[0]
        url = str(server.get("url", ""))
        variables = server.get("variables")
        for name, variable in (variables.items() if isinstance(variables, dict) else []):
            default = variable.get("default", "") if isinstance(variable, dict) else ""
            url = url.replace("{" + str(name) + "}", str(default))
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
        except (KeyError, IndexError, ValueError, TypeError):
            raise self.error(f"$ref {ref!r} does not resolve", where) from None

    def deref(self, node: Any, pointer: str) -> tuple[dict, str]:
        """A non-schema object (parameter, body, response, path item) with its `$ref` chain followed."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise self.error(f"circular $ref {ref!r}", jsonpointer.join(pointer, "$ref"))
            if len(seen) >= MAX_REF_CHAIN:
                raise self.error(f"a chain of more than {MAX_REF_CHAIN} $refs", jsonpointer.join(pointer, "$ref"))
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
        self.nodes += 1
        if self.nodes > NODE_BUDGET:
            return {"description": f"Schema cut: this tool's schemas exceed {NODE_BUDGET:,} nodes.", CUT_KEY: pointer}
        if len(stack) > MAX_REF_CHAIN:
            raise self.error(f"$refs nested more than {MAX_REF_CHAIN} deep", pointer)
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
            elif key == "required" and isinstance(value, list):
                out[key] = list(dict.fromkeys(value)) if all(isinstance(v, str) for v in value) else value
            elif key not in _OPENAPI_ONLY and key not in _OLDER_DRAFTS and not key.startswith("x-"):
                out[key] = value
        _convert_exclusive_bounds(out)
        _drop_hidden_properties(out, "readOnly" if direction == "input" else "writeOnly")
        if node.get("nullable") is True:
            out = _nullable(out)
        return out

    def ref_schema(self, node: dict, pointer: str, direction: str, stack: tuple[str, ...]) -> Any:
        ref = node["$ref"]
        target = self.check_ref(ref, pointer)
        if ref in self.expanded and self.nodes > SHARE_AFTER:
            return self.shared(node, ref, target, direction)
        self.expanded.add(ref)
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


    def shared(self, node: dict, ref: str, target: Any, direction: str) -> dict[str, Any]:
        """`{"$ref": "#/$defs/Name"}` for a definition met again in a large schema: converted once
        (a recursion refers to itself there instead of being cut), kept under the root's `$defs`."""
        name = self.def_names.get(ref)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref.rsplit("/", 1)[-1]) or "def"
            name = base if base not in self.defs else f"{base}_{len(self.defs)}"
            self.def_names[ref] = name
            self.defs[name] = {}  # placed first: the definition may refer to itself
            self.defs[name] = self.schema(target, ref[1:], direction, ())
        out: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
        annotations = {key: value for key, value in node.items() if key in _ANNOTATIONS}
        out.update(annotations)
        if node.get("nullable") is True:
            out = {"anyOf": [out, {"type": "null"}]}
        return out

    def start_root(self) -> None:
        """A new schema root (a tool's parameters, or its response): node budget and `$defs` anew."""
        self.nodes = 0
        self.expanded: set[str] = set()
        self.defs: dict[str, Any] = {}
        self.def_names: dict[str, str] = {}

    def finish_root(self, schema: Any) -> Any:
        if self.defs and isinstance(schema, dict):
            schema = {**schema, "$defs": self.defs}
        return schema


def _object(value: Any, importer: _Importer, pointer: str) -> dict[str, Any]:
    """`value` when it is an object (None counts as empty); InputError at `pointer` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise importer.error(f"must be an object, not {type(value).__name__}", pointer)
    return value


def cut_schema(schema: dict[str, Any], limit: int) -> dict[str, Any]:
    """`schema` if its JSON fits in `limit` bytes, else the schema with everything below some
    depth replaced by a marker (the deepest depth that fits; at worst its top level)."""
    if len(json.dumps(schema)) <= limit:
        return schema
    for depth in range(8, 0, -1):
        cut = _cut_below(schema, depth)
        if len(json.dumps(cut)) <= limit:
            return cut
    return {key: value for key, value in schema.items() if key in ("type", "title", "description")} | {
        CUT_KEY: f"response schema larger than {limit:,} bytes"}


def _cut_below(node: Any, depth: int) -> Any:
    if isinstance(node, list):
        return [_cut_below(item, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if depth <= 0:
        kind = node.get("type")
        return {**({"type": kind} if isinstance(kind, (str, list)) else {}), CUT_KEY: "deeper levels cut (size)"}
    out = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _cut_below(sub, depth - 1) for name, sub in value.items()}
        elif key in (*_SCHEMA_LISTS, *_SCHEMA_ONE):
            out[key] = _cut_below(value, depth - 1)
        else:
            out[key] = value
    return out


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
