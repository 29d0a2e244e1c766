"""Errors that carry a message meant for the user, not a traceback."""


class ShadownetError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``str(error)`` and exits with ``exit_code``; anything else
    that escapes is a bug and keeps its traceback.
    """

    exit_code = 2


class DataError(ShadownetError):
    """The dataset itself is bad (annotations, dictionaries, images)."""

    exit_code = 1
