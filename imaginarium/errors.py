"""Errors that mean "the user's input is wrong", as opposed to a bug.

The CLI prints them as one clear line and exits with code 2; tracebacks are kept for bugs.
Every message should name the file, row or field at fault. Because the names come from the
input (a JSON key with a newline, a lone surrogate), the text is made printable on one line
here, once, for every error.
"""

_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


def one_line(text: str) -> str:
    """`text` with secrets redacted, control characters escaped and lone surrogates written as \\udXXX."""
    from imaginarium.secrets import redact

    return redact(text).encode("utf-8", "backslashreplace").decode("utf-8").translate(_CONTROL)


class InputError(Exception):
    """Bad input: a broken file, a malformed row, an unknown name. Exit code 2."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = one_line(where) if where else where
        message = one_line(message)
        super().__init__(f"{self.where}: {message}" if self.where else message)
