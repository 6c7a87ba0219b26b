"""Heavy work of a request (embedding a query, searching) runs in one small thread pool shared by every session,
with a time limit: one person's input cannot hold the server, and a search that takes too long is one line."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from ui.settings import settings

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_size = 0
_lock = threading.Lock()


class TooSlow(RuntimeError):
    """The work did not finish in time (it may go on in the background, but the page does not wait)."""


def pool() -> ThreadPoolExecutor:
    global _pool, _size
    workers = settings().search_workers
    with _lock:
        if _pool is None or _size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _size = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vps-search"), workers
        return _pool


def bounded(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in the shared pool; :class:`TooSlow` after the search time limit (queue included)."""
    limit = settings().search_timeout_s
    future = pool().submit(fn, *args, **kwargs)
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        future.cancel()
        raise TooSlow(f"The search took longer than {limit:.0f} s (the server is busy); try again in a moment.") \
            from None
