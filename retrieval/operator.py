"""Operator sign-in: which password counts, and a growing wait after each wrong one (for the insights page).

One `SignInGuard` per server process counts wrong attempts from every session together: opening a new
session does not start the count again. After the n-th wrong attempt in a row the next one is refused
for FIRST_WAIT_S * 2**(n-1) seconds (1, 2, 4, ... at most LONGEST_WAIT_S); a right one clears the count,
and so do FORGET_AFTER_S seconds without a wrong one. Every wrong or refused attempt is logged.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SignIn", "SignInGuard", "chosen_password", "guard"]

log = logging.getLogger(__name__)

FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 60.0
FORGET_AFTER_S = 15 * 60.0


def chosen_password(from_secrets: object, from_env: str) -> str | None:
    """The operator password: the secrets file's wins over the environment's; blank or spaces is none.

    >>> chosen_password(None, "  "), chosen_password("   ", "env-pw"), chosen_password(1234, "")
    (None, 'env-pw', '1234')
    """
    for value in (from_secrets, from_env):
        if value is not None and str(value).strip():
            return str(value)
    return None


@dataclass(frozen=True)
class SignIn:
    ok: bool
    wait_s: float = 0.0  # how long until the next attempt is taken (0 when ok)
    too_soon: bool = False  # refused without looking at the password: the wait was not over


class SignInGuard:
    """Compares passwords in constant time and makes each wrong one cost a growing wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._last_failure = -FORGET_AFTER_S
        self._next_allowed = 0.0

    def wait_left(self) -> float:
        with self._lock:
            return max(0.0, self._next_allowed - self.clock())

    def attempt(self, typed: str, expected: str, who: str = "unknown") -> SignIn:
        now = self.clock()
        with self._lock:
            if now - self._last_failure > FORGET_AFTER_S:
                self._failures = 0
            if now < self._next_allowed:
                wait = self._next_allowed - now
                log.warning("Operator sign-in refused from %s: tried %.1f s before the wait after %d wrong"
                            " passwords was over.", who, wait, self._failures)
                return SignIn(ok=False, wait_s=wait, too_soon=True)
            if hmac.compare_digest(typed.encode(), expected.encode()):
                self._failures = 0
                self._next_allowed = 0.0
                return SignIn(ok=True)
            self._failures += 1
            self._last_failure = now
            wait = min(FIRST_WAIT_S * 2 ** (self._failures - 1), LONGEST_WAIT_S)
            self._next_allowed = now + wait
            log.warning("Operator sign-in failed from %s: wrong password (%d in a row); the next attempt is taken"
                        " in %.0f s.", who, self._failures, wait)
            return SignIn(ok=False, wait_s=wait)


guard = SignInGuard()  # the server's one guard: every session's attempts count together
