"""A bounded work queue in front of one inference thread.

The models are not thread-safe to share and the machine's cores are better spent inside one inference than split
between several, so all CPU-heavy work (decode, colorize, encode) runs in a single worker thread. At most
``queue_size`` jobs wait behind the running one; beyond that :meth:`WorkQueue.submit` refuses at once (the caller
answers 503 with a Retry-After estimated from recent job times).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class QueueFull(RuntimeError):
    def __init__(self, retry_after_s: int):
        super().__init__(f"the server is busy; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class WorkQueue:
    def __init__(self, queue_size: int):
        if queue_size < 0:
            raise ValueError("queue_size must be >= 0")
        self.queue_size = queue_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tintline-infer")
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished (running + waiting); jobs that time out still count
        self._running = 0
        self._avg_s = 1.0  # moving average of job time, for Retry-After

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._pending - self._running

    def retry_after(self) -> int:
        """Seconds until a slot probably frees up: the jobs ahead times the average job time."""
        return max(1, math.ceil(self._avg_s * max(1, self.waiting + 1)))

    def submit(self, fn: Callable[[], Any]) -> Future:
        with self._lock:
            if self._pending >= 1 + self.queue_size:
                raise QueueFull(self.retry_after())
            self._pending += 1

        def job() -> Any:
            with self._lock:
                self._running += 1
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                dt = time.perf_counter() - t0
                with self._lock:
                    self._running -= 1
                    self._avg_s = 0.8 * self._avg_s + 0.2 * dt

        fut = self._pool.submit(job)
        fut.add_done_callback(self._release)  # also runs when a waiting job is cancelled
        return fut

    def _release(self, _fut: Future) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        """Run ``fn`` in the worker; raise :class:`QueueFull` at once when full, ``TimeoutError`` after
        ``timeout_s`` (a waiting job is then dropped; a running one finishes in the background, still holding
        its slot, since a thread cannot be interrupted)."""
        fut = self.submit(fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout=max(0.001, timeout_s))
        except (TimeoutError, asyncio.TimeoutError):
            fut.cancel()
            raise TimeoutError from None
        except asyncio.CancelledError:  # the client went away: drop the job if it has not started
            fut.cancel()
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
