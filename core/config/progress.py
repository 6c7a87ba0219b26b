"""The progress callback type shared by every long-running stage."""

from __future__ import annotations

from collections.abc import Callable

#: progress(done, total) callback, e.g. a Streamlit progress bar; ``True`` elsewhere means a tqdm bar
Progress = Callable[[int, int], None]
