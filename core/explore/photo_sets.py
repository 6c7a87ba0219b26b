"""The labelled photos the classifier learns from, the held-out photos it is tested on, and their vectors.

A catalog's query sets (:mod:`core.data.query_sets`) marked ``train`` (``queries-train.csv``) are training photos;
without one, the classifier learns from the catalog's own pictures (every view of every product). The other sets
(``queries-examples.csv``, ``queries-val.csv``, a ``validation/`` folder...) are held out for testing, test
splits last.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.query_sets import QuerySet, query_sets
from core.embedding import Embedder
from core.embedding.query import embed_queries

#: ``vectors(embedder, paths, desc, progress) -> (one unit vector per usable photo, {position: reason})``
VectorFn = Callable[[Embedder, Sequence[Path], str, "Progress | bool"], tuple[np.ndarray, dict[int, str]]]


def training_sets(catalog_root: str | Path) -> list[QuerySet]:
    """The catalog's labelled photo sets marked for training (``queries-train.csv``)."""
    return [s for s in query_sets(catalog_root) if s.split == "train"]


def held_out_sets(catalog_root: str | Path) -> list[QuerySet]:
    """The catalog's other labelled photo sets, to test on: CSV files before folder trees, test splits last."""
    rest = [s for s in query_sets(catalog_root) if s.split != "train"]
    return sorted(rest, key=lambda s: (s.split == "test", s.kind != "csv", s.name))


#: photos per call when a page counts them: each call reports once every view of its photos (a trained head's
#: query zooms, several passes) is embedded, so a count never waits for the passes after the first
CHUNK = 8


def photo_vectors(embedder: Embedder, paths: Sequence[Path], desc: str = "photos",
                  progress: Progress | bool = False) -> tuple[np.ndarray, dict[int, str]]:
    """Photos embedded as search embeds a shopper's photo (:func:`embed_queries`: the same decode and query
    zooms): one row per usable photo, and the one-line reason for each unusable one. A ``progress`` callback
    counts photos done, every :data:`CHUNK` photos."""
    paths = list(paths)
    if not callable(progress):
        found, errors = embed_queries(embedder, paths, progress=progress, desc=desc)
    else:
        found, errors = [], {}
        progress(0, len(paths))
        for start in range(0, len(paths), CHUNK):
            got, bad = embed_queries(embedder, paths[start:start + CHUNK], desc=desc)
            found += got
            errors |= {start + i: e for i, e in bad.items()}
            progress(min(start + CHUNK, len(paths)), len(paths))
    vecs = [q.vector for q in found if q is not None]
    return (np.stack(vecs) if vecs else np.zeros((0, embedder.dim), np.float32)), errors


def same_photos(a: Sequence[Path], b: Sequence[Path]) -> set[Path]:
    """The photos (resolved paths) in both lists."""
    return {p.resolve() for p in a} & {p.resolve() for p in b}


class PhotoVectors:
    """A :data:`VectorFn` that embeds each photo once per embedder and remembers it (by path, size and modification
    time), so other labels, sets and reruns reuse the vectors; unusable photos are remembered with their reason."""

    def __init__(self) -> None:
        self._done: dict[tuple, np.ndarray | str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._done)

    def seed(self, embedder: Embedder, vectors: dict[Path, np.ndarray]) -> int:
        """Remember photos' vectors made ahead by ``embedder`` (:mod:`core.explore.prepared_photos`); returns
        how many were new."""
        who = (embedder.spec, json.dumps(embedder.info(), sort_keys=True, default=str))
        with self._lock:
            new = {(*who, *_stamp(p)): v for p, v in vectors.items()}
            new = {k: v for k, v in new.items() if k not in self._done}
            self._done.update(new)
        return len(new)

    def __call__(self, embedder: Embedder, paths: Sequence[Path], desc: str = "photos",
                 progress: Progress | bool = False) -> tuple[np.ndarray, dict[int, str]]:
        who = (embedder.spec, json.dumps(embedder.info(), sort_keys=True, default=str))
        keys = [(*who, *_stamp(Path(p))) for p in paths]
        with self._lock:
            todo = list(dict.fromkeys(k for k in keys if k not in self._done))
        if todo:
            by_key = {k: Path(p) for k, p in zip(keys, paths)}
            vecs, errors = photo_vectors(embedder, [by_key[k] for k in todo], desc, progress)
            it = iter(vecs)
            with self._lock:
                for i, k in enumerate(todo):
                    self._done[k] = errors[i] if i in errors else next(it)
        with self._lock:
            got = [self._done.get(k, "not embedded") for k in keys]
        errors = {i: g for i, g in enumerate(got) if isinstance(g, str)}
        ok = [g for g in got if not isinstance(g, str)]
        return (np.stack(ok) if ok else np.zeros((0, embedder.dim), np.float32)), errors


def _stamp(p: Path) -> tuple[str, int, int]:
    try:
        st = p.stat()
        return str(p.resolve()), st.st_size, st.st_mtime_ns
    except OSError:
        return str(p), -1, -1
