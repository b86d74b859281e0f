"""One asyncio event loop in a thread of its own, for libraries that only speak asyncio
(pysnmp), so that their backends run the same under the daemon's asyncio and trio loops.

A call is a coroutine handed to that loop; the caller's task sleeps until it is done and is
woken through its own loop's token, so no worker thread waits per call. A caller cancelled
(its deadline passed) cancels the coroutine too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


class LoopThread:
    """The loop, started on first use, in a daemon thread (it dies with the process)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self.name, daemon=True).start()
                self._loop = loop
            return self._loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        token = anyio.lowlevel.current_token()
        caller = threading.get_ident()
        done = anyio.Event()

        def wake(_: concurrent.futures.Future[T]) -> None:
            if threading.get_ident() == caller:  # done already: called back at once, here
                done.set()
                return
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except RuntimeError:
                pass  # the caller's loop has ended meanwhile: nobody to wake

        future.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            future.cancel()
            raise
        return future.result()


#: the loop pysnmp runs on, shared by every SNMP device of the process
SNMP_LOOP = LoopThread("labpower-snmp")
