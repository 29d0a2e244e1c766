"""TensorFlow's C++ log lines, filtered: a quiet start unless the user asks for them.

TensorFlow 2.21 logs through absl before absl's logging is initialised, and those lines ignore
``TF_CPP_MIN_LOG_LEVEL``: every command would start with "All log messages before absl::InitializeLog()",
"oneDNN custom operations are on" and an ``E0000 ... oneDNN supports DT_BOOL only on platforms with
AVX-512`` that is no error. So the CLI points file descriptor 2 (where C++ writes) at a small filter
process that drops what ``TF_CPP_MIN_LOG_LEVEL=2`` means to drop (info and warning lines) and the known
harmless start-up errors, and passes everything else through: other errors, fatal lines, crash output.
Python's own ``sys.stderr`` (our messages, Python warnings, tracebacks) bypasses it.

A process, not a thread: when TensorFlow aborts, its last lines are still in the pipe, and the filter,
reading to the end, still passes them on. At a normal exit the command waits for the filter to finish. One
case is left: a command that aborts as a container's PID 1 (no ``--init``) takes the filter down with it, and
what was still in the pipe is lost. Not installed with ``--verbose`` or when the user set
``TF_CPP_MIN_LOG_LEVEL`` themselves.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys

# absl's format: severity letter, MMDD, time, thread id, file:line] message
_ABSL = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^ \]]+:\d+\] (.*)")
_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
DRAIN_SECONDS = 5.0  # at most, at exit, for the filter to pass on the last lines
# Errors that are not: said at start-up on every machine of a kind, nothing the user can act on.
_HARMLESS_ERRORS = (
    b"oneDNN supports DT_BOOL only on platforms with AVX-512",
    b"Unable to register cuDNN factory",
    b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory",
    b"computation placer already registered",
)


def shown(line: bytes) -> bool:
    """Whether a line C++ wrote to stderr reaches the user."""
    if line.rstrip(b"\r\n") == _BANNER:
        return False
    match = _ABSL.match(line)
    if match is None:
        return True
    severity, message = match.groups()
    if severity in (b"I", b"W"):
        return False
    return not (severity == b"E" and any(text in message for text in _HARMLESS_ERRORS))


def install() -> None:
    """Route this process's (and its children's) fd 2 through the filter; ``sys.stderr`` keeps the real one."""
    real = os.dup(2)
    read, write = os.pipe()
    try:
        process = subprocess.Popen([sys.executable, "-m", "shadownet.tflog"], stdin=read, stdout=real, stderr=real,
                                   close_fds=True)
    except OSError:
        # The filter is a second interpreter; a user who may run this one but not start another (a venv whose
        # interpreter lies in a folder only its owner may enter, reached with inherited rights) keeps
        # TensorFlow's start-up lines rather than losing the command.
        for fd in (real, read, write):
            os.close(fd)
        return
    os.close(read)
    sys.stderr.flush()
    os.dup2(write, 2)
    os.close(write)
    sys.stderr = open(real, "w", encoding=sys.stderr.encoding, errors="backslashreplace", buffering=1)
    atexit.register(_drain, process, real)


def _drain(process: subprocess.Popen, real: int) -> None:
    """At exit, let the filter pass on what is still in the pipe before this process ends: in a container
    this process is often PID 1, and its end stops every other process there, the filter included.
    (An abort skips this; outside a container the filter outlives the process and reads on anyway.)"""
    os.dup2(real, 2)  # this process's end of the pipe closes; children still holding it end first
    try:
        process.wait(timeout=DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        pass


def _filter() -> None:
    # The job's SIGTERM or a Ctrl-C is for the command, not for its log: read on until the pipe closes.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if shown(line):
            out.write(line)
            out.flush()


if __name__ == "__main__":
    _filter()
