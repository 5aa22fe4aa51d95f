"""The intakes' one ordered persist path: queue writes done by one thread, in the order
they were asked.

An intake acknowledges a request (SMTP ``250``, HTTP ``202``, the socket's ``0 <job>``)
only once its job is on disk.  Done from a thread pool, concurrent requests commit in
whatever order the threads get the database, so a seat's jobs could be stored — and run —
against the order of their acknowledgements.  Every intake of ``wod serve`` therefore
hands its writes (``queue.submit``, ``queue.reject``) to an :class:`OrderedWriter`: its
thread persists them in the order they were handed over on the event loop and settles
each caller's future in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue as stdqueue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple]


class OrderedWriter:
    """One thread doing an intake's queue writes, strictly in the order they are asked.

    ``call(fn, *args)`` (on an event loop) returns a future settled with ``fn(*args)`` once
    every earlier call has run.  Callers on several event loops may share one writer.  The
    thread starts on the first call; ``close()`` finishes what was asked and ends it (a
    later call starts a new one)."""

    def __init__(self, name: str = "intake-persist") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._items: stdqueue.SimpleQueue[_Item | None] = stdqueue.SimpleQueue()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._thread is None:  # each thread has its own list of work
                self._items = stdqueue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._main, args=(self._items,), name=self.name, daemon=True
                )
                self._thread.start()
            self._items.put((loop, future, fn, args))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Finish what was asked, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._items.put(None)
        thread.join(timeout)

    @staticmethod
    def _main(items: stdqueue.SimpleQueue[_Item | None]) -> None:
        while (item := items.get()) is not None:
            loop, future, fn, args = item
            try:
                result, error = fn(*args), None
            except Exception as exc:  # handed to the waiting caller
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
