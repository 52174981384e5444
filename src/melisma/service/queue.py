"""The bounded queue in front of conversions and evaluations: ``workers`` run at once, ``waiting`` more may
wait, and anything beyond is refused at once (HTTP 429 with Retry-After) instead of piling up; a request that
waits longer than ``wait_s`` for a worker is answered 503 with Retry-After."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The queue cannot take the request; ``status`` 429 (full) or 503 (waited too long), ``retry_after`` s."""

    def __init__(self, status: int, retry_after: int, message: str):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class WorkQueue:
    """Runs blocking calls (torch releases the GIL) on ``workers`` threads, at most ``workers + waiting`` at a
    time; use from one asyncio event loop."""

    def __init__(self, workers: int = 1, waiting: int = 4, wait_s: float = 60.0):
        self.workers, self.waiting, self.wait_s = workers, waiting, wait_s
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="melisma-convert")
        self.slots: asyncio.Semaphore | None = None
        self.admitted = 0  # running + waiting
        self.mean_s = 2.0  # running mean of one call's seconds, for Retry-After
        self.served = self.refused = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.waiting

    def state(self) -> dict[str, Any]:
        return {"workers": self.workers, "capacity": self.capacity, "admitted": self.admitted,
                "served": self.served, "refused": self.refused, "mean_seconds": round(self.mean_s, 3)}

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the admitted calls' share of the workers, at the mean pace."""
        return max(1, math.ceil(self.mean_s * max(1, self.admitted) / self.workers))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.workers)
        if self.admitted >= self.capacity:
            self.refused += 1
            raise Busy(429, self.retry_after(), f"the service is busy ({self.admitted} requests in progress "
                                                f"or waiting, capacity {self.capacity}); retry later")
        self.admitted += 1
        try:
            try:
                await asyncio.wait_for(self.slots.acquire(), self.wait_s)
            except asyncio.TimeoutError:
                self.refused += 1
                raise Busy(503, self.retry_after(), f"no worker free within {self.wait_s:g} s; retry later") from None
            try:
                t0 = time.monotonic()
                result = await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
                self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - t0)
                self.served += 1
                return result
            finally:
                self.slots.release()
        finally:
            self.admitted -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
