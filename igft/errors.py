"""User-facing errors. The CLI prints str(error) as one line and exits 2; no traceback for a user error.

Every message says what is wrong and how to fix it (the command or flag that fixes it).
"""


class IgftError(Exception):
    """Base class of errors caused by user input or configuration, not by a bug in igft."""
