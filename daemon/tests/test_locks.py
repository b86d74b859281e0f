"""A target's lock: operations take it in arrival order, and a caller that gives up while it
waits (a cancelled call) never leaves the target locked for everybody after it."""

from __future__ import annotations

import anyio
import pytest
from labpower.daemon.locks import FairLock

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])]


async def _take(lock: FairLock, name: str, order: list[str], hold: anyio.Event) -> None:
    async with lock:
        order.append(name)
        await hold.wait()


async def _cancelled_waiter(lock: FairLock, scope: anyio.CancelScope) -> None:
    with scope:
        async with lock:
            # handed the lock and cancelled at once (trio runs it up to here): it ends at
            # its next checkpoint, and passes the lock on
            await anyio.sleep_forever()


async def test_waiters_get_the_lock_in_the_order_they_came(anyio_backend: str) -> None:
    lock = FairLock()
    order: list[str] = []
    release = anyio.Event()
    async with anyio.create_task_group() as tg:
        for name in ("first", "second", "third"):
            tg.start_soon(_take, lock, name, order, release)
            await anyio.wait_all_tasks_blocked()  # each one holds or queues before the next comes
        assert order == ["first"]
        assert lock.locked()
        release.set()
    assert order == ["first", "second", "third"]
    assert not lock.locked()


@pytest.mark.parametrize("handed_over", [False, True])
async def test_a_cancelled_waiter_never_keeps_the_lock_from_the_next(
    anyio_backend: str, handed_over: bool
) -> None:
    """Cancelled while it waits (it leaves the queue), or just after the lock was handed to
    it, before it could run (it passes the lock on): either way the next waiter gets it."""
    lock = FairLock()
    order: list[str] = []
    release = anyio.Event()
    impatient = anyio.CancelScope()
    await lock.acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancelled_waiter, lock, impatient)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(_take, lock, "patient", order, release)
        await anyio.wait_all_tasks_blocked()
        if handed_over:
            lock.release()
            impatient.cancel()
        else:
            impatient.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(lock._waiters) == 1, "the cancelled waiter is still queued"
            assert lock.locked()
            lock.release()
        await anyio.wait_all_tasks_blocked()
        assert order == ["patient"]
        release.set()
    assert not lock.locked()


async def test_releasing_a_free_lock_is_an_error(anyio_backend: str) -> None:
    lock = FairLock()
    with pytest.raises(RuntimeError, match="not held"):
        lock.release()
