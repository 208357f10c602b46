"""Client-side rate limits: a token bucket that every request of a client passes through,
so an API with a published limit (amoCRM 7 requests/s, Bitrix24's leaky bucket) is never
pushed into its 429s, bans or QUERY_LIMIT_EXCEEDED by the hub itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `acquire()` waits for one.

    A leaky bucket of capacity B draining R requests/s (Bitrix24's description) admits the same
    request sequences as a token bucket of rate R and burst B, so both APIs use this class.
    Thread-safe; the waiting happens outside the lock."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate}/s, burst {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers spent waiting: reported in run metadata

    def _reserve(self) -> float:
        """Take a token (possibly going into debt) and return how long the caller must wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        wait = self._reserve()
        if wait > 0:
            self.waited_s += wait
            self._sleep(wait)

    def drain(self) -> None:
        """The server says its bucket is full (429, QUERY_LIMIT_EXCEEDED): start from empty, so
        the next request waits a whole token's time instead of bursting again."""
        with self._lock:
            self._tokens = min(self._tokens, 0.0)
            self._stamp = self._clock()
