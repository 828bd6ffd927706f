"""Ctrl-C (SIGINT) as a run handles it: always noticed, deferred where stopping does harm.

Python turns SIGINT into KeyboardInterrupt wherever the main thread happens to be; a library
that catches it there (``asyncio.run`` turns it into a task cancellation, which a task may
absorb) would let an interrupted drill finish and pass. The run's own handler counts every
SIGINT, so the engine knows a run was interrupted whatever a library made of it, and a
check that was running then cannot pass.

Some work must not stop halfway: a failover drill's failback (stopping there leaves users
on a DR site that is about to go) and the writing of a run's reports (stopping there leaves
a run without a verdict). Inside ``deferred`` a Ctrl-C is acknowledged on the terminal and
raised when the work is done.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

REASON = "interrupted (Ctrl-C)"  # why a run that saw one did not complete
_received = 0
_deferring: list[str] = []  # what is being finished first, innermost last
_pending = False


def _to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


_say: Callable[[str], None] = _to_stderr


def install(say: Callable[[str], None] | None = None) -> None:
    """Take over SIGINT in this process (the main thread only can). ``say`` reaches the
    operator's terminal (pytest captures stderr while a check runs)."""
    global _say
    _say = say or _to_stderr
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def alert(text: str) -> None:
    """Tell the operator now, in red, whatever is being captured."""
    _say(f"\n\033[1;31m{text}\033[0m\n")


def received() -> int:
    """How many Ctrl-Cs this process has seen since ``install``."""
    return _received


def pending() -> bool:
    """Whether a deferred Ctrl-C waits for the current work to end."""
    return _pending


def _handler(signum: int, frame: FrameType | None) -> None:
    global _received, _pending
    _received += 1
    if not _deferring:
        raise KeyboardInterrupt
    _pending = True
    alert(f"Ctrl-C: {_deferring[-1]} first; opsverify stops when it is done.")


@contextlib.contextmanager
def deferred(what: str, *, then_stop: bool = True) -> Iterator[None]:
    """Finish ``what`` (words for the terminal: "failing back to the primary: stopping now
    would leave users on the DR site") before a Ctrl-C that arrives meanwhile interrupts;
    ``then_stop`` False: the caller looks at ``received`` and stops in its own way."""
    global _pending
    _deferring.append(what)
    try:
        yield
    finally:
        _deferring.pop()
        if _pending and not _deferring:
            _pending = False
            if then_stop:
                raise KeyboardInterrupt
