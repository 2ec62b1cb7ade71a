"""The one exception type for bad user input.

Library code raises :class:`InputError` with a message that names the file (or
object), the field path and what was expected; the CLI prints it as one line and
exits with code 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: a file, a field, an option. Printed as one line, exit code 2."""

    def __init__(self, where: str, field: str | None, expected: str) -> None:
        self.where = where
        self.field = field
        self.expected = expected
        location = f"{where}: {field}" if field else where
        super().__init__(f"{location}: {expected}")
