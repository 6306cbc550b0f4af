"""One injectable clock for the Session and the simulator.

``RealClock`` follows the wall clock.  ``VirtualClock`` runs as fast as the
CPU allows: whenever every task on the event loop is waiting on the clock,
time jumps to the earliest wake-up.  Work done synchronously inside a
coroutine therefore costs no virtual time, and an hour of a simulated night
runs in seconds.

Two time bases: :meth:`Clock.now` is the wall clock (timestamps, file names,
the night's date) and may step when NTP corrects it; :meth:`Clock.monotonic`
never steps and is what intervals are measured on (settling, timeouts, the
guide engine's frame times, the simulator's physics).  On the virtual clock
both are the same number.

Blocking work (frame rendering, star detection, model fits, file writes)
goes through :meth:`Clock.run_blocking`, which runs it in a worker thread.
On the virtual clock, time stands still while any such work is in flight,
so moving work off the event loop never lets simulated time run ahead of
it: the results are the same as if the work had been instantaneous.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")


class Clock:
    """Seconds since the Unix epoch, and sleeping on that time base."""

    virtual = False

    def now(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def monotonic(self) -> float:  # pragma: no cover - interface
        """Seconds on a time base that never steps (intervals, timers)."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run blocking work (file I/O, heavy numpy) in a thread.

        On the virtual clock, time stands still until the work is done."""
        return await asyncio.to_thread(fn, *args, **kw)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Like ``asyncio.wait_for`` but the timeout runs on this clock."""
        if timeout is None:
            return await aw
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.sleep(timeout))
        try:
            done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            timer.cancel()
            raise
        if task in done:
            timer.cancel()
            return task.result()
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        raise TimeoutError(f"no answer within {timeout:g} s")


class RealClock(Clock):
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock(Clock):
    """A clock whose time only moves when everything waits on it.

    Call :meth:`start` from inside the running loop (``Session`` does it) or
    use ``async with clock.running():``.
    """

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # created in the running loop
        self._busy = 0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    @property
    def in_flight(self) -> int:
        """Blocking calls running in threads now (time holds while > 0)."""
        return self._busy

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._ensure_driver(loop)
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (self._now + max(0.0, seconds), next(self._seq), fut))
        if self._wake is not None:
            self._wake.set()
        await fut

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        self._busy += 1
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        finally:
            self._busy -= 1
            if not self._busy and self._wake is not None:
                self._wake.set()  # the driver may move time again

    def close(self) -> None:
        """Stop driving time (another virtual clock may then run in this loop)."""
        if self._driver is not None and not self._driver.done():
            self._driver.cancel()
        self._driver = None

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (tests), waking whoever is due."""
        self._now += seconds
        self._release_due()

    def _release_due(self) -> None:
        while self._heap and self._heap[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._heap)
            if not fut.done():
                fut.set_result(None)

    def _ensure_driver(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._driver = loop.create_task(self._drive(loop), name="virtual-clock")

    @staticmethod
    def _loop_idle(loop: Any) -> bool:
        ready = getattr(loop, "_ready", None)
        return ready is None or len(ready) == 0

    async def _drive(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            # Let every runnable task run until the loop has nothing ready.
            for _ in range(4):
                await asyncio.sleep(0)
            while not self._loop_idle(loop):
                await asyncio.sleep(0)
                for _ in range(2):
                    await asyncio.sleep(0)
            # Drop cancelled sleepers.
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                assert self._wake is not None
                self._wake.clear()
                await self._wake.wait()
                continue
            # Work running in a thread holds time still until it is done
            # (run_blocking wakes the driver when the last one finishes).
            if self._busy:
                assert self._wake is not None
                self._wake.clear()
                await self._wake.wait()
                continue
            wake_at = self._heap[0][0]
            if wake_at > self._now:
                self._now = wake_at
            self._release_due()


def make_clock(fast: bool, start: float | None = None) -> Clock:
    return VirtualClock(start) if fast else RealClock()
