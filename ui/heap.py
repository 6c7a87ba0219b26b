"""Garbage collection that stays cheap as the server's heap grows.

Streamlit collects every generation after each run of a page (``runner.postScriptGC``), so that what a run leaves
in reference cycles is given back. With the model, the index and their libraries loaded, each of those
collections walked every long-lived object again: about 0.2 s of CPU per run, a third of a search's server time
(BENCHMARKS.md, issue 27). After a full collection that took long, what is still alive is long-lived (modules,
the model, indexes, caches): it is moved out of the collector's sight (:func:`gc.freeze`), and the next
collections walk only what runs create since. Frozen objects are still freed when nothing refers to them."""

from __future__ import annotations

import gc
import threading
import time

import streamlit as st

SLOW_S = 0.03  # CPU seconds of a full collection above which its survivors are frozen
_started: dict[int, float] = {}  # thread -> CPU time at the start of the full collection it runs
_lock = threading.Lock()
_installed = False


def _watch(phase: str, info: dict) -> None:
    if info.get("generation") != 2:
        return
    tid = threading.get_ident()
    if phase == "start":
        _started[tid] = time.thread_time()
    elif time.thread_time() - _started.pop(tid, time.thread_time()) > SLOW_S:
        gc.freeze()  # right after a full collection: only what is alive is frozen, no garbage


def keep_collections_cheap() -> None:
    """Install the watch on full collections, once per server process (idempotent); not under ``AppTest``, whose
    process is a test run's, not a server's."""
    global _installed
    with _lock:
        if not _installed and not st.get_option("global.appTest"):
            gc.callbacks.append(_watch)
            _installed = True
