"""The one progress contract of every long call, from core to the pages and the CLI.

A long call takes ``progress``: a callback ``progress(done, total)`` (a page's ``st.progress``), ``True`` for a
tqdm bar on stderr (the CLI), or ``False`` for silence. It counts real units of work (images embedded, scenes
read, epochs run: ``total`` is the true number, ``done`` reaches it), and it is called at least every 2 s of
work: a stage whose last unit is slow is cut into smaller ones (the productness head adds each scene to its
regression as it reads it, so the bar ends when the work does). Slow work with no unit to count yet (loading a
model) says what it does before it starts: a spinner in the app, a status line in the CLI
(``core.cli.common.status``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: progress(done, total) callback, e.g. a Streamlit progress bar; ``True`` elsewhere means a tqdm bar
Progress = Callable[[int, int], None]


class Stages:
    """The counts of a long call that runs in another thread (a page cannot draw a bar from there): each stage
    reports through its own ``progress(done, total)`` (:meth:`of`), and the page reads :meth:`latest` from its own
    thread and draws it. Safe across threads (stages may run in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}
        self._last = ""

    def of(self, what: str) -> Progress:
        """The progress callback of the stage ``what`` (a person's words: "reading each picture's colours")."""
        def report(done: int, total: int) -> None:
            with self._lock:
                self._counts[what] = (int(done), int(total))
                self._last = what
        return report

    def latest(self) -> tuple[str, int, int]:
        """(stage, done, total) of the stage that reported last; ("", 0, 0) before any."""
        with self._lock:
            return (self._last, *self._counts[self._last]) if self._last else ("", 0, 0)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Every stage's last (done, total)."""
        with self._lock:
            return dict(self._counts)
