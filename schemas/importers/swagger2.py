"""Swagger 2.0 -> the equivalent OpenAPI 3.0 document, so one importer (openapi.py) reads both.

Why convert instead of a second importer: 2.0 and 3.0 describe the same things in other places
(a large share of public API descriptions, APIs.guru's among them, are still 2.0), and every
rule of the 3.0 importer (argument merging, the HTTP binding, schema dialect, limits) should
hold for both. The conversion is the usual one:

- `host` + `basePath` + `schemes` -> `servers` (https first when offered);
- `definitions`, global `parameters` and `responses` -> `components`; `$ref`s rewritten;
- `in: body` -> `requestBody` with the operation's `consumes` (JSON by default);
  `in: formData` parameters -> one form `requestBody` (multipart when a `type: file` is among
  them or `consumes` says so); `type: file` -> a binary string;
- query, path and header parameters keep their schema keywords (type, format, items, enum,
  default, bounds, pattern), moved under `schema`; `collectionFormat` is dropped;
- response `schema` -> `content` under the operation's `produces` (JSON by default);
- `securityDefinitions` -> `components.securitySchemes` (apiKey, basic, oauth2), which the
  importer turns into the HTTP binding's auth hints.
"""

from __future__ import annotations

import re
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas import jsonpointer
from imaginarium.schemas.importers.refs import BUNDLED

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_PARAMETER_SCHEMA_KEYS = ("type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
                          "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
                          "uniqueItems", "multipleOf")
_REF_PREFIXES = (("#/definitions/", "#/components/schemas/"), ("#/parameters/", "#/components/parameters/"),
                 ("#/responses/", "#/components/responses/"))
_NUMBERS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "multipleOf")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"

# Where a pointer of the converted document came from in the 2.0 one (for error messages).
SOURCE_PREFIXES = (("/components/schemas/", "/definitions/"), ("/components/parameters/", "/parameters/"),
                   ("/components/responses/", "/responses/"))


def is_swagger2(document: Any) -> bool:
    return isinstance(document, dict) and str(document.get("swagger", "")).startswith("2.")


def source_pointer(pointer: str) -> str:
    """The 2.0 pointer of a pointer into the converted document (exact for shared parts)."""
    for new, old in SOURCE_PREFIXES:
        if pointer.startswith(new):
            return old + pointer[len(new):]
    return pointer


def to_openapi3(document: dict[str, Any], file: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 form of a Swagger 2.0 `document`.

    Raises:
        InputError: a part of the wrong type, naming the pointer in the 2.0 document.
    """
    converter = _Converter(document, file)
    return converter.convert()


class _Converter:
    def __init__(self, document: dict[str, Any], file: str):
        self.doc = document
        self.file = file

    def error(self, message: str, pointer: str) -> InputError:
        return InputError(message, where=f"{self.file}#{pointer}")

    def mapping(self, value: Any, pointer: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(f"must be an object, not {type(value).__name__}", pointer)
        return value

    def media_list(self, value: Any, pointer: str, default: list[str]) -> list[str]:
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error("must be a list of media types", pointer)
        return value or default

    def convert(self) -> dict[str, Any]:
        doc = self.doc
        consumes = self.media_list(doc.get("consumes"), "/consumes", [_JSON])
        produces = self.media_list(doc.get("produces"), "/produces", [_JSON])
        out: dict[str, Any] = {"openapi": "3.0.3", "info": doc.get("info") or {"title": "", "version": ""}}
        servers = self.servers()
        if servers:
            out["servers"] = servers
        for key in ("tags", "security", "externalDocs"):
            if key in doc:
                out[key] = doc[key]
        components: dict[str, Any] = {}
        definitions = self.mapping(doc.get("definitions"), "/definitions")
        if definitions:
            components["schemas"] = {name: _refs(schema) for name, schema in definitions.items()}
        parameters = self.mapping(doc.get("parameters"), "/parameters")
        if parameters:
            components["parameters"] = {
                name: self.parameter(p, jsonpointer.join("/parameters", name))
                for name, p in parameters.items() if not _is_body_or_form(p)}
        responses = self.mapping(doc.get("responses"), "/responses")
        if responses:
            components["responses"] = {name: self.response(r, jsonpointer.join("/responses", name), produces)
                                       for name, r in responses.items()}
        security = self.mapping(doc.get("securityDefinitions"), "/securityDefinitions")
        if security:
            components["securitySchemes"] = {name: self.security(s, jsonpointer.join("/securityDefinitions", name))
                                             for name, s in security.items()}
        if components:
            out["components"] = components
        if BUNDLED in doc:  # parts of other files (refs.py): schemas keep their place
            out[BUNDLED] = _refs(doc[BUNDLED])
        paths = self.mapping(doc.get("paths"), "/paths")
        out["paths"] = {path: self.path_item(item, jsonpointer.join("/paths", path), consumes, produces)
                        for path, item in paths.items()}
        return out

    def servers(self) -> list[dict[str, str]]:
        host, base = self.doc.get("host"), self.doc.get("basePath") or ""
        if host is not None and not isinstance(host, str):
            raise self.error("must be a string", "/host")
        if not isinstance(base, str):
            raise self.error("must be a string", "/basePath")
        schemes = self.media_list(self.doc.get("schemes"), "/schemes", ["https"])
        if not host:
            return [{"url": base}] if base else []
        scheme = "https" if "https" in schemes else schemes[0]
        return [{"url": f"{scheme}://{host}{base}"}]

    def path_item(self, item: Any, pointer: str, consumes: list[str], produces: list[str]) -> Any:
        item = self.mapping(item, pointer)
        if "$ref" in item:
            return _refs(item)
        out: dict[str, Any] = {}
        shared = item.get("parameters") or []
        if not isinstance(shared, list):
            raise self.error("must be a list", jsonpointer.join(pointer, "parameters"))
        for key, value in item.items():
            if key in _METHODS:
                out[key] = self.operation(value, jsonpointer.join(pointer, key), shared, pointer, consumes, produces)
            elif key not in ("parameters",):
                out[key] = value
        plain = [(i, p) for i, p in enumerate(shared) if not _is_body_or_form(self.resolve(p))]
        if plain:
            out["parameters"] = [self.parameter(p, jsonpointer.join(pointer, "parameters", i)) for i, p in plain]
        return out

    def operation(self, operation: Any, pointer: str, shared: list[Any], item_pointer: str,
                  consumes: list[str], produces: list[str]) -> dict[str, Any]:
        operation = self.mapping(operation, pointer)
        consumes = self.media_list(operation.get("consumes"), jsonpointer.join(pointer, "consumes"), consumes)
        produces = self.media_list(operation.get("produces"), jsonpointer.join(pointer, "produces"), produces)
        own = operation.get("parameters") or []
        if not isinstance(own, list):
            raise self.error("must be a list", jsonpointer.join(pointer, "parameters"))
        out = {key: value for key, value in operation.items()
               if key not in ("parameters", "responses", "consumes", "produces", "schemes")}
        plain, body, form = [], None, {}
        everything = [(p, jsonpointer.join(item_pointer, "parameters", i)) for i, p in enumerate(shared)]
        everything += [(p, jsonpointer.join(pointer, "parameters", i)) for i, p in enumerate(own)]
        for raw, where in everything:
            parameter = self.resolve(raw)
            if not isinstance(parameter, dict):
                raise self.error("a parameter must be an object", where)
            location = parameter.get("in")
            if location == "body":
                body = (parameter, where)
            elif location == "formData":
                form[parameter.get("name")] = (parameter, where)
            elif raw in own:
                plain.append(self.parameter(raw, where))
        if plain:
            out["parameters"] = plain
        if body is not None:
            parameter, where = body
            media = [m for m in consumes if "json" in m] or consumes
            schema = _refs(parameter.get("schema", {}))
            out["requestBody"] = {"required": bool(parameter.get("required")),
                                  "content": {m: {"schema": schema} for m in media[:1]}}
            if parameter.get("description"):
                out["requestBody"]["description"] = parameter["description"]
        elif form:
            out["requestBody"] = self.form_body(form, consumes)
        out["responses"] = {str(code): self.response(response, jsonpointer.join(pointer, "responses", str(code)),
                                                     produces)
                            for code, response in self.mapping(operation.get("responses"),
                                                               jsonpointer.join(pointer, "responses")).items()}
        return out

    def form_body(self, form: dict[Any, tuple[dict, str]], consumes: list[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        has_file = False
        for name, (parameter, where) in form.items():
            if not isinstance(name, str):
                raise self.error("a formData parameter needs a `name`", where)
            properties[name] = self.parameter_schema(parameter, where)
            has_file = has_file or parameter.get("type") == "file"
            if parameter.get("required"):
                required.append(name)
        media = _MULTIPART if has_file or (_MULTIPART in consumes and _FORM not in consumes) else _FORM
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return {"required": bool(required), "content": {media: {"schema": schema}}}

    def parameter(self, raw: Any, pointer: str) -> dict[str, Any]:
        if isinstance(raw, dict) and "$ref" in raw:
            if str(raw["$ref"]).startswith("#/parameters/"):
                return _refs(raw)  # converted once under components
            target = self.resolve(raw)
            if target is raw:
                return _refs(raw)  # unresolvable: the importer names it
            raw = target  # a parameter from another file (bundled): converted here
        parameter = self.mapping(raw, pointer)
        out: dict[str, Any] = {key: parameter[key] for key in ("name", "in", "description", "required", "deprecated")
                               if key in parameter}
        out["schema"] = self.parameter_schema(parameter, pointer)
        return out

    def parameter_schema(self, parameter: dict[str, Any], pointer: str) -> dict[str, Any]:
        schema = {key: parameter[key] for key in _PARAMETER_SCHEMA_KEYS if key in parameter}
        for key in _NUMBERS:  # "minimum": "1851" is common in hand-written 2.0 specs
            if isinstance(schema.get(key), str) and _NUMBER.match(schema[key]):
                schema[key] = float(schema[key]) if "." in schema[key] else int(schema[key])
        if schema.get("type") == "file":
            schema = {"type": "string", "format": "binary"}
        items = schema.get("items")
        if isinstance(items, dict):
            schema["items"] = _refs({k: v for k, v in items.items() if k != "collectionFormat"})
        return schema

    def response(self, raw: Any, pointer: str, produces: list[str]) -> dict[str, Any]:
        if isinstance(raw, dict) and "$ref" in raw:
            if str(raw["$ref"]).startswith("#/responses/"):
                return _refs(raw)
            target = self.resolve(raw)
            if target is raw:
                return _refs(raw)
            raw = target
        response = self.mapping(raw, pointer)
        out: dict[str, Any] = {"description": str(response.get("description") or "")}
        if "schema" in response:
            media = [m for m in produces if "json" in m] or produces
            out["content"] = {media[0]: {"schema": _refs(response["schema"])}}
        return out

    def security(self, raw: Any, pointer: str) -> dict[str, Any]:
        scheme = self.mapping(raw, pointer)
        kind = scheme.get("type")
        if kind == "basic":
            return {"type": "http", "scheme": "basic"}
        if kind == "apiKey":
            return {"type": "apiKey", "in": scheme.get("in"), "name": scheme.get("name")}
        if kind == "oauth2":
            return {"type": "oauth2", "flows": {}}
        return {"type": str(kind)}

    def resolve(self, node: Any) -> Any:
        """A `#/parameters/...` reference followed (2.0 body and form parameters must be seen)."""
        for _ in range(64):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/")):
                return node
            try:
                node = jsonpointer.resolve(self.doc, node["$ref"])
            except (KeyError, TypeError, ValueError):
                return node
        return node


def _is_body_or_form(parameter: Any) -> bool:
    return isinstance(parameter, dict) and parameter.get("in") in ("body", "formData")


def _refs(node: Any) -> Any:
    """`node` with every 2.0 `$ref` rewritten to its 3.0 place (and `x-nullable` as `nullable`)."""
    if isinstance(node, list):
        return [_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            for old, new in _REF_PREFIXES:
                if value.startswith(old):
                    value = new + value[len(old):]
                    break
            out[key] = value
        elif key == "x-nullable":
            out["nullable"] = value
        elif key == "type" and value == "file":
            out["type"] = "string"
            out.setdefault("format", "binary")
        else:
            out[key] = _refs(value)
    return out

