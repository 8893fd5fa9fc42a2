"""Run untrusted work (a partner template) in a forked child with hard limits.

The child gets a wall-clock deadline (it is killed when it passes), a CPU-time
limit, an address-space limit and a cap on the size of what it sends back. None
of these can be bypassed from inside the child: nested loops, `center(10**9)`,
`'%*d' % …` or a regular expression that backtracks for ever all end in an
error for that template, never in a hung or exhausted reconciler.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_ENV = "RECONCILER_TEMPLATE_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds of wall-clock time per template use
MAX_RESULT = 16 * 1024 * 1024  # bytes the child may send back
EXTRA_MEMORY = 512 * 1024 * 1024  # address space the child may add to the parent's


class IsolationError(Exception):
    """The child broke a limit; the message says which."""


def timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT


def run_isolated(work: Callable[[], Any], seconds: float | None = None) -> Any:
    """`work()` in a forked child; its JSON-able result, or IsolationError."""
    seconds = timeout() if seconds is None else seconds
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(work, write_end, seconds)
    os.close(write_end)
    try:
        data = _read_until(read_end, pid, time.monotonic() + seconds)
    finally:
        os.close(read_end)
        _reap(pid)
    try:
        status, value = json.loads(data)
    except ValueError:
        raise IsolationError("it was stopped: it needed more memory than allowed") from None
    if status != "ok":
        raise IsolationError(value)
    return value


def _child(work: Callable[[], Any], fd: int, seconds: float) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _limit(seconds)
        try:
            payload = ["ok", work()]
        except MemoryError:
            payload = ["error", "it needed more memory than allowed"]
        data = json.dumps(payload, ensure_ascii=False).encode()
        if len(data) > MAX_RESULT:
            data = json.dumps(["error", f"its output is larger than {MAX_RESULT // 1024 // 1024} MB"
                               ]).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:  # noqa: BLE001 - the parent reports a child that sent nothing
        code = 1
    finally:
        os._exit(code)


def _limit(seconds: float) -> None:
    """CPU and memory limits of the child (the wall-clock deadline is the parent's)."""
    cpu = int(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + EXTRA_MEMORY
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):  # no /proc: the deadline and the output cap still hold
        pass


def _read_until(fd: int, pid: int, deadline: float) -> bytes:
    chunks, total = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            raise IsolationError("it took longer than the limit of "
                                 f"{timeout():g} s (set {TIMEOUT_ENV} to change it)")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_RESULT + 1024:
            os.kill(pid, signal.SIGKILL)
            raise IsolationError(f"its output is larger than {MAX_RESULT // 1024 // 1024} MB")
        chunks.append(chunk)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
