"""Errors that mean "the user's input is wrong", as opposed to a bug.

The CLI prints them as one clear line and exits with code 2; tracebacks are kept for bugs.
Every message should name the file, row or field at fault.
"""


class InputError(Exception):
    """Bad input: a broken file, a malformed row, an unknown name. Exit code 2."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
