"""Sign-in throttling: wrong passwords counted per account and per address over a sliding
window (docs/api.md "Sign-in throttling").

Past the limit a sign-in is refused before its password is checked (429 login_throttled
with Retry-After), so guessing costs neither the account nor the server's CPU (Argon2).
The window slides: the refusal ends when the oldest counted failure is `window_s` old.
A correct password resets the account's count, not the address's: a school behind one
address keeps its count while a guesser tries account after account from it.

Counts live in this process (one per node); a restart forgets them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

# Distinct usernames and addresses tracked at most; past it the entries with nothing left
# in their window go first, then the oldest (a flood of invented usernames cannot grow the
# table without bound).
MAX_KEYS = 50_000


class SlidingCounts:
    """Failure times per key, each kept `window_s`; refusal at `limit` inside the window."""

    def __init__(self, window_s: float, limit: int, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self.limit = limit
        self._clock = clock
        self._times: dict[str, deque[float]] = {}

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._times.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._times[key]
            return None
        return times

    def wait_s(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        now = self._clock()
        times = self._live(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        # Allowed again once all but limit-1 of the failures left the window.
        return times[len(times) - self.limit] + self.window_s - now

    def add(self, key: str) -> None:
        now = self._clock()
        times = self._live(key, now)
        if times is None:
            if len(self._times) >= MAX_KEYS:
                self._make_room(now)
            times = self._times[key] = deque()
        times.append(now)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def _make_room(self, now: float) -> None:
        for key in list(self._times):
            self._live(key, now)
        while len(self._times) >= MAX_KEYS:
            del self._times[next(iter(self._times))]


class LoginThrottle:
    def __init__(
        self,
        window_s: float = 900.0,
        per_account: int = 10,
        per_address: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = SlidingCounts(window_s, per_account, clock)
        self.addresses = SlidingCounts(window_s, per_address, clock)

    def retry_after_s(self, username: str, address: str) -> int:
        """Whole seconds until this username from this address may try a password; 0: now."""
        wait = max(self.accounts.wait_s(username), self.addresses.wait_s(address))
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str) -> None:
        self.accounts.add(username)
        self.addresses.add(address)

    def succeeded(self, username: str) -> None:
        self.accounts.clear(username)
