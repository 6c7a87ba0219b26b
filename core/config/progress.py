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

from collections.abc import Callable

#: progress(done, total) callback, e.g. a Streamlit progress bar; ``True`` elsewhere means a tqdm bar
Progress = Callable[[int, int], None]
