"""The `python` import format: a listing of Python tools by reference,
`{"python_tools": ["module:function", "module", ...]}`. The work is done beside the executor
that runs them (imaginarium.executor.python_tools)."""

from imaginarium.executor.python_tools import detect, load

__all__ = ["detect", "load"]
