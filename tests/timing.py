"""A time limit for tests: a timer signal interrupts even a backtracking regex or an endless read."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class TooSlow(AssertionError):
    """Raised when the block ran past its limit; pytest reports it as a failed assertion."""


@contextmanager
def within(seconds: float, what: str = "it") -> Iterator[None]:
    """Fail after `seconds` instead of hanging."""
    def stop(_signum, _frame):
        raise TooSlow(f"{what} took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
