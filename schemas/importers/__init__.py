"""Importers: tool descriptions in other formats -> ToolSpecs.

Each importer module exposes `detect(document) -> bool` and
`load(document, file: str) -> list[ToolSpec]`, where `document` is the parsed JSON/YAML of one
file. `import_file` reads a file, picks the importer (given, or the first whose `detect` says
yes) and returns the ToolSpecs; problems raise InputError naming the file and JSON pointer.
"""
