"""imaginarium: verified tool-use training data for LLMs, generated offline (STE and TRICE)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imaginarium")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
