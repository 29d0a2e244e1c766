"""Errors that carry a message meant for the user, not a traceback."""

from __future__ import annotations

import errno
import os
import re


class ShadownetError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``str(error)`` and exits with ``exit_code``; anything else
    that escapes is a bug and keeps its traceback.
    """

    exit_code = 2


class DataError(ShadownetError):
    """The dataset itself is bad (annotations, dictionaries, images)."""

    exit_code = 1


class SettingError(ShadownetError):
    """A bad value of one named setting (``workers``, ``on_error``, ...). Core modules know settings, not
    flags: ``str()`` names the setting; the CLI names the flag that set it (``flag_message``)."""

    def __init__(self, setting: str, problem: str, exit_code: int | None = None):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem
        if exit_code is not None:  # a setting that names bad data (a run to fine-tune from): DataError's 1
            self.exit_code = exit_code

    def flag_message(self, flag: str | None = None) -> str:
        """The message with the flag in place of the setting (``--on-error must be ...``)."""
        return f"{flag or '--' + self.setting.replace('_', '-')} {self.problem}"


class AccessError(ShadownetError):
    """A path this process may not read or write: a permission, a read-only mount, a full disk.

    The setup's problem (who the container runs as, how a folder is mounted), not the code's.
    """

    exit_code = 1


# errno -> what the message says; the first two depend on who the process runs as, so it names its uid.
_ACCESS_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
}
_WHO_MATTERS = {errno.EACCES, errno.EPERM}
# TensorFlow's file system reports an errno as "<path>; <strerror>" (PermissionDeniedError,
# ResourceExhaustedError), not as an OSError, after an op name that may hold slashes of its own
# ("{{function_node __wrapped__SaveV2_..._device_/job:localhost/...}} /opt/ml/...; No space left on device").
_TF_MESSAGE = re.compile(r"(?P<path>/[^;\s]+); (?P<reason>Permission denied|Operation not permitted|"
                         r"Read-only file system|No space left on device|Disk quota exceeded)")
_TF_ERRNOS = {os.strerror(number): number for number in _ACCESS_ERRNOS}


def access_error(exc: BaseException, output: str | None = None) -> AccessError | None:
    """The access problem behind ``exc`` as one line, or None when it is something else.

    ``exc`` is one when it is an OSError whose errno is one of ``_ACCESS_ERRNOS`` and that names a
    path, or a TensorFlow error that reports one; a ShadownetError is one when it was raised while
    handling one (``except OSError: raise ShadownetError(...) from None`` keeps it as the context).
    Other exceptions are not looked through: a bug raised while handling an access problem stays a bug.
    Message: ``cannot read PATH: permission denied (running as uid 10001)``. ``output``: the folder the
    command writes to, named when the error names no file (a ``write()`` into a full file system).
    """
    found = _path_and_errno(exc)
    if found is None and isinstance(exc, ShadownetError):
        context = exc.__cause__ or exc.__context__
        found = _path_and_errno(context) if context is not None else None
    if found is None:
        return None
    path, number = found
    who = f" (running as uid {os.getuid()})" if number in _WHO_MATTERS else ""
    if path is None:  # a write() or close() into a full or read-only file system names no file
        return AccessError(f"cannot write{f' under {output}' if output else ''}: {_ACCESS_ERRNOS[number]}")
    return AccessError(f"cannot {_verb(path, number)} {path}: {_ACCESS_ERRNOS[number]}{who}")


def _path_and_errno(exc: BaseException) -> tuple[str | None, int] | None:
    if isinstance(exc, OSError):
        if exc.errno in _ACCESS_ERRNOS and exc.filename is not None:
            return os.fsdecode(exc.filename), exc.errno
        if exc.errno in _ACCESS_ERRNOS and exc.errno not in _WHO_MATTERS:
            return None, exc.errno
        return None
    if type(exc).__module__.startswith("tensorflow"):
        match = _TF_MESSAGE.search(str(getattr(exc, "message", exc)))
        if match:
            return match["path"], _TF_ERRNOS[match["reason"]]
    return None


def _verb(path: str, number: int) -> str:
    """Whether the failed call read or wrote ``path``, told from the errno and what is there now.

    A read-only or full file system only refuses writes. Otherwise: a path that exists and can be
    read was being written; one that exists but cannot be read was being read; one that does not
    exist was being created in a reachable folder (a write), unless the folder above it cannot even
    be searched (the path was out of reach: a read, as for records under a root-only folder).
    """
    if number not in _WHO_MATTERS:
        return "write"
    path = here = os.path.abspath(path)
    while True:
        try:
            os.stat(here)
            break
        except OSError:  # missing, or a folder above it cannot be searched: look one level up
            parent = os.path.dirname(here)
            if parent == here:
                return "read"
            here = parent
    if here == path:
        return "write" if os.access(path, os.R_OK) else "read"
    return "write" if os.access(here, os.X_OK) else "read"


class converted:
    """A context manager: an exception that ``convert(exc)`` turns into a ShadownetError is raised as that one
    (a client library's error as one line naming the object); others, and ShadownetErrors, pass unchanged."""

    def __init__(self, convert):
        self.convert = convert

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, ShadownetError):
            return False
        error = self.convert(exc)
        if error is None:
            return False
        raise error from None
