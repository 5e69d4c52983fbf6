"""An adaptive cap on requests in flight: halve on 429, grow back one slot at a time, honour Retry-After.

Additive increase / multiplicative decrease, as TCP does. Two refinements keep the share of 429s low
when the server has fewer slots than the client's cap:
- a burst of 429s from requests sent under the same limit halves the limit once, not once per reply;
- after a 429 the limit grows back quickly to just below the level that failed, and probes above it
  only after a long run of successes, so a steady server is not re-tested every few requests.
A Retry-After pauses every new request (not just the one that got it) until the time asked for.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

PROBE_STREAK = 32  # successes per slot before testing again a limit that failed


class AdaptiveLimit:
    """Blocks `acquire` while `limit` requests are in flight or a Retry-After pause is running."""

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic):
        self.maximum = max(1, int(maximum))
        self.limit = self.maximum
        self.in_flight = 0
        self.decreases = 0
        self._ceiling: int | None = None  # the limit at the last 429
        self._generation = 0  # bumps at every decrease; a 429 from an older generation is not news
        self._successes = 0
        self._resume_at = 0.0
        self._clock = clock
        self._cond = threading.Condition()

    def acquire(self, retrying: bool = False) -> int:
        """Wait for a slot; returns the generation the request is sent under (pass it to `on_429`).

        A retry has already slept its own Retry-After, so it skips the pause that others wait out.
        """
        with self._cond:
            while True:
                pause = 0.0 if retrying else self._resume_at - self._clock()
                if pause > 0:
                    self._cond.wait(timeout=min(pause, 1.0))
                    continue
                if self.in_flight < self.limit:
                    self.in_flight += 1
                    return self._generation
                self._cond.wait(timeout=1.0)

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def on_success(self) -> None:
        with self._cond:
            self._successes += 1
            below_ceiling = self._ceiling is None or self.limit + 1 < self._ceiling
            needed = self.limit if below_ceiling else PROBE_STREAK * self.limit
            if self.limit < self.maximum and self._successes >= needed:
                self.limit += 1
                self._successes = 0
                self._cond.notify_all()

    def on_429(self, generation: int, retry_after: float | None) -> None:
        with self._cond:
            if generation == self._generation:
                self._ceiling = self.limit
                self.limit = max(1, self.limit // 2)
                self._generation += 1
                self._successes = 0
                self.decreases += 1
            if retry_after:
                self._resume_at = max(self._resume_at, self._clock() + retry_after)
